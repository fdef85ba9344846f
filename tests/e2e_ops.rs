//! End-to-end tests of the operating features, under a real ExaBGP (4.2.25
//! and 5.0.15) announcing to a real BGP peer (BIRD 2, RIB-only, loopback):
//! the DEGRADED level, a native DNS check, the JSON config with a SIGHUP
//! reload, drains (with expiry, and across a restart) and flap dampening.
//!
//! Like `tests/e2e.rs` (same harness, `tests/e2e_support/mod.rs`), the tests
//! are `#[ignore]`d and run by `scripts/test`:
//!
//! ```text
//! eval "$(scripts/install-deps)"; export EXAPROBE_EXABGP4 EXAPROBE_EXABGP5
//! cargo test --test e2e_ops -- --ignored --test-threads=2
//! ```
//!
//! Every scenario exists once per ExaBGP version, as `<scenario>::exabgp4`
//! and `<scenario>::exabgp5`. They test exaprobe's own features, so with
//! `EXAPROBE_E2E_PROCESS=healthcheck` they are skipped.

#[allow(dead_code)]
#[macro_use]
mod e2e_support;
#[allow(dead_code)]
mod fixtures;

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use domain::base::iana::Rcode;
use e2e_support::{
    DOWN_BOUND, ExaOptions, Flavor, Harness, Listener, SERVICE_PORT, V4_PREFIX, Version, flavor_from_env,
    parse_import_stats, parse_route_stamp, secs,
};
use nix::sys::signal::Signal;
use serde_json::json;

/// BIRD's rendering of the GRACEFUL_SHUTDOWN community (RFC 8326).
const GSHUT: &str = "(65535,0)";

/// How long a client command may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// True (and says so) when the scenario cannot run: these are exaprobe
/// features, which ExaBGP's bundled healthcheck does not have.
fn skip_for_reference(test: &str) -> bool {
    let skip = flavor_from_env() == Flavor::Healthcheck;
    if skip {
        eprintln!("{test}: skipped with EXAPROBE_E2E_PROCESS=healthcheck (an exaprobe feature)");
    }
    skip
}

/// The fast probe timing most scenarios use.
fn fast_timing() -> Vec<&'static str> {
    vec!["--interval", "1", "--fast-interval", "0.5", "--rise", "2", "--fall", "2", "--timeout", "1"]
}

fn has_community(r: &e2e_support::Route, c: &str) -> bool {
    r.community.as_deref().is_some_and(|all| all.split(") (").any(|one| one.trim_matches(['(', ')']) == c))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

e2e! {
    /// 1. DEGRADED: a service with a hard check (`--tcp`), a soft one (`--tcp
    /// 'IP:PORT on-fail=degrade'`) and a monitoring plugin (exit 1 is a
    /// Nagios WARNING). While the soft check fails, or the plugin warns, the
    /// route stays announced with the degraded MED and community; it gets
    /// MED 100 back on recovery; a plugin CRITICAL (exit 2) withdraws it.
    fn degraded_med_and_community(v: Version) {
        if skip_for_reference("degraded_med_and_community") {
            return;
        }
        let mut h = Harness::new("degraded_med_and_community", v);
        h.service_start();
        let hard = h.service_addr();
        let mut soft = Listener::start(SocketAddr::new(IpAddr::V4(h.host_addr(4)), SERVICE_PORT));
        let soft_spec = format!("{} on-fail=degrade", soft.addr());
        let rc = h.file("plugin.rc");
        fs::write(&rc, "0").expect("write the plugin's exit code");
        let script = h.file("plugin.sh");
        fs::write(&script, format!("#!/bin/sh\nexit \"$(cat {})\"\n", rc.display())).expect("write the plugin");
        let plugin = format!("/bin/sh {}", script.display());
        let mut args = vec!["--tcp", &hard, "--tcp", &soft_spec, "--plugin", &plugin];
        args.extend(fast_timing());
        args.extend([
            "--ip", V4_PREFIX, "--withdraw-on-down", "--degraded-metric", "300", "--degraded-community", "65000:666",
        ]);
        h.start_exabgp(&args, ExaOptions::default());
        let (_, r) = h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        assert_eq!(r.community, None, "no community while UP: {r:?}");

        let degraded = |r: &e2e_support::Route| r.med == Some(300) && has_community(r, "65000,666");
        let healthy = |r: &e2e_support::Route| r.med == Some(100) && r.community.is_none();
        // Waits for `want`; the route must stay in BIRD all along (a DEGRADED
        // service is never withdrawn).
        let follow = |h: &mut Harness, what: &str, want: &dyn Fn(&e2e_support::Route) -> bool| {
            h.wait_for(what, secs(20.0), |h| {
                let r = h.route(V4_PREFIX);
                assert!(r.is_some(), "{V4_PREFIX} left BIRD while waiting for {what}");
                r.filter(|r| want(r))
            })
        };

        // The soft TCP check fails.
        let stopped = soft.stop();
        h.note("soft listener stopped");
        let (at, r) = follow(&mut h, "MED 300 + (65000,666) (soft check down)", &degraded);
        h.note(&format!("seen degraded: {r:?}"));
        h.timing("soft check down -> MED 300 + 65000:666", at - stopped);
        assert!(at - stopped <= secs(DOWN_BOUND), "DEGRADED took {:.3} s", (at - stopped).as_secs_f64());
        let started = soft.restart();
        h.note("soft listener back");
        let (at, _) = follow(&mut h, "MED 100 again (soft check back)", &healthy);
        h.timing("soft check back -> MED 100", at - started);

        // The plugin returns a WARNING.
        fs::write(&rc, "1").expect("plugin: exit 1");
        let warned = Instant::now();
        h.note("plugin exits 1 (WARNING)");
        let (at, _) = follow(&mut h, "MED 300 + (65000,666) (plugin WARNING)", &degraded);
        h.timing("plugin WARNING -> MED 300 + 65000:666", at - warned);
        assert!(at - warned <= secs(DOWN_BOUND), "DEGRADED took {:.3} s", (at - warned).as_secs_f64());
        fs::write(&rc, "0").expect("plugin: exit 0");
        let ok = Instant::now();
        h.note("plugin exits 0 (OK)");
        let (at, _) = follow(&mut h, "MED 100 again (plugin OK)", &healthy);
        h.timing("plugin OK -> MED 100", at - ok);

        // A CRITICAL is a failure: withdrawn.
        fs::write(&rc, "2").expect("plugin: exit 2");
        let critical = Instant::now();
        h.note("plugin exits 2 (CRITICAL)");
        let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
        h.timing("plugin CRITICAL -> withdrawn", gone - critical);
        fs::write(&rc, "0").expect("plugin: exit 0");
        h.wait_route(V4_PREFIX, secs(20.0), "back with MED 100 and no community", healthy);
    }
}

e2e! {
    /// 2. A native DNS check against a loopback DNS responder the test owns:
    /// the route is announced while it answers NOERROR, withdrawn when it
    /// answers SERVFAIL, and back when it answers NOERROR again.
    fn dns_servfail_withdraws(v: Version) {
        if skip_for_reference("dns_servfail_withdraws") {
            return;
        }
        let mut h = Harness::new("dns_servfail_withdraws", v);
        let dns = fixtures::DnsServer::start_at(IpAddr::V4(h.host_addr(5)));
        dns.set(|b| b.a = vec!["198.51.100.53".parse().expect("address")]);
        h.note(&format!("DNS responder on {}", dns.addr));
        let spec = format!("{} example.com A", dns.addr);
        let mut args = vec!["--dns", &spec];
        args.extend(fast_timing());
        args.extend(["--ip", V4_PREFIX, "--withdraw-on-down"]);
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced (NOERROR)");
        assert!(dns.seen().udp > 0, "the responder saw no query: {:?}", dns.seen());

        for cycle in 1..=2 {
            dns.set(|b| b.rcode = Rcode::SERVFAIL);
            let failing = Instant::now();
            h.note("DNS responder answers SERVFAIL");
            let gone = h.wait_route_gone(V4_PREFIX, secs(20.0));
            h.timing(&format!("SERVFAIL -> withdrawn (cycle {cycle})"), gone - failing);
            assert!(gone - failing <= secs(DOWN_BOUND), "withdraw took {:.3} s", (gone - failing).as_secs_f64());

            dns.set(|b| b.rcode = Rcode::NOERROR);
            let fixed = Instant::now();
            h.note("DNS responder answers NOERROR");
            let (back, _) = h.wait_route_up(V4_PREFIX, secs(20.0), "back (NOERROR)");
            h.timing(&format!("NOERROR -> route back (cycle {cycle})"), back - fixed);
        }
    }
}

/// A service of the reload scenario's config: one prefix, one TCP check.
fn reload_service(name: &str, prefix: &str, check: SocketAddr) -> serde_json::Value {
    json!({
        "name": name,
        "prefixes": [prefix],
        "checks": [{"type": "tcp", "address": check.to_string()}],
    })
}

/// The reload scenario's config: the run directory's control socket and
/// state file, the fast timing, and `services`.
fn reload_config(h: &Harness, services: &[serde_json::Value]) -> String {
    let config = json!({
        "_comment": "generated by tests/e2e_ops.rs",
        "control": {"socket": path(&h.file("ctl.sock")), "state_file": path(&h.file("state.json"))},
        "defaults": {"interval": "1s", "fast_interval": "500ms", "timeout": "500ms", "rise": 2, "fall": 2},
        "services": services,
    });
    serde_json::to_string_pretty(&config).expect("render the config")
}

e2e! {
    /// 3. `--config FILE` (JSON, two services) and SIGHUP: after the file is
    /// rewritten (one service removed, one added, one unchanged), the added
    /// prefix appears, the removed one leaves, and the unchanged one is not
    /// touched (same BIRD timestamp, BIRD counts exactly one announcement and
    /// one withdrawal). An invalid file and SIGHUP change nothing at all.
    fn config_reload_on_sighup(v: Version) {
        if skip_for_reference("config_reload_on_sighup") {
            return;
        }
        const ALPHA: &str = "198.51.100.11/32";
        const BETA: &str = "198.51.100.12/32";
        const GAMMA: &str = "198.51.100.13/32";
        let mut h = Harness::new("config_reload_on_sighup", v);
        let listeners: Vec<Listener> =
            (4..=6).map(|host| Listener::start(SocketAddr::new(IpAddr::V4(h.host_addr(host)), SERVICE_PORT))).collect();
        let alpha = reload_service("alpha", ALPHA, listeners[0].addr());
        let beta = reload_service("beta", BETA, listeners[1].addr());
        let gamma = reload_service("gamma", GAMMA, listeners[2].addr());
        let conf = h.file("exaprobe.json");
        fs::write(&conf, reload_config(&h, &[alpha.clone(), beta])).expect("write the config");
        let conf_arg = path(&conf);
        h.start_exabgp(&["--config", &conf_arg], ExaOptions::default());
        h.wait_route_up(ALPHA, secs(30.0), "alpha announced");
        h.wait_route_up(BETA, secs(10.0), "beta announced");
        let probe = h.wait_probe_process(secs(10.0), None);

        let stamp = h.route_stamp(ALPHA).expect("alpha's timestamp");
        let before = h.import_stats();
        h.note(&format!("alpha imported at {stamp}; BIRD import counters {before:?}"));

        // alpha unchanged, beta removed, gamma added.
        fs::write(&conf, reload_config(&h, &[alpha.clone(), gamma.clone()])).expect("rewrite the config");
        let log_from = h.exabgp_log_len();
        let hup = h.signal_probe(probe, Signal::SIGHUP);
        h.wait_log(log_from, "config reloaded: 1 unchanged, 0 changed, 1 added, 1 removed", secs(10.0));
        let gone = h.wait_route_gone(BETA, secs(10.0));
        h.timing("SIGHUP -> removed service withdrawn", gone - hup);
        let (added, _) = h.wait_route_up(GAMMA, secs(20.0), "gamma announced");
        h.timing("SIGHUP -> added service announced", added - hup);
        // Nothing more may come for alpha (a late re-announcement would change
        // its timestamp to the reload's time or later). BIRD keeps route times
        // on its monotonic clock and converts them to wall-clock time when it
        // prints them, so the same route's time can read a millisecond
        // apart: only a move of more than 50 ms is a change (see
        // `stamp_moved`; the import counters below count every update).
        h.hold_for("alpha untouched by the reload", secs(2.0), |h| {
            let now = h.route_stamp(ALPHA);
            e2e_support::stamp_moved(Some(&stamp), now.as_deref())
                .then(|| format!("alpha's route changed: {stamp} -> {now:?}"))
        });
        let delta = h.import_stats().since(before);
        let shown = format!("{}/{}", delta.updates, delta.withdraws);
        h.figure("BIRD imports during the reload (updates/withdraws)", &shown);
        assert_eq!(
            (delta.updates, delta.withdraws),
            (1, 1),
            "expected one announcement (gamma) and one withdrawal (beta), nothing for alpha: {delta:?}"
        );
        // And exaprobe sent ExaBGP nothing for alpha (ExaBGP would drop an
        // identical announcement, so BIRD alone could not tell).
        let log = h.exabgp_log();
        let touched: Vec<&str> = log[log_from..]
            .lines()
            .filter(|l| (l.contains("route added") || l.contains("route removed")) && l.contains(ALPHA))
            .collect();
        assert!(touched.is_empty(), "exaprobe sent commands for the unchanged service: {touched:#?}");
        assert_eq!(h.probe_process(), Some(probe), "the reload must not restart exaprobe");

        // Invalid files: a JSON syntax error, then a valid JSON with a bad
        // prefix that would remove both services. Neither may change anything.
        let stamps = (h.route_stamp(ALPHA), h.route_stamp(GAMMA));
        let before = h.import_stats();
        let broken = reload_config(&h, &[alpha.clone(), gamma]);
        let bad_prefix = reload_config(&h, &[reload_service("delta", "198.51.100.14/24", listeners[0].addr())]);
        for (what, text) in [("truncated JSON", &broken[..broken.len() / 2]), ("prefix with host bits", &bad_prefix)] {
            fs::write(&conf, text).expect("write an invalid config");
            let log_from = h.exabgp_log_len();
            h.signal_probe(probe, Signal::SIGHUP);
            h.wait_log(log_from, "SIGHUP: the new config is invalid; keeping the running one", secs(10.0));
            h.hold_for(&format!("nothing changes after an invalid config ({what})"), secs(2.0), |h| {
                let now = (h.route_stamp(ALPHA), h.route_stamp(GAMMA));
                let stats = h.import_stats();
                let moved = e2e_support::stamp_moved(stamps.0.as_deref(), now.0.as_deref())
                    || e2e_support::stamp_moved(stamps.1.as_deref(), now.1.as_deref());
                (moved || stats != before).then(|| format!("BIRD changed: {stamps:?} -> {now:?}, {stats:?}"))
            });
        }
        let status = h.exaprobe_client(&["status", "--socket", &path(&h.file("ctl.sock"))], CLIENT_TIMEOUT);
        assert!(status.status.success(), "status failed: {status:?}");
        assert!(
            status.stdout.contains("alpha  UP")
                && status.stdout.contains("gamma  UP")
                && !status.stdout.contains("beta"),
            "status after the reloads:\n{}",
            status.stdout
        );
    }
}

/// The flags of the drain scenarios: one service named `web`, a control
/// socket in the run directory (state file next to it), a 1 s drain stage.
fn drain_args(h: &Harness, svc: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["--tcp".into(), svc.into()];
    args.extend(fast_timing().into_iter().map(String::from));
    args.extend(
        ["--ip", V4_PREFIX, "--withdraw-on-down", "--name", "web", "--drain-duration", "1s", "--control-socket"]
            .map(String::from),
    );
    args.push(path(&h.file("ctl.sock")));
    args
}

e2e! {
    /// 4. `exaprobe drain web --for 3s`: BIRD first shows the route with
    /// GRACEFUL_SHUTDOWN (65535:0), then (after the 1 s drain stage) the
    /// route is withdrawn, and when the drain expires it comes back with MED
    /// 100 and without 65535:0.
    fn drain_with_expiry(v: Version) {
        if skip_for_reference("drain_with_expiry") {
            return;
        }
        let mut h = Harness::new("drain_with_expiry", v);
        h.service_start();
        let svc = h.service_addr();
        let args = drain_args(&h, &svc);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        h.start_exabgp(&args, ExaOptions::default());
        let (_, r) = h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        assert!(!has_community(&r, "65535,0"), "{r:?}");
        let socket = path(&h.file("ctl.sock"));

        let drained = Instant::now();
        let drain = h.exaprobe_client(
            &["drain", "web", "--for", "3s", "--reason", "e2e", "--socket", &socket],
            CLIENT_TIMEOUT,
        );
        assert!(drain.status.success(), "drain failed: {drain:?}");
        let (seen, r) = h.wait_route(V4_PREFIX, secs(5.0), "GRACEFUL_SHUTDOWN", |r| has_community(r, "65535,0"));
        h.timing("drain -> 65535:0 seen", seen - drained);
        assert_eq!(r.med, Some(100), "the drain keeps the UP attributes: {r:?}");
        let status = h.exaprobe_client(&["status", "--socket", &socket], CLIENT_TIMEOUT);
        assert!(status.stdout.contains("drained by"), "status while draining:\n{}", status.stdout);
        let gone = h.wait_route_gone(V4_PREFIX, secs(5.0));
        h.timing("drain -> withdrawn (1 s stage)", gone - drained);
        assert!(gone - drained >= secs(0.9), "withdrawn before the 1 s stage was over");
        let (back, r) = h.wait_route(V4_PREFIX, secs(10.0), "back after the drain expired", |_| true);
        h.timing("drain -> back (expired after 3 s)", back - drained);
        assert_eq!(r.med, Some(100), "{r:?}");
        assert!(r.community.as_deref().is_none_or(|c| !c.contains(GSHUT)), "65535:0 still on the route: {r:?}");
        assert!(back - drained >= secs(2.9), "back {:.3} s after a 3 s drain", (back - drained).as_secs_f64());
        assert!(back - drained <= secs(5.0), "back {:.3} s after a 3 s drain", (back - drained).as_secs_f64());
        let state = fs::read_to_string(h.file("ctl.sock.state")).unwrap_or_default();
        assert!(!state.contains("\"web\""), "the expired drain is still in the state file: {state}");
    }
}

e2e! {
    /// 5. A drain survives a restart: `exaprobe drain --all` (no expiry), the
    /// route leaves; exaprobe is killed with SIGKILL and ExaBGP respawns it
    /// (same flags, so the same socket and state file). The service is
    /// healthy, yet the route stays withdrawn; `exaprobe undrain --all`
    /// brings it back.
    fn drain_survives_restart(v: Version) {
        if skip_for_reference("drain_survives_restart") {
            return;
        }
        let mut h = Harness::new("drain_survives_restart", v);
        h.service_start();
        let svc = h.service_addr();
        let args = drain_args(&h, &svc);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        h.start_exabgp(&args, ExaOptions::default());
        h.wait_route_up(V4_PREFIX, secs(30.0), "announced");
        let socket = path(&h.file("ctl.sock"));
        let old = h.wait_probe_process(secs(10.0), None);

        let drained = Instant::now();
        let drain = h.exaprobe_client(&["drain", "--all", "--socket", &socket], CLIENT_TIMEOUT);
        assert!(drain.status.success(), "drain failed: {drain:?}");
        let (seen, _) = h.wait_route(V4_PREFIX, secs(5.0), "GRACEFUL_SHUTDOWN", |r| has_community(r, "65535,0"));
        h.timing("drain --all -> 65535:0 seen", seen - drained);
        let gone = h.wait_route_gone(V4_PREFIX, secs(5.0));
        h.timing("drain --all -> withdrawn", gone - drained);

        let log_from = h.exabgp_log_len();
        let killed = h.signal_probe(old, Signal::SIGKILL);
        let new = h.wait_probe_process(secs(10.0), Some(old));
        let restored = h.wait_log(log_from, "web: drain restored from", secs(10.0));
        h.timing("kill -9 -> respawned exaprobe restored the drain", restored - killed);
        // The service is healthy: without the drain the route would be back
        // within rise × fast-interval (1 s).
        h.hold_for("the drained route stays withdrawn after the restart", secs(3.0), |h| {
            h.route(V4_PREFIX).map(|r| format!("{V4_PREFIX} came back: {r:?}"))
        });
        let (_, status) = h.wait_for("the respawned exaprobe's control socket", secs(10.0), |h| {
            let s = h.exaprobe_client(&["status", "--socket", &socket], CLIENT_TIMEOUT);
            s.status.success().then_some(s.stdout)
        });
        // DRAINED although its check is healthy.
        assert!(
            status.contains("web  DRAINED") && status.contains("last healthy") && status.contains("until undrained"),
            "status:\n{status}"
        );

        let undrained = Instant::now();
        let undrain = h.exaprobe_client(&["undrain", "--all", "--socket", &socket], CLIENT_TIMEOUT);
        assert!(undrain.status.success(), "undrain failed: {undrain:?}");
        let (back, r) = h.wait_route_up(V4_PREFIX, secs(10.0), "back after undrain");
        h.timing("undrain -> route back", back - undrained);
        assert!(r.community.as_deref().is_none_or(|c| !c.contains(GSHUT)), "65535:0 still on the route: {r:?}");
        assert_eq!(h.probe_process(), Some(new), "the API process changed again");
        assert!(!h.exabgp_log().contains("Too many death"), "ExaBGP hit its respawn limit");
    }
}

/// Creates and removes `file` every `period` until stopped (the health of a
/// `test -e FILE` check); counts the toggles. Leaves the file in place.
struct Flapper {
    stop: Arc<AtomicBool>,
    toggles: Arc<AtomicU32>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Flapper {
    fn start(file: &Path, period: Duration) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let toggles = Arc::new(AtomicU32::new(0));
        let (flag, count, file) = (Arc::clone(&stop), Arc::clone(&toggles), file.to_path_buf());
        let thread = thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u32;
            while !flag.load(Ordering::SeqCst) {
                // Paced on the start time, so that the rate does not drift.
                n += 1;
                let due = start + period * n;
                thread::sleep(due.saturating_duration_since(Instant::now()));
                if file.exists() {
                    let _ = fs::remove_file(&file);
                } else {
                    let _ = fs::write(&file, "");
                }
                count.fetch_add(1, Ordering::SeqCst);
            }
            let _ = fs::write(&file, "");
        });
        Flapper { stop, toggles, thread: Some(thread) }
    }

    /// Stops flapping (the file stays); returns the number of toggles.
    fn stop(mut self) -> u32 {
        self.halt();
        self.toggles.load(Ordering::SeqCst)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How long the check flaps in each run.
const FLAP_FOR: f64 = 15.0;
/// How often the check's file is toggled.
const FLAP_EVERY: f64 = 0.5;

/// Lets `h`'s check flap for [`FLAP_FOR`] seconds, after its route is up;
/// returns what BIRD imported meanwhile.
fn flap_and_count(h: &mut Harness, healthy: &Path) -> e2e_support::ImportStats {
    h.wait_route(V4_PREFIX, secs(30.0), "announced before flapping", |_| true);
    let before = h.import_stats();
    let flapper = Flapper::start(healthy, secs(FLAP_EVERY));
    let start = Instant::now();
    h.note("check starts flapping");
    // Keep ExaBGP watched while the check flaps (and sample the route).
    h.hold_for("flapping", secs(FLAP_FOR), |_| None);
    let toggles = flapper.stop();
    h.note(&format!("check stops flapping after {toggles} toggles in {:.1} s", start.elapsed().as_secs_f64()));
    // The last toggle's effect reaches BIRD within a probe and an UPDATE.
    let mut last = h.import_stats();
    let settle = Instant::now();
    while settle.elapsed() < secs(1.0) {
        thread::sleep(Duration::from_millis(100));
        let now = h.import_stats();
        if now == last {
            break;
        }
        last = now;
    }
    last.since(before)
}

e2e! {
    /// 6. Flap dampening: a check that flips every 0.5 s (rise 1, fall 1,
    /// probes every 0.2 s) for 15 s. Without dampening BIRD sees a change
    /// per flip; with dampening (half-life 30 s, penalty 1000, suppress 2000,
    /// reuse 750, from a JSON config) the service is suppressed after the
    /// third flap, BIRD sees only those few changes, the route stays
    /// withdrawn although the check is healthy again, and `exaprobe status`
    /// reports SUPPRESSED.
    fn flap_dampening(v: Version) {
        if skip_for_reference("flap_dampening") {
            return;
        }
        let plain = {
            let mut h = Harness::new("flap_dampening", v);
            let healthy = h.file("healthy");
            fs::write(&healthy, "").expect("create the health file");
            let cmd = format!("test -e {}", healthy.display());
            let args = [
                "--cmd", &cmd, "--ip", V4_PREFIX, "--withdraw-on-down", "--interval", "0.2", "--fast-interval", "0.1",
                "--timeout", "0.15", "--rise", "1", "--fall", "1",
            ];
            h.start_exabgp(&args, ExaOptions::default());
            let changes = flap_and_count(&mut h, &healthy);
            h.figure(
                &format!("BIRD imports in {FLAP_FOR} s of flapping, no dampening (updates/withdraws)"),
                &format!("{}/{}", changes.updates, changes.withdraws),
            );
            assert!(changes.changes() >= 10, "without dampening BIRD should see most flips: {changes:?}");
            changes
        };

        let mut h = Harness::new("flap_dampening", v);
        let healthy = h.file("healthy");
        fs::write(&healthy, "").expect("create the health file");
        let socket = path(&h.file("ctl.sock"));
        let config = json!({
            "_comment": "generated by tests/e2e_ops.rs",
            "control": {"socket": socket, "state_file": path(&h.file("state.json"))},
            "services": [{
                "name": "flappy",
                "prefixes": [V4_PREFIX],
                "interval": "200ms", "fast_interval": "100ms", "timeout": "150ms", "rise": 1, "fall": 1,
                "checks": [{"type": "command", "shell": format!("test -e {}", healthy.display()),
                            "exit_codes": "zero-is-healthy"}],
                "dampening": {"half_life": "30s", "penalty": 1000, "suppress": 2000, "reuse": 750,
                              "max_suppress": "2m"},
            }],
        });
        let conf = h.file("exaprobe.json");
        fs::write(&conf, serde_json::to_string_pretty(&config).expect("render")).expect("write the config");
        let conf_arg = path(&conf);
        h.start_exabgp(&["--config", &conf_arg], ExaOptions::default());
        let damped = flap_and_count(&mut h, &healthy);
        h.figure(
            &format!("BIRD imports in {FLAP_FOR} s of flapping, dampened (updates/withdraws)"),
            &format!("{}/{}", damped.updates, damped.withdraws),
        );
        // Three flaps (UP -> DOWN) to go above 2000 (the penalty decays a
        // little between them): withdraw, announce, withdraw, announce,
        // withdraw (suppressed), and nothing after.
        assert!(
            damped.changes() <= 6 && damped.changes() * 3 <= plain.changes(),
            "dampening should cut the changes BIRD sees: {damped:?} dampened, {plain:?} without"
        );
        assert!(h.route(V4_PREFIX).is_none(), "the suppressed route should be withdrawn");
        let status = h.exaprobe_client(&["status", "--socket", &socket], CLIENT_TIMEOUT);
        assert!(status.status.success(), "status failed: {status:?}");
        assert!(status.stdout.contains("SUPPRESSED"), "status should report SUPPRESSED:\n{}", status.stdout);
        h.hold_for("the suppressed route stays withdrawn while the check is healthy", secs(3.0), |h| {
            h.route(V4_PREFIX).map(|r| format!("{V4_PREFIX} came back while suppressed: {r:?}"))
        });
    }
}

// ---------------------------------------------------------------------------
// Self-tests of the parsers added for these scenarios (no ExaBGP or BIRD needed).

#[test]
fn parses_birdc_import_counters() {
    let text = "BIRD 2.0.12 ready.\n\
        Name       Proto      Table      State  Since         Info\n\
        exa        BGP        ---        up     04:08:47.364  Established\n\
        \x20 Channel ipv4\n\
        \x20   State:          UP\n\
        \x20   Routes:         1 imported, 0 exported, 1 preferred\n\
        \x20   Route change stats:     received   rejected   filtered    ignored   accepted\n\
        \x20     Import updates:              7          0          0          0          7\n\
        \x20     Import withdraws:            3          0        ---          0          3\n\
        \x20     Export updates:              0          0          0        ---          0\n\
        \x20     Export withdraws:            0        ---        ---        ---          0\n\
        \x20 Channel ipv6\n\
        \x20     Import updates:              2          0          0          0          2\n\
        \x20     Import withdraws:            1          0        ---          0          1\n";
    let stats = parse_import_stats(text);
    assert_eq!((stats.updates, stats.withdraws), (9, 4));
    assert_eq!(stats.changes(), 13);
}

#[test]
fn parses_birdc_route_timestamps() {
    let text = "BIRD 2.0.12 ready.\n\
        Table master4:\n\
        198.51.100.11/32     unreachable [exa 04:08:47.866 from 127.66.1.2] * (100) [AS65001i]\n\
        \tType: BGP univ\n\
        \tBGP.med: 100\n\
        198.51.100.13/32     unreachable [other 04:08:49.001 from 127.66.1.9] (100) [AS65001i]\n\
        \tType: BGP univ\n\
        \x20                    unreachable [exa 04:08:50.123 from 127.66.1.2] * (100) [AS65001i]\n\
        \tType: BGP univ\n";
    assert_eq!(parse_route_stamp(text, "198.51.100.11/32").as_deref(), Some("04:08:47.866"));
    assert_eq!(parse_route_stamp(text, "198.51.100.13/32").as_deref(), Some("04:08:50.123"));
    assert_eq!(parse_route_stamp(text, "198.51.100.12/32"), None);
    // The same route read a millisecond apart is the same route; a later
    // import is not.
    assert!(!e2e_support::stamp_moved(Some("13:15:24.914"), Some("13:15:24.915")));
    assert!(e2e_support::stamp_moved(Some("13:15:24.914"), Some("13:15:25.454")));
    assert!(!e2e_support::stamp_moved(Some("13:15:24.914"), None));
}
