//! Tests of the native probes (tcp, http/https, dns, ntp) and of the command
//! probe's clean-up, against fixture servers on loopback (see `fixtures`).
//!
//! Every test checks both the health and the reason. Timeouts are asserted
//! with a generous upper bound (timeout + 1 s) and a small lower bound, so
//! the suite stays reliable on a loaded two-core machine. Each probe run
//! prints its wall time on stderr (`cargo test --test probes -- --nocapture`).

mod fixtures;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use exaprobe::probe::command::{Children, CommandProbe, ExitCodes, Program};
use exaprobe::probe::dns::DnsProbe;
use exaprobe::probe::http::HttpProbe;
use exaprobe::probe::ntp::NtpProbe;
use exaprobe::probe::tcp::TcpProbe;
use exaprobe::probe::{Check, Health, Outcome};

use fixtures::{DnsServer, HttpServer, NtpServer, TcpMode, TcpServer, TestPki, closed_tcp_port, closed_udp_port};

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

    // Head on time, body late: only a probe that reads the body waits.
    server.set(|b| {
        b.delay = Duration::ZERO;
        b.body_delay = Duration::from_secs(5);
    });
    let p: HttpProbe = format!("{} body=ok", server.url("/")).parse().unwrap();
    assert_times_out("http slow body", |t| p.run(t));
    let p: HttpProbe = server.url("/").parse().unwrap();
    let (o, took) = timed("http slow body unread", LONG, |t| p.run(t));
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
    down(&o, "tls-error");

    // Mozilla's roots do not know the test CA; nor does another test CA.
    let p: HttpProbe = format!("{} host=www.example.test", server.url("/")).parse().unwrap();
    let (o, _) = timed("https unknown CA", LONG, |t| p.run(t));
    down(&o, "tls-error");
    assert!(o.detail.to_lowercase().contains("issuer"), "{o}");
    let other = TestPki::new();
    let p: HttpProbe = format!("{} ca={}", server.url("/"), other.ca_file.display()).parse().unwrap();
    down(&timed("https other CA", LONG, |t| p.run(t)).0, "tls-error");

    // insecure skips verification altogether.
    let p: HttpProbe = format!("{} insecure host=nowhere.invalid", server.url("/")).parse().unwrap();
    healthy(&timed("https insecure", LONG, |t| p.run(t)).0, "http-status 200");

    // TLS to a plain-HTTP server, which answers the ClientHello with a 400
    // and closes, as nginx does.
    let plain = TcpServer::start(TcpMode::Banner { text: b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), close: true });
    let p: HttpProbe = format!("https://{}/ insecure", plain.addr).parse().unwrap();
    down(&timed("https to http", LONG, |t| p.run(t)).0, "tls-error");

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
    down(&timed("ntp kod", LONG, |t| p.run(t)).0, "ntp-kod RATE");

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
    assert!(our_zombies().is_empty(), "zombies: {:?}", our_zombies());
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
    assert!(our_zombies().is_empty(), "zombies: {:?}", our_zombies());
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
