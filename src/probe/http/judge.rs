//! Judging what a run saw besides the status and body: the `expect-header=`
//! tests, and the mapping of a failed request (ureq and rustls errors, a
//! client-certificate refusal, an unresolved redirect target) to a short
//! reason with an operator's detail.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use super::HttpProbe;
use crate::probe::tcp::first_line;
use crate::probe::{Outcome, io_reason, tls};

/// What one run saw besides the response, for wording its failures.
pub(super) struct RunState {
    /// The name that did not resolve, if one did not.
    pub(super) failed_name: Arc<Mutex<Option<String>>>,
    /// Whether a server asked for a client certificate.
    pub(super) cert_requested: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the probe has one to give.
    pub(super) cert_given: bool,
}

impl HttpProbe {
    /// `header-missing` or `header-mismatch` for the first `expect-header=`
    /// the response does not satisfy.
    pub(super) fn judge_headers(&self, headers: &ureq::http::HeaderMap) -> Option<Outcome> {
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
    pub(super) fn client_cert_refusal(&self, code: u16, head: &[u8]) -> Option<Outcome> {
        if code != 400 || !self.cert_requested.load(Ordering::Relaxed) {
            return None;
        }
        let page = first_words(head);
        Some(tls::client_cert_outcome(self.cert_given, &format!("HTTP answer {page:?}")))
    }

    /// A short reason for a failed request.
    pub(super) fn error_outcome(&self, err: ureq::Error) -> Outcome {
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
    /// `src/probe/tls/` for the table).
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
