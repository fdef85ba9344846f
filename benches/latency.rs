//! Benchmark: the latency of one probe run (p50 and p99 of its wall time)
//! against the real servers of `tests/real_http_ntp.rs`, on loopback: HTTP
//! and HTTPS to nginx, HTTPS with a client certificate to nginx with
//! `ssl_verify_client on`, NTP to chronyd (`local stratum 8`). Each run is
//! a whole probe as the engine runs it: a fresh connection, the TLS
//! handshake with the certificate check, the body read.
//!
//! `cargo bench --bench latency [-- KIND...]` (release profile), KIND among
//! `http`, `https`, `https-mtls`, `ntp` (default: all); the count per kind
//! is `EXAPROBE_BENCH_LATENCY` (default 1000), after a warm-up of a tenth of
//! it. Under `cargo test --all-targets` (no `--bench` argument) it is a
//! smoke test of a few probes per kind. A kind whose server or openssl is
//! not installed is skipped with a message (a failure under `CI=true`, as
//! in the tests). Exits 1 if any probe was not healthy.

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

#[path = "../tests/real_servers/mod.rs"]
mod real_servers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use exaprobe::probe::http::HttpProbe;
use exaprobe::probe::ntp::NtpProbe;
use exaprobe::probe::{Health, Outcome};

use real_servers::{Chrony, NAME, Nginx, Pki, free_port, loopback, tools};

const KINDS: [&str; 4] = ["http", "https", "https-mtls", "ntp"];
const TIMEOUT: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let kinds: Vec<&str> = args.iter().filter(|a| bench && !a.starts_with('-')).map(String::as_str).collect();
    if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(k)) {
        eprintln!("latency bench: unknown kind {bad:?} (known: {})", KINDS.join(", "));
        std::process::exit(2);
    }
    let wanted = |k: &str| kinds.is_empty() || kinds.contains(&k);
    let count = if bench {
        match std::env::var("EXAPROBE_BENCH_LATENCY").map(|v| v.trim().parse::<usize>()) {
            Err(_) => 1000,
            Ok(Ok(n)) if n > 0 => n,
            Ok(_) => {
                eprintln!("latency bench: EXAPROBE_BENCH_LATENCY is not a positive count");
                std::process::exit(2);
            }
        }
    } else {
        3
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let ip = loopback();
    let mut rows = Vec::new();
    let mut failed = 0;

    let web = if ["http", "https", "https-mtls"].iter().any(|k| wanted(k)) {
        tools(["nginx", "openssl"]).map(|[nginx, openssl]| {
            let pki = Pki::new(&openssl, dir.path());
            let ports = [free_port(ip, false), free_port(ip, false), free_port(ip, false)];
            let servers = format!(
                r#"server {{ listen {ip}:{p0}; location / {{ return 200 "OK\n"; }} }}
                server {{ listen {ip}:{p1} ssl; ssl_certificate {c}; ssl_certificate_key {k};
                    location / {{ return 200 "OK\n"; }} }}
                server {{ listen {ip}:{p2} ssl; ssl_certificate {c}; ssl_certificate_key {k};
                    ssl_verify_client on; ssl_client_certificate {ca}; location / {{ return 200 "OK\n"; }} }}"#,
                p0 = ports[0],
                p1 = ports[1],
                p2 = ports[2],
                c = pki.file("server.pem"),
                k = pki.file("server.key"),
                ca = pki.file("ca.pem"),
            );
            let nginx = Nginx::start(&nginx, dir.path(), ip, &ports, &servers);
            (nginx, pki, ports)
        })
    } else {
        None
    };
    if let Some((_, pki, ports)) = &web {
        let ca = pki.file("ca.pem");
        let specs = [
            ("http", format!("http://{ip}:{}/ body=OK", ports[0])),
            ("https", format!("https://{ip}:{}/ host={NAME} ca={ca} body=OK", ports[1])),
            (
                "https-mtls",
                format!(
                    "https://{ip}:{}/ host={NAME} ca={ca} cert={} key={} body=OK",
                    ports[2],
                    pki.file("client.pem"),
                    pki.file("client.key")
                ),
            ),
        ];
        for (kind, spec) in specs.iter().filter(|(k, _)| wanted(k)) {
            let probe: HttpProbe = spec.parse().expect("probe");
            let s = measure(count, &|| probe.run(TIMEOUT));
            failed += s.failed;
            rows.push((*kind, "nginx 1.22 (`return 200`)", s));
        }
    }
    let ntp = if wanted("ntp") {
        tools(["chronyd"]).map(|[chronyd]| {
            let addr = SocketAddr::from((ip, free_port(ip, true)));
            let conf = "allow 127.0.0.0/8\nlocal stratum 8";
            Chrony::start(&chronyd, dir.path(), "bench", addr, false, std::net::Ipv4Addr::LOCALHOST, conf)
        })
    } else {
        None
    };
    if let Some(chrony) = &ntp {
        let probe: NtpProbe = chrony.addr.to_string().parse().expect("probe");
        let s = measure(count, &|| probe.run(TIMEOUT));
        failed += s.failed;
        rows.push(("ntp", "chronyd 4.3 (`local stratum 8`)", s));
    }
    drop(ntp);
    drop(web);

    let mut out = std::io::stdout().lock();
    use std::io::Write;
    let _ =
        writeln!(out, "\nper-probe latency, {count} probes per kind{}:\n", if bench { "" } else { " (smoke test)" });
    let _ = writeln!(out, "| probe | real server | p50 | p99 |");
    let _ = writeln!(out, "|---|---|---|---|");
    for (kind, server, s) in &rows {
        let _ = writeln!(out, "| {kind} | {server} | {} | {} |", show(s.p50), show(s.p99));
    }
    if failed > 0 {
        eprintln!("latency bench: {failed} probe(s) were not healthy; the numbers above are not meaningful");
        std::process::exit(1);
    }
}

struct Sample {
    p50: Duration,
    p99: Duration,
    failed: usize,
}

/// Runs `probe` `count` times after a warm-up, one after the other.
fn measure(count: usize, probe: &dyn Fn() -> Outcome) -> Sample {
    let mut failed = 0;
    for _ in 0..count / 10 {
        probe();
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let o = probe();
        times.push(start.elapsed());
        if o.health != Health::Healthy {
            if failed == 0 {
                eprintln!("latency bench: {o}");
            }
            failed += 1;
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).saturating_sub(1).min(times.len() - 1)];
    Sample { p50: at(0.50), p99: at(0.99), failed }
}

fn show(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 1.0 { format!("{:.0} µs", ms * 1e3) } else { format!("{ms:.2} ms") }
}
