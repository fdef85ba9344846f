//! The fleet part of the one validator: the process-wide [`RawFleet`] into
//! [`FleetSettings`], and a service's own setting into its
//! [`ServiceGuard`], every problem at its [`Origin`] (the JSON path under
//! `fleet`, or the `--fleet-*` flag).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::V;
use crate::model::duration;
use crate::model::fleet::{FleetAuth, FleetSettings, FleetTls, ServiceGuard};
use crate::model::origin::{At, Field, Problem, Severity};
use crate::model::raw::{RawFleet, RawServiceFleet};

/// Most etcd endpoints.
pub(super) const MAX_ENDPOINTS: usize = 16;
/// Highest `min_sites`.
pub(super) const MAX_MIN_SITES: u32 = 1000;
/// Shortest lease: etcd itself refuses leases much shorter than its election
/// timeout, and a lease that short expires on a busy host.
pub(super) const MIN_TTL: Duration = Duration::from_secs(2);
/// Longest lease: a dead site is counted at most this long.
pub(super) const MAX_TTL: Duration = Duration::from_secs(3600);
/// Longest store timeout (the delay a slow store may add to a withdraw; a
/// drain that asks is answered within it, and control replies wait 5 s).
pub(super) const MAX_TIMEOUT: Duration = Duration::from_secs(4);
/// Largest password file.
const MAX_PASSWORD: u64 = 4096;
/// Longest key prefix.
const MAX_PREFIX: usize = 128;

/// Validates the fleet settings. The settings come back only when there is
/// no error; the problems always do.
pub fn fleet(raw: &RawFleet) -> (Option<FleetSettings>, Vec<Problem>) {
    let mut v = V::default();
    let s = v.fleet(raw);
    let ok = !v.problems.iter().any(|p| p.severity == Severity::Error);
    (s.filter(|_| ok), v.problems)
}

/// A fleet segment name (site): `[A-Za-z0-9._-]{1,64}`.
fn valid_site(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok { Ok(s.to_string()) } else { Err(format!("{s:?} is not a site name (1-64 of A-Z a-z 0-9 . _ -)")) }
}

/// An etcd client URL: `http://HOST:PORT` or `https://HOST:PORT`, no path.
fn valid_endpoint(s: &str) -> Result<String, String> {
    let rest = s.strip_prefix("http://").or_else(|| s.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(format!("{s:?} is not an etcd URL (http://HOST:PORT or https://HOST:PORT)"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, p),
        _ => return Err(format!("{s:?}: give the port (etcd's client port is 2379)")),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b));
    if !host_ok || authority.contains('/') || authority.contains('@') {
        return Err(format!("{s:?} is not an etcd URL (http://HOST:PORT, no path or user)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{}{authority}", &s[..s.len() - rest.len()])),
        _ => Err(format!("{s:?}: {port:?} is not a port")),
    }
}

impl V {
    fn fleet(&mut self, raw: &RawFleet) -> Option<FleetSettings> {
        let before = self.errors();
        let mut endpoints = Vec::new();
        for e in &raw.etcd.value {
            endpoints.extend(self.take(&e.origin, valid_endpoint(&e.value)));
        }
        if raw.etcd.value.is_empty() {
            self.err(&raw.etcd.origin, "missing: give the etcd client URLs (http://127.0.0.1:2379, …)");
        } else if raw.etcd.value.len() > MAX_ENDPOINTS {
            self.err(&raw.etcd.origin, format!("{} URLs: at most {MAX_ENDPOINTS}", raw.etcd.value.len()));
        }
        let site = match &raw.site.value {
            Some(s) => self.take(&raw.site.origin, valid_site(s)),
            None => {
                self.err(&raw.site.origin, "missing: every site of a fleet needs its own name");
                None
            }
        };
        let min_sites = self.min_sites(&raw.min_sites, 1);
        let ttl = self.bounded(&raw.ttl, Duration::from_secs(10), MIN_TTL, MAX_TTL);
        let timeout = self.bounded(&raw.timeout, Duration::from_millis(500), Duration::from_millis(1), MAX_TIMEOUT);
        // The client keeps the lease alive every ttl/3 and checks between
        // its calls; a call may take the whole timeout, so a longer one
        // could let the lease expire while a withdraw is asked.
        if let (Some(t), Some(l)) = (timeout, ttl)
            && t > l / 3
        {
            self.err(
                &raw.timeout.origin,
                format!(
                    "{} is longer than a third of the ttl ({}): the lease is kept alive every ttl/3 between store \
                     calls, and a call that takes the whole timeout must not let it expire",
                    duration::show(t),
                    duration::show(l)
                ),
            );
        }
        let prefix = match &raw.prefix.value {
            None => Some("/exaprobe/".to_string()),
            Some(p) => {
                let ok = p.starts_with('/')
                    && p.ends_with('/')
                    && p.len() <= MAX_PREFIX
                    && p.bytes().all(|b| b.is_ascii_graphic())
                    && !p.contains("//");
                if !ok {
                    self.err(
                        &raw.prefix.origin,
                        format!("{p:?} is not a key prefix (starts and ends with /, at most {MAX_PREFIX} printable characters, no //)"),
                    );
                }
                ok.then(|| p.clone())
            }
        };
        let tls = raw.tls.as_ref().map(|t| {
            let file =
                |v: &mut V, f: &Field<PathBuf>| f.value.as_ref().map(|p| v.path(&At::new(p.clone(), f.origin.clone())));
            let (ca, cert, key) = (file(self, &t.ca), file(self, &t.cert), file(self, &t.key));
            if cert.is_some() != key.is_some() {
                let at = if cert.is_some() { &t.key.origin } else { &t.cert.origin };
                self.err(at, "a client certificate needs both cert and key");
            }
            FleetTls { ca, cert, key }
        });
        if tls.is_some() && !raw.etcd.value.iter().any(|e| e.value.starts_with("https://")) {
            self.warn(&raw.etcd.origin, "tls is set but no URL is https://: it is not used");
        }
        let auth = raw.auth.as_ref().and_then(|a| {
            let user = match &a.user.value {
                Some(u) if !u.is_empty() && u.len() <= 128 && !u.chars().any(char::is_control) => Some(u.clone()),
                Some(u) => {
                    self.err(&a.user.origin, format!("{u:?} is not an etcd user name"));
                    None
                }
                None => {
                    self.err(&a.user.origin, "missing: authentication needs a user");
                    None
                }
            };
            let password = match &a.password_file.value {
                Some(p) => self.take(&a.password_file.origin, read_password(p)),
                None => {
                    self.err(
                        &a.password_file.origin,
                        "missing: the password is read from a file, never from the config",
                    );
                    None
                }
            };
            Some(FleetAuth { user: user?, password: password? })
        });
        if self.errors() != before {
            return None;
        }
        Some(FleetSettings {
            endpoints,
            site: site?,
            prefix: prefix?,
            ttl: ttl?,
            timeout: timeout?,
            min_sites: min_sites?,
            tls,
            auth,
        })
    }

    fn min_sites(&mut self, f: &Field<u32>, default: u32) -> Option<u32> {
        match f.value {
            None => Some(default),
            Some(0) => {
                self.err(&f.origin, "must be at least 1 (to decide per host, leave the service out of the fleet: \"fleet\": false in a config)");
                None
            }
            Some(n) if n > MAX_MIN_SITES => {
                self.err(&f.origin, format!("{n} is more than {MAX_MIN_SITES}"));
                None
            }
            Some(n) => Some(n),
        }
    }

    fn bounded(&mut self, f: &Field<String>, default: Duration, min: Duration, max: Duration) -> Option<Duration> {
        let d = self.duration(f, default)?;
        if d < min || d > max {
            self.err(
                &f.origin,
                format!("{} is not between {} and {}", duration::show(d), duration::show(min), duration::show(max)),
            );
            return None;
        }
        Some(d)
    }

    /// A service's guard: its own setting, else the fleet's default; none
    /// without a fleet.
    pub(super) fn guard(
        &mut self,
        f: &Field<RawServiceFleet>,
        fleet: Option<&FleetSettings>,
    ) -> Option<Option<ServiceGuard>> {
        match (&f.value, fleet) {
            (Some(RawServiceFleet::Off), _) | (None, None) => Some(None),
            (Some(RawServiceFleet::On { min_sites }), None) => {
                let origin = if min_sites.value.is_some() { &min_sites.origin } else { &f.origin };
                self.err(origin, "there is no fleet: configure the top-level \"fleet\" (etcd, site) first");
                None
            }
            (Some(RawServiceFleet::On { min_sites }), Some(fl)) => {
                self.min_sites(min_sites, fl.min_sites).map(|min_sites| Some(ServiceGuard { min_sites }))
            }
            (None, Some(fl)) => Some(Some(ServiceGuard { min_sites: fl.min_sites })),
        }
    }
}

/// The password in `path`: its first line, without the line end.
fn read_password(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let show = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {show}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_PASSWORD + 1).read_to_string(&mut text).map_err(|e| format!("cannot read {show}: {e}"))?;
    if text.len() as u64 > MAX_PASSWORD {
        return Err(format!("{show} is longer than {MAX_PASSWORD} bytes: not a password file"));
    }
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(format!("{show}: the password (its first line) is empty"));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_urls_with_a_port() {
        assert_eq!(valid_endpoint("http://127.0.0.1:2379/").unwrap(), "http://127.0.0.1:2379");
        assert_eq!(valid_endpoint("https://etcd.example:2379").unwrap(), "https://etcd.example:2379");
        assert_eq!(valid_endpoint("http://[::1]:2379").unwrap(), "http://[::1]:2379");
        for bad in ["127.0.0.1:2379", "http://127.0.0.1", "http://h:0", "http://h:2379/v3", "http://u@h:1", "ftp://h:1"]
        {
            assert!(valid_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_timeout_is_at_most_a_third_of_the_ttl() {
        let cfg = |ttl: &str, timeout: &str| {
            format!(
                r#"{{"fleet": {{"etcd": ["http://127.0.0.1:2379"], "site": "a", "ttl": "{ttl}", "timeout": "{timeout}"}},
                    "services": []}}"#
            )
        };
        assert!(crate::model::config::load(&cfg("3s", "1s")).is_ok());
        let errors = crate::model::config::load(&cfg("2s", "1s")).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.contains("fleet.timeout") && e.contains("a third of the ttl")), "{text:?}");
    }

    #[test]
    fn site_names_are_key_segments() {
        assert!(valid_site("ams1").is_ok());
        assert!(valid_site("a/b").is_err());
        assert!(valid_site("").is_err());
        assert!(valid_site(&"x".repeat(65)).is_err());
    }
}
