//! The wording of TLS failures for an operator: a short stable reason (the
//! table in the parent module's doc) and a detail, for rustls's errors, the
//! certificate errors, the verifier's own refusals and the alerts of a server
//! that refuses a client certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::UnixTime;
use rustls::{CertificateError, OtherError};

use super::Refusal;
use crate::probe::Outcome;

/// Words the certificate errors that need no knowledge of the anchors.
pub(super) fn describe_certificate(e: &CertificateError) -> (&'static str, String) {
    use CertificateError as C;
    match e {
        C::ExpiredContext { time, not_after } => (
            "tls-expired",
            format!("the certificate (or one of its chain) expired at {}; it is now {}", stamp(not_after), stamp(time)),
        ),
        C::Expired => ("tls-expired", "the certificate (or one of its chain) has expired".to_string()),
        C::NotValidYetContext { time, not_before } => (
            "tls-not-yet-valid",
            format!(
                "the certificate (or one of its chain) is valid from {} only; it is now {} (is the clock right?)",
                stamp(not_before),
                stamp(time)
            ),
        ),
        C::NotValidYet => {
            ("tls-not-yet-valid", "the certificate (or one of its chain) is not valid yet (is the clock right?)".into())
        }
        C::NotValidForNameContext { expected, presented } => {
            let names: Vec<String> = presented.iter().map(|p| presented_name(p)).collect();
            let is_for = if names.is_empty() {
                "names no host (no subjectAltName; the common name is not used)".to_string()
            } else {
                format!("is for {}", names.join(", "))
            };
            ("tls-wrong-name", format!("the certificate {is_for}, not {}", expected.to_str()))
        }
        C::NotValidForName => ("tls-wrong-name", "the certificate is not for this host".to_string()),
        C::BadSignature => (
            "tls-bad-signature",
            "a signature in the server's certificate chain does not verify (an issuer known by its name, but \
             not with this key)"
                .into(),
        ),
        C::BadEncoding => ("tls-bad-certificate", "the server's certificate is not valid DER".to_string()),
        C::UnsupportedSignatureAlgorithmContext { .. } | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            (
                "tls-bad-certificate",
                "the certificate chain is signed with an algorithm that is not accepted (SHA-1, say)".to_string(),
            )
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            ("tls-bad-certificate", "the certificate's extended key usage does not allow a TLS server".to_string())
        }
        C::Revoked => ("tls-bad-certificate", "the certificate is revoked".to_string()),
        C::Other(OtherError(inner)) => ("tls-bad-certificate", format!("the certificate is refused: {inner}")),
        other => ("tls-bad-certificate", format!("the certificate is refused: {other:?}")),
    }
}

/// webpki's `DnsName("www.example.com")` or `IpAddress(192.0.2.1)` as the
/// bare name.
pub(super) fn presented_name(p: &str) -> String {
    let bare = p
        .strip_prefix("DnsName(\"")
        .and_then(|s| s.strip_suffix("\")"))
        .or_else(|| p.strip_prefix("IpAddress(").and_then(|s| s.strip_suffix(')')));
    bare.unwrap_or(p).to_string()
}

fn stamp(t: &UnixTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(t.as_secs()))
}

/// The reason and detail for a TLS failure that rustls reports.
pub(crate) fn describe(err: &rustls::Error) -> (&'static str, String) {
    use rustls::Error as R;
    match err {
        R::InvalidCertificate(CertificateError::Other(OtherError(inner))) => match inner.downcast_ref::<Refusal>() {
            Some(r) => (r.reason, r.detail.clone()),
            None => describe_certificate(&CertificateError::Other(OtherError(Arc::clone(inner)))),
        },
        R::InvalidCertificate(e) => describe_certificate(e),
        R::AlertReceived(rustls::AlertDescription::ProtocolVersion) => (
            "tls-protocol-version",
            "the server refused every TLS version exaprobe offers (TLS 1.2 and 1.3): it speaks only older ones \
             (TLS 1.0 or 1.1), or newer"
                .to_string(),
        ),
        R::PeerIncompatible(
            rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
            | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | rustls::PeerIncompatible::Tls12NotOffered
            | rustls::PeerIncompatible::Tls12NotOfferedOrEnabled
            | rustls::PeerIncompatible::Tls13RequiredForQuic
            | rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
        ) => (
            "tls-protocol-version",
            "the server speaks no TLS version exaprobe speaks (TLS 1.2 and 1.3): an older one (TLS 1.0 or 1.1)?"
                .to_string(),
        ),
        R::AlertReceived(alert) => (
            "tls-handshake",
            format!("the server ended the TLS handshake with the alert {}", words(&format!("{alert:?}"))),
        ),
        R::PeerIncompatible(why) => (
            "tls-handshake",
            format!(
                "the server has no TLS version, cipher suite or key exchange in common with exaprobe ({})",
                words(&format!("{why:?}"))
            ),
        ),
        R::NoCertificatesPresented => ("tls-handshake", "the server presented no certificate".to_string()),
        R::InvalidMessage(_)
        | R::InappropriateMessage { .. }
        | R::InappropriateHandshakeMessage { .. }
        | R::PeerMisbehaved(_)
        | R::PeerSentOversizedRecord
        | R::DecryptError => ("tls-protocol", "the server does not speak TLS (plain HTTP on this port?)".to_string()),
        other => ("tls-error", other.to_string()),
    }
}

/// [`describe`], knowing whether the server asked for a client certificate
/// and whether the probe had one: the alerts a server sends when it refuses
/// a client (none, or the one given) are worded as such.
pub(crate) fn describe_for_client(err: &rustls::Error, requested: bool, given: bool) -> (&'static str, String) {
    use rustls::AlertDescription as A;
    let refusal = match err {
        rustls::Error::AlertReceived(A::CertificateRequired) => true,
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateUnknown
            | A::CertificateExpired
            | A::CertificateRevoked
            | A::UnsupportedCertificate
            | A::AccessDenied
            | A::HandshakeFailure
            | A::DecryptError,
        ) => requested,
        _ => false,
    };
    if !refusal {
        return describe(err);
    }
    let alert = match err {
        rustls::Error::AlertReceived(a) => words(&format!("{a:?}")),
        _ => String::new(),
    };
    let outcome = client_cert_outcome(given, &format!("TLS alert {alert}"));
    let reason = if given { "tls-client-cert-refused" } else { "tls-client-cert-required" };
    (reason, outcome.detail)
}

/// A server that asked for a client certificate and refused the client:
/// `tls-client-cert-required` when the probe had none to give,
/// `tls-client-cert-refused` when it gave `cert=`; `how` is what the server
/// said (an alert, an HTTP 400 page).
pub(crate) fn client_cert_outcome(given: bool, how: &str) -> Outcome {
    if given {
        Outcome::down("tls-client-cert-refused").with_detail(format!(
            "the server refused the client certificate of cert= ({how}): not issued by a CA it trusts, expired, \
             or not for TLS clients?"
        ))
    } else {
        Outcome::down("tls-client-cert-required").with_detail(format!(
            "the server requires a client certificate and none is configured ({how}): give cert= and key="
        ))
    }
}

/// `HandshakeFailure` as `handshake failure`.
pub(super) fn words(camel: &str) -> String {
    // A space before each capital that follows a small letter, so that an
    // acronym stays one word (`UnknownCA` as `unknown ca`).
    let mut out = String::new();
    let mut after_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push(' ');
        }
        after_lower = c.is_ascii_lowercase();
        out.push(c.to_ascii_lowercase());
    }
    out
}
