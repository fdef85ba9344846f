//! Tests of the native probes (tcp, http/https, dns, ntp) and of the command
//! probe's clean-up, against fixture servers on loopback (see `fixtures`).
//!
//! Every test checks both the health and the reason. Timeouts are asserted
//! with a generous upper bound (timeout + 1 s) and a small lower bound, so
//! the suite stays reliable on a loaded two-core machine. Each probe run
//! prints its wall time on stderr (`cargo test --test probes -- --nocapture`).

mod fixtures;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exaprobe::probe::command::{Children, CommandProbe, ExitCodes, Program};
use exaprobe::probe::dns::DnsProbe;
use exaprobe::probe::http::HttpProbe;
use exaprobe::probe::ntp::NtpProbe;
use exaprobe::probe::tcp::TcpProbe;
use exaprobe::probe::{Check, Health, Outcome};

use fixtures::{
    DnsServer, HttpServer, NtpServer, TcpMode, TcpServer, TestPki, closed_tcp_port, closed_udp_port, tls_config,
};

/// Timeout for runs expected to finish early.
const LONG: Duration = Duration::from_secs(3);
/// Timeout for runs expected to time out.
const SHORT: Duration = Duration::from_millis(300);
/// How far past its timeout a probe may end.
const MARGIN: Duration = Duration::from_secs(1);

/// Runs a probe with a timeout, prints and returns the outcome and wall time.
fn timed(what: &str, timeout: Duration, run: impl FnOnce(Duration) -> Outcome) -> (Outcome, Duration) {
    let start = Instant::now();
    let outcome = run(timeout);
    let took = start.elapsed();
    eprintln!("wall-time {what}: {:.1} ms -> {outcome}", took.as_secs_f64() * 1e3);
    assert!(took < timeout + MARGIN, "{what} took {took:?} with a timeout of {timeout:?}");
    (outcome, took)
}

/// Asserts health and reason.
#[track_caller]
fn assert_outcome(o: &Outcome, health: Health, reason: &str) {
    assert_eq!((o.health, o.reason.as_str()), (health, reason), "whole outcome: {o}");
}

/// Runs a probe expected to time out and checks it ended near its timeout.
#[track_caller]
fn assert_times_out(what: &str, run: impl FnOnce(Duration) -> Outcome) -> Outcome {
    let (o, took) = timed(what, SHORT, run);
    assert_outcome(&o, Health::Down, "timeout");
    assert!(took >= SHORT - Duration::from_millis(20), "{what} gave up early, after {took:?}");
    o
}

fn healthy(o: &Outcome, reason: &str) {
    assert_outcome(o, Health::Healthy, reason);
}

fn down(o: &Outcome, reason: &str) {
    assert_outcome(o, Health::Down, reason);
}

// ------------------------------------------------------------------------ tcp

#[test]
fn tcp_connect_refused_and_silent() {
    let silent = TcpServer::start(TcpMode::Silent);
    let p = TcpProbe::connect(silent.addr);
    healthy(&timed("tcp connect", LONG, |t| p.run(t)).0, "connected");

    let p = TcpProbe::connect(closed_tcp_port());
    down(&timed("tcp closed", LONG, |t| p.run(t)).0, "refused");

    // Accepts, never answers: only a banner check notices.
    let p: TcpProbe = format!("{} expect=220", silent.addr).parse().unwrap();
    assert_times_out("tcp silent expect", |t| p.run(t));
}

#[test]
fn tcp_banner_and_send_expect() {
    let smtp = TcpServer::start(TcpMode::Banner { text: b"220 fixture ESMTP\r\n".to_vec(), close: false });
    let p: TcpProbe = format!("{} expect=220", smtp.addr).parse().unwrap();
    let (o, _) = timed("tcp banner", LONG, |t| p.run(t));
    healthy(&o, "reply-matched");
    assert_eq!(o.detail, "220 fixture ESMTP");

    // The wrong banner on a connection kept open: waits, then says what came.
    let p: TcpProbe = format!("{} expect=+OK", smtp.addr).parse().unwrap();
    let o = assert_times_out("tcp wrong banner, open", |t| p.run(t));
    assert_eq!(o.detail, "220 fixture ESMTP");

    // The wrong banner, then close: a mismatch at once.
    let closing = TcpServer::start(TcpMode::Banner { text: b"-ERR go away\r\n".to_vec(), close: true });
    let p: TcpProbe = format!("{} expect=+OK", closing.addr).parse().unwrap();
    let (o, took) = timed("tcp wrong banner, closed", LONG, |t| p.run(t));
    down(&o, "reply-mismatch");
    assert!(took < Duration::from_secs(1));

    let redis = TcpServer::start(TcpMode::Ping);
    let p: TcpProbe = format!("{} send=PING\\r\\n expect=+PONG", redis.addr).parse().unwrap();
    healthy(&timed("tcp send/expect", LONG, |t| p.run(t)).0, "reply-matched");
}

// ----------------------------------------------------------------------- http

#[test]
fn http_status_and_body() {
    let server = HttpServer::start();
    let p: HttpProbe = server.url("/health").parse().unwrap();
    let (o, _) = timed("http 200", LONG, |t| p.run(t));
    healthy(&o, "http-status 200");
    let seen = server.last();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("GET", "/health"));
    assert_eq!(seen.host, Some(server.addr.to_string()));
    assert!(seen.header("user-agent").is_some_and(|ua| ua.starts_with("exaprobe/")));

    server.set(|b| {
        b.status = 503;
        b.body = "maintenance\n".into();
    });
    let (o, _) = timed("http 503", LONG, |t| p.run(t));
    down(&o, "http-status 503");
    assert!(o.detail.contains("maintenance"), "{o}");

    // A status list makes 503 the healthy answer (a drain page, say).
    let p503: HttpProbe = format!("{} status=500-599", server.url("/")).parse().unwrap();
    healthy(&timed("http 503 expected", LONG, |t| p503.run(t)).0, "http-status 503");

    server.set(|b| {
        b.status = 200;
        b.body = "status: degraded\n".into();
    });
    let p: HttpProbe = format!("{} body=status:\\x20ok", server.url("/")).parse().unwrap();
    down(&timed("http body mismatch", LONG, |t| p.run(t)).0, "body-mismatch");
    let p: HttpProbe = format!("{} body-regex=^status:\\s+(ok|degraded)\\s*$", server.url("/")).parse().unwrap();
    healthy(&timed("http body regex", LONG, |t| p.run(t)).0, "http-status 200");
    server.set(|b| b.body = "status: ok\n".into());
    let p: HttpProbe = format!("{} body=status:\\x20ok", server.url("/")).parse().unwrap();
    healthy(&timed("http body contains", LONG, |t| p.run(t)).0, "http-status 200");
}

#[test]
fn http_method_headers_and_host() {
    let server = HttpServer::start();
    let p: HttpProbe =
        format!("{} method=HEAD header=X-Probe:exaprobe host=www.example.test", server.url("/ping")).parse().unwrap();
    healthy(&timed("http head", LONG, |t| p.run(t)).0, "http-status 200");
    let seen = server.last();
    assert_eq!(seen.method, "HEAD");
    assert_eq!(seen.header("x-probe").as_deref(), Some("exaprobe"));
    // The name replaces the address in Host; the port stays (not 80).
    assert_eq!(seen.host, Some(format!("www.example.test:{}", server.addr.port())));
}

#[test]
fn http_redirects_only_when_asked() {
    let server = HttpServer::start();
    server.set(|b| b.redirect_to = Some("/new".into()));
    let p: HttpProbe = server.url("/old").parse().unwrap();
    healthy(&timed("http 301 kept", LONG, |t| p.run(t)).0, "http-status 301");
    assert_eq!(server.seen().len(), 1);
    let p: HttpProbe = format!("{} status=200", server.url("/old")).parse().unwrap();
    down(&timed("http 301 refused", LONG, |t| p.run(t)).0, "http-status 301");
    let p: HttpProbe = format!("{} status=200 follow-redirects", server.url("/old")).parse().unwrap();
    healthy(&timed("http 301 followed", LONG, |t| p.run(t)).0, "http-status 200");
    assert_eq!(server.last().path, "/new");
}

#[test]
fn http_timeouts_and_refusals() {
    let server = HttpServer::start();
    server.set(|b| b.delay = Duration::from_secs(5));
    let p: HttpProbe = server.url("/").parse().unwrap();
    assert_times_out("http slow", |t| p.run(t));

    // Head on time, body late: the body is read by default (issue 12), so
    // the timeout bounds it, with a body check or without; HEAD has none.
    server.set(|b| {
        b.delay = Duration::ZERO;
        b.body_delay = Duration::from_secs(5);
    });
    let p: HttpProbe = format!("{} body=ok", server.url("/")).parse().unwrap();
    assert_times_out("http slow body", |t| p.run(t));
    let p: HttpProbe = server.url("/").parse().unwrap();
    assert_times_out("http slow body, no body check", |t| p.run(t));
    let p: HttpProbe = format!("{} method=HEAD", server.url("/")).parse().unwrap();
    let (o, took) = timed("http slow body, HEAD", LONG, |t| p.run(t));
    healthy(&o, "http-status 200");
    assert!(took < Duration::from_secs(1));

    let silent = TcpServer::start(TcpMode::Silent);
    let p: HttpProbe = format!("http://{}/", silent.addr).parse().unwrap();
    assert_times_out("http silent", |t| p.run(t));

    let p: HttpProbe = format!("http://{}/", closed_tcp_port()).parse().unwrap();
    down(&timed("http closed", LONG, |t| p.run(t)).0, "refused");
}

#[test]
fn https_verification() {
    let pki = TestPki::new();
    let server = HttpServer::start_tls(&pki);
    let ca = pki.ca_file.display();

    // The certificate names 127.0.0.1 too, so the bare URL verifies.
    let p: HttpProbe = format!("{} ca={ca}", server.url("/")).parse().unwrap();
    healthy(&timed("https by address", LONG, |t| p.run(t)).0, "http-status 200");
    assert_eq!(server.last().sni, None, "no SNI for an address");

    // Presenting the public name: Host and SNI carry it, verification uses it.
    let p: HttpProbe = format!("{} ca={ca} host=www.example.test", server.url("/")).parse().unwrap();
    healthy(&timed("https by name", LONG, |t| p.run(t)).0, "http-status 200");
    let seen = server.last();
    assert_eq!(seen.sni.as_deref(), Some("www.example.test"));
    assert_eq!(seen.host, Some(format!("www.example.test:{}", server.addr.port())));

    // A name the certificate does not cover.
    let p: HttpProbe = format!("{} ca={ca} host=other.example.test", server.url("/")).parse().unwrap();
    let (o, _) = timed("https wrong name", LONG, |t| p.run(t));
    down(&o, "tls-wrong-name");
    assert_eq!(
        o.detail,
        "the certificate is for www.example.test, alt.example.test, 127.0.0.1, not other.example.test"
    );

    // Mozilla's roots do not know the test CA; nor does another test CA.
    let p: HttpProbe = format!("{} host=www.example.test", server.url("/")).parse().unwrap();
    let (o, _) = timed("https unknown CA", LONG, |t| p.run(t));
    down(&o, "tls-unknown-ca");
    assert!(o.detail.contains("not issued by a CA among Mozilla's roots"), "{o}");
    // Another test CA has the same name, not the same key.
    let other = TestPki::new();
    let p: HttpProbe = format!("{} ca={}", server.url("/"), other.ca_file.display()).parse().unwrap();
    down(&timed("https other CA", LONG, |t| p.run(t)).0, "tls-bad-signature");

    // insecure skips verification altogether.
    let p: HttpProbe = format!("{} insecure host=nowhere.invalid", server.url("/")).parse().unwrap();
    healthy(&timed("https insecure", LONG, |t| p.run(t)).0, "http-status 200");

    // TLS to a plain-HTTP server, which answers the ClientHello with a 400
    // and closes, as nginx does.
    let plain = TcpServer::start(TcpMode::Banner { text: b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), close: true });
    let p: HttpProbe = format!("https://{}/ insecure", plain.addr).parse().unwrap();
    let (o, _) = timed("https to http", LONG, |t| p.run(t));
    down(&o, "tls-protocol");
    assert!(o.detail.starts_with("the server does not speak TLS (plain HTTP on this port?)"), "{o}");

    // A slow HTTPS server times out like a plain one.
    server.set(|b| b.delay = Duration::from_secs(5));
    let p: HttpProbe = format!("{} ca={ca}", server.url("/")).parse().unwrap();
    assert_times_out("https slow", |t| p.run(t));
}

// ------------------------------------------------------------------------ dns

fn dns(server: &DnsServer, rest: &str) -> DnsProbe {
    format!("{} {rest}", server.addr).parse().unwrap()
}

#[test]
fn dns_rcodes_and_answers() {
    let server = DnsServer::start();
    let (o, _) = timed("dns A", LONG, |t| dns(&server, "www.example.test A").run(t));
    healthy(&o, "dns-rcode NOERROR");
    assert!(o.detail.contains("192.0.2.1"), "{o}");
    healthy(&dns(&server, "www.example.test A answer=192.0.2.1").run(LONG), "dns-rcode NOERROR");
    down(&dns(&server, "www.example.test A answer=192.0.2.99").run(LONG), "dns-answer-missing");
    healthy(&dns(&server, "www.example.test AAAA answer=2001:db8::1").run(LONG), "dns-rcode NOERROR");
    down(&dns(&server, "www.example.test AAAA answer=2001:db8::2").run(LONG), "dns-answer-missing");
    // Text answers: TXT exact case, other types (here MX) in any case.
    healthy(&dns(&server, "example.test TXT answer=spf1").run(LONG), "dns-rcode NOERROR");
    down(&dns(&server, "example.test TXT answer=SPF1").run(LONG), "dns-answer-missing");
    healthy(&dns(&server, "example.test MX answer=10\\x20mail.example.test.").run(LONG), "dns-rcode NOERROR");
    // NODATA passes on its rcode unless an answer is required.
    healthy(&dns(&server, "example.test SRV").run(LONG), "dns-rcode NOERROR");
    down(&dns(&server, "example.test SRV answer=5060").run(LONG), "dns-answer-missing");
    assert_eq!(server.seen().tcp, 0);
    assert!(server.seen().rd.iter().all(|&rd| rd), "RD is set by default");
    healthy(&dns(&server, "example.test SOA norecurse").run(LONG), "dns-rcode NOERROR");
    assert_eq!(server.seen().rd.last(), Some(&false));

    server.set(|b| b.rcode = domain::base::iana::Rcode::SERVFAIL);
    let (o, _) = timed("dns SERVFAIL", LONG, |t| dns(&server, "www.example.test A").run(t));
    down(&o, "dns-rcode SERVFAIL");
    server.set(|b| b.rcode = domain::base::iana::Rcode::NXDOMAIN);
    down(&dns(&server, "gone.example.test A").run(LONG), "dns-rcode NXDOMAIN");
    healthy(&dns(&server, "gone.example.test A rcode=NXDOMAIN").run(LONG), "dns-rcode NXDOMAIN");
    server.set(|b| b.rcode = domain::base::iana::Rcode::NOERROR);
    down(&dns(&server, "www.example.test A rcode=NXDOMAIN").run(LONG), "dns-rcode NOERROR");
}

#[test]
fn dns_over_tcp_and_truncation() {
    let server = DnsServer::start();
    let (o, _) = timed("dns tcp", LONG, |t| dns(&server, "www.example.test A tcp answer=192.0.2.1").run(t));
    healthy(&o, "dns-rcode NOERROR");
    assert_eq!((server.seen().udp, server.seen().tcp), (0, 1));

    // A truncated UDP reply is retried over TCP.
    server.set(|b| b.truncate_udp = true);
    let (o, _) = timed("dns truncated", LONG, |t| dns(&server, "www.example.test A answer=192.0.2.1").run(t));
    healthy(&o, "dns-rcode NOERROR");
    assert_eq!((server.seen().udp, server.seen().tcp), (1, 2));

    // TC means nothing over a stream: a TCP reply with it set is broken,
    // whether asked over TCP or as the retry of a truncated UDP reply.
    server.set(|b| b.truncate_tcp = true);
    let o = dns(&server, "www.example.test A tcp").run(LONG);
    down(&o, "dns-truncated");
    assert!(o.detail.contains("TC set over TCP"), "{o}");
    let o = dns(&server, "www.example.test A").run(LONG);
    down(&o, "dns-truncated");
    assert!(o.detail.contains("TC set over TCP"), "{o}");
    assert_eq!((server.seen().udp, server.seen().tcp), (2, 4));
}

#[test]
fn dns_bad_replies_timeouts_and_refusals() {
    let server = DnsServer::start();
    server.set(|b| b.wrong_id = true);
    // Over UDP a reply with the wrong ID is ignored (it might be stale) and
    // reported when nothing better came in time.
    let (o, took) = timed("dns wrong id udp", SHORT, |t| dns(&server, "www.example.test A").run(t));
    down(&o, "dns-bad-reply");
    assert!(took >= SHORT - Duration::from_millis(20));
    // Over TCP it is final at once.
    let (o, took) = timed("dns wrong id tcp", LONG, |t| dns(&server, "www.example.test A tcp").run(t));
    down(&o, "dns-bad-reply");
    assert!(took < Duration::from_secs(1));

    // A UDP socket nobody reads, and a TCP server that never answers.
    let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p: DnsProbe = format!("{} example.test A", silent_udp.local_addr().unwrap()).parse().unwrap();
    assert_times_out("dns silent udp", |t| p.run(t));
    let silent_tcp = TcpServer::start(TcpMode::Silent);
    let p: DnsProbe = format!("{} example.test A tcp", silent_tcp.addr).parse().unwrap();
    assert_times_out("dns silent tcp", |t| p.run(t));

    let p: DnsProbe = format!("{} example.test A", closed_udp_port()).parse().unwrap();
    down(&timed("dns closed udp", LONG, |t| p.run(t)).0, "refused");
    let p: DnsProbe = format!("{} example.test A tcp", closed_tcp_port()).parse().unwrap();
    down(&timed("dns closed tcp", LONG, |t| p.run(t)).0, "refused");
}

/// A TCP server that, once a client connects, sends `head` and then one
/// zero byte every 50 ms, for at most 4 s: a peer that keeps a read alive
/// without ever completing it. Its port.
fn trickling_server(head: &'static [u8]) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        let Ok((mut conn, _)) = listener.accept() else { return };
        let _ = conn.write_all(head);
        for _ in 0..80 {
            std::thread::sleep(Duration::from_millis(50));
            if conn.write_all(&[0]).is_err() {
                return;
            }
        }
    });
    addr
}

#[test]
fn dns_trickling_peers_time_out_by_the_deadline() {
    // A TLS record header announcing a 16 KiB handshake record, then a byte
    // at a time: each byte would restart a per-read timeout.
    let addr = trickling_server(&[0x16, 0x03, 0x03, 0x40, 0x00]);
    let p: DnsProbe = format!("{addr} example.test A tls insecure").parse().unwrap();
    assert_times_out("dot trickle", |t| p.run(t));
    // Plain TCP: a reply length of 16 KiB, then a byte at a time.
    let addr = trickling_server(&[0x40, 0x00]);
    let p: DnsProbe = format!("{addr} example.test A tcp").parse().unwrap();
    assert_times_out("dns tcp trickle", |t| p.run(t));
}

#[test]
fn dns_source_address() {
    let server = DnsServer::start();
    healthy(&dns(&server, "www.example.test A source=127.0.0.2").run(LONG), "dns-rcode NOERROR");
    healthy(&dns(&server, "www.example.test A tcp source=127.0.0.3").run(LONG), "dns-rcode NOERROR");
    let peers: Vec<IpAddr> = server.seen().peers.iter().map(SocketAddr::ip).collect();
    assert_eq!(peers, [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]);
}

#[test]
fn dns_soa_lag() {
    let ours = DnsServer::start();
    let reference = DnsServer::start();
    let probe = |rest: &str| dns(&ours, &format!("example.test SOA soa-reference={} {rest}", reference.addr));
    ours.set(|b| b.soa_serial = 100);
    reference.set(|b| b.soa_serial = 105);
    let (o, _) = timed("dns soa lag", LONG, |t| probe("soa-max-lag=3").run(t));
    down(&o, "dns-soa-lag 5");
    assert!(o.detail.contains("serial 100, reference 105"), "{o}");
    healthy(&probe("soa-max-lag=5").run(LONG), "dns-rcode NOERROR");

    // Ahead of the reference is fine; serials wrap (RFC 1982).
    ours.set(|b| b.soa_serial = 106);
    healthy(&probe("").run(LONG), "dns-rcode NOERROR");
    ours.set(|b| b.soa_serial = u32::MAX);
    reference.set(|b| b.soa_serial = 2);
    down(&probe("soa-max-lag=2").run(LONG), "dns-soa-lag 3");

    // The SOA of a name below the apex comes from the authority section.
    let below = dns(&ours, &format!("www.example.test A soa-reference={} soa-max-lag=2", reference.addr));
    down(&below.run(LONG), "dns-soa-lag 3");
    let zone = format!("www.example.test A soa-reference={} soa-zone=example.test soa-max-lag=3", reference.addr);
    healthy(&dns(&ours, &zone).run(LONG), "dns-rcode NOERROR");

    // An unreachable reference degrades, it does not take the node down.
    let p = dns(&ours, &format!("example.test SOA soa-reference={}", closed_udp_port()));
    assert_outcome(
        &timed("dns soa reference down", LONG, |t| p.run(t)).0,
        Health::Degraded,
        "dns-soa-reference-failed",
    );
}

// ------------------------------------------------------------------------ ntp

#[test]
fn ntp_health_fields() {
    let server = NtpServer::start();
    let p: NtpProbe = format!("{} max-dispersion=100ms max-offset=1s", server.addr).parse().unwrap();
    let (o, _) = timed("ntp good", LONG, |t| p.run(t));
    healthy(&o, "ntp-synchronised");
    assert!(o.detail.contains("stratum 2"), "{o}");

    server.set(|b| {
        b.stratum = 0;
        b.leap = 3;
        b.reference_id = *b"RATE";
    });
    down(&timed("ntp kod", LONG, |t| p.run(t)).0, "ntp-rate-limited");
    server.set(|b| b.reference_id = *b"DENY");
    down(&timed("ntp kod deny", LONG, |t| p.run(t)).0, "ntp-kod DENY");

    server.set(|b| {
        b.stratum = 2;
        b.leap = 3;
    });
    down(&timed("ntp leap 3", LONG, |t| p.run(t)).0, "ntp-unsynchronised");
    server.set(|b| {
        b.stratum = 16;
        b.leap = 0;
    });
    down(&p.run(LONG), "ntp-unsynchronised");
    server.set(|b| b.stratum = 5);
    healthy(&p.run(LONG), "ntp-synchronised");
    let strict: NtpProbe = format!("{} max-stratum=3", server.addr).parse().unwrap();
    down(&strict.run(LONG), "ntp-stratum 5");

    server.set(|b| b.root_dispersion = 1 << 16); // 1 s
    down(&timed("ntp dispersion", LONG, |t| p.run(t)).0, "ntp-dispersion");
    let lax: NtpProbe = server.addr.to_string().parse().unwrap();
    healthy(&lax.run(LONG), "ntp-synchronised");

    server.set(|b| {
        b.root_dispersion = 1 << 8;
        b.offset = 5.0;
    });
    let (o, _) = timed("ntp offset", LONG, |t| p.run(t));
    down(&o, "ntp-offset");
    let offset: f64 = o.detail.split("offset ").nth(1).and_then(|r| r.split('s').next()).unwrap().parse().unwrap();
    assert!((offset - 5.0).abs() < 0.5, "{o}");
    server.set(|b| b.offset = -5.0);
    down(&p.run(LONG), "ntp-offset");
}

#[test]
fn ntp_bad_origin_timeouts_and_refusals() {
    let server = NtpServer::start();
    server.set(|b| b.wrong_origin = true);
    let p: NtpProbe = server.addr.to_string().parse().unwrap();
    let (o, took) = timed("ntp wrong origin", SHORT, |t| p.run(t));
    down(&o, "ntp-bad-origin");
    assert!(took >= SHORT - Duration::from_millis(20), "waited for a matching reply");
    assert!(server.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p: NtpProbe = silent.local_addr().unwrap().to_string().parse().unwrap();
    assert_times_out("ntp silent", |t| p.run(t));

    let p: NtpProbe = closed_udp_port().to_string().parse().unwrap();
    down(&timed("ntp closed", LONG, |t| p.run(t)).0, "refused");
}

// ----------------------------------------------------------------------- IPv6

#[test]
fn ipv6_loopback() {
    let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
    if std::net::UdpSocket::bind((v6, 0)).is_err() {
        eprintln!("skipped: no ::1 on this machine");
        return;
    }
    let http = HttpServer::start_at(v6);
    let p: HttpProbe = format!("http://{}/ host=www.example.test", http.addr).parse().unwrap();
    healthy(&timed("http ipv6", LONG, |t| p.run(t)).0, "http-status 200");
    assert_eq!(http.last().host, Some(format!("www.example.test:{}", http.addr.port())));
    let p: HttpProbe = format!("http://{}/", http.addr).parse().unwrap();
    healthy(&p.run(LONG), "http-status 200");
    assert_eq!(http.last().host, Some(http.addr.to_string()), "[::1]:PORT");

    let dns_server = DnsServer::start_at(v6);
    let p = dns(&dns_server, "www.example.test AAAA answer=2001:db8::1 source=::1");
    healthy(&timed("dns ipv6", LONG, |t| p.run(t)).0, "dns-rcode NOERROR");
    healthy(&dns(&dns_server, "www.example.test A tcp").run(LONG), "dns-rcode NOERROR");

    let ntp = NtpServer::start_at(v6);
    let p: NtpProbe = ntp.addr.to_string().parse().unwrap();
    healthy(&timed("ntp ipv6", LONG, |t| p.run(t)).0, "ntp-synchronised");
}

// -------------------------------------------------------- through Check::run

#[test]
fn checks_dispatch_to_the_probes() {
    let http = HttpServer::start();
    let dns_server = DnsServer::start();
    let ntp = NtpServer::start();
    let children = Children::default();
    let checks = [
        Check::Http(http.url("/").parse().unwrap()),
        Check::Dns(format!("{} example.test SOA", dns_server.addr).parse().unwrap()),
        Check::Ntp(ntp.addr.to_string().parse().unwrap()),
    ];
    for check in &checks {
        let o = check.run(LONG, &children);
        assert_eq!(o.health, Health::Healthy, "{check}: {o}");
    }
    assert!(checks[0].to_string().starts_with("http http://127.0.0.1:"));
    assert!(checks[1].to_string().ends_with(" example.test SOA"), "{}", checks[1]);
    assert!(checks[2].to_string().starts_with("ntp 127.0.0.1:"));
}

// -------------------------------------------------------------------- command

/// Processes whose command line contains `marker`, zombies excluded (a
/// zombie has an empty command line anyway).
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(marker) && !is_zombie(*pid)
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state == "Z")
}

/// State and parent pid from /proc/PID/stat.
fn stat_fields(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.to_string();
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Our own zombie children: exited but not reaped.
fn our_zombies() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|(state, ppid)| state == "Z" && ppid == me))
        .collect()
}

/// Polls until `f` holds, for at most 5 s.
fn eventually(f: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn unique_marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("exaprobe-test-{tag}-{}-{nanos}", std::process::id())
}

/// A shell check that starts two helpers (shells whose command line holds
/// the marker, each with a sleep) and then sleeps itself, forever in effect.
fn forking_check(marker: &str) -> CommandProbe {
    let helper = format!("sh -c 'sleep 600; : {marker}'");
    CommandProbe {
        program: Program::Shell(format!("{helper} & {helper} & sleep 600; : {marker}")),
        exit_codes: ExitCodes::ZeroIsHealthy,
        run_as: None,
    }
}

#[test]
fn command_timeout_kills_the_check_and_its_children() {
    let marker = unique_marker("once");
    let children = Children::default();
    let check = forking_check(&marker);
    // While the check runs, its shell and both helpers are visible by marker.
    let watcher = watch(&marker);
    let (o, _) = timed("command forking check", Duration::from_millis(1000), |t| check.run(t, &children));
    down(&o, "timeout");
    // (Forked shells briefly carry the marker too before they exec.)
    let seen = watcher.stop();
    assert!(seen >= 3, "saw {seen} processes, not the check's shell and its two helpers");
    assert!(children.is_empty());
    assert!(eventually(|| processes_with(&marker).is_empty()), "left behind: {:?}", processes_with(&marker));
    // Other tests of this binary run children of their own in parallel, which
    // are zombies for the moment between their exit and their reaping.
    assert!(eventually(|| our_zombies().is_empty()), "zombies: {:?}", our_zombies());
}

#[test]
fn command_many_timeouts_leave_nothing_behind() {
    let marker = unique_marker("many");
    let children = Children::default();
    let check = forking_check(&marker);
    let timeout = Duration::from_millis(20);
    let watcher = watch(&marker);
    let start = Instant::now();
    for i in 0..300 {
        let run_start = Instant::now();
        let o = check.run(timeout, &children);
        down(&o, "timeout");
        let took = run_start.elapsed();
        assert!(took < timeout + MARGIN, "run {i} took {took:?}");
    }
    eprintln!("wall-time command 300 x 20 ms timeouts: {:.1} ms in all", start.elapsed().as_secs_f64() * 1e3);
    assert!(watcher.stop() >= 1, "no run got as far as starting its shell: the test proves nothing");
    assert!(children.is_empty());
    assert!(eventually(|| processes_with(&marker).is_empty()), "left behind: {:?}", processes_with(&marker));
    // Other tests of this binary run children of their own in parallel, which
    // are zombies for the moment between their exit and their reaping.
    assert!(eventually(|| our_zombies().is_empty()), "zombies: {:?}", our_zombies());
}

/// Watches, in a thread, for processes carrying a marker; `stop` returns
/// the most seen at once.
struct Watcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

fn watch(marker: &str) -> Watcher {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (flag, marker) = (std::sync::Arc::clone(&stop), marker.to_string());
    let thread = std::thread::spawn(move || {
        let mut most = 0;
        while !flag.load(Ordering::SeqCst) {
            most = most.max(processes_with(&marker).len());
            std::thread::sleep(Duration::from_millis(2));
        }
        most
    });
    Watcher { stop, thread }
}

impl Watcher {
    fn stop(self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("watcher thread")
    }
}

// ------------------------------------------------ command supervision, run-as

use exaprobe::probe::command::{KILL_ALL_WAIT, RunAs, init_supervision};

/// Names the scenario a re-run of this test binary plays (see [`child`]).
const CHILD: &str = "EXAPROBE_PROBES_CHILD";

/// Runs this test binary again, for [`command_child_scenarios`] alone, with
/// `CHILD` set to `scenario`: supervision makes the whole process a
/// subreaper that kills every child it did not start as a check, so it
/// cannot share a process with other tests (nor can a change of
/// supplementary groups).
fn in_child(scenario: &str, marker: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["command_child_scenarios", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, scenario)
        .env("EXAPROBE_PROBES_MARKER", marker)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "child scenario {scenario} failed");
    assert!(text.contains("1 passed"), "the child did not run scenario {scenario}");
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Clearly less than a daemon's life (300 s), on a loaded machine: a run
/// that takes less did not wait for its daemon.
const NOT_WAITING: Duration = Duration::from_secs(10);

/// How a check leaves a daemon behind.
#[derive(Clone, Copy)]
enum Escape {
    /// `setsid` in the background: a new session, a child of the check's shell.
    Setsid,
    /// A double fork: a new session whose leader exits at once, and a
    /// grandchild in it, whose parent is gone.
    DoubleFork,
}

/// Shell text that starts a daemon (a shell whose `-c` text ends in
/// `sleep 300; : MARKER`) and waits until it runs in its session of its own
/// (it creates a file in `dir` then), so that it is not in the check's group
/// when the check ends.
fn daemon(how: Escape, marker: &str, dir: &std::path::Path) -> String {
    let (n, start) = match how {
        Escape::Setsid => (1, "{ setsid sh -c \"echo > $r; sleep 300; : MARKER\" & }"),
        Escape::DoubleFork => (2, "(setsid sh -c \"(sh -c 'echo > $r; sleep 300; : MARKER' &); exit 0\" &)"),
    };
    let start = start.replace("MARKER", marker);
    format!("r={}/$$.{n}; {start}; until [ -e $r ]; do sleep 0.01; done; rm $r", dir.display())
}

/// A check that leaves a daemon and exits at once.
fn daemonizing(how: Escape, marker: &str, dir: &std::path::Path) -> CommandProbe {
    let script = format!("echo started; {}", daemon(how, marker, dir));
    CommandProbe::new(Program::Shell(script), ExitCodes::ZeroIsHealthy).unwrap()
}

/// The daemons of [`daemon`] that are alive.
fn daemons(marker: &str) -> Vec<u32> {
    let end = format!("sleep 300; : {marker}\0");
    processes_with(marker)
        .into_iter()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default().ends_with(end.as_bytes()))
        .collect()
}

/// Kills, by pid, processes carrying the marker, with their process groups
/// (a daemon's `sleep` does not carry it), and waits until they are gone.
fn kill_marked(marker: &str) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::{Pid, getpgrp};
    for pid in processes_with(marker) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let pgrp = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok());
        match pgrp {
            Some(g) if g > 1 && g != getpgrp().as_raw() => drop(killpg(Pid::from_raw(g), Signal::SIGKILL)),
            _ => drop(kill(Pid::from_raw(pid as i32), Signal::SIGKILL)),
        }
    }
    assert!(eventually(|| processes_with(marker).is_empty()), "cannot kill {:?}", processes_with(marker));
}

/// The parent half of a supervision scenario: after the child process has
/// exited, nothing it started may remain.
fn nothing_left(marker: &str) {
    let left = processes_with(marker);
    kill_marked(marker);
    assert!(left.is_empty(), "left behind after the child exited: {left:?}");
}

#[test]
fn command_daemons_are_killed_when_their_check_ends() {
    let marker = unique_marker("daemons");
    in_child("daemons", &marker);
    nothing_left(&marker);
}

/// The child half: the test process supervises its checks like exaprobe.
fn daemons_scenario(marker: &str) {
    init_supervision().expect("subreaper");
    let children = Children::default();
    let dir = tempfile::tempdir().unwrap();
    let t = Duration::from_secs(5);
    // A check that exits at once is judged at once, though its daemon keeps
    // the output pipe open; the daemon is killed soon after.
    for (what, how) in [("setsid", Escape::Setsid), ("double fork", Escape::DoubleFork)] {
        let check = daemonizing(how, marker, dir.path());
        let (o, _) = timed(&format!("command {what} daemon"), t, |t| check.run(t, &children));
        assert_eq!((o.health, o.reason.as_str(), o.detail.as_str()), (Health::Healthy, "exit 0", "started"));
        assert!(eventually(|| processes_with(marker).is_empty()), "{what}: left {:?}", processes_with(marker));
    }
    // At the timeout too.
    let script = format!(
        "{}; {}; sleep 300",
        daemon(Escape::Setsid, marker, dir.path()),
        daemon(Escape::DoubleFork, marker, dir.path())
    );
    let check = CommandProbe::new(Program::Shell(script), ExitCodes::ZeroIsHealthy).unwrap();
    let watcher = watch(&format!("sleep 300; : {marker}"));
    let (o, _) = timed("command daemons and timeout", Duration::from_secs(2), |t| check.run(t, &children));
    down(&o, "timeout");
    assert!(watcher.stop() >= 2, "the daemons did not start: the test proves nothing");
    assert!(eventually(|| processes_with(marker).is_empty()), "left: {:?}", processes_with(marker));
    assert!(eventually(|| our_zombies().is_empty()), "zombies: {:?}", our_zombies());

    // Hundreds of runs: no thread, fd or process is left over.
    let (fds, tasks) = (count("/proc/self/fd"), count("/proc/self/task"));
    let start = Instant::now();
    for i in 0..200 {
        let check = daemonizing(if i % 2 == 0 { Escape::Setsid } else { Escape::DoubleFork }, marker, dir.path());
        let run = Instant::now();
        healthy(&check.run(t, &children), "exit 0");
        assert!(run.elapsed() < NOT_WAITING, "run {i} took {:?}", run.elapsed());
    }
    eprintln!("wall-time command 200 daemonizing checks: {:.1} ms in all", start.elapsed().as_secs_f64() * 1e3);
    assert!(eventually(|| processes_with(marker).is_empty()), "left: {:?}", processes_with(marker));
    assert!(eventually(|| our_zombies().is_empty()), "zombies: {:?}", our_zombies());
    assert!(
        eventually(|| count("/proc/self/fd") <= fds && count("/proc/self/task") <= tasks),
        "fds {fds} -> {}, threads {tasks} -> {}",
        count("/proc/self/fd"),
        count("/proc/self/task")
    );
    assert!(children.is_empty());
}

#[test]
fn command_helpers_live_as_long_as_their_check() {
    let marker = unique_marker("spared");
    in_child("spared", &marker);
    nothing_left(&marker);
}

/// The child half: a double-forked helper is re-parented to the supervisor
/// while its check still runs, and other checks end meanwhile (each ending
/// makes the supervisor sweep): the helper lives until its own check ends.
fn spared_scenario(marker: &str) {
    init_supervision().expect("subreaper");
    let children = Children::default();
    let dir = tempfile::tempdir().unwrap();
    let script = format!("{}; sleep 1", daemon(Escape::DoubleFork, marker, dir.path()));
    let long = CommandProbe::new(Program::Shell(script), ExitCodes::ZeroIsHealthy).unwrap();
    let c2 = children.clone();
    let runner = std::thread::spawn(move || long.run(Duration::from_secs(10), &c2));
    assert!(eventually(|| daemons(marker).len() == 1), "the helper did not start");
    let helper = daemons(marker)[0];
    assert_eq!(stat_fields(helper).map(|f| f.1), Some(std::process::id()), "the helper is not an orphan of ours");
    let quick = CommandProbe::new(Program::Shell("true".into()), ExitCodes::ZeroIsHealthy).unwrap();
    let mut quick_runs = 0;
    while !runner.is_finished() {
        healthy(&quick.run(Duration::from_secs(5), &children), "exit 0");
        quick_runs += 1;
        std::thread::sleep(Duration::from_millis(20));
        if !runner.is_finished() {
            assert_eq!(daemons(marker), vec![helper], "the helper was killed while its check ran");
        }
    }
    assert!(quick_runs >= 5, "only {quick_runs} other checks ran meanwhile");
    healthy(&runner.join().unwrap(), "exit 0");
    assert!(eventually(|| processes_with(marker).is_empty()), "left: {:?}", processes_with(marker));
}

#[test]
fn command_daemons_are_killed_when_exaprobe_exits() {
    let marker = unique_marker("exit");
    in_child("exit", &marker);
    nothing_left(&marker);
}

/// The child half: checks are running, with daemons out of their groups,
/// when the process shuts down through `kill_all`.
fn exit_scenario(marker: &str) {
    init_supervision().expect("subreaper");
    let children = Children::default();
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}; {}; sleep 300",
        daemon(Escape::Setsid, marker, dir.path()),
        daemon(Escape::DoubleFork, marker, dir.path())
    );
    let check = CommandProbe::new(Program::Shell(script), ExitCodes::ZeroIsHealthy).unwrap();
    let c2 = children.clone();
    let runner = std::thread::spawn(move || check.run(Duration::from_secs(60), &c2));
    assert!(eventually(|| daemons(marker).len() == 2), "daemons: {:?}", daemons(marker));
    let start = Instant::now();
    children.kill_all();
    let took = start.elapsed();
    eprintln!("wall-time kill_all: {:.1} ms", took.as_secs_f64() * 1e3);
    assert!(took < KILL_ALL_WAIT + MARGIN, "kill_all took {took:?}");
    // The leader was killed too: the run ends with that.
    down(&runner.join().unwrap(), "signal 9");
    assert!(processes_with(marker).is_empty(), "kill_all returned with {:?} alive", processes_with(marker));
    assert!(children.is_empty());
}

#[test]
fn command_output_pipe_held_by_a_daemon_leaks_nothing() {
    let marker = unique_marker("unsupervised");
    in_child("unsupervised", &marker);
    nothing_left(&marker);
}

/// The child half, without supervision (the daemons survive, holding the
/// output pipe): the runs still end at once, with no thread or fd kept
/// waiting for the pipe to close.
fn unsupervised_scenario(marker: &str) {
    let children = Children::default();
    let dir = tempfile::tempdir().unwrap();
    let check = daemonizing(Escape::Setsid, marker, dir.path());
    let t = Duration::from_secs(5);
    healthy(&check.run(t, &children), "exit 0");
    let (fds, tasks) = (count("/proc/self/fd"), count("/proc/self/task"));
    for i in 0..50 {
        let run = Instant::now();
        let o = check.run(t, &children);
        healthy(&o, "exit 0");
        assert_eq!(o.detail, "started");
        assert!(run.elapsed() < NOT_WAITING, "run {i} took {:?}", run.elapsed());
    }
    assert!(daemons(marker).len() >= 51, "the daemons did not survive: the test proves nothing");
    let ok = eventually(|| count("/proc/self/fd") <= fds && count("/proc/self/task") <= tasks);
    let (fds2, tasks2) = (count("/proc/self/fd"), count("/proc/self/task"));
    kill_marked(marker);
    assert!(ok, "with 51 daemons alive: fds {fds} -> {fds2}, threads {tasks} -> {tasks2}");
}

#[test]
fn command_runs_as_an_unprivileged_user() {
    if !nix::unistd::geteuid().is_root() {
        // Without root there is no one else to run as (see the unit tests).
        let other = (nix::unistd::geteuid().as_raw() + 1).to_string();
        let group = nix::unistd::getegid().as_raw().to_string();
        assert!(RunAs::resolve(&other, Some(&group)).unwrap_err().contains("needs root"));
        return;
    }
    in_child("run-as", "");
}

/// The child half (as root): the process gets a supplementary group first,
/// which the check must not inherit. The check sleeps while this process
/// looks at it in /proc.
fn run_as_scenario() {
    nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(4242)]).unwrap();
    assert!(std::fs::read_to_string("/proc/self/status").unwrap().contains("Groups:\t4242"));
    let nobody = nix::unistd::User::from_name("nobody").unwrap().expect("a nobody user");
    let run_as = RunAs::resolve("nobody", None).unwrap();
    assert_eq!((run_as.uid, run_as.gid), (nobody.uid.as_raw(), nobody.gid.as_raw()));
    let nogroup = nix::unistd::Group::from_gid(nobody.gid).unwrap().unwrap().name;
    let argv = vec!["/bin/sleep".into(), "30.4242".into()];
    let check = CommandProbe::new(Program::Argv(argv), ExitCodes::ZeroIsHealthy).unwrap().with_run_as(Some(run_as));
    assert!(check.to_string().ends_with(&format!(" as nobody:{nogroup}")), "{check}");
    let children = Children::default();
    let c2 = children.clone();
    let runner = std::thread::spawn(move || check.run(Duration::from_secs(30), &c2));
    let me = std::process::id();
    let find = || {
        std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).find(
            |&pid| {
                stat_fields(pid).is_some_and(|(_, ppid)| ppid == me)
                    && std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default() == b"/bin/sleep\x0030.4242\0"
            },
        )
    };
    assert!(eventually(|| find().is_some()), "the check did not start");
    let pid = find().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).unwrap_or_default().trim().to_string()
    };
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(field("Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(field("Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
    assert_eq!(field("Groups"), "", "supplementary groups");
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("CapPrm"), "0000000000000000");
    assert_eq!(field("SigBlk"), "0000000000000000", "signal mask");
    let ignored = u64::from_str_radix(&field("SigIgn"), 16).unwrap();
    assert_eq!(ignored & (1 << (13 - 1)), 0, "SIGPIPE ignored");
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort();
    // 0, 1, 2, and whatever this process inherited without close-on-exec
    // (the test harness may pass some; ExaBGP passes none): nothing that
    // the process opened itself.
    let mut expected: Vec<u32> = (0..3).collect();
    for e in std::fs::read_dir("/proc/self/fd").unwrap() {
        let fd: u32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let flags =
            info.lines().find_map(|l| l.strip_prefix("flags:")).map(|f| u32::from_str_radix(f.trim(), 8).unwrap());
        if fd > 2 && flags.is_some_and(|f| f & 0o2000000 == 0) {
            expected.push(fd);
        }
    }
    expected.sort();
    assert_eq!(fds, expected, "open fds");
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap(), std::path::Path::new("/dev/null"));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let env: Vec<&[u8]> = environ.split(|&b| b == 0).collect();
    assert!(env.contains(&b"USER=nobody".as_slice()) && env.contains(&b"LOGNAME=nobody".as_slice()));
    assert!(env.contains(&format!("HOME={}", nobody.dir.display()).as_bytes()));
    assert!(!env.iter().any(|v| v.starts_with(b"NOTIFY_SOCKET=")));
    children.kill_all();
    down(&runner.join().unwrap(), "signal 9");

    // A setuid-root program (sudo, su, …) gives no privilege back.
    let dir = tempfile::tempdir().unwrap();
    let setuid_id = dir.path().join("id");
    std::fs::copy("/usr/bin/id", &setuid_id).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&setuid_id, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let argv = vec![setuid_id.display().to_string(), "-u".into()];
    let check = CommandProbe::new(Program::Argv(argv), ExitCodes::ZeroIsHealthy).unwrap();
    // Without no_new_privs the setuid bit works (nobody would get euid 0);
    // here run by root, it shows 0 either way, but it proves the file
    // system honours setuid bits, so the next run proves something.
    let o = check.run(LONG, &Children::default());
    assert_eq!((o.reason.as_str(), o.detail.as_str()), ("exit 0", "0"), "{o}");
    // … as nobody, with no_new_privs, the setuid bit is ignored.
    let check = check.with_run_as(Some(RunAs::resolve("nobody", None).unwrap()));
    let o = check.run(LONG, &Children::default());
    assert_eq!((o.reason.as_str(), o.detail.as_str()), ("exit 0", uid.to_string().as_str()), "{o}");
    assert!(children.is_empty());
}

/// The child halves, dispatched on the scenario; does nothing on its own.
#[test]
fn command_child_scenarios() {
    let Ok(scenario) = std::env::var(CHILD) else { return };
    let marker = std::env::var("EXAPROBE_PROBES_MARKER").unwrap();
    match scenario.as_str() {
        "daemons" => daemons_scenario(&marker),
        "spared" => spared_scenario(&marker),
        "exit" => exit_scenario(&marker),
        "unsupervised" => unsupervised_scenario(&marker),
        "run-as" => run_as_scenario(),
        other => panic!("unknown scenario {other}"),
    }
}

/// The whole binary: a `--cmd` check leaves a `setsid` daemon and a
/// double-forked one and keeps running; when ExaBGP goes away (stdin
/// closes), exaprobe exits and neither daemon survives it.
#[test]
fn exaprobe_leaves_no_daemon_behind() {
    use std::process::{Command, Stdio};
    let marker = unique_marker("binary");
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{}; {}; sleep 300",
        daemon(Escape::Setsid, &marker, dir.path()),
        daemon(Escape::DoubleFork, &marker, dir.path())
    );
    let mut exaprobe = Command::new(env!("CARGO_BIN_EXE_exaprobe"))
        .args(["--cmd", &cmd, "--timeout", "60", "--ip", "198.51.100.1/32"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = eventually(|| daemons(&marker).len() == 2);
    drop(exaprobe.stdin.take());
    let exaprobe = std::cell::RefCell::new(exaprobe);
    let exited = eventually(|| exaprobe.borrow_mut().try_wait().unwrap().is_some());
    let mut exaprobe = exaprobe.into_inner();
    if !exited {
        let _ = exaprobe.kill();
    }
    let _ = exaprobe.wait();
    assert!(up, "the daemons did not start: {:?}", daemons(&marker));
    assert!(exited, "exaprobe did not exit when its stdin closed");
    let gone = eventually(|| processes_with(&marker).is_empty());
    let left = processes_with(&marker);
    kill_marked(&marker);
    assert!(gone, "left behind after exaprobe exited: {left:?}");
}

// ------------------------------------------------------------------------ tls

/// A certificate made for a TLS case, with its key.
struct Made {
    der: rustls::pki_types::CertificateDer<'static>,
    pem: String,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

/// Parameters: these subjectAltNames (DNS names or addresses), this common
/// name, a CA (basic constraints CA:TRUE) or not.
fn cert_params(names: &[&str], cn: &str, ca: bool) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    if ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    p
}

fn key_der(key: &rcgen::KeyPair) -> rustls::pki_types::PrivateKeyDer<'static> {
    rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap()
}

fn self_signed(p: rcgen::CertificateParams) -> Made {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Made { der: cert.der().clone(), pem: cert.pem(), key: key_der(&key) }
}

fn signed(p: rcgen::CertificateParams, issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) -> Made {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    Made { der: cert.der().clone(), pem: cert.pem(), key: key_der(&key) }
}

fn test_ca(cn: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    rcgen::CertifiedIssuer::self_signed(cert_params(&[], cn, true), rcgen::KeyPair::generate().unwrap()).unwrap()
}

/// A PEM file of these certificates.
fn pem_file(dir: &std::path::Path, name: &str, pems: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pems.concat()).unwrap();
    path
}

/// The names every test certificate is for (unless a case says otherwise).
const NAMES: &[&str] = &["www.example.test", "127.0.0.1"];

/// One HTTPS case: what the server presents, how the probe is set up, what
/// it must say.
struct TlsCase {
    what: &'static str,
    server: Arc<rustls::ServerConfig>,
    ca: Option<std::path::PathBuf>,
    host: Option<&'static str>,
    insecure: bool,
    reason: &'static str,
    /// A part of the detail.
    detail: String,
    /// curl is known to judge this case otherwise (the README says why).
    curl_differs: bool,
}

impl TlsCase {
    fn new(what: &'static str, server: Arc<rustls::ServerConfig>, reason: &'static str, detail: &str) -> Self {
        TlsCase {
            what,
            server,
            ca: None,
            host: None,
            insecure: false,
            reason,
            detail: detail.to_string(),
            curl_differs: false,
        }
    }

    fn ca(mut self, path: &std::path::Path) -> Self {
        self.ca = Some(path.to_path_buf());
        self
    }

    fn host(mut self, name: &'static str) -> Self {
        self.host = Some(name);
        self
    }

    fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }
}

/// The server for a made certificate: its chain and key.
fn serving(chain: &[&Made], key: &Made) -> Arc<rustls::ServerConfig> {
    tls_config(chain.iter().map(|m| m.der.clone()).collect(), key.key.clone_key())
}

/// Is curl here to referee?
fn curl_installed() -> bool {
    std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// curl's verdict on a case: true if it completes the request.
fn curl_accepts(server: &HttpServer, case: &TlsCase) -> bool {
    let port = server.addr.port();
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sS", "-o", "/dev/null", "--noproxy", "*", "--max-time", "5"]);
    if let Some(ca) = &case.ca {
        curl.arg("--cacert").arg(ca);
    }
    if case.insecure {
        curl.arg("-k");
    }
    let host = match case.host {
        Some(name) => {
            curl.arg("--resolve").arg(format!("{name}:{port}:127.0.0.1"));
            name.to_string()
        }
        None => "127.0.0.1".to_string(),
    };
    let out = curl.arg(format!("https://{host}:{port}/")).output().unwrap();
    eprintln!("curl {}: {} {}", case.what, out.status, String::from_utf8_lossy(&out.stderr).trim());
    out.status.success()
}

/// Runs every case with the probe, and with curl as the referee where it
/// is installed: the probe must accept exactly what `curl --cacert` accepts
/// (but for the cases marked, which the README lists).
fn judge(cases: Vec<TlsCase>) {
    let curl = curl_installed();
    if !curl {
        eprintln!("curl is not installed: the cases are checked without a referee");
    }
    for case in cases {
        let server = HttpServer::start_tls_config(Arc::clone(&case.server));
        let mut spec = server.url("/");
        if let Some(ca) = &case.ca {
            spec.push_str(&format!(" ca={}", ca.display()));
        }
        if let Some(host) = case.host {
            spec.push_str(&format!(" host={host}"));
        }
        if case.insecure {
            spec.push_str(" insecure");
        }
        let p: HttpProbe = spec.parse().unwrap();
        let (o, _) = timed(case.what, LONG, |t| p.run(t));
        assert_eq!(o.reason, case.reason, "{}: {o}", case.what);
        assert!(o.detail.contains(&case.detail), "{}: {o}\nwanted in the detail: {}", case.what, case.detail);
        if curl {
            let accepted = o.health == Health::Healthy;
            assert_eq!(
                curl_accepts(&server, &case),
                accepted != case.curl_differs,
                "curl and the probe on {}",
                case.what
            );
        }
    }
}

/// The `openssl req -x509` shape: a self-signed CA:TRUE certificate that
/// is also the server's, given as its own `ca=`.
#[test]
fn https_self_signed_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let ss = self_signed(cert_params(NAMES, "www.example.test", true));
    let ss_ca = pem_file(dir.path(), "ss.pem", &[&ss.pem]);
    let other = test_ca("another test CA");
    let other_ca = pem_file(dir.path(), "other.pem", &[&other.pem()]);
    let server = serving(&[&ss], &ss);
    // A bundle holding it among others works as well.
    let bundle = pem_file(dir.path(), "bundle.pem", &[&other.pem(), &ss.pem]);

    let leaf_ss = self_signed(cert_params(NAMES, "www.example.test", false));
    let leaf_ss_ca = pem_file(dir.path(), "leaf-ss.pem", &[&leaf_ss.pem]);

    let mut expired = cert_params(NAMES, "www.example.test", true);
    expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = self_signed(expired);
    let expired_ca = pem_file(dir.path(), "expired.pem", &[&expired.pem]);

    let mut future = cert_params(NAMES, "www.example.test", true);
    future.not_before = rcgen::date_time_ymd(2090, 1, 1);
    future.not_after = rcgen::date_time_ymd(2091, 1, 1);
    let future = self_signed(future);
    let future_ca = pem_file(dir.path(), "future.pem", &[&future.pem]);

    // No subjectAltName, the name in the common name only.
    let cn_only = self_signed(cert_params(&[], "www.example.test", true));
    let cn_only_ca = pem_file(dir.path(), "cn-only.pem", &[&cn_only.pem]);

    let mut wildcard = cert_params(&[], "*.example.test", true);
    wildcard.distinguished_name.push(rcgen::DnType::OrganizationName, "exaprobe");
    let wildcard = self_signed(wildcard);
    let wildcard_ca = pem_file(dir.path(), "wildcard.pem", &[&wildcard.pem]);

    let ok = "200 OK";
    judge(vec![
        TlsCase::new("self-signed CA as its own CA, by address", Arc::clone(&server), "http-status 200", ok).ca(&ss_ca),
        TlsCase::new("self-signed CA as its own CA, by name", Arc::clone(&server), "http-status 200", ok)
            .ca(&ss_ca)
            .host("www.example.test"),
        TlsCase::new("self-signed CA in a bundle", Arc::clone(&server), "http-status 200", ok).ca(&bundle),
        TlsCase::new(
            "self-signed CA, another name",
            Arc::clone(&server),
            "tls-wrong-name",
            "the certificate is for www.example.test, 127.0.0.1, not other.example.test",
        )
        .ca(&ss_ca)
        .host("other.example.test"),
        TlsCase::new(
            "self-signed CA, Mozilla's roots",
            Arc::clone(&server),
            "tls-self-signed",
            "the certificate is self-signed and not among Mozilla's roots; to trust a private CA or this \
             certificate, give it with ca=",
        ),
        TlsCase::new(
            "self-signed CA, another CA",
            Arc::clone(&server),
            "tls-self-signed",
            &format!("the certificate is self-signed and not in ca={}", other_ca.display()),
        )
        .ca(&other_ca),
        TlsCase::new("self-signed leaf (CA:FALSE)", serving(&[&leaf_ss], &leaf_ss), "http-status 200", ok)
            .ca(&leaf_ss_ca),
        TlsCase::new(
            "self-signed leaf (CA:FALSE), another CA",
            serving(&[&leaf_ss], &leaf_ss),
            "tls-self-signed",
            "the certificate is self-signed and not in ca=",
        )
        .ca(&other_ca),
        TlsCase::new(
            "expired self-signed CA",
            serving(&[&expired], &expired),
            "tls-expired",
            "the certificate (or one of its chain) expired at 2021-01-01T00:00:00Z; it is now 20",
        )
        .ca(&expired_ca),
        TlsCase::new(
            "self-signed CA valid from 2090",
            serving(&[&future], &future),
            "tls-not-yet-valid",
            "the certificate (or one of its chain) is valid from 2090-01-01T00:00:00Z only; it is now 20",
        )
        .ca(&future_ca),
        TlsCase::new("common name only, by name", serving(&[&cn_only], &cn_only), "http-status 200", ok)
            .ca(&cn_only_ca)
            .host("www.example.test"),
        TlsCase::new(
            "common name only, by address",
            serving(&[&cn_only], &cn_only),
            "tls-wrong-name",
            "the certificate names no host (no subjectAltName; the common name is not used), not 127.0.0.1",
        )
        .ca(&cn_only_ca),
        TlsCase::new(
            "common name only, another name",
            serving(&[&cn_only], &cn_only),
            "tls-wrong-name",
            "not other.example.test",
        )
        .ca(&cn_only_ca)
        .host("other.example.test"),
        TlsCase::new("wildcard common name", serving(&[&wildcard], &wildcard), "http-status 200", ok)
            .ca(&wildcard_ca)
            .host("www.example.test"),
        TlsCase::new(
            "wildcard common name, two labels",
            serving(&[&wildcard], &wildcard),
            "tls-wrong-name",
            "not a.b.example.test",
        )
        .ca(&wildcard_ca)
        .host("a.b.example.test"),
    ]);
}

/// Certificates issued by a CA: through an intermediate, expired, unknown,
/// badly signed; handshake signatures.
#[test]
fn https_certificate_chains() {
    let dir = tempfile::tempdir().unwrap();
    let root = test_ca("exaprobe test root");
    let root_ca = pem_file(dir.path(), "root.pem", &[&root.pem()]);
    let mut inter_params = cert_params(&[], "exaprobe test intermediate", true);
    inter_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let inter_key = rcgen::KeyPair::generate().unwrap();
    let inter_cert = inter_params.signed_by(&inter_key, &root).unwrap();
    let inter_made = Made { der: inter_cert.der().clone(), pem: inter_cert.pem(), key: key_der(&inter_key) };
    let inter_ca = pem_file(dir.path(), "intermediate.pem", &[&inter_made.pem]);
    let inter = rcgen::Issuer::new(inter_params, inter_key);
    let leaf = signed(cert_params(NAMES, "www.example.test", false), &inter);
    let leaf_ca = pem_file(dir.path(), "leaf.pem", &[&leaf.pem]);
    let chain = serving(&[&leaf, &inter_made], &leaf);
    let leaf_alone = serving(&[&leaf], &leaf);

    let other = test_ca("another test CA");
    let other_ca = pem_file(dir.path(), "other.pem", &[&other.pem()]);

    let mut expired = cert_params(NAMES, "www.example.test", false);
    expired.not_before = rcgen::date_time_ymd(2020, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2021, 6, 1);
    let expired = signed(expired, &root);

    // Claims the root as its issuer, signed by another key.
    let forger = rcgen::Issuer::new(cert_params(&[], "exaprobe test root", true), rcgen::KeyPair::generate().unwrap());
    let forged = signed(cert_params(NAMES, "www.example.test", false), &forger);

    // A CA certificate as the server's, issued by the root.
    let ca_leaf = signed(cert_params(NAMES, "www.example.test", true), &root);

    let wrong_key = self_signed(cert_params(NAMES, "unused", false));
    let direct = signed(cert_params(NAMES, "www.example.test", false), &root);

    let ok = "200 OK";
    let mut cases = vec![
        TlsCase::new("chain through an intermediate", Arc::clone(&chain), "http-status 200", ok).ca(&root_ca),
        TlsCase::new("chain, by name", Arc::clone(&chain), "http-status 200", ok).ca(&root_ca).host("www.example.test"),
        // OpenSSL's partial chains (curl sets X509_V_FLAG_PARTIAL_CHAIN):
        // any certificate of the CA file is an anchor.
        TlsCase::new("the intermediate as the CA", Arc::clone(&chain), "http-status 200", ok).ca(&inter_ca),
        TlsCase::new("the leaf itself as the CA", Arc::clone(&leaf_alone), "http-status 200", ok).ca(&leaf_ca),
        TlsCase::new(
            "intermediate not sent",
            Arc::clone(&leaf_alone),
            "tls-unknown-ca",
            &format!(
                "the certificate is not issued by a CA in ca={} (or the server does not send the intermediate \
                 certificates)",
                root_ca.display()
            ),
        )
        .ca(&root_ca),
        TlsCase::new(
            "unknown CA",
            Arc::clone(&chain),
            "tls-unknown-ca",
            "the certificate is not issued by a CA in ca=",
        )
        .ca(&other_ca),
        TlsCase::new(
            "unknown CA, Mozilla's roots",
            Arc::clone(&chain),
            "tls-unknown-ca",
            "not issued by a CA among Mozilla's roots",
        ),
        TlsCase::new(
            "expired leaf",
            serving(&[&expired], &expired),
            "tls-expired",
            "the certificate (or one of its chain) expired at 2021-06-01T00:00:00Z",
        )
        .ca(&root_ca),
        TlsCase::new(
            "forged signature",
            serving(&[&forged], &forged),
            "tls-bad-signature",
            "a signature in the server's certificate chain does not verify",
        )
        .ca(&root_ca),
        TlsCase::new(
            "handshake signed with another key",
            serving(&[&direct], &wrong_key),
            "tls-bad-signature",
            "the server's handshake signature does not verify with its certificate's key",
        )
        .ca(&root_ca),
        TlsCase::new(
            "handshake signed with another key, insecure",
            serving(&[&direct], &wrong_key),
            "tls-bad-signature",
            "the server's handshake signature does not verify",
        )
        .insecure(),
        TlsCase::new("insecure, unknown CA", Arc::clone(&chain), "http-status 200", ok).insecure(),
    ];
    // A chain ending at an expired CA of ca= is refused, as OpenSSL does
    // (webpki alone would not look at an anchor's dates), unless the same
    // CA renewed (same name and key) is in ca= too.
    let old_key = rcgen::KeyPair::generate().unwrap();
    let mut old_params = cert_params(&[], "exaprobe expired root", true);
    old_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    old_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let old_root_cert = old_params.self_signed(&old_key).unwrap();
    let renewed = cert_params(&[], "exaprobe expired root", true).self_signed(&old_key).unwrap();
    let old_root = rcgen::Issuer::new(old_params, old_key);
    let old_root_ca = pem_file(dir.path(), "old-root.pem", &[&old_root_cert.pem()]);
    let renewed_ca = pem_file(dir.path(), "renewed.pem", &[&old_root_cert.pem(), &renewed.pem()]);
    let under_old = signed(cert_params(NAMES, "www.example.test", false), &old_root);
    cases.push(
        TlsCase::new(
            "an expired CA in ca=",
            serving(&[&under_old], &under_old),
            "tls-expired",
            &format!(
                "the CA certificate \"exaprobe expired root\" of ca={} expired at 2021-01-01T00:00:00Z; it is now 20",
                old_root_ca.display()
            ),
        )
        .ca(&old_root_ca),
    );
    cases.push(
        TlsCase::new("an expired CA and its renewal", serving(&[&under_old], &under_old), "http-status 200", ok)
            .ca(&renewed_ca),
    );
    // OpenSSL takes a CA:TRUE certificate issued by a trusted CA as a
    // server's; webpki does not, and the probe trusts one only when it is
    // itself in ca=.
    let mut ca_as_leaf = TlsCase::new(
        "a CA certificate as the server's",
        serving(&[&ca_leaf], &ca_leaf),
        "tls-bad-certificate",
        "the server's certificate is a CA certificate (basic constraints CA:TRUE)",
    )
    .ca(&root_ca);
    ca_as_leaf.curl_differs = true;
    cases.push(ca_as_leaf);
    judge(cases);
}

/// Certificates made by the real `openssl req -x509`, judged by the probe
/// and by curl: with a subjectAltName, and with the common name only (the
/// command's default).
#[test]
fn https_openssl_req_x509() {
    let openssl = std::process::Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !openssl {
        eprintln!("openssl is not installed: nothing to test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let make = |name: &str, extra: &[&str]| -> (Made, std::path::PathBuf) {
        use rustls::pki_types::pem::PemObject;
        let (key, cert) = (dir.path().join(format!("{name}.key")), dir.path().join(format!("{name}.pem")));
        let out = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=www.example.test"])
            .args(extra)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        let pem = std::fs::read_to_string(&cert).unwrap();
        let made = Made {
            der: rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap(),
            pem,
            key: rustls::pki_types::PrivateKeyDer::from_pem_file(&key).unwrap(),
        };
        (made, cert)
    };
    let (san, san_ca) = make("san", &["-addext", "subjectAltName=DNS:www.example.test,IP:127.0.0.1"]);
    let (cn, cn_ca) = make("cn", &[]);
    let san_server = serving(&[&san], &san);
    let cn_server = serving(&[&cn], &cn);
    let ok = "200 OK";
    judge(vec![
        TlsCase::new("openssl req -x509 with SAN, by address", Arc::clone(&san_server), "http-status 200", ok)
            .ca(&san_ca),
        TlsCase::new("openssl req -x509 with SAN, by name", Arc::clone(&san_server), "http-status 200", ok)
            .ca(&san_ca)
            .host("www.example.test"),
        TlsCase::new(
            "openssl req -x509 with SAN, another name",
            Arc::clone(&san_server),
            "tls-wrong-name",
            "not a.example.test",
        )
        .ca(&san_ca)
        .host("a.example.test"),
        TlsCase::new("openssl req -x509 with SAN, no ca=", Arc::clone(&san_server), "tls-self-signed", "self-signed"),
        TlsCase::new("openssl req -x509, CN only, by name", Arc::clone(&cn_server), "http-status 200", ok)
            .ca(&cn_ca)
            .host("www.example.test"),
        TlsCase::new(
            "openssl req -x509, CN only, by address",
            Arc::clone(&cn_server),
            "tls-wrong-name",
            "names no host",
        )
        .ca(&cn_ca),
        TlsCase::new("openssl req -x509, another's CA", Arc::clone(&cn_server), "tls-self-signed", "self-signed")
            .ca(&san_ca)
            .host("www.example.test"),
    ]);
}

/// Handshakes that fail before any certificate: an alert from the server.
#[test]
fn https_handshake_refused() {
    // A fatal handshake_failure alert, as a server with no cipher in common
    // sends it, in answer to the ClientHello.
    let alert =
        TcpServer::start(TcpMode::Banner { text: vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28], close: false });
    let p: HttpProbe = format!("https://{}/ insecure", alert.addr).parse().unwrap();
    let (o, _) = timed("https alert", LONG, |t| p.run(t));
    down(&o, "tls-handshake");
    assert_eq!(o.detail, "the server ended the TLS handshake with the alert handshake failure");
}
