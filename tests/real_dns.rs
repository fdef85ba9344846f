//! The DNS probe against the real servers operators run: NSD, Knot and
//! Unbound (and nginx in front of Unbound's DoH), each started on a loopback
//! port of its own (see `real_servers/`). Every case first asks a real
//! client (dig, kdig, curl) to show that the server behaves as the case
//! says, then checks the probe's decision. Garbage replies and wrong IDs,
//! which no real server sends, stay with the fixture servers of
//! tests/probes.rs.

mod harness;
mod real_servers;

use std::time::{Duration, Instant};

use exaprobe::probe::dns::DnsProbe;
use exaprobe::probe::{Health, Outcome};
use harness::{EXE, Probe};
use real_servers::{Dig, certificate, knot, local_port, nginx_doh, nsd, tool, unbound};

/// The probe timeout: generous, the servers are local.
const TIMEOUT: Duration = Duration::from_secs(3);

fn probe(spec: &str) -> Outcome {
    let p: DnsProbe = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
    p.run(TIMEOUT)
}

fn dig(args: &[&str]) -> Dig {
    Dig::run("dig", args)
}

fn at(addr: std::net::SocketAddr) -> [String; 3] {
    [format!("@{}", addr.ip()), "-p".into(), addr.port().to_string()]
}

fn args<'a>(at: &'a [String; 3], rest: &[&'a str]) -> Vec<&'a str> {
    at.iter().map(String::as_str).chain(rest.iter().copied()).collect()
}

#[track_caller]
fn expect(o: &Outcome, health: Health, reason: &str) {
    assert_eq!((o.health, o.reason.as_str()), (health, reason), "{o}");
}

/// Unbound refusing a client answers REFUSED with no question section: the
/// probe takes it as the answer, at once, not after its timeout.
#[test]
fn unbound_refusing_a_client_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = local_port();
    let Some(ub) = unbound(dir.path(), port, "  access-control: 127.0.0.0/8 refuse\n", "") else { return };
    let at = at(ub.addr);
    let d = dig(&args(&at, &["www.example.test", "+time=2", "+tries=1"]));
    assert_eq!((d.status.as_deref(), d.qdcount), (Some("REFUSED"), Some(0)), "dig:\n{}", d.text);

    let started = Instant::now();
    let o = probe(&format!("{} www.example.test A", ub.addr));
    expect(&o, Health::Down, "dns-rcode REFUSED");
    assert!(started.elapsed() < TIMEOUT / 2, "took {:?}: the reply was not taken", started.elapsed());
    expect(&probe(&format!("{} www.example.test A rcode=REFUSED", ub.addr)), Health::Healthy, "dns-rcode REFUSED");
    expect(&probe(&format!("{} www.example.test A tcp rcode=REFUSED", ub.addr)), Health::Healthy, "dns-rcode REFUSED");
}

/// A UDP-only server (Unbound with `do-tcp: no`) whose answer is over 512
/// bytes: with EDNS (the default) the answer fits and the service is up;
/// without, it is truncated and the TCP retry refused, and the probe says
/// both.
#[test]
fn edns_gets_a_big_answer_from_a_udp_only_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = local_port();
    let mut lines = String::from("  do-tcp: no\n  local-zone: \"example.test.\" static\n");
    lines.push_str("  local-data: \"www.example.test. A 192.0.2.1\"\n");
    for i in 0..12 {
        lines.push_str(&format!("  local-data: 'big.example.test. TXT \"{i:02}{}\"'\n", "x".repeat(78)));
    }
    let Some(ub) = unbound(dir.path(), port, &lines, "") else { return };
    let at = at(ub.addr);
    let d = dig(&args(&at, &["big.example.test", "TXT", "+bufsize=1232", "+ignore", "+time=2", "+tries=1"]));
    assert_eq!(d.status.as_deref(), Some("NOERROR"), "dig:\n{}", d.text);
    assert!(!d.has("tc") && d.answer.len() == 12, "dig +bufsize=1232:\n{}", d.text);
    let d = dig(&args(&at, &["big.example.test", "TXT", "+noedns", "+ignore", "+time=2", "+tries=1"]));
    assert!(d.has("tc"), "dig +noedns should be truncated:\n{}", d.text);
    let d = dig(&args(&at, &["big.example.test", "TXT", "+tcp", "+time=2", "+tries=1"]));
    assert!(d.status.is_none() && d.text.contains("refused"), "dig +tcp should be refused:\n{}", d.text);

    let o = probe(&format!("{} big.example.test TXT answer=11xxx", ub.addr));
    expect(&o, Health::Healthy, "dns-rcode NOERROR");
    let o = probe(&format!("{} big.example.test TXT edns=off", ub.addr));
    expect(&o, Health::Down, "dns-truncated");
    assert!(o.detail.contains("truncated") && o.detail.contains("refused"), "{o}");
    // bufsize=512 is as small as without EDNS.
    expect(&probe(&format!("{} big.example.test TXT bufsize=512", ub.addr)), Health::Down, "dns-truncated");
}

/// NSD with `nsid:` and `identity:`: the NSID is shown and can be required,
/// `id.server` in class CH answers the identity, the answer is
/// authoritative, and NODATA is down with `nodata=down`.
#[test]
fn nsd_nsid_identity_aa_and_nodata() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ns) = nsd(dir.path(), "nsd-site-a", "nsd-a.example") else { return };
    let at = at(ns.addr);
    let d = dig(&args(&at, &["www.example.test", "+nsid", "+norec"]));
    assert_eq!((d.nsid.as_deref(), d.has("aa")), (Some("nsd-site-a"), true), "dig:\n{}", d.text);
    let d = dig(&args(&at, &["id.server", "CH", "TXT"]));
    assert!(d.answer.iter().any(|l| l.contains("\"nsd-a.example\"")), "dig CH TXT id.server:\n{}", d.text);
    let d = dig(&args(&at, &["www.example.test", "AAAA"]));
    assert!(d.status.as_deref() == Some("NOERROR") && d.answer.is_empty(), "dig AAAA:\n{}", d.text);

    let o = probe(&format!("{} www.example.test A nsid aa answer=192.0.2.1", ns.addr));
    expect(&o, Health::Healthy, "dns-rcode NOERROR");
    assert_eq!(o.identity.as_deref(), Some("nsid=nsd-site-a"));
    assert!(o.to_string().contains("[nsid=nsd-site-a]"), "{o}");
    expect(&probe(&format!("{} www.example.test nsid=nsd-site-a", ns.addr)), Health::Healthy, "dns-rcode NOERROR");
    let o = probe(&format!("{} www.example.test nsid=nsd-site-b", ns.addr));
    expect(&o, Health::Down, "dns-nsid-mismatch");
    assert_eq!(o.identity.as_deref(), Some("nsid=nsd-site-a"));
    let o = probe(&format!("{} id.server class=CH answer=nsd-a.example", ns.addr));
    expect(&o, Health::Healthy, "dns-rcode NOERROR");
    expect(&probe(&format!("{} hostname.bind class=CH answer=nsd-a", ns.addr)), Health::Healthy, "dns-rcode NOERROR");
    expect(&probe(&format!("{} www.example.test AAAA", ns.addr)), Health::Healthy, "dns-rcode NOERROR");
    expect(&probe(&format!("{} www.example.test AAAA nodata=down", ns.addr)), Health::Down, "dns-nodata");
    expect(&probe(&format!("{} www.example.test A nodata=down", ns.addr)), Health::Healthy, "dns-rcode NOERROR");
}

/// Knot signing its zone itself, and Unbound validating it with the zone's
/// KSK as trust anchor: AD from the resolver, AA from the authoritative
/// only; a broken trust anchor makes the answer bogus (SERVFAIL), which the
/// probe names.
#[test]
fn dnssec_through_a_validating_unbound_in_front_of_a_signing_knot() {
    let Some(_) = tool("kdig") else { return };
    let dir = tempfile::tempdir().unwrap();
    let knot_dir = dir.path().join("knot");
    std::fs::create_dir(&knot_dir).unwrap();
    let Some(kn) = knot(&knot_dir, "knot-site-b", true) else { return };
    let kat = at(kn.addr);
    let d = Dig::run("kdig", &args(&kat, &["www.example.test", "+nsid", "+dnssec"]));
    assert_eq!((d.nsid.as_deref(), d.has("aa")), (Some("knot-site-b"), true), "kdig:\n{}", d.text);
    assert!(d.answer.iter().any(|l| l.contains("RRSIG")), "knot does not sign:\n{}", d.text);
    let o = probe(&format!("{} www.example.test A nsid aa dnssec norecurse", kn.addr));
    expect(&o, Health::Healthy, "dns-rcode NOERROR");
    assert_eq!(o.identity.as_deref(), Some("nsid=knot-site-b"));
    // An authoritative server does not validate: no AD.
    expect(&probe(&format!("{} www.example.test A ad norecurse", kn.addr)), Health::Down, "dns-not-validated");

    let keys = dig(&args(&kat, &["example.test", "DNSKEY", "+short"]));
    let ksk = keys.text.lines().find(|l| l.starts_with("257 ")).unwrap_or_else(|| panic!("no KSK:\n{}", keys.text));
    let resolver = |sub: &str, anchor: &str| {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        let lines = format!(
            "  access-control: 127.0.0.0/8 allow\n  ede: yes\n  val-log-level: 2\n  \
             local-zone: \"test.\" nodefault\n  \
             trust-anchor: \"example.test. DNSKEY {anchor}\"\n"
        );
        let rest = format!("stub-zone:\n  name: \"example.test\"\n  stub-addr: {}@{}\n", kn.addr.ip(), kn.addr.port());
        (unbound(&d, local_port(), &lines, &rest), d)
    };
    let (Some(good), _gd) = resolver("good", ksk) else { return };
    let gat = at(good.addr);
    let d = dig(&args(&gat, &["www.example.test", "+dnssec"]));
    assert!(d.status.as_deref() == Some("NOERROR") && d.has("ad") && !d.has("aa"), "dig +dnssec:\n{}", d.text);
    expect(&probe(&format!("{} www.example.test A dnssec ad", good.addr)), Health::Healthy, "dns-rcode NOERROR");
    expect(&probe(&format!("{} www.example.test A ad", good.addr)), Health::Healthy, "dns-rcode NOERROR");
    expect(&probe(&format!("{} www.example.test A aa", good.addr)), Health::Down, "dns-not-authoritative");

    // The same key with its last base64 quantum changed: a wrong anchor.
    let mut broken = ksk.to_string();
    let tail = broken.len() - 6;
    let swapped: String = broken[tail..]
        .chars()
        .map(|c| {
            if c == 'A' {
                'B'
            } else if c.is_ascii_alphanumeric() {
                'A'
            } else {
                c
            }
        })
        .collect();
    broken.replace_range(tail.., &swapped);
    let (Some(bad), _bd) = resolver("bad", &broken) else { return };
    let bat = at(bad.addr);
    let d = dig(&args(&bat, &["www.example.test", "+dnssec"]));
    assert_eq!(d.status.as_deref(), Some("SERVFAIL"), "dig with a broken anchor:\n{}", d.text);
    let d = dig(&args(&bat, &["www.example.test", "+dnssec", "+cd"]));
    assert_eq!(d.status.as_deref(), Some("NOERROR"), "dig +cd with a broken anchor:\n{}", d.text);
    let o = probe(&format!("{} www.example.test A dnssec ad", bad.addr));
    expect(&o, Health::Down, "dns-bogus");
    // Without asking for DNSSEC, a SERVFAIL is only a SERVFAIL.
    expect(&probe(&format!("{} www.example.test A", bad.addr)), Health::Down, "dns-rcode SERVFAIL");
}

/// DNS over TLS to Unbound's `tls-port`, with a certificate made by openssl:
/// kdig and the probe agree on the name and the CA.
#[test]
fn dot_to_unbound() {
    let Some(kdig) = tool("kdig") else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = certificate(dir.path(), "dns.example.test") else { return };
    let (port, tls_port) = (local_port(), local_port());
    let lines = format!(
        "  interface: 127.0.0.1@{tls_port}\n  tls-port: {tls_port}\n  tls-service-key: \"{}\"\n  \
         tls-service-pem: \"{}\"\n  access-control: 127.0.0.0/8 allow\n  local-zone: \"example.test.\" static\n  \
         local-data: \"www.example.test. A 192.0.2.1\"\n",
        key.display(),
        cert.display()
    );
    let Some(ub) = unbound(dir.path(), port, &lines, "") else { return };
    let ca = cert.display().to_string();
    let kd = |host: &str| {
        let (ca_arg, host_arg) = (format!("+tls-ca={ca}"), format!("+tls-hostname={host}"));
        Dig::run(
            kdig.to_str().unwrap(),
            &["@127.0.0.1", "-p", &tls_port.to_string(), &ca_arg, &host_arg, "www.example.test", "+time=2", "+retry=0"],
        )
    };
    let d = kd("dns.example.test");
    assert!(d.status.as_deref() == Some("NOERROR") && !d.answer.is_empty(), "kdig +tls:\n{}", d.text);
    let d = kd("other.example.test");
    assert!(d.status.is_none(), "kdig should refuse the wrong name:\n{}", d.text);

    let server = format!("127.0.0.1:{tls_port}");
    let o = probe(&format!("{server} www.example.test tls tls-name=dns.example.test ca={ca} answer=192.0.2.1"));
    expect(&o, Health::Healthy, "dns-rcode NOERROR");
    let o = probe(&format!("{server} www.example.test tls tls-name=other.example.test ca={ca}"));
    expect(&o, Health::Down, "tls-wrong-name");
    expect(
        &probe(&format!("{server} www.example.test tls tls-name=dns.example.test")),
        Health::Down,
        "tls-self-signed",
    );
    expect(&probe(&format!("{server} www.example.test tls insecure")), Health::Healthy, "dns-rcode NOERROR");
    // TLS to the plain port: Unbound reads the ClientHello as the length
    // of a DNS message and waits for the rest, so the probe times out.
    let started = Instant::now();
    let p: DnsProbe = format!("{} www.example.test tls insecure", ub.addr).parse().unwrap();
    let o = p.run(Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout bounds a TLS handshake too");
    expect(&o, Health::Down, "timeout");
}

/// DNS over HTTPS, GET and POST: Unbound's DoH (`https-port`, HTTP/2, here
/// cleartext) behind nginx, which takes HTTP/1.1 over TLS as most DoH
/// deployments do; curl is the referee.
#[test]
fn doh_to_unbound_behind_nginx() {
    let Some(curl) = tool("curl") else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = certificate(dir.path(), "dns.example.test") else { return };
    let (port, h2_port, https_port) = (local_port(), local_port(), local_port());
    let lines = format!(
        "  interface: 127.0.0.1@{h2_port}\n  https-port: {h2_port}\n  http-notls-downstream: yes\n  \
         access-control: 127.0.0.0/8 allow\n  local-zone: \"example.test.\" static\n  \
         local-data: \"www.example.test. A 192.0.2.1\"\n"
    );
    let Some(_ub) = unbound(dir.path(), port, &lines, "") else { return };
    let Some(_ngx) = nginx_doh(dir.path(), https_port, &cert, &key, ([127, 0, 0, 1], h2_port).into()) else {
        return;
    };
    // RFC 8484's example query, for www.example.test: ID 0, RD.
    let q = "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlBHRlc3QAAAEAAQ";
    let out = std::process::Command::new(curl)
        .args(["-s", "--http1.1", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .args([
            "--resolve",
            &format!("dns.example.test:{https_port}:127.0.0.1"),
            "-H",
            "accept: application/dns-message",
        ])
        .arg(format!("https://dns.example.test:{https_port}/dns-query?dns={q}"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("content-type: application/dns-message"),
        "curl:\n{head}"
    );

    let ca = cert.display();
    let url = format!("https://127.0.0.1:{https_port}/dns-query");
    for method in ["get", "post"] {
        let o = probe(&format!(
            "www.example.test doh={url} method={method} tls-name=dns.example.test ca={ca} answer=192.0.2.1"
        ));
        expect(&o, Health::Healthy, "dns-rcode NOERROR");
    }
    let o = probe(&format!(
        "www.example.test doh=https://127.0.0.1:{https_port}/nowhere tls-name=dns.example.test ca={ca}"
    ));
    expect(&o, Health::Down, "http-status 404");
    let o = probe(&format!("www.example.test doh={url} tls-name=other.example.test ca={ca}"));
    expect(&o, Health::Down, "tls-wrong-name");
}

/// The NSID reaches the operator: in the transition log line, in `exaprobe
/// status` and in its JSON, from a real exaprobe probing a real NSD.
#[test]
fn nsid_shows_in_the_log_and_in_status() {
    let dir = tempfile::tempdir().unwrap();
    let Some(ns) = nsd(dir.path(), "nsd-site-a", "nsd-a.example") else { return };
    let socket = dir.path().join("ctl.sock");
    let check = format!("{} www.example.test nsid", ns.addr);
    let mut p = Probe::start(&[
        "--interval",
        "0.3",
        "--rise",
        "1",
        "--fall",
        "1",
        "--dry-run",
        "--name",
        "dns",
        "--ip",
        "198.51.100.53/32",
        "--dns",
        &check,
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    assert_eq!(p.line(), "announce route 198.51.100.53/32 next-hop self med 100");
    p.wait_stderr("[nsid=nsd-site-a]");
    let ctl = |args: &[&str]| {
        let out = std::process::Command::new(EXE).args(args).arg("--socket").arg(&socket).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = ctl(&["status"]);
    assert!(text.contains("healthy (dns-rcode NOERROR) [nsid=nsd-site-a]"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&ctl(&["status", "--json"])).unwrap();
    assert_eq!(v["services"][0]["checks"][0]["last"]["identity"], "nsid=nsd-site-a");
}

/// The referees' output parser (`real_servers/dig.rs`) reads dig's and
/// kdig's formats.
#[test]
fn dig_and_kdig_output_parses() {
    let dig = Dig::parse(
        ";; ->>HEADER<<- opcode: QUERY, status: REFUSED, id: 1\n;; flags: qr rd; QUERY: 0, ANSWER: 0, AUTHORITY: 0\n\
         ; NSID: 6e 73 31 (\"ns1\")\n",
    );
    assert_eq!((dig.status.as_deref(), dig.qdcount, dig.nsid.as_deref()), (Some("REFUSED"), Some(0), Some("ns1")));
    assert!(dig.has("qr") && !dig.has("aa"));
    let kdig = Dig::parse(
        ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2\n;; Flags: qr aa rd; QUERY: 1; ANSWER: 1\n\
         ;; NSID: 6B6E6F74 \"knot\"\n\n;; ANSWER SECTION:\nwww.example.test. 3600 IN A 192.0.2.1\n\n",
    );
    assert_eq!((kdig.status.as_deref(), kdig.qdcount, kdig.nsid.as_deref()), (Some("NOERROR"), Some(1), Some("knot")));
    assert!(kdig.has("aa"));
    assert_eq!(kdig.answer, ["www.example.test. 3600 IN A 192.0.2.1"]);
}
