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
//! handshake signature is still verified). Redirects are not followed unless
//! `follow-redirects` is given, so by default a 3xx is judged as it is
//! (healthy under the default status set 200–399).
//!
//! Reasons: `http-status 200` (healthy) or `http-status 503` (unexpected
//! status); `body-mismatch`; `timeout`; `refused`; the TLS reasons of
//! `src/probe/tls.rs` (`tls-expired`, `tls-not-yet-valid`, `tls-wrong-name`,
//! `tls-self-signed`, `tls-unknown-ca`, `tls-bad-signature`,
//! `tls-bad-certificate`, `tls-handshake`, `tls-protocol`, `tls-error`),
//! each with a detail for an operator; `too-many-redirects`;
//! `http-protocol-error`; `http-error` (other).
//!
//! Flag form (`--http`), words separated by spaces:
//!
//! ```text
//! URL [method=METHOD] [host=NAME] [status=LIST] [body=TEXT] [body-regex=RE]
//!     [header=NAME:VALUE]... [ca=PEM-FILE] [insecure] [follow-redirects]
//! http://127.0.0.1:8080/health
//! https://127.0.0.1/health host=www.example.com status=200,204 body=OK
//! https://[::1]:8443/ host=www.example.com ca=/etc/ssl/private-ca.pem
//! http://127.0.0.1/ready header=X-Probe:exaprobe body-regex=^ready$
//! ```
//!
//! `LIST` is comma-separated codes and ranges (`200-299,301`). `TEXT` and
//! header values take the escapes of [`super::tcp::unescape`] (`\x20` for a
//! space); `RE` is a regular expression (regex-lite syntax) matched against
//! the body decoded as UTF-8, lossily. At most [`BODY_LIMIT`] bytes of body
//! are read.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue, Method, Uri};
use ureq::tls::PemItem;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};

use super::tcp::{escape, first_line, unescape};
use super::tls::{self, TlsConnector};
use super::{Outcome, SpecError, io_reason};

/// How much of a body is read for the body check.
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
                    "{s:?}: the host must be an IP address (host names are not resolved; set host=NAME to send one)"
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
    /// Certificate checking (HTTPS only).
    pub tls: Tls,
    /// Follow up to 5 redirects instead of judging the 3xx itself.
    pub follow_redirects: bool,
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
    headers: Vec<String>,
    ca_file: Option<PathBuf>,
    insecure: bool,
    follow_redirects: bool,
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
        self.headers.push(v.into());
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
            "header" => self.header(unescaped("header")?),
            "ca" => self.ca_file(value),
            _ => {
                return Err(SpecError::general(format!(
                    "{key}: unknown HTTP setting (known: method, host, status, body, \
                     body-regex, header, ca, and the words insecure, follow-redirects)"
                )));
            }
        })
    }

    /// Validates the settings (and reads the CA file); the error names the
    /// offending one.
    pub fn build(self) -> Result<HttpProbe, SpecError> {
        let url: HttpUrl = self.url.parse().map_err(|e| SpecError::at("url", e))?;
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
        let host = match &self.host {
            None => None,
            Some(h) => Some(parse_host(h).map_err(|e| SpecError::at("host", e))?),
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
                regex_lite::Regex::new(r).map_err(|e| SpecError::at("body-regex", e.to_string()))?,
            ))),
            (None, None) => None,
        };
        if body.is_some() && method == Method::HEAD {
            return Err(SpecError::at("body", "a reply to HEAD has no body to check"));
        }
        let mut headers = Vec::new();
        for h in &self.headers {
            headers.push(parse_header(h).map_err(|e| SpecError::at("header", e))?);
        }
        let tls = match (&self.ca_file, self.insecure) {
            (Some(_), true) => return Err(SpecError::at("ca", "makes no sense with insecure")),
            (Some(path), false) => Tls::Verify(Some(CaBundle::read(path).map_err(|e| SpecError::at("ca", e))?)),
            (None, true) => Tls::Insecure,
            (None, false) => Tls::Verify(None),
        };
        if url.scheme == Scheme::Http && (self.ca_file.is_some() || self.insecure) {
            return Err(SpecError::at("url", "ca and insecure need an https:// URL"));
        }
        Ok(HttpProbe { method, url, host, status, body, headers, tls, follow_redirects: self.follow_redirects })
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
            write!(f, " header={name}:{}", escape(value.as_bytes()))?;
        }
        match &self.tls {
            Tls::Verify(None) => {}
            Tls::Verify(Some(ca)) => write!(f, " ca={}", ca.path.display())?,
            Tls::Insecure => f.write_str(" insecure")?,
        }
        if self.follow_redirects {
            f.write_str(" follow-redirects")?;
        }
        Ok(())
    }
}

/// Resolves the probe's own host (name or address) to the URL's address,
/// without any lookup; other hosts (reached through redirects) go to the
/// system resolver.
#[derive(Debug)]
struct PinnedResolver {
    host: String,
    port: u16,
    address: SocketAddr,
}

impl Resolver for PinnedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let ours = uri.authority().is_some_and(|a| {
            let default_port = if uri.scheme_str() == Some("https") { 443 } else { 80 };
            a.host().eq_ignore_ascii_case(&self.host) && a.port_u16().unwrap_or(default_port) == self.port
        });
        if !ours {
            return DefaultResolver::default().resolve(uri, config, timeout);
        }
        let mut addrs = self.empty();
        addrs.push(self.address);
        Ok(addrs)
    }
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

    fn agent(&self, timeout: Duration) -> Result<ureq::Agent, String> {
        // TLS through the probe's own connector (see `super::tls`), not
        // ureq's, whose verifier cannot trust a self-signed CA certificate
        // given as ca=.
        let connector = ().chain(TcpConnector::default()).chain(TlsConnector::new(&self.tls)?);
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(if self.follow_redirects { 5 } else { 0 })
            .proxy(None)
            .max_idle_connections(0)
            .user_agent(concat!("exaprobe/", env!("CARGO_PKG_VERSION")))
            .build();
        let resolver =
            PinnedResolver { host: self.uri_host(), port: self.url.address.port(), address: self.url.address };
        Ok(ureq::Agent::with_parts(config, connector, resolver))
    }

    /// Sends the request once and judges the response, all within
    /// `timeout`.
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
        let agent = match self.agent(timeout) {
            Ok(a) => a,
            Err(e) => return Outcome::down("tls-error").with_detail(e),
        };
        let mut response = match agent.run(request) {
            Ok(r) => r,
            Err(e) => return error_outcome(e),
        };
        let code = response.status().as_u16();
        let status_line = format!("{} {}", code, response.status().canonical_reason().unwrap_or(""));
        if !self.status.contains(code) {
            // A snippet of the body often says why (a 503 page, say).
            let mut head = Vec::new();
            let _ = response.body_mut().as_reader().take(512).read_to_end(&mut head);
            let snippet = first_line(&head);
            let detail = if snippet.is_empty() { status_line } else { format!("{status_line}: {snippet}") };
            return Outcome::down(format!("http-status {code}")).with_detail(detail);
        }
        let healthy = Outcome::healthy(format!("http-status {code}")).with_detail(status_line.trim_end());
        let Some(want) = &self.body else { return healthy };
        let mut body = Vec::new();
        if let Err(e) = response.body_mut().as_reader().take(BODY_LIMIT).read_to_end(&mut body) {
            return error_outcome(ureq::Error::from(e));
        }
        let text = String::from_utf8_lossy(&body);
        let matched = match want {
            BodyMatch::Contains(t) => text.contains(t.as_str()),
            BodyMatch::Regex(r) => r.0.is_match(&text),
        };
        if matched { healthy } else { Outcome::down("body-mismatch").with_detail(first_line(&body)) }
    }
}

/// A short reason for a failed request.
pub(crate) fn error_outcome(err: ureq::Error) -> Outcome {
    use ureq::Error as E;
    let detail = err.to_string();
    let reason = match &err {
        E::Timeout(_) => "timeout".to_string(),
        E::Io(io) => {
            // rustls reports handshake failures (unknown issuer, wrong name,
            // a plain-HTTP peer) as I/O errors wrapping its own error.
            match io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(tls) => return tls_outcome(tls),
                None => io_reason(io),
            }
        }
        E::Rustls(tls) => return tls_outcome(tls),
        E::Tls(_) | E::Pem(_) | E::TlsRequired => "tls-error".to_string(),
        E::ConnectionFailed => "connection-failed".to_string(),
        E::HostNotFound => "host-not-found".to_string(),
        E::TooManyRedirects | E::RedirectFailed => "too-many-redirects".to_string(),
        E::Protocol(_) | E::LargeResponseHeader(..) | E::BodyStalled => "http-protocol-error".to_string(),
        _ => "http-error".to_string(),
    };
    Outcome::down(reason).with_detail(detail)
}

/// A TLS failure: a short stable reason and an operator's wording (see
/// `src/probe/tls.rs` for the table).
fn tls_outcome(err: &rustls::Error) -> Outcome {
    let (reason, detail) = tls::describe(err);
    Outcome::down(reason).with_detail(detail)
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
