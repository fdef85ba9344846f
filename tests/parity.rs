//! Flags and JSON are two spellings of one service: for every validation
//! rule, the same service written as command-line flags and as a JSON
//! service gives the same `Service`, or the same problem (same message,
//! once setting names are spelt alike) at the flag and at the JSON path.

use clap::Parser;
use exaprobe::cli::Args;
use exaprobe::model::config;
use exaprobe::model::origin::{Origin, Problem, Severity};
use exaprobe::model::service::Service;
use exaprobe::model::validate;
use serde_json::{Value, json};

/// What both spellings must give.
enum Expect {
    /// The same service, with the same warnings.
    Same,
    /// An error at this flag and this JSON path, its message containing this.
    Error(&'static str, &'static str, &'static str),
    /// The same service, and a warning at this flag and this JSON path.
    Warning(&'static str, &'static str, &'static str),
}

struct Row {
    what: &'static str,
    flags: Vec<&'static str>,
    json: Value,
    expect: Expect,
}

fn row(what: &'static str, flags: &[&'static str], json: Value, expect: Expect) -> Row {
    Row { what, flags: flags.to_vec(), json, expect }
}

/// One outcome: the service, if valid, and the problems as
/// (severity, where, message).
type Outcome = (Option<Service>, Vec<(Severity, String, String)>);

fn from_flags(extra: &[&str]) -> Outcome {
    let mut argv = vec!["exaprobe", "--name", "web"];
    if !extra.contains(&"--ip") {
        argv.extend(["--ip", "198.51.100.1/32"]);
    }
    argv.extend(extra);
    let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let (spec, errors) = args.spec();
    assert_eq!(errors, Vec::<String>::new(), "{argv:?}");
    let (service, problems) = validate::service(&spec);
    let problems = problems
        .into_iter()
        .map(|Problem { severity, origin, message }| {
            let Origin::Flag(f) = origin else { panic!("a flag's problem at {origin:?}") };
            (severity, f.to_string(), message)
        })
        .collect();
    (service, problems)
}

/// The flags' defaults, written in JSON (whose own defaults differ: the
/// config file withdraws when down and dampens by default).
fn json_base() -> Value {
    json!({
        "name": "web", "prefixes": ["198.51.100.1/32"],
        "interval": 5, "fast_interval": 1, "timeout": 5, "med_increase": 1,
        "degraded": {"med": 200},
        "on_down": {"announce": {"med": 1000}}, "disabled": {"announce": {"med": 500}},
        "dampening": false
    })
}

fn from_json(extra: &Value) -> Outcome {
    let mut service = json_base();
    for (k, v) in extra.as_object().unwrap() {
        service[k] = v.clone();
    }
    let text = json!({"services": [service]}).to_string();
    match config::load(&text) {
        Ok(mut c) => {
            let warnings = c
                .warnings
                .iter()
                .map(|w| {
                    let (path, message) = w.split_once(": ").unwrap();
                    (Severity::Warning, path.to_string(), message.to_string())
                })
                .collect();
            (Some(c.services.remove(0)), warnings)
        }
        Err(errors) => (None, errors.into_iter().map(|e| (Severity::Error, e.path, e.message)).collect()),
    }
}

/// A message with the flags' names of settings spelt as JSON keys.
fn normal(message: &str) -> String {
    message.replace("--next-hop6", "next_hop6").replace("--next-hop", "next_hop")
}

fn find<'a>(
    problems: &'a [(Severity, String, String)],
    severity: Severity,
    at: &str,
    needle: &str,
) -> Option<&'a String> {
    problems.iter().find(|(s, o, m)| *s == severity && o == at && normal(m).contains(needle)).map(|(_, _, m)| m)
}

#[test]
fn flags_and_json_give_the_same_service_or_the_same_problem() {
    use Expect::*;
    let tcp = |extra: Value| {
        let mut c = json!({"type": "tcp", "address": "127.0.0.1:80"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"checks": [c]})
    };
    let table = vec![
        row("the healthcheck's defaults: timeout = interval = 5s", &[], json!({}), Same),
        row("name", &["--name", "web.1"], json!({"name": "web.1"}), Same),
        row(
            "bad name",
            &["--name", "web server"],
            json!({"name": "web server"}),
            Error("--name", "services[0].name", "is not a name"),
        ),
        row(
            "name with a newline",
            &["--name", "web\nannounce"],
            json!({"name": "web\nannounce"}),
            Error("--name", "services[0].name", "is not a name"),
        ),
        row(
            "name too long",
            &["--name", &*"a".repeat(65).leak()],
            json!({"name": "a".repeat(65)}),
            Error("--name", "services[0].name", "1-64 characters"),
        ),
        row(
            "two prefixes",
            &["--ip", "198.51.100.1/32", "--ip", "2001:db8::1/128", "--next-hop6", "2001:db8::ff"],
            json!({"prefixes": ["198.51.100.1/32", "2001:db8::1/128"], "next_hop6": "2001:db8::ff"}),
            Same,
        ),
        row(
            "host bits",
            &["--ip", "198.51.100.1/24"],
            json!({"prefixes": ["198.51.100.1/24"]}),
            Error("--ip", "services[0].prefixes[0]", "has host bits set"),
        ),
        row(
            "IPv4-mapped IPv6 prefix",
            &["--ip", "::ffff:198.51.100.1/128"],
            json!({"prefixes": ["::ffff:198.51.100.1/128"]}),
            Error("--ip", "services[0].prefixes[0]", "write the IPv4 prefix 198.51.100.1/32"),
        ),
        row(
            "prefix given twice",
            &["--ip", "198.51.100.1/32", "--ip", "198.51.100.1"],
            json!({"prefixes": ["198.51.100.1/32", "198.51.100.1"]}),
            Error("--ip", "services[0].prefixes[1]", "is given twice"),
        ),
        row(
            "default route",
            &["--ip", "0.0.0.0/0"],
            json!({"prefixes": ["0.0.0.0/0"]}),
            Warning("--ip", "services[0].prefixes[0]", "is a default route"),
        ),
        row("interval", &["--interval", "2", "--timeout", "1"], json!({"interval": "2s", "timeout": "1s"}), Same),
        row(
            "interval 0",
            &["--interval", "0"],
            json!({"interval": 0}),
            Error("--interval", "services[0].interval", "must be more than 0"),
        ),
        row(
            "interval of 10^19 s",
            &["--interval", "10000000000000000000"],
            json!({"interval": 1e19}),
            Error("--interval", "services[0].interval", "365 days"),
        ),
        row(
            "interval of 3·10^11 years",
            &["--interval", "300000000000y"],
            json!({"interval": "300000000000y"}),
            Error("--interval", "services[0].interval", "365 days"),
        ),
        row(
            "fast interval 0",
            &["--fast-interval", "0"],
            json!({"fast_interval": 0}),
            Error("--fast-interval", "services[0].fast_interval", "must be more than 0"),
        ),
        row(
            "fast interval too long",
            &["--fast-interval", "400d"],
            json!({"fast_interval": "400d"}),
            Error("--fast-interval", "services[0].fast_interval", "365 days"),
        ),
        row(
            "fast interval above the interval",
            &["--fast-interval", "10"],
            json!({"fast_interval": 10}),
            Warning("--fast-interval", "services[0].fast_interval", "longer than the interval"),
        ),
        row(
            "timeout equal to the interval",
            &["--interval", "2", "--timeout", "2"],
            json!({"interval": 2, "timeout": 2}),
            Same,
        ),
        row(
            "timeout above the interval",
            &["--interval", "2", "--timeout", "3"],
            json!({"interval": 2, "timeout": 3}),
            Warning("--timeout", "services[0].timeout", "3s is longer than the interval (2s)"),
        ),
        row("rise 0", &["--rise", "0"], json!({"rise": 0}), Error("--rise", "services[0].rise", "must be at least 1")),
        row("fall 0", &["--fall", "0"], json!({"fall": 0}), Error("--fall", "services[0].fall", "must be at least 1")),
        row("rise and fall", &["--rise", "5", "--fall", "2"], json!({"rise": 5, "fall": 2}), Same),
        row("reassert never", &["--reassert", "0"], json!({"reassert": 0}), Same),
        row(
            "reassert too long",
            &["--reassert", "366d"],
            json!({"reassert": "366d"}),
            Error("--reassert", "services[0].reassert", "365 days"),
        ),
        row("next hop", &["--next-hop", "198.51.100.254"], json!({"next_hop": "198.51.100.254"}), Same),
        row(
            "IPv6 next hop for an IPv4 prefix",
            &["--next-hop", "2001:db8::1"],
            json!({"next_hop": "2001:db8::1"}),
            Error("--next-hop", "services[0].next_hop", "is IPv6 but 198.51.100.1/32 is IPv4"),
        ),
        row(
            "IPv6 prefix with next-hop self (unified: a warning)",
            &["--ip", "2001:db8::1/128"],
            json!({"prefixes": ["2001:db8::1/128"]}),
            Warning("--next-hop6", "services[0].next_hop6", "works only over an IPv6 BGP session"),
        ),
        row(
            "IPv6 prefix with an IPv4 next hop",
            &["--ip", "2001:db8::1/128", "--next-hop", "198.51.100.254"],
            json!({"prefixes": ["2001:db8::1/128"], "next_hop": "198.51.100.254"}),
            Error("--next-hop6", "services[0].next_hop6", "is IPv4: give next_hop6"),
        ),
        row(
            "IPv4 next_hop6",
            &["--next-hop6", "198.51.100.254"],
            json!({"next_hop6": "198.51.100.254"}),
            Error("--next-hop6", "services[0].next_hop6", "is an IPv4 address"),
        ),
        row("neighbors", &["--neighbor", "192.0.2.1"], json!({"neighbors": ["192.0.2.1"]}), Same),
        row(
            "bad neighbor",
            &["--neighbor", "peer1"],
            json!({"neighbors": ["peer1"]}),
            Error("--neighbor", "services[0].neighbors[0]", "is not an IP address"),
        ),
        row("path id", &["--path-id", "7"], json!({"attributes": {"path_id": 7}}), Same),
        row(
            "attributes",
            &[
                "--community",
                "65000:1 no-export",
                "--large-community",
                "65000:1:1",
                "--extended-community",
                "target:65000:1",
                "--local-preference",
                "200",
                "--as-path",
                "65001 65001",
            ],
            json!({"attributes": {"communities": ["65000:1", "no-export"], "large_communities": ["65000:1:1"],
                   "extended_communities": ["target:65000:1"], "local_preference": 200, "as_path": "65001 65001"}}),
            Same,
        ),
        row(
            "bad community",
            &["--community", "65536:1"],
            json!({"attributes": {"communities": ["65536:1"]}}),
            Error("--community", "services[0].attributes.communities[0]", "is not a community"),
        ),
        row(
            "bad large community",
            &["--large-community", "1:2"],
            json!({"attributes": {"large_communities": ["1:2"]}}),
            Error("--large-community", "services[0].attributes.large_communities[0]", "not a large community"),
        ),
        row(
            "bad extended community",
            &["--extended-community", "bogus"],
            json!({"attributes": {"extended_communities": ["bogus"]}}),
            Error("--extended-community", "services[0].attributes.extended_communities[0]", ""),
        ),
        row(
            "bad AS path",
            &["--as-path", "65001 x"],
            json!({"attributes": {"as_path": "65001 x"}}),
            Error("--as-path", "services[0].attributes.as_path", "\"x\""),
        ),
        row(
            "withdraw when down",
            &["--withdraw-on-down"],
            json!({"on_down": "withdraw", "disabled": "withdraw"}),
            Same,
        ),
        row(
            "metrics",
            &[
                "--up-metric",
                "10",
                "--degraded-metric",
                "20",
                "--down-metric",
                "30",
                "--disabled-metric",
                "40",
                "--increase",
                "0",
            ],
            json!({"attributes": {"med": 10}, "degraded": {"med": 20}, "on_down": {"announce": {"med": 30}},
                   "disabled": {"announce": {"med": 40}}, "med_increase": 0}),
            Same,
        ),
        row("dampening", &["--dampening"], json!({"dampening": true}), Same),
        row(
            "drain",
            &["--drain-duration", "10s", "--drain-on-shutdown"],
            json!({"drain": {"duration": "10s", "on_shutdown": true}}),
            Same,
        ),
        row(
            "drain too long",
            &["--drain-duration", "400d"],
            json!({"drain": {"duration": "400d"}}),
            Error("--drain-duration", "services[0].drain.duration", "365 days"),
        ),
        row("maintenance file", &["--disable", "/run/maint"], json!({"disable_file": "/run/maint"}), Same),
        row(
            "relative maintenance file",
            &["--disable", "maint"],
            json!({"disable_file": "maint"}),
            Warning("--disable", "services[0].disable_file", "is relative"),
        ),
        row(
            "watch sources",
            &[
                "--watch-pid-file",
                "/run/nsd.pid",
                "--watch-listen",
                "127.0.0.1:53",
                "--watch-listen",
                "udp:127.0.0.1:53",
            ],
            json!({"watch": {"pid_file": "/run/nsd.pid", "listen": ["127.0.0.1:53", "udp:127.0.0.1:53"]}}),
            Same,
        ),
        row("one listener", &["--watch-listen", "[::1]:53"], json!({"watch": {"listen": "[::1]:53"}}), Same),
        row("watch a unit", &["--watch-unit", "nsd.service"], json!({"watch": {"unit": "nsd.service"}}), Same),
        row("trust_events off", &["--no-trust-events"], json!({"trust_events": false}), Same),
        row(
            "bad listener",
            &["--watch-listen", "127.0.0.1"],
            json!({"watch": {"listen": "127.0.0.1"}}),
            Error("--watch-listen", "services[0].watch.listen", "is not IP:PORT"),
        ),
        row(
            "listener given twice",
            &["--watch-listen", "127.0.0.1:53", "--watch-listen", "tcp:127.0.0.1:53"],
            json!({"watch": {"listen": ["127.0.0.1:53", "tcp:127.0.0.1:53"]}}),
            Error("--watch-listen", "services[0].watch.listen[1]", "is given twice"),
        ),
        row(
            "listener on port 0",
            &["--watch-listen", "udp:127.0.0.1:0"],
            json!({"watch": {"listen": ["udp:127.0.0.1:0"]}}),
            Error("--watch-listen", "services[0].watch.listen[0]", "port 0"),
        ),
        row(
            "unit without a type",
            &["--watch-unit", "nsd"],
            json!({"watch": {"unit": "nsd"}}),
            Error("--watch-unit", "services[0].watch.unit", "no unit type"),
        ),
        row(
            "relative pid file",
            &["--watch-pid-file", "nsd.pid"],
            json!({"watch": {"pid_file": "nsd.pid"}}),
            Warning("--watch-pid-file", "services[0].watch.pid_file", "is relative"),
        ),
        row(
            "tcp check",
            &["--tcp", "127.0.0.1:80 send=PING expect=PONG"],
            tcp(json!({"send": "PING", "expect": "PONG"})),
            Same,
        ),
        row(
            "tcp host name",
            &["--tcp", "example.com:80"],
            json!({"checks": [{"type": "tcp", "address": "example.com:80"}]}),
            Error("--tcp", "services[0].checks[0].address", "host names are not resolved"),
        ),
        row(
            "check timeout and on-fail",
            &["--tcp", "127.0.0.1:80 timeout=1s on-fail=degrade"],
            tcp(json!({"timeout": "1s", "on_fail": "degrade"})),
            Same,
        ),
        row(
            "check timeout equal to the interval",
            &["--tcp", "127.0.0.1:80 timeout=5"],
            tcp(json!({"timeout": 5})),
            Same,
        ),
        row(
            "check timeout above the interval",
            &["--tcp", "127.0.0.1:80 timeout=10s"],
            tcp(json!({"timeout": "10s"})),
            Warning("--tcp timeout=", "services[0].checks[0].timeout", "10s is longer than the interval (5s)"),
        ),
        row(
            "check timeout 0",
            &["--tcp", "127.0.0.1:80 timeout=0"],
            tcp(json!({"timeout": 0})),
            Error("--tcp timeout=", "services[0].checks[0].timeout", "must be more than 0"),
        ),
        row(
            "check timeout too long",
            &["--tcp", "127.0.0.1:80 timeout=10000000000000000000"],
            tcp(json!({"timeout": 1e19})),
            Error("--tcp timeout=", "services[0].checks[0].timeout", "365 days"),
        ),
        row(
            "http check",
            &["--http", "http://127.0.0.1:8080/health status=200,204 body=ok"],
            json!({"checks": [{"type": "http", "url": "http://127.0.0.1:8080/health", "status": "200,204", "body": "ok"}]}),
            Same,
        ),
        row(
            "bad http regex",
            &["--http", "http://127.0.0.1/ body-regex=("],
            json!({"checks": [{"type": "http", "url": "http://127.0.0.1/", "body_regex": "("}]}),
            Error("--http", "services[0].checks[0].body_regex", ""),
        ),
        row(
            "http headers and redirect pins (issue 12)",
            &[
                "--http",
                "http://127.0.0.1/ request-header=X-A:1 expect-header=X-H:^ok$ follow-redirects resolve=www.example.com:443:127.0.0.2",
            ],
            json!({"checks": [{"type": "http", "url": "http://127.0.0.1/", "request_headers": {"X-A": "1"},
                "expect_headers": {"X-H": "^ok$"}, "follow_redirects": true, "resolve": ["www.example.com:443:127.0.0.2"]}]}),
            Same,
        ),
        row(
            "bad expect-header regex",
            &["--http", "http://127.0.0.1/ expect-header=X-H:("],
            json!({"checks": [{"type": "http", "url": "http://127.0.0.1/", "expect_headers": {"X-H": "("}}]}),
            Error("--http", "services[0].checks[0].expect_headers", ""),
        ),
        row(
            "resolve without follow-redirects",
            &["--http", "http://127.0.0.1/ resolve=www.example.com:443:127.0.0.2"],
            json!({"checks": [{"type": "http", "url": "http://127.0.0.1/", "resolve": ["www.example.com:443:127.0.0.2"]}]}),
            Error("--http", "services[0].checks[0].resolve", "follow-redirects"),
        ),
        row(
            "dns check",
            &["--dns", "127.0.0.1 example.com AAAA tcp"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com", "qtype": "AAAA", "tcp": true}]}),
            Same,
        ),
        row(
            "bad dns type",
            &["--dns", "127.0.0.1 example.com AXFR"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com", "qtype": "AXFR"}]}),
            Error("--dns", "services[0].checks[0].qtype", "cannot be probed"),
        ),
        row(
            "dns check with EDNS, NSID, DNSSEC and AA",
            &["--dns", "127.0.0.1 example.com A bufsize=4096 nsid=site-a dnssec ad aa nodata=down"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com", "bufsize": 4096,
                              "nsid": "site-a", "dnssec": true, "ad": true, "aa": true, "nodata": "down"}]}),
            Same,
        ),
        row(
            "dns check in class CH",
            &["--dns", "127.0.0.1 id.server class=CH nsid edns=off"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "id.server", "class": "CH", "nsid": true,
                              "edns": false}]}),
            Error("--dns", "services[0].checks[0].nsid", "needs EDNS"),
        ),
        row(
            "dns bufsize too small",
            &["--dns", "127.0.0.1 example.com bufsize=100"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com", "bufsize": 100}]}),
            Error("--dns", "services[0].checks[0].bufsize", "512 to 65535"),
        ),
        row(
            "dns over TLS",
            &["--dns", "127.0.0.1 example.com tls tls-name=dns.example.com"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com", "tls": true,
                              "tls_name": "dns.example.com"}]}),
            Same,
        ),
        row(
            "dns over HTTPS",
            &["--dns", "example.com doh=https://127.0.0.1:8443/dns-query method=post"],
            json!({"checks": [{"type": "dns", "query": "example.com", "doh": "https://127.0.0.1:8443/dns-query",
                              "method": "post"}]}),
            Same,
        ),
        row(
            "dns over HTTPS and TCP",
            &["--dns", "example.com tcp doh=https://127.0.0.1/dns-query"],
            json!({"checks": [{"type": "dns", "query": "example.com", "tcp": true, "doh": "https://127.0.0.1/dns-query"}]}),
            Error("--dns", "services[0].checks[0].doh", "one transport only"),
        ),
        row(
            "dns tls-name without TLS",
            &["--dns", "127.0.0.1 example.com tls-name=dns.example.com"],
            json!({"checks": [{"type": "dns", "server": "127.0.0.1", "query": "example.com",
                              "tls_name": "dns.example.com"}]}),
            Error("--dns", "services[0].checks[0].tls_name", "needs tls"),
        ),
        row(
            "ntp check",
            &["--ntp", "127.0.0.1 max-stratum=3 max-offset=100ms"],
            json!({"checks": [{"type": "ntp", "server": "127.0.0.1", "max_stratum": 3, "max_offset": "100ms"}]}),
            Same,
        ),
        row(
            "ntp offset too long",
            &["--ntp", "127.0.0.1 max-offset=400d"],
            json!({"checks": [{"type": "ntp", "server": "127.0.0.1", "max_offset": "400d"}]}),
            Error("--ntp", "services[0].checks[0].max_offset", "365 days"),
        ),
        row(
            "ntp holdover bounds and source (issue 12)",
            &["--ntp", "127.0.0.1 max-root-distance=1.5s max-ref-age=20m source=127.0.0.2"],
            json!({"checks": [{"type": "ntp", "server": "127.0.0.1", "max_root_distance": "1.5s", "max_ref_age": "20m",
                "source": "127.0.0.2"}]}),
            Same,
        ),
        row(
            "ntp source of the other family",
            &["--ntp", "127.0.0.1 source=::1"],
            json!({"checks": [{"type": "ntp", "server": "127.0.0.1", "source": "::1"}]}),
            Error("--ntp", "services[0].checks[0].source", "address family"),
        ),
        row(
            "shell command",
            &["--cmd", "test -e /run/ok"],
            json!({"checks": [{"type": "command", "shell": "test -e /run/ok", "exit_codes": "zero-is-healthy"}]}),
            Same,
        ),
        row(
            "empty shell command",
            &["--cmd", " "],
            json!({"checks": [{"type": "command", "shell": " ", "exit_codes": "zero-is-healthy"}]}),
            Error("--cmd", "services[0].checks[0].shell", "the command is empty"),
        ),
        row(
            "plugin",
            &["--plugin", "/usr/lib/nagios/plugins/check_dummy 0"],
            json!({"checks": [{"type": "command", "argv": ["/usr/lib/nagios/plugins/check_dummy", "0"]}]}),
            Same,
        ),
        row(
            "plugin check options and an argument with a space (issue 12)",
            &["--plugin", r"/usr/lib/nagios/plugins/check_dummy 0 all\x20good timeout=2s on-fail=degrade"],
            json!({"checks": [{"type": "command", "argv": ["/usr/lib/nagios/plugins/check_dummy", "0", "all good"],
                "timeout": "2s", "on_fail": "degrade"}]}),
            Same,
        ),
        row(
            "require",
            &["--require", "any", "--tcp", "127.0.0.1:80", "--tcp", "127.0.0.1:81"],
            json!({"require": "any", "checks": [{"type": "tcp", "address": "127.0.0.1:80"}, {"type": "tcp", "address": "127.0.0.1:81"}]}),
            Same,
        ),
        row(
            "require more than the checks",
            &["--require", "2", "--tcp", "127.0.0.1:80"],
            json!({"require": 2, "checks": [{"type": "tcp", "address": "127.0.0.1:80"}]}),
            Error("--require", "services[0].require", "2 is not between 1 and the number of checks (1)"),
        ),
    ];
    let mut failures = Vec::new();
    for r in &table {
        let f = from_flags(&r.flags);
        let j = from_json(&r.json);
        let problem = match &r.expect {
            Same | Warning(..) if f.0.is_none() || j.0.is_none() => {
                Some(format!("refused: flags {:?}, json {:?}", f.1, j.1))
            }
            Same | Warning(..) if f.0 != j.0 => Some(format!("services differ:\nflags {:#?}\njson {:#?}", f.0, j.0)),
            Same => {
                let msgs = |o: &Outcome| o.1.iter().map(|(s, _, m)| (*s, normal(m))).collect::<Vec<_>>();
                (msgs(&f) != msgs(&j)).then(|| format!("problems differ: flags {:?}, json {:?}", f.1, j.1))
            }
            Warning(flag, path, needle) | Error(flag, path, needle) => {
                let severity = if matches!(r.expect, Warning(..)) { Severity::Warning } else { Severity::Error };
                match (find(&f.1, severity, flag, needle), find(&j.1, severity, path, needle)) {
                    // A flag whose value holds several settings names the one at fault.
                    (Some(a), Some(b))
                        if normal(a) == normal(b) || normal(a).ends_with(&format!(": {}", normal(b))) =>
                    {
                        None
                    }
                    (Some(a), Some(b)) => Some(format!("messages differ:\n  {flag}: {a}\n  {path}: {b}")),
                    _ => {
                        Some(format!("no {severity:?} {needle:?} at {flag} / {path}: flags {:?}, json {:?}", f.1, j.1))
                    }
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}", r.what));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows:\n{}", failures.len(), table.len(), failures.join("\n\n"));
}

/// The fleet settings from flags: the settings, or (flag, message) errors.
fn fleet_from_flags(flags: &[&str]) -> (Option<exaprobe::model::fleet::FleetSettings>, Vec<(String, String)>) {
    let mut argv = vec!["exaprobe", "--name", "web", "--ip", "198.51.100.1/32"];
    argv.extend(flags);
    let args = Args::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    let raw = args.raw_fleet().expect("fleet flags given");
    let (settings, problems) = validate::fleet(&raw);
    let errors = problems
        .into_iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|Problem { origin, message, .. }| {
            let Origin::Flag(f) = origin else { panic!("a flag's problem at {origin:?}") };
            (f.to_string(), message)
        })
        .collect();
    (settings, errors)
}

/// The fleet settings from JSON: the settings, or (path, message) errors.
fn fleet_from_json(fleet: &Value) -> (Option<exaprobe::model::fleet::FleetSettings>, Vec<(String, String)>) {
    let text = json!({"fleet": fleet, "services": []}).to_string();
    match config::load(&text) {
        Ok(c) => (c.fleet, Vec::new()),
        Err(errors) => (None, errors.into_iter().map(|e| (e.path, e.message)).collect()),
    }
}

#[test]
fn fleet_flags_and_json_give_the_same_settings_or_the_same_problem() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let pw = password.to_str().unwrap().to_string().leak();
    let base = ["--fleet-etcd", "http://127.0.0.1:2379", "--site", "ams1"];
    let jbase = json!({"etcd": ["http://127.0.0.1:2379"], "site": "ams1"});
    let with = |extra: Value| {
        let mut j = jbase.clone();
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        j
    };
    // (what, extra flags, the JSON fleet, None: the same settings | Some((flag, path, message part))).
    type Case = (&'static str, Vec<&'static str>, Value, Option<(&'static str, &'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        ("defaults", vec![], jbase.clone(), None),
        (
            "everything",
            vec![
                "--fleet-etcd",
                "https://127.0.0.2:2379",
                "--min-sites",
                "2",
                "--fleet-ttl",
                "20s",
                "--fleet-timeout",
                "1s",
                "--fleet-prefix",
                "/anycast/",
                "--fleet-ca",
                "/etc/ca.pem",
                "--fleet-cert",
                "/etc/c.pem",
                "--fleet-key",
                "/etc/k.pem",
                "--fleet-user",
                "exaprobe",
                "--fleet-password-file",
                pw,
            ],
            json!({"etcd": ["http://127.0.0.1:2379", "https://127.0.0.2:2379"], "site": "ams1", "min_sites": 2,
                   "ttl": "20s", "timeout": "1s", "prefix": "/anycast/",
                   "tls": {"ca": "/etc/ca.pem", "cert": "/etc/c.pem", "key": "/etc/k.pem"},
                   "auth": {"user": "exaprobe", "password_file": pw}}),
            None,
        ),
        (
            "a URL without a port",
            vec!["--fleet-etcd", "http://127.0.0.2"],
            json!({"etcd": ["http://127.0.0.1:2379", "http://127.0.0.2"], "site": "ams1"}),
            Some(("--fleet-etcd", "fleet.etcd[1]", "give the port")),
        ),
        (
            "min_sites 0",
            vec!["--min-sites", "0"],
            with(json!({"min_sites": 0})),
            Some(("--min-sites", "fleet.min_sites", "at least 1")),
        ),
        (
            "a ttl too short",
            vec!["--fleet-ttl", "1s"],
            with(json!({"ttl": "1s"})),
            Some(("--fleet-ttl", "fleet.ttl", "not between")),
        ),
        (
            "a timeout over a third of the ttl",
            vec!["--fleet-ttl", "3s", "--fleet-timeout", "1100ms"],
            with(json!({"ttl": "3s", "timeout": "1100ms"})),
            Some(("--fleet-timeout", "fleet.timeout", "longer than a third of the ttl")),
        ),
        (
            "a bad prefix",
            vec!["--fleet-prefix", "exaprobe"],
            with(json!({"prefix": "exaprobe"})),
            Some(("--fleet-prefix", "fleet.prefix", "not a key prefix")),
        ),
        (
            "a certificate without its key",
            vec!["--fleet-cert", "/etc/c.pem"],
            with(json!({"tls": {"cert": "/etc/c.pem"}})),
            Some(("--fleet-key", "fleet.tls.key", "both cert and key")),
        ),
        (
            "a missing password file",
            vec!["--fleet-user", "u", "--fleet-password-file", "/nonexistent/pw"],
            with(json!({"auth": {"user": "u", "password_file": "/nonexistent/pw"}})),
            Some(("--fleet-password-file", "fleet.auth.password_file", "cannot read")),
        ),
        (
            "a bad site",
            vec!["--site", "a/b"],
            with(json!({"site": "a/b"})),
            Some(("--site", "fleet.site", "not a site name")),
        ),
    ];
    for (what, extra, j, expect) in cases {
        let mut flags: Vec<&str> = base.to_vec();
        // A later --site replaces the base one (clap keeps the last).
        flags.extend(extra);
        let (fs, fe) = fleet_from_flags(&flags);
        let (js, je) = fleet_from_json(&j);
        match expect {
            None => {
                assert!(fe.is_empty() && je.is_empty(), "{what}: {fe:?} {je:?}");
                assert_eq!(fs, js, "{what}");
                assert!(fs.is_some(), "{what}");
            }
            Some((flag, path, needle)) => {
                assert!(fs.is_none() && js.is_none(), "{what}: accepted");
                assert!(fe.iter().any(|(f, m)| f == flag && m.contains(needle)), "{what}: flags gave {fe:?}");
                assert!(je.iter().any(|(p, m)| p == path && m.contains(needle)), "{what}: JSON gave {je:?}");
            }
        }
    }
    // No site: each front end names its own spelling.
    let (_, fe) = fleet_from_flags(&["--fleet-etcd", "http://127.0.0.1:2379"]);
    assert!(fe.iter().any(|(f, m)| f == "--site" && m.contains("missing")), "{fe:?}");
    let (_, je) = fleet_from_json(&json!({"etcd": ["http://127.0.0.1:2379"]}));
    assert!(je.iter().any(|(p, m)| p == "fleet.site" && m.contains("missing")), "{je:?}");
}
