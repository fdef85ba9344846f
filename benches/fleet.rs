//! Benchmark of the fleet client against a real 3-member etcd cluster on
//! loopback (tests/harness/etcd.rs): the time from `ask_withdraw` to its
//! `Verdict` (the delay the guard adds to a health withdraw), healthy, with
//! one member frozen (SIGSTOP), right after the leader is killed, with the
//! store frozen (slow) and with the store down; and the memory and threads a
//! running client adds to the process.
//!
//! `cargo bench --bench fleet`, or `scripts/bench-fleet`. The count of asks
//! per case is `EXAPROBE_BENCH_ASKS` (default 200). Under `cargo test
//! --all-targets` (no `--bench` argument) it is a smoke test: a few asks on
//! a healthy store; it fails (exit 1) if a healthy store answered `Local`.

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/harness/etcd.rs"]
mod etcd;

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime};

use etcd::Cluster;
use exaprobe::fleet::{Entry, Fleet, Notice, Verdict};
use exaprobe::model::fleet::FleetSettings;

const SERVICE: &str = "bench";
/// The store timeout: exaprobe's default.
const TIMEOUT: Duration = Duration::from_millis(500);
const TTL: Duration = Duration::from_secs(10);

fn settings(cluster: &Cluster, site: &str) -> FleetSettings {
    FleetSettings {
        endpoints: cluster.endpoints(),
        site: site.into(),
        prefix: "/bench/".into(),
        ttl: TTL,
        timeout: TIMEOUT,
        min_sites: 1,
        tls: None,
        auth: None,
    }
}

fn entry(announcing: bool) -> Entry {
    let state = if announcing { "UP" } else { "DOWN" };
    Entry { announcing, held: false, state: state.into(), since: SystemTime::now(), reason: String::new() }
}

struct Site {
    fleet: Fleet,
    rx: Receiver<Notice>,
}

impl Site {
    fn start(settings: FleetSettings) -> Site {
        let (tx, rx) = mpsc::channel();
        let fleet = Fleet::start(
            settings,
            vec![SERVICE.into()],
            Box::new(move |n| {
                let _ = tx.send(n);
            }),
        );
        let site = Site { fleet, rx };
        site.wait(Duration::from_secs(20), |n| matches!(n, Notice::Store { connected: true, .. }));
        site
    }

    fn wait(&self, within: Duration, want: impl Fn(&Notice) -> bool) -> Notice {
        let end = Instant::now() + within;
        loop {
            let n = self.rx.recv_timeout(end.saturating_duration_since(Instant::now())).expect("a notice in time");
            if want(&n) {
                return n;
            }
        }
    }

    /// One guarded withdraw (min_sites 1, another site announcing): the
    /// time to the verdict, and the verdict. Announces again after.
    fn ask(&self, ticket: u64) -> (Duration, Verdict) {
        let t = Instant::now();
        self.fleet.ask_withdraw(SERVICE, ticket, 1, entry(false));
        let n = self.wait(TIMEOUT * 4, |n| matches!(n, Notice::Verdict { ticket: t, .. } if *t == ticket));
        let took = t.elapsed();
        let Notice::Verdict { verdict, .. } = n else { unreachable!() };
        self.fleet.publish(SERVICE, entry(true));
        (took, verdict)
    }
}

/// p50, p99 and max of some durations, in ms.
fn spread(mut d: Vec<Duration>) -> String {
    if d.is_empty() {
        return "-".into();
    }
    d.sort();
    let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
    let ms = |x: Duration| format!("{:.1}", x.as_secs_f64() * 1000.0);
    format!("p50 {:>7} ms  p99 {:>7} ms  max {:>7} ms", ms(at(0.5)), ms(at(0.99)), ms(at(1.0)))
}

/// Asks `n` times; the line of figures, and how many verdicts were not
/// `Withdraw`.
fn case(name: &str, site: &Site, ticket: &mut u64, n: usize) -> usize {
    let mut times = Vec::new();
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..n {
        *ticket += 1;
        let (took, verdict) = site.ask(*ticket);
        times.push(took);
        let kind = match verdict {
            Verdict::Withdraw => "withdraw",
            Verdict::Hold { .. } => "hold",
            Verdict::Local { .. } => "local",
        };
        *kinds.entry(kind).or_default() += 1;
        // Let the re-announce land, so each ask sees two sites announcing.
        std::thread::sleep(Duration::from_millis(5));
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("{name:<40} {}  ({})", spread(times), kinds.join(", "));
    n - kinds
        .iter()
        .filter(|k| k.ends_with("withdraw"))
        .map(|k| k.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum::<usize>()
}

/// This process's resident memory (kB) and threads.
fn rss_threads() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let asks: usize = std::env::var("EXAPROBE_BENCH_ASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let Some(mut cluster) = Cluster::start(3) else { return };
    let (rss0, threads0) = rss_threads();
    let a = Site::start(settings(&cluster, "a"));
    a.fleet.publish(SERVICE, entry(true));
    // Let the client settle (first connections, watch open) before measuring.
    std::thread::sleep(Duration::from_millis(300));
    let (rss1, threads1) = rss_threads();
    let b = Site::start(settings(&cluster, "b"));
    b.fleet.publish(SERVICE, entry(true));
    std::thread::sleep(Duration::from_millis(200));
    let mut ticket = 0;

    if !bench {
        let bad = case("smoke: healthy store", &a, &mut ticket, 5);
        if bad > 0 {
            eprintln!("fleet bench: a healthy store did not let a site withdraw");
            std::process::exit(1);
        }
        return;
    }

    println!("fleet guard: ask_withdraw -> Verdict, 3-member etcd 3.4 on loopback, timeout {TIMEOUT:?}, {asks} asks");
    println!();
    // Warm-up.
    case("warm-up", &a, &mut ticket, 20);
    let bad = case("healthy store", &a, &mut ticket, asks);
    {
        // Hold: only the read (another site's view: b asks while a withdrew).
        let mut times = Vec::new();
        for _ in 0..asks.min(100) {
            ticket += 1;
            let t = Instant::now();
            a.fleet.ask_withdraw(SERVICE, ticket, 5, entry(false));
            a.wait(TIMEOUT * 4, |n| matches!(n, Notice::Verdict { .. }));
            times.push(t.elapsed());
        }
        println!("{:<40} {}  (hold: the read only)", "healthy store, held", spread(times));
    }

    // A global failure: three sites fail at the same instant and ask at
    // once (min_sites 1): the time until the last of them has its verdict,
    // with the transactions racing (exactly one is held each round).
    {
        let d = Site::start(settings(&cluster, "d"));
        let sites = [&a, &b, &d];
        let rounds = asks.min(50);
        let mut times = Vec::new();
        let mut held_ok = 0;
        for _ in 0..rounds {
            for s in sites {
                s.fleet.publish(SERVICE, entry(true));
            }
            std::thread::sleep(Duration::from_millis(20));
            let t = Instant::now();
            ticket += 1;
            for s in sites {
                s.fleet.ask_withdraw(SERVICE, ticket, 1, entry(false));
            }
            let mut held = 0;
            for s in sites {
                let n = s.wait(TIMEOUT * 4, |n| matches!(n, Notice::Verdict { ticket: t, .. } if *t == ticket));
                held += usize::from(matches!(n, Notice::Verdict { verdict: Verdict::Hold { .. }, .. }));
            }
            times.push(t.elapsed());
            held_ok += usize::from(held == 1);
        }
        for s in sites {
            s.fleet.publish(SERVICE, entry(true));
        }
        println!(
            "{:<40} {}  ({held_ok} of {rounds} rounds: exactly one held)",
            "3 sites fail at once (last verdict)",
            spread(times)
        );
        drop(d);
        std::thread::sleep(Duration::from_millis(100));
    }

    // A follower the client talks to is frozen: its socket accepts,
    // nothing answers (the client moves on to the next URL, once).
    let leader = cluster.leader().unwrap_or(0);
    let follower = (leader + 1) % 3;
    // The client's first URL is the follower's, so it meets the freeze.
    let c = Site::start(FleetSettings {
        endpoints: (0..3).map(|i| cluster.endpoint((follower + i) % 3)).collect(),
        ..settings(&cluster, "c")
    });
    c.fleet.publish(SERVICE, entry(true));
    std::thread::sleep(Duration::from_millis(200));
    cluster.pause(follower);
    case("follower SIGSTOPped (first URL)", &c, &mut ticket, asks.min(100));
    cluster.resume(follower);
    cluster.wait_healthy(follower);
    drop(c);
    std::thread::sleep(Duration::from_millis(200));

    // The leader frozen: no linearizable read until the others elect a new
    // one (election timeout 500 ms in the harness, 1 s by default).
    if let Some(leader) = cluster.leader() {
        cluster.pause(leader);
        case("leader SIGSTOPped (asks from then on)", &a, &mut ticket, 20);
        cluster.resume(leader);
        cluster.wait_healthy(leader);
        std::thread::sleep(Duration::from_millis(500));
    }

    // The leader killed: asks from the kill on, through the election.
    if let Some(leader) = cluster.leader() {
        cluster.stop(leader);
        let killed = Instant::now();
        case("leader killed (asks from the kill on)", &a, &mut ticket, 20);
        println!("{:<40} {:.0} ms for those 20 asks", "", killed.elapsed().as_secs_f64() * 1000.0);
        cluster.restart(leader);
        cluster.wait_healthy(leader);
        std::thread::sleep(Duration::from_millis(500));
        case("after the leader's return", &a, &mut ticket, 20);
    }

    // Every member frozen: a slow store; every answer is Local, bounded by
    // the timeout.
    for i in 0..3 {
        cluster.pause(i);
    }
    case("store frozen (all SIGSTOPped)", &a, &mut ticket, 10);
    for i in 0..3 {
        cluster.resume(i);
    }
    for i in 0..3 {
        cluster.wait_healthy(i);
    }
    // Every member stopped: connections refused.
    for i in 0..3 {
        cluster.stop(i);
    }
    case("store down (all killed)", &a, &mut ticket, 20);

    println!();
    println!(
        "fleet client (lease, watch, publish): +{} kB RSS, +{} threads (before {rss0} kB, {threads0} threads)",
        rss1.saturating_sub(rss0),
        threads1.saturating_sub(threads0)
    );
    if bad > 0 {
        eprintln!("fleet bench: {bad} asks on a healthy store were not answered Withdraw");
        std::process::exit(1);
    }
    drop(b);
}
