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
//! (see `src/probe/tls/`); `insecure` turns the certificate check off (the
//! handshake signature is still verified).
//!
//! Redirects are not followed unless `follow-redirects` is given, so by
//! default a 3xx is judged as it is (healthy under the default status set
//! 200–399). A redirect target's name is looked up in `resolve=` first
//! (`HOST:PORT:ADDR`, as `curl --resolve`, repeatable), then, if it is the
//! probe's own host (`host=` or the URL's) on another port, it is the URL's
//! address with that port (never a public site's: the probe tests this node
//! and offers it its client certificate), else it goes to the system
//! resolver; a name that resolves nowhere is `host-not-found`. A
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
//! target that does not resolve); the TLS reasons of `src/probe/tls/`
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
//!
//! This module holds the probe's type, its builder, the flag form and its
//! `Display`; `values.rs` the flag words' value types, `run.rs` the request
//! run, `judge.rs` the header checks and the wording of failed requests.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ureq::http::{HeaderName, HeaderValue, Method, Uri};

use super::SpecError;
use super::tcp::{escape, unescape};

mod judge;
mod run;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use judge::error_outcome;
pub use values::{
    BodyMatch, BodyRegex, CA_FILE_MAX, CLIENT_FILE_MAX, CaBundle, ClientCert, ExpectHeader, Pin, StatusSet,
};

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
