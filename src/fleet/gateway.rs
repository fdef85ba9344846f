//! etcd's v3 JSON gateway over blocking HTTP (ureq): one call is one POST
//! of a JSON body to `/v3/...` on one of the endpoints, with keys and values
//! in base64 and 64-bit integers as JSON strings (grpc-gateway's mapping).
//!
//! Why the gateway and not a gRPC client: etcd-client (tonic) needs an
//! async runtime (tokio) and HTTP/2; the gateway is documented, served on
//! the client port under `/v3/` since etcd 3.4 (Debian 12 ships 3.4.23), and
//! reached through the HTTP stack exaprobe already has (ureq on rustls), with
//! no thread of its own. The guard's range compare (a `compare` with a
//! `range_end`) needs etcd 3.3 or later.
//!
//! Endpoints are tried in order from the last one that answered, each with
//! a share of the call's budget, so that one stopped (or SIGSTOPped) member
//! costs a fraction of the timeout, not all of it. Every response is read up
//! to [`RESPONSE_LIMIT`].

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::model::fleet::{FleetAuth, FleetSettings, FleetTls};

/// The largest response read from etcd.
pub(crate) const RESPONSE_LIMIT: u64 = 4 * 1024 * 1024;

/// The largest PEM file (CA, certificate, key) read for TLS.
const PEM_LIMIT: u64 = 1024 * 1024;

/// The shortest share of a budget one endpoint gets (when the budget is
/// longer), so that a slow but healthy member still has time to answer.
const MIN_ATTEMPT: Duration = Duration::from_millis(150);

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GwError {
    /// No endpoint answered in time (connection refused, timeout, bad
    /// HTTP); the last endpoint's error.
    Unreachable(String),
    /// etcd answered with an error (`{"error":…, "code":…}`).
    Etcd {
        /// The gRPC status code.
        code: i64,
        /// etcd's message.
        message: String,
    },
}

impl GwError {
    /// etcd says the lease does not exist (expired or revoked).
    pub(crate) fn lease_not_found(&self) -> bool {
        matches!(self, GwError::Etcd { message, .. } if message.contains("lease not found"))
    }

    /// An error another member may not have (no leader, a timeout inside
    /// etcd, a member not ready): the next endpoint is tried.
    pub(crate) fn transient(&self) -> bool {
        match self {
            GwError::Unreachable(_) => true,
            // UNAVAILABLE, DEADLINE_EXCEEDED, UNKNOWN (etcd's "request timed
            // out", "leader changed"), ABORTED.
            GwError::Etcd { code, .. } => matches!(code, 14 | 4 | 2 | 10),
        }
    }

    /// etcd refuses the token (expired, or etcd restarted).
    pub(crate) fn auth_expired(&self) -> bool {
        matches!(self, GwError::Etcd { code: 16, .. })
            || matches!(self, GwError::Etcd { message, .. } if message.contains("invalid auth token"))
    }
}

impl std::fmt::Display for GwError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GwError::Unreachable(why) => write!(f, "etcd unreachable: {why}"),
            GwError::Etcd { message, .. } => write!(f, "etcd: {message}"),
        }
    }
}

/// A client of the gateway, shared by the fleet client's threads.
pub(crate) struct Gateway {
    endpoints: Vec<String>,
    agent: ureq::Agent,
    /// The endpoint that answered last (tried first).
    current: AtomicUsize,
    auth: Option<FleetAuth>,
    token: Mutex<Option<String>>,
}

/// The base64 of bytes, as the gateway wants keys and values.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes a base64 field (absent: empty).
pub(crate) fn unb64(v: &Value) -> Vec<u8> {
    v.as_str().and_then(|s| B64.decode(s).ok()).unwrap_or_default()
}

/// A 64-bit integer field: grpc-gateway writes them as strings, and leaves
/// out zeros.
pub(crate) fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The end of the range of every key starting with `prefix` (etcd's
/// `range_end`): the prefix with its last byte incremented.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

/// The TLS settings for ureq: the CA (or the system's Mozilla roots) and
/// the client certificate.
fn tls_config(tls: Option<&FleetTls>) -> Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder();
    let Some(tls) = tls else { return Ok(builder.build()) };
    if let Some(ca) = &tls.ca {
        let certs = read_certs(ca)?;
        builder = builder.root_certs(RootCerts::Specific(Arc::new(certs)));
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = read_key(key)?;
            builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        (None, None) => {}
        _ => return Err("fleet TLS: a client certificate needs both cert and key".into()),
    }
    Ok(builder.build())
}

fn read_pem(path: &std::path::Path) -> Result<Vec<PemItem<'static>>, String> {
    let pem = crate::probe::read_small_file(path, PEM_LIMIT)?;
    let mut items = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        items.push(item.map_err(|e| format!("{}: {e}", path.display()))?);
    }
    Ok(items)
}

fn read_certs(path: &std::path::Path) -> Result<Vec<Certificate<'static>>, String> {
    let certs: Vec<_> = read_pem(path)?
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &std::path::Path) -> Result<PrivateKey<'static>, String> {
    read_pem(path)?
        .into_iter()
        .find_map(|i| match i {
            PemItem::PrivateKey(k) => Some(k),
            _ => None,
        })
        .ok_or_else(|| format!("{}: no PEM private key in it", path.display()))
}

impl Gateway {
    /// A client for these settings; fails only on unreadable TLS files.
    pub(crate) fn new(settings: &FleetSettings) -> Result<Gateway, String> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            // Connections to the members are kept: a guarded withdraw then
            // costs one round trip, not a TCP (and TLS) handshake.
            .max_idle_connections(8)
            .max_idle_connections_per_host(2)
            .tls_config(tls_config(settings.tls.as_ref())?)
            .user_agent(concat!("exaprobe/", env!("CARGO_PKG_VERSION")))
            .build();
        let endpoints = settings.endpoints.iter().map(|e| e.trim_end_matches('/').to_string()).collect();
        Ok(Gateway {
            endpoints,
            agent: ureq::Agent::new_with_config(config),
            current: AtomicUsize::new(0),
            auth: settings.auth.clone(),
            token: Mutex::new(None),
        })
    }

    /// The endpoints, from the one to try first.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed) % n;
        (0..self.endpoints.len()).map(move |i| (first + i) % n)
    }

    fn token(&self) -> Option<String> {
        self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// POSTs `body` to `path` (`/v3/kv/range`, …), within `budget`.
    pub(crate) fn call(&self, path: &str, body: &Value, budget: Duration) -> Result<Value, GwError> {
        let deadline = Instant::now() + budget;
        match self.call_once(path, body, deadline) {
            Err(e) if e.auth_expired() && self.auth.is_some() => {
                self.authenticate(deadline)?;
                self.call_once(path, body, deadline)
            }
            r => r,
        }
    }

    /// Gets a token for the user (`/v3/auth/authenticate`).
    fn authenticate(&self, deadline: Instant) -> Result<(), GwError> {
        let Some(auth) = &self.auth else { return Ok(()) };
        let body = json!({"name": auth.user, "password": auth.password});
        let reply = self.call_once("/v3/auth/authenticate", &body, deadline)?;
        let token = reply["token"].as_str().unwrap_or_default().to_string();
        if token.is_empty() {
            return Err(GwError::Etcd { code: 16, message: "authentication returned no token".into() });
        }
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
        Ok(())
    }

    fn call_once(&self, path: &str, body: &Value, deadline: Instant) -> Result<Value, GwError> {
        if self.auth.is_some() && self.token().is_none() && path != "/v3/auth/authenticate" {
            self.authenticate(deadline)?;
        }
        let text = body.to_string();
        let order: Vec<usize> = self.order().collect();
        let mut last = GwError::Unreachable("no endpoint".into());
        for (n, i) in order.iter().copied().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let share = (left / (order.len() - n) as u32).max(MIN_ATTEMPT.min(left));
            match self.post(&self.endpoints[i], path, &text, share) {
                Ok(v) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(e) if e.transient() => last = e,
                Err(e) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        if let GwError::Unreachable(why) = &last
            && Instant::now() >= deadline
        {
            return Err(GwError::Unreachable(format!("no answer within the timeout ({why})")));
        }
        Err(last)
    }

    fn post(&self, endpoint: &str, path: &str, body: &str, timeout: Duration) -> Result<Value, GwError> {
        let url = format!("{endpoint}{path}");
        let mut request = self.agent.post(&url).header("content-type", "application/json");
        if let Some(token) = self.token() {
            request = request.header("authorization", token);
        }
        let unreachable = |e: ureq::Error| GwError::Unreachable(format!("{endpoint}: {e}"));
        let mut response =
            request.config().timeout_global(Some(timeout)).build().send(body.as_bytes()).map_err(unreachable)?;
        let text = response.body_mut().with_config().limit(RESPONSE_LIMIT).read_to_string().map_err(unreachable)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| GwError::Unreachable(format!("{endpoint}: not JSON ({e}), HTTP {}", response.status())))?;
        error_of(&value).map_or(Ok(value), Err)
    }

    /// Opens a watch on `[key, range_end)` from `start_revision` (0: now)
    /// on the endpoint to try first; the stream is read for at most
    /// `rotate`, then the caller opens a new one.
    pub(crate) fn watch(
        &self,
        key: &[u8],
        range_end: &[u8],
        start_revision: i64,
        connect: Duration,
        rotate: Duration,
    ) -> Result<(String, Box<dyn Read + Send>), GwError> {
        if self.auth.is_some() && self.token().is_none() {
            self.authenticate(Instant::now() + connect)?;
        }
        let i = self.order().next().ok_or_else(|| GwError::Unreachable("no endpoint".into()))?;
        let endpoint = &self.endpoints[i];
        let mut create = json!({"key": b64(key), "range_end": b64(range_end)});
        if start_revision > 0 {
            create["start_revision"] = json!(start_revision.to_string());
        }
        let body = json!({"create_request": create}).to_string();
        let mut request = self.agent.post(format!("{endpoint}/v3/watch")).header("content-type", "application/json");
        if let Some(token) = self.token() {
            request = request.header("authorization", token);
        }
        let fail = |e: ureq::Error| {
            // The next watch goes to the next member.
            self.current.store((i + 1) % self.endpoints.len().max(1), Ordering::Relaxed);
            GwError::Unreachable(format!("{endpoint}: {e}"))
        };
        let response = request
            .config()
            .timeout_global(None)
            .timeout_connect(Some(connect))
            .timeout_send_request(Some(connect))
            .timeout_recv_response(Some(connect))
            .timeout_recv_body(Some(rotate))
            .build()
            .send(body.as_bytes())
            .map_err(fail)?;
        Ok((endpoint.clone(), Box::new(response.into_body().into_reader())))
    }

    /// Drops the token (etcd refused it): the next call authenticates.
    pub(crate) fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Rotates the endpoint to try first (after a watch broke).
    pub(crate) fn skip(&self, endpoint: &str) {
        if let Some(i) = self.endpoints.iter().position(|e| e == endpoint) {
            let _ =
                self.current.compare_exchange(i, (i + 1) % self.endpoints.len(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

/// The error etcd put in a reply, if any: `{"error":…, "code":…}` (etcd
/// 3.4's gateway), or a non-zero `code` with a `message` and no `header`
/// (newer grpc-gateway versions drop `error`; a good reply always has a
/// header).
pub(crate) fn error_of(value: &Value) -> Option<GwError> {
    let code = int(&value["code"]);
    let e = match value.get("error") {
        Some(e) => e,
        None if code != 0 && value.get("header").is_none() => &Value::Null,
        None => return None,
    };
    let message = value["message"].as_str().or(e.as_str()).unwrap_or("unknown error").to_string();
    Some(GwError::Etcd { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/exaprobe/"), b"/exaprobe0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn integers_as_strings_or_numbers() {
        assert_eq!(int(&json!("42")), 42);
        assert_eq!(int(&json!(7)), 7);
        assert_eq!(int(&Value::Null), 0);
        assert_eq!(int(&json!("x")), 0);
    }

    #[test]
    fn errors() {
        let e = error_of(
            &json!({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}),
        );
        assert!(e.as_ref().is_some_and(GwError::lease_not_found));
        assert!(!e.as_ref().is_some_and(GwError::transient));
        assert!(error_of(&json!({"header":{}})).is_none());
        // Newer grpc-gateway: no "error", a code and a message.
        let e = error_of(&json!({"code":14,"message":"etcdserver: no leader","details":[]}));
        assert!(matches!(&e, Some(GwError::Etcd { code: 14, message }) if message == "etcdserver: no leader"), "{e:?}");
        assert!(e.as_ref().is_some_and(GwError::transient));
        // A good reply that happens to carry a code field is not an error.
        assert!(error_of(&json!({"header":{"revision":"3"},"code":0})).is_none());
        assert!(error_of(&json!({"header":{"revision":"3"}, "code": 5})).is_none());
        assert_eq!(unb64(&json!(b64(b"/x/y"))), b"/x/y".to_vec());
    }
}
