//! Judging a DNS reply: rcode, NSID, header bits, the expected answer or
//! type, the bogus-answer check, the SOA serial lag (RFC 1982 arithmetic)
//! and the one-line summary of a reply for an outcome's detail.

use std::net::IpAddr;
use std::time::Instant;

use domain::base::iana::Rcode;
use domain::base::{Message, ParsedName, Rtype};
use domain::rdata::AllRecordData;

use super::wire::{self, Query};
use super::{DnsProbe, Expected, SoaLag, Transport};
use crate::probe::Outcome;
use crate::probe::tcp::escape;

impl DnsProbe {
    /// Judges a matching reply on its rcode, NSID, header bits and expected
    /// answer: the healthy outcome, or the one that ends the probe. With a
    /// deadline, a SERVFAIL may be asked again with CD set, to tell a bogus
    /// answer.
    pub(super) fn judge(&self, reply: &Message<Vec<u8>>, deadline: Option<Instant>) -> Result<Outcome, Outcome> {
        let edns = wire::EdnsReply::of(reply);
        let tag = |o: Outcome| match &edns.nsid {
            Some(n) => o.with_identity(&format!("nsid={}", wire::show_nsid(n))),
            None => o,
        };
        let rcode = reply.opt_rcode();
        if rcode != self.rcode.into() {
            let dnssec = self.require_ad || self.edns.is_some_and(|e| e.dnssec_ok);
            if rcode == Rcode::SERVFAIL.into()
                && dnssec
                && let Some(why) = self.bogus(&edns, deadline)
            {
                return Err(tag(Outcome::down("dns-bogus").with_detail(why)));
            }
            let mut detail = edns.with_ede(summary(reply));
            if rcode == Rcode::FORMERR.into() && self.edns.is_some() && reply.opt().is_none() {
                // What dig then says too: an old server that rejects the OPT record.
                detail.push_str(" (no OPT record in the reply: the server may not speak EDNS; edns=off)");
            }
            // As short as a summary: one line of a log.
            let detail: String = detail.chars().take(200).collect();
            return Err(tag(Outcome::down(format!("dns-rcode {rcode}")).with_detail(detail)));
        }
        if let Some(want) = &self.nsid_required {
            match &edns.nsid {
                None => return Err(Outcome::down("dns-nsid-missing").with_detail("the reply carries no NSID")),
                Some(got) if got.as_slice() != want.as_bytes() => {
                    return Err(tag(Outcome::down("dns-nsid-mismatch").with_detail(format!(
                        "NSID {}, not {}",
                        wire::show_nsid(got),
                        escape(want.as_bytes())
                    ))));
                }
                Some(_) => {}
            }
        }
        if self.require_aa && !reply.header().aa() {
            return Err(tag(
                Outcome::down("dns-not-authoritative").with_detail(format!("AA bit not set: {}", summary(reply)))
            ));
        }
        if self.require_ad && !reply.header().ad() {
            return Err(tag(Outcome::down("dns-not-validated")
                .with_detail(format!("AD bit not set (the server did not validate): {}", summary(reply)))));
        }
        if let Some(expected) = &self.answer
            && !self.has_answer(reply, expected).map_err(tag)?
        {
            return Err(tag(Outcome::down("dns-answer-missing").with_detail(summary(reply))));
        }
        if self.nodata_down && rcode == Rcode::NOERROR.into() && !self.has_type(reply).map_err(tag)? {
            return Err(tag(Outcome::down("dns-nodata").with_detail(format!(
                "no {} record: {}",
                self.rtype,
                summary(reply)
            ))));
        }
        Ok(tag(Outcome::healthy(format!("dns-rcode {rcode}")).with_detail(summary(reply))))
    }

    /// Why a SERVFAIL is a DNSSEC validation failure, if it is: the
    /// server's extended DNS error says so, or (with time left) the same
    /// query with checking disabled gets NOERROR.
    fn bogus(&self, edns: &wire::EdnsReply, deadline: Option<Instant>) -> Option<String> {
        if let Some((code, text)) = &edns.ede
            && wire::is_dnssec_ede(*code)
        {
            return Some(format!("SERVFAIL, extended error: {text}"));
        }
        let deadline = deadline?;
        let query = Query { cd: true, ..self.query(&self.name, self.rtype, self.class, deadline) };
        let reply = self.exchange(&self.transport, self.server, query).ok()?;
        (reply.opt_rcode() == Rcode::NOERROR.into()).then(|| {
            format!(
                "SERVFAIL, but NOERROR with checking disabled (CD): the answer fails DNSSEC validation{}",
                edns.ede.as_ref().map_or(String::new(), |(_, t)| format!(" ({t})"))
            )
        })
    }

    /// True if `reply` holds the expected answer among its records of the
    /// query type.
    fn has_answer(&self, reply: &Message<Vec<u8>>, expected: &Expected) -> Result<bool, Outcome> {
        let bad = |e: domain::base::wire::ParseError| Outcome::down("dns-bad-reply").with_detail(e.to_string());
        let section = reply.answer().map_err(bad)?;
        for record in section.limit_to::<AllRecordData<_, ParsedName<_>>>() {
            let record = record.map_err(bad)?;
            if record.rtype() != self.rtype {
                continue;
            }
            let found = match (expected, record.data()) {
                (Expected::Address(IpAddr::V4(want)), AllRecordData::A(a)) => a.addr() == *want,
                (Expected::Address(IpAddr::V6(want)), AllRecordData::Aaaa(a)) => a.addr() == *want,
                (Expected::Address(_), _) => false,
                (Expected::Text(want), data) => {
                    let shown = data.to_string();
                    if self.rtype == Rtype::TXT {
                        shown.contains(want.as_str())
                    } else {
                        shown.to_ascii_lowercase().contains(&want.to_ascii_lowercase())
                    }
                }
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// True if the answer section has a record of the query type (ANY: any
    /// record).
    fn has_type(&self, reply: &Message<Vec<u8>>) -> Result<bool, Outcome> {
        let bad = |e: domain::base::wire::ParseError| Outcome::down("dns-bad-reply").with_detail(e.to_string());
        for record in reply.answer().map_err(bad)? {
            let record = record.map_err(bad)?;
            if self.rtype == Rtype::ANY || record.rtype() == self.rtype {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The SOA lag check: `Some(outcome)` when it overrides a healthy
    /// result, `None` when the serials are close enough.
    pub(super) fn check_soa_lag(&self, soa: &SoaLag, deadline: Instant) -> Option<Outcome> {
        let ours = match self.soa_serial(&self.transport, self.server, &soa.zone, deadline) {
            Ok(s) => s,
            Err(outcome) => return Some(outcome),
        };
        // The reference is a plain DNS server (a hidden primary, say).
        let plain = if self.transport == Transport::Tcp { Transport::Tcp } else { Transport::Udp };
        let reference = match self.soa_serial(&plain, soa.reference, &soa.zone, deadline) {
            Ok(s) => s,
            Err(o) => {
                return Some(
                    Outcome::degraded("dns-soa-reference-failed")
                        .with_detail(format!("reference {}: {o}", soa.reference)),
                );
            }
        };
        let lag = serial_lag(ours, reference);
        let detail = format!("serial {ours}, reference {reference}");
        (lag > soa.max_lag).then(|| Outcome::down(format!("dns-soa-lag {lag}")).with_detail(detail))
    }
}

/// How far `ours` is behind `reference` in RFC 1982 serial arithmetic: 0
/// when equal or ahead, else the distance. The one undefined case (exactly
/// 2^31 apart) counts as the largest lag.
pub fn serial_lag(ours: u32, reference: u32) -> u32 {
    match reference.wrapping_sub(ours) {
        d if d < 1 << 31 => d,
        d if d == 1 << 31 => d,
        _ => 0,
    }
}

/// A one-line summary of a reply for an outcome's detail: rcode and the
/// first few answers.
fn summary(reply: &Message<Vec<u8>>) -> String {
    let mut out = format!("{}", reply.opt_rcode());
    if let Ok(answer) = reply.answer() {
        let shown: Vec<String> = answer
            .limit_to::<AllRecordData<_, ParsedName<_>>>()
            .filter_map(Result::ok)
            .take(3)
            .map(|r| format!("{} {}", r.rtype(), r.data()))
            .collect();
        if !shown.is_empty() {
            out.push_str(": ");
            out.push_str(&shown.join(", "));
        }
    }
    out.chars().filter(|c| !c.is_control()).take(200).collect()
}
