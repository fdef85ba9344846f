//! The text of `exaprobe status`: a [`Status`] for a human.

use std::fmt::Write as _;
use std::time::Duration;

use super::proto::Status;

/// Renders a status report for a human, one block per service.
pub fn render_status(status: &Status) -> String {
    let mut out = String::new();
    if let Some(f) = &status.fleet {
        super::render_fleet::store(&mut out, f);
    }
    for s in &status.services {
        let secs = if s.seconds_in_state.is_finite() { s.seconds_in_state.max(0.0) } else { 0.0 };
        let shown = crate::model::duration::show(Duration::from_secs(secs as u64));
        let _ = writeln!(out, "{}  {}  for {shown}", s.name, s.state);
        let _ = writeln!(out, "  reason: {}", s.reason);
        if let Some(g) = &s.guard {
            super::render_fleet::guard(&mut out, g);
        }
        for c in &s.checks {
            let last = match &c.last {
                None => "no result yet".to_string(),
                Some(l) => match &l.identity {
                    None => format!("{} ({}) in {:.1} ms", l.health, l.reason, l.seconds * 1000.0),
                    Some(who) => format!("{} ({}) [{who}] in {:.1} ms", l.health, l.reason, l.seconds * 1000.0),
                },
            };
            let _ = writeln!(out, "  check {}: {} (rise {}, fall {}), last {last}", c.check, c.state, c.rise, c.fall);
        }
        if s.flap_penalty > 0.0 || s.suppressed {
            let _ =
                writeln!(out, "  flap penalty {:.0}{}", s.flap_penalty, if s.suppressed { ", SUPPRESSED" } else { "" });
        }
        if let Some(d) = &s.drained {
            let left = d.seconds_left.map_or("until undrained".to_string(), |l| format!("{l:.0}s left"));
            let reason = if d.reason.is_empty() { "no reason given" } else { &d.reason };
            let _ = writeln!(out, "  drained by {} ({reason}), {left}", d.by);
        }
        for w in &s.watches {
            let _ = writeln!(out, "  watch {}: {}", w.watch, w.state);
        }
        for line in &s.last_lines {
            let _ = writeln!(out, "  sent: {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::control::proto::{CheckStatus, DrainStatus, LastResult, ServiceStatus, WatchStatus};

    #[test]
    fn renders_every_part() {
        let status = Status {
            services: vec![ServiceStatus {
                name: "web".into(),
                state: "DRAINED".into(),
                wanted: "UP".into(),
                seconds_in_state: 90.0,
                reason: "drained by the operator".into(),
                prefixes: vec!["198.51.100.1/32".into()],
                checks: vec![
                    CheckStatus {
                        check: "tcp 127.0.0.1:80".into(),
                        state: "UP".into(),
                        rise: 3,
                        fall: 2,
                        last: Some(LastResult {
                            health: "healthy".into(),
                            reason: "connected".into(),
                            detail: String::new(),
                            identity: Some("nsid=ns1.site-a".into()),
                            seconds: 0.0003,
                        }),
                    },
                    CheckStatus { check: "cmd".into(), state: "INIT".into(), rise: 1, fall: 1, last: None },
                ],
                flap_penalty: 1200.4,
                suppressed: true,
                drained: Some(DrainStatus {
                    by: "root".into(),
                    reason: String::new(),
                    seconds_ago: 1.0,
                    seconds_left: None,
                }),
                last_lines: vec!["withdraw route 198.51.100.1/32".into()],
                guard: None,
                watches: vec![WatchStatus { watch: "pid-file /run/web.pid".into(), state: "armed (pid 42)".into() }],
            }],
            fleet: None,
        };
        assert_eq!(
            render_status(&status),
            "web  DRAINED  for 90s\n  reason: drained by the operator\n  check tcp 127.0.0.1:80: UP (rise 3, fall 2), \
             last healthy (connected) [nsid=ns1.site-a] in 0.3 ms\n  check cmd: INIT (rise 1, fall 1), last no result yet\n  flap \
             penalty 1200, SUPPRESSED\n  drained by root (no reason given), until undrained\n  watch pid-file /run/web.pid: armed (pid \
             42)\n  sent: withdraw route \
             198.51.100.1/32\n"
        );
    }
}
