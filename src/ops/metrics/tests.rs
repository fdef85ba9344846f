//! Tests of the parent module.

use super::*;

fn sample_live() -> Live {
    Live {
        services: vec![ServiceGauges {
            name: "dns".into(),
            state: "UP".into(),
            penalty: 1.5,
            drained: false,
            suppressed: true,
            prefixes: 2,
        }],
        channel_up: true,
        mode: "exabgp",
    }
}

#[test]
fn state_set_is_complete_with_one_current() {
    let text = Registry::new().render(&sample_live());
    let states: Vec<&str> = text.lines().filter(|l| l.starts_with("exaprobe_service_state{")).collect();
    assert_eq!(states.len(), STATES.len());
    assert!(states.contains(&"exaprobe_service_state{service=\"dns\",state=\"UP\"} 1"));
    assert_eq!(states.iter().filter(|l| l.ends_with(" 1")).count(), 1);
}

#[test]
fn unknown_state_is_shown_too() {
    let mut live = sample_live();
    live.services[0].state = "WEIRD".into();
    let text = Registry::new().render(&live);
    assert!(text.contains("exaprobe_service_state{service=\"dns\",state=\"WEIRD\"} 1\n"));
    assert!(text.contains("exaprobe_service_state{service=\"dns\",state=\"UP\"} 0\n"));
}

#[test]
fn gauges() {
    let text = Registry::new().render(&sample_live());
    for line in [
        "exaprobe_flap_penalty{service=\"dns\"} 1.5",
        "exaprobe_service_suppressed{service=\"dns\"} 1",
        "exaprobe_service_drained{service=\"dns\"} 0",
        "exaprobe_service_prefixes{service=\"dns\"} 2",
        "exaprobe_exabgp_channel_up 1",
        "exaprobe_mode{mode=\"exabgp\"} 1",
        "exaprobe_exabgp_lines_total 0",
        "exaprobe_exabgp_acks_total{result=\"done\"} 0",
        "exaprobe_exabgp_acks_total{result=\"error\"} 0",
        "exaprobe_exabgp_acks_total{result=\"missing\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let version = format!("exaprobe_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(text.lines().any(|l| l == version));
}

#[test]
fn histogram_is_cumulative() {
    let mut r = Registry::new();
    let ok = Outcome::healthy("ok");
    for ms in [0, 1, 3, 30, 700, 20_000] {
        r.record_probe("web", "tcp 127.0.0.1:80", "tcp", &ok, Duration::from_millis(ms));
    }
    let text = r.render(&Live::default());
    let bucket = |le: &str| {
        let prefix = format!(
            "exaprobe_probe_duration_seconds_bucket{{service=\"web\",check=\"tcp 127.0.0.1:80\",kind=\"tcp\",le=\"{le}\"}} "
        );
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no bucket {le}"));
        line[prefix.len()..].parse::<u64>().unwrap()
    };
    assert_eq!(bucket("0.001"), 2, "0 ms and 1 ms (le is inclusive)");
    assert_eq!(bucket("0.005"), 3);
    assert_eq!(bucket("0.05"), 4);
    assert_eq!(bucket("1"), 5);
    assert_eq!(bucket("10"), 5);
    assert_eq!(bucket("+Inf"), 6);
    assert!(text.contains(
        "exaprobe_probe_duration_seconds_count{service=\"web\",check=\"tcp 127.0.0.1:80\",kind=\"tcp\"} 6\n"
    ));
    assert!(text.contains(
        "exaprobe_probe_duration_seconds_sum{service=\"web\",check=\"tcp 127.0.0.1:80\",kind=\"tcp\"} 20.734\n"
    ));
}

#[test]
fn failures_by_reason_with_a_cap() {
    let mut r = Registry::new();
    let t = Duration::from_millis(5);
    r.record_probe("web", "c", "http", &Outcome::down("refused"), t);
    r.record_probe("web", "c", "http", &Outcome::down("refused"), t);
    r.record_probe("web", "c", "http", &Outcome::degraded("http-status 429"), t);
    r.record_probe("web", "c", "http", &Outcome::healthy("ok"), t);
    for i in 0..100 {
        r.record_probe("web", "c", "http", &Outcome::down(format!("exit {i}")), t);
    }
    let text = r.render(&Live::default());
    assert!(
        text.contains(
            "exaprobe_probe_failures_total{service=\"web\",check=\"c\",kind=\"http\",reason=\"refused\"} 2\n"
        )
    );
    assert!(text.contains("reason=\"http-status 429\"} 1\n"));
    let failures = text.lines().filter(|l| l.starts_with("exaprobe_probe_failures_total{")).count();
    assert_eq!(failures, MAX_REASONS_PER_CHECK + 1, "the cap, plus other");
    // 2 + 100 - 30 reasons that fit: 70 in other.
    assert!(text.contains("reason=\"other\"} 70\n"), "{text}");
    assert!(
        text.contains("exaprobe_probe_results_total{service=\"web\",check=\"c\",kind=\"http\",health=\"healthy\"} 1\n")
    );
    assert!(text.contains("health=\"degraded\"} 1\n"));
    assert!(text.contains("health=\"down\"} 102\n"));
}

#[test]
fn transitions_lines_acks_and_forget() {
    let mut r = Registry::new();
    r.record_transition("web", "INIT", "UP");
    r.record_transition("web", "UP", "DOWN");
    r.record_transition("web", "UP", "DOWN");
    r.record_transition("db", "INIT", "DOWN");
    r.record_lines(2);
    r.record_acks("done", 1);
    r.record_acks("missing", 1);
    let text = r.render(&Live::default());
    assert!(text.contains("exaprobe_transitions_total{service=\"web\",from=\"UP\",to=\"DOWN\"} 2\n"));
    assert!(text.contains("exaprobe_transitions_total{service=\"db\",from=\"INIT\",to=\"DOWN\"} 1\n"));
    assert!(text.contains("exaprobe_exabgp_lines_total 2\n"));
    assert!(text.contains("exaprobe_exabgp_acks_total{result=\"done\"} 1\n"));
    assert!(text.contains("exaprobe_exabgp_acks_total{result=\"missing\"} 1\n"));
    r.record_probe("web", "c", "tcp", &Outcome::down("refused"), Duration::ZERO);
    r.forget_service("web");
    let text = r.render(&Live::default());
    assert!(!text.contains("service=\"web\""), "{text}");
    assert!(text.contains("service=\"db\""));
}

#[test]
fn label_values_are_escaped() {
    let mut r = Registry::new();
    r.record_transition("a\\b\"c\nd", "X", "Y");
    let text = r.render(&Live::default());
    assert!(text.contains("exaprobe_transitions_total{service=\"a\\\\b\\\"c\\nd\",from=\"X\",to=\"Y\"} 1\n"), "{text}");
}

#[test]
fn long_reasons_are_cut_on_a_char_boundary() {
    let mut r = Registry::new();
    let reason = "é".repeat(100);
    r.record_probe("s", "c", "command", &Outcome::down(reason), Duration::ZERO);
    let text = r.render(&Live::default());
    let expected = format!("reason=\"{}\"}} 1\n", "é".repeat(MAX_REASON_LEN / 2));
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn floats() {
    assert_eq!(float(0.001), "0.001");
    assert_eq!(float(10.0), "10");
    assert_eq!(float(f64::INFINITY), "+Inf");
    assert_eq!(float(f64::NEG_INFINITY), "-Inf");
    assert_eq!(float(f64::NAN), "NaN");
}

#[test]
fn request_parsing() {
    let p = |s: &str| parse_request(s.as_bytes());
    assert_eq!(p("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics { head: false });
    assert_eq!(p("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics { head: false });
    assert_eq!(p("HEAD /metrics HTTP/1.1\n\n"), Route::Metrics { head: true });
    assert_eq!(p("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
    assert_eq!(p("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), Route::MethodNotAllowed);
    assert_eq!(p("DELETE /nope HTTP/1.1\r\n\r\n"), Route::NotFound);
    for bad in [
        "garbage\r\n\r\n",
        "GET /metrics\r\n\r\n",
        "GET /metrics HTTP/2.0\r\n\r\n",
        "GET  /metrics HTTP/1.1\r\n\r\n",
        "GET metrics HTTP/1.1\r\n\r\n",
        "G(T /metrics HTTP/1.1\r\n\r\n",
        "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
        "\r\n\r\n",
    ] {
        assert_eq!(p(bad), Route::Malformed, "{bad:?}");
    }
    assert_eq!(parse_request(b"GET /\xff HTTP/1.1\r\n\r\n"), Route::Malformed);
}

#[test]
fn head_end_variants() {
    assert_eq!(head_end(b"a\r\n\r\nbody"), Some(5));
    assert_eq!(head_end(b"a\n\nbody"), Some(3));
    assert_eq!(head_end(b"a\r\nb\r\n"), None);
}

fn get(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn slow_clients_time_out_and_excess_clients_get_503() {
    let limits = Limits { deadline: Duration::from_millis(300), max_conns: 2, max_head: 8192 };
    let addr = serve_with("127.0.0.1:0".parse().unwrap(), Arc::new(|| Some("x 1\n".into())), limits).unwrap();
    // Two clients that send half a request and wait: they take both slots.
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HT").unwrap();
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(50));
    let busy = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(busy.starts_with("HTTP/1.1 503 "), "{busy}");
    // The idle ones are told off once the deadline passes ...
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    }
    // ... and once they hang up, their slots are free again.
    drop(idle);
    thread::sleep(Duration::from_millis(100));
    let ok = get(addr, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(ok.ends_with("\r\n\r\nx 1\n"));
}

#[test]
fn oversized_head_is_a_bad_request() {
    let limits = Limits { deadline: Duration::from_secs(5), max_conns: 2, max_head: 1024 };
    let addr = serve_with("127.0.0.1:0".parse().unwrap(), Arc::new(|| Some(String::new())), limits).unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        request.extend_from_slice(format!("X-Filler-{i}: aaaaaaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let out = get(addr, &request);
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
}

use std::fs;

#[test]
fn textfile_replaces_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exaprobe.prom");
    write_textfile(&path, "a 1\n").unwrap();
    write_textfile(&path, "a 2\n").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "a 2\n");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("exaprobe.prom")]);
    let missing = dir.path().join("no/such/dir/x.prom");
    assert!(write_textfile(&missing, "a 1\n").is_err());
    assert!(write_textfile(Path::new("/"), "a 1\n").is_err());
}
