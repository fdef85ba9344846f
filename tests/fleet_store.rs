//! The fleet client (src/fleet) against a real 3-member etcd cluster on
//! loopback: publishing and the view, lease expiry, the guard's counts, two
//! and three sites racing to withdraw, the store losing and regaining its
//! quorum, and the watch.

#[path = "harness/etcd.rs"]
mod etcd;
mod harness;

use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use etcd::Cluster;
use exaprobe::fleet::{self, Entry, Fleet, Notice, Verdict};
use exaprobe::model::fleet::{FleetAuth, FleetSettings, FleetTls};

/// Lease ttl of the tests: short, so that expiry is seen in seconds.
const TTL: Duration = Duration::from_secs(2);
/// The store calls' timeout.
const TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a test waits for one thing.
const WAIT: Duration = Duration::from_secs(15);

fn settings(cluster: &Cluster, prefix: &str, site: &str) -> FleetSettings {
    FleetSettings {
        endpoints: cluster.endpoints(),
        site: site.into(),
        prefix: prefix.into(),
        ttl: TTL,
        timeout: TIMEOUT,
        min_sites: 1,
        tls: None,
        auth: None,
    }
}

fn entry(announcing: bool, state: &str, reason: &str) -> Entry {
    Entry { announcing, held: false, state: state.into(), since: SystemTime::now(), reason: reason.into() }
}

/// A fleet client and what it told.
struct Site {
    fleet: Fleet,
    notices: Receiver<Notice>,
    seen: Vec<Notice>,
}

impl Site {
    fn start(settings: FleetSettings, services: &[&str]) -> Site {
        let (tx, notices) = mpsc::channel();
        let fleet = Fleet::start(
            settings,
            services.iter().map(|s| s.to_string()).collect(),
            Box::new(move |n| {
                let _ = tx.send(n);
            }),
        );
        Site { fleet, notices, seen: Vec::new() }
    }

    /// Waits (bounded) for a notice that `want` picks; returns it.
    fn wait<T>(&mut self, within: Duration, what: &str, want: impl Fn(&Notice) -> Option<T>) -> T {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.notices.recv_timeout(left) {
                Ok(n) => {
                    self.seen.push(n.clone());
                    if let Some(t) = want(&n) {
                        return t;
                    }
                }
                Err(_) => panic!("no {what} within {within:?}; notices: {:?}", self.seen),
            }
        }
    }

    fn connected(&mut self, want: bool) {
        self.wait(WAIT, if want { "Store{connected:true}" } else { "Store{connected:false}" }, |n| {
            matches!(n, Notice::Store { connected, .. } if *connected == want).then_some(())
        });
    }

    fn verdict(&mut self, within: Duration, ticket: u64) -> Verdict {
        // An answer that came while waiting for another one.
        let early = self.seen.iter().find_map(|n| match n {
            Notice::Verdict { ticket: t, verdict, .. } if *t == ticket => Some(verdict.clone()),
            _ => None,
        });
        if let Some(v) = early {
            return v;
        }
        self.wait(within, &format!("verdict for ticket {ticket}"), |n| match n {
            Notice::Verdict { ticket: t, verdict, .. } if *t == ticket => Some(verdict.clone()),
            _ => None,
        })
    }
}

/// Waits (bounded) until the view satisfies `ok`; returns it.
fn view_until(s: &FleetSettings, what: &str, ok: impl Fn(&[fleet::Row]) -> bool) -> Vec<fleet::Row> {
    let end = Instant::now() + WAIT;
    loop {
        let rows = fleet::view(s).unwrap_or_default();
        if ok(&rows) {
            return rows;
        }
        assert!(Instant::now() < end, "{what}: not within {WAIT:?}; view: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has(rows: &[fleet::Row], service: &str, site: &str) -> bool {
    rows.iter().any(|r| r.service == service && r.site == site)
}

#[test]
fn publish_then_view_then_stop_or_lease_expiry_removes_the_site() {
    let Some(cluster) = Cluster::start(3) else { return };
    let a_settings = settings(&cluster, "/t1/", "ams1");
    let mut a = Site::start(a_settings.clone(), &["dns"]);
    let mut b = Site::start(settings(&cluster, "/t1/", "fra1"), &["dns"]);
    let mut c = Site::start(settings(&cluster, "/t1/", "lon1"), &["dns"]);
    a.connected(true);
    b.connected(true);
    c.connected(true);
    a.fleet.publish("dns", entry(true, "UP", "first"));
    // The newest entry wins.
    a.fleet.publish("dns", entry(true, "UP", "ok"));
    b.fleet.publish("dns", Entry { held: true, ..entry(true, "HELD", "dns: timeout") });
    c.fleet.publish("dns", entry(true, "UP", ""));
    c.fleet.publish("web", entry(false, "DOWN", "refused"));
    let rows = view_until(&a_settings, "three sites' entries", |r| {
        r.len() == 4 && r.iter().any(|r| r.site == "ams1" && r.entry.reason == "ok")
    });
    let fra = rows.iter().find(|r| r.site == "fra1").unwrap();
    assert!(fra.entry.announcing && fra.entry.held && fra.entry.state == "HELD" && fra.entry.reason == "dns: timeout");
    assert!(fleet::age(&fra.entry) < WAIT);
    let web = rows.iter().find(|r| r.service == "web").unwrap();
    assert_eq!((web.site.as_str(), web.entry.announcing, web.entry.state.as_str()), ("lon1", false, "DOWN"));
    assert_eq!(
        rows.iter().map(|r| (r.service.as_str(), r.site.as_str())).collect::<Vec<_>>(),
        [("dns", "ams1"), ("dns", "fra1"), ("dns", "lon1"), ("web", "lon1")]
    );

    // exaprobe fleet shows the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_exaprobe"))
        .arg("fleet")
        .args(cluster.endpoints().iter().flat_map(|e| ["--fleet-etcd", e]))
        .args(["--fleet-prefix", "/t1/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("dns: 3 of 3 sites announcing, 1 held") && text.contains("web: 0 of 1 sites announcing"),
        "{text}"
    );
    let fra_line = text.lines().find(|l| l.contains("fra1")).unwrap_or_default();
    assert!(fra_line.contains("held") && fra_line.contains("dns: timeout"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_exaprobe"))
        .args(["fleet", "--json", "--fleet-etcd", &cluster.endpoint(2), "--fleet-prefix", "/t1/"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["services"][0]["service"], "dns");
    assert_eq!(doc["services"][0]["sites"][1]["status"], "held");
    assert_eq!(doc["services"][1]["sites"][0]["status"], "down");

    // A clean stop revokes the lease: the keys go at once, and stop
    // returns within the timeout.
    let t = Instant::now();
    c.fleet.stop();
    assert!(t.elapsed() < TIMEOUT + Duration::from_millis(500), "stop took {:?}", t.elapsed());
    let rows = fleet::view(&a_settings).unwrap();
    assert!(!has(&rows, "dns", "lon1") && !has(&rows, "web", "lon1"), "{rows:?}");

    // A site that dies (dropped without stop: no revoke, no keep-alive)
    // disappears when its lease expires, and not before a keep-alive is
    // missed.
    let dropped = Instant::now();
    drop(b);
    assert!(has(&fleet::view(&a_settings).unwrap(), "dns", "fra1"));
    view_until(&a_settings, "fra1's lease to expire", |r| !has(r, "dns", "fra1"));
    let gone = dropped.elapsed();
    assert!(gone < TTL + Duration::from_secs(3), "fra1's keys lived {gone:?} after it died (ttl {TTL:?})");
    // The live site keeps its lease through several ttls.
    std::thread::sleep(TTL + TTL / 2);
    assert!(has(&fleet::view(&a_settings).unwrap(), "dns", "ams1"));
}

#[test]
fn the_guard_withdraws_only_with_enough_others_announcing() {
    let Some(cluster) = Cluster::start(3) else { return };
    let s = |site| settings(&cluster, "/t2/", site);
    let mut sites: Vec<Site> = ["a", "b", "c"].iter().map(|n| Site::start(s(n), &["svc"])).collect();
    for site in &mut sites {
        site.connected(true);
        site.fleet.publish("svc", entry(true, "UP", ""));
    }
    view_until(&s("a"), "three announcing", |r| r.iter().filter(|r| r.entry.announcing).count() == 3);
    let down = || entry(false, "DOWN", "probe failed");

    // a: b and c announce, 2 >= 2.
    sites[0].fleet.ask_withdraw("svc", 1, 2, down());
    assert_eq!(sites[0].verdict(WAIT, 1), Verdict::Withdraw);
    let rows = fleet::view(&s("a")).unwrap();
    let a = rows.iter().find(|r| r.site == "a").unwrap();
    assert!(!a.entry.announcing && a.entry.state == "DOWN" && a.entry.reason == "probe failed", "{a:?}");
    // b: only c announces now.
    sites[1].fleet.ask_withdraw("svc", 2, 2, down());
    assert_eq!(sites[1].verdict(WAIT, 2), Verdict::Hold { others_announcing: 1, sites: 3 });
    sites[1].fleet.ask_withdraw("svc", 3, 1, down());
    assert_eq!(sites[1].verdict(WAIT, 3), Verdict::Withdraw);
    // c is the last one announcing.
    sites[2].fleet.ask_withdraw("svc", 4, 1, down());
    assert_eq!(sites[2].verdict(WAIT, 4), Verdict::Hold { others_announcing: 0, sites: 3 });
    // min_sites 0: a withdraw is never held.
    sites[2].fleet.ask_withdraw("svc", 5, 0, down());
    assert_eq!(sites[2].verdict(WAIT, 5), Verdict::Withdraw);
    // A recovered site counts again.
    sites[0].fleet.publish("svc", entry(true, "UP", ""));
    view_until(&s("a"), "a announcing again", |r| r.iter().any(|r| r.site == "a" && r.entry.announcing));
    sites[1].fleet.ask_withdraw("svc", 6, 1, down());
    assert_eq!(sites[1].verdict(WAIT, 6), Verdict::Withdraw);
    // A service nobody else publishes: held, counting this site alone.
    sites[1].fleet.ask_withdraw("lonely", 7, 1, down());
    assert_eq!(sites[1].verdict(WAIT, 7), Verdict::Hold { others_announcing: 0, sites: 1 });
}

/// `n` sites announce a service, fail at the same instant and all ask to
/// withdraw with min_sites 1: exactly n-1 may withdraw, every time.
fn race(n: usize, rounds: usize) {
    let Some(cluster) = Cluster::start(3) else { return };
    let prefix = format!("/race{n}/");
    let names: Vec<String> = (0..n).map(|i| format!("site{i}")).collect();
    let mut sites: Vec<Site> = names.iter().map(|s| Site::start(settings(&cluster, &prefix, s), &[])).collect();
    for site in &mut sites {
        site.connected(true);
    }
    let view_settings = settings(&cluster, &prefix, "viewer");
    for round in 0..rounds {
        let service = format!("svc{round}");
        for site in &sites {
            site.fleet.publish(&service, entry(true, "UP", ""));
        }
        view_until(&view_settings, "every site announcing", |r| {
            r.iter().filter(|r| r.service == service && r.entry.announcing).count() == n
        });
        let barrier = Arc::new(Barrier::new(n));
        std::thread::scope(|scope| {
            for site in &sites {
                let barrier = Arc::clone(&barrier);
                let service = &service;
                let fleet = &site.fleet;
                scope.spawn(move || {
                    barrier.wait();
                    fleet.ask_withdraw(service, round as u64, 1, entry(false, "DOWN", "race"));
                });
            }
        });
        let verdicts: Vec<Verdict> = sites.iter_mut().map(|s| s.verdict(WAIT, round as u64)).collect();
        let withdrawn = verdicts.iter().filter(|v| **v == Verdict::Withdraw).count();
        let held = verdicts.iter().filter(|v| matches!(v, Verdict::Hold { others_announcing: 0, .. })).count();
        assert_eq!((withdrawn, held), (n - 1, 1), "round {round}: {verdicts:?}");
        let rows = fleet::view(&view_settings).unwrap();
        let announcing = rows.iter().filter(|r| r.service == service && r.entry.announcing).count();
        assert_eq!(announcing, 1, "round {round}: the store says {rows:?}");
    }
}

#[test]
fn two_sites_failing_at_once_never_both_withdraw() {
    race(2, 30);
}

#[test]
fn three_sites_failing_at_once_leave_exactly_one() {
    race(3, 30);
}

#[test]
fn without_quorum_the_site_decides_locally_and_rejoins_after() {
    let Some(mut cluster) = Cluster::start(3) else { return };
    let a_settings = settings(&cluster, "/t4/", "a");
    let mut a = Site::start(a_settings.clone(), &["svc"]);
    let mut b = Site::start(settings(&cluster, "/t4/", "b"), &["svc"]);
    a.connected(true);
    b.connected(true);
    a.fleet.publish("svc", entry(true, "UP", "before"));
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&a_settings, "both announcing", |r| r.len() == 2);

    // Two of three members gone: no quorum.
    let lost = Instant::now();
    cluster.stop(0);
    cluster.stop(1);
    a.fleet.ask_withdraw("svc", 1, 1, entry(false, "DOWN", ""));
    let asked = Instant::now();
    let v = a.verdict(TTL + TIMEOUT + Duration::from_secs(1), 1);
    assert!(matches!(v, Verdict::Local { .. }), "{v:?}");
    assert!(asked.elapsed() <= TIMEOUT + Duration::from_millis(300), "verdict after {:?}", asked.elapsed());
    a.connected(false);
    assert!(lost.elapsed() <= TTL + TIMEOUT + Duration::from_secs(1), "disconnected after {:?}", lost.elapsed());
    // Still without quorum: every question is answered in time, locally.
    for ticket in 2..5 {
        a.fleet.ask_withdraw("svc", ticket, 1, entry(false, "DOWN", ""));
        let t = Instant::now();
        assert!(matches!(a.verdict(WAIT, ticket), Verdict::Local { .. }));
        assert!(t.elapsed() <= TIMEOUT + Duration::from_millis(300), "verdict after {:?}", t.elapsed());
    }
    // While away, a's state changed.
    a.fleet.publish("svc", entry(true, "DEGRADED", "while away"));

    // Quorum back (after the leases expired): a rejoins, with a lease and
    // its newest entry published again.
    std::thread::sleep(TTL);
    cluster.restart(0);
    cluster.restart(1);
    cluster.wait_healthy(0);
    a.connected(true);
    b.connected(true);
    let rows = view_until(&a_settings, "a's entry re-published", |r| {
        r.iter().any(|r| r.site == "a" && r.entry.state == "DEGRADED") && has(r, "svc", "b")
    });
    assert_eq!(rows.iter().find(|r| r.site == "a").unwrap().entry.reason, "while away");
    a.fleet.ask_withdraw("svc", 9, 1, entry(false, "DOWN", ""));
    assert_eq!(a.verdict(WAIT, 9), Verdict::Withdraw);
}

#[test]
fn the_watch_reports_other_sites_changes_only() {
    let Some(cluster) = Cluster::start(3) else { return };
    let mut a = Site::start(settings(&cluster, "/t5/", "a"), &["own", "other"]);
    let mut b = Site::start(settings(&cluster, "/t5/", "b"), &["own", "other"]);
    a.connected(true);
    b.connected(true);
    // a's own write comes first in etcd's order: were it reported, "own"
    // would be the first Changed a sees.
    a.fleet.publish("own", entry(true, "UP", ""));
    view_until(&settings(&cluster, "/t5/", "v"), "a's entry", |r| has(r, "own", "a"));
    b.fleet.publish("other", entry(false, "DOWN", ""));
    let first = a.wait(WAIT, "Changed", |n| match n {
        Notice::Changed { service } => Some(service.clone()),
        _ => None,
    });
    assert_eq!(first, "other");
    // A site that vanishes (revoked lease) is a change too.
    b.fleet.publish("own", entry(true, "UP", ""));
    a.wait(WAIT, "Changed own", |n| matches!(n, Notice::Changed { service } if service == "own").then_some(()));
    b.fleet.stop();
    a.wait(WAIT, "Changed on b's stop", |n| {
        matches!(n, Notice::Changed { service } if service == "other").then_some(())
    });
    // b saw nothing of its own.
    b.seen.extend(b.notices.try_iter());
    assert!(!b.seen.iter().any(|n| matches!(n, Notice::Changed { service } if service == "other")), "{:?}", b.seen);
}

#[test]
fn tls_with_client_certificates() {
    let Some(cluster) = Cluster::start_tls(3) else { return };
    let files = cluster.tls().unwrap().clone();
    let tls = |cert: bool| FleetTls {
        ca: Some(files.ca.clone()),
        cert: cert.then(|| files.client_cert.clone()),
        key: cert.then(|| files.client_key.clone()),
    };
    let secure = |site: &str, cert: bool| FleetSettings { tls: Some(tls(cert)), ..settings(&cluster, "/t6/", site) };
    assert!(cluster.endpoint(0).starts_with("https://"));
    let mut a = Site::start(secure("a", true), &["svc"]);
    let mut b = Site::start(secure("b", true), &["svc"]);
    a.connected(true);
    b.connected(true);
    a.fleet.publish("svc", entry(true, "UP", ""));
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&secure("v", true), "both over TLS", |r| r.len() == 2);
    a.fleet.ask_withdraw("svc", 1, 1, entry(false, "DOWN", ""));
    assert_eq!(a.verdict(WAIT, 1), Verdict::Withdraw);
    // etcd wants a client certificate: without one, nothing works.
    let mut c = Site::start(secure("c", false), &["svc"]);
    c.connected(false);
    c.fleet.ask_withdraw("svc", 2, 1, entry(false, "DOWN", ""));
    assert!(matches!(c.verdict(WAIT, 2), Verdict::Local { .. }));
    assert!(fleet::view(&secure("v", false)).is_err());
    // Nor without the CA.
    let no_ca = FleetSettings { tls: None, ..secure("v", true) };
    assert!(fleet::view(&no_ca).is_err());
}

fn etcdctl(cluster: &Cluster, args: &[&str]) {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(cluster.endpoint(0))
        .args(args)
        .output()
        .expect("etcdctl");
    assert!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn auth_with_a_user_limited_to_the_prefix() {
    let Some(cluster) = Cluster::start(3) else { return };
    etcdctl(&cluster, &["user", "add", "root:rootpw", "--interactive=false"]);
    etcdctl(&cluster, &["role", "add", "root"]);
    etcdctl(&cluster, &["user", "grant-role", "root", "root"]);
    etcdctl(&cluster, &["role", "add", "exaprobe"]);
    etcdctl(&cluster, &["role", "grant-permission", "exaprobe", "--prefix=true", "readwrite", "/t7/"]);
    etcdctl(&cluster, &["user", "add", "site:sitepw", "--interactive=false"]);
    etcdctl(&cluster, &["user", "grant-role", "site", "exaprobe"]);
    etcdctl(&cluster, &["auth", "enable"]);
    let user = |site: &str, password: &str| FleetSettings {
        auth: Some(FleetAuth { user: "site".into(), password: password.into() }),
        ..settings(&cluster, "/t7/", site)
    };
    let mut a = Site::start(user("a", "sitepw"), &["svc"]);
    let mut b = Site::start(user("b", "sitepw"), &["svc"]);
    a.connected(true);
    b.connected(true);
    a.fleet.publish("svc", entry(true, "UP", ""));
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&user("v", "sitepw"), "both with auth", |r| r.len() == 2);
    // The watch works with the token too.
    a.wait(WAIT, "Changed from b", |n| matches!(n, Notice::Changed { .. }).then_some(()));
    a.fleet.ask_withdraw("svc", 1, 1, entry(false, "DOWN", ""));
    assert_eq!(a.verdict(WAIT, 1), Verdict::Withdraw);
    // A wrong password, or none: no lease, local decisions, no view.
    let mut c = Site::start(user("c", "wrong"), &["svc"]);
    c.connected(false);
    c.fleet.ask_withdraw("svc", 2, 1, entry(false, "DOWN", ""));
    assert!(matches!(c.verdict(WAIT, 2), Verdict::Local { .. }));
    let e = fleet::view(&user("v", "wrong")).unwrap_err().to_string();
    assert!(e.contains("authentication failed"), "{e}");
    assert!(fleet::view(&settings(&cluster, "/t7/", "v")).is_err());
}

#[test]
fn the_guard_works_again_once_a_new_leader_is_elected() {
    let Some(mut cluster) = Cluster::start(3) else { return };
    // ttl 4 s: the engine hears of a store that has not answered for 2 s.
    let s = |site: &str| FleetSettings { ttl: Duration::from_secs(4), ..settings(&cluster, "/t8/", site) };
    let mut a = Site::start(s("a"), &["svc"]);
    let mut b = Site::start(s("b"), &["svc"]);
    a.connected(true);
    b.connected(true);
    a.fleet.publish("svc", entry(true, "UP", ""));
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&s("v"), "both announcing", |r| r.len() == 2);
    let leader = cluster.leader().expect("a leader");
    cluster.stop(leader);
    // The others elect a new leader in about a second (election timeout
    // 500 ms); meanwhile asks may be answered Local. The store is not
    // declared lost for an election (only after ttl/2 without an answer);
    // whether a keep-alive falls into the election is up to the timing, so
    // the last assertion catches a client that flaps only when it does.
    let end = Instant::now() + Duration::from_secs(3);
    let mut ticket = 0;
    let mut withdrew = false;
    while Instant::now() < end {
        ticket += 1;
        a.fleet.ask_withdraw("svc", ticket, 1, entry(false, "DOWN", ""));
        withdrew |= a.verdict(WAIT, ticket) == Verdict::Withdraw;
        a.fleet.publish("svc", entry(true, "UP", ""));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(withdrew, "no Withdraw after the election: {:?}", a.seen);
    assert!(!a.seen.iter().any(|n| matches!(n, Notice::Store { connected: false, .. })), "{:?}", a.seen);
}

#[test]
fn a_frozen_store_answers_each_question_once_by_the_timeout() {
    let Some(cluster) = Cluster::start(3) else { return };
    let s = |site: &str| settings(&cluster, "/t9/", site);
    let mut a = Site::start(s("a"), &["svc"]);
    let b = Site::start(s("b"), &["svc"]);
    let mut c = Site::start(s("c"), &["svc"]);
    a.connected(true);
    c.connected(true);
    a.fleet.publish("svc", entry(true, "UP", ""));
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&s("v"), "both announcing", |r| r.len() == 2);
    // Every member frozen: connections open, nothing answers.
    for i in 0..3 {
        cluster.pause(i);
    }
    for ticket in 1..=3 {
        a.fleet.ask_withdraw("svc", ticket, 1, entry(false, "DOWN", ""));
    }
    let asked = Instant::now();
    for ticket in 1..=3 {
        assert!(matches!(a.verdict(WAIT, ticket), Verdict::Local { .. }));
    }
    assert!(asked.elapsed() <= TIMEOUT + Duration::from_millis(300), "verdicts after {:?}", asked.elapsed());
    // A clean stop against a frozen store is bounded too.
    let t = Instant::now();
    c.fleet.stop();
    assert!(t.elapsed() <= TIMEOUT + Duration::from_millis(500), "stop took {:?}", t.elapsed());
    for i in 0..3 {
        cluster.resume(i);
    }
    // The worker answers in order: once ticket 4 is answered, a late answer
    // to 1-3 would have come before it. (b may have lost its lease while
    // frozen: it publishes again.)
    b.fleet.publish("svc", entry(true, "UP", "again"));
    let end = Instant::now() + WAIT;
    let mut ticket = 4;
    loop {
        a.fleet.ask_withdraw("svc", ticket, 1, entry(false, "DOWN", ""));
        if a.verdict(WAIT, ticket) == Verdict::Withdraw {
            break;
        }
        assert!(Instant::now() < end, "no Withdraw after the thaw: {:?}", a.seen);
        ticket += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in 1..=ticket {
        let n = a.seen.iter().filter(|n| matches!(n, Notice::Verdict { ticket, .. } if *ticket == t)).count();
        assert_eq!(n, 1, "ticket {t}: {:?}", a.seen);
    }
}

#[test]
fn a_key_without_a_lease_is_not_counted() {
    let Some(cluster) = Cluster::start(3) else { return };
    let s = |site: &str| settings(&cluster, "/t11/", site);
    let mut a = Site::start(s("a"), &["svc"]);
    a.connected(true);
    a.fleet.publish("svc", entry(true, "UP", ""));
    // Written by hand: it says announcing, but nothing would ever expire it.
    let value = r#"{"announcing":true,"held":false,"state":"UP","since":0,"reason":"by hand","site":"ghost"}"#;
    etcdctl(&cluster, &["put", "/t11/svc/ghost", value]);
    let rows = view_until(&s("v"), "both entries", |r| r.len() == 2);
    let ghost = rows.iter().find(|r| r.site == "ghost").unwrap();
    assert!(ghost.entry.reason.starts_with("no lease, not counted"), "{ghost:?}");
    a.fleet.ask_withdraw("svc", 1, 1, entry(false, "DOWN", ""));
    assert_eq!(a.verdict(WAIT, 1), Verdict::Hold { others_announcing: 0, sites: 1 });
}

#[test]
fn a_store_without_a_leader_for_less_than_the_timeout_is_waited_for_not_answered_locally() {
    let Some(mut cluster) = Cluster::start(3) else { return };
    // A timeout longer than the outage plus an election (election timeout
    // 500 ms): the question is answered by the store once it has a leader.
    let s = |site: &str| FleetSettings {
        ttl: Duration::from_secs(8),
        timeout: Duration::from_secs(5),
        ..settings(&cluster, "/t12/", site)
    };
    let mut a = Site::start(s("a"), &["svc"]);
    let mut b = Site::start(s("b"), &["svc"]);
    a.connected(true);
    b.connected(true);
    b.fleet.publish("svc", entry(true, "UP", ""));
    view_until(&s("v"), "b announcing", |r| r.len() == 1);
    // The leader and one more member stop: no leader, no quorum, every
    // endpoint refuses or says so; one member comes back a second later.
    let leader = cluster.leader().expect("a leader");
    let other = (leader + 1) % 3;
    cluster.stop(leader);
    cluster.stop(other);
    let asked = Instant::now();
    a.fleet.ask_withdraw("svc", 1, 1, entry(false, "DOWN", ""));
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart(other);
    let v = a.verdict(WAIT, 1);
    assert_eq!(v, Verdict::Withdraw, "after {:?}: {:?}", asked.elapsed(), a.seen);
}

#[test]
fn a_reload_that_changes_the_fleet_settings_says_a_restart_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("exaprobe.json");
    let write = |fleet: &str| {
        let text = format!(
            r#"{{{fleet}"control": {{"socket": "{d}/ctl.sock", "state_file": "{d}/state.json"}},
                "services": [{{"name": "web", "prefixes": ["198.51.100.1/32"], "rise": 1,
                "checks": [{{"type": "command", "shell": "true"}}], "dampening": false}}]}}"#,
            d = dir.path().display(),
        );
        std::fs::write(&conf, text).unwrap();
    };
    write("");
    let mut p = harness::Probe::start(&["--dry-run", "--config", conf.to_str().unwrap()]);
    assert!(p.line().starts_with("announce route 198.51.100.1/32"));
    // Added: no client runs, the services stay decided per host.
    write(r#""fleet": {"etcd": ["http://127.0.0.1:9"], "site": "a"}, "#);
    p.signal("HUP");
    p.wait_stderr("the top-level \"fleet\" was added: restart exaprobe to apply it");
    p.wait_stderr("every service is decided per host");
    p.signal("TERM");
    p.wait_exit(WAIT);
}
