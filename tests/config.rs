//! The JSON config file: each bad input gives its own error at its JSON
//! path, several errors come in one report, defaults merge under services,
//! the shipped examples load, and `check`'s lints and RPKI origin validation
//! say what they should.

use std::time::Duration;

use exaprobe::core::dampening::Dampening;
use exaprobe::core::fsm::{Advert, Require};
use exaprobe::lint::{self, Validity};
use exaprobe::model::bgp::{Community, NextHop};
use exaprobe::model::config::{self, Config, ConfigError};
use exaprobe::model::service::{Action, OnFail};

/// One service with the given extra keys (a JSON fragment, may be empty).
fn one(extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!(r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"]{sep}{extra}}}]}}"#)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match config::load(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

fn ok(text: &str) -> Config {
    config::load(text).unwrap_or_else(|e| panic!("rejected:\n{text}\n{}", show(&e)))
}

fn show(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

#[test]
fn each_bad_input_gives_its_error_at_its_path() {
    let two_services = |a: &str, b: &str| {
        format!(
            r#"{{"services": [{{"name": "a", "prefixes": ["198.51.100.1/32"]{a}}}, {{"name": "b", "prefixes": ["198.51.100.2/32"]{b}}}]}}"#
        )
    };
    let table: Vec<(&str, String, &str, &str)> = vec![
        (
            "unknown key in a check",
            two_services("", r#", "checks": [{"type": "tcp", "address": "127.0.0.1:53", "adress": "x"}]"#),
            "services[1].checks[0]",
            "unknown key `adress`; the keys here are: type, _comment, timeout, rise, fall, on_fail, address",
        ),
        ("unknown key in a service", one(r#""intervall": 5"#), "services[0]", "unknown key `intervall`"),
        ("duplicate key", one(r#""rise": 2, "rise": 3"#), "services[0]", "duplicate key `rise`"),
        ("unknown top-level key", r#"{"service": []}"#.into(), "service", "unknown key `service`"),
        ("missing services", r#"{}"#.into(), "services", "missing"),
        (
            "host bits",
            one(r#""checks": []"#).replace("198.51.100.1/32", "198.51.100.1/24"),
            "services[0].prefixes[0]",
            "did you mean 198.51.100.0/24?",
        ),
        ("no prefixes", one("").replace(r#"["198.51.100.1/32"]"#, "[]"), "services[0].prefixes", "empty"),
        (
            "duplicate name",
            two_services("", "").replace(r#""name": "b""#, r#""name": "a""#),
            "services[1].name",
            "\"a\" is also the name of services[0]",
        ),
        (
            "same prefix in two services",
            two_services("", "").replace("198.51.100.2/32", "198.51.100.1/32"),
            "services[1].prefixes[0]",
            "198.51.100.1/32 is also announced by service \"a\" (services[0])",
        ),
        ("bad name", one("").replace(r#""web""#, r#""web server""#), "services[0].name", "is not a name"),
        ("name with a newline", one("").replace(r#""web""#, r#""web\nannounce""#), "services[0].name", "not a name"),
        ("bad duration", one(r#""timeout": "2x""#), "services[0].timeout", "\"2x\" is not a duration"),
        ("zero interval", one(r#""interval": 0"#), "services[0].interval", "more than 0"),
        ("rise 0", one(r#""rise": 0"#), "services[0].rise", "must be at least 1"),
        (
            "check fall 0",
            one(r#""checks": [{"type": "tcp", "address": "127.0.0.1:80", "fall": 0}]"#),
            "services[0].checks[0].fall",
            "must be at least 1",
        ),
        (
            "IPv6 prefix with only an IPv4 next hop",
            one(r#""next_hop": "198.51.100.254""#).replace("198.51.100.1/32", "2001:db8::1/128"),
            "services[0].next_hop6",
            "2001:db8::1/128 is IPv6 and next_hop 198.51.100.254 is IPv4: give next_hop6",
        ),
        (
            "IPv4 prefix with an IPv6 next hop",
            one(r#""next_hop": "2001:db8::1""#),
            "services[0].next_hop",
            "2001:db8::1 is IPv6 but 198.51.100.1/32 is IPv4",
        ),
        ("IPv4 next_hop6", one(r#""next_hop6": "198.51.100.254""#), "services[0].next_hop6", "is an IPv4 address"),
        (
            "bad community",
            one(r#""attributes": {"communities": ["65536:1"]}"#),
            "services[0].attributes.communities[0]",
            "is not a community",
        ),
        (
            "newline in a community",
            one(r#""attributes": {"communities": ["65000:1\nwithdraw route 198.51.100.1/32"]}"#),
            "services[0].attributes.communities[0]",
            "is not a community",
        ),
        (
            "bad large community",
            one(r#""attributes": {"large_communities": ["1:2"]}"#),
            "services[0].attributes.large_communities[0]",
            "not a large community",
        ),
        ("bad as-path", one(r#""attributes": {"as_path": "65001 x"}"#), "services[0].attributes.as_path", "\"x\""),
        ("bad origin", one(r#""attributes": {"origin": "bgp"}"#), "services[0].attributes.origin", "not an origin"),
        ("path id in a state", one(r#""degraded": {"path_id": 2}"#), "services[0].degraded.path_id", "per service"),
        (
            "require too big",
            one(r#""require": 2, "checks": [{"type": "tcp", "address": "127.0.0.1:80"}]"#),
            "services[0].require",
            "2 is not between 1 and the number of checks (1)",
        ),
        ("bad require", one(r#""require": "most""#), "services[0].require", "expected \"all\", \"any\""),
        (
            "bad probe field, through the builder",
            one(r#""checks": [{"type": "http", "url": "http://127.0.0.1/", "body_regex": "("}]"#),
            "services[0].checks[0].body_regex",
            "",
        ),
        (
            "host name in a tcp address",
            one(r#""checks": [{"type": "tcp", "address": "example.com:80"}]"#),
            "services[0].checks[0].address",
            "host names are not resolved",
        ),
        (
            "dns without a query",
            one(r#""checks": [{"type": "dns", "server": "127.0.0.1"}]"#),
            "services[0].checks[0]",
            "missing key `query`",
        ),
        (
            "ntp stratum",
            one(r#""checks": [{"type": "ntp", "max_stratum": 16}]"#),
            "services[0].checks[0].max_stratum",
            "not a stratum",
        ),
        (
            "command with argv and shell",
            one(r#""checks": [{"type": "command", "argv": ["/bin/true"], "shell": "true"}]"#),
            "services[0].checks[0]",
            "either argv or shell",
        ),
        (
            "empty command",
            one(r#""checks": [{"type": "command", "argv": [""]}]"#),
            "services[0].checks[0].argv",
            "give the program",
        ),
        (
            "unknown check type",
            one(r#""checks": [{"type": "smtp"}]"#),
            "services[0].checks[0].type",
            "unknown check type \"smtp\"",
        ),
        (
            "probe key on a file check",
            one(r#""checks": [{"type": "file", "path": "/x", "timeout": 1}]"#),
            "services[0].checks[0]",
            "unknown key `timeout`",
        ),
        (
            "an array where an object belongs",
            one(r#""attributes": [100]"#),
            "services[0].attributes",
            "expected an object",
        ),
        ("bad on_down", one(r#""on_down": "announce""#), "services[0].on_down", ""),
        (
            "reuse above suppress",
            one(r#""dampening": {"reuse": 3000}"#),
            "services[0].dampening",
            "reuse (3000) must be below suppress",
        ),
        ("covering that covers nothing", one(r#""covering": "2001:db8::/32""#), "services[0].covering", "covers none"),
        (r#"bad control mode"#, r#"{"services": [], "control": {"mode": "0666"}}"#.into(), "control.mode", "0600"),
        ("control as a list", r#"{"services": [], "control": ["/x"]}"#.into(), "control", "expected an object"),
        ("workers 0", r#"{"services": [], "workers": 0}"#.into(), "workers", "between 1 and 256"),
        ("origin AS", r#"{"services": [], "origin_as": "ASx"}"#.into(), "origin_as", "not an AS number"),
        ("bad listen", r#"{"services": [], "metrics": {"listen": "localhost"}}"#.into(), "metrics.listen", "IP:PORT"),
    ];
    for (what, text, path, needle) in table {
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.path.starts_with(path) && e.message.contains(needle)),
            "{what}: no error at {path:?} containing {needle:?} in:\n{}",
            show(&errs)
        );
    }
}

#[test]
fn syntax_and_shape_errors_have_line_and_column() {
    let errs = errors("{\"services\": [\n  {\"name\": \"a\",\n   \"prefixes\" [\"198.51.100.1/32\"]}]}");
    assert_eq!(errs.len(), 1, "{}", show(&errs));
    assert_eq!((errs[0].line, errs[0].column), (Some(3), Some(15)), "{}", errs[0]);
    assert!(errs[0].to_string().ends_with("(line 3, column 15)"), "{}", errs[0]);

    // A bad key deep in the second service: the position is in the whole file.
    let text = "{\"services\": [\n{\"name\": \"a\", \"prefixes\": [\"198.51.100.1/32\"]},\n\
                {\"name\": \"b\", \"prefixes\": [\"198.51.100.2/32\"],\n \"checks\": [{\"type\": \"tcp\", \"bogus\": 1}]}]}";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{}", show(&errs));
    assert_eq!(errs[0].line, Some(4), "{}", errs[0]);
    assert!(errs[0].to_string().starts_with("services[1].checks[0].bogus: unknown key `bogus`"), "{}", errs[0]);
}

#[test]
fn semantic_errors_display_as_path_and_message() {
    let errs = errors(&one(r#""timeout": "2x""#));
    assert_eq!(errs[0].line, None);
    assert!(errs[0].to_string().starts_with(r#"services[0].timeout: "2x" is not a duration ("#), "{}", errs[0]);
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = r#"{
      "bogus": true,
      "defaults": {"interval": "soon"},
      "services": [
        {"name": "a", "prefixes": ["198.51.100.1/24"], "rise": 0,
         "attributes": {"communities": ["65000:1", "x"]},
         "checks": [{"type": "tcp", "address": "127.0.0.1:80", "typo": 1},
                    {"type": "http", "url": "ftp://127.0.0.1/"}]},
        {"name": "a", "prefixes": ["2001:db8::/48"], "sned": 1},
        {"name": "c", "prefixes": ["2001:db8::/48"], "next_hop": "2001:db8::1"}
      ],
      "workers": 1000
    }"#;
    let errs = errors(text);
    let all = show(&errs);
    for needle in [
        "bogus: unknown key `bogus`",
        "defaults.interval: \"soon\" is not a duration",
        "workers: 1000 is not between 1 and 256",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }

    // With readable defaults, the services' own errors all come too.
    let fixed = text.replace(r#""soon""#, r#""5s""#);
    let all = show(&errors(&fixed));
    for needle in [
        "bogus: unknown key `bogus`",
        "services[0].prefixes[0]: \"198.51.100.1/24\" has host bits set",
        "services[0].rise: must be at least 1",
        "services[0].attributes.communities[1]: \"x\" is not a community",
        "services[0].checks[0].typo: unknown key `typo`",
        "services[0].checks[1].url: ",
        "services[1].sned: unknown key `sned`",
        "services[2].prefixes[0]: 2001:db8::/48 is also announced by service \"a\" (services[1])",
        "workers: 1000",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    // An error in the defaults is reported once, not once per service.
    let text = r#"{"defaults": {"attributes": {"communities": ["bad"]}}, "services": [
        {"name": "a", "prefixes": ["198.51.100.1/32"]}, {"name": "b", "prefixes": ["198.51.100.2/32"]}]}"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{}", show(&errs));
    assert_eq!(errs[0].path, "defaults.attributes.communities[0]");
}

#[test]
fn defaults_merge_under_services() {
    let c = ok(r#"{
      "defaults": {
        "_comment": "shared",
        "interval": "2s", "rise": 2, "next_hop6": "2001:db8:ffff::1",
        "attributes": {"communities": ["64500:1"], "local_preference": 200},
        "checks": [{"type": "tcp", "address": "127.0.0.1:80"}]
      },
      "services": [
        {"name": "a", "prefixes": ["198.51.100.1/32", "2001:db8:1::/48"], "_comment": "uses the defaults"},
        {"name": "b", "prefixes": ["198.51.100.2/32"], "rise": 5, "attributes": {"med": 50},
         "checks": [{"type": "tcp", "address": "127.0.0.1:81"}, {"type": "tcp", "address": "127.0.0.1:82"}]}
      ]
    }"#);
    let (a, b) = (&c.services[0], &c.services[1]);
    assert_eq!(a.timing.interval, Duration::from_secs(2));
    assert_eq!(a.timing.rise.get(), 2);
    assert_eq!(b.timing.rise.get(), 5, "the service's own key wins");
    assert_eq!(a.next_hop6, Some("2001:db8:ffff::1".parse::<NextHop>().unwrap()));
    assert_eq!(a.checks.len(), 1);
    assert_eq!(b.checks.len(), 2);
    // attributes are merged key by key.
    assert_eq!(b.up.med, Some(50));
    assert_eq!(b.up.local_preference, Some(200));
    assert_eq!(b.up.communities, ["64500:1".parse::<Community>().unwrap()]);
    assert_eq!(a.up.med, Some(100), "default MED");
    assert_eq!(c.workers, 3, "one per check");
}

#[test]
fn config_file_defaults() {
    let c = ok(&one(""));
    let s = &c.services[0];
    let t = &s.timing;
    assert_eq!((t.interval, t.fast_interval, t.timeout), (secs(5), secs(1), secs(2)));
    assert_eq!((t.rise.get(), t.fall.get(), t.reassert), (3, 3, Some(secs(300))));
    assert_eq!(s.next_hop, NextHop::Own);
    assert_eq!(s.require, Require::All);
    assert_eq!((s.up.med, s.degraded.med, s.med_increase), (Some(100), Some(200), 0));
    assert_eq!((&s.down, &s.disabled), (&Action::Withdraw, &Action::Withdraw));
    assert_eq!(s.dampening, Some(Dampening::RECOMMENDED));
    assert!(s.drain.attributes.communities.contains(&Community::GRACEFUL_SHUTDOWN));
    assert_eq!(s.drain.stage, secs(30));
    assert_eq!(c.workers, 1);
    assert_eq!(c.control.socket.to_str(), Some(config::DEFAULT_SOCKET));
    assert_eq!(c.control.mode, 0o600);
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.warnings, ["services[0].checks: no checks: the service always counts as healthy"]);

    // A short interval gets a timeout below it.
    let t = ok(&one(r#""interval": "1s""#)).services[0].timing.clone();
    assert_eq!((t.timeout, t.fast_interval), (Duration::from_millis(500), secs(1)));
}

#[test]
fn states_and_checks() {
    let c = ok(&one(r#""attributes": {"med": 10, "communities": ["64500:1"], "as_path": [64500], "path_id": 7},
           "degraded": {"as_path": "64500 64500 64500"},
           "on_down": {"announce": {"med": 1000}},
           "disabled": "withdraw",
           "dampening": false,
           "drain": {"communities": ["64500:666"], "med": 900, "duration": 0},
           "require": "any",
           "checks": [
             {"type": "tcp", "address": "127.0.0.1:25", "expect": "220", "rise": 2, "on_fail": "degrade"},
             {"type": "command", "argv": ["/bin/true"], "exit_codes": "zero-is-healthy", "timeout": "1s"},
             {"type": "file", "path": "/run/maint"}
           ],
           "disable_file": "/run/maint2""#));
    let s = &c.services[0];
    assert_eq!(s.path_id, Some(7));
    assert_eq!(s.degraded.med, Some(110), "the UP MED + 100");
    assert_eq!(s.degraded.communities, s.up.communities, "inherited");
    assert_eq!(s.degraded.as_path.as_ref().unwrap().0, [64500, 64500, 64500]);
    let Action::Announce(down) = &s.down else { panic!("down should announce") };
    assert_eq!((down.med, &down.communities), (Some(1000), &s.up.communities));
    assert_eq!(s.dampening, None);
    assert_eq!(s.drain.attributes.med, Some(900));
    assert_eq!(s.drain.attributes.communities.len(), 2, "the UP communities plus the drain's");
    assert_eq!(s.drain.stage, Duration::ZERO);
    assert_eq!(s.require, Require::Any);
    assert_eq!(s.checks.len(), 2, "the file check is a maintenance file, not a probe");
    assert_eq!(s.checks[0].on_fail, OnFail::Degrade);
    assert_eq!(s.checks[0].rise.map(|r| r.get()), Some(2));
    assert_eq!(s.checks[1].timeout, Some(secs(1)));
    let files: Vec<_> = s.disable_files.iter().map(|p| p.to_str().unwrap()).collect();
    assert_eq!(files, ["/run/maint", "/run/maint2"]);
    let up = exaprobe::exabgp::encoder::lines(s, Advert::Up);
    assert_eq!(
        up,
        [
            "announce route 198.51.100.1/32 next-hop self med 10 community [ 64500:1 ] as-path [ 64500 ] path-information 7"
        ]
    );
}

#[test]
fn warnings_for_what_works_but_is_probably_wrong() {
    let c = ok(r#"{"services": [], "metrics": {"listen": "0.0.0.0:9180", "textfile": "metrics.prom"},
                  "control": {"group": "exaprobe"}}"#);
    let all = c.warnings.join("\n");
    for needle in [
        "metrics.listen: 0.0.0.0:9180 is not a loopback address",
        "metrics.textfile: \"metrics.prom\" is relative",
        "control.group: has no effect with mode \"0600\"",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

fn example(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn the_examples_load_and_lint_clean() {
    for name in [
        "examples/dns-resolver.json",
        "examples/ntp.json",
        "examples/http-ingress.json",
        "examples/all-services.json",
        "etc/exaprobe.json",
    ] {
        let c = config::load_file(&example(name)).unwrap_or_else(|e| panic!("{name}:\n{}", show(&e)));
        let r = lint::report(&c, None, None);
        assert_eq!((r.errors, r.warnings), (0, 0), "{name}:\n{}", r.text);
        for s in &c.services {
            assert!(s.prefixes.iter().any(|p| p.is_ipv6()) && s.prefixes.iter().any(|p| !p.is_ipv6()), "{name}");
            assert_eq!(c.origin_as, Some(64500), "{name}");
        }
        let conf = name.strip_prefix("examples/").map(|n| n.replace(".json", ".conf"));
        if let Some(conf) = conf {
            let text = std::fs::read_to_string(example(&format!("exabgp-conf/{conf}"))).unwrap();
            let json = conf.replace(".conf", ".json");
            assert!(text.contains(&format!("run /usr/bin/exaprobe --config /etc/exaprobe/{json};")), "{conf}");
            assert!(text.contains("processes [ "), "{conf}");
        }
    }
    let c = config::load_file(&example("etc/exaprobe.json")).unwrap();
    assert!(c.services.is_empty(), "the packaged config announces nothing");

    let c = config::load_file(&example("examples/all-services.json")).unwrap();
    assert_eq!(c.services.len(), 3);
    let ingress = &c.services[2];
    assert_eq!(ingress.checks[1].on_fail, OnFail::Degrade, "http-ingress degrades before it withdraws");
    let degraded = exaprobe::exabgp::encoder::lines(ingress, Advert::Degraded);
    assert!(degraded[0].contains("as-path [ 64500 64500 ]") && degraded[0].contains("64500:200"), "{degraded:?}");
    let r = lint::report(&c, None, None);
    for needle in [
        "service \"dns-resolver\"",
        "    announce route 198.51.100.53/32 next-hop self med 100 community [ 64500:1 64500:53 ]",
        "    announce route 2001:db8:53::/48 next-hop 2001:db8:ffff::53 med 100",
        "  DOWN:\n    withdraw route 198.51.100.53/32\n",
        "  DRAINING (for 30s, then withdrawn):",
        "dns [::1]:53 example.com AAAA tcp",
        "3 service(s), 6 prefix(es), 5 check(s): 0 error(s), 0 warning(s)",
    ] {
        assert!(r.text.contains(needle), "missing {needle:?} in:\n{}", r.text);
    }
}

#[test]
fn lints_long_prefixes_and_remote_checks() {
    let c = ok(&one(
        r#""checks": [{"type": "tcp", "address": "203.0.113.7:80"}, {"type": "dns", "server": "127.0.0.1", "query": "example.com"}]"#,
    ));
    let r = lint::report(&c, None, None);
    assert_eq!((r.errors, r.warnings), (0, 2), "{}", r.text);
    assert!(r.text.contains("198.51.100.1/32 is longer than /24"), "{}", r.text);
    assert!(r.text.contains(r#""covering": "198.51.100.0/24""#), "says how to silence it:\n{}", r.text);
    assert!(r.text.contains("203.0.113.7 is not an address of this host"), "{}", r.text);

    let c = ok(&one(r#""covering": "198.51.100.0/24", "checks": [{"type": "tcp", "address": "127.0.0.2:80"}]"#));
    let r = lint::report(&c, None, None);
    assert_eq!(r.warnings, 0, "covering silences it; all of 127/8 is local:\n{}", r.text);

    let c = ok(r#"{"services": [{"name": "v6", "prefixes": ["2001:db8::/56"], "next_hop6": "self"}]}"#);
    let r = lint::report(&c, None, None);
    assert!(r.text.contains("2001:db8::/56 is longer than /48"), "{}", r.text);
}

#[test]
fn rpki_origin_validation() {
    let dir = tempfile::tempdir().unwrap();
    let vrps = dir.path().join("vrps.json");
    std::fs::write(
        &vrps,
        r#"{"metadata": {"generated": 1},
            "roas": [
              {"asn": "AS64500", "prefix": "198.51.100.0/25", "maxLength": 32, "ta": "test"},
              {"asn": 64501, "prefix": "198.51.100.128/26", "maxLength": 32, "ta": "test"},
              {"asn": 64500, "prefix": "198.51.100.192/26", "maxLength": 26, "ta": "test"}
            ]}"#,
    )
    .unwrap();
    let vrps = lint::load_vrps(&vrps).unwrap();
    let p = |s: &str| s.parse().unwrap();
    assert!(matches!(lint::validate(&vrps, &p("198.51.100.1/32"), 64500), Validity::Valid(_)));
    let origin = lint::validate(&vrps, &p("198.51.100.129/32"), 64500);
    assert!(
        matches!(&origin, Validity::Invalid(why) if why.contains("AS64500 is not an authorised origin")),
        "{origin}"
    );
    let length = lint::validate(&vrps, &p("198.51.100.193/32"), 64500);
    assert!(matches!(&length, Validity::Invalid(why) if why.contains("longer than the max length")), "{length}");
    assert_eq!(lint::validate(&vrps, &p("2001:db8::/48"), 64500), Validity::NotFound);

    let text = r#"{"origin_as": "AS64500", "services": [
        {"name": "ok", "prefixes": ["198.51.100.1/32"], "covering": "198.51.100.0/24"},
        {"name": "origin", "prefixes": ["198.51.100.129/32"], "covering": "198.51.100.0/24"},
        {"name": "length", "prefixes": ["198.51.100.193/32"], "covering": "198.51.100.0/24"},
        {"name": "unknown", "prefixes": ["2001:db8::/48"], "next_hop6": "self"}]}"#;
    let c = ok(text);
    let r = lint::report(&c, Some(&vrps), None);
    assert_eq!(r.errors, 2, "{}", r.text);
    for needle in [
        "198.51.100.1/32 (ok): valid (VRP 198.51.100.0/25 max 32 AS64500)",
        "198.51.100.129/32 (origin): INVALID: AS64500 is not an authorised origin",
        "198.51.100.193/32 (length): INVALID: /32 is longer than the max length",
        "2001:db8::/48 (unknown): not-found",
        "error: service \"origin\": 198.51.100.129/32 is RPKI-invalid",
    ] {
        assert!(r.text.contains(needle), "missing {needle:?} in:\n{}", r.text);
    }
    // The argument overrides the config's origin AS.
    let r = lint::report(&c, Some(&vrps), Some(64501));
    assert!(r.text.contains("198.51.100.129/32 (origin): valid"), "{}", r.text);

    // VRPs without an origin AS: an error that says what to give.
    let c = ok(&text.replace(r#""origin_as": "AS64500", "#, ""));
    let r = lint::report(&c, Some(&vrps), None);
    assert_eq!(r.errors, 1);
    assert!(r.text.contains("--origin-as"), "{}", r.text);

    assert!(lint::parse_vrps(r#"{"roas": [{"asn": 1, "prefix": "198.51.100.1/24", "maxLength": 24}]}"#).is_err());
    assert!(lint::parse_vrps(r#"{"roas": [{"asn": 1, "prefix": "198.51.100.0/24", "maxLength": 16}]}"#).is_err());
    assert!(lint::parse_vrps("[]").is_err());
    assert_eq!(config::parse_asn("AS64500"), Ok(64500));
    assert!(config::parse_asn("AS0").is_err());
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn every_duration_is_bounded_to_a_year() {
    let tcp = r#""checks": [{"type": "tcp", "address": "127.0.0.1:80", "timeout": 1e19}]"#;
    let ntp = r#""checks": [{"type": "ntp", "max_offset": "300000000000y"}]"#;
    for (text, path) in [
        (one(r#""interval": 1e19"#), "services[0].interval"),
        (one(r#""interval": "300000000000y""#), "services[0].interval"),
        (one(r#""fast_interval": 1e19"#), "services[0].fast_interval"),
        (one(r#""timeout": "10000000000000000000""#), "services[0].timeout"),
        (one(r#""reassert": "366d""#), "services[0].reassert"),
        (one(tcp), "services[0].checks[0].timeout"),
        (one(ntp), "services[0].checks[0].max_offset"),
        (one(r#""drain": {"duration": 1e19}"#), "services[0].drain.duration"),
        (one(r#""dampening": {"max_suppress": 1e19}"#), "services[0].dampening.max_suppress"),
        (one(r#""dampening": {"half_life": "400d"}"#), "services[0].dampening.half_life"),
    ] {
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.path == path && e.message.contains("365 days")),
            "{text}: no bound at {path}:\n{}",
            show(&errs)
        );
    }
    // Within the bound, but a ceiling reuse × 2^(max_suppress / half_life)
    // that no f64 holds: refused, not computed.
    let errs = errors(&one(r#""dampening": {"half_life": "1s", "max_suppress": "365d"}"#));
    assert!(errs[0].path == "services[0].dampening" && errs[0].message.contains("half-lives"), "{}", show(&errs));
    let c = ok(&one(r#""interval": "365d", "timeout": "365d", "reassert": "365d""#));
    assert_eq!(c.services[0].timing.interval, secs(365 * 24 * 3600));
}

#[test]
fn the_timeout_may_equal_the_interval() {
    let c = ok(&one(
        r#""interval": "2s", "timeout": 2, "checks": [{"type": "tcp", "address": "127.0.0.1:80", "timeout": "2s"}]"#,
    ));
    assert_eq!(c.services[0].timing.timeout, secs(2));
    assert_eq!(c.services[0].checks[0].timeout, Some(secs(2)));
}

#[test]
fn ipv6_prefixes_with_next_hop_self_are_a_warning() {
    let c = ok(r#"{"services": [{"name": "v6", "prefixes": ["2001:db8::/48"]}]}"#);
    assert!(
        c.warnings.iter().any(|w| w.starts_with("services[0].next_hop6: 2001:db8::/48 is IPv6 with next hop self")),
        "{:?}",
        c.warnings
    );
    let r = lint::report(&c, None, None);
    assert!(r.text.contains("works only over an IPv6 BGP session"), "{}", r.text);
}

#[test]
fn mapped_prefixes_are_refused_and_default_routes_linted() {
    let errs = errors(&one("").replace("198.51.100.1/32", "::ffff:198.51.100.1/128"));
    assert_eq!(errs[0].path, "services[0].prefixes[0]", "{}", show(&errs));
    assert!(errs[0].message.contains("IPv4-mapped IPv6 prefix: write the IPv4 prefix 198.51.100.1/32"), "{}", errs[0]);
    let c = ok(&one(r#""covering": "0.0.0.0/0""#).replace("198.51.100.1/32", "0.0.0.0/0"));
    let r = lint::report(&c, None, None);
    assert!(r.text.contains("warning: services[0].prefixes[0]: 0.0.0.0/0 is a default route"), "{}", r.text);
}

#[test]
fn json_is_known_by_its_content() {
    // A byte order mark is skipped.
    let c = ok(&format!("\u{feff}{}", one("")));
    assert_eq!(c.services.len(), 1);
    // A top-level array, a comment: JSON errors, with their position.
    let errs = errors("[]");
    assert!(errs[0].message.contains("expected an object"), "{}", show(&errs));
    assert_eq!(errs[0].line, Some(1), "{}", show(&errs));
    let errs = errors("// exaprobe\n{\"services\": []}");
    assert_eq!((errs[0].line, errs[0].column), (Some(1), Some(1)), "{}", show(&errs));
}

#[test]
fn config_files_are_read_only_when_regular_and_small() {
    let errs = config::load_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(errs[0].message.contains("not a regular file"), "{}", show(&errs));
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let errs = config::load_file(&fifo).unwrap_err();
    assert!(errs[0].message.contains("not a regular file"), "{}", show(&errs));
    for vrps in [std::path::Path::new("/dev/zero"), &fifo] {
        let e = lint::load_vrps(vrps).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }
    let big = dir.path().join("big.json");
    std::fs::File::create(&big).unwrap().set_len(5 << 20).unwrap();
    let errs = config::load_file(&big).unwrap_err();
    assert!(errs[0].message.contains("larger than 4 MiB"), "{}", show(&errs));
}

#[test]
fn names_are_at_most_64_characters() {
    let errs = errors(&one("").replace(r#""web""#, &format!("{:?}", "a".repeat(65))));
    assert!(errs[0].message.contains("1-64 characters"), "{}", show(&errs));
    ok(&one("").replace(r#""web""#, &format!("{:?}", "a".repeat(64))));
}

#[test]
fn the_fleet_guard_is_configured_per_process_and_per_service() {
    use exaprobe::model::fleet::ServiceGuard;
    let fleet = r#""fleet": {"etcd": ["http://127.0.0.1:2379"], "site": "ams1", "min_sites": 2, "ttl": "15s"}"#;
    let text = format!(
        r#"{{{fleet}, "defaults": {{"fleet": {{"min_sites": 3}}}}, "services": [
            {{"name": "a", "prefixes": ["198.51.100.1/32"]}},
            {{"name": "b", "prefixes": ["198.51.100.2/32"], "fleet": false}},
            {{"name": "c", "prefixes": ["198.51.100.3/32"], "fleet": true}},
            {{"name": "d", "prefixes": ["198.51.100.4/32"], "fleet": {{"min_sites": 1}}}}]}}"#
    );
    let c = ok(&text);
    let f = c.fleet.as_ref().expect("a fleet");
    assert_eq!((f.site.as_str(), f.min_sites, f.ttl, f.timeout), ("ams1", 2, secs(15), Duration::from_millis(500)));
    assert_eq!(f.prefix, "/exaprobe/");
    let guards: Vec<Option<ServiceGuard>> = c.services.iter().map(|s| s.guard).collect();
    let g = |n| Some(ServiceGuard { min_sites: n });
    // `defaults` applies to a, is overridden by b (off), c (the fleet's own 2), d.
    assert_eq!(guards, [g(3), None, g(2), g(1)]);
    // Without a fleet nothing is guarded, and nothing changes.
    let c = ok(&one(""));
    assert!(c.fleet.is_none() && c.services[0].guard.is_none());
    assert!(ok(&one(r#""fleet": false"#)).services[0].guard.is_none());
}

#[test]
fn fleet_errors_name_their_path() {
    let fleet = |body: &str| format!(r#"{{"fleet": {body}, "services": []}}"#);
    let cases = [
        (one(r#""fleet": {"min_sites": 2}"#), "services[0].fleet.min_sites", "there is no fleet"),
        (one(r#""fleet": true"#), "services[0].fleet", "there is no fleet"),
        (one(r#""fleet": "yes""#), "services[0].fleet", "false, true or"),
        (fleet(r#"{"site": "a"}"#), "fleet.etcd", "missing"),
        (fleet(r#"{"etcd": [], "site": "a"}"#), "fleet.etcd", "missing"),
        (fleet(r#"{"etcd": ["127.0.0.1:2379"], "site": "a"}"#), "fleet.etcd[0]", "not an etcd URL"),
        (fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "ttl": "2h"}"#), "fleet.ttl", "not between"),
        (fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "timeout": "5s"}"#), "fleet.timeout", "not between"),
        (
            fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "min_sites": 1001}"#),
            "fleet.min_sites",
            "more than",
        ),
        (
            fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "sites": 3}"#),
            "fleet.sites",
            "unknown key `sites`",
        ),
        (
            fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "tls": {"crt": "x"}}"#),
            "fleet.tls.crt",
            "unknown key `crt`",
        ),
        (
            fleet(r#"{"etcd": ["http://127.0.0.1:2379"], "site": "a", "auth": {"user": "u"}}"#),
            "fleet.auth.password_file",
            "missing",
        ),
        (fleet(r#"["http://127.0.0.1:2379"]"#), "fleet", "expected an object"),
    ];
    for (text, path, needle) in cases {
        let e = errors(&text);
        assert!(
            e.iter().any(|e| e.path == path && e.message.contains(needle)),
            "{text}\nwanted {path}: {needle}\ngot {}",
            show(&e)
        );
    }
    // An invalid fleet is reported once: its services' guards are judged as with a valid one.
    let text = r#"{"fleet": {"etcd": ["x"], "site": "a"}, "services": [
        {"name": "a", "prefixes": ["198.51.100.1/32"], "fleet": {"min_sites": 2}}]}"#;
    let e = errors(text);
    assert_eq!(e.len(), 1, "{}", show(&e));
    // A per-service min_sites of 0 is refused at its path.
    let text = r#"{"fleet": {"etcd": ["http://127.0.0.1:2379"], "site": "a"}, "services": [
        {"name": "a", "prefixes": ["198.51.100.1/32"], "fleet": {"min_sites": 0}}]}"#;
    let e = errors(text);
    assert!(
        e.iter().any(|e| e.path == "services[0].fleet.min_sites" && e.message.contains("\"fleet\": false")),
        "{}",
        show(&e)
    );
}
