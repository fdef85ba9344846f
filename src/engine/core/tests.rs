//! Properties of the core over random configs, reloads and shutdowns.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::exabgp::AckMode;

const PREFIXES: usize = 6;

/// A config: for each prefix the service owning it (or none), and each
/// service's health.
fn services(owner: &[usize], healthy: &[bool], med: u32) -> Vec<Service> {
    let mut text = String::from("{\"services\": [");
    let mut first = true;
    for (s, up) in healthy.iter().enumerate() {
        let prefixes: Vec<String> =
            (0..PREFIXES).filter(|p| owner[*p] == s).map(|p| format!("\"198.51.100.{}/32\"", p + 1)).collect();
        if prefixes.is_empty() {
            continue;
        }
        if !first {
            text.push(',');
        }
        first = false;
        // The health is in the check's port, so a change of health is a
        // change of probing (the service starts over) and the driver
        // knows each service's result from its config.
        let port = if *up { 80 } else { 81 };
        text.push_str(&format!(
            "{{\"name\": \"s{s}\", \"prefixes\": [{}], \"checks\": [{{\"type\": \"tcp\", \"address\": \
             \"127.0.0.1:{port}\"}}], \"interval\": \"1s\", \"timeout\": \"500ms\", \"rise\": 1, \"fall\": 1, \
             \"dampening\": false, \"attributes\": {{\"med\": {med}}}}}",
            prefixes.join(", ")
        ));
    }
    text.push_str("]}");
    crate::model::config::load(&text).unwrap_or_else(|e| panic!("{text}: {e:?}")).services
}

/// What the core wrote on "stdout" (shared by the core's test modules).
#[derive(Clone, Default)]
pub(super) struct Out(pub(super) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Out {
    /// The lines written since the last call, once the writer's sink
    /// thread wrote what it may.
    fn take(&self, core: &mut Core<Out>) -> Vec<String> {
        assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
        let mut buf = self.0.lock().unwrap();
        let lines = String::from_utf8_lossy(&buf).lines().map(String::from).collect();
        buf.clear();
        lines
    }
}

/// Runs the core for `secs` seconds from `*t`, answering every probe at
/// once (port 80 healthy, anything else down) and acking each line with
/// `ack` (or not at all).
fn drive(core: &mut Core<Out>, t0: Instant, t: &mut Duration, secs: u64, ack: bool) {
    let end = *t + Duration::from_secs(secs);
    while *t < end {
        let now = t0 + *t;
        let mut fx = Effects::default();
        core.tick(now, &mut fx).unwrap();
        for job in std::mem::take(&mut fx.rounds) {
            core.round_checked(job.round, None, now, &mut fx).unwrap();
            for p in job.probes {
                let healthy = p.probe().check.to_string().ends_with(":80");
                let outcome = if healthy { Outcome::healthy("ok") } else { Outcome::down("refused") };
                core.probe_done(p.round, p.check, outcome, Duration::ZERO, now, &mut fx).unwrap();
            }
        }
        if ack {
            assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
            while core.writer().in_flight() > 0 {
                // Read after it was written: the sink thread's clock is the real one.
                let read_at = Instant::now().max(now);
                core.stdin(Stamped { incoming: Incoming::Done, read_at }, now, &mut fx).unwrap();
                assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)));
            }
        }
        *t += Duration::from_millis(100);
    }
}

fn prefix_of(line: &str) -> String {
    line.split_whitespace().nth(2).unwrap_or_default().to_string()
}

fn assignment() -> impl Strategy<Value = (Vec<usize>, Vec<bool>)> {
    (prop::collection::vec(0usize..5, PREFIXES), prop::collection::vec(any::<bool>(), 4))
}

proptest! {
    /// For any reload, no prefix whose new owner is UP is withdrawn, and
    /// afterwards every prefix is as its owner wants it.
    #[test]
    fn a_reload_never_withdraws_a_prefix_whose_owner_is_up(
        (owner1, healthy1) in assignment(),
        (owner2, healthy2) in assignment(),
        med in prop::sample::select(vec![100u32, 200]),
    ) {
        let t0 = Instant::now();
        let out = Out::default();
        let mut core = Core::new(Writer::new(out.clone(), AckMode::NoWait).unwrap(), services(&owner1, &healthy1, 100), t0);
        let mut t = Duration::ZERO;
        drive(&mut core, t0, &mut t, 3, false);
        let mut last: HashMap<String, String> = HashMap::new();
        for l in out.take(&mut core) {
            last.insert(prefix_of(&l), l);
        }
        let mut fx = Effects::default();
        core.reload(services(&owner2, &healthy2, med), t0 + t, &mut fx).unwrap();
        let during = out.take(&mut core);
        for l in &during {
            let p = prefix_of(l);
            let n: usize = p.trim_start_matches("198.51.100.").trim_end_matches("/32").parse().unwrap();
            let o = owner2[n - 1];
            // The new owner keeps its state (same probing) only when
            // its health did not change; then an UP owner must not
            // see its prefix withdrawn.
            let kept_up = o < 4 && healthy2[o] && o < healthy1.len() && healthy1[o]
                && (0..PREFIXES).any(|q| owner1[q] == o);
            prop_assert!(!(l.starts_with("withdraw") && kept_up), "{l} withdrawn while s{o} is UP: {during:?}");
        }
        for l in during {
            last.insert(prefix_of(&l), l);
        }
        drive(&mut core, t0, &mut t, 3, false);
        for l in out.take(&mut core) {
            last.insert(prefix_of(&l), l);
        }
        for (p, &o) in owner2.iter().enumerate() {
            let key = format!("198.51.100.{}/32", p + 1);
            let wanted_up = o < 4 && healthy2[o];
            let l = last.get(&key).cloned().unwrap_or_default();
            if wanted_up {
                prop_assert!(l.starts_with("announce"), "{key} owned by UP s{o}: last line {l:?}");
            } else if !l.is_empty() {
                prop_assert!(l.starts_with("withdraw"), "{key} not wanted: last line {l:?}");
            }
        }
    }

    /// For any shutdown, every route that may be announced is withdrawn:
    /// each one last written announced, each route of a service never
    /// told, and each one with a line still queued behind unacked ones.
    #[test]
    fn a_shutdown_withdraws_every_route_that_may_be_announced(
        (owner, healthy) in assignment(),
        (owner2, healthy2) in assignment(),
        reload in any::<bool>(),
        ack in any::<bool>(),
        secs in 0u64..3,
    ) {
        let t0 = Instant::now();
        let out = Out::default();
        let mut core = Core::new(Writer::new(out.clone(), AckMode::Wait(Duration::from_secs(60))).unwrap(), services(&owner, &healthy, 100), t0);
        let mut t = Duration::ZERO;
        drive(&mut core, t0, &mut t, secs, ack);
        let mut configured: HashSet<String> = (0..PREFIXES).filter(|p| owner[*p] < 4).map(|p| format!("198.51.100.{}/32", p + 1)).collect();
        if reload {
            let mut fx = Effects::default();
            core.reload(services(&owner2, &healthy2, 100), t0 + t, &mut fx).unwrap();
            drive(&mut core, t0, &mut t, 1, ack);
            configured = (0..PREFIXES).filter(|p| owner2[*p] < 4).map(|p| format!("198.51.100.{}/32", p + 1)).collect();
        }
        let mut last: HashMap<String, String> = HashMap::new();
        for l in out.take(&mut core) {
            last.insert(prefix_of(&l), l);
        }
        let finals: HashSet<String> = core.final_withdraws().iter().map(|l| prefix_of(l)).collect();
        for (p, l) in &last {
            if l.starts_with("announce") {
                prop_assert!(finals.contains(p), "{p} last announced, not withdrawn at shutdown");
            }
        }
        for p in configured {
            if !last.contains_key(&p) {
                prop_assert!(finals.contains(&p), "{p} never told, not withdrawn at shutdown");
            }
        }
    }
}
