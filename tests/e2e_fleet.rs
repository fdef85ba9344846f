//! End to end, the fleet guard: three sites, each a real ExaBGP (two 5.0,
//! one 4.2) running exaprobe with its own JSON config, control socket and
//! services, peer with one BIRD 2 (RIB-only, one neighbor per site, each on
//! its own 127.x address); the sites share a real 3-member etcd cluster.
//!
//! Two services per site, each checking a TCP listener of its own:
//! `web` (198.51.100.1/32, min_sites 1) and `dns` (198.51.100.2/32,
//! min_sites 2). The scenario, in order:
//! 1. BIRD sees both prefixes from three neighbors;
//! 2. one site's web fails: that site withdraws normally (two paths left);
//! 3. web fails everywhere at once: BIRD keeps exactly one path (min_sites),
//!    held by a site whose status says HELD; the others withdraw;
//! 4. a withdrawn site recovers: it announces, and the held site withdraws;
//! 5. dns fails everywhere: exactly two paths stay, both HELD;
//! 6. one held site's exaprobe is SIGKILLed (ExaBGP keeps its route, does not
//!    respawn it): its lease expires and the other held site re-evaluates
//!    (its count drops to 0 of 2);
//! 7. the etcd majority is stopped: within ttl + timeout every live site
//!    decides locally (status: not connected; the held dns route withdrawn).
//!
//! Bounds are generous (the figures are the benchmark's). Safety as in
//! tests/e2e_support: loopback only, RIB-only BIRD, every process started
//! here and stopped by its PID. `#[ignore]`d: scripts/test runs it.

// The single-site harness's helpers (BIRD's routes, ExaBGP's config); its
// scenarios' parts are unused here.
#[allow(dead_code, unused_macros)]
mod e2e_support;
#[path = "harness/etcd.rs"]
mod etcd;
#[path = "harness/fleet_site.rs"]
mod fleet_site;

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use e2e_support::{BGP_PORT, Version, exabgp_config, exaprobe_bin, find_program, parse_routes, run_line};
use fleet_site::Service;

const WEB: &str = "198.51.100.1/32";
const DNS: &str = "198.51.100.2/32";
const TTL: Duration = Duration::from_secs(3);
const TIMEOUT: Duration = Duration::from_millis(500);
/// The longest any step may take to show (generous: 2 cores, 6 agents).
const BOUND: Duration = Duration::from_secs(30);

/// One site: ExaBGP + exaprobe, its services.
struct Site {
    name: String,
    local: Ipv4Addr,
    version: Version,
    socket: PathBuf,
    web: Service,
    dns: Service,
    exabgp: Option<Child>,
}

/// BIRD, three sites, etcd; everything stopped by PID on drop.
struct Fleet {
    dir: tempfile::TempDir,
    bird: Option<Child>,
    sites: Vec<Site>,
    cluster: etcd::Cluster,
    t0: Instant,
    notes: Vec<String>,
}

/// A free /24 of loopback for BIRD and the sites: .1 BIRD, .2-.4 the sites.
fn net() -> (u8, u8) {
    loop {
        let ip = fleet_site::loopback();
        let mut parts = ip.split('.').skip(1).map(|p| p.parse::<u8>().unwrap());
        let (a, b) = (parts.next().unwrap(), parts.next().unwrap());
        if std::net::TcpListener::bind((Ipv4Addr::new(127, a, b, 1), BGP_PORT)).is_ok() {
            return (a, b);
        }
    }
}

/// ExaBGP's children running exaprobe.
fn probe_children(exabgp: u32) -> Vec<u32> {
    let exe = exaprobe_bin().display().to_string();
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let rest = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or_default();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let argv0 = fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|c| c.split(|b| *b == 0).next().map(|a| String::from_utf8_lossy(a).into_owned()));
            f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(exabgp)
                && f.first() != Some(&"Z")
                && argv0 == Some(exe.clone())
        })
        .collect()
}

impl Fleet {
    fn note(&mut self, msg: &str) {
        let line = format!("{:8.3}s  {msg}", self.t0.elapsed().as_secs_f64());
        eprintln!("e2e_fleet: {line}");
        self.notes.push(line);
    }

    fn start() -> Option<Fleet> {
        for program in ["bird", "birdc"] {
            assert!(find_program(program).is_some(), "`{program}` not found: this test needs BIRD 2 (scripts/test)");
        }
        let cluster = etcd::Cluster::start(3)?;
        let (a, b) = net();
        let dir = tempfile::Builder::new().prefix("exaprobe-e2e-fleet-").tempdir().unwrap();
        let versions = [Version::V5, Version::V5, Version::V4];
        let svc_ip = format!("127.{a}.{b}.10");
        let sites = (0..3)
            .map(|i| Site {
                name: format!("site{i}"),
                local: Ipv4Addr::new(127, a, b, 2 + i as u8),
                version: versions[i],
                socket: dir.path().join(format!("site{i}.sock")),
                web: Service::up(&svc_ip),
                dns: Service::up(&svc_ip),
                exabgp: None,
            })
            .collect();
        let mut f = Fleet { dir, bird: None, sites, cluster, t0: Instant::now(), notes: Vec::new() };
        f.start_bird(Ipv4Addr::new(127, a, b, 1));
        for i in 0..3 {
            f.start_site(i, Ipv4Addr::new(127, a, b, 1));
        }
        Some(f)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start_bird(&mut self, addr: Ipv4Addr) {
        let mut conf = format!(
            "# RIB only: deliberately NO `protocol kernel`.\nrouter id {addr};\nlog stderr all;\n\
             protocol device {{ scan time 10; }}\n"
        );
        for (i, s) in self.sites.iter().enumerate() {
            let _ = write!(
                conf,
                "protocol bgp exa{i} {{\n  local {addr} port {BGP_PORT} as 65000;\n  neighbor {} as 65001;\n  \
                 strict bind on;\n  passive on;\n  multihop;\n  hold time 30;\n  error wait time 1, 5;\n  \
                 ipv4 {{ import all; export none; }};\n}}\n",
                s.local
            );
        }
        fs::write(self.file("bird.conf"), conf).unwrap();
        let log = fs::File::create(self.file("bird.log")).unwrap();
        let child = Command::new(find_program("bird").unwrap())
            .arg("-f")
            .arg("-c")
            .arg(self.file("bird.conf"))
            .arg("-s")
            .arg(self.file("bird.ctl"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bird");
        self.note(&format!("BIRD started on {addr}, pid {}", child.id()));
        self.bird = Some(child);
        self.wait("BIRD's control socket", Duration::from_secs(20), |f| f.birdc(&["show", "status"]).contains("ready"));
    }

    fn start_site(&mut self, i: usize, bird: Ipv4Addr) {
        let endpoints = self.cluster.endpoints();
        let s = &self.sites[i];
        let etcd: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let service = |name: &str, prefix: &str, min: u32, check: std::net::SocketAddr| {
            format!(
                r#"{{"name": "{name}", "prefixes": ["{prefix}"], "interval": "500ms", "timeout": "200ms",
                  "rise": 1, "fall": 1, "dampening": false, "fleet": {{"min_sites": {min}}},
                  "checks": [{{"type": "tcp", "address": "{check}"}}]}}"#
            )
        };
        let config = format!(
            r#"{{"fleet": {{"etcd": [{}], "site": "{}", "ttl": "{}s", "timeout": "{}ms"}},
  "control": {{"socket": "{}"}},
  "services": [{}, {}]}}"#,
            etcd.join(", "),
            s.name,
            TTL.as_secs(),
            TIMEOUT.as_millis(),
            s.socket.display(),
            service("web", WEB, 1, s.web.addr()),
            service("dns", DNS, 2, s.dns.addr()),
        );
        let config_path = self.file(&format!("{}.json", s.name));
        fs::write(&config_path, config).unwrap();
        let argv = vec![exaprobe_bin().display().to_string(), "--config".into(), config_path.display().to_string()];
        // No respawn: a killed exaprobe stays dead and ExaBGP keeps its routes.
        let conf = exabgp_config(&s.name, &run_line(&argv), false, bird, s.local);
        let conf_path = self.file(&format!("{}.exabgp.conf", s.name));
        fs::write(&conf_path, conf).unwrap();
        let log = fs::File::create(self.file(&format!("{}.exabgp.log", s.name))).unwrap();
        let child = Command::new(s.version.exabgp())
            .arg(&conf_path)
            .current_dir(self.dir.path())
            .env("exabgp_daemon_daemonize", "false")
            .env("exabgp_daemon_user", "root")
            .env("exabgp_log_destination", "stdout")
            .env("exabgp_api_cli", "false")
            .env("exabgp_api_ack", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start ExaBGP");
        let msg =
            format!("{} ({}) started, ExaBGP pid {}", self.sites[i].name, self.sites[i].version.label(), child.id());
        self.sites[i].exabgp = Some(child);
        self.note(&msg);
    }

    fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new(find_program("birdc").unwrap())
            .arg("-s")
            .arg(self.file("bird.ctl"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The BIRD protocols (exa0..exa2: the sites) with a path for `prefix`.
    fn paths(&self, prefix: &str) -> Vec<usize> {
        let mut v: Vec<usize> = parse_routes(&self.birdc(&["show", "route", "all"]))
            .into_iter()
            .filter(|r| r.prefix == prefix)
            .filter_map(|r| r.protocol.strip_prefix("exa")?.parse().ok())
            .collect();
        v.sort_unstable();
        v
    }

    fn seen(&self, i: usize, service: &str) -> Option<fleet_site::Seen> {
        fleet_site::seen(&self.sites[i].socket, service)
    }

    /// Polls `ok` every 50 ms; panics after `bound`.
    fn wait(&mut self, what: &str, bound: Duration, mut ok: impl FnMut(&Self) -> bool) -> Duration {
        let start = Instant::now();
        while !ok(self) {
            assert!(start.elapsed() < bound, "timed out after {bound:?} waiting for {what}");
            thread::sleep(Duration::from_millis(50));
        }
        let took = start.elapsed();
        self.note(&format!("{what}: after {:.3} s", took.as_secs_f64()));
        took
    }

    /// Checks `ok` for `period`: it must hold at every poll.
    fn holds(&mut self, what: &str, period: Duration, ok: impl Fn(&Self) -> Result<(), String>) {
        let start = Instant::now();
        while start.elapsed() < period {
            if let Err(e) = ok(self) {
                panic!("{what} stopped holding after {:.1} s: {e}", start.elapsed().as_secs_f64());
            }
            thread::sleep(Duration::from_millis(100));
        }
        self.note(&format!("{what}: held for {period:?}"));
    }

    fn dump(&self) {
        let mut out = String::from("\n======== e2e_fleet failure; steps:\n");
        for n in &self.notes {
            let _ = writeln!(out, "{n}");
        }
        let _ = writeln!(out, "---- birdc show route all\n{}", self.birdc(&["show", "route", "all"]));
        for s in &self.sites {
            let log = fs::read_to_string(self.file(&format!("{}.exabgp.log", s.name))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("exaprobe") || l.contains("process")).collect();
            let from = lines.len().saturating_sub(80);
            let _ = writeln!(out, "---- {} ExaBGP log (process lines, last {})", s.name, lines.len() - from);
            for l in &lines[from..] {
                let _ = writeln!(out, "{l}");
            }
        }
        eprintln!("{out}");
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump();
        }
        for s in &mut self.sites {
            if let Some(mut c) = s.exabgp.take() {
                let pid = c.id();
                let probes = probe_children(pid);
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
                let start = Instant::now();
                while matches!(c.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10) {
                    thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
                for p in probes {
                    if let Ok(argv) = fs::read(format!("/proc/{p}/cmdline"))
                        && argv.starts_with(exaprobe_bin().display().to_string().as_bytes())
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
        }
        if let Some(mut b) = self.bird.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

#[test]
#[ignore = "needs etcd, ExaBGP 4.2 and 5.0, and BIRD: run scripts/test"]
fn three_sites_never_withdraw_the_last_path() {
    let Some(mut f) = Fleet::start() else { return };
    let all = vec![0, 1, 2];

    // 1. Every site announces both services.
    f.wait("BIRD sees web and dns from three neighbors", Duration::from_secs(60), |f| {
        f.paths(WEB) == all && f.paths(DNS) == all
    });
    f.wait("every site's store connected", BOUND, |f| (0..3).all(|i| f.seen(i, "web").is_some_and(|s| s.connected)));

    // 2. One site's web fails: it withdraws normally.
    f.sites[0].web.fail();
    f.note("site0 web failed");
    f.wait("site0's web withdrawn, the others kept", BOUND, |f| f.paths(WEB) == [1, 2]);
    let s0 = f.seen(0, "web").unwrap();
    assert!(!s0.held && s0.state == "DOWN", "site0 withdrew normally: {s0:?}");
    f.sites[0].web.recover();
    f.wait("site0's web back", BOUND, |f| f.paths(WEB) == all);

    // 3. web fails everywhere at once: exactly min_sites (1) path stays.
    for s in &mut f.sites {
        s.web.fail();
    }
    f.note("web failed at every site");
    let one_held = |f: &Fleet| {
        let paths = f.paths(WEB);
        let seen: Vec<_> = (0..3).map(|i| f.seen(i, "web")).collect();
        let held: Vec<usize> = (0..3).filter(|&i| seen[i].as_ref().is_some_and(|s| s.held)).collect();
        if paths.len() == 1 && held == paths {
            Ok(())
        } else {
            Err(format!("paths {paths:?}, held {held:?}: {seen:?}"))
        }
    };
    f.wait("BIRD keeps exactly one web path, from the HELD site", BOUND, |f| one_held(f).is_ok());
    f.holds("exactly one web path, from the HELD site", Duration::from_secs(4), one_held);
    let held = f.paths(WEB)[0];
    let status = fleet_site::status(&f.sites[held].socket).unwrap();
    let web = status.services.iter().find(|s| s.name == "web").unwrap();
    let g = web.guard.as_ref().unwrap();
    assert_eq!((g.held, g.others_announcing, g.min_sites), (true, Some(0), 1), "{web:?}");

    // 4. A withdrawn site recovers: it announces, the held one withdraws.
    let back = (held + 1) % 3;
    f.sites[back].web.recover();
    f.note(&format!("site{back} web recovered (site{held} held)"));
    f.wait("the recovered site alone announces web", BOUND, |f| f.paths(WEB) == [back]);
    assert!(!f.seen(held, "web").unwrap().held, "site{held} no longer held");

    // 5. dns fails everywhere: exactly two paths (its min_sites) stay, both HELD.
    for s in &mut f.sites {
        s.dns.fail();
    }
    f.note("dns failed at every site");
    let two_held = |f: &Fleet| {
        let paths = f.paths(DNS);
        let held: Vec<usize> = (0..3).filter(|&i| f.seen(i, "dns").is_some_and(|s| s.held)).collect();
        if paths.len() == 2 && held == paths { Ok(()) } else { Err(format!("paths {paths:?}, held {held:?}")) }
    };
    f.wait("BIRD keeps exactly two dns paths, both HELD", BOUND, |f| two_held(f).is_ok());
    // Until past 10 s from the start: exaprobe's first check of ExaBGP's
    // adj-rib-out must leave the held routes announced.
    let until = Duration::from_secs(13).saturating_sub(f.t0.elapsed()).max(Duration::from_secs(3));
    f.holds("two dns paths, both HELD", until, two_held);
    let held_dns = f.paths(DNS);
    let (killed, other) = (held_dns[0], held_dns[1]);

    // 6. A held site's exaprobe is SIGKILLed: its lease expires, the other
    // held site re-evaluates (and, still short of others, keeps holding).
    let exabgp = f.sites[killed].exabgp.as_ref().unwrap().id();
    let probes = probe_children(exabgp);
    assert_eq!(probes.len(), 1, "site{killed}'s ExaBGP runs one exaprobe: {probes:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(probes[0] as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    f.note(&format!("SIGKILLed site{killed}'s exaprobe (pid {}), held for dns", probes[0]));
    let took = f.wait("the other held site counts the dead one out", TTL + BOUND, |f| {
        fleet_site::status(&f.sites[other].socket).is_some_and(|s| {
            s.services
                .iter()
                .any(|x| x.name == "dns" && x.guard.as_ref().is_some_and(|g| g.held && g.others_announcing == Some(0)))
        })
    });
    eprintln!("e2e_fleet: a dead held site counted out after {:.3} s (ttl {:?})", took.as_secs_f64(), TTL);

    // 7. The etcd majority stops: every live site decides locally within ttl + timeout.
    f.cluster.stop(0);
    f.cluster.stop(1);
    let stopped = Instant::now();
    f.note("etcd members m0 and m1 stopped (no quorum)");
    let live: Vec<usize> = (0..3).filter(|&i| i != killed).collect();
    let took = f.wait("every live site says the store is not connected", TTL + TIMEOUT + BOUND, |f| {
        live.iter().all(|&i| f.seen(i, "web").is_some_and(|s| !s.connected))
    });
    f.wait("the held dns route withdrawn locally", BOUND, |f| !f.paths(DNS).contains(&other));
    eprintln!(
        "e2e_fleet: store majority lost -> every site local after {:.3} s (ttl {TTL:?} + timeout {TIMEOUT:?})",
        took.as_secs_f64()
    );
    assert!(stopped.elapsed() < TTL + TIMEOUT + BOUND);
    // The site whose service works keeps announcing web.
    assert_eq!(f.paths(WEB), [back]);
}
