//! Unit tests of the HTTP probe's flag form, builder and value parsing.

use super::*;

#[test]
fn urls_need_an_address() {
    let u: HttpUrl = "http://127.0.0.1:8080/health?x=1".parse().unwrap();
    assert_eq!((u.scheme, u.address.port(), u.path.as_str()), (Scheme::Http, 8080, "/health?x=1"));
    let u: HttpUrl = "https://[::1]/".parse().unwrap();
    assert_eq!(u.address, "[::1]:443".parse().unwrap());
    assert_eq!(u.to_string(), "https://[::1]:443/");
    assert_eq!("http://localhost".parse::<HttpUrl>().unwrap().to_string(), "http://127.0.0.1:80/");
    assert!("http://example.com/".parse::<HttpUrl>().unwrap_err().contains("host=NAME"));
    assert!("ftp://127.0.0.1/".parse::<HttpUrl>().is_err());
    assert!("http://u:p@127.0.0.1/".parse::<HttpUrl>().is_err());
    assert!("127.0.0.1:80".parse::<HttpUrl>().is_err());
}

#[test]
fn status_sets() {
    let s: StatusSet = "200,204,300-399".parse().unwrap();
    assert!(s.contains(204) && s.contains(302) && !s.contains(201));
    assert_eq!(s.to_string(), "200,204,300-399");
    assert!(StatusSet::default().contains(399) && !StatusSet::default().contains(400));
    assert!("99".parse::<StatusSet>().is_err());
    assert!("300-200".parse::<StatusSet>().is_err());
    assert!("".parse::<StatusSet>().is_err());
    assert!("2xx".parse::<StatusSet>().is_err());
}

#[test]
fn flag_form_round_trips() {
    let s = "https://127.0.0.1:8443/health method=HEAD host=www.example.com status=200,204 \
             header=X-Probe:a\\x20b insecure follow-redirects";
    let p: HttpProbe = s.parse().unwrap();
    assert_eq!(p.method, Method::HEAD);
    assert_eq!(p.host.as_deref(), Some("www.example.com"));
    assert_eq!(p.headers[0].1, "a b");
    assert_eq!(p.tls, Tls::Insecure);
    assert_eq!(p.to_string().parse::<HttpProbe>().unwrap(), p);
    let p: HttpProbe = "http://127.0.0.1/ body-regex=^ok\\s*$".parse().unwrap();
    assert!(matches!(&p.body, Some(BodyMatch::Regex(r)) if r.0.is_match("ok \n")));
    assert_eq!(p.to_string().parse::<HttpProbe>().unwrap(), p);
    let s = "http://127.0.0.1/ follow-redirects resolve=www.example.com:443:127.0.0.2 \
             resolve=v6.example.com:8443:[::1] expect-header=X-Health expect-header=X-Ver:^2\\. \
             request-header=X-A:1";
    let p: HttpProbe = s.parse().unwrap();
    assert_eq!(p.resolve.len(), 2);
    assert_eq!(p.resolve[1].address, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(p.expect_headers.len(), 2);
    assert_eq!(p.to_string().parse::<HttpProbe>().unwrap(), p);
    // A URL with a name and its pin, as curl --resolve: the name is the
    // host, the pin's address is connected to.
    let p: HttpProbe = "https://WWW.example.com/x resolve=www.example.com:443:127.0.0.9".parse().unwrap();
    assert_eq!((p.url.address, p.host.as_deref()), ("127.0.0.9:443".parse().unwrap(), Some("www.example.com")));
    assert_eq!(p.to_string(), "https://127.0.0.9:443/x host=www.example.com resolve=www.example.com:443:127.0.0.9");
    assert_eq!(p.to_string().parse::<HttpProbe>().unwrap(), p);
    // Multi-line, as grep: `$` before the body's final newline.
    let p: HttpProbe = "http://127.0.0.1/ body-regex=^OK\\s+default$".parse().unwrap();
    assert!(matches!(&p.body, Some(BodyMatch::Regex(r)) if r.0.is_match("OK default\n")));
    assert!(matches!(&p.body, Some(BodyMatch::Regex(r)) if r.0.is_match("x\r\nOK default\r\n")));
    assert!(matches!(&p.body, Some(BodyMatch::Regex(r)) if !r.0.is_match("OK defaults\n")));
    let p: HttpProbe = "http://127.0.0.1/ body-regex=(?-m)^OK$".parse().unwrap();
    assert!(matches!(&p.body, Some(BodyMatch::Regex(r)) if !r.0.is_match("OK\nmore")));
    assert_eq!(deprecated_words("http://127.0.0.1/ header=X:1 request-header=Y:2").len(), 1);
    let p: HttpProbe = "http://127.0.0.1/ body=all\\x20good".parse().unwrap();
    assert_eq!(p.body, Some(BodyMatch::Contains("all good".into())));
    assert_eq!(p.to_string(), "http://127.0.0.1:80/ body=all\\x20good");
}

#[test]
fn errors_name_the_field() {
    let e = |s: &str| s.parse::<HttpProbe>().unwrap_err().to_string();
    assert!(e("").starts_with("url:"));
    assert!(e("http://127.0.0.1/ method=FETCH").starts_with("method:"));
    assert!(e("http://127.0.0.1/ host=bad_name!").starts_with("host:"));
    assert!(e("http://127.0.0.1/ host=10.0.0.1").starts_with("host:"));
    assert!(e("http://127.0.0.1/ status=600").starts_with("status:"));
    assert!(e("http://127.0.0.1/ body-regex=(").starts_with("body-regex:"));
    assert!(e("http://127.0.0.1/ body=a body-regex=b").starts_with("body-regex:"));
    assert!(e("http://127.0.0.1/ method=HEAD body=a").starts_with("body:"));
    assert!(e("http://127.0.0.1/ header=Host:x").starts_with("header:"));
    assert!(e("http://127.0.0.1/ header=novalue").starts_with("header:"));
    assert!(e("http://127.0.0.1/ request-header=novalue").starts_with("request-header:"));
    assert!(e("http://127.0.0.1/ expect-header=Bad(Name").starts_with("expect-header:"));
    assert!(e("http://127.0.0.1/ expect-header=X-A:(").starts_with("expect-header:"));
    assert!(e("http://127.0.0.1/ expect-header=X-A:").starts_with("expect-header:"));
    assert!(e("http://127.0.0.1/ resolve=www.example.com:443:127.0.0.1").starts_with("resolve:"));
    assert!(e("https://www.example.com/ resolve=www.example.com:8443:127.0.0.1").starts_with("url:"));
    assert!(
        e("https://www.example.com/ resolve=www.example.com:443:127.0.0.1 host=other.example.com").starts_with("host:")
    );
    assert!(e("http://127.0.0.1/ follow-redirects resolve=www.example.com:443").starts_with("resolve:"));
    assert!(e("http://127.0.0.1/ follow-redirects resolve=www.example.com:0:127.0.0.1").starts_with("resolve:"));
    assert!(e("http://127.0.0.1/ follow-redirects resolve=bad!:443:127.0.0.1").starts_with("resolve:"));
    assert!(e("https://127.0.0.1/ cert=/nonexistent.pem").starts_with("key:"));
    assert!(e("https://127.0.0.1/ key=/nonexistent.pem").starts_with("cert:"));
    assert!(e("https://127.0.0.1/ cert=/nonexistent.pem key=/nonexistent.key").starts_with("cert:"));
    assert!(e("http://127.0.0.1/ ca=/nonexistent.pem").starts_with("ca:"));
    assert!(e("https://127.0.0.1/ ca=/nonexistent.pem").starts_with("ca:"));
    assert!(e("http://127.0.0.1/ insecure").starts_with("url:"));
    assert!(e("http://127.0.0.1/ timeout=1").starts_with("timeout:"));
    assert!(e("http://127.0.0.1/ verbose").contains("insecure"));
}

#[test]
fn ca_files_are_small_regular_files() {
    let e = |ca: &std::path::Path| {
        format!("https://127.0.0.1/ ca={}", ca.display()).parse::<HttpProbe>().unwrap_err().to_string()
    };
    assert_eq!(e("/dev/zero".as_ref()), "ca: /dev/zero: not a regular file");
    let dir = tempfile::tempdir().unwrap();
    assert!(e(dir.path()).ends_with(": a directory"));
    // A FIFO with no writer: opening it for reading would block.
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert!(e(&fifo).ends_with("fifo: not a regular file"));
    let big = dir.path().join("big.pem");
    std::fs::write(&big, vec![b'#'; CA_FILE_MAX as usize + 1]).unwrap();
    assert!(e(&big).ends_with(&format!("big.pem: larger than {CA_FILE_MAX} bytes")));
    // At the limit, the file is read (and found to hold no certificate).
    std::fs::write(&big, vec![b'#'; CA_FILE_MAX as usize]).unwrap();
    assert!(e(&big).ends_with("no PEM certificate in it"));
    // PEM that holds no certificate webpki can read.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
    assert!(e(&junk).ends_with("junk.pem: no certificate in it is usable as a CA"), "{}", e(&junk));
    let link = dir.path().join("link.pem");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    assert!(e(&link).ends_with("link.pem: not a regular file"));
}
