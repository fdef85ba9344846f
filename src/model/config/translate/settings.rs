//! The process-wide and watch settings of the JSON config: the top-level
//! `fleet` (through the one validator, with a placeholder for an invalid
//! one), a service's `watch`, and the top-level `control` and `metrics`.

use super::*;

impl<'t> Cx<'t> {
    /// The top-level `"fleet"`, through the one validator.
    pub(super) fn fleet(&mut self, f: &RawFleet) -> Option<FleetSettings> {
        let o = Origin::Json("fleet".into());
        let path = |k: &str, v: &Option<String>| At::new(v.as_ref().map(PathBuf::from), o.join("tls").join(k));
        let etcd_origin = o.join("etcd");
        let raw = raw::RawFleet {
            origin: o.clone(),
            etcd: At::new(f.etcd.as_ref().map(|e| items(e, &etcd_origin)).unwrap_or_default(), etcd_origin),
            site: At::new(f.site.clone(), o.join("site")),
            min_sites: At::new(f.min_sites, o.join("min_sites")),
            ttl: duration_field(f.ttl.as_ref(), o.join("ttl")),
            timeout: duration_field(f.timeout.as_ref(), o.join("timeout")),
            prefix: At::new(f.prefix.clone(), o.join("prefix")),
            tls: f.tls.as_ref().map(|Obj(t)| raw::RawFleetTls {
                ca: path("ca", &t.ca),
                cert: path("cert", &t.cert),
                key: path("key", &t.key),
            }),
            auth: f.auth.as_ref().map(|Obj(a)| raw::RawFleetAuth {
                user: At::new(a.user.clone(), o.join("auth").join("user")),
                password_file: At::new(
                    a.password_file.as_ref().map(PathBuf::from),
                    o.join("auth").join("password_file"),
                ),
            }),
        };
        let (settings, problems) = validate::fleet(&raw);
        for p in problems {
            match p.severity {
                Severity::Error => self.err(p.origin.to_string(), p.message),
                Severity::Warning => self.warn(&p.origin.to_string(), p.message),
            }
        }
        settings
    }

    /// The watch sources: `watch` is the service's own (a pid file or a
    /// listener belongs to one service), `trust_events` may be a default.
    pub(super) fn watch(&mut self, l: &Layers<'_, 't>) -> raw::RawWatch {
        if l.def.watch.is_some() {
            self.err("defaults.watch", "a watch cannot be a default: each service watches its own process");
        }
        let base = Origin::Json(format!("{}.watch", l.path));
        let (trust, p) = pick!(l, trust_events);
        let mut w = raw::RawWatch::none(&base, Origin::Json(p));
        w.trust_events.value = trust.copied();
        let Some(Obj(j)) = &l.svc.watch else { return w };
        w.pid_file.value = j.pid_file.as_ref().map(PathBuf::from);
        w.pid.value = j.pid;
        w.unit.value.clone_from(&j.unit);
        if let Some(OneOrMany(v, single)) = &j.listen {
            // One string is at `watch.listen`, a list's items at `listen[k]`.
            w.listen.value = if *single {
                v.iter().map(|s| At::new(s.clone(), w.listen.origin.clone())).collect()
            } else {
                items(v, &w.listen.origin)
            };
        }
        w
    }

    pub(super) fn control(&mut self, c: RawControl) -> ControlSettings {
        let mut out = ControlSettings::default();
        if let Some(s) = &c.socket {
            out.socket = self.path("control.socket", s);
            // sun_path holds 108 bytes, the terminating NUL included.
            if s.len() > 107 {
                self.err("control.socket", format!("{} bytes long: a socket path has at most 107", s.len()));
            }
        }
        match c.mode.as_deref() {
            None | Some("0600" | "600") => {}
            Some("0660" | "660") => out.mode = 0o660,
            Some(m) => self.err("control.mode", format!("{m:?} is not \"0600\" (owner only) or \"0660\" (and group)")),
        }
        if let Some(g) = &c.group {
            let ok = !g.is_empty()
                && g.len() <= 32
                && g.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !g.starts_with('-');
            if !ok {
                self.err("control.group", format!("{g:?} is not a group name"));
            }
            if out.mode == 0o600 {
                self.warn("control.group", "has no effect with mode \"0600\": set \"mode\": \"0660\" too");
            }
            out.group = Some(g.clone());
        }
        if let Some(s) = &c.state_file {
            out.state_file = Some(self.path("control.state_file", s));
        }
        out
    }

    pub(super) fn metrics(&mut self, m: RawMetrics) -> MetricsSettings {
        let listen = m.listen.as_deref().and_then(|s| {
            let a =
                self.take("metrics.listen", s.parse::<SocketAddr>().map_err(|_| format!("{s:?} is not IP:PORT")))?;
            if !a.ip().is_loopback() {
                self.warn(
                    "metrics.listen",
                    format!(
                        "{a} is not a loopback address: the metrics (service names, states) are open to the network"
                    ),
                );
            }
            Some(a)
        });
        let textfile = m.textfile.as_deref().map(|s| self.path("metrics.textfile", s));
        MetricsSettings { listen, textfile }
    }
}

/// Stands in for a fleet whose settings are invalid (and reported), so that
/// the services are judged as they would be with a valid one.
pub(super) fn placeholder_fleet() -> FleetSettings {
    FleetSettings {
        endpoints: Vec::new(),
        site: String::new(),
        prefix: "/exaprobe/".into(),
        ttl: std::time::Duration::from_secs(10),
        timeout: std::time::Duration::from_millis(500),
        min_sites: 1,
        tls: None,
        auth: None,
    }
}
