//! Benchmark: the DNS probe's latency (p50, p99 of single probes' wall
//! time) against real servers on loopback, one row per transport: NSD and
//! Unbound over UDP and TCP, Unbound over TLS (DoT, `tls-port`), and DoH
//! GET and POST through nginx (TLS, HTTP/1.1) to Unbound's `https-port`.
//! The servers are the ones of tests/real_dns.rs, started the same way
//! (`tests/real_servers/`).
//!
//! `cargo bench --bench real_dns`, or `scripts/bench-probes` (which runs it
//! after the CPU bench). `EXAPROBE_BENCH_DNS=N` probes per row (default
//! 1000, after 50 of warm-up). Under `cargo test --all-targets` (no
//! `--bench` argument) it is a smoke test: 5 probes a row. Missing servers
//! skip their rows (not under `CI=true`). Exits 1 if any probe was not
//! healthy.

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

#[path = "../tests/real_servers/mod.rs"]
mod servers;

use std::time::{Duration, Instant};

use exaprobe::probe::Health;
use exaprobe::probe::dns::DnsProbe;

const TIMEOUT: Duration = Duration::from_secs(2);

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let count = if bench {
        std::env::var("EXAPROBE_BENCH_DNS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(1000)
    } else {
        5
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows: Vec<(String, String)> = Vec::new();
    let nsd_dir = dir.path().join("nsd");
    std::fs::create_dir(&nsd_dir).unwrap();
    let nsd = servers::nsd(&nsd_dir, "bench", "bench");
    if let Some(ns) = &nsd {
        rows.push(("NSD 4.6, UDP".into(), format!("{} www.example.test A norecurse", ns.addr)));
        rows.push(("NSD 4.6, TCP".into(), format!("{} www.example.test A norecurse tcp", ns.addr)));
    }
    let ub_dir = dir.path().join("unbound");
    std::fs::create_dir(&ub_dir).unwrap();
    let cert = servers::certificate(&ub_dir, "dns.example.test");
    let (port, tls_port, h2_port, https_port) =
        (servers::local_port(), servers::local_port(), servers::local_port(), servers::local_port());
    let (mut unbound, mut nginx) = (None, None);
    if let Some((cert, key)) = &cert {
        let lines = format!(
            "  interface: 127.0.0.1@{tls_port}\n  tls-port: {tls_port}\n  tls-service-key: \"{k}\"\n  \
             tls-service-pem: \"{c}\"\n  interface: 127.0.0.1@{h2_port}\n  https-port: {h2_port}\n  \
             http-notls-downstream: yes\n  access-control: 127.0.0.0/8 allow\n  \
             local-zone: \"example.test.\" static\n  local-data: \"www.example.test. A 192.0.2.1\"\n",
            k = key.display(),
            c = cert.display()
        );
        unbound = servers::unbound(&ub_dir, port, &lines, "");
        if let Some(ub) = &unbound {
            let ca = cert.display();
            rows.push(("Unbound 1.17, UDP".into(), format!("{} www.example.test A", ub.addr)));
            rows.push(("Unbound 1.17, TCP".into(), format!("{} www.example.test A tcp", ub.addr)));
            rows.push((
                "Unbound 1.17, DoT".into(),
                format!("127.0.0.1:{tls_port} www.example.test A tls tls-name=dns.example.test ca={ca}"),
            ));
            nginx = servers::nginx_doh(&ub_dir, https_port, cert, key, ([127, 0, 0, 1], h2_port).into());
            if nginx.is_some() {
                for method in ["get", "post"] {
                    rows.push((
                        format!("nginx 1.22 + Unbound, DoH {}", method.to_uppercase()),
                        format!(
                            "www.example.test A doh=https://127.0.0.1:{https_port}/dns-query method={method} \
                             tls-name=dns.example.test ca={ca}"
                        ),
                    ));
                }
            }
        }
    }

    let mut failed = 0;
    println!("| server, transport | p50 | p99 | probes |");
    println!("|---|---|---|---|");
    for (label, spec) in &rows {
        let probe: DnsProbe = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        for _ in 0..count.min(50) {
            probe.run(TIMEOUT);
        }
        let mut took = Vec::with_capacity(count);
        for _ in 0..count {
            let start = Instant::now();
            let o = probe.run(TIMEOUT);
            took.push(start.elapsed());
            if o.health != Health::Healthy {
                failed += 1;
                eprintln!("{label}: {o}");
            }
        }
        took.sort();
        let at = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)];
        println!("| {label} | {} | {} | {count} |", ms(at(50)), ms(at(99)));
    }
    drop((nginx, unbound, nsd));
    if failed > 0 {
        eprintln!("real_dns bench: {failed} probe(s) were not healthy");
        std::process::exit(1);
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 { format!("{ms:.2} ms") } else { format!("{ms:.1} ms") }
}
