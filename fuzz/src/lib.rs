//! The bodies of every fuzz target, in one file: each target in
//! `fuzz_targets/` is one line that calls the function of the same name here.
//! Every exaprobe path these bodies call is imported in the `use` block below,
//! so a renamed module is fixed in one place.
//!
//! Each body asserts the properties that matter for its parser, not only that
//! it does not panic: totality, that every error says where, and that whatever
//! a validated value renders for ExaBGP is one line per command.

use std::ffi::OsString;
use std::io::{BufReader, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---- every exaprobe path called by the targets ------------------------------
use exaprobe::cli::{Args, expand_config};
use exaprobe::core::fsm::Advert;
use exaprobe::engine::core::{Answer, Core, Effects};
use exaprobe::exabgp::encoder::{lines, withdraw_all};
use exaprobe::exabgp::{AckMode, Incoming, Stamped, Writer, parse_line, read_lines};
use exaprobe::model::config::load;
use exaprobe::model::service::Service;
use exaprobe::ops::control::{Reply as ControlReply, Request};
use exaprobe::ops::metrics::status_for;
use exaprobe::probe::dns::DnsProbe;
use exaprobe::probe::ntp::{NtpProbe, Reply};
use exaprobe::probe::{Health, Outcome};
// ------------------------------------------------------------------------------

use clap::Parser as _;

/// Every state a service's routes can be asked to take.
const ADVERTS: [Advert; 7] = [
    Advert::Up,
    Advert::Degraded,
    Advert::Down,
    Advert::Disabled,
    Advert::Suppressed,
    Advert::Draining,
    Advert::Drained,
];

fn one_line(what: &str, s: &str) {
    assert!(!s.contains(['\n', '\r']), "{what} spans lines: {s:?}");
}

/// What every validated service must satisfy: it has prefixes, and in every
/// state it renders one ExaBGP command per prefix, each a single line.
fn check_service(s: &Service) {
    assert!(!s.prefixes.is_empty(), "service {:?} without prefixes", s.name);
    one_line("service name", &s.name);
    for advert in ADVERTS {
        let rendered = lines(s, advert);
        assert_eq!(rendered.len(), s.prefixes.len(), "{advert:?}: one line per prefix");
        for l in &rendered {
            one_line("command", l);
            // `neighbor A, neighbor B announce route …` or `announce route …`.
            let command = ["announce route ", "withdraw route "]
                .iter()
                .any(|c| l.starts_with(c) || (l.starts_with("neighbor ") && l.contains(&format!(" {c}"))));
            assert!(command, "not a route command: {l:?}");
        }
    }
    for l in withdraw_all(s) {
        one_line("withdraw", &l);
    }
}

fn check_outcome(o: &Outcome) {
    assert!(!o.reason.is_empty(), "outcome without a reason");
    one_line("reason", &o.reason);
    one_line("detail", &o.detail);
}

/// `exaprobe::model::config::load`: the JSON config parser and validator.
/// Either services (each renders clean lines; names and prefixes unique) or
/// at least one error, each with a JSON path or a line.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match load(&text) {
        Ok(c) => {
            let mut names = std::collections::HashSet::new();
            let mut prefixes = std::collections::HashSet::new();
            for s in &c.services {
                check_service(s);
                assert!(names.insert(s.name.clone()), "two services named {:?}", s.name);
                for p in &s.prefixes {
                    assert!(prefixes.insert(*p), "{p} in two services");
                }
            }
            assert!(c.workers >= 1, "no workers");
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without an error");
            let lines = text.split('\n').count();
            for e in &errors {
                assert!(!e.path.is_empty() || e.line.is_some(), "error says neither where nor which line: {e}");
                assert!(!e.message.is_empty(), "error without a message at {}", e.path);
                assert_eq!(e.line.is_some(), e.column.is_some(), "line without column (or back): {e}");
                if let Some(l) = e.line {
                    assert!(l >= 1 && l <= lines, "line {l} of a {lines}-line text: {e}");
                }
            }
        }
    }
}

/// The flag file, for `-F`/`--config` in the flags target (one per process).
fn flag_file() -> PathBuf {
    std::env::temp_dir().join(format!("exaprobe-fuzz-{}.flags", std::process::id()))
}

/// The flag parser: `expand_config` then clap's `Args` then
/// `Args::settings`. The input is argv joined by NUL bytes; after a
/// `\0\0\0`, the text of the file every `-F`/`--config` names (the fuzzer
/// never chooses a path). Either a service that renders clean lines or
/// errors that each name a flag.
pub fn flags(data: &[u8]) {
    let (argv_bytes, file) = match data.windows(3).position(|w| w == b"\0\0\0") {
        Some(i) => (&data[..i], Some(&data[i + 3..])),
        None => (data, None),
    };
    let path = flag_file();
    let mut argv = vec![OsString::from("exaprobe")];
    if !argv_bytes.is_empty() {
        let mut next_is_path = false;
        for a in argv_bytes.split(|&b| b == 0) {
            let arg = if next_is_path {
                next_is_path = false;
                path.clone().into_os_string()
            } else if a.starts_with(b"--config=") {
                OsString::from(format!("--config={}", path.display()))
            } else {
                next_is_path = a == b"-F" || a == b"--config";
                OsString::from_vec(a.to_vec())
            };
            argv.push(arg);
        }
    }
    if argv.iter().any(|a| a.as_os_str() == path.as_os_str() || a.to_string_lossy().starts_with("--config=")) {
        std::fs::write(&path, file.unwrap_or_default()).expect("writing the flag file");
    }
    let argv = match expand_config(argv) {
        Ok(a) => a,
        Err(e) => {
            // The healthcheck's grammar (cli::compat) names the flag or the
            // word it refuses; a file's problem names --config.
            assert!(e.contains('-') || e.starts_with("unexpected argument "), "expand_config error names no flag: {e}");
            return;
        }
    };
    let Ok(args) = Args::try_parse_from(argv) else { return };
    // Subcommands and JSON configs do not go through `settings`.
    if args.command.is_some() || args.config.is_some() {
        return;
    }
    match args.settings() {
        Ok(s) => check_service(&s.service),
        Err(errors) => {
            assert!(!errors.is_empty(), "rejected without an error");
            for e in &errors {
                assert!(e.starts_with("--"), "error names no flag: {e}");
            }
        }
    }
}

/// The stdin parser: `read_lines` over any bytes is total (one call per
/// line, then one `None`), and `parse_line` depends only on the trimmed line.
pub fn stdin(data: &[u8]) {
    let mut seen = Vec::new();
    // A small buffer, so that lines cross buffer refills.
    read_lines(BufReader::with_capacity(7, data), |l| seen.push(l));
    let expected = data.split(|&b| b == b'\n').count() - usize::from(data.is_empty() || data.ends_with(b"\n"));
    assert_eq!(seen.len(), expected + 1, "one call per line plus the end");
    assert_eq!(seen.last(), Some(&None), "the end is reported last");
    for (i, l) in seen.iter().enumerate() {
        assert_eq!(l.is_none(), i == expected, "None only at the end");
        if let Some(Stamped { incoming: incoming @ (Incoming::Neighbor(s) | Incoming::Other(s)), .. }) = l {
            assert!(!s.contains('\n'), "a line with a newline: {s:?}");
            assert_eq!(s.trim(), s, "kept untrimmed: {s:?}");
            assert_eq!(&parse_line(s), incoming, "reparsing changed the class");
        }
    }
}

/// The probes the DNS target judges replies for (flag form).
const DNS_PROBES: [&str; 8] = [
    "127.0.0.1 example.com A answer=192.0.2.1",
    "127.0.0.1 example.com AAAA answer=2001:db8::1",
    "127.0.0.1 example.com TXT answer=v=spf1",
    "127.0.0.1 example.com MX answer=mail.example.com",
    "127.0.0.1 nonexistent.example.com A rcode=NXDOMAIN",
    "127.0.0.1 example.com SOA",
    // Last, so that the seeds' first byte still picks the probes above.
    // EDNS: NSID, DO/AD, AA, NODATA, extended errors; class CH.
    "127.0.0.1 example.com A nsid=site-a dnssec ad aa nodata=down",
    "127.0.0.1 id.server class=CH answer=site-a",
];

/// The ID of the DNS target's query; seeds carry it.
pub const DNS_ID: u16 = 0xbeef;

/// The DNS reply decoder, `DnsProbe::check_reply`: byte 0 picks a probe
/// from [`DNS_PROBES`], the rest is the reply to a query with ID
/// [`DNS_ID`]. The outcome is down or healthy with a known reason, on one
/// line; healthy needs the reply's ID.
pub fn dns_reply(data: &[u8]) {
    static PROBES: OnceLock<Vec<DnsProbe>> = OnceLock::new();
    let probes = PROBES.get_or_init(|| DNS_PROBES.iter().map(|s| s.parse().expect("a valid probe")).collect());
    let Some((&pick, reply)) = data.split_first() else { return };
    let probe = &probes[usize::from(pick) % probes.len()];
    let o = probe.check_reply(DNS_ID, reply.to_vec());
    check_outcome(&o);
    if let Some(who) = &o.identity {
        // The server's NSID, shown in status and logs: bounded, printable.
        assert!(who.chars().count() <= exaprobe::probe::IDENTITY_MAX, "long identity: {o:?}");
        assert!(who.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "unprintable identity: {o:?}");
    }
    assert!(o.detail.chars().count() <= 200 || !o.reason.starts_with("dns-rcode"), "long detail: {o:?}");
    match o.health {
        Health::Healthy => {
            assert_eq!(o.reason, format!("dns-rcode {}", probe.rcode));
            assert_eq!(reply.get(..2), Some(&DNS_ID.to_be_bytes()[..]), "healthy with another ID");
        }
        Health::Down => assert!(
            [
                "dns-rcode ",
                "dns-answer-missing",
                "dns-bad-reply",
                "dns-query-failed",
                "dns-bogus",
                "dns-nodata",
                "dns-not-authoritative",
                "dns-not-validated",
                "dns-nsid-missing",
                "dns-nsid-mismatch",
            ]
            .iter()
            .any(|r| o.reason.starts_with(r)),
            "unknown reason {:?}",
            o.reason
        ),
        Health::Degraded => panic!("a reply judged degraded: {o:?}"),
    }
}

/// The probes the NTP target judges replies for (flag form).
const NTP_PROBES: [&str; 3] =
    ["127.0.0.1", "127.0.0.1 max-stratum=3 max-offset=100ms max-dispersion=1s", "[::1]:123 max-stratum=1"];

/// The NTP reply decoder, `Reply::parse` then `NtpProbe::judge`: byte 0
/// picks a probe from [`NTP_PROBES`], bytes 1..17 are the send and receive
/// times, the rest is the reply. A reply of 48 bytes or more is decoded;
/// healthy only if it is a synchronised server reply within the bounds.
pub fn ntp_reply(data: &[u8]) {
    static PROBES: OnceLock<Vec<NtpProbe>> = OnceLock::new();
    let probes = PROBES.get_or_init(|| NTP_PROBES.iter().map(|s| s.parse().expect("a valid probe")).collect());
    if data.len() < 17 {
        return;
    }
    let probe = &probes[usize::from(data[0]) % probes.len()];
    let t1 = u64::from_be_bytes(data[1..9].try_into().unwrap());
    let t4 = u64::from_be_bytes(data[9..17].try_into().unwrap());
    let bytes = &data[17..];
    let Some(reply) = Reply::parse(bytes) else {
        assert!(bytes.len() < 48, "a {}-byte reply refused", bytes.len());
        return;
    };
    assert!(bytes.len() >= 48, "a {}-byte reply decoded", bytes.len());
    assert!(reply.leap < 4 && reply.version < 8 && reply.mode < 8);
    let code = reply.kiss_code();
    assert!(!code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric()), "kiss code {code:?}");
    assert!(!reply.reference().chars().any(char::is_control));
    let o = probe.judge(&reply, t1, t4);
    check_outcome(&o);
    match o.health {
        Health::Healthy => {
            assert_eq!(o.reason, "ntp-synchronised");
            assert_eq!(reply.mode, 4);
            assert!(reply.stratum >= 1 && reply.stratum <= probe.max_stratum && reply.leap != 3);
            assert_ne!(reply.transmit, 0);
        }
        Health::Down => assert!(o.reason.starts_with("ntp-"), "unknown reason {:?}", o.reason),
        Health::Degraded => panic!("a reply judged degraded: {o:?}"),
    }
}

/// A writer whose bytes the target can still read after the core took it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The services the control target's engine core runs.
const CONTROL_CONFIG: &str = r#"{"services": [
  {"name": "dns", "prefixes": ["198.51.100.53/32", "2001:db8::53/128"], "next_hop6": "2001:db8::1",
   "checks": [{"type": "tcp", "address": "127.0.0.1:53"}]},
  {"name": "web", "prefixes": ["198.51.100.80/32"], "on_down": "withdraw",
   "checks": [{"type": "tcp", "address": "127.0.0.1:80"}]}
]}"#;

/// The control request parser and what the server does with each line:
/// `serde_json::from_str::<Request>`, then the engine core's
/// `Core::control`. Never a panic on any bytes; every reply is one JSON
/// line with a boolean `ok` (and an `error` when false); every line the
/// core writes for ExaBGP is one command.
pub fn control(data: &[u8]) {
    static SERVICES: OnceLock<Vec<Service>> = OnceLock::new();
    let services = SERVICES.get_or_init(|| load(CONTROL_CONFIG).expect("a valid config").services);
    let out = Shared::default();
    let now = Instant::now();
    let writer = Writer::new(out.clone(), AckMode::NoWait).expect("the writer's sink thread");
    let mut core = Core::new(writer, services.clone(), now);
    // The server reads lines of valid UTF-8 (read_line stops at the rest).
    for line in data.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else { break };
        let reply = match serde_json::from_str::<Request>(line) {
            Err(e) => ControlReply::error(format!("bad request: {e}")),
            Ok(request) => {
                let mut fx = Effects::default();
                match core.control(request, now, 1_700_000_000.0, &mut fx).expect("control on an in-memory writer") {
                    Answer::Now(reply) => reply,
                    // Only a guarded drain waits for the store; this config has no fleet.
                    Answer::Later(id) => panic!("a reply deferred ({id}) without a fleet"),
                }
            }
        };
        let reply = serde_json::to_value(&reply).expect("a reply is JSON");
        assert!(reply["ok"].is_boolean(), "reply without ok: {reply}");
        if reply["ok"] == false {
            assert!(reply["error"].is_string(), "failed reply without error: {reply}");
        }
        one_line("reply", &reply.to_string());
    }
    assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)), "the writer's sink is stuck");
    let written = out.0.lock().unwrap();
    let written = std::str::from_utf8(&written).expect("ExaBGP lines are UTF-8");
    for l in written.lines() {
        one_line("command", l);
        assert!(!l.is_empty(), "an empty command line");
    }
}

/// The metrics HTTP request parser, `status_for`: a status among 200, 400,
/// 404 and 405; 200 only for `GET`/`HEAD` of `/metrics` over HTTP/1.x;
/// bytes after the head change nothing.
pub fn metrics_request(data: &[u8]) {
    let status = status_for(data);
    assert!(matches!(status, 200 | 400 | 404 | 405), "status {status}");
    if status == 200 {
        assert!(data.starts_with(b"GET /metrics") || data.starts_with(b"HEAD /metrics"), "200 for {data:?}");
    }
    if status != 400 {
        let first = data.split(|&b| b == b'\n').next().unwrap_or_default();
        let first = first.strip_suffix(b"\r").unwrap_or(first);
        assert!(first.ends_with(b" HTTP/1.0") || first.ends_with(b" HTTP/1.1"), "{status} for {data:?}");
        let mut more = data.to_vec();
        more.extend_from_slice(b"GET /x HTTP/1.1\r\n\xff\r\n\r\n");
        assert_eq!(status_for(&more), status, "bytes after the head changed the answer");
    }
}

/// The bodies over the seed corpus (`cargo test` in fuzz/, on stable too):
/// every seed passes its target, and the seeds that stand for a good reply
/// or run line are judged good, so the fuzzer starts from the accepted paths.
#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        out.sort();
        assert!(!out.is_empty(), "no seeds for {target}");
        out
    }

    #[test]
    fn every_seed_passes_its_target() {
        type Body = fn(&[u8]);
        let bodies: [(&str, Body); 7] = [
            ("config", config),
            ("flags", flags),
            ("stdin", stdin),
            ("dns_reply", dns_reply),
            ("ntp_reply", ntp_reply),
            ("control", control),
            ("metrics_request", metrics_request),
        ];
        for (target, body) in bodies {
            for (name, data) in seeds(target) {
                eprintln!("{target}/{name}");
                body(&data);
            }
        }
    }

    #[test]
    fn good_seeds_are_accepted() {
        for (name, data) in seeds("config") {
            if name.ends_with(".json") && !name.starts_with("bad") && !name.starts_with("syntax") {
                assert!(load(&String::from_utf8(data).unwrap()).is_ok(), "{name}");
            }
        }
        let probes: Vec<DnsProbe> = DNS_PROBES.iter().map(|s| s.parse().unwrap()).collect();
        for (name, data) in seeds("dns_reply") {
            let o = probes[usize::from(data[0]) % probes.len()].check_reply(DNS_ID, data[1..].to_vec());
            let good = ["a", "aaaa", "txt", "mx", "nxdomain", "soa"].contains(&name.as_str());
            assert_eq!(o.health == Health::Healthy, good, "{name}: {o:?}");
        }
        let probes: Vec<NtpProbe> = NTP_PROBES.iter().map(|s| s.parse().unwrap()).collect();
        for (name, data) in seeds("ntp_reply") {
            let Some(reply) = Reply::parse(&data[17..]) else { continue };
            let t = |i: usize| u64::from_be_bytes(data[i..i + 8].try_into().unwrap());
            let o = probes[usize::from(data[0]) % probes.len()].judge(&reply, t(1), t(9));
            let good = ["chrony", "bounded", "stratum1-gps"].contains(&name.as_str());
            assert_eq!(o.health == Health::Healthy, good, "{name}: {o:?}");
        }
        for (name, data) in seeds("flags") {
            // The run lines of a single service (the others are subcommands, --config).
            if name.starts_with("run-") && data.windows(4).any(|w| w == b"--ip") {
                let argv = std::iter::once("exaprobe").chain(std::str::from_utf8(&data).unwrap().split('\0'));
                let args = Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(args.settings().is_ok(), "{name}: {:?}", args.settings().err());
            }
        }
        assert_eq!(status_for(&seeds("metrics_request")[1].1), 200);
    }
}
