//! TLS for the HTTPS probe: the certificate verifier and the ureq connector
//! that uses it; the wording of TLS failures is in `describe.rs`.
//!
//! The aim is to accept what `curl --cacert` (OpenSSL) accepts. ureq's own
//! rustls connector takes only a root store, and webpki refuses a
//! certificate that is a CA as the server's own (`CaUsedAsEndEntity`),
//! while the usual self-signed certificate (`openssl req -x509`, CA:TRUE)
//! is both. So the probe brings its own connector (ureq's `unversioned`
//! transport API, outside ureq's semver promise: a ureq upgrade must be
//! checked against the tests) and verifier:
//!
//! - webpki first, with the `ca=` certificates (or Mozilla's roots) as
//!   trust anchors, then the name, in the order of rustls's own verifier;
//! - when webpki finds no issuer, or refuses a CA as the end entity, and
//!   the server's certificate is byte for byte one of `ca=`, it is trusted
//!   as it is (OpenSSL trusts a certificate of the CA file, and curl asks
//!   for partial chains), once its name matches. Its validity period has
//!   been checked by then: webpki checks it before the basic constraints
//!   and before looking for an issuer (the tests hold an expired
//!   self-signed CA certificate given as `ca=` to that);
//! - a certificate with no subjectAltName at all is matched on its
//!   subject's common name, as curl does (DNS names only; `openssl req
//!   -x509 -subj /CN=NAME` makes such certificates); webpki reads
//!   subjectAltNames only;
//! - webpki does not check a trust anchor's validity period; OpenSSL does,
//!   so a chain that ends at an expired (or not yet valid) `ca=`
//!   certificate is refused, unless another path through a valid one
//!   exists;
//! - handshake signatures are always verified with the crypto provider's
//!   algorithms, with `insecure` too (which skips the certificate check
//!   only).
//!
//! What curl accepts and the probe still refuses: a CA certificate
//! (CA:TRUE) as the server's when it is not itself in `ca=` but issued by
//! one of it (webpki refuses a CA as an end entity, and checking such a
//! chain by hand would be a second path validator).
//!
//! Failures are worded for an operator, with a short stable reason:
//!
//! | reason | when |
//! | --- | --- |
//! | `tls-expired` | the certificate (or one of its chain) has expired |
//! | `tls-not-yet-valid` | it is not valid yet (a wrong clock, often) |
//! | `tls-wrong-name` | it does not name the host (`host=`, or the URL's address) |
//! | `tls-self-signed` | it is self-signed and not one of `ca=` (nor a Mozilla root) |
//! | `tls-unknown-ca` | no certificate of `ca=` (or Mozilla's roots) issued it, or the server omits an intermediate |
//! | `tls-bad-signature` | a signature of the chain or of the handshake does not verify |
//! | `tls-bad-certificate` | anything else refused in the certificate (a CA as the server's certificate, SHA-1, bad DER, key usage) |
//! | `tls-client-cert-required` | the server asked for a client certificate and, given none, refused (a `certificate_required` alert, or nginx's HTTP 400 after asking) |
//! | `tls-client-cert-refused` | the server refused the client certificate of `cert=` (an alert such as `bad_certificate`, `unknown_ca`, `certificate_expired`, or nginx's HTTP 400 after asking) |
//! | `tls-protocol-version` | the server speaks only TLS versions exaprobe does not (exaprobe speaks TLS 1.2 and 1.3; a TLS 1.0/1.1-only server) |
//! | `tls-handshake` | the server refused the handshake, or has no cipher or group in common |
//! | `tls-protocol` | the server does not speak TLS (plain HTTP on the port, say) |
//! | `tls-error` | any other TLS failure |

use std::error::Error as StdError;
use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError, RootCertStore};
use rustls::{SignatureScheme, StreamOwned};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport, TransportAdapter,
};

use super::http::{ClientCert, Tls};

mod describe;
#[cfg(test)]
mod tests;

use describe::describe_certificate;
pub(crate) use describe::{client_cert_outcome, describe, describe_for_client};

/// A refused certificate or handshake signature, as the verifier words it.
#[derive(Debug)]
struct Refusal {
    reason: &'static str,
    detail: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl StdError for Refusal {}

/// Where the trust anchors come from.
#[derive(Debug)]
enum Anchors {
    /// Mozilla's roots.
    Mozilla,
    /// The certificates of a `ca=` file (DER), named by its path, and the
    /// validity periods of those webpki takes as anchors.
    File { path: String, certs: Vec<CertificateDer<'static>>, dates: Vec<AnchorDates> },
}

/// A `ca=` certificate's anchor (subject and key) and validity period.
#[derive(Debug)]
struct AnchorDates {
    subject: Vec<u8>,
    spki: Vec<u8>,
    /// Seconds since the epoch.
    not_before: i64,
    not_after: i64,
    /// `"NAME"` from the common name, for messages.
    name: String,
}

impl AnchorDates {
    fn of(der: &CertificateDer<'_>) -> Option<Self> {
        let anchor = webpki::anchor_from_trusted_cert(der).ok()?;
        let (not_before, not_after) = validity(der.as_ref())?;
        let name = match common_names(der.as_ref()).first() {
            Some(cn) => format!("{cn:?}"),
            None => "(with no common name)".to_string(),
        };
        Some(AnchorDates {
            subject: anchor.subject.as_ref().to_vec(),
            spki: anchor.subject_public_key_info.as_ref().to_vec(),
            not_before,
            not_after,
            name,
        })
    }

    fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

impl Anchors {
    /// The anchors, for messages: "in ca=/etc/ca.pem".
    fn named(&self) -> String {
        match self {
            Anchors::Mozilla => "among Mozilla's roots".to_string(),
            Anchors::File { path, .. } => format!("in ca={path}"),
        }
    }

    /// What to do about a certificate not trusted.
    fn hint(&self) -> &'static str {
        match self {
            Anchors::Mozilla => "; to trust a private CA or this certificate, give it with ca=",
            Anchors::File { .. } => "",
        }
    }

    fn pinned(&self, der: &[u8]) -> bool {
        match self {
            Anchors::Mozilla => false,
            Anchors::File { certs, .. } => certs.iter().any(|c| c.as_ref() == der),
        }
    }
}

/// webpki's verification, plus the certificates of `ca=` trusted as they
/// are and the common name of a certificate without subjectAltName (see the
/// module doc); or, for `insecure`, no certificate check.
#[derive(Debug)]
struct Verifier {
    /// None for `insecure`.
    trust: Option<(RootCertStore, Anchors)>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    fn new(tls: &Tls, provider: &CryptoProvider) -> Self {
        let algorithms = provider.signature_verification_algorithms;
        let anchors = match tls {
            Tls::Insecure => return Verifier { trust: None, algorithms },
            Tls::Verify(None) => Anchors::Mozilla,
            Tls::Verify(Some(ca)) => {
                let certs: Vec<CertificateDer<'static>> =
                    ca.certs.iter().map(|der| CertificateDer::from(der.clone())).collect();
                let dates = certs.iter().filter_map(AnchorDates::of).collect();
                Anchors::File { path: ca.path.display().to_string(), certs, dates }
            }
        };
        let mut roots = RootCertStore::empty();
        match &anchors {
            Anchors::Mozilla => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            // A certificate webpki cannot take as an anchor may still be the
            // server's own, compared byte for byte.
            Anchors::File { certs, .. } => {
                roots.add_parsable_certificates(certs.iter().cloned());
            }
        }
        Verifier { trust: Some((roots, anchors)), algorithms }
    }

    /// webpki does not look at a trust anchor's validity period; OpenSSL
    /// does, and refuses a chain ending at an expired CA of the CA file.
    /// So, when a `ca=` certificate is out of its validity period, the
    /// chain is built again (by webpki, which tries every path) refusing
    /// the paths that end at it.
    fn anchor_in_its_time(
        &self,
        roots: &RootCertStore,
        anchors: &Anchors,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let Anchors::File { path, dates, .. } = anchors else { return Ok(()) };
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if dates.iter().all(|d| d.valid_at(now_secs)) {
            return Ok(());
        }
        let Ok(ee) = webpki::EndEntityCert::try_from(end_entity) else { return Ok(()) };
        let refused = std::cell::Cell::new(None);
        let in_its_time = |p: &webpki::VerifiedPath<'_>| {
            let anchor = p.anchor();
            let mut matching = dates
                .iter()
                .filter(|d| d.subject == anchor.subject.as_ref() && d.spki == anchor.subject_public_key_info.as_ref());
            let first = matching.clone().next();
            match first {
                Some(d) if !matching.any(|d| d.valid_at(now_secs)) => {
                    refused.set(Some(d));
                    Err(webpki::Error::InvalidCertValidity)
                }
                _ => Ok(()),
            }
        };
        let verified = ee.verify_for_usage(
            self.algorithms.all,
            &roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            Some(&in_its_time),
        );
        match (verified, refused.get()) {
            (Err(_), Some(d)) => {
                let (reason, when) = if now_secs < d.not_before {
                    ("tls-not-yet-valid", format!("is valid from {} only", stamp_secs(d.not_before)))
                } else {
                    ("tls-expired", format!("expired at {}", stamp_secs(d.not_after)))
                };
                Err(refusal(
                    reason,
                    format!("the CA certificate {} of ca={path} {when}; it is now {}", d.name, stamp_secs(now_secs)),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Words a certificate error of webpki's for an operator.
    fn refuse(
        &self,
        err: rustls::Error,
        anchors: &Anchors,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> rustls::Error {
        let rustls::Error::InvalidCertificate(cert_err) = &err else { return err };
        let (reason, detail) = match cert_err {
            CertificateError::UnknownIssuer | CertificateError::Other(_)
                if (is_unknown_issuer(cert_err) || is_ca_as_end_entity(cert_err))
                    && intermediates.is_empty()
                    && self_issued(end_entity) =>
            {
                (
                    "tls-self-signed",
                    format!("the certificate is self-signed and not {}{}", anchors.named(), anchors.hint()),
                )
            }
            CertificateError::UnknownIssuer => (
                "tls-unknown-ca",
                format!(
                    "the certificate is not issued by a CA {} (or the server does not send the intermediate \
                     certificates){}",
                    anchors.named(),
                    anchors.hint()
                ),
            ),
            other if is_ca_as_end_entity(other) => (
                "tls-bad-certificate",
                "the server's certificate is a CA certificate (basic constraints CA:TRUE): refused as a \
                 server's certificate unless it is itself in ca="
                    .to_string(),
            ),
            other => describe_certificate(other),
        };
        refusal(reason, detail)
    }
}

fn refusal(reason: &'static str, detail: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Refusal { reason, detail }))))
}

fn is_unknown_issuer(e: &CertificateError) -> bool {
    matches!(e, CertificateError::UnknownIssuer)
}

/// webpki's "CA used as end entity", which rustls passes on as `Other`.
fn is_ca_as_end_entity(e: &CertificateError) -> bool {
    match e {
        CertificateError::Other(OtherError(inner)) => {
            matches!(inner.downcast_ref::<webpki::Error>(), Some(webpki::Error::CaUsedAsEndEntity))
        }
        _ => false,
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((roots, anchors)) = &self.trust else { return Ok(ServerCertVerified::assertion()) };
        let refuse = |e| self.refuse(e, anchors, end_entity, intermediates);
        let cert = ParsedCertificate::try_from(end_entity).map_err(refuse)?;
        // The order of WebPkiServerVerifier: the chain, then the name.
        match verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all) {
            Ok(()) => self.anchor_in_its_time(roots, anchors, end_entity, intermediates, now)?,
            // One of ca= as it is: webpki checked its validity period
            // before its basic constraints and before looking for an
            // issuer, so only these two errors let it through here.
            Err(rustls::Error::InvalidCertificate(e))
                if (is_unknown_issuer(&e) || is_ca_as_end_entity(&e)) && anchors.pinned(end_entity.as_ref()) => {}
            Err(e) => return Err(refuse(e)),
        }
        match verify_server_name(&cert, server_name) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(e) if common_name_matches(&e, end_entity.as_ref(), server_name) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(refuse(e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms).map_err(handshake_signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms).map_err(handshake_signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn handshake_signature(err: rustls::Error) -> rustls::Error {
    match &err {
        rustls::Error::InvalidCertificate(CertificateError::BadSignature) => refusal(
            "tls-bad-signature",
            "the server's handshake signature does not verify with its certificate's key (a key that does not \
             match the certificate?)"
                .to_string(),
        ),
        _ => err,
    }
}

/// Seconds since the epoch in RFC 3339 (before 1970 as the epoch: never a
/// CA's dates that matter).
fn stamp_secs(secs: i64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs.max(0).unsigned_abs()))
}

/// A certificate's validity period, in seconds since the epoch.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let (tag, _, rest) = tlv(tbs)?;
    let rest = if tag == 0xa0 { tlv(rest)?.2 } else { rest };
    let (_, _, rest) = tlv(rest)?; // signature algorithm
    let (_, _, rest) = tlv(rest)?; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = der_time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some((not_before, der_time(tag, not_after)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 has them, in seconds since the epoch.
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let (month, day) = (num(&rest[0..2]), num(&rest[2..4]));
    let (hour, minute, second) = (num(&rest[4..6]), num(&rest[6..8]), num(&rest[8..10]));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// curl (OpenSSL's `X509_check_host`) takes the subject's common name for
/// the host name when the certificate has no subjectAltName, as
/// `openssl req -x509 -subj /CN=NAME` makes it; webpki never does. So a DNS
/// name refused by webpki for a certificate presenting no name at all is
/// compared with the common names: equal (case aside), or matching a
/// leftmost `*.` wildcard of one label. Never for an IP address (nor does
/// curl).
fn common_name_matches(err: &rustls::Error, der: &[u8], server_name: &ServerName<'_>) -> bool {
    let rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. }) = err else {
        return false;
    };
    let ServerName::DnsName(name) = server_name else { return false };
    if !presented.is_empty() {
        return false;
    }
    let name = name.as_ref().trim_end_matches('.').to_ascii_lowercase();
    common_names(der).iter().any(|cn| {
        let cn = cn.trim_end_matches('.').to_ascii_lowercase();
        match cn.strip_prefix("*.") {
            Some(parent) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => cn == name,
        }
    })
}

/// The subject's common names (2.5.4.3) that are text.
fn common_names(der: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some((_, mut subject)) = issuer_and_subject(der) else { return out };
    while let Some((_, set, rest)) = tlv(subject) {
        subject = rest;
        let mut set = set;
        while let Some((_, attribute, rest)) = tlv(set) {
            set = rest;
            let Some((0x06, oid, value)) = tlv(attribute) else { continue };
            if oid != [0x55, 0x04, 0x03] {
                continue;
            }
            // UTF8String, PrintableString, T61String, IA5String.
            if let Some((0x0c | 0x13 | 0x14 | 0x16, text, _)) = tlv(value)
                && let Ok(text) = std::str::from_utf8(text)
            {
                out.push(text.to_string());
            }
        }
    }
    out
}

/// The issuer's and subject's names, as DER contents.
fn issuer_and_subject(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    // [0] version (optional), serial, signature algorithm, issuer,
    // validity, subject.
    let (tag, _, rest) = tlv(tbs)?;
    let rest = if tag == 0xa0 { tlv(rest)?.2 } else { rest };
    let (_, _, rest) = tlv(rest)?;
    let (_, issuer, rest) = tlv(rest)?;
    let (_, _, rest) = tlv(rest)?;
    let (_, subject, _) = tlv(rest)?;
    Some((issuer, subject))
}

/// True if the certificate's issuer and subject are the same name (compared
/// as DER, as webpki does): a self-signed certificate. A certificate that
/// does not parse is not.
fn self_issued(der: &[u8]) -> bool {
    issuer_and_subject(der).is_some_and(|(issuer, subject)| issuer == subject)
}

/// One DER element: its tag, its content and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// Wraps the TCP transport in TLS for `https` URLs, verified as the probe's
/// [`Tls`] says.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    /// The rustls configuration (DoT builds its own stream with it).
    pub(crate) config: Arc<ClientConfig>,
    /// Set when a server asks for a client certificate.
    requested: Arc<AtomicBool>,
}

/// Hands rustls the client certificate of `cert=` (or none) when a server
/// asks for one, and notes that it asked: the request's failure is then
/// worded as a refusal of the client.
#[derive(Debug)]
struct ClientCertResolver {
    key: Option<Arc<rustls::sign::CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl rustls::client::ResolvesClientCert for ClientCertResolver {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

impl TlsConnector {
    /// The connector for these TLS settings.
    pub(crate) fn new(tls: &Tls) -> Result<Self, String> {
        Self::for_probe(tls, None)
    }

    /// The connector for these TLS settings and this client certificate.
    pub(crate) fn for_probe(tls: &Tls, client: Option<&ClientCert>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier::new(tls, &provider);
        let requested = Arc::new(AtomicBool::new(false));
        let resolver =
            ClientCertResolver { key: client.map(|c| Arc::clone(&c.key)), requested: Arc::clone(&requested) };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(resolver));
        Ok(TlsConnector { config: Arc::new(config), requested })
    }

    /// Becomes true when a server asks this connector for a client
    /// certificate.
    pub(crate) fn cert_requested(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.requested)
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(&self, details: &ConnectionDetails, chained: Option<In>) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else { return Ok(None) };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.authority().map_or("", |a| a.host());
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|_| ureq::Error::Tls("not a DNS name"))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), Arc::clone(&details.current_time));
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(details.config.input_buffer_size(), details.config.output_buffer_size());
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned { conn, sock } })))
    }
}

/// An HTTPS connection.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
