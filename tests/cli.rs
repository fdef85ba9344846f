//! Integration tests of the exaprobe binary: dry-run, and a fake ExaBGP on
//! its stdin/stdout (acks, missing acks, `error` acks, the shutdown line, end
//! of stdin, SIGTERM), against loopback services the tests start.
//!
//! Waits are bounded polls on the binary's output; timing figures live in the
//! benchmark, not here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use std::thread;
use std::time::{Duration, Instant};

mod harness;

use harness::{EXE, Probe, WAIT};

/// A loopback TCP listener that can be closed and reopened on the same port.
struct Service {
    port: u16,
    listener: Option<TcpListener>,
}

impl Service {
    fn up() -> Service {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Service { port: listener.local_addr().unwrap().port(), listener: Some(listener) }
    }
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn stop(&mut self) {
        self.listener = None;
    }
    fn start(&mut self) {
        self.listener = Some(TcpListener::bind(("127.0.0.1", self.port)).unwrap());
    }
}

const FAST: [&str; 8] = ["--interval", "0.3", "--fast-interval", "0.1", "--rise", "2", "--fall", "2"];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    FAST.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn dry_run_follows_the_service_up_down_and_up() {
    let mut svc = Service::up();
    let addr = svc.addr();
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.1/32",
        "--ip",
        "2001:db8::1/128",
        "--next-hop6",
        "2001:db8::ff",
        "--tcp",
        &addr,
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    assert_eq!(p.line(), "announce route 2001:db8::1/128 next-hop 2001:db8::ff med 101");
    p.wait_stderr("-> UP");
    svc.stop();
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 1000");
    assert_eq!(p.line(), "announce route 2001:db8::1/128 next-hop 2001:db8::ff med 1001");
    p.wait_stderr("FALLING(1/2) -> DOWN");
    p.wait_stderr("down (refused)");
    svc.start();
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    p.signal("INT");
    assert_eq!(p.line(), "announce route 2001:db8::1/128 next-hop 2001:db8::ff med 101");
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32");
    assert_eq!(p.line(), "withdraw route 2001:db8::1/128");
    assert_eq!(p.wait_exit(WAIT).0, 0);
}

#[test]
fn a_fresh_start_with_the_service_down_withdraws_at_once() {
    let mut svc = Service::up();
    let addr = svc.addr();
    svc.stop();
    // rise/fall 3 with a slow interval: only the crash-safety rule can make
    // the first probe's failure produce a line.
    let mut p = Probe::start(&[
        "--interval",
        "30",
        "--rise",
        "3",
        "--fall",
        "3",
        "--withdraw-on-down",
        "--ip",
        "198.51.100.7/32",
        "--tcp",
        &addr,
    ]);
    assert_eq!(p.line(), "withdraw route 198.51.100.7/32");
    p.send("done");
    p.wait_stderr("INIT -> DOWN");
}

#[test]
fn commands_wait_for_acks_and_survive_missing_and_error_acks() {
    let mut p = Probe::start(&args(&[
        "--ack-timeout",
        "2s",
        "--cmd",
        "true",
        "--ip",
        "198.51.100.1/32",
        "--ip",
        "198.51.100.2/32",
        "--ip",
        "198.51.100.3/32",
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    // Nothing more until the ack comes (the ack timeout is 2 s) ...
    assert!(p.stdout.recv_timeout(Duration::from_millis(500)).is_err(), "a second command went before the ack");
    // ... and `done` releases the next command.
    p.send("done");
    assert_eq!(p.line(), "announce route 198.51.100.2/32 next-hop self med 101");
    p.send("error");
    p.wait_stderr("answered `error` to: announce route 198.51.100.2/32");
    assert_eq!(p.line(), "announce route 198.51.100.3/32 next-hop self med 102");
    // No ack at all (ExaBGP 4.2 does that for some malformed commands): the
    // channel gives up after --ack-timeout and goes on.
    p.wait_stderr("no ack from ExaBGP within 2s for: announce route 198.51.100.3/32");
    // Events and empty lines are not acks.
    p.send("neighbor 127.0.0.1 up");
    p.send("");
    p.wait_stderr("ExaBGP: neighbor 127.0.0.1 up");
}

#[test]
fn shutdown_line_makes_it_exit_quietly() {
    let mut p = Probe::start(&args(&["--cmd", "true", "--ip", "198.51.100.1/32"]));
    assert!(p.line().starts_with("announce route 198.51.100.1/32"));
    p.send("done");
    p.send("shutdown 1234 1");
    let (code, took) = p.wait_exit(WAIT);
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new(), "nothing may follow the shutdown line");
}

#[test]
fn end_of_stdin_makes_it_exit_and_kill_its_checks() {
    let marker = format!("exaprobe-test-marker-{}", std::process::id());
    let cmd = format!("sleep 30 & exec sleep 31 # {marker}");
    // A timeout is at most the interval.
    let mut p = Probe::start(&["--cmd", &cmd, "--interval", "90", "--timeout", "60", "--ip", "198.51.100.1/32"]);
    p.wait_stderr("prefix(es)");
    // Wait until the check runs, then close stdin.
    let running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
    };
    let until = Instant::now() + WAIT;
    while !running() {
        assert!(Instant::now() < until, "the check never started");
        thread::sleep(Duration::from_millis(20));
    }
    p.stdin = None;
    let (code, took) = p.wait_exit(WAIT);
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new());
    let until = Instant::now() + WAIT;
    while running() {
        assert!(Instant::now() < until, "a check process outlived exaprobe");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_withdraws_and_exits_even_without_acks() {
    let mut p = Probe::start(&args(&["--cmd", "true", "--ip", "198.51.100.1/32", "--ip", "198.51.100.2/32"]));
    assert!(p.line().starts_with("announce route 198.51.100.1/32"));
    p.send("done");
    assert!(p.line().starts_with("announce route 198.51.100.2/32"));
    p.send("done");
    p.wait_stderr("UP: announcing");
    p.signal("TERM");
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32");
    assert_eq!(p.line(), "withdraw route 198.51.100.2/32");
    let (code, took) = p.wait_exit(WAIT);
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn a_bad_flag_under_exabgp_idles_instead_of_exiting() {
    let mut p = Probe::start(&["--ip", "198.51.100.1/24", "--community", "65000:1\nwithdraw route 198.51.100.0/24"]);
    p.wait_stderr("--ip: \"198.51.100.1/24\" has host bits set");
    p.wait_stderr("--community: ");
    p.wait_stderr("not exiting");
    assert!(p.child.try_wait().unwrap().is_none(), "exited under ExaBGP: ExaBGP would respawn it");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new(), "nothing may reach stdout");
    p.stdin = None;
    assert_eq!(p.wait_exit(WAIT).0, 2);
}

#[test]
fn a_bad_flag_by_hand_exits_2_naming_the_flag() {
    let out = Command::new(EXE)
        .args(["--ip", "198.51.100.1/32", "--rise", "0", "--sudo"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rise: must be at least 1"), "{err}");
    assert!(err.contains("--sudo is not supported"), "{err}");
    let out = Command::new(EXE).args(["--bogus"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn help_under_exabgp_goes_to_stderr() {
    let mut p = Probe::start(&["--help"]);
    p.wait_stderr("Usage: exaprobe");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new());
    p.signal("TERM");
    assert_eq!(p.wait_exit(WAIT).0, 2);
}

#[test]
fn maintenance_file_disables_and_its_removal_restores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maintenance");
    let svc = Service::up();
    let addr = svc.addr();
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.1/32",
        "--tcp",
        &addr,
        "--disable",
        file.to_str().unwrap(),
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    std::fs::write(&file, "").unwrap();
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 500");
    p.wait_stderr("maintenance file");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
}

#[test]
fn nagios_plugin_exit_codes_drive_up_degraded_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let plugin = dir.path().join("check_fake");
    std::fs::write(&state, "0").unwrap();
    std::fs::write(&plugin, format!("#!/bin/sh\necho \"FAKE status $(cat {0})\"\nexit $(cat {0})\n", state.display()))
        .unwrap();
    Command::new("chmod").arg("+x").arg(&plugin).status().unwrap();
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.9/32",
        "--plugin",
        plugin.to_str().unwrap(),
        "--degraded-community",
        "65000:911",
        "--degraded-as-path",
        "65001 65001",
        "--withdraw-on-down",
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.9/32 next-hop self med 100");
    std::fs::write(&state, "1").unwrap();
    assert_eq!(
        p.line(),
        "announce route 198.51.100.9/32 next-hop self med 200 community [ 65000:911 ] as-path [ 65001 65001 ]"
    );
    p.wait_stderr("UP -> FALLING(1/2): degraded (exit 1): FAKE status 1");
    std::fs::write(&state, "2").unwrap();
    assert_eq!(p.line(), "withdraw route 198.51.100.9/32");
    std::fs::write(&state, "0").unwrap();
    assert_eq!(p.line(), "announce route 198.51.100.9/32 next-hop self med 100");
}

#[test]
fn a_check_marked_degrade_only_degrades_and_require_any_tolerates_one_failure() {
    let mut dead = Service::up();
    let dead_addr = dead.addr();
    dead.stop();
    let live = Service::up();
    let soft = format!("{dead_addr} on-fail=degrade timeout=200ms");
    let mut p = Probe::start(&args(&["--dry-run", "--ip", "198.51.100.9/32", "--tcp", &live.addr(), "--tcp", &soft]));
    assert_eq!(p.line(), "announce route 198.51.100.9/32 next-hop self med 200");
    p.wait_stderr("service INIT -> DEGRADED");
    drop(p);
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.9/32",
        "--tcp",
        &live.addr(),
        "--tcp",
        &dead_addr,
        "--require",
        "any",
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.9/32 next-hop self med 100");
    p.wait_stderr("require any");
}

fn ctl(socket: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(EXE).args(args).arg("--socket").arg(socket).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn status_drain_with_expiry_and_undrain_over_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let svc = Service::up();
    let start = |p: &std::path::Path| {
        Probe::start(&args(&[
            "--dry-run",
            "--name",
            "web",
            "--ip",
            "198.51.100.1/32",
            "--tcp",
            &svc.addr(),
            "--control-socket",
            p.to_str().unwrap(),
            "--drain-duration",
            "300ms",
        ]))
    };
    let mut p = start(&socket);
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    let (code, out, _) = ctl(&socket, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("web  UP"), "{out}");
    assert!(out.contains("sent: announce route 198.51.100.1/32 next-hop self med 100"), "{out}");
    let (code, out, _) = ctl(&socket, &["status", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"][0]["checks"][0]["last"]["reason"], "connected");

    // A drain: GRACEFUL_SHUTDOWN first, then the withdraw, then back when it expires.
    let (code, _, err) = ctl(&socket, &["drain", "web", "--for", "2s", "--reason", "test"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100 community [ 65535:0 ]");
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32");
    let (_, out, _) = ctl(&socket, &["status"]);
    assert!(out.contains("web  DRAINED") && out.contains("(test)"), "{out}");
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    p.wait_stderr("drain expired");

    // A drain without end survives a restart.
    let (code, _, _) = ctl(&socket, &["drain", "--all"]);
    assert_eq!(code, 0);
    assert!(p.line().contains("65535:0"));
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32");
    p.signal("TERM");
    assert_eq!(p.wait_exit(WAIT).0, 0);
    drop(p);
    let mut p = start(&socket);
    p.wait_stderr("drain restored");
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32", "restarted drained, no drain stage again");
    let (code, _, _) = ctl(&socket, &["undrain", "web"]);
    assert_eq!(code, 0);
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");

    // Errors: an unknown service, and a second instance on the same socket.
    let (code, _, err) = ctl(&socket, &["recheck", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no service \"nope\""), "{err}");
    let (code, _, _) = ctl(&socket, &["recheck", "web"]);
    assert_eq!(code, 0);
    let out = Command::new(EXE)
        .args(["--dry-run", "--ip", "198.51.100.2/32", "--control-socket", socket.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("belongs to a running exaprobe"));
    // Under ExaBGP the same error must not make it exit (ExaBGP would respawn it).
    let mut second =
        Probe::start(&["--ip", "198.51.100.2/32", "--cmd", "true", "--control-socket", socket.to_str().unwrap()]);
    second.wait_stderr("belongs to a running exaprobe");
    second.wait_stderr("not exiting");
    assert_eq!(second.rest_of_stdout(), Vec::<String>::new());
    second.stdin = None;
    assert_eq!(second.wait_exit(WAIT).0, 2);
}

#[test]
fn the_control_socket_refuses_bad_requests_and_other_users() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.1/32",
        "--cmd",
        "true",
        "--control-socket",
        socket.to_str().unwrap(),
    ]));
    assert!(p.line().starts_with("announce"));
    let mut s = UnixStream::connect(&socket).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for bad in ["this is not json", r#"{"command":"reboot"}"#, r#"{"command":"drain"}"#] {
        writeln!(s, "{bad}").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], false, "{bad} -> {line}");
    }
    // The same connection still works.
    writeln!(s, r#"{{"command":"status"}}"#).unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains(r#""ok":true"#), "{line}");
    // Mode 0600: another user cannot connect (root bypasses file modes, so
    // run the client as nobody, in a directory it may enter).
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "/bin/sh",
            "-c",
            &format!(
                "exec 3<>/dev/null; python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{}')\"",
                socket.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "nobody could connect");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.child.try_wait().unwrap().is_none(), "the daemon must keep running");
}

fn write_config(path: &std::path::Path, dir: &std::path::Path, services: &str) {
    let text = format!(
        r#"{{"control": {{"socket": "{0}/ctl.sock", "state_file": "{0}/state.json"}}, "services": [{services}]}}"#,
        dir.display()
    );
    std::fs::write(path, text).unwrap();
}

fn svc_json(name: &str, prefix: &str, med: u32, check: &str) -> String {
    format!(
        r#"{{"name": "{name}", "prefixes": ["{prefix}"], "checks": [{check}], "interval": "300ms",
            "fast_interval": "100ms", "timeout": "200ms", "rise": 2, "fall": 2, "attributes": {{"med": {med}}}}}"#
    )
}

#[test]
fn sighup_reload_keeps_unchanged_services_and_applies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("exaprobe.json");
    let ok = r#"{"type": "command", "shell": "true"}"#;
    let a = svc_json("a", "198.51.100.1/32", 100, ok);
    let b = svc_json("b", "198.51.100.2/32", 100, ok);
    write_config(&conf, dir.path(), &format!("{a}, {b}"));
    let mut p = Probe::start(&["--dry-run", "--config", conf.to_str().unwrap()]);
    let mut first = vec![p.line(), p.line()];
    first.sort();
    assert_eq!(
        first,
        [
            "announce route 198.51.100.1/32 next-hop self med 100",
            "announce route 198.51.100.2/32 next-hop self med 100"
        ]
    );

    // An invalid file changes nothing.
    std::fs::write(&conf, r#"{"services": [{"name": "a", "prefixes": ["198.51.100.1/24"]}]}"#).unwrap();
    p.signal("HUP");
    p.wait_stderr("the new config is invalid; keeping the running one");
    p.wait_stderr("host bits");

    // a unchanged, b's MED changed, c added; then b removed.
    let b2 = svc_json("b", "198.51.100.2/32", 150, ok);
    let c = svc_json("c", "198.51.100.3/32", 100, ok);
    write_config(&conf, dir.path(), &format!("{a}, {b2}, {c}"));
    p.signal("HUP");
    assert_eq!(p.line(), "announce route 198.51.100.2/32 next-hop self med 150");
    assert_eq!(p.line(), "announce route 198.51.100.3/32 next-hop self med 100");
    p.wait_stderr("1 unchanged, 1 changed, 1 added, 0 removed");
    write_config(&conf, dir.path(), &format!("{a}, {c}"));
    p.signal("HUP");
    assert_eq!(p.line(), "withdraw route 198.51.100.2/32");
    p.wait_stderr("2 unchanged, 0 changed, 0 added, 1 removed");
    // Nothing for the unchanged services: the next line is the final withdraw.
    p.signal("TERM");
    let mut last = vec![p.line(), p.line()];
    last.sort();
    assert_eq!(last, ["withdraw route 198.51.100.1/32", "withdraw route 198.51.100.3/32"]);
}

#[test]
fn a_hanging_check_does_not_delay_another_service() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("exaprobe.json");
    let state = dir.path().join("state");
    std::fs::write(&state, "0").unwrap();
    let hang = r#"{"name": "hang", "prefixes": ["198.51.100.1/32"], "interval": "90s", "timeout": "80s",
                   "checks": [{"type": "command", "shell": "sleep 60"}]}"#;
    let flip = format!(
        r#"{{"name": "flip", "prefixes": ["198.51.100.2/32"], "interval": "200ms", "fast_interval": "100ms",
             "timeout": "100ms", "rise": 1, "fall": 1,
             "checks": [{{"type": "command", "shell": "exit $(cat {})"}}]}}"#,
        state.display()
    );
    write_config(&conf, dir.path(), &format!("{hang}, {flip}"));
    let mut p = Probe::start(&["--dry-run", "--config", conf.to_str().unwrap()]);
    assert_eq!(p.line(), "announce route 198.51.100.2/32 next-hop self med 100");
    for (code, line) in
        [("2", "withdraw route 198.51.100.2/32"), ("0", "announce route 198.51.100.2/32 next-hop self med 100")]
    {
        std::fs::write(&state, code).unwrap();
        let t = Instant::now();
        assert_eq!(p.line(), line);
        // Generous: the service probes every 200 ms; a blocked engine or pool would take a minute.
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    }
    assert!(p.stderr_text().contains("hang") && !p.stderr_text().contains("hang: service"), "hang has no result yet");
}

#[test]
fn metrics_are_served_over_http() {
    let svc = Service::up();
    let dir = tempfile::tempdir().unwrap();
    let textfile = dir.path().join("exaprobe.prom");
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--name",
        "web",
        "--ip",
        "198.51.100.1/32",
        "--tcp",
        &svc.addr(),
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ]));
    assert!(p.line().starts_with("announce"));
    p.wait_stderr("metrics: http://");
    let text = p.stderr_text();
    let url = text.split("metrics: http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(&url).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"), "{body}");
    for needle in [
        r#"exaprobe_service_state{service="web",state="UP"} 1"#,
        r#"exaprobe_transitions_total{service="web",from="INIT",to="UP"} 1"#,
        "exaprobe_probe_duration_seconds_count{service=\"web\"",
        "exaprobe_exabgp_lines_total 1",
    ] {
        assert!(body.contains(needle), "missing {needle} in:\n{body}");
    }
    // The textfile is written at start, then every 15 s.
    let until = Instant::now() + WAIT;
    while !textfile.exists() {
        assert!(Instant::now() < until, "no metrics textfile");
        thread::sleep(Duration::from_millis(20));
    }
    assert!(std::fs::read_to_string(&textfile).unwrap().contains("exaprobe_build_info"));
}

#[test]
fn drain_on_shutdown_announces_graceful_shutdown_before_the_withdraw() {
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.1/32",
        "--cmd",
        "true",
        "--drain-on-shutdown",
        "--drain-duration",
        "500ms",
    ]));
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    p.wait_stderr("UP: announcing");
    p.signal("TERM");
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100 community [ 65535:0 ]");
    let t = Instant::now();
    assert_eq!(p.line(), "withdraw route 198.51.100.1/32");
    assert!(t.elapsed() >= Duration::from_millis(400), "the drain stage was cut short: {:?}", t.elapsed());
    assert_eq!(p.wait_exit(WAIT).0, 0);
}

#[test]
fn reassertion_repeats_announcements_but_not_withdraws() {
    let mut svc = Service::up();
    let addr = svc.addr();
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--ip",
        "198.51.100.1/32",
        "--tcp",
        &addr,
        "--reassert",
        "300ms",
        "--withdraw-on-down",
    ]));
    let up = "announce route 198.51.100.1/32 next-hop self med 100";
    assert_eq!(p.line(), up);
    assert_eq!(p.line(), up, "re-asserted");
    assert_eq!(p.line(), up, "re-asserted again");
    svc.stop();
    // Skip re-assertions still in flight, up to the withdraw.
    let mut line = p.line();
    while line == up {
        line = p.line();
    }
    assert_eq!(line, "withdraw route 198.51.100.1/32");
    // Several re-assertion periods pass: no second withdraw.
    assert!(p.stdout.recv_timeout(Duration::from_millis(1200)).is_err(), "a withdraw was re-sent");
}

#[test]
fn dry_run_under_exabgp_still_drains_stdin_and_exits_at_its_end() {
    let mut p = Probe::start(&args(&["--dry-run", "--ip", "198.51.100.1/32", "--cmd", "true"]));
    assert!(p.line().starts_with("announce"));
    p.wait_stderr("--dry-run under ExaBGP");
    p.stdin = None;
    let (code, _) = p.wait_exit(WAIT);
    assert_eq!(code, 0);
    p.wait_stderr("stdin closed");
}

#[test]
fn a_subcommand_under_exabgp_idles_and_prints_nothing() {
    let mut p = Probe::start(&["status"]);
    p.wait_stderr("subcommands (check, status, drain, …) are for a shell");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new());
    p.stdin = None;
    assert_eq!(p.wait_exit(WAIT).0, 2);
}

// ---------------------------------------------------------------------------
// The control socket, the state file and the pid file under abuse (issue 9).

impl Probe {
    /// Starts exaprobe as [`Probe::start`] does, with at most `nofile` open
    /// files (a small systemd LimitNOFILE), so that a leak shows quickly.
    fn start_with_nofile(nofile: u32, args: &[&str]) -> Probe {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\"")).arg(EXE).args(args);
        Probe::spawn(cmd)
    }

    /// Waits until stderr has had `n` more lines containing `needle` than now.
    fn wait_stderr_count(&mut self, needle: &str, n: usize) {
        let count = |seen: &[String]| seen.iter().filter(|l| l.contains(needle)).count();
        let want = count(&self.seen_stderr) + n;
        let until = Instant::now() + WAIT;
        while count(&self.seen_stderr) < want {
            assert!(Instant::now() < until, "stderr never said {needle:?} {n} more times:\n{}", self.stderr_text());
            if let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(50)) {
                self.seen_stderr.push(l);
            }
        }
    }
}

/// The arguments of one service "web" on `svc`, with a control socket.
fn web<'a>(svc: &'a str, socket: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let base = ["--dry-run", "--name", "web", "--ip", "198.51.100.1/32", "--tcp", svc, "--control-socket", socket];
    args(&base.iter().copied().chain(extra.iter().copied()).collect::<Vec<_>>())
}

const WEB_UP: &str = "announce route 198.51.100.1/32 next-hop self med 100";
const WEB_DOWN: &str = "withdraw route 198.51.100.1/32";

#[test]
fn idle_control_connections_cannot_exhaust_file_descriptors() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let svc = Service::up();
    let (addr, sock) = (svc.addr(), socket.to_str().unwrap().to_string());
    let mut p = Probe::start_with_nofile(128, &web(&addr, &sock, &["--debug"]));
    assert_eq!(p.line(), WEB_UP);
    // Far more idle connections than the daemon has file descriptors.
    let conns: Vec<UnixStream> = (0..300).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    // Beyond the first 16 (accepted in order), each is told why and closed.
    for (i, c) in conns.iter().enumerate().skip(16) {
        c.set_read_timeout(Some(WAIT)).unwrap();
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line).unwrap();
        assert!(line.contains(r#""ok":false"#) && line.contains("too many control connections"), "{i}: {line}");
    }
    // Meanwhile the probes keep working: healthy rounds, no withdraw.
    p.wait_stderr_count("still UP: healthy", 5);
    let text = p.stderr_text();
    assert!(!text.contains("os error 24") && !text.contains("Too many open files"), "{text}");
    assert_eq!(p.stdout.try_recv().ok(), None, "nothing withdrawn");
    // Once the idle clients hang up, the socket serves again.
    drop(conns);
    let until = Instant::now() + WAIT;
    loop {
        let (code, out, err) = ctl(&socket, &["status"]);
        if code == 0 {
            assert!(out.contains("web  UP"), "{out}");
            break;
        }
        assert!(err.contains("too many control connections") && Instant::now() < until, "{err}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_control_socket_path_that_is_a_regular_file_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exaprobe.json");
    std::fs::write(&path, "precious").unwrap();
    let svc = Service::up();
    let (addr, sock) = (svc.addr(), path.to_str().unwrap().to_string());
    let mut p = Probe::start(&web(&addr, &sock, &[]));
    p.wait_stderr("exists and is not a socket; refusing to replace it");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new());
}

#[test]
fn the_state_file_and_the_pid_file_are_not_written_through_symlinks() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let state = dir.path().join("state.json");
    // The old writer's fixed temporary name, and the pid file, planted.
    symlink(&victim, dir.path().join("state.tmp")).unwrap();
    let pid = dir.path().join("exaprobe.pid");
    symlink(&victim, &pid).unwrap();
    let socket = dir.path().join("ctl.sock");
    let svc = Service::up();
    let (addr, sock) = (svc.addr(), socket.to_str().unwrap().to_string());
    let extra = ["--state-file", state.to_str().unwrap(), "--pid", pid.to_str().unwrap()];
    let mut p = Probe::start(&web(&addr, &sock, &extra));
    assert_eq!(p.line(), WEB_UP);
    let (code, _, err) = ctl(&socket, &["drain", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(p.line().contains("65535:0"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(std::fs::read_to_string(&pid).unwrap(), format!("{}\n", p.child.id()));
    assert!(!std::fs::symlink_metadata(&pid).unwrap().file_type().is_symlink());
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["drains"]["web"]["by"], "root", "{saved}");
    // The socket was never open to others, whatever the umask.
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_second_instance_on_the_same_state_file_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (one, two) = (dir.path().join("one.sock"), dir.path().join("two.sock"));
    let svc = Service::up();
    let addr = svc.addr();
    let (one_s, two_s, state_s) =
        (one.to_str().unwrap().to_string(), two.to_str().unwrap().to_string(), state.to_str().unwrap().to_string());
    let mut first = Probe::start(&web(&addr, &one_s, &["--state-file", &state_s]));
    assert_eq!(first.line(), WEB_UP);
    assert_eq!(ctl(&one, &["drain", "web"]).0, 0);
    assert!(first.line().contains("65535:0"));
    // Another service on another socket, but the same state file: refused
    // at startup (it would erase web's drain), naming the file and the pid.
    let mut second = Probe::start(&args(&[
        "--name",
        "other",
        "--ip",
        "198.51.100.2/32",
        "--cmd",
        "true",
        "--control-socket",
        &two_s,
        "--state-file",
        &state_s,
    ]));
    second.wait_stderr(&format!(
        "the state file {state_s} is in use by another running exaprobe, pid {}",
        first.child.id()
    ));
    assert_eq!(second.rest_of_stdout(), Vec::<String>::new());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("\"web\""), "{saved}");
    // Once the first is gone, the state file is free again.
    first.signal("TERM");
    assert_eq!(first.wait_exit(WAIT).0, 0);
    let mut third = Probe::start(&web(&addr, &two_s, &["--state-file", &state_s]));
    third.wait_stderr("drain restored");
    assert_eq!(third.line(), WEB_DOWN, "still drained");
}

/// Starts "web" (healthy) on a state file holding `content`; returns it
/// with the socket.
fn start_on_state(dir: &std::path::Path, svc: &Service, content: &str) -> (Probe, std::path::PathBuf) {
    let state = dir.join("state.json");
    std::fs::write(&state, content).unwrap();
    let socket = dir.join("ctl.sock");
    let (addr, sock, state_s) = (svc.addr(), socket.to_str().unwrap().to_string(), state.to_str().unwrap().to_string());
    (Probe::start(&web(&addr, &sock, &["--state-file", &state_s])), socket)
}

#[test]
fn an_unreadable_state_file_is_kept_and_drains_every_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::up();
    let (mut p, socket) = start_on_state(dir.path(), &svc, "{\"drains\": {\"web\": ");
    // Healthy, but never announced: drained until an operator says otherwise.
    assert_eq!(p.line(), WEB_DOWN);
    p.wait_stderr("ERROR");
    p.wait_stderr("is unreadable");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("state.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "kept aside");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), "{\"drains\": {\"web\": ");
    let (code, out, _) = ctl(&socket, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("web  DRAINED") && out.contains("drained by exaprobe (state file unreadable: "), "{out}");
    assert_eq!(ctl(&socket, &["undrain", "web"]).0, 0);
    assert_eq!(p.line(), WEB_UP);
}

#[test]
fn a_bad_state_entry_drains_its_service() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::up();
    let (mut p, socket) = start_on_state(dir.path(), &svc, r#"{"drains": {"web": {"by": 5, "since": 1}}}"#);
    assert_eq!(p.line(), WEB_DOWN);
    p.wait_stderr("drains.web: ");
    let (_, out, _) = ctl(&socket, &["status"]);
    assert!(out.contains("web  DRAINED") && out.contains("state file entry unreadable"), "{out}");
}

#[test]
fn an_absurd_until_in_the_state_file_is_bounded_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::up();
    let content = r#"{"drains": {"web": {"by": "root", "reason": "r", "since": 1, "until": 1e300}}}"#;
    let (mut p, socket) = start_on_state(dir.path(), &svc, content);
    assert_eq!(p.line(), WEB_DOWN);
    let (code, out, _) = ctl(&socket, &["status", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let left = v["services"][0]["drained"]["seconds_left"].as_f64().unwrap();
    // Cut to the longest duration exaprobe takes: a year.
    let year = 365.0 * 86400.0;
    assert!(left > year - 3600.0 && left <= year, "{left}");
}

#[test]
fn a_drain_for_longer_than_the_clocks_hold_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let svc = Service::up();
    let (addr, sock) = (svc.addr(), socket.to_str().unwrap().to_string());
    let mut p = Probe::start(&web(&addr, &sock, &[]));
    assert_eq!(p.line(), WEB_UP);
    let (code, _, err) = ctl(&socket, &["drain", "web", "--for", "10000000000000000000s"]);
    assert_eq!(code, 1);
    assert!(err.contains("for: "), "{err}");
    let (code, out, _) = ctl(&socket, &["status"]);
    assert_eq!(code, 0, "the daemon is still up");
    assert!(out.contains("web  UP") && !out.contains("drained by"), "{out}");
    assert_eq!(p.rest_of_stdout(), Vec::<String>::new());
    assert!(p.child.try_wait().unwrap().is_none());
}

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line; 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn accept_errors_back_off_instead_of_spinning() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let sock = socket.to_str().unwrap().to_string();
    // So few file descriptors that accept() fails with EMFILE before the
    // connection limit is reached; a command check needs none of its own.
    let mut p = Probe::start_with_nofile(
        16,
        &args(&["--dry-run", "--ip", "198.51.100.1/32", "--cmd", "true", "--control-socket", &sock]),
    );
    assert!(p.line().starts_with("announce"));
    let _conns: Vec<UnixStream> = (0..30).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    // Wait until the daemon has used up its descriptors.
    let until = Instant::now() + WAIT;
    // (Counting the descriptors below the limit: one inherited above it does not count.)
    let below_limit = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().parse::<u32>().is_ok_and(|n| n < 16))
            .count()
    };
    while below_limit(p.child.id()) < 16 {
        assert!(Instant::now() < until, "the daemon never ran out of file descriptors");
        thread::sleep(Duration::from_millis(20));
    }
    // One more client now waits in the backlog, and every accept() fails.
    let _pending = UnixStream::connect(&socket).unwrap();
    // A spinning accept loop burns a whole core; backing off uses next to nothing.
    let (pid, before, start) = (p.child.id(), cpu_ticks(p.child.id()), Instant::now());
    thread::sleep(Duration::from_secs(2));
    let (used, ticks_per_s) = (cpu_ticks(pid) - before, 100.0);
    let share = used as f64 / ticks_per_s / start.elapsed().as_secs_f64();
    assert!(share < 0.3, "the daemon used {:.0} % of a CPU with accept failing", share * 100.0);
    assert!(p.child.try_wait().unwrap().is_none());
    p.wait_stderr("accept failed");
}

/// Runs exaprobe by hand (stdin not a pipe): exit code and stderr.
fn by_hand(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(EXE).args(args).stdin(Stdio::null()).output().unwrap();
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn an_invalid_name_cannot_forge_a_log_line() {
    let forged = "web\nannounce route 198.51.100.9/32";
    let (code, err) = by_hand(&["--ip", "198.51.100.1/32", "--cmd", "true", "--name", forged, "--rise", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--name: \"web\\nannounce route 198.51.100.9/32\" is not a name"), "{err}");
    assert!(err.lines().all(|l| l.starts_with("exaprobe[exaprobe]: ")), "{err}");
}

#[test]
fn durations_past_a_year_are_refused_before_the_engine_starts() {
    for args in [
        ["--interval", "10000000000000000000"],
        ["--interval", "300000000000y"],
        ["--fast-interval", "10000000000000000000"],
        ["--reassert", "300000000000y"],
        ["--ack-timeout", "300000000000y"],
        ["--drain-duration", "400d"],
    ] {
        let (code, err) =
            by_hand(&[&["--dry-run", "--ip", "198.51.100.1/32", "--cmd", "true"][..], &args[..]].concat());
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(&format!("{}: ", args[0])) && err.contains("365 days"), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("exaprobe.json");
    std::fs::write(&conf, r#"{"services": [{"name": "a", "prefixes": ["198.51.100.1/32"], "interval": 1e19}]}"#)
        .unwrap();
    let (code, err) = by_hand(&["check", "--config", conf.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("services[0].interval: \"10000000000000000000\" is longer than"), "{err}");
}

#[test]
fn config_files_that_are_not_regular_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for path in ["/dev/zero", fifo.to_str().unwrap()] {
        for flag in ["--config", "-F"] {
            let start = Instant::now();
            let (code, err) = by_hand(&[flag, path]);
            assert_eq!(code, Some(2), "{flag} {path}: {err}");
            assert!(err.contains("not a regular file"), "{flag} {path}: {err}");
            assert!(start.elapsed() < WAIT, "{flag} {path}");
        }
        let (code, err) = by_hand(&["check", "--config", path]);
        assert_eq!(code, Some(2), "check {path}: {err}");
        assert!(err.contains("not a regular file"), "check {path}: {err}");
    }
}

#[test]
fn a_json_config_is_known_by_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("exaprobe.conf");
    // Its own control socket: the default one (and its state file under
    // /var/lib/exaprobe) belongs to the host, not to a test.
    let service = format!(
        r#"{{"control": {{"socket": "{}"}}, "services": [{{"name": "a", "prefixes": ["198.51.100.1/32"], "checks": [{{"type": "command", "shell": "true"}}]}}]}}"#,
        dir.path().join("ctl.sock").display()
    );
    // With a byte order mark: JSON all the same, run as a config.
    std::fs::write(&conf, format!("\u{feff}{service}")).unwrap();
    let mut p = Probe::start(&["--dry-run", "-F", conf.to_str().unwrap()]);
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100");
    drop(p);
    // A comment or a top-level array: the JSON parser's error, not clap's.
    for (text, needle) in
        [(format!("// the web service\n{service}"), "(line 1, column 1)"), ("[]".to_string(), "expected an object")]
    {
        std::fs::write(&conf, &text).unwrap();
        let (code, err) = by_hand(&["-F", conf.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{text}: {err}");
        assert!(err.contains(needle) && !err.contains("unexpected argument"), "{text}: {err}");
    }
}

#[test]
fn drain_for_more_than_a_year_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ctl.sock");
    let mut p = Probe::start(&args(&[
        "--dry-run",
        "--name",
        "web",
        "--ip",
        "198.51.100.1/32",
        "--cmd",
        "true",
        "--control-socket",
        socket.to_str().unwrap(),
    ]));
    assert!(p.line().starts_with("announce"));
    let (code, _, err) = ctl(&socket, &["drain", "web", "--for", "300000000000y"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("365 days"), "{err}");
    let (code, out, _) = ctl(&socket, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("web  UP"), "{out}");
}

/// The run lines of issue 11: what argparse accepts, exaprobe accepts, and
/// the routes follow the healthcheck's rules (the differential suite checks
/// them against the real healthcheck; this one runs without ExaBGP).
#[test]
fn healthcheck_grammar_abbreviations_negative_numbers_and_every_address() {
    let mut p = Probe::start(&[
        "--dry-run",
        "--ip",
        "198.51.100.0/30",
        "--deaggregate",
        "--withdraw",
        "--fast",
        "0.5",
        "--local-pref",
        "200",
        "--increase",
        "-1",
        "--up-metric",
        "10",
        "--start-ip",
        "-1",
        "--neighbor",
        "*",
        "--neighbor",
        "127.0.0.2",
        "--cmd",
        "true",
        "--rise",
        "1",
    ]);
    let got: Vec<String> = (0..4).map(|_| p.line()).collect();
    assert_eq!(
        got,
        [
            "announce route 198.51.100.3/32 next-hop self med 10 local-preference 200",
            "announce route 198.51.100.0/32 next-hop self med 9 local-preference 200",
            "announce route 198.51.100.1/32 next-hop self med 8 local-preference 200",
            "announce route 198.51.100.2/32 next-hop self med 7 local-preference 200",
        ]
    );
}

#[test]
fn a_flag_file_takes_abbreviated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("healthcheck.conf");
    std::fs::write(&conf, "ip = 198.51.100.1/32\nlocal-pref = 150\nwithdraw\ncmd = true\nrise = 1\n").unwrap();
    let mut p = Probe::start(&["--dry-run", "-F", conf.to_str().unwrap()]);
    assert_eq!(p.line(), "announce route 198.51.100.1/32 next-hop self med 100 local-preference 150");
}

#[test]
fn grammar_errors_name_the_flag_once() {
    let ip = ["--ip", "198.51.100.1/32"];
    for (args, needle) in [
        (vec!["--co", "x"], "ambiguous flag --co: it could be"),
        (vec!["--frobnicate"], "unknown flag --frobnicate"),
        (vec!["--cmd"], "--cmd needs a value"),
        (vec!["--up-metric", "x"], "invalid value 'x' for '--up-metric <M>'"),
        // `-sF daemon` is --syslog-facility, refused with its reason, not `-s -F daemon`.
        (vec!["-sF", "daemon"], "--syslog-facility is not supported"),
        (vec!["-sF"], "--syslog-facility is not supported"),
    ] {
        let all: Vec<&str> = ip.iter().copied().chain(args.iter().copied()).collect();
        let (code, err) = by_hand(&all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("error: error:"), "{args:?}: {err}");
        assert!(!err.contains("Usage:"), "{args:?}: {err}");
    }
}
