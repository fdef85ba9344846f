//! One run of the HTTP probe: the agent (timeout, TLS connector, redirects),
//! the resolver that pins the probe's host and the `resolve=` names, the
//! request, the status and body checks, and the reading of the body, bounded
//! by [`super::BODY_LIMIT`].

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ureq::http::{Method, Uri};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};

use super::judge::RunState;
use super::{BODY_LIMIT, BodyMatch, HttpProbe, Pin};
use crate::probe::Outcome;
use crate::probe::tcp::first_line;
use crate::probe::tls::TlsConnector;

/// Resolves the probe's own host (name or address) to the URL's address,
/// without any lookup; the `resolve=` pins next; the own host on another
/// port to the URL's address with that port; other hosts (reached through
/// redirects) go to the system resolver, and a name it cannot resolve is
/// remembered, for the outcome's detail.
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
        let own = host.trim_end_matches('.').eq_ignore_ascii_case(self.host.trim_end_matches('.'));
        let address = if own && port == self.port {
            Some(self.address)
        } else {
            let name = host.trim_start_matches('[').trim_end_matches(']');
            self.pins
                .iter()
                .find(|p| p.port == port && p.host.eq_ignore_ascii_case(name.trim_end_matches('.')))
                .map(|p| SocketAddr::new(p.address, port))
                // The own name on another port is still this node: never
                // the system resolver's (a public site's) address, which
                // would be probed, and offered the client certificate.
                .or_else(|| own.then(|| SocketAddr::new(self.address.ip(), port)))
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
}
