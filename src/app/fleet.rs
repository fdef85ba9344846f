//! `exaprobe fleet`: the one screen an operator opens when several sites
//! page at once: every service × site in the fleet guard's store, whether it
//! announces, is held, down or drained, why, and since when.
//!
//! The store comes from the JSON config's `"fleet"` (`--config`) or from
//! `--fleet-*` flags, through the one validator either way.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use crate::cli::fleet::FleetArgs;
use crate::fleet::{self, Entry, Row};
use crate::model::fleet::FleetSettings;
use crate::model::origin::{At, Field, Origin, Severity};
use crate::model::raw::{RawFleet, RawFleetAuth, RawFleetTls};
use crate::util::exit::Exit;

/// What a site does with a service, for the operator.
fn status(entry: &Entry) -> &'static str {
    let state = entry.state.to_ascii_uppercase();
    if entry.held {
        "held"
    } else if state.contains("DRAIN") || state.contains("GRACEFUL") {
        if entry.announcing { "draining" } else { "drained" }
    } else if entry.announcing {
        "announcing"
    } else {
        "down"
    }
}

/// The store's settings, from the config or the flags.
fn settings(args: &FleetArgs) -> Result<FleetSettings, Vec<String>> {
    if let Some(path) = &args.config {
        let show = |e: crate::model::config::ConfigError| format!("{}: {e}", path.display());
        let config = crate::model::config::load_file(path).map_err(|e| e.into_iter().map(show).collect::<Vec<_>>())?;
        return config.fleet.ok_or_else(|| vec![format!("{}: no \"fleet\" in it: give the store", path.display())]);
    }
    let flag = |v: Option<String>, f: &'static str| Field::new(v, Origin::Flag(f));
    let path = |v: &Option<std::path::PathBuf>, f: &'static str| Field::new(v.clone(), Origin::Flag(f));
    let raw = RawFleet {
        origin: Origin::Flag("--fleet-etcd"),
        etcd: At::new(
            args.fleet_etcd.iter().map(|u| At::new(u.clone(), Origin::Flag("--fleet-etcd"))).collect(),
            Origin::Flag("--fleet-etcd"),
        ),
        // The view writes nothing: any valid site name does.
        site: flag(Some("view".into()), "--site"),
        min_sites: Field::new(None, Origin::Flag("--min-sites")),
        ttl: flag(None, "--fleet-ttl"),
        timeout: flag(args.fleet_timeout.clone(), "--fleet-timeout"),
        prefix: flag(args.fleet_prefix.clone(), "--fleet-prefix"),
        tls: (args.fleet_ca.is_some() || args.fleet_cert.is_some() || args.fleet_key.is_some()).then(|| RawFleetTls {
            ca: path(&args.fleet_ca, "--fleet-ca"),
            cert: path(&args.fleet_cert, "--fleet-cert"),
            key: path(&args.fleet_key, "--fleet-key"),
        }),
        auth: (args.fleet_user.is_some() || args.fleet_password_file.is_some()).then(|| RawFleetAuth {
            user: flag(args.fleet_user.clone(), "--fleet-user"),
            password_file: path(&args.fleet_password_file, "--fleet-password-file"),
        }),
    };
    let (settings, problems) = crate::model::validate::fleet(&raw);
    for p in problems.iter().filter(|p| p.severity == Severity::Warning) {
        eprintln!("exaprobe fleet: warning: {p}");
    }
    settings.ok_or_else(|| problems.iter().filter(|p| p.severity == Severity::Error).map(ToString::to_string).collect())
}

/// Runs `exaprobe fleet`.
pub(super) fn run(args: &FleetArgs) -> Exit {
    let settings = match settings(args) {
        Ok(s) => s,
        Err(errors) => {
            for e in errors {
                eprintln!("exaprobe fleet: {e}");
            }
            return Exit::Invalid;
        }
    };
    let rows = match fleet::view(&settings) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("exaprobe fleet: {}: {e:#}", settings.endpoints.join(","));
            return Exit::Failure;
        }
    };
    let text = if args.json { json_text(&settings, &rows) } else { table(&settings, &rows) };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Exit::Success,
        Err(_) => Exit::Failure,
    }
}

/// The rows per service.
fn by_service(rows: &[Row]) -> BTreeMap<&str, Vec<&Row>> {
    let mut services: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        services.entry(&r.service).or_default().push(r);
    }
    services
}

/// An age as an operator reads it: `42s`, `3m12s`, `2h5m`, `3d4h`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// Keeps what etcd holds from reaching the terminal as control characters.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

fn table(settings: &FleetSettings, rows: &[Row]) -> String {
    let store = format!("{} (prefix {})", settings.endpoints.join(","), settings.prefix);
    if rows.is_empty() {
        return format!("no site publishes anything in {store}\n");
    }
    let mut lines = vec![["SERVICE", "SITE", "STATUS", "STATE", "AGE", "REASON"].map(String::from)];
    let mut summary = Vec::new();
    for (service, rows) in by_service(rows) {
        let announcing = rows.iter().filter(|r| r.entry.announcing).count();
        let held = rows.iter().filter(|r| r.entry.held).count();
        let held = if held > 0 { format!(", {held} held") } else { String::new() };
        summary.push(format!("{}: {announcing} of {} sites announcing{held}", printable(service), rows.len()));
        for r in rows {
            lines.push([
                printable(&r.service),
                printable(&r.site),
                status(&r.entry).to_string(),
                printable(&r.entry.state),
                age(fleet::age(&r.entry)),
                printable(&r.entry.reason),
            ]);
        }
    }
    let mut widths = [0usize; 6];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (i, (c, w)) in l.iter().zip(widths).enumerate() {
            if i == 5 {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    for s in summary {
        out.push_str(&s);
        out.push('\n');
    }
    out.push_str(&format!("store: {store}\n"));
    out
}

fn json_text(settings: &FleetSettings, rows: &[Row]) -> String {
    let services: Vec<_> = by_service(rows)
        .into_iter()
        .map(|(service, rows)| {
            let sites: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "site": r.site,
                        "status": status(&r.entry),
                        "announcing": r.entry.announcing,
                        "held": r.entry.held,
                        "state": r.entry.state,
                        "since_ms": r.entry.since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
                        "age_s": fleet::age(&r.entry).as_secs(),
                        "reason": r.entry.reason,
                    })
                })
                .collect();
            json!({
                "service": service,
                "announcing": rows.iter().filter(|r| r.entry.announcing).count(),
                "held": rows.iter().filter(|r| r.entry.held).count(),
                "sites": sites,
            })
        })
        .collect();
    let doc = json!({"endpoints": settings.endpoints, "prefix": settings.prefix, "services": services});
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn e(announcing: bool, held: bool, state: &str) -> Entry {
        Entry { announcing, held, state: state.into(), since: SystemTime::now(), reason: String::new() }
    }

    #[test]
    fn statuses() {
        assert_eq!(status(&e(true, false, "UP")), "announcing");
        assert_eq!(status(&e(true, false, "DEGRADED")), "announcing");
        assert_eq!(status(&e(true, true, "HELD")), "held");
        assert_eq!(status(&e(false, false, "DOWN")), "down");
        assert_eq!(status(&e(false, false, "DRAINED")), "drained");
        assert_eq!(status(&e(true, false, "GRACEFUL_SHUTDOWN")), "draining");
        assert_eq!(age(Duration::from_secs(59)), "59s");
        assert_eq!(age(Duration::from_secs(192)), "3m12s");
        assert_eq!(age(Duration::from_secs(7500)), "2h5m");
        assert_eq!(age(Duration::from_secs(3 * 86400 + 4 * 3600)), "3d4h");
        assert_eq!(printable("a\x1b[2Jb"), "a?[2Jb");
    }
}
