//! The values of the HTTP probe's flag words, each parsed and checked when
//! the probe is built: the status set, the body match, the `ca=` bundle, the
//! `expect-header=` test, the `resolve=` pins and the mTLS client certificate.

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use ureq::http::HeaderName;
use ureq::tls::PemItem;

use super::parse_host;

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
        let pem = crate::probe::read_small_file(&path, CA_FILE_MAX)?;
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
        let pem = crate::probe::read_small_file(&cert_path, CLIENT_FILE_MAX).map_err(|e| ("cert", e))?;
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
        let pem = crate::probe::read_small_file(&key_path, CLIENT_FILE_MAX).map_err(|e| ("key", e))?;
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
