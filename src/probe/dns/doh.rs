//! DNS over HTTPS (RFC 8484): the query as `application/dns-message`, by
//! GET (`?dns=` in base64url, no padding) or POST (the body), over the HTTP
//! stack the HTTP probe uses (ureq, with the TLS connector and verifier of
//! `src/probe/tls/`: `ca=`, `insecure`, the wording of failures). ureq
//! speaks HTTP/1.1, which RFC 8484 allows ("HTTP/2 is the minimum
//! RECOMMENDED version"); a server that speaks only HTTP/2 (Unbound's own
//! `https-port`) needs a front end that takes HTTP/1.1, as most DoH
//! deployments have (nginx, dnsdist).
//!
//! The connection goes to the URL's address, whatever the name: with
//! `tls-name=`, the name is the `Host`, the SNI and the name checked in the
//! certificate. Redirects are not followed. The reply must be status 200
//! with the DNS media type, at most 65535 bytes.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use domain::base::Message;
use ureq::http::{Method, Uri};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, NextTimeout, TcpConnector};

use super::wire::matching_reply;
use super::{DohTarget, Exchange, MAX_MESSAGE};
use crate::probe::http::{Scheme, error_outcome};
use crate::probe::tcp::remaining;
use crate::probe::tls::TlsConnector;
use crate::probe::{Outcome, tcp::first_line};

/// The DNS message media type (RFC 8484 §6).
const DNS_MESSAGE: &str = "application/dns-message";

/// One query to the DoH endpoint.
pub(super) fn exchange(target: &DohTarget, query: &Message<Vec<u8>>, deadline: Instant) -> Exchange {
    let left = remaining(deadline).ok_or_else(|| Outcome::down("timeout"))?;
    let url = &target.url;
    let (scheme, default_port) = match url.scheme {
        Scheme::Http => ("http", 80),
        Scheme::Https => ("https", 443),
    };
    let host = match (&target.tls.name, url.address.ip()) {
        (Some(name), _) => name.clone(),
        (None, IpAddr::V4(ip)) => ip.to_string(),
        (None, IpAddr::V6(ip)) => format!("[{ip}]"),
    };
    let port = url.address.port();
    let port = if port == default_port { String::new() } else { format!(":{port}") };
    let base = format!("{scheme}://{host}{port}{}", url.path);
    let request = ureq::http::Request::builder().header("accept", DNS_MESSAGE);
    let request = if target.post {
        request.method(Method::POST).uri(base).header("content-type", DNS_MESSAGE).body(query.as_slice().to_vec())
    } else {
        let sep = if url.path.contains('?') { '&' } else { '?' };
        request.method(Method::GET).uri(format!("{base}{sep}dns={}", base64url(query.as_slice()))).body(Vec::new())
    };
    let request = request.map_err(|e| Outcome::down("http-error").with_detail(e.to_string()))?;
    let connector = ()
        .chain(TcpConnector::default())
        .chain(TlsConnector::new(&target.tls.tls).map_err(|e| Outcome::down("tls-error").with_detail(e))?);
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(left))
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .max_idle_connections(0)
        .user_agent(concat!("exaprobe/", env!("CARGO_PKG_VERSION")))
        .build();
    let agent = ureq::Agent::with_parts(config, connector, Pinned(url.address));
    let mut response = agent.run(request).map_err(error_outcome)?;
    let code = response.status().as_u16();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| error_outcome(ureq::Error::from(e)))?;
    if code != 200 {
        let status = format!("{code} {}", response.status().canonical_reason().unwrap_or(""));
        let snippet = first_line(&body);
        let detail = if snippet.is_empty() { status } else { format!("{status}: {snippet}") };
        return Err(Outcome::down(format!("http-status {code}")).with_detail(detail));
    }
    let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !kind.trim().to_ascii_lowercase().starts_with(DNS_MESSAGE) {
        let shown: String = kind.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(80).collect();
        return Err(
            Outcome::down("doh-bad-content-type").with_detail(format!("Content-Type {shown:?}, not {DNS_MESSAGE}"))
        );
    }
    if body.len() > MAX_MESSAGE {
        return Err(Outcome::down("dns-bad-reply").with_detail("DoH body longer than a DNS message"));
    }
    matching_reply(body, query)
}

/// Every name resolves to the URL's address: the probe tests this node.
#[derive(Debug)]
struct Pinned(SocketAddr);

impl Resolver for Pinned {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(self.0);
        Ok(addrs)
    }
}

/// base64url without padding (RFC 4648 §5), as RFC 8484 §4.1 asks.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_as_rfc_4648() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        // RFC 8484 §4.1.1's example query.
        let q = [
            0u8, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3,
            b'c', b'o', b'm', 0, 0, 1, 0, 1,
        ];
        assert_eq!(base64url(&q), "AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB");
    }
}
