//! HTTP and HTTPS probe: one request to a local web service, judged on the
//! status code and optionally on the body.
//!
//! The client is ureq 3 (blocking, no async runtime), with a fresh agent per
//! run: the run's timeout is part of the agent's configuration, and a fresh
//! agent means a fresh connection, so a probe never passes on a kept-alive
//! connection to a server that no longer accepts new ones. The whole request,
//! from connect to the last body byte read, is bounded by the timeout
//! (`timeout_global`). Proxies from the environment are ignored.
//!
//! The URL names the address to connect to, as an IP literal (or
//! `localhost`): host names are not resolved, because the probe must test
//! *this* node, not whatever the name points at. To present a public name,
//! set `host=`: the request then goes to the URL's address, while the `Host`
//! header, the TLS SNI and the certificate check all use the name. (ureq's
//! resolver hook does this; it is outside ureq's semver promise, so a ureq
//! upgrade must be checked against the tests here.)
//!
//! TLS certificates are verified by default, against Mozilla's roots or the
//! CA certificates of `ca=` (a PEM file, read when the probe is built: a
//! regular file of at most [`CA_FILE_MAX`], 1 MiB), accepting what
//! `curl --cacert` accepts: a self-signed certificate given as its own
//! `ca=` (the `openssl req -x509` kind), any certificate of the file as a
//! trust anchor, the common name of a certificate without subjectAltName
//! (see `src/probe/tls.rs`); `insecure` turns the certificate check off (the
//! handshake signature is still verified).
//!
//! Redirects are not followed unless `follow-redirects` is given, so by
//! default a 3xx is judged as it is (healthy under the default status set
//! 200–399). A redirect target's name is looked up in `resolve=` first
//! (`HOST:PORT:ADDR`, as `curl --resolve`, repeatable), then with the
//! system resolver; a name that resolves nowhere is `host-not-found`. A
//! pin also lets the URL itself name its host, as with curl:
//! `https://www.example.com/ resolve=www.example.com:443:127.0.0.1` is
//! `https://127.0.0.1/ host=www.example.com` (a name in the URL without a
//! pin is refused: the probe never resolves the URL's host). `ca=`,
//! `cert=`/`key=` and `insecure` are taken on an `http://` URL too (with
//! `follow-redirects`): they apply to the `https://` site it redirects to.
//!
//! A client certificate for mTLS is `cert=PEM-FILE` (the certificate, then
//! any intermediates) with `key=PEM-FILE` (its private key: PKCS#8, PKCS#1
//! or SEC1, unencrypted), both read and matched against each other when the
//! probe is built. It is sent only when the server asks for one. A server
//! that asks for a certificate and refuses the request without one (nginx's
//! `ssl_verify_client on` answers 400 "No required SSL certificate was
//! sent"; other servers end the handshake with `certificate_required`) is
//! `tls-client-cert-required`; one that refuses the certificate given (a 400
//! after asking, or an alert such as `bad_certificate` or `unknown_ca`) is
//! `tls-client-cert-refused`.
//!
//! The body is read on every request but HEAD, up to [`BODY_LIMIT`] bytes
//! (what lies beyond is neither read nor waited for), and `timeout` bounds
//! the whole exchange, connect to the last body byte read: a server that
//! sends its headers and then stalls in the body is a `timeout`, as it is
//! for `curl --max-time` and `check_http`.
//!
//! Reasons: `http-status 200` (healthy) or `http-status 503` (unexpected
//! status); `body-mismatch`; `header-missing` and `header-mismatch`
//! (`expect-header=`); `timeout`; `refused`; `host-not-found` (a redirect
//! target that does not resolve); the TLS reasons of `src/probe/tls.rs`
//! (`tls-expired`, `tls-not-yet-valid`, `tls-wrong-name`,
//! `tls-self-signed`, `tls-unknown-ca`, `tls-bad-signature`,
//! `tls-bad-certificate`, `tls-client-cert-required`,
//! `tls-client-cert-refused`, `tls-protocol-version`, `tls-handshake`,
//! `tls-protocol`, `tls-error`), each with a detail for an operator;
//! `too-many-redirects`; `http-protocol-error`; `http-error` (other).
//!
//! Flag form (`--http`), words separated by spaces:
//!
//! ```text
//! URL [method=METHOD] [host=NAME] [status=LIST] [body=TEXT] [body-regex=RE]
//!     [request-header=NAME:VALUE]... [expect-header=NAME[:RE]]...
//!     [ca=PEM-FILE] [cert=PEM-FILE key=PEM-FILE] [insecure]
//!     [follow-redirects] [resolve=HOST:PORT:ADDR]...
//! http://127.0.0.1:8080/health
//! https://127.0.0.1/health host=www.example.com status=200,204 body=OK
//! https://[::1]:8443/ host=www.example.com ca=/etc/ssl/private-ca.pem
//! http://127.0.0.1/ready request-header=X-Probe:exaprobe body-regex=^ready$
//! https://127.0.0.1/ host=api.example.com cert=/etc/exaprobe/client.pem key=/etc/exaprobe/client.key
//! http://127.0.0.1/ expect-header=X-Health:^(ok|warn)$
//! http://127.0.0.1/ follow-redirects resolve=www.example.com:443:127.0.0.1 ca=/etc/ssl/private-ca.pem
//! ```
//!
//! `LIST` is comma-separated codes and ranges (`200-299,301`). `TEXT` and
//! header values take the escapes of [`super::tcp::unescape`] (`\x20` for a
//! space); `RE` is a regular expression (regex-lite syntax). The body
//! regex is matched against the body decoded as UTF-8, lossily, in
//! multi-line mode, as grep and `check_http -r` do: `^` and `$` match at the
//! start and end of every line (before a `\n` or `\r\n`), so
//! `^OK\s+default$` matches the body `OK default\n`; `\A` and `\z` are the
//! start and end of the whole body, and `(?-m)` turns multi-line off.
//! `expect-header=NAME` requires the response header; `expect-header=NAME:RE`
//! requires one of its values to match `RE` (unanchored, case-sensitive:
//! `(?i)` for not). `header=NAME:VALUE` is the old name of
//! `request-header=`, still accepted with a warning.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue, Method, Uri};
use ureq::tls::PemItem;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};

use super::tcp::{escape, first_line, unescape};
use super::tls::{self, TlsConnector};
use super::{Outcome, SpecError, io_reason};

/// How much of a body is read (on every request but HEAD); the rest is
/// neither read nor waited for.
pub const BODY_LIMIT: u64 = 256 * 1024;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A URL whose host is an address: where to connect and what to ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The address connected to.
    pub address: SocketAddr,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL ({e})"))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err(format!("{s:?} is not an http:// or https:// URL")),
        };
        let authority = uri.authority().ok_or_else(|| format!("{s:?} has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("{s:?}: user info in URLs is not supported; use header=Authorization:…"));
        }
        let host = authority.host();
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::from([127, 0, 0, 1])
        } else {
            host.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| {
                format!(
                    "{s:?}: the host must be an IP address (host names are not resolved; set host=NAME to send one, \
                     or pin the name with resolve=NAME:PORT:ADDR)"
                )
            })?
        };
        let port = authority.port_u16().unwrap_or(scheme.default_port());
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
        Ok(HttpUrl { scheme, address: SocketAddr::new(ip, port), path })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme.as_str(), self.address, self.path)
    }
}

/// The status codes that mean healthy: a non-empty list of ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

impl StatusSet {
    /// True if `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|r| r.contains(&code))
    }
}

impl Default for StatusSet {
    /// 200–399: success and redirects (not followed by default).
    fn default() -> Self {
        StatusSet(vec![200..=399])
    }
}

impl FromStr for StatusSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let code = |c: &str| match c.trim().parse::<u16>() {
            Ok(n @ 100..=599) => Ok(n),
            _ => Err(format!("{c:?} is not a status code (100–599)")),
        };
        let mut ranges = Vec::new();
        for part in s.split(',') {
            let range = match part.split_once('-') {
                Some((lo, hi)) => code(lo)?..=code(hi)?,
                None => code(part)?..=code(part)?,
            };
            if range.is_empty() {
                return Err(format!("{part:?} is an empty range"));
            }
            ranges.push(range);
        }
        Ok(StatusSet(ranges))
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if r.start() == r.end() {
                write!(f, "{sep}{}", r.start())?;
            } else {
                write!(f, "{sep}{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// A compiled body regular expression, compared by its source text.
#[derive(Clone, Debug)]
pub struct BodyRegex(pub regex_lite::Regex);

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for BodyRegex {}

/// What the body must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyMatch {
    /// This text, anywhere.
    Contains(String),
    /// A match of this regular expression.
    Regex(BodyRegex),
}

/// CA certificates read from a PEM file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaBundle {
    /// Where they were read from (for messages).
    pub path: PathBuf,
    /// The certificates, DER-encoded. Never empty.
    pub certs: Vec<Vec<u8>>,
}

/// Largest CA file read (Mozilla's whole bundle is some 220 KiB).
pub const CA_FILE_MAX: u64 = 1024 * 1024;

impl CaBundle {
    /// Reads every certificate of a PEM file: a regular file of at most
    /// [`CA_FILE_MAX`] bytes.
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let pem = super::read_small_file(&path, CA_FILE_MAX)?;
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => certs.push(c.der().to_vec()),
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        // The verifier needs one trust anchor at least; a certificate webpki
        // cannot take as one may still be the server's own, compared byte
        // for byte, so it is kept.
        let mut roots = rustls::RootCertStore::empty();
        let (usable, _) = roots.add_parsable_certificates(certs.iter().map(|c| c.as_slice().into()));
        if usable == 0 {
            return Err(format!("{}: no certificate in it is usable as a CA", path.display()));
        }
        Ok(CaBundle { path, certs })
    }
}

/// A response header the probe requires (`expect-header=NAME[:RE]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectHeader {
    /// The header's name.
    pub name: HeaderName,
    /// A regular expression one of its values must match; `None`: present
    /// is enough.
    pub value: Option<BodyRegex>,
}

/// A `resolve=HOST:PORT:ADDR` pin: connections to `HOST:PORT` (the URL's
/// or a redirect target's) go to `ADDR`, as with `curl --resolve`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The name, lowercase.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Where to connect instead of looking the name up.
    pub address: IpAddr,
}

impl FromStr for Pin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST:PORT:ADDR (as curl --resolve: www.example.com:443:127.0.0.1)");
        let (host, rest) = s.split_once(':').ok_or_else(bad)?;
        let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
        let host = parse_host(host)?;
        let port = port.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad)?;
        let address = addr.trim_start_matches('[').trim_end_matches(']').parse().map_err(|_| bad())?;
        Ok(Pin { host, port, address })
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.address {
            IpAddr::V4(a) => write!(f, "{}:{}:{a}", self.host, self.port),
            IpAddr::V6(a) => write!(f, "{}:{}:[{a}]", self.host, self.port),
        }
    }
}

/// Largest client certificate or key file read.
pub const CLIENT_FILE_MAX: u64 = 256 * 1024;

/// A client certificate and its key (mTLS), read and matched when the
/// probe is built.
#[derive(Clone)]
pub struct ClientCert {
    /// Where the certificate chain was read from.
    pub cert_path: PathBuf,
    /// Where the key was read from.
    pub key_path: PathBuf,
    /// The chain, DER-encoded, the client's certificate first. Never empty.
    pub chain: Vec<Vec<u8>>,
    /// The chain and the signing key, as rustls sends them.
    pub(crate) key: Arc<rustls::sign::CertifiedKey>,
}

impl fmt::Debug for ClientCert {
    /// The paths only: the key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert").field("cert", &self.cert_path).field("key", &self.key_path).finish()
    }
}

impl PartialEq for ClientCert {
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path && self.key_path == other.key_path && self.chain == other.chain
    }
}

impl Eq for ClientCert {}

impl ClientCert {
    /// Reads a PEM certificate chain and a PEM private key and checks that
    /// they belong together; the error says which file is wrong (`Err((key,
    /// message))`, key being `cert` or `key`).
    pub fn read(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, (&'static str, String)> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (cert_path, key_path) = (cert.into(), key.into());
        let pem = super::read_small_file(&cert_path, CLIENT_FILE_MAX).map_err(|e| ("cert", e))?;
        let mut chain = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => chain.push(c.der().to_vec()),
                Ok(_) => {}
                Err(e) => return Err(("cert", format!("{}: {e}", cert_path.display()))),
            }
        }
        if chain.is_empty() {
            return Err(("cert", format!("{}: no PEM certificate in it", cert_path.display())));
        }
        let pem = super::read_small_file(&key_path, CLIENT_FILE_MAX).map_err(|e| ("key", e))?;
        let der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|e| ("key", format!("{}: no unencrypted PEM private key in it ({e})", key_path.display())))?;
        let provider = rustls::crypto::ring::default_provider();
        let certs: Vec<CertificateDer<'static>> = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
        let key = rustls::sign::CertifiedKey::from_der(certs, der, &provider).map_err(|e| {
            let why = match e {
                rustls::Error::InconsistentKeys(_) => "is not the key of the certificate of cert=".to_string(),
                other => format!("cannot be used ({other})"),
            };
            ("key", format!("{}: {why} {}", key_path.display(), cert_path.display()))
        })?;
        Ok(ClientCert { cert_path, key_path, chain, key: Arc::new(key) })
    }
}

/// How the server's certificate is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Verified, against Mozilla's roots or these CA certificates.
    Verify(Option<CaBundle>),
    /// Not verified at all.
    Insecure,
}

/// One HTTP(S) request, judged on the status and optionally the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// Request method (default GET).
    pub method: Method,
    /// Where to connect and what to ask for.
    pub url: HttpUrl,
    /// The name for the `Host` header, TLS SNI and certificate check, if
    /// not the URL's address.
    pub host: Option<String>,
    /// Status codes that mean healthy.
    pub status: StatusSet,
    /// What the body must contain, if checked. Never with HEAD.
    pub body: Option<BodyMatch>,
    /// Extra request headers (never `Host`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Response headers required.
    pub expect_headers: Vec<ExpectHeader>,
    /// Certificate checking (HTTPS, and the HTTPS targets of redirects).
    pub tls: Tls,
    /// The client certificate to present when a server asks for one (boxed:
    /// rare, and [`super::Check`] holds every probe kind by value).
    pub client_cert: Option<Box<ClientCert>>,
    /// Follow up to 5 redirects instead of judging the 3xx itself.
    pub follow_redirects: bool,
    /// Names pinned to addresses (`resolve=`), for redirect targets.
    pub resolve: Vec<Pin>,
}

/// Raw settings for an [`HttpProbe`], validated by [`HttpBuilder::build`].
#[derive(Clone, Debug, Default)]
pub struct HttpBuilder {
    url: String,
    method: Option<String>,
    host: Option<String>,
    status: Option<String>,
    body: Option<String>,
    body_regex: Option<String>,
    /// Each with the key it was given by (`request-header`, or the old
    /// `header`), for errors.
    headers: Vec<(String, &'static str)>,
    expect_headers: Vec<String>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    insecure: bool,
    follow_redirects: bool,
    resolve: Vec<String>,
}

impl HttpProbe {
    /// Starts a builder for a request to `url`.
    pub fn builder(url: impl Into<String>) -> HttpBuilder {
        HttpBuilder { url: url.into(), ..HttpBuilder::default() }
    }
}

impl HttpBuilder {
    /// The method: GET (default), HEAD, POST, PUT, DELETE, OPTIONS, PATCH.
    pub fn method(mut self, v: impl Into<String>) -> Self {
        self.method = Some(v.into());
        self
    }

    /// The name to present in `Host` and TLS instead of the URL's address.
    pub fn host(mut self, v: impl Into<String>) -> Self {
        self.host = Some(v.into());
        self
    }

    /// Healthy status codes: `200`, `200-299`, `200,204,300-399`.
    pub fn status(mut self, v: impl Into<String>) -> Self {
        self.status = Some(v.into());
        self
    }

    /// Text the body must contain.
    pub fn body_contains(mut self, v: impl Into<String>) -> Self {
        self.body = Some(v.into());
        self
    }

    /// A regular expression the body must match.
    pub fn body_regex(mut self, v: impl Into<String>) -> Self {
        self.body_regex = Some(v.into());
        self
    }

    /// A request header, `Name: value` (the space is optional).
    pub fn header(mut self, v: impl Into<String>) -> Self {
        self.headers.push((v.into(), "request-header"));
        self
    }

    /// A request header given by the deprecated name `header=` (JSON
    /// `headers`): the same as [`HttpBuilder::header`], but its errors name
    /// that key.
    pub fn deprecated_header(mut self, v: impl Into<String>) -> Self {
        self.headers.push((v.into(), "header"));
        self
    }

    /// A response header the server must send: `Name`, or `Name:RE` for one
    /// whose value matches the regular expression `RE`.
    pub fn expect_header(mut self, v: impl Into<String>) -> Self {
        self.expect_headers.push(v.into());
        self
    }

    /// A PEM file with the client certificate (then its intermediates).
    pub fn cert_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.cert_file = Some(v.into());
        self
    }

    /// A PEM file with the client certificate's private key.
    pub fn key_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.key_file = Some(v.into());
        self
    }

    /// Pins `HOST:PORT` to an address: `HOST:PORT:ADDR`, as `curl --resolve`.
    pub fn resolve(mut self, v: impl Into<String>) -> Self {
        self.resolve.push(v.into());
        self
    }

    /// A PEM file of CA certificates to verify the server against.
    pub fn ca_file(mut self, v: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(v.into());
        self
    }

    /// Do not verify the server's certificate.
    pub fn insecure(mut self, v: bool) -> Self {
        self.insecure = v;
        self
    }

    /// Follow redirects.
    pub fn follow_redirects(mut self, v: bool) -> Self {
        self.follow_redirects = v;
        self
    }

    /// Sets one setting by its flag-form key.
    fn set(self, key: &str, value: &str) -> Result<Self, SpecError> {
        let unescaped = |what: &'static str| -> Result<String, SpecError> {
            let bytes = unescape(value).map_err(|e| SpecError::at(what, e))?;
            String::from_utf8(bytes).map_err(|_| SpecError::at(what, "not UTF-8 once unescaped"))
        };
        Ok(match key {
            "method" => self.method(value),
            "host" => self.host(value),
            "status" => self.status(value),
            "body" => self.body_contains(unescaped("body")?),
            // Not unescaped: backslashes belong to the regex syntax, which
            // has its own \x20.
            "body-regex" => self.body_regex(value),
            // `header=` is the old name of `request-header=` (see
            // `deprecated_words`).
            "header" => self.deprecated_header(unescaped("header")?),
            "request-header" => self.header(unescaped("request-header")?),
            // Not unescaped: the value is a regex.
            "expect-header" => self.expect_header(value),
            "ca" => self.ca_file(value),
            "cert" => self.cert_file(value),
            "key" => self.key_file(value),
            "resolve" => self.resolve(value),
            _ => {
                return Err(SpecError::general(format!(
                    "{key}: unknown HTTP setting (known: method, host, status, body, body-regex, \
                     request-header, expect-header, ca, cert, key, resolve, and the words insecure, \
                     follow-redirects)"
                )));
            }
        })
    }

    /// Validates the settings (and reads the CA file); the error names the
    /// offending one.
    pub fn build(self) -> Result<HttpProbe, SpecError> {
        let mut resolve = Vec::new();
        for r in &self.resolve {
            resolve.push(r.parse::<Pin>().map_err(|e| SpecError::at("resolve", e))?);
        }
        // A URL with a name needs a pin for it (as curl --resolve); the name
        // is then presented as host= would.
        let (url, url_name) = match self.url.parse::<HttpUrl>() {
            Ok(u) => (u, None),
            Err(e) => match url_by_pin(&self.url, &resolve) {
                Some((u, name)) => (u, Some(name)),
                None => return Err(SpecError::at("url", e)),
            },
        };
        let method = match &self.method {
            None => Method::GET,
            Some(m) => {
                let upper = m.to_ascii_uppercase();
                match upper.as_str() {
                    "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" => {
                        Method::from_bytes(upper.as_bytes()).map_err(|e| SpecError::at("method", e.to_string()))?
                    }
                    _ => {
                        return Err(SpecError::at(
                            "method",
                            format!("{m:?} is not GET, HEAD, POST, PUT, DELETE, OPTIONS or PATCH"),
                        ));
                    }
                }
            }
        };
        let host = match (&self.host, url_name) {
            (None, name) => name,
            (Some(h), None) => Some(parse_host(h).map_err(|e| SpecError::at("host", e))?),
            (Some(h), Some(name)) => {
                let h = parse_host(h).map_err(|e| SpecError::at("host", e))?;
                if h != name {
                    return Err(SpecError::at("host", format!("{h} is not the URL's name {name}")));
                }
                Some(h)
            }
        };
        let status = match &self.status {
            None => StatusSet::default(),
            Some(s) => s.parse().map_err(|e| SpecError::at("status", e))?,
        };
        let body = match (&self.body, &self.body_regex) {
            (Some(_), Some(_)) => return Err(SpecError::at("body-regex", "give either body or body-regex, not both")),
            (Some(b), None) if b.is_empty() => return Err(SpecError::at("body", "must not be empty")),
            (Some(b), None) => Some(BodyMatch::Contains(b.clone())),
            (None, Some(r)) => Some(BodyMatch::Regex(BodyRegex(
                body_regex(r).map_err(|e| SpecError::at("body-regex", e.to_string()))?,
            ))),
            (None, None) => None,
        };
        if body.is_some() && method == Method::HEAD {
            return Err(SpecError::at("body", "a reply to HEAD has no body to check"));
        }
        let mut headers = Vec::new();
        for (h, key) in &self.headers {
            headers.push(parse_header(h).map_err(|e| SpecError::at(key, e))?);
        }
        let mut expect_headers = Vec::new();
        for h in &self.expect_headers {
            expect_headers.push(parse_expect_header(h).map_err(|e| SpecError::at("expect-header", e))?);
        }
        let tls = match (&self.ca_file, self.insecure) {
            (Some(_), true) => return Err(SpecError::at("ca", "makes no sense with insecure")),
            (Some(path), false) => Tls::Verify(Some(CaBundle::read(path).map_err(|e| SpecError::at("ca", e))?)),
            (None, true) => Tls::Insecure,
            (None, false) => Tls::Verify(None),
        };
        let client_cert = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => return Err(SpecError::at("key", "cert= needs key= (the certificate's private key)")),
            (None, Some(_)) => return Err(SpecError::at("cert", "key= needs cert= (the client certificate)")),
            (Some(c), Some(k)) => Some(Box::new(ClientCert::read(c, k).map_err(|(key, e)| SpecError::at(key, e))?)),
        };
        let tls_given = self.ca_file.is_some() || self.insecure || client_cert.is_some();
        if url.scheme == Scheme::Http && tls_given && !self.follow_redirects {
            return Err(SpecError::at(
                "url",
                "ca, cert, key and insecure on an http:// URL apply to the https:// site it redirects to: give \
                 follow-redirects too, or use an https:// URL",
            ));
        }
        // The pin of the URL's own name and address, which needs no redirect.
        let own = |p: &Pin| {
            host.as_deref() == Some(p.host.as_str()) && p.port == url.address.port() && p.address == url.address.ip()
        };
        if let Some(pin) = resolve.iter().find(|p| !own(p))
            && !self.follow_redirects
        {
            return Err(SpecError::at(
                "resolve",
                format!("{pin} pins a name other than the URL's: one a redirect goes to, so give follow-redirects too"),
            ));
        }
        Ok(HttpProbe {
            method,
            url,
            host,
            status,
            body,
            headers,
            expect_headers,
            tls,
            client_cert,
            follow_redirects: self.follow_redirects,
            resolve,
        })
    }
}

/// A DNS name for `Host` and SNI: letters, digits, `-`, `_` and dots.
fn parse_host(s: &str) -> Result<String, String> {
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("{s:?} is not a DNS name"));
    }
    if name.parse::<IpAddr>().is_ok() || name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("{s:?} is an address; put addresses in the URL"));
    }
    Ok(name)
}

/// A URL whose host is a name, connected to the address a `resolve=` pin
/// gives that name and port: the URL with the address, and the name.
fn url_by_pin(s: &str, pins: &[Pin]) -> Option<(HttpUrl, String)> {
    let uri: Uri = s.parse().ok()?;
    let scheme = match uri.scheme_str()? {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let name = parse_host(authority.host()).ok()?;
    let port = authority.port_u16().unwrap_or(scheme.default_port());
    let pin = pins.iter().find(|p| p.host == name && p.port == port)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/".to_string() } else { path.to_string() };
    Some((HttpUrl { scheme, address: SocketAddr::new(pin.address, port), path }, name))
}

/// A body regex: multi-line (`^`, `$` at line ends, as grep and
/// `check_http -r`), with `\r\n` line ends understood too.
fn body_regex(re: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
    regex_lite::RegexBuilder::new(re).multi_line(true).crlf(true).build()
}

/// `Name` or `Name:RE` into a required response header.
fn parse_expect_header(s: &str) -> Result<ExpectHeader, String> {
    let (name, value) = match s.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
    let value = match value {
        None => None,
        Some("") => return Err(format!("{s:?}: give NAME alone to require the header, or NAME:RE")),
        Some(v) => Some(BodyRegex(regex_lite::Regex::new(v).map_err(|e| format!("{v:?}: {e}"))?)),
    };
    Ok(ExpectHeader { name, value })
}

/// The deprecated words of a flag form, as warnings naming their key:
/// `header=` (now `request-header=`, since `header` alone reads as a match
/// on the response).
pub fn deprecated_words(spec: &str) -> Vec<SpecError> {
    spec.split_whitespace()
        .filter(|w| w.starts_with("header="))
        .map(|_| {
            SpecError::at(
                "header",
                "header= is deprecated: it sets a request header; write request-header=NAME:VALUE (and \
                 expect-header=NAME[:RE] to require one on the response)",
            )
        })
        .collect()
}

/// `Name: value` into a validated header pair.
fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("{s:?} is not NAME:VALUE"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| format!("{name:?} is not a header name"))?;
    if name == ureq::http::header::HOST {
        return Err("set the Host header with host=NAME".into());
    }
    let value = HeaderValue::from_str(value.trim()).map_err(|_| format!("{value:?} is not a header value"))?;
    Ok((name, value))
}

impl FromStr for HttpProbe {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let mut words = s.split_whitespace();
        let mut builder = HttpProbe::builder(words.next().unwrap_or(""));
        for word in words {
            builder = match word.split_once('=') {
                Some((key, value)) => builder.set(key, value)?,
                None if word == "insecure" => builder.insecure(true),
                None if word == "follow-redirects" => builder.follow_redirects(true),
                None => {
                    return Err(SpecError::general(format!(
                        "{word:?}: expected insecure, follow-redirects or KEY=VALUE"
                    )));
                }
            };
        }
        builder.build()
    }
}

impl fmt::Display for HttpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)?;
        if self.method != Method::GET {
            write!(f, " method={}", self.method)?;
        }
        if let Some(h) = &self.host {
            write!(f, " host={h}")?;
        }
        if self.status != StatusSet::default() {
            write!(f, " status={}", self.status)?;
        }
        match &self.body {
            None => {}
            Some(BodyMatch::Contains(t)) => write!(f, " body={}", escape(t.as_bytes()))?,
            Some(BodyMatch::Regex(r)) => write!(f, " body-regex={}", r.0.as_str())?,
        }
        for (name, value) in &self.headers {
            write!(f, " request-header={name}:{}", escape(value.as_bytes()))?;
        }
        for h in &self.expect_headers {
            match &h.value {
                None => write!(f, " expect-header={}", h.name)?,
                Some(re) => write!(f, " expect-header={}:{}", h.name, re.0.as_str())?,
            }
        }
        match &self.tls {
            Tls::Verify(None) => {}
            Tls::Verify(Some(ca)) => write!(f, " ca={}", ca.path.display())?,
            Tls::Insecure => f.write_str(" insecure")?,
        }
        if let Some(c) = &self.client_cert {
            write!(f, " cert={} key={}", c.cert_path.display(), c.key_path.display())?;
        }
        if self.follow_redirects {
            f.write_str(" follow-redirects")?;
        }
        for pin in &self.resolve {
            write!(f, " resolve={pin}")?;
        }
        Ok(())
    }
}

/// Resolves the probe's own host (name or address) to the URL's address,
/// without any lookup; the `resolve=` pins next; other hosts (reached
/// through redirects) go to the system resolver, and a name it cannot
/// resolve is remembered, for the outcome's detail.
#[derive(Debug)]
struct PinnedResolver {
    host: String,
    port: u16,
    address: SocketAddr,
    pins: Vec<Pin>,
    /// `HOST:PORT` that did not resolve.
    failed: Arc<Mutex<Option<String>>>,
}

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(authority) = uri.authority() else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let host = authority.host();
        let address = if host.eq_ignore_ascii_case(&self.host) && port == self.port {
            Some(self.address)
        } else {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            self.pins
                .iter()
                .find(|p| p.port == port && p.host.eq_ignore_ascii_case(name.trim_end_matches('.')))
                .map(|p| SocketAddr::new(p.address, port))
        };
        if let Some(address) = address {
            let mut addrs = self.empty();
            addrs.push(address);
            return Ok(addrs);
        }
        match DefaultResolver::default().resolve(uri, config, timeout) {
            // getaddrinfo's failures come as uncategorised I/O errors.
            Err(ureq::Error::Io(_) | ureq::Error::HostNotFound) => {
                *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{host}:{port}"));
                Err(ureq::Error::HostNotFound)
            }
            other => other,
        }
    }
}

/// What one run saw besides the response, for wording its failures.
struct RunState {
    /// The name that did not resolve, if one did not.
    failed_name: Arc<Mutex<Option<String>>>,
    /// Whether a server asked for a client certificate.
    cert_requested: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the probe has one to give.
    cert_given: bool,
}

impl HttpProbe {
    /// The host as written in the request URI: the name, or the address
    /// (IPv6 in brackets).
    fn uri_host(&self) -> String {
        match (&self.host, self.url.address.ip()) {
            (Some(name), _) => name.clone(),
            (None, IpAddr::V4(ip)) => ip.to_string(),
            (None, IpAddr::V6(ip)) => format!("[{ip}]"),
        }
    }

    fn agent(&self, timeout: Duration) -> Result<(ureq::Agent, RunState), String> {
        // TLS through the probe's own connector (see `super::tls`), not
        // ureq's, whose verifier cannot trust a self-signed CA certificate
        // given as ca=.
        let tls = match &self.client_cert {
            None => TlsConnector::new(&self.tls)?,
            Some(c) => TlsConnector::for_probe(&self.tls, Some(c))?,
        };
        let cert_requested = tls.cert_requested();
        let connector = ().chain(TcpConnector::default()).chain(tls);
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(if self.follow_redirects { 5 } else { 0 })
            .proxy(None)
            .max_idle_connections(0)
            .user_agent(concat!("exaprobe/", env!("CARGO_PKG_VERSION")))
            .build();
        let failed_name = Arc::new(Mutex::new(None));
        let resolver = PinnedResolver {
            host: self.uri_host(),
            port: self.url.address.port(),
            address: self.url.address,
            pins: self.resolve.clone(),
            failed: Arc::clone(&failed_name),
        };
        let state = RunState { failed_name, cert_requested, cert_given: self.client_cert.is_some() };
        Ok((ureq::Agent::with_parts(config, connector, resolver), state))
    }

    /// Sends the request once and judges the response, all within
    /// `timeout` (the body included).
    pub fn run(&self, timeout: Duration) -> Outcome {
        // The port only when not the scheme's default, so that `Host` reads
        // `www.example.com`, not `www.example.com:443`.
        let port = self.url.address.port();
        let port = if port == self.url.scheme.default_port() { String::new() } else { format!(":{port}") };
        let uri = format!("{}://{}{port}{}", self.url.scheme.as_str(), self.uri_host(), self.url.path);
        let mut request = ureq::http::Request::builder().method(self.method.clone()).uri(uri);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = match request.body(()) {
            Ok(r) => r,
            Err(e) => return Outcome::down("http-error").with_detail(e.to_string()),
        };
        let (agent, state) = match self.agent(timeout) {
            Ok(a) => a,
            Err(e) => return Outcome::down("tls-error").with_detail(e),
        };
        let mut response = match agent.run(request) {
            Ok(r) => r,
            Err(e) => return state.error_outcome(e),
        };
        let code = response.status().as_u16();
        let status_line = format!("{} {}", code, response.status().canonical_reason().unwrap_or(""));
        if !self.status.contains(code) {
            // A snippet of the body often says why (a 503 page, say).
            let mut head = Vec::new();
            let _ = response.body_mut().as_reader().take(512).read_to_end(&mut head);
            if let Some(outcome) = state.client_cert_refusal(code, &head) {
                return outcome;
            }
            let snippet = first_line(&head);
            let detail = if snippet.is_empty() { status_line } else { format!("{status_line}: {snippet}") };
            return Outcome::down(format!("http-status {code}")).with_detail(detail);
        }
        if let Some(outcome) = self.judge_headers(response.headers()) {
            return outcome;
        }
        let mut body = Vec::new();
        if self.method != Method::HEAD
            && let Err(e) = response.body_mut().as_reader().take(BODY_LIMIT).read_to_end(&mut body)
        {
            let outcome = state.error_outcome(ureq::Error::from(e));
            let detail = format!("{status_line}, then the body: {}", outcome.detail);
            return outcome.with_detail(detail);
        }
        let healthy = Outcome::healthy(format!("http-status {code}")).with_detail(status_line.trim_end());
        let Some(want) = &self.body else { return healthy };
        let text = String::from_utf8_lossy(&body);
        let matched = match want {
            BodyMatch::Contains(t) => text.contains(t.as_str()),
            BodyMatch::Regex(r) => r.0.is_match(&text),
        };
        if matched { healthy } else { Outcome::down("body-mismatch").with_detail(first_line(&body)) }
    }

    /// `header-missing` or `header-mismatch` for the first `expect-header=`
    /// the response does not satisfy.
    fn judge_headers(&self, headers: &ureq::http::HeaderMap) -> Option<Outcome> {
        for want in &self.expect_headers {
            let mut values = headers.get_all(&want.name).iter().peekable();
            if values.peek().is_none() {
                return Some(Outcome::down("header-missing").with_detail(format!("no {} header", want.name)));
            }
            let Some(re) = &want.value else { continue };
            let seen: Vec<String> = values.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
            if !seen.iter().any(|v| re.0.is_match(v)) {
                let shown = seen.join(", ");
                let shown: String = shown.chars().take(200).collect();
                return Some(Outcome::down("header-mismatch").with_detail(format!(
                    "{}: {shown:?} does not match {}",
                    want.name,
                    re.0.as_str()
                )));
            }
        }
        None
    }
}

impl RunState {
    /// A 400 from a server that asked for a client certificate (nginx's
    /// `ssl_verify_client on` answers so, with "No required SSL
    /// certificate was sent" or "The SSL certificate error").
    fn client_cert_refusal(&self, code: u16, head: &[u8]) -> Option<Outcome> {
        if code != 400 || !self.cert_requested.load(Ordering::Relaxed) {
            return None;
        }
        let page = first_words(head);
        Some(tls::client_cert_outcome(self.cert_given, &format!("HTTP answer {page:?}")))
    }

    /// A short reason for a failed request.
    fn error_outcome(&self, err: ureq::Error) -> Outcome {
        use ureq::Error as E;
        match &err {
            E::Io(io) => {
                // rustls reports handshake failures (unknown issuer, wrong
                // name, a plain-HTTP peer) as I/O errors wrapping its own
                // error.
                if let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                    return self.tls_outcome(tls);
                }
            }
            E::Rustls(tls) => return self.tls_outcome(tls),
            E::HostNotFound => {
                let name = self.failed_name.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let name = name.unwrap_or_else(|| "a redirect target".into());
                return Outcome::down("host-not-found").with_detail(format!(
                    "{name} does not resolve (a redirect target? pin it with resolve=HOST:PORT:ADDR)"
                ));
            }
            _ => {}
        }
        error_outcome(err)
    }

    /// A TLS failure: a short stable reason and an operator's wording (see
    /// `src/probe/tls.rs` for the table).
    fn tls_outcome(&self, err: &rustls::Error) -> Outcome {
        let (reason, detail) =
            tls::describe_for_client(err, self.cert_requested.load(Ordering::Relaxed), self.cert_given);
        Outcome::down(reason).with_detail(detail)
    }
}

/// A short reason for a failed request without a probe's client state (the
/// DoH probe's; an HTTP probe's own adds the client-certificate wording and
/// the unresolved name).
pub(crate) fn error_outcome(err: ureq::Error) -> Outcome {
    use ureq::Error as E;
    let detail = err.to_string();
    let reason = match &err {
        E::Timeout(_) => "timeout".to_string(),
        E::Io(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => {
                let (reason, detail) = tls::describe(tls);
                return Outcome::down(reason).with_detail(detail);
            }
            None => io_reason(io),
        },
        E::Rustls(tls) => {
            let (reason, detail) = tls::describe(tls);
            return Outcome::down(reason).with_detail(detail);
        }
        E::Tls(_) | E::Pem(_) | E::TlsRequired => "tls-error".to_string(),
        E::ConnectionFailed => "connection-failed".to_string(),
        E::HostNotFound => "host-not-found".to_string(),
        E::TooManyRedirects | E::RedirectFailed => "too-many-redirects".to_string(),
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => "http-protocol-error".to_string(),
        _ => "http-error".to_string(),
    };
    Outcome::down(reason).with_detail(detail)
}

/// What an error page says: its HTML `<title>` (nginx's 400 page has "400
/// No required SSL certificate was sent"), else its first line; at most
/// 200 characters.
fn first_words(page: &[u8]) -> String {
    let text = String::from_utf8_lossy(page);
    let title = text
        .find("<title>")
        .and_then(|i| text[i + 7..].split_once("</title>").map(|(t, _)| t.split_whitespace().collect::<Vec<_>>()));
    match title {
        Some(words) if !words.is_empty() => words.join(" ").chars().take(200).collect(),
        _ => first_line(page),
    }
}

#[cfg(test)]
mod tests {
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
            e("https://www.example.com/ resolve=www.example.com:443:127.0.0.1 host=other.example.com")
                .starts_with("host:")
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
}
