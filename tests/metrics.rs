//! The metrics endpoint as Prometheus sees it: a real HTTP scrape of
//! `/metrics` from [`exaprobe::ops::metrics::serve`] on loopback, checked by a
//! strict parser of the text format (and by `promtool check metrics` when it
//! is installed); the HTTP error answers; and the atomicity of the
//! node_exporter textfile.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use exaprobe::ops::metrics::{self, Live, Registry, STATES, ServiceGauges};
use exaprobe::probe::Outcome;

// ---------------------------------------------------------------------------
// A strict parser of the text exposition format 0.0.4

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One metric family: its type, help and samples, in order.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<Sample>,
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    !s.starts_with("__")
        && b.next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}

/// Parses `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    if let Some(r) = rest.strip_prefix('}') {
        return Ok((labels, r));
    }
    loop {
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value without \"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("invalid escape \\{c}")),
                },
                (_, '\n') => return Err("raw newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("duplicate label {name}"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        // Strict: a comma must be followed by another label (no trailing comma).
        rest = rest.strip_prefix(',').ok_or("expected , or }")?;
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("invalid escape in HELP: {other:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses an exposition strictly: every family has one HELP and one TYPE
/// before its samples, its samples are contiguous, no series appears twice,
/// counters are named `_total` and never negative, histograms are complete
/// and cumulative.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| err("bad comment".into()))?;
            let (name, arg) = rest.split_once(' ').ok_or_else(|| err("missing text".into()))?;
            if !is_metric_name(name) {
                return Err(err(format!("bad metric name {name:?}")));
            }
            if order.last().map(String::as_str) != Some(name) {
                if families.contains_key(name) {
                    return Err(err(format!("family {name} is not contiguous")));
                }
                order.push(name.to_string());
            }
            let family = families.entry(name.to_string()).or_default();
            match keyword {
                "HELP" if family.help.is_empty() => family.help = unescape_help(arg).map_err(err)?,
                "TYPE" if family.kind.is_empty() => {
                    if !family.samples.is_empty() {
                        return Err(err("TYPE after samples".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(err(format!("bad type {arg}")));
                    }
                    family.kind = arg.to_string();
                }
                _ => return Err(err("unexpected or repeated comment".into())),
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("stray comment".into()));
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(err)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let value = rest.strip_prefix(' ').ok_or_else(|| err("expected a space before the value".into()))?;
        if value.contains(' ') {
            return Err(err("timestamps or extra fields".into()));
        }
        let value = parse_value(value).map_err(err)?;
        let family_name = order.last().ok_or_else(|| err("sample before any TYPE".into()))?.clone();
        let family = families.get_mut(&family_name).expect("in order");
        let belongs = match family.kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"].iter().any(|s| name == format!("{family_name}{s}")),
            "" => return Err(err("sample before TYPE".into())),
            _ => name == family_name,
        };
        if !belongs {
            return Err(err(format!("sample {name} outside its family (current family {family_name})")));
        }
        if !seen.insert((name.to_string(), labels.clone())) {
            return Err(err("duplicate series".into()));
        }
        family.samples.push(Sample { name: name.to_string(), labels, value });
    }
    for (name, family) in &families {
        if family.kind.is_empty() || family.help.is_empty() {
            return Err(format!("{name}: missing TYPE or HELP"));
        }
        match family.kind.as_str() {
            "counter" => {
                if !name.ends_with("_total") {
                    return Err(format!("counter {name} does not end in _total"));
                }
                if let Some(s) = family.samples.iter().find(|s| s.value < 0.0 || s.value.is_nan()) {
                    return Err(format!("negative counter {s:?}"));
                }
            }
            "histogram" => check_histogram(name, family)?,
            _ => {}
        }
    }
    Ok(families)
}

/// The buckets `(le, count)`, `_sum` and `_count` of one histogram series.
type HistogramSeries = (Vec<(f64, f64)>, Option<f64>, Option<f64>);

fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut series: BTreeMap<BTreeMap<String, String>, HistogramSeries> = BTreeMap::new();
    for s in &family.samples {
        let mut key = s.labels.clone();
        let le = key.remove("le");
        let entry = series.entry(key).or_default();
        match s.name.strip_prefix(name) {
            Some("_bucket") => {
                let le = parse_value(&le.ok_or("bucket without le")?)?;
                entry.0.push((le, s.value));
            }
            Some("_sum") => entry.1 = Some(s.value),
            Some("_count") => entry.2 = Some(s.value),
            _ => unreachable!(),
        }
    }
    for (labels, (buckets, sum, count)) in series {
        let what = format!("{name}{labels:?}");
        let (sum, count) = (sum.ok_or(format!("{what}: no _sum"))?, count.ok_or(format!("{what}: no _count"))?);
        if !buckets.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
            return Err(format!("{what}: buckets not increasing and cumulative: {buckets:?}"));
        }
        match buckets.last() {
            Some(&(le, n)) if le == f64::INFINITY && n == count => {}
            _ => return Err(format!("{what}: the +Inf bucket is missing or differs from _count")),
        }
        if sum < 0.0 {
            return Err(format!("{what}: negative sum"));
        }
    }
    Ok(())
}

#[test]
fn the_parser_rejects_what_prometheus_rejects() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\"} 1\n";
    assert!(parse_exposition(ok).is_ok());
    for bad in [
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\\q\"} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\"} one\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\",} 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1\na_total 2\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a_total x\na_total 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total 1",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP g x\n# TYPE g gauge\ng 1\n# HELP f x\n# TYPE f gauge\nf 1\n# HELP g x\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------
// Helpers

/// Runs `promtool check metrics` on `text` when promtool is installed;
/// returns whether it ran.
fn promtool_check(text: &str) -> bool {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool not found: checked with the test's own parser only");
        return false;
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- exposition ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` raw and reads the whole answer (the server closes).
fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head end in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    Response { status, headers, body: body.to_string() }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n").as_bytes())
}

/// A registry and live gauges with a bit of everything, including label
/// values that need escaping.
fn populated() -> (Registry, Live) {
    let mut r = Registry::new();
    let ms = Duration::from_millis;
    r.record_probe("web", "tcp 127.0.0.1:80", "tcp", &Outcome::healthy("ok"), ms(1));
    r.record_probe("web", "tcp 127.0.0.1:80", "tcp", &Outcome::down("refused"), ms(0));
    r.record_probe("web", "http http://127.0.0.1/health", "http", &Outcome::down("http-status 503"), ms(120));
    r.record_probe("web", "http http://127.0.0.1/health", "http", &Outcome::degraded("slow"), ms(2600));
    r.record_probe("web", "http http://127.0.0.1/health", "http", &Outcome::down("timeout"), ms(30_000));
    r.record_probe(
        "odd \"name\"\\ with\nnewline",
        "command /bin/check \"x\"",
        "command",
        &Outcome::down("exit 2"),
        ms(8),
    );
    r.record_probe("dns", "dns 127.0.0.1:53 example.org A", "dns", &Outcome::healthy("ok"), ms(3));
    r.record_probe("ntp", "ntp 127.0.0.1:123", "ntp", &Outcome::down("stratum 16 \"unsynchronised\""), ms(4));
    r.record_transition("web", "INIT", "UP");
    r.record_transition("web", "UP", "DOWN");
    r.record_transition("odd \"name\"\\ with\nnewline", "INIT", "DOWN");
    r.record_lines(5);
    r.record_acks("done", 2);
    r.record_acks("error", 1);
    r.record_acks("missing", 1);
    let gauges = |name: &str, state: &str| ServiceGauges {
        name: name.into(),
        state: state.into(),
        penalty: 0.0,
        drained: false,
        suppressed: false,
        prefixes: 1,
    };
    let live = Live {
        services: vec![
            ServiceGauges { penalty: 1234.5, suppressed: true, prefixes: 2, ..gauges("web", "SUPPRESSED") },
            ServiceGauges { drained: true, ..gauges("dns", "DRAINED") },
            gauges("ntp", "INIT"),
            gauges("odd \"name\"\\ with\nnewline", "DOWN"),
        ],
        channel_up: true,
        mode: "exabgp",
    };
    (r, live)
}

fn value(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = name.strip_suffix("_bucket").or(name.strip_suffix("_sum")).or(name.strip_suffix("_count"));
    let family = families.get(name).or_else(|| family.and_then(|f| families.get(f)))?;
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    family.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn scrape_is_a_valid_exposition() {
    let (registry, live) = populated();
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), move || Some(registry.render(&live))).unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200);
    assert!(response.headers["content-type"].starts_with("text/plain; version=0.0.4"), "{:?}", response.headers);
    assert_eq!(response.headers["connection"], "close");
    assert_eq!(response.headers["content-length"].parse::<usize>().unwrap(), response.body.len());

    let families = parse_exposition(&response.body).unwrap_or_else(|e| panic!("{e}\n{}", response.body));
    promtool_check(&response.body);

    let expected_types = [
        ("exaprobe_build_info", "gauge"),
        ("exaprobe_service_state", "gauge"),
        ("exaprobe_transitions_total", "counter"),
        ("exaprobe_probe_duration_seconds", "histogram"),
        ("exaprobe_probe_failures_total", "counter"),
        ("exaprobe_probe_results_total", "counter"),
        ("exaprobe_exabgp_lines_total", "counter"),
        ("exaprobe_exabgp_acks_total", "counter"),
        ("exaprobe_exabgp_channel_up", "gauge"),
        ("exaprobe_flap_penalty", "gauge"),
        ("exaprobe_service_suppressed", "gauge"),
        ("exaprobe_service_drained", "gauge"),
        ("exaprobe_service_prefixes", "gauge"),
        ("exaprobe_mode", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ];
    for (name, kind) in expected_types {
        assert_eq!(families.get(name).map(|f| f.kind.as_str()), Some(kind), "{name}");
    }

    let odd = "odd \"name\"\\ with\nnewline";
    assert_eq!(value(&families, "exaprobe_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    // The full state set for every service, exactly one at 1.
    for (service, current) in [("web", "SUPPRESSED"), ("dns", "DRAINED"), ("ntp", "INIT"), (odd, "DOWN")] {
        for state in STATES {
            let v = value(&families, "exaprobe_service_state", &[("service", service), ("state", state)]);
            assert_eq!(v, Some(if state == current { 1.0 } else { 0.0 }), "{service} {state}");
        }
    }
    assert_eq!(value(&families, "exaprobe_flap_penalty", &[("service", "web")]), Some(1234.5));
    assert_eq!(value(&families, "exaprobe_service_suppressed", &[("service", "web")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_service_drained", &[("service", "dns")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_service_prefixes", &[("service", "web")]), Some(2.0));
    assert_eq!(
        value(&families, "exaprobe_transitions_total", &[("service", odd), ("from", "INIT"), ("to", "DOWN")]),
        Some(1.0)
    );
    let web_http = [("service", "web"), ("check", "http http://127.0.0.1/health"), ("kind", "http")];
    let with = |extra: (&'static str, &'static str)| web_http.iter().copied().chain([extra]).collect::<Vec<_>>();
    assert_eq!(value(&families, "exaprobe_probe_failures_total", &with(("reason", "http-status 503"))), Some(1.0));
    assert_eq!(value(&families, "exaprobe_probe_failures_total", &with(("reason", "slow"))), Some(1.0));
    assert_eq!(value(&families, "exaprobe_probe_results_total", &with(("health", "down"))), Some(2.0));
    assert_eq!(value(&families, "exaprobe_probe_duration_seconds_count", &web_http), Some(3.0));
    assert_eq!(value(&families, "exaprobe_probe_duration_seconds_bucket", &with(("le", "0.25"))), Some(1.0));
    assert_eq!(value(&families, "exaprobe_probe_duration_seconds_bucket", &with(("le", "5"))), Some(2.0));
    assert_eq!(value(&families, "exaprobe_probe_duration_seconds_bucket", &with(("le", "10"))), Some(2.0));
    assert_eq!(value(&families, "exaprobe_probe_duration_seconds_bucket", &with(("le", "+Inf"))), Some(3.0));
    let sum = value(&families, "exaprobe_probe_duration_seconds_sum", &web_http).unwrap();
    assert!((sum - 32.72).abs() < 1e-9, "{sum}");
    // The buckets run from 1 ms to 10 s.
    let les: Vec<String> = families["exaprobe_probe_duration_seconds"]
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket") && s.labels["service"] == "dns")
        .map(|s| s.labels["le"].clone())
        .collect();
    assert_eq!(les.first().map(String::as_str), Some("0.0001"));
    assert_eq!(les[les.len() - 2..], ["10", "+Inf"]);
    let ntp = [
        ("service", "ntp"),
        ("check", "ntp 127.0.0.1:123"),
        ("kind", "ntp"),
        ("reason", "stratum 16 \"unsynchronised\""),
    ];
    assert_eq!(value(&families, "exaprobe_probe_failures_total", &ntp), Some(1.0));
    assert_eq!(value(&families, "exaprobe_exabgp_lines_total", &[]), Some(5.0));
    assert_eq!(value(&families, "exaprobe_exabgp_acks_total", &[("result", "done")]), Some(2.0));
    assert_eq!(value(&families, "exaprobe_exabgp_acks_total", &[("result", "error")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_exabgp_acks_total", &[("result", "missing")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_exabgp_channel_up", &[]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_mode", &[("mode", "exabgp")]), Some(1.0));
}

#[test]
fn an_empty_registry_is_valid_too() {
    let text = Registry::new().render(&Live { services: Vec::new(), channel_up: false, mode: "dry-run" });
    let families = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    promtool_check(&text);
    assert_eq!(value(&families, "exaprobe_exabgp_channel_up", &[]), Some(0.0));
    assert_eq!(value(&families, "exaprobe_mode", &[("mode", "dry-run")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_exabgp_acks_total", &[("result", "missing")]), Some(0.0));
}

#[test]
fn http_answers() {
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), || Some("up 1\n".to_string())).unwrap();

    let r = exchange(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, "up 1\n"));
    assert_eq!(r.headers["connection"], "close");

    let r = exchange(addr, b"GET /metrics?name[]=up HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);

    let r = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(r.headers["content-length"], "5");

    for path in ["/", "/metric", "/metrics/", "/favicon.ico"] {
        assert_eq!(get(addr, path).status, 404, "{path}");
    }

    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = exchange(addr, format!("{method} /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").as_bytes());
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.headers["allow"], "GET, HEAD");
    }

    for garbage in [
        &b"garbage\r\n\r\n"[..],
        b"GET /metrics\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nnot a header\r\n\r\n",
    ] {
        assert_eq!(exchange(addr, garbage).status, 400, "{:?}", String::from_utf8_lossy(garbage));
    }

    // A request cut short by the client is a bad request too.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metr").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");

    // A port check (connect, close) leaves the listener working.
    drop(TcpStream::connect(addr).unwrap());
    assert_eq!(get(addr, "/metrics").status, 200);
}

#[test]
fn an_engine_that_does_not_answer_is_a_503() {
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), || None).unwrap();
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 503);
    // Other answers do not depend on the engine.
    assert_eq!(get(addr, "/").status, 404);
}

#[test]
fn a_slow_client_does_not_hold_up_a_scrape() {
    let addr = metrics::serve("127.0.0.1:0".parse().unwrap(), || Some("up 1\n".to_string())).unwrap();
    // One connects and sends nothing, another sends half a request.
    let _silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost:").unwrap();
    let start = Instant::now();
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200);
    assert!(start.elapsed() < Duration::from_secs(2), "the scrape took {:?}", start.elapsed());
}

#[test]
fn the_listener_binds_the_address_it_is_given() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = metrics::serve(taken.local_addr().unwrap(), || None).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn the_textfile_is_never_seen_half_written() {
    // On tmpfs when there is one: renames are as atomic there, and the 2000
    // fsyncs cost nothing.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let path = dir.path().join("exaprobe.prom");
    // Two expositions of quite different sizes, both valid.
    let (registry, live) = populated();
    let big = registry.render(&live);
    let small = Registry::new().render(&Live { services: Vec::new(), channel_up: false, mode: "dry-run" });
    assert!(big.len() > 4 * small.len());
    parse_exposition(&big).unwrap();
    parse_exposition(&small).unwrap();
    metrics::write_textfile(&path, &small).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done, big, small) = (path.clone(), Arc::clone(&done), big.clone(), small.clone());
        thread::spawn(move || {
            let mut reads = 0u32;
            let mut seen_big = false;
            while !done.load(Ordering::SeqCst) || reads < 10 {
                let text = std::fs::read_to_string(&path).expect("the file always exists");
                assert!(text == big || text == small, "read a torn file of {} bytes", text.len());
                seen_big |= text == big;
                if reads.is_multiple_of(50) {
                    parse_exposition(&text).unwrap();
                }
                reads += 1;
            }
            (reads, seen_big)
        })
    };
    for i in 0..1000 {
        metrics::write_textfile(&path, if i % 2 == 0 { &big } else { &small }).unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (reads, _seen_big) = reader.join().unwrap();
    assert!(reads >= 10);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), small, "the last write wins");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("exaprobe.prom")]);
    promtool_check(&std::fs::read_to_string(&path).unwrap());
}

#[test]
fn the_textfile_replaces_a_planted_symlink_instead_of_following_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let path = dir.path().join("exaprobe.prom");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    metrics::write_textfile(&path, "a 1\n").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_file());
    // Readable by node_exporter, which usually runs as another user.
    assert_eq!(meta.permissions().mode() & 0o444, 0o444);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\n");
}

/// The fleet guard's families, from a core whose service the store holds:
/// a valid exposition, with the held gauge, the store gauge and the verdicts.
#[test]
fn the_fleet_guard_metrics_are_a_valid_exposition() {
    use exaprobe::engine::core::{Core, Effects, FleetCall};
    use exaprobe::exabgp::{AckMode, Writer};
    use exaprobe::fleet::{Notice, Verdict};
    let text = r#"{"fleet": {"etcd": ["http://127.0.0.1:2379"], "site": "a"},
        "services": [{"name": "web", "prefixes": ["198.51.100.1/32"], "rise": 1, "fall": 1, "interval": "1s",
          "dampening": false, "checks": [{"type": "tcp", "address": "127.0.0.1:80"}]}]}"#;
    let config = exaprobe::model::config::load(text).unwrap();
    let t0 = Instant::now();
    let mut core = Core::new(Writer::new(std::io::sink(), AckMode::NoWait).unwrap(), config.services, t0);
    core.enable_fleet(config.fleet.unwrap().timeout);
    let mut fx = Effects::default();
    core.fleet_notice(Notice::Store { connected: true, detail: "test".into() }, t0, &mut fx).unwrap();
    let mut ticket = None;
    for (at, health) in [(0, Outcome::healthy("ok")), (1, Outcome::down("refused"))] {
        let now = t0 + Duration::from_secs(at);
        core.tick(now, &mut fx).unwrap();
        for job in std::mem::take(&mut fx.rounds) {
            core.round_checked(job.round, None, now, &mut fx).unwrap();
            for p in job.probes {
                core.probe_done(p.round, p.check, health.clone(), Duration::ZERO, now, &mut fx).unwrap();
            }
        }
        for call in fx.fleet.drain(..) {
            if let FleetCall::Ask { ticket: t, .. } = call {
                ticket = Some(t);
            }
        }
    }
    let verdict = Verdict::Hold { others_announcing: 0, sites: 2 };
    let notice = Notice::Verdict { service: "web".into(), ticket: ticket.expect("asked"), verdict };
    core.fleet_notice(notice, t0 + Duration::from_millis(1100), &mut fx).unwrap();
    let body = core.render_metrics(t0 + Duration::from_millis(1200), true, "dry-run", 0);
    let families = parse_exposition(&body).unwrap_or_else(|e| panic!("{e}\n{body}"));
    promtool_check(&body);
    assert_eq!(value(&families, "exaprobe_fleet_store_connected", &[]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_service_held", &[("service", "web")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_fleet_verdicts_total", &[("verdict", "hold")]), Some(1.0));
    assert_eq!(value(&families, "exaprobe_fleet_verdicts_total", &[("verdict", "timeout")]), Some(0.0));
}
