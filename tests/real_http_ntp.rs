//! The HTTP(S), NTP and plugin probes against the real servers operators
//! run: nginx (certificates made with openssl), chronyd, and the Monitoring
//! Plugins, each on a loopback address of its own, with a real client as
//! the referee of every case (curl, chronyc, check_ntp_time, check_http).
//! Fixture servers only for what the real ones cannot be made to do (a body
//! that stalls after the headers).
//!
//! Each test skips (saying so) when a binary it needs is absent, and fails
//! under `CI=true` instead (see `real_servers`).

mod real_servers;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use exaprobe::model::service::OnFail;
use exaprobe::probe::command::Children;
use exaprobe::probe::http::HttpProbe;
use exaprobe::probe::ntp::NtpProbe;
use exaprobe::probe::{Check, Health, Outcome};

use real_servers::{Chrony, NAME, Nginx, Nsd, Pki, Server, free_port, loopback, run, tools, write_file};

/// The source address the kernel picks towards any 127.0.0.0/8 address.
const LO: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// Timeout of a probe expected to finish early.
const LONG: Duration = Duration::from_secs(3);

#[track_caller]
fn expect(o: &Outcome, health: Health, reason: &str) {
    assert_eq!((o.health, o.reason.as_str()), (health, reason), "whole outcome: {o}");
}

#[track_caller]
fn http(spec: &str) -> Outcome {
    let p: HttpProbe = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
    let o = p.run(LONG);
    eprintln!("{spec}\n  -> {o}");
    o
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

// ----------------------------------------------------------------------- HTTP

/// `body-regex=^OK\s+default$` matches nginx's `OK default\n`, as grep and
/// `check_http -r` do.
#[test]
fn body_regex_matches_at_line_ends_like_grep() {
    let Some([nginx, curl, grep, check_http]) = tools(["nginx", "curl", "grep", "check_http"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let port = free_port(ip, false);
    let _n = Nginx::start(
        &nginx,
        dir.path(),
        ip,
        &[port],
        &format!(r#"server {{ listen {ip}:{port}; location / {{ return 200 "OK default\n"; }} }}"#),
    );
    let url = format!("http://{ip}:{port}/");
    // Referee: curl's body through grep matches.
    let body = run(&curl, &["-s", &url]).stdout;
    let body_file = write_file(dir.path(), "body", &String::from_utf8_lossy(&body));
    assert!(run(&grep, &["-qE", r"^OK\s+default$", &body_file]).status.success(), "grep does not match");
    let check = |re: &str| run(&check_http, &["-H", &ip.to_string(), "-p", &port.to_string(), "-r", re]).status.code();
    assert_eq!(check("^OK default$"), Some(0), "check_http -r does not match");
    assert_eq!(check("^OK defaults$"), Some(2));
    expect(&http(&format!(r"{url} body-regex=^OK\s+default$")), Health::Healthy, "http-status 200");
    expect(&http(&format!(r"{url} body-regex=\AOK\s+default$")), Health::Healthy, "http-status 200");
    // Not multi-line when asked so: `$` is then the end of the body only.
    expect(&http(&format!(r"{url} body-regex=(?-m)^OK\s+default$")), Health::Down, "body-mismatch");
    assert!(!run(&grep, &["-qE", r"^OK\s+defaults$", &body_file]).status.success());
    expect(&http(&format!(r"{url} body-regex=^OK\s+defaults$")), Health::Down, "body-mismatch");
}

/// A fixture that sends a 200 with its headers and the start of a body,
/// then stalls (holding the connection for `hold`). nginx cannot be made to
/// do this: it writes a `return` body or a small file in one go, and its
/// `limit_rate` makes a body trickle, never stop.
fn stalling_server(hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind((loopback(), 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\nOK, the rest",
                );
                std::thread::sleep(hold);
            });
        }
    });
    addr
}

/// Headers arrive, the body stalls: the timeout bounds the whole exchange,
/// as curl --max-time and check_http see it.
#[test]
fn a_stalled_body_is_a_timeout() {
    let Some([curl, check_http]) = tools(["curl", "check_http"]) else { return };
    let addr = stalling_server(Duration::from_secs(4));
    let url = format!("http://{addr}/");
    // Referees: both fail at their timeout.
    let start = Instant::now();
    let out = run(&curl, &["-s", "--max-time", "1", &url]);
    assert_eq!(out.status.code(), Some(28), "curl: {}", text(&out));
    let out = run(&check_http, &["-H", &addr.ip().to_string(), "-p", &addr.port().to_string(), "-t", "1"]);
    assert_eq!(out.status.code(), Some(2), "check_http: {}", text(&out));
    eprintln!("referees took {:?}", start.elapsed());
    let p: HttpProbe = url.parse().unwrap();
    let start = Instant::now();
    let o = p.run(Duration::from_millis(500));
    let took = start.elapsed();
    eprintln!("{url} -> {o} in {took:?}");
    expect(&o, Health::Down, "timeout");
    assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(1500), "took {took:?}");
    assert!(o.detail.contains("200 OK, then the body"), "{o}");
    // With a body check too.
    let p: HttpProbe = format!("{url} body=OK").parse().unwrap();
    expect(&p.run(Duration::from_millis(300)), Health::Down, "timeout");
    // HEAD reads no body.
    let p: HttpProbe = format!("{url} method=HEAD").parse().unwrap();
    expect(&p.run(Duration::from_millis(300)), Health::Healthy, "http-status 200");
}

/// Redirects: to a name that resolves nowhere (`host-not-found`), and from
/// http:// to an https:// site with a private CA, pinned with resolve=.
#[test]
fn redirects_to_other_names_and_an_https_site_with_a_private_ca() {
    let Some([nginx, curl, openssl]) = tools(["nginx", "curl", "openssl"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&openssl, dir.path());
    let ip = loopback();
    let (plain, tls) = (free_port(ip, false), free_port(ip, false));
    let servers = format!(
        r#"
        server {{ listen {ip}:{plain};
            location /nowhere {{ return 302 http://nowhere.invalid:{plain}/; }}
            location /secure {{ return 302 https://{NAME}:{tls}/health; }}
        }}
        server {{ listen {ip}:{tls} ssl; server_name {NAME};
            ssl_certificate {cert}; ssl_certificate_key {key};
            location /health {{ return 200 "secure\n"; }}
        }}"#,
        cert = pki.file("server.pem"),
        key = pki.file("server.key"),
    );
    let _n = Nginx::start(&nginx, dir.path(), ip, &[plain, tls], &servers);

    let nowhere = format!("http://{ip}:{plain}/nowhere");
    let out = run(&curl, &["-s", "-L", &nowhere]);
    assert_eq!(out.status.code(), Some(6), "curl: could not resolve host: {}", text(&out));
    let o = http(&format!("{nowhere} follow-redirects"));
    expect(&o, Health::Down, "host-not-found");
    assert!(o.detail.contains("nowhere.invalid:") && o.detail.contains("resolve="), "{o}");
    // Not followed: the 302 itself is judged.
    expect(&http(&nowhere), Health::Healthy, "http-status 302");

    let secure = format!("http://{ip}:{plain}/secure");
    let ca = pki.file("ca.pem");
    let pin = format!("{NAME}:{tls}:{ip}");
    let out = run(&curl, &["-s", "-L", "--cacert", &ca, "--resolve", &pin, &secure]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secure\n", "curl: {}", text(&out));
    expect(
        &http(&format!("{secure} follow-redirects ca={ca} resolve={pin} body=secure")),
        Health::Healthy,
        "http-status 200",
    );
    // The https:// URL itself by its name, pinned as for curl.
    let named = format!("https://{NAME}:{tls}/health");
    let out = run(&curl, &["-s", "--cacert", &ca, "--resolve", &pin, &named]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secure\n", "curl: {}", text(&out));
    expect(&http(&format!("{named} ca={ca} resolve={pin} body=secure")), Health::Healthy, "http-status 200");
    // Without the pin the name does not resolve (.test is reserved).
    expect(&http(&format!("{secure} follow-redirects ca={ca}")), Health::Down, "host-not-found");
    // Unless it is the probe's own name (host=): then, on any port, it is
    // this node's address, never a public site's that shares the name.
    let own = format!("{secure} host={NAME} follow-redirects ca={ca} body=secure");
    expect(&http(&own), Health::Healthy, "http-status 200");
    // A pin of the own name on the other port still says where it goes.
    // (another loopback address, where nothing listens).
    let elsewhere = loopback();
    let o = http(&format!("{secure} host={NAME} follow-redirects ca={ca} resolve={NAME}:{tls}:{elsewhere}"));
    expect(&o, Health::Down, "refused");
    // Without the CA, the certificate is not trusted, as for curl.
    let out = run(&curl, &["-s", "-L", "--resolve", &pin, &secure]);
    assert_eq!(out.status.code(), Some(60), "curl: {}", text(&out));
    expect(&http(&format!("{secure} follow-redirects resolve={pin}")), Health::Down, "tls-unknown-ca");
}

/// Response headers required, request headers sent; `header=` still sends
/// one (deprecated).
#[test]
fn request_and_response_headers() {
    let Some([nginx, curl]) = tools(["nginx", "curl"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let port = free_port(ip, false);
    let servers = format!(
        r#"server {{ listen {ip}:{port};
            location / {{ add_header X-Health "ok; build 42" always;
                if ($http_x_probe != "exaprobe") {{ return 403 "who?\n"; }}
                return 200 "fine\n"; }}
        }}"#
    );
    let _n = Nginx::start(&nginx, dir.path(), ip, &[port], &servers);
    let url = format!("http://{ip}:{port}/");
    let out = run(&curl, &["-s", "-i", "-H", "X-Probe: exaprobe", &url]);
    let t = text(&out);
    assert!(t.starts_with("HTTP/1.1 200") && t.contains("X-Health: ok; build 42"), "curl: {t}");
    assert!(text(&run(&curl, &["-s", "-i", &url])).starts_with("HTTP/1.1 403"));

    expect(&http(&url), Health::Down, "http-status 403");
    let with = format!("{url} request-header=X-Probe:exaprobe");
    expect(&http(&with), Health::Healthy, "http-status 200");
    expect(&http(&format!("{url} header=X-Probe:exaprobe")), Health::Healthy, "http-status 200");
    expect(&http(&format!("{with} expect-header=X-Health")), Health::Healthy, "http-status 200");
    expect(&http(&format!("{with} expect-header=x-health:^ok;")), Health::Healthy, "http-status 200");
    let o = http(&format!("{with} expect-header=X-Health:^fail"));
    expect(&o, Health::Down, "header-mismatch");
    assert!(o.detail.contains("\"ok; build 42\" does not match ^fail"), "{o}");
    expect(&http(&format!("{with} expect-header=X-Version")), Health::Down, "header-missing");
}

/// nginx `ssl_verify_client on`: with the client certificate (curl --cert
/// --key gets the page), without it, and with one from another CA.
#[test]
fn mtls_client_certificates() {
    let Some([nginx, curl, openssl]) = tools(["nginx", "curl", "openssl"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&openssl, dir.path());
    let ip = loopback();
    let port = free_port(ip, false);
    let servers = format!(
        r#"server {{ listen {ip}:{port} ssl; server_name {NAME};
            ssl_certificate {cert}; ssl_certificate_key {key};
            ssl_verify_client on; ssl_client_certificate {ca};
            location / {{ return 200 "mtls ok\n"; }}
        }}"#,
        cert = pki.file("server.pem"),
        key = pki.file("server.key"),
        ca = pki.file("ca.pem"),
    );
    let _n = Nginx::start(&nginx, dir.path(), ip, &[port], &servers);
    let (ca, pin) = (pki.file("ca.pem"), format!("{NAME}:{port}:{ip}"));
    let url = format!("https://{NAME}:{port}/");
    let curl_with = |extra: &[&str]| {
        let mut args = vec!["-s", "--cacert", &ca, "--resolve", &pin];
        args.extend(extra);
        args.push(&url);
        String::from_utf8_lossy(&run(&curl, &args).stdout).into_owned()
    };
    let (cert, key) = (pki.file("client.pem"), pki.file("client.key"));
    let (stranger, stranger_key) = (pki.file("stranger.pem"), pki.file("stranger.key"));
    assert_eq!(curl_with(&["--cert", &cert, "--key", &key]), "mtls ok\n");
    assert!(curl_with(&[]).contains("No required SSL certificate was sent"));
    assert!(curl_with(&["--cert", &stranger, "--key", &stranger_key]).contains("The SSL certificate error"));

    let base = format!("https://{ip}:{port}/ host={NAME} ca={ca}");
    expect(&http(&format!("{base} cert={cert} key={key} body=mtls")), Health::Healthy, "http-status 200");
    let o = http(&base);
    expect(&o, Health::Down, "tls-client-cert-required");
    assert!(o.detail.contains("give cert= and key=") && o.detail.contains("No required SSL certificate"), "{o}");
    let o = http(&format!("{base} cert={stranger} key={stranger_key}"));
    expect(&o, Health::Down, "tls-client-cert-refused");
    // openssl s_server -Verify ends the handshake with an alert instead
    // (TLS 1.3: certificate_required without a certificate), as curl sees.
    let s_port = free_port(ip, false);
    let s_addr = SocketAddr::from((ip, s_port));
    let accept = s_addr.to_string();
    let args = [
        "s_server",
        "-accept",
        &accept,
        "-cert",
        &pki.file("server.pem"),
        "-key",
        &pki.file("server.key"),
        "-Verify",
        "1",
        "-verify_return_error",
        "-CAfile",
        &ca,
        "-www",
        "-quiet",
    ];
    let _s = Server::start_tcp("openssl s_server", &openssl, &args, dir.path().join("s_server.log"), s_addr);
    let s_pin = format!("{NAME}:{s_port}:{ip}");
    let out = run(&curl, &["-sS", "--cacert", &ca, "--resolve", &s_pin, &format!("https://{NAME}:{s_port}/")]);
    assert!(text(&out).contains("alert certificate required"), "curl: {}", text(&out));
    let s_base = format!("https://{ip}:{s_port}/ host={NAME} ca={ca}");
    let o = http(&s_base);
    expect(&o, Health::Down, "tls-client-cert-required");
    assert!(o.detail.contains("TLS alert certificate required"), "{o}");
    let out = run(
        &curl,
        &[
            "-sS",
            "--cacert",
            &ca,
            "--cert",
            &stranger,
            "--key",
            &stranger_key,
            "--resolve",
            &s_pin,
            &format!("https://{NAME}:{s_port}/"),
        ],
    );
    assert!(text(&out).contains("alert unknown ca"), "curl: {}", text(&out));
    let o = http(&format!("{s_base} cert={stranger} key={stranger_key}"));
    expect(&o, Health::Down, "tls-client-cert-refused");
    assert!(o.detail.contains("TLS alert unknown ca"), "{o}");
    expect(&http(&format!("{s_base} cert={cert} key={key}")), Health::Healthy, "http-status 200");
    // A key that is not the certificate's is refused when the probe is built.
    let e = format!("{base} cert={cert} key={stranger_key}").parse::<HttpProbe>().unwrap_err().to_string();
    assert!(e.starts_with("key:") && e.contains("is not the key of the certificate"), "{e}");
}

/// TLS failures in an operator's words, for certificates curl refuses too.
#[test]
fn tls_errors_are_worded_for_an_operator() {
    let Some([nginx, curl, openssl]) = tools(["nginx", "curl", "openssl"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(&openssl, dir.path());
    let ip = loopback();
    // (certificate, curl's verdict, probe reason, probe detail)
    let cases = [
        ("expired", "certificate has expired", "tls-expired", "expired at 2021-01-01T00:00:00Z"),
        ("future", "certificate is not yet valid", "tls-not-yet-valid", "is valid from 2099-01-01"),
        ("unknown-ca", "unable to get local issuer certificate", "tls-unknown-ca", "not issued by a CA in ca="),
        (
            "wrong-name",
            "no alternative certificate subject name matches",
            "tls-wrong-name",
            "is for other.example.test",
        ),
        ("self-signed", "self-signed certificate", "tls-self-signed", "self-signed and not in ca="),
    ];
    let ports: Vec<u16> = (0..=cases.len()).map(|_| free_port(ip, false)).collect();
    let mut servers = String::new();
    for ((name, ..), port) in cases.iter().zip(&ports) {
        servers += &format!(
            "server {{ listen {ip}:{port} ssl; ssl_certificate {d}/{name}.pem; ssl_certificate_key {d}/{name}.key; \
             location / {{ return 200 \"ok\\n\"; }} }}\n",
            d = dir.path().display()
        );
    }
    // TLS 1.0 and 1.1 only (which OpenSSL 3 allows at security level 0).
    let old = ports[cases.len()];
    servers += &format!(
        "server {{ listen {ip}:{old} ssl; ssl_certificate {c}; ssl_certificate_key {k}; ssl_protocols TLSv1 TLSv1.1; \
         ssl_ciphers DEFAULT:@SECLEVEL=0; location / {{ return 200 \"old\\n\"; }} }}\n",
        c = pki.file("server.pem"),
        k = pki.file("server.key")
    );
    let _n = Nginx::start(&nginx, dir.path(), ip, &ports, &servers);
    let ca = pki.file("ca.pem");
    for ((name, curl_says, reason, detail), port) in cases.iter().zip(&ports) {
        let pin = format!("{NAME}:{port}:{ip}");
        let out = run(&curl, &["-sS", "--cacert", &ca, "--resolve", &pin, &format!("https://{NAME}:{port}/")]);
        assert_eq!(out.status.code(), Some(60), "{name}: curl: {}", text(&out));
        assert!(text(&out).contains(curl_says), "{name}: curl says {}", text(&out));
        let o = http(&format!("https://{ip}:{port}/ host={NAME} ca={ca}"));
        expect(&o, Health::Down, reason);
        assert!(o.detail.contains(detail), "{name}: {o}");
    }
    // The protocol version: curl (OpenSSL 3, TLS 1.2 at least at its
    // default security level) fails the handshake too.
    let out = run(
        &curl,
        &["-sS", "--cacert", &ca, "--resolve", &format!("{NAME}:{old}:{ip}"), &format!("https://{NAME}:{old}/")],
    );
    assert_eq!(out.status.code(), Some(35), "curl: {}", text(&out));
    let o = http(&format!("https://{ip}:{old}/ host={NAME} ca={ca}"));
    expect(&o, Health::Down, "tls-protocol-version");
    assert!(o.detail.contains("TLS 1.2 and 1.3"), "{o}");
}

// -------------------------------------------------------------------- plugins

/// The checks `--plugin` flags give, as exaprobe validates them.
fn plugin_checks(plugins: &[&str]) -> Vec<exaprobe::model::service::ServiceCheck> {
    let mut argv = vec!["exaprobe", "--ip", "198.51.100.1/32"];
    for p in plugins {
        argv.extend(["--plugin", p]);
    }
    let args = exaprobe::cli::Args::try_parse_from(argv).expect("flags");
    args.settings().expect("settings").service.checks
}

/// The Monitoring Plugins against nginx, chronyd and NSD: OK is healthy,
/// WARNING degraded, CRITICAL down; trailing timeout=/on-fail= are the
/// check's options; `\x20` gives an argument with a space. `check_dns`
/// has no port option, so it gets an NSD of its own on port 53 of another
/// loopback address, when the tests run as root (they must anyway, for
/// chronyd); `check_dig` talks to an NSD on an ephemeral port.
#[test]
fn monitoring_plugins_against_real_servers() {
    let Some([nginx, chronyd, nsd, check_tcp, check_http, check_ntp_time, check_dig]) =
        tools(["nginx", "chronyd", "nsd", "check_tcp", "check_http", "check_ntp_time", "check_dig"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let port = free_port(ip, false);
    let _n = Nginx::start(
        &nginx,
        dir.path(),
        ip,
        &[port],
        &format!(r#"server {{ listen {ip}:{port}; location / {{ return 200 "OK default\n"; }} }}"#),
    );
    let ntp = SocketAddr::from((ip, free_port(ip, true)));
    let unsynced = Chrony::start(&chronyd, dir.path(), "alone", ntp, false, LO, "allow 127.0.0.0/8");
    let dns = SocketAddr::from((ip, free_port(ip, true)));
    let nsd_dir = dir.path().join("nsd");
    std::fs::create_dir(&nsd_dir).unwrap();
    let _nsd = Nsd::start(&nsd, &nsd_dir, dns);
    let closed = free_port(ip, false);
    let (tcp, web, time, dig) =
        (check_tcp.display(), check_http.display(), check_ntp_time.display(), check_dig.display());
    let dport = dns.port();
    let root = nix::unistd::geteuid().is_root();
    let dns53 = SocketAddr::from((loopback(), 53));
    let nsd53_dir = dir.path().join("nsd53");
    std::fs::create_dir(&nsd53_dir).unwrap();
    let _nsd53 = root.then(|| Nsd::start(&nsd, &nsd53_dir, dns53));
    let check_dns = real_servers::tool("check_dns");
    let (nport, ntp_ip) = (ntp.port(), ntp.ip());
    let table = [
        (format!("{tcp} -H {ip} -p {port} timeout=2s on-fail=degrade"), Health::Healthy, "exit 0"),
        (format!("{tcp} -H {ip} -p {closed} -t 1"), Health::Down, "exit 2"),
        (format!(r"{web} -H {ip} -p {port} -s OK\x20default"), Health::Healthy, "exit 0"),
        (format!(r"{web} -H {ip} -p {port} -s OK\x20nothing"), Health::Down, "exit 2"),
        // Any response takes longer than 1 ns: WARNING.
        (format!("{web} -H {ip} -p {port} -w 0.000000001 -c 10"), Health::Degraded, "exit 1"),
        // chronyd with no source: "Offset unknown", CRITICAL.
        (format!("{time} -H {ntp_ip} -p {nport} -t 2"), Health::Down, "exit 2"),
        (format!("{dig} -H {ip} -p {dport} -l www.example.test -T A -a 192.0.2.1 -t 2"), Health::Healthy, "exit 0"),
        // The answer is not the one expected: WARNING.
        (format!("{dig} -H {ip} -p {dport} -l www.example.test -T A -a 192.0.2.9 -t 2"), Health::Degraded, "exit 1"),
    ];
    let mut table = table.to_vec();
    match (&check_dns, root) {
        (Some(check_dns), true) => {
            let (cdns, ip53) = (check_dns.display(), dns53.ip());
            table.push((format!("{cdns} -H www.example.test -s {ip53} -a 192.0.2.1 -t 2"), Health::Healthy, "exit 0"));
            // Another address than the one expected: CRITICAL.
            table.push((format!("{cdns} -H www.example.test -s {ip53} -a 192.0.2.9 -t 2"), Health::Down, "exit 2"));
        }
        _ => eprintln!("SKIP: check_dns (it needs root for an NSD on port 53)"),
    }
    let specs: Vec<&str> = table.iter().map(|(s, ..)| s.as_str()).collect();
    let checks = plugin_checks(&specs);
    // The first plugin's trailing words are its check's options, not its
    // arguments.
    assert_eq!(checks[0].timeout, Some(Duration::from_secs(2)));
    assert_eq!(checks[0].on_fail, OnFail::Degrade);
    assert_eq!(checks[1].timeout, None);
    let children = Children::default();
    for (c, (spec, health, reason)) in checks.iter().zip(&table) {
        let Check::Command(p) = &c.check else { panic!("{spec}: not a command") };
        let o = p.run(Duration::from_secs(5), &children);
        eprintln!("{spec}\n  -> {o}");
        expect(&o, *health, reason);
    }
    drop(unsynced);
}

/// A trailing `timeout=5` meant for the plugin is written `timeout\x3d5`:
/// the plugin gets `timeout=5`, the check keeps its default timeout.
#[test]
fn an_escaped_equals_sign_keeps_a_trailing_word_for_the_plugin() {
    let checks = plugin_checks(&["/bin/echo -n timeout\\x3d5"]);
    assert_eq!(checks[0].timeout, None);
    let Check::Command(p) = &checks[0].check else { panic!("not a command") };
    let o = p.run(Duration::from_secs(5), &Children::default());
    expect(&o, Health::Healthy, "exit 0");
    assert!(o.detail.contains("timeout=5"), "{o}");
}

// ------------------------------------------------------------------------ NTP

/// chronyd with no source and no `local`: leap 3, stratum 0, no kiss code.
#[test]
fn an_unsynchronised_chronyd_is_unsynchronised() {
    let Some([chronyd, chronyc, check_ntp_time]) = tools(["chronyd", "chronyc", "check_ntp_time"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let addr = SocketAddr::from((ip, free_port(ip, true)));
    let c = Chrony::start(&chronyd, dir.path(), "alone", addr, true, LO, "allow 127.0.0.0/8");
    let tracking = chronyc_tracking(&chronyc, c.socket.as_ref().unwrap());
    assert_eq!(tracking_field(&tracking, "Leap status"), "Not synchronised", "{tracking}");
    let out = run(&check_ntp_time, &["-H", &ip.to_string(), "-p", &addr.port().to_string(), "-t", "2"]);
    assert_eq!(out.status.code(), Some(2), "check_ntp_time: {}", text(&out));
    assert!(text(&out).contains("Offset unknown"), "{}", text(&out));
    let p: NtpProbe = addr.to_string().parse().unwrap();
    let o = p.run(LONG);
    eprintln!("{o}");
    expect(&o, Health::Down, "ntp-unsynchronised");
}

/// `source=` binds the query's source address: a chronyd that allows only
/// that address answers it, and drops the others (a timeout).
#[test]
fn source_address_of_ntp_queries() {
    let Some([chronyd]) = tools(["chronyd"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ip, allowed) = (loopback(), loopback());
    let addr = SocketAddr::from((ip, free_port(ip, true)));
    let _c = Chrony::start(
        &chronyd,
        dir.path(),
        "local",
        addr,
        false,
        allowed,
        &format!("allow {allowed}\nlocal stratum 8"),
    );
    let p: NtpProbe = format!("{addr} source={allowed}").parse().unwrap();
    let o = p.run(LONG);
    eprintln!("{o}");
    expect(&o, Health::Healthy, "ntp-synchronised");
    assert!(o.detail.starts_with("stratum 8,"), "{o}");
    let p: NtpProbe = addr.to_string().parse().unwrap();
    expect(&p.run(Duration::from_millis(500)), Health::Down, "timeout");
}

/// chrony 4.3's `ratelimit` drops a client over its rate without a kiss
/// (the `kod` option came in 4.4): the probe cannot tell that from a lost
/// packet and says `timeout`, as documented; chronyc's serverstats is the
/// referee that the server dropped them. (A `RATE` kiss, which the probe
/// reports as `ntp-rate-limited`, is tested with the fixture in
/// tests/probes.rs.)
#[test]
fn a_rate_limiting_chronyd_drops_requests_which_is_a_timeout() {
    let Some([chronyd, chronyc]) = tools(["chronyd", "chronyc"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let addr = SocketAddr::from((ip, free_port(ip, true)));
    // One answer per 16 s, a burst of one, and only 1 in 16 of the others
    // let through.
    let conf = "allow 127.0.0.0/8\nlocal stratum 8\nratelimit interval 4 burst 1 leak 4";
    let c = Chrony::start(&chronyd, dir.path(), "limited", addr, true, LO, conf);
    let p: NtpProbe = addr.to_string().parse().unwrap();
    let reasons: Vec<String> = (0..4).map(|_| p.run(Duration::from_millis(300)).reason).collect();
    eprintln!("{reasons:?}");
    assert!(reasons.iter().all(|r| r == "ntp-synchronised" || r == "timeout"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "timeout"), "{reasons:?}");
    let stats = text(&run(&chronyc, &["-h", c.socket.as_ref().unwrap().to_str().unwrap(), "serverstats"]));
    let dropped = stats
        .lines()
        .find(|l| l.starts_with("NTP packets dropped"))
        .and_then(|l| l.rsplit(':').next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(dropped.is_some_and(|n| n >= 1), "chronyc serverstats:\n{stats}");
}

fn chronyc_tracking(chronyc: &Path, socket: &Path) -> String {
    let out = run(chronyc, &["-h", socket.to_str().unwrap(), "-n", "tracking"]);
    text(&out)
}

fn tracking_field<'a>(tracking: &'a str, field: &str) -> &'a str {
    tracking.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_once(':')).map_or("", |(_, v)| v.trim())
}

/// Holdover: chronyd B syncs to A (`local stratum 8`), then A stops. B keeps
/// answering with stratum 9 and leap 0 while its reference time ages and
/// its root distance grows: max-ref-age and max-root-distance turn the probe
/// down. Referees: chronyc tracking on B's command socket, check_ntp_time.
#[test]
fn holdover_is_seen_by_reference_age_and_root_distance() {
    let Some([chronyd, chronyc, check_ntp_time]) = tools(["chronyd", "chronyc", "check_ntp_time"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let ip = loopback();
    let a = SocketAddr::from((ip, free_port(ip, true)));
    let b = SocketAddr::from((ip, free_port(ip, true)));
    let upstream = Chrony::start(&chronyd, dir.path(), "a", a, false, LO, "allow 127.0.0.0/8\nlocal stratum 8");
    // Polls every 1/4 s; a large maxclockerror (10 000 ppm: 10 ms/s) makes
    // its root dispersion grow fast enough for a test once A is gone.
    let follower = Chrony::start(
        &chronyd,
        dir.path(),
        "b",
        b,
        true,
        LO,
        &format!(
            "allow 127.0.0.0/8\nserver {ip} port {} minpoll -2 maxpoll -2 iburst\nmakestep 1 -1\nmaxclockerror 10000",
            a.port()
        ),
    );
    let socket = follower.socket.clone().unwrap();
    let plain: NtpProbe = b.to_string().parse().unwrap();
    let ref_age: NtpProbe = format!("{b} max-ref-age=3s").parse().unwrap();
    let distance: NtpProbe = format!("{b} max-root-distance=45ms").parse().unwrap();
    // B synchronises (seconds with these polls).
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let o = plain.run(LONG);
        if o.health == Health::Healthy && o.detail.starts_with("stratum 9,") {
            break;
        }
        assert!(Instant::now() < until, "B never synchronised: {o}\n{}", follower.server.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let tracking = chronyc_tracking(&chronyc, &socket);
    assert_eq!(tracking_field(&tracking, "Leap status"), "Normal", "{tracking}\n{}", follower.server.log());
    assert_eq!(tracking_field(&tracking, "Stratum"), "9", "{tracking}");
    expect(&ref_age.run(LONG), Health::Healthy, "ntp-synchronised");
    expect(&distance.run(LONG), Health::Healthy, "ntp-synchronised");

    upstream.server.stop();
    let stopped = Instant::now();
    // A sample in flight when A stopped has landed by now.
    std::thread::sleep(Duration::from_millis(600));
    let at_stop = chronyc_tracking(&chronyc, &socket);
    let mut seen_age = None;
    let mut seen_distance = None;
    while seen_age.is_none() || seen_distance.is_none() {
        assert!(stopped.elapsed() < Duration::from_secs(20), "holdover not seen in 20 s");
        std::thread::sleep(Duration::from_millis(250));
        if seen_age.is_none() && ref_age.run(LONG).reason == "ntp-ref-age" {
            seen_age = Some(stopped.elapsed());
        }
        if seen_distance.is_none() && distance.run(LONG).reason == "ntp-root-distance" {
            seen_distance = Some(stopped.elapsed());
        }
    }
    eprintln!("down after A stopped: ref age {seen_age:?}, root distance {seen_distance:?}");
    // Stratum and leap intact: without bounds the probe, check_ntp_time and
    // chronyc all still call B synchronised.
    let o = plain.run(LONG);
    expect(&o, Health::Healthy, "ntp-synchronised");
    assert!(o.detail.starts_with("stratum 9,"), "{o}");
    let out = run(&check_ntp_time, &["-H", &ip.to_string(), "-p", &b.port().to_string(), "-t", "2"]);
    assert_eq!(out.status.code(), Some(0), "check_ntp_time: {}", text(&out));
    let later = chronyc_tracking(&chronyc, &socket);
    assert_eq!(tracking_field(&later, "Leap status"), "Normal", "{later}");
    // The reference time stood still since A stopped; the root dispersion
    // grew.
    assert_eq!(tracking_field(&later, "Ref time (UTC)"), tracking_field(&at_stop, "Ref time (UTC)"), "{later}");
    let dispersion = |t: &str| {
        tracking_field(t, "Root dispersion").split_whitespace().next().unwrap_or("").parse::<f64>().unwrap_or(0.0)
    };
    assert!(dispersion(&later) > dispersion(&at_stop), "root dispersion did not grow:\n{at_stop}\n{later}");
}

// ----------------------------------------------------------------- validation

/// The new options, given badly in a JSON config, are errors at their JSON
/// path (what `exaprobe check` prints); given well, they reach the probe.
#[test]
fn new_options_are_validated_at_their_json_path() {
    use exaprobe::model::config;
    let one = |check: &str| {
        format!(r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"], "checks": [{check}]}}]}}"#)
    };
    let table = [
        (r#"{"type": "ntp", "max_ref_age": "soon"}"#, "max_ref_age"),
        (r#"{"type": "ntp", "max_root_distance": "-1"}"#, "max_root_distance"),
        (r#"{"type": "ntp", "server": "127.0.0.1", "source": "lo"}"#, "source"),
        (r#"{"type": "ntp", "server": "::1", "source": "127.0.0.1"}"#, "source"),
        (r#"{"type": "http", "url": "https://127.0.0.1/", "cert": "/nonexistent.pem"}"#, "key"),
        (r#"{"type": "http", "url": "https://127.0.0.1/", "cert": "/nonexistent.pem", "key": "/k"}"#, "cert"),
        (r#"{"type": "http", "url": "http://127.0.0.1/", "expect_headers": {"X-A": "("}}"#, "expect_headers"),
        (r#"{"type": "http", "url": "http://127.0.0.1/", "request_headers": {"Host": "x"}}"#, "request_headers"),
        (r#"{"type": "http", "url": "http://127.0.0.1/", "headers": {"Host": "x"}}"#, "headers"),
        (
            r#"{"type": "http", "url": "http://127.0.0.1/", "follow_redirects": true, "resolve": ["a.example:443"]}"#,
            "resolve",
        ),
        (r#"{"type": "http", "url": "http://127.0.0.1/", "resolve": ["a.example:443:127.0.0.1"]}"#, "resolve"),
        (r#"{"type": "http", "url": "http://127.0.0.1/", "insecure": true}"#, "url"),
    ];
    for (check, key) in table {
        let errors = config::load(&one(check)).err().unwrap_or_else(|| panic!("accepted: {check}"));
        let want = format!("services[0].checks[0].{key}");
        assert!(errors.iter().any(|e| e.path == want), "{check}: wanted an error at {want}, got {errors:?}");
    }
    let c = config::load(&one(
        r#"{"type": "ntp", "server": "127.0.0.2", "max_ref_age": "20m", "max_root_distance": "1.5s", "source": "127.0.0.3"}"#,
    ))
    .unwrap();
    let Check::Ntp(p) = &c.services[0].checks[0].check else { panic!("not ntp") };
    assert_eq!(
        (p.max_ref_age, p.max_root_distance),
        (Some(Duration::from_secs(1200)), Some(Duration::from_millis(1500)))
    );
    let c = config::load(&one(
        r#"{"type": "http", "url": "http://127.0.0.1/", "headers": {"X-Old": "1"}, "request_headers": {"X-New": "2"},
            "expect_headers": {"X-Health": "^ok$", "X-Any": ""}, "follow_redirects": true,
            "resolve": ["www.example.com:443:127.0.0.1"]}"#,
    ))
    .unwrap();
    let Check::Http(p) = &c.services[0].checks[0].check else { panic!("not http") };
    assert_eq!(p.headers.len(), 2);
    assert_eq!(p.expect_headers.len(), 2);
    assert_eq!(p.resolve.len(), 1);
    assert!(c.warnings.iter().any(|w| w.contains("checks[0].headers") && w.contains("deprecated")), "{:?}", c.warnings);
    // The flag form's header= is a warning naming the flag, and still works.
    let argv = ["exaprobe", "--ip", "198.51.100.1/32", "--http", "http://127.0.0.1/ header=X-Probe:1"];
    let (spec, errors) = exaprobe::cli::Args::try_parse_from(argv).unwrap().spec();
    assert!(errors.is_empty(), "{errors:?}");
    let (service, problems) = exaprobe::model::validate::service(&spec);
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.iter().any(|p| p.contains("--http") && p.contains("header= is deprecated")), "{problems:?}");
    let Check::Http(p) = &service.unwrap().checks[0].check else { panic!("not http") };
    assert_eq!(p.headers.len(), 1);
}
