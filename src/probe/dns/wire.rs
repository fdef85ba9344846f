//! The DNS messages of a probe: the query (header bits, question, the EDNS
//! OPT record with DO and NSID), whether a reply answers it, and what the
//! reply's OPT record says (NSID, extended DNS error).

use std::time::Instant;

use domain::base::iana::{Class, Rcode};
use domain::base::opt::{ExtendedError, Nsid};
use domain::base::{Message, MessageBuilder, Name, Rtype};

use super::{Edns, Exchange};
use crate::probe::Outcome;

/// One query to send.
#[derive(Clone, Copy, Debug)]
pub(super) struct Query<'a> {
    /// The question's name.
    pub(super) name: &'a Name<Vec<u8>>,
    /// The question's type.
    pub(super) rtype: Rtype,
    /// The question's class.
    pub(super) class: Class,
    /// Recursion desired.
    pub(super) rd: bool,
    /// The AD bit (RFC 6840 §5.7: asks a validating resolver to say
    /// whether the answer validated, as dig does by default).
    pub(super) ad: bool,
    /// Checking disabled.
    pub(super) cd: bool,
    /// The OPT record, unless EDNS is off.
    pub(super) edns: Option<Edns>,
    /// When the exchange gives up.
    pub(super) deadline: Instant,
}

impl Query<'_> {
    /// The message, with a fresh random ID.
    pub(super) fn build(&self) -> Result<Message<Vec<u8>>, Outcome> {
        let failed =
            |e: domain::base::message_builder::PushError| Outcome::down("dns-query-failed").with_detail(e.to_string());
        let mut builder = MessageBuilder::new_vec();
        let header = builder.header_mut();
        header.set_id(random_id());
        header.set_rd(self.rd);
        header.set_ad(self.ad);
        header.set_cd(self.cd);
        let mut question = builder.question();
        question.push((self.name, self.rtype, self.class)).map_err(failed)?;
        let Some(edns) = self.edns else { return Ok(question.into_message()) };
        let mut additional = question.additional();
        additional
            .opt(|opt| {
                opt.set_udp_payload_size(edns.bufsize);
                opt.set_dnssec_ok(edns.dnssec_ok);
                if edns.nsid { opt.client_nsid() } else { Ok(()) }
            })
            .map_err(failed)?;
        Ok(additional.into_message())
    }
}

/// Parses `bytes` and checks that it answers `query`: the ID, the QR bit,
/// and the question, except that a bare refusal (REFUSED, FORMERR or
/// NOTIMP, with no question, answer or authority record) answers it too
/// (Unbound's REFUSED to a client its access control refuses has no
/// question; dig takes it). Any other rcode without the question may be
/// about another query (a question-less NXDOMAIN says nothing of ours).
pub(super) fn matching_reply(bytes: Vec<u8>, query: &Message<Vec<u8>>) -> Exchange {
    let bad = |detail: &str| Outcome::down("dns-bad-reply").with_detail(detail.to_string());
    let reply = Message::from_octets(bytes).map_err(|_| bad("shorter than a DNS header"))?;
    if reply.header().id() != query.header().id() {
        return Err(bad("reply ID is not our query's"));
    }
    if !reply.header().qr() {
        return Err(bad("not a reply (QR bit clear)"));
    }
    let counts = reply.header_counts();
    if counts.qdcount() == 0 && bare_refusal(reply.header().rcode()) && counts.ancount() == 0 && counts.nscount() == 0 {
        return Ok(reply);
    }
    if !reply.is_answer(query) {
        return Err(bad("reply question is not our query's"));
    }
    Ok(reply)
}

/// The rcodes a server may send without echoing the question: it refused,
/// or could not parse or does not implement the query.
fn bare_refusal(rcode: Rcode) -> bool {
    matches!(rcode, Rcode::REFUSED | Rcode::FORMERR | Rcode::NOTIMP)
}

/// What a reply's OPT record says.
#[derive(Clone, Debug, Default)]
pub(super) struct EdnsReply {
    /// The server's NSID, as sent.
    pub(super) nsid: Option<Vec<u8>>,
    /// The first extended DNS error: its code, and its code's name with
    /// the server's text, printable.
    pub(super) ede: Option<(u16, String)>,
}

impl EdnsReply {
    /// Reads the OPT record of `reply`; a missing or malformed one says
    /// nothing.
    pub(super) fn of(reply: &Message<Vec<u8>>) -> Self {
        let Some(opt) = reply.opt() else { return EdnsReply::default() };
        let opt = opt.opt();
        let nsid = opt.first::<Nsid<_>>().map(|n| n.as_slice().to_vec());
        let ede = opt.first::<ExtendedError<_>>().map(|e| (e.code().to_int(), printable(&e.to_string(), 120)));
        EdnsReply { nsid, ede }
    }

    /// `detail`, followed by the extended error if there is one.
    pub(super) fn with_ede(&self, detail: String) -> String {
        match &self.ede {
            None => detail,
            Some((_, text)) => format!("{detail} (extended error: {text})"),
        }
    }
}

/// Extended DNS errors (RFC 8914 §4) that mean a DNSSEC validation
/// failure: 1–2 unsupported algorithms, 5 indeterminate, 6 bogus, 7–8
/// signature times, 9–12 missing DNSKEY, RRSIG, zone key bit, NSEC.
pub(super) fn is_dnssec_ede(code: u16) -> bool {
    matches!(code, 1 | 2 | 5..=12)
}

/// How many bytes of an NSID are shown (it may be 65535 bytes long).
const MAX_NSID_SHOWN: usize = 64;

/// An NSID as text if it is printable ASCII, else as hex (dig shows
/// both): it is the server's choice, in logs, outcomes and `status`, so
/// only its first [`MAX_NSID_SHOWN`] bytes are shown, then `…`.
pub(super) fn show_nsid(nsid: &[u8]) -> String {
    let (shown, cut) = match nsid.get(..MAX_NSID_SHOWN) {
        Some(head) if nsid.len() > MAX_NSID_SHOWN => (head, "…"),
        _ => (nsid, ""),
    };
    if !shown.is_empty() && shown.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("{}{cut}", String::from_utf8_lossy(shown))
    } else {
        let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{hex}{cut}")
    }
}

/// `s` without control characters, at most `max` characters.
fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A random query ID: a guessable one would let an off-path sender forge
/// a healthy reply.
fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): still vary between probes.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        return (nanos ^ (nanos >> 16)) as u16;
    }
    u16::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(edns: Option<Edns>) -> Message<Vec<u8>> {
        let name: Name<Vec<u8>> = "example.test".parse().unwrap();
        let q = Query {
            name: &name,
            rtype: Rtype::A,
            class: Class::IN,
            rd: true,
            ad: true,
            cd: false,
            edns,
            deadline: Instant::now(),
        };
        q.build().unwrap()
    }

    #[test]
    fn query_carries_edns_do_and_nsid() {
        let m = query(Some(Edns { bufsize: 1232, dnssec_ok: true, nsid: true }));
        let opt = m.opt().expect("an OPT record");
        assert_eq!((opt.udp_payload_size(), opt.dnssec_ok()), (1232, true));
        assert!(opt.opt().first::<Nsid<_>>().is_some_and(|n| n.as_slice().is_empty()));
        assert!(m.header().ad() && m.header().rd() && !m.header().cd());
        assert!(query(None).opt().is_none());
    }

    #[test]
    fn refusal_without_question_matches_only_with_an_error_rcode() {
        let q = query(None);
        let mut reply = q.as_slice()[..12].to_vec();
        reply[2] |= 0x80; // QR
        reply[4..6].copy_from_slice(&[0, 0]); // QDCOUNT 0
        let mut refused = reply.clone();
        refused[3] = (refused[3] & 0xf0) | 5;
        let r = matching_reply(refused, &q).unwrap();
        assert_eq!(r.header().rcode(), Rcode::REFUSED);
        // NOERROR without the question answers nothing.
        assert_eq!(matching_reply(reply.clone(), &q).unwrap_err().reason, "dns-bad-reply");
        // Another ID, even refusing, is not ours.
        let mut other = reply;
        other[0] ^= 0xff;
        other[3] |= 5;
        assert!(matching_reply(other, &q).unwrap_err().detail.contains("ID"));
    }

    #[test]
    fn only_refusals_without_records_may_lack_the_question() {
        let q = query(None);
        let mut bare = q.as_slice()[..12].to_vec();
        bare[2] |= 0x80; // QR
        bare[4..6].copy_from_slice(&[0, 0]); // QDCOUNT 0
        let with_rcode = |rcode: u8| {
            let mut r = bare.clone();
            r[3] = (r[3] & 0xf0) | rcode;
            r
        };
        for rcode in [Rcode::REFUSED, Rcode::FORMERR, Rcode::NOTIMP] {
            let r = matching_reply(with_rcode(rcode.to_int()), &q).unwrap();
            assert_eq!(r.header().rcode(), rcode);
        }
        // An NXDOMAIN or SERVFAIL without the question says nothing about ours.
        for rcode in [Rcode::NXDOMAIN, Rcode::SERVFAIL] {
            let e = matching_reply(with_rcode(rcode.to_int()), &q).unwrap_err();
            assert_eq!(e.reason, "dns-bad-reply", "{rcode}");
        }
        // A refusal that claims records is not a bare refusal.
        for count in [6, 8] {
            let mut r = with_rcode(Rcode::REFUSED.to_int());
            r[count + 1] = 1; // ANCOUNT or NSCOUNT 1
            assert_eq!(matching_reply(r, &q).unwrap_err().reason, "dns-bad-reply");
        }
    }

    #[test]
    fn nsid_shown_printable() {
        assert_eq!(show_nsid(b"ns1.site-a"), "ns1.site-a");
        assert_eq!(show_nsid(b"\x00\x01\xff"), "0x0001ff");
        assert_eq!(show_nsid(b""), "0x");
        assert!(is_dnssec_ede(6) && !is_dnssec_ede(18));
    }

    #[test]
    fn long_nsids_are_cut_short() {
        let text = show_nsid(&[b'a'; 1000]);
        assert_eq!(text, format!("{}…", "a".repeat(MAX_NSID_SHOWN)));
        let hex = show_nsid(&[0xff; 300]);
        assert_eq!(hex, format!("0x{}…", "ff".repeat(MAX_NSID_SHOWN)));
        // Printable in its first 64 bytes, not after: shown as text, cut.
        let mut mixed = vec![b'b'; MAX_NSID_SHOWN];
        mixed.push(0);
        assert_eq!(show_nsid(&mixed), format!("{}…", "b".repeat(MAX_NSID_SHOWN)));
        let exact = [b'c'; MAX_NSID_SHOWN];
        assert_eq!(show_nsid(&exact), "c".repeat(MAX_NSID_SHOWN));
    }
}
