//! A check's JSON object translated by its `type` into the raw check
//! ([`crate::model::raw::RawCheck`]): the keys each probe type takes, and
//! the DNS probe's EDNS, NSID, DNSSEC, DoT and DoH settings.

use super::*;

impl<'t> Cx<'t> {
    /// A check as written: its type picks the keys it may have.
    pub(super) fn check(&mut self, raw: &'t RawValue, origin: &Origin) -> Option<raw::RawCheck> {
        let path = &origin.to_string();
        let sub = raw.get();
        if !sub.starts_with('{') {
            let (line, column) = self.position(sub, 1, 1);
            self.errors.push(ConfigError {
                path: path.to_string(),
                line,
                column,
                message: "a check is an object such as {\"type\": \"tcp\", \"address\": \"127.0.0.1:53\"}".into(),
            });
            return None;
        }
        let kind = self.parse::<RawCheckType>(sub, path)?.kind;
        let (probe, common, keys): (_, Common, &'static [(&'static str, &'static str)]) = match kind.as_deref() {
            Some("tcp") => {
                let c = self.parse::<RawTcp>(sub, path)?;
                let probe =
                    raw::RawProbe::Tcp { address: c.address.clone(), send: c.send.clone(), expect: c.expect.clone() };
                (probe, c.common_owned(), &[("address", "address"), ("send", "send"), ("expect", "expect")])
            }
            Some("http") => {
                let c = self.parse::<RawHttp>(sub, path)?;
                let mut b = HttpProbe::builder(c.url.as_str());
                if let Some(v) = &c.method {
                    b = b.method(v.as_str());
                }
                if let Some(v) = &c.status {
                    b = b.status(v.0.as_str());
                }
                if let Some(v) = &c.body {
                    b = b.body_contains(v.as_str());
                }
                if let Some(v) = &c.body_regex {
                    b = b.body_regex(v.as_str());
                }
                if c.headers.is_some() {
                    self.warn(
                        &format!("{path}.headers"),
                        "deprecated: it sets request headers; write request_headers (and expect_headers to \
                         require headers on the response)",
                    );
                }
                for (name, value) in c.headers.iter().flatten() {
                    b = b.deprecated_header(format!("{name}: {value}"));
                }
                for (name, value) in c.request_headers.iter().flatten() {
                    b = b.header(format!("{name}: {value}"));
                }
                // "" requires the header, any value.
                for (name, re) in c.expect_headers.iter().flatten() {
                    b = b.expect_header(if re.is_empty() { name.clone() } else { format!("{name}:{re}") });
                }
                if let Some(v) = &c.cert {
                    b = b.cert_file(v.as_str());
                }
                if let Some(v) = &c.key {
                    b = b.key_file(v.as_str());
                }
                for v in c.resolve.iter().flatten() {
                    b = b.resolve(v.as_str());
                }
                if let Some(v) = &c.host {
                    b = b.host(v.as_str());
                }
                if let Some(v) = &c.ca {
                    b = b.ca_file(v.as_str());
                }
                b = b.insecure(c.insecure.unwrap_or(false)).follow_redirects(c.follow_redirects.unwrap_or(false));
                let keys = &[
                    ("url", "url"),
                    ("method", "method"),
                    ("host", "host"),
                    ("status", "status"),
                    ("body", "body"),
                    ("body-regex", "body_regex"),
                    ("header", "headers"),
                    ("request-header", "request_headers"),
                    ("expect-header", "expect_headers"),
                    ("ca", "ca"),
                    ("cert", "cert"),
                    ("key", "key"),
                    ("resolve", "resolve"),
                ];
                (raw::RawProbe::Http(b), c.common_owned(), keys)
            }
            Some("dns") => {
                let c = self.parse::<RawDns>(sub, path)?;
                let mut b = DnsProbe::builder(c.query.as_str());
                if let Some(v) = &c.server {
                    b = b.server(v.as_str());
                }
                if let Some(v) = &c.qtype {
                    b = b.rtype(v.as_str());
                }
                if let Some(v) = &c.answer {
                    b = b.answer(v.as_str());
                }
                if let Some(v) = &c.source {
                    b = b.source(v.as_str());
                }
                if let Some(v) = &c.soa_reference {
                    b = b.soa_reference(v.as_str());
                }
                if let Some(v) = &c.soa_zone {
                    b = b.soa_zone(v.as_str());
                }
                if let Some(v) = &c.rcode {
                    b = b.rcode(v.0.as_str());
                }
                if let Some(v) = &c.soa_max_lag {
                    b = b.soa_max_lag(v.0.as_str());
                }
                b = b.tcp(c.tcp.unwrap_or(false)).norecurse(c.norecurse.unwrap_or(false));
                b = dns_more(b, &c);
                let keys = &[
                    ("server", "server"),
                    ("name", "query"),
                    ("type", "qtype"),
                    ("rcode", "rcode"),
                    ("answer", "answer"),
                    ("source", "source"),
                    ("soa-reference", "soa_reference"),
                    ("soa-max-lag", "soa_max_lag"),
                    ("soa-zone", "soa_zone"),
                    ("edns", "edns"),
                    ("bufsize", "bufsize"),
                    ("nsid", "nsid"),
                    ("class", "class"),
                    ("dnssec", "dnssec"),
                    ("ad", "ad"),
                    ("aa", "aa"),
                    ("nodata", "nodata"),
                    ("tls", "tls"),
                    ("tls-name", "tls_name"),
                    ("ca", "ca"),
                    ("insecure", "insecure"),
                    ("doh", "doh"),
                    ("method", "method"),
                ];
                (raw::RawProbe::Dns(b), c.common_owned(), keys)
            }
            Some("ntp") => {
                let c = self.parse::<RawNtp>(sub, path)?;
                let mut b = NtpProbe::builder();
                if let Some(v) = &c.server {
                    b = b.server(v.as_str());
                }
                if let Some(v) = &c.max_stratum {
                    b = b.max_stratum(v.0.as_str());
                }
                if let Some(v) = &c.max_offset {
                    b = b.max_offset(v.0.as_str());
                }
                if let Some(v) = &c.max_dispersion {
                    b = b.max_dispersion(v.0.as_str());
                }
                if let Some(v) = &c.max_root_distance {
                    b = b.max_root_distance(v.0.as_str());
                }
                if let Some(v) = &c.max_ref_age {
                    b = b.max_ref_age(v.0.as_str());
                }
                if let Some(v) = &c.source {
                    b = b.source(v.as_str());
                }
                let keys = &[
                    ("server", "server"),
                    ("max-stratum", "max_stratum"),
                    ("max-offset", "max_offset"),
                    ("max-dispersion", "max_dispersion"),
                    ("max-root-distance", "max_root_distance"),
                    ("max-ref-age", "max_ref_age"),
                    ("source", "source"),
                ];
                (raw::RawProbe::Ntp(b), c.common_owned(), keys)
            }
            Some("command") => {
                let c = self.parse::<RawCommand>(sub, path)?;
                let exit_codes = match c.exit_codes {
                    None | Some(RawExitCodes::Nagios) => ExitCodes::Nagios,
                    Some(RawExitCodes::ZeroIsHealthy) => ExitCodes::ZeroIsHealthy,
                };
                let probe = raw::RawProbe::Command { argv: c.argv.clone(), shell: c.shell.clone(), exit_codes };
                (probe, c.common_owned(), &[("argv", "argv"), ("shell", "shell")])
            }
            Some("file") => {
                let c = self.parse::<RawFile>(sub, path)?;
                return Some(raw::RawCheck::File(At::new(PathBuf::from(&c.path), origin.join("path"))));
            }
            Some(other) => {
                self.err(
                    format!("{path}.type"),
                    format!("unknown check type {other:?} (tcp, http, dns, ntp, command or file)"),
                );
                return None;
            }
            None => {
                self.err(path, "missing key `type` (tcp, http, dns, ntp, command or file)");
                return None;
            }
        };
        let on_fail = common.on_fail.map(|f| match f {
            RawOnFail::Down => "down".to_string(),
            RawOnFail::Degrade => "degrade".to_string(),
        });
        Some(raw::RawCheck::Probe(Box::new(raw::RawProbeCheck {
            probe,
            keys: raw::ProbeKeys::Json { check: origin.clone(), keys },
            timeout: duration_field(common.timeout.as_ref(), origin.join("timeout")),
            rise: At::new(common.rise, origin.join("rise")),
            fall: At::new(common.fall, origin.join("fall")),
            on_fail: At::new(on_fail, origin.join("on_fail")),
        })))
    }
}

/// The DNS settings of issue 12 (EDNS, NSID, DNSSEC, DoT, DoH), onto `b`.
fn dns_more(mut b: crate::probe::dns::DnsBuilder, c: &RawDns) -> crate::probe::dns::DnsBuilder {
    if let Some(on) = c.edns {
        b = b.edns(if on { "on" } else { "off" });
    }
    if let Some(v) = &c.bufsize {
        b = b.bufsize(v.0.as_str());
    }
    match &c.nsid {
        None => {}
        Some(RawNsid::Ask(on)) => b = b.nsid(*on),
        Some(RawNsid::Require(t)) => b = b.nsid_text(t.as_str()),
    }
    if let Some(v) = &c.class {
        b = b.class(v.as_str());
    }
    if let Some(v) = &c.nodata {
        b = b.nodata(v.as_str());
    }
    if let Some(v) = &c.tls_name {
        b = b.tls_name(v.as_str());
    }
    if let Some(v) = &c.doh {
        b = b.doh(v.as_str());
    }
    if let Some(v) = &c.method {
        b = b.method(v.as_str());
    }
    if let Some(v) = &c.ca {
        b = b.ca_file(v.as_str());
    }
    b.dnssec(c.dnssec.unwrap_or(false))
        .ad(c.ad.unwrap_or(false))
        .aa(c.aa.unwrap_or(false))
        .tls(c.tls.unwrap_or(false))
        .insecure(c.insecure.unwrap_or(false))
}
