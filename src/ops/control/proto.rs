//! The control protocol's types: what travels over the socket, one JSON
//! object per line each way, shared by the server (the engine fills them in)
//! and the client (`exaprobe status|drain|undrain|recheck`).
//!
//! The wire format is the documented one (README, "Status, drain,
//! recheck"): every reply has `"ok"`; a failed one has `"error"`; a status
//! has `"services"`, a drain `"drained"`, an undrain `"undrained"`. Absent
//! values in a status are `null`, never left out, so tools can rely on
//! every key.

use serde::{Deserialize, Serialize};

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Report every service.
    Status {},
    /// Drain one service or all.
    Drain {
        /// The service, unless `all`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// Every service.
        #[serde(default)]
        all: bool,
        /// How long, as a duration string (`model::duration::parse`);
        /// forever when absent.
        #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
        duration: Option<String>,
        /// Why, for `status`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Drain even when the fleet guard refuses (withdrawing would leave
        /// fewer than `min_sites` other sites announcing).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
        /// Who, filled in by the server from the peer's credentials; never
        /// taken from the request.
        #[serde(skip)]
        by: String,
    },
    /// End a drain.
    Undrain {
        /// The service, unless `all`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// Every service.
        #[serde(default)]
        all: bool,
    },
    /// Probe a service now (still through hysteresis).
    Recheck {
        /// The service.
        service: String,
    },
}

/// A reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `{"ok": true, "services": [...]}`.
    Status(Status),
    /// `{"ok": true, "drained": [names]}`.
    Drained(Vec<String>),
    /// `{"ok": true, "undrained": [names]}`.
    Undrained(Vec<String>),
    /// `{"ok": true}`.
    Done,
    /// `{"ok": false, "error": "..."}`.
    Error(String),
}

impl Reply {
    /// A failed reply.
    pub fn error(msg: impl std::fmt::Display) -> Reply {
        Reply::Error(msg.to_string())
    }

    /// One line of JSON, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(&Wire::from(self.clone()))
            .unwrap_or_else(|_| r#"{"ok":false,"error":"reply not encodable"}"#.into())
    }
}

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reply, D::Error> {
        let w = Wire::deserialize(d)?;
        Ok(match w {
            Wire { ok: false, error, .. } => Reply::Error(error.unwrap_or_else(|| "failed".into())),
            Wire { services: Some(services), fleet, .. } => Reply::Status(Status { services, fleet }),
            Wire { drained: Some(names), .. } => Reply::Drained(names),
            Wire { undrained: Some(names), .. } => Reply::Undrained(names),
            Wire { .. } => Reply::Done,
        })
    }
}

/// A reply as it travels: one object, the keys a reply has.
#[derive(Serialize, Deserialize)]
struct Wire {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    services: Option<Vec<ServiceStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drained: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    undrained: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fleet: Option<FleetStatus>,
}

impl From<Reply> for Wire {
    fn from(r: Reply) -> Wire {
        let mut w = Wire { ok: true, error: None, services: None, drained: None, undrained: None, fleet: None };
        match r {
            Reply::Status(s) => {
                w.services = Some(s.services);
                w.fleet = s.fleet;
            }
            Reply::Drained(n) => w.drained = Some(n),
            Reply::Undrained(n) => w.undrained = Some(n),
            Reply::Done => {}
            Reply::Error(e) => {
                w.ok = false;
                w.error = Some(e);
            }
        }
        w
    }
}

/// The status report: every configured service, in config order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// One entry per service.
    pub services: Vec<ServiceStatus>,
    /// The fleet store, when a fleet is configured (`"fleet"` beside
    /// `"services"`; absent without a fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStatus>,
}

/// The fleet store as this site sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// Reachable, with a live lease: guarded withdraws ask the other sites.
    pub connected: bool,
    /// Why (the client's last word); while not connected, every service
    /// decides locally.
    pub detail: String,
}

/// A guarded service's fleet guard, in a status report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GuardStatus {
    /// Other sites that must announce for a health withdraw.
    pub min_sites: u32,
    /// The route is announced only because the guard holds it.
    pub held: bool,
    /// A question to the store is outstanding (the route stays announced
    /// until it is answered, at most the fleet timeout).
    pub asking: bool,
    /// Other sites announcing, from the store's last answer (`null` before one).
    pub others_announcing: Option<u32>,
    /// Sites with live entries, this one included, from the last answer.
    pub sites: Option<u32>,
    /// Why the last withdraw was decided locally (store down, timeout), or `null`.
    pub local: Option<String>,
}

/// One service in a status report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// The asserted state (`UP`, `DRAINED`, …; `INIT` before the first).
    pub state: String,
    /// The state the checks call for (differs while held, e.g. drained).
    pub wanted: String,
    /// Seconds since the state was entered.
    pub seconds_in_state: f64,
    /// Why the asserted state was entered.
    pub reason: String,
    /// The prefixes, as written in announcements.
    pub prefixes: Vec<String>,
    /// Each check.
    pub checks: Vec<CheckStatus>,
    /// Flap-damping penalty now.
    pub flap_penalty: f64,
    /// Whether dampening holds the routes withdrawn.
    pub suppressed: bool,
    /// The operator's drain, or `null`.
    pub drained: Option<DrainStatus>,
    /// The last line sent for each prefix.
    pub last_lines: Vec<String>,
    /// The fleet guard of a guarded service; absent when the service is
    /// not guarded or no fleet is configured (so that statuses without a
    /// fleet are as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardStatus>,
    /// Each watch (issue 13) and its state; absent without watches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watches: Vec<WatchStatus>,
}

/// One watch of a service: a pid file, a listener, a unit, a maintenance file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchStatus {
    /// What is watched (`pid-file /run/nsd.pid`, `listen 127.0.0.1:53`).
    pub watch: String,
    /// `armed (pid 1234)`, `pending: no such file (retry every 5s)`, …
    pub state: String,
}

/// One check of a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The check as shown in logs (`tcp 127.0.0.1:80`).
    pub check: String,
    /// Its state machine's state (`UP`, `RISING(1/3)`, …).
    pub state: String,
    /// Its rise threshold.
    pub rise: u32,
    /// Its fall threshold.
    pub fall: u32,
    /// Its last result, or `null` before the first.
    pub last: Option<LastResult>,
}

/// The last result of a check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastResult {
    /// `healthy`, `degraded` or `down`.
    pub health: String,
    /// The short reason (`connected`, `refused`, `http-status 503`).
    pub reason: String,
    /// More detail, possibly empty.
    pub detail: String,
    /// Who answered (a DNS server's NSID: `nsid=site-a`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// How long the probe took, in seconds.
    pub seconds: f64,
}

/// An operator's drain, in a status report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainStatus {
    /// Who.
    pub by: String,
    /// Why (possibly empty).
    pub reason: String,
    /// Seconds since it started.
    pub seconds_ago: f64,
    /// Seconds until it ends, or `null` for a drain without end.
    pub seconds_left: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_requests_strictly() {
        let r: Request = serde_json::from_str(r#"{"command":"drain","service":"dns","for":"3s"}"#).unwrap();
        assert!(matches!(r, Request::Drain { ref service, ref duration, .. }
            if service.as_deref() == Some("dns") && duration.as_deref() == Some("3s")));
        assert!(serde_json::from_str::<Request>(r#"{"command":"reboot"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"command":"status","x":1}"#).is_err());
        assert_eq!(serde_json::from_str::<Request>(r#"{"command":"status"}"#).unwrap(), Request::Status {});
        // What older clients sent: nulls for absent values, and a `by` is ignored.
        let r: Request =
            serde_json::from_str(r#"{"command":"drain","service":null,"all":true,"for":null,"reason":null}"#).unwrap();
        assert!(matches!(r, Request::Drain { all: true, service: None, duration: None, .. }));
    }

    #[test]
    fn requests_encode_as_documented() {
        let drain = Request::Drain {
            service: Some("resolver".into()),
            all: false,
            duration: Some("30m".into()),
            reason: Some("kernel upgrade".into()),
            force: false,
            by: "root".into(),
        };
        assert_eq!(
            serde_json::to_value(&drain).unwrap(),
            json!({"command": "drain", "service": "resolver", "all": false, "for": "30m", "reason": "kernel upgrade"})
        );
        assert_eq!(serde_json::to_value(Request::Status {}).unwrap(), json!({"command": "status"}));
        let recheck = Request::Recheck { service: "x".into() };
        assert_eq!(serde_json::to_value(&recheck).unwrap(), json!({"command": "recheck", "service": "x"}));
    }

    #[test]
    fn replies_encode_as_documented_and_round_trip() {
        let status = Status {
            services: vec![ServiceStatus {
                name: "resolver".into(),
                state: "UP".into(),
                checks: vec![CheckStatus { check: "tcp".into(), rise: 3, fall: 2, ..Default::default() }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let cases = [
            (Reply::Done, json!({"ok": true})),
            (Reply::error("no service \"x\""), json!({"ok": false, "error": "no service \"x\""})),
            (Reply::Drained(vec!["a".into()]), json!({"ok": true, "drained": ["a"]})),
            (Reply::Undrained(vec![]), json!({"ok": true, "undrained": []})),
        ];
        for (reply, wire) in cases.into_iter().chain([(Reply::Status(status.clone()), serde_json::Value::Null)]) {
            let line = reply.to_line();
            assert!(!line.contains('\n'));
            if !wire.is_null() {
                assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), wire);
            }
            assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), reply);
        }
        let v: serde_json::Value = serde_json::from_str(&Reply::Status(status).to_line()).unwrap();
        assert_eq!(v["ok"], true);
        let s = &v["services"][0];
        assert!(s["drained"].is_null() && s.get("drained").is_some(), "absent values are null: {s}");
        assert!(s["checks"][0]["last"].is_null() && s["checks"][0].get("last").is_some());
        for key in ["wanted", "seconds_in_state", "reason", "prefixes", "flap_penalty", "suppressed", "last_lines"] {
            assert!(s.get(key).is_some(), "{key}");
        }
    }
}
