//! Unit tests of the DNS probe's flag form, builder errors and serial
//! arithmetic.

use super::*;

#[test]
fn flag_form_parses_and_round_trips() {
    let p: DnsProbe = "127.0.0.1:5353 example.com A".parse().unwrap();
    assert_eq!(p.server, "127.0.0.1:5353".parse().unwrap());
    assert_eq!((p.rtype, p.transport.clone(), p.rcode), (Rtype::A, Transport::Udp, Rcode::NOERROR));
    assert!(p.recursion_desired);
    assert_eq!(p.to_string(), "127.0.0.1:5353 example.com A");

    let p: DnsProbe = "example.com".parse().unwrap();
    assert_eq!((p.server, p.rtype), ("127.0.0.1:53".parse().unwrap(), Rtype::A));

    let s = "::1 example.com txt tcp norecurse rcode=nxdomain answer=v=spf1\\x20-all source=::1 \
             soa-reference=[::1]:5300 soa-max-lag=7 soa-zone=com";
    let p: DnsProbe = s.parse().unwrap();
    assert_eq!((p.rtype, p.transport.clone(), p.rcode), (Rtype::TXT, Transport::Tcp, Rcode::NXDOMAIN));
    assert!(!p.recursion_desired);
    assert_eq!(p.answer, Some(Expected::Text("v=spf1 -all".into())));
    assert_eq!(p.source, Some("::1".parse().unwrap()));
    let soa = p.soa_lag.as_ref().unwrap();
    assert_eq!((soa.reference, soa.max_lag), ("[::1]:5300".parse().unwrap(), 7));
    assert_eq!(soa.zone.to_string(), "com");
    assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

    let p: DnsProbe = "127.0.0.1 example.com AAAA answer=2001:db8::1".parse().unwrap();
    assert_eq!(p.answer, Some(Expected::Address("2001:db8::1".parse().unwrap())));
    let p: DnsProbe = "127.0.0.1 example.com TYPE65 rcode=3".parse().unwrap();
    assert_eq!((p.rtype.to_int(), p.rcode), (65, Rcode::NXDOMAIN));
}

#[test]
fn errors_name_the_field() {
    let e = |s: &str| s.parse::<DnsProbe>().unwrap_err().to_string();
    assert!(e("").starts_with("name:"), "{}", e(""));
    assert!(e("127.0.0.1:53").starts_with("name:"));
    assert!(e("127.0.0.1 example.com BOGUS").starts_with("type:"));
    assert!(e("127.0.0.1 example.com A extra").contains("expected tcp"));
    assert!(e("127.0.0.1 example.com AXFR").starts_with("type:"));
    assert!(e("127.0.0.1 example.com A rcode=FINE").starts_with("rcode:"));
    assert!(e("127.0.0.1 example.com A answer=mail").starts_with("answer:"));
    assert!(e("127.0.0.1 example.com AAAA answer=192.0.2.1").starts_with("answer:"));
    assert!(e("127.0.0.1 example.com A source=::1").starts_with("source:"));
    assert!(e("127.0.0.1 example.com A source=me").starts_with("source:"));
    assert!(e("127.0.0.1 example.com A soa-max-lag=3").starts_with("soa-reference:"));
    assert!(e("127.0.0.1 example.com A soa-reference=ns1").starts_with("soa-reference:"));
    assert!(e("127.0.0.1 example.com A source=127.0.0.2 soa-reference=::1").starts_with("soa-reference:"));
    assert!(e("127.0.0.1 example.com A soa-reference=127.0.0.2 soa-max-lag=x").starts_with("soa-max-lag:"));
    assert!(e("127.0.0.1 example.com A port=53").starts_with("port:"));
    assert!(e("127.0.0.1 bad..name A").starts_with("name:"));
    assert!(
        DnsProbe::builder("example.com")
            .server("dns.example.com")
            .build()
            .unwrap_err()
            .to_string()
            .starts_with("server:")
    );
}

#[test]
fn new_settings_parse_and_round_trip() {
    let p: DnsProbe = "127.0.0.1 example.com".parse().unwrap();
    assert_eq!(p.edns, Some(Edns { bufsize: DEFAULT_BUFSIZE, dnssec_ok: false, nsid: false }));
    assert_eq!(p.class, Class::IN);
    let s = "127.0.0.1:5353 example.com A bufsize=4096 nsid=site\\x20a dnssec ad aa nodata=down";
    let p: DnsProbe = s.parse().unwrap();
    assert_eq!(p.edns, Some(Edns { bufsize: 4096, dnssec_ok: true, nsid: true }));
    assert_eq!(p.nsid_required.as_deref(), Some("site a"));
    assert!(p.require_ad && p.require_aa && p.nodata_down);
    assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

    let p: DnsProbe = "127.0.0.1 id.server class=ch".parse().unwrap();
    assert_eq!((p.class, p.rtype), (Class::CH, Rtype::TXT));
    assert_eq!(p.to_string(), "127.0.0.1:53 id.server TXT class=CH");
    let p: DnsProbe = "127.0.0.1 example.com edns=off".parse().unwrap();
    assert_eq!(p.edns, None);
    assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

    let p: DnsProbe = "127.0.0.1 example.com tls tls-name=dns.example.com insecure".parse().unwrap();
    assert_eq!(p.server, "127.0.0.1:853".parse().unwrap());
    assert_eq!(p.transport, Transport::Tls(TlsTarget { name: Some("dns.example.com".into()), tls: Tls::Insecure }));
    assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);

    let p: DnsProbe = "example.com AAAA doh=https://[::1]:8443/dns-query?x=1 method=POST".parse().unwrap();
    assert_eq!(p.server, "[::1]:8443".parse().unwrap());
    let Transport::Https(d) = &p.transport else { panic!("{p:?}") };
    assert!(d.post && d.url.path == "/dns-query?x=1");
    assert_eq!(p.to_string().parse::<DnsProbe>().unwrap(), p);
}

#[test]
fn new_settings_errors_name_the_key() {
    let e = |s: &str| s.parse::<DnsProbe>().unwrap_err().to_string();
    for (spec, key) in [
        ("127.0.0.1 example.com bufsize=511", "bufsize:"),
        ("127.0.0.1 example.com bufsize=65536", "bufsize:"),
        ("127.0.0.1 example.com edns=maybe", "edns:"),
        ("127.0.0.1 example.com edns=off nsid", "nsid:"),
        ("127.0.0.1 example.com edns=off dnssec", "dnssec:"),
        ("127.0.0.1 example.com edns=off bufsize=4096", "bufsize:"),
        ("127.0.0.1 example.com nsid=", "nsid:"),
        ("127.0.0.1 example.com class=XX", "class:"),
        ("127.0.0.1 example.com class=ANY", "class:"),
        ("127.0.0.1 example.com nodata=maybe", "nodata:"),
        ("127.0.0.1 example.com tls-name=x", "tls-name:"),
        ("127.0.0.1 example.com ca=/nonexistent", "ca:"),
        ("127.0.0.1 example.com tls ca=/nonexistent", "ca:"),
        ("127.0.0.1 example.com tls tls-name=a..b", "tls-name:"),
        ("127.0.0.1 example.com insecure", "insecure:"),
        ("127.0.0.1 example.com method=post", "method:"),
        ("127.0.0.1 example.com tcp tls", "tls:"),
        ("127.0.0.1 example.com doh=https://127.0.0.1/", "server:"),
        ("example.com doh=https://dns.example.com/", "doh:"),
        ("example.com doh=https://127.0.0.1/ method=put", "method:"),
        ("example.com doh=https://127.0.0.1/ source=127.0.0.1", "source:"),
        ("example.com doh=http://127.0.0.1/ tls-name=dns.example.com", "tls-name:"),
    ] {
        assert!(e(spec).starts_with(key), "{spec}: {}", e(spec));
    }
}

#[test]
fn serial_arithmetic() {
    assert_eq!(serial_lag(100, 100), 0);
    assert_eq!(serial_lag(100, 105), 5);
    assert_eq!(serial_lag(105, 100), 0, "ahead is no lag");
    assert_eq!(serial_lag(u32::MAX, 2), 3, "wraps");
    assert_eq!(serial_lag(2, u32::MAX), 0);
    assert_eq!(serial_lag(0, 1 << 31), 1 << 31, "undefined counts as the most");
    assert_eq!(serial_lag(0, (1 << 31) - 1), (1 << 31) - 1);
    assert_eq!(serial_lag(0, (1 << 31) + 1), 0);
}

#[test]
fn stream_replies_with_tc_are_truncated() {
    let mut builder = domain::base::MessageBuilder::new_vec();
    builder.header_mut().set_qr(true);
    let plain = builder.clone().into_message();
    builder.header_mut().set_tc(true);
    let truncated = builder.into_message();
    for over in ["TCP", "DoT", "DoH"] {
        let o = whole(Ok(truncated.clone()), over).unwrap_err();
        assert_eq!((o.reason.as_str(), o.detail.as_str()), ("dns-truncated", format!("TC set over {over}").as_str()));
        assert!(whole(Ok(plain.clone()), over).is_ok());
    }
}
