//! Prometheus metrics: the [`Registry`] of counters and histograms, its text
//! exposition (format 0.0.4, written by hand), a tiny HTTP listener for
//! `GET /metrics` ([`serve`]) and the atomic node_exporter textfile writer
//! ([`write_textfile`]).
//!
//! The engine thread owns the [`Registry`] and feeds it as things happen
//! (probe results, transitions, lines written, acks). Gauges that describe the
//! present (service states, penalties, the channel) are not stored here: the
//! engine passes them in a [`Live`] snapshot when it renders, so they can never
//! go stale.
//!
//! The listener runs on its own thread and never touches engine state: it
//! calls the `render` closure it was given, which asks the engine for a
//! rendering and returns `None` when the engine did not answer in time (the
//! scrape then gets a 503).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::probe::{Health, Outcome};

/// Every service state, in the order `exaprobe_service_state` lists them.
pub const STATES: [&str; 8] = ["UP", "DEGRADED", "DOWN", "DISABLED", "INIT", "DRAINING", "DRAINED", "SUPPRESSED"];

/// Upper bounds (seconds) of the probe duration and schedule lateness
/// buckets: 100 µs (a loopback TCP connect, a round started on time) to 10 s
/// (the longest sensible probe timeout).
pub const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The ack results that always appear, at 0 before the first.
const ACK_RESULTS: [&str; 4] = ["done", "error", "missing", "stray"];

/// Why a line repaired ExaBGP's adj-rib-out.
const REPAIR_REASONS: [&str; 3] = ["missing", "different", "unexpected"];

/// Distinct failure reasons kept per check; later new reasons are counted as
/// `other`, so a probe with a variable reason cannot grow the series without
/// bound.
const MAX_REASONS_PER_CHECK: usize = 32;

/// Longest failure reason kept in a label (bytes); reasons are meant to be
/// short, this only guards against a mistake.
const MAX_REASON_LEN: usize = 64;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The gauges of one service at render time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceGauges {
    /// Service name.
    pub name: String,
    /// Current state, one of [`STATES`] (another name is shown too, with 1).
    pub state: String,
    /// Flap-damping penalty.
    pub penalty: f64,
    /// Whether the service is drained by the operator.
    pub drained: bool,
    /// Whether flap damping holds the routes withdrawn.
    pub suppressed: bool,
    /// Number of prefixes the service announces.
    pub prefixes: usize,
}

/// The present state of things, passed in at render time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    /// One entry per configured service.
    pub services: Vec<ServiceGauges>,
    /// Whether the ExaBGP channel works (stdout writable, stdin open).
    pub channel_up: bool,
    /// `"exabgp"` or `"dry-run"`.
    pub mode: &'static str,
}

/// Reads one per-service gauge's value.
type GaugeOf = fn(&ServiceGauges) -> String;

/// A histogram with [`BUCKETS`]; counts are per bucket (not cumulative) and
/// summed when rendered.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    /// Observations above the last bucket.
    over: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        match BUCKETS.iter().position(|b| seconds <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
        self.sum += seconds;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.over
    }
}

/// Counters and histograms of one check of one service.
#[derive(Clone, Debug, Default)]
struct CheckStats {
    duration: Histogram,
    /// Results by health: healthy, degraded, down.
    results: [u64; 3],
    failures: BTreeMap<String, u64>,
}

/// Series key of a check: (service, check, kind).
type CheckKey = (String, String, String);

/// The metrics that accumulate: counters and histograms. Owned by the engine
/// thread; no locking inside.
#[derive(Clone, Debug)]
pub struct Registry {
    checks: BTreeMap<CheckKey, CheckStats>,
    transitions: BTreeMap<(String, String, String), u64>,
    lines: u64,
    acks: BTreeMap<String, u64>,
    /// Lines never written: the writer's bound for keyless lines, the
    /// stdin inbox's bound.
    dropped: BTreeMap<&'static str, u64>,
    /// Adj-rib-out repairs by reason.
    repairs: BTreeMap<String, u64>,
    /// Watch events by source (issue 13).
    watch_events: BTreeMap<&'static str, u64>,
    /// How late probe rounds started against their plan.
    lateness: Histogram,
    /// Start time, seconds since the epoch.
    started: f64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry; its creation time is the process start time shown.
    pub fn new() -> Self {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        Registry {
            checks: BTreeMap::new(),
            transitions: BTreeMap::new(),
            lines: 0,
            lateness: Histogram::default(),
            acks: ACK_RESULTS.iter().map(|r| (r.to_string(), 0)).collect(),
            dropped: [("stdout", 0), ("stdin", 0)].into_iter().collect(),
            repairs: REPAIR_REASONS.iter().map(|r| (r.to_string(), 0)).collect(),
            watch_events: crate::engine::core::watch::Source::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            started,
        }
    }

    /// One probe run of check `check` (of kind `kind`: tcp, http, …) of
    /// `service` ended with `outcome` after `elapsed`. A degraded or down
    /// outcome counts as a failure, under its reason.
    pub fn record_probe(&mut self, service: &str, check: &str, kind: &str, outcome: &Outcome, elapsed: Duration) {
        let key = (service.to_string(), check.to_string(), kind.to_string());
        let stats = self.checks.entry(key).or_default();
        stats.duration.observe(elapsed.as_secs_f64());
        stats.results[health_index(outcome.health)] += 1;
        if outcome.health != Health::Healthy {
            let reason = truncate(&outcome.reason, MAX_REASON_LEN);
            let reason = if reason.is_empty() { "unknown" } else { reason };
            let known = stats.failures.contains_key(reason);
            let reason = if known || stats.failures.len() < MAX_REASONS_PER_CHECK { reason } else { "other" };
            *stats.failures.entry(reason.to_string()).or_default() += 1;
        }
    }

    /// `service` went from state `from` to state `to`.
    pub fn record_transition(&mut self, service: &str, from: &str, to: &str) {
        *self.transitions.entry((service.to_string(), from.to_string(), to.to_string())).or_default() += 1;
    }

    /// A probe round started `late` after its planned time.
    pub fn record_lateness(&mut self, late: Duration) {
        self.lateness.observe(late.as_secs_f64());
    }

    /// `n` command lines were written to ExaBGP.
    pub fn record_lines(&mut self, n: u64) {
        self.lines += n;
    }

    /// ExaBGP answered `n` lines (`done`, `error`) or did not (`missing`).
    pub fn record_acks(&mut self, result: &str, n: u64) {
        *self.acks.entry(result.to_string()).or_default() += n;
    }

    /// `n` more lines were dropped on `channel` (`stdout`: the writer's
    /// bound; `stdin`: the inbox's bound).
    pub fn record_dropped(&mut self, channel: &'static str, n: u64) {
        *self.dropped.entry(channel).or_default() += n;
    }

    /// A line repaired ExaBGP's adj-rib-out (`missing`, `different`,
    /// `unexpected`).
    pub fn record_repair(&mut self, reason: &str) {
        *self.repairs.entry(reason.to_string()).or_default() += 1;
    }

    /// A watch event from `source` (pid, listen, maintenance, unit).
    pub fn record_watch_event(&mut self, source: &'static str) {
        *self.watch_events.entry(source).or_default() += 1;
    }

    /// Drops every series of `service`, for a service removed by a reload
    /// (otherwise its counters would be exported forever).
    pub fn forget_service(&mut self, service: &str) {
        self.checks.retain(|(s, _, _), _| s != service);
        self.transitions.retain(|(s, _, _), _| s != service);
    }

    /// The text exposition (format 0.0.4) of everything, with the gauges of
    /// `live`.
    pub fn render(&self, live: &Live) -> String {
        let mut out = Out(String::with_capacity(4096 + 2048 * self.checks.len()));

        out.family("exaprobe_build_info", "gauge", "Build information; always 1.");
        out.sample("exaprobe_build_info", &[("version", env!("CARGO_PKG_VERSION"))], "1");

        out.family("exaprobe_mode", "gauge", "How exaprobe runs (exabgp or dry-run); 1 for the current mode.");
        out.sample("exaprobe_mode", &[("mode", live.mode)], "1");

        out.family("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.");
        out.sample("process_start_time_seconds", &[], &float(self.started));

        out.family(
            "exaprobe_service_state",
            "gauge",
            "Current state of each service: 1 for the current state, 0 for the others.",
        );
        for s in &live.services {
            for state in STATES {
                out.sample("exaprobe_service_state", &[("service", &s.name), ("state", state)], bit(s.state == state));
            }
            if !STATES.contains(&s.state.as_str()) {
                out.sample("exaprobe_service_state", &[("service", &s.name), ("state", &s.state)], "1");
            }
        }

        let per_service: [(&str, &str, GaugeOf); 4] = [
            ("exaprobe_flap_penalty", "Flap-damping penalty of each service.", |s| float(s.penalty)),
            ("exaprobe_service_suppressed", "1 while flap damping holds the service's routes withdrawn.", |s| {
                bit(s.suppressed).to_string()
            }),
            ("exaprobe_service_drained", "1 while the service is drained by the operator.", |s| {
                bit(s.drained).to_string()
            }),
            ("exaprobe_service_prefixes", "Number of prefixes each service announces.", |s| s.prefixes.to_string()),
        ];
        for (name, help, value) in per_service {
            out.family(name, "gauge", help);
            for s in &live.services {
                out.sample(name, &[("service", &s.name)], &value(s));
            }
        }

        out.family("exaprobe_transitions_total", "counter", "State transitions of each service.");
        for ((service, from, to), n) in &self.transitions {
            out.sample(
                "exaprobe_transitions_total",
                &[("service", service), ("from", from), ("to", to)],
                &n.to_string(),
            );
        }

        out.family("exaprobe_probe_duration_seconds", "histogram", "Duration of probe runs in seconds.");
        for ((service, check, kind), stats) in &self.checks {
            let labels = [("service", service.as_str()), ("check", check), ("kind", kind)];
            let h = &stats.duration;
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                cumulative += n;
                let le = float(*bound);
                out.sample_le("exaprobe_probe_duration_seconds_bucket", &labels, &le, cumulative);
            }
            out.sample_le("exaprobe_probe_duration_seconds_bucket", &labels, "+Inf", h.count());
            out.sample("exaprobe_probe_duration_seconds_sum", &labels, &float(h.sum));
            out.sample("exaprobe_probe_duration_seconds_count", &labels, &h.count().to_string());
        }

        out.family("exaprobe_probe_results_total", "counter", "Probe runs by the health they found.");
        for ((service, check, kind), stats) in &self.checks {
            for (health, n) in [Health::Healthy, Health::Degraded, Health::Down].iter().zip(stats.results) {
                let labels =
                    [("service", service.as_str()), ("check", check), ("kind", kind), ("health", health.as_str())];
                out.sample("exaprobe_probe_results_total", &labels, &n.to_string());
            }
        }

        out.family(
            "exaprobe_probe_failures_total",
            "counter",
            "Probe runs that found a service degraded or down, by reason.",
        );
        for ((service, check, kind), stats) in &self.checks {
            for (reason, n) in &stats.failures {
                let labels = [("service", service.as_str()), ("check", check), ("kind", kind), ("reason", reason)];
                out.sample("exaprobe_probe_failures_total", &labels, &n.to_string());
            }
        }

        out.family(
            "exaprobe_schedule_lateness_seconds",
            "histogram",
            "How late probe rounds started against their planned time, in seconds.",
        );
        let h = &self.lateness;
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            out.sample_le("exaprobe_schedule_lateness_seconds_bucket", &[], &float(*bound), cumulative);
        }
        out.sample_le("exaprobe_schedule_lateness_seconds_bucket", &[], "+Inf", h.count());
        out.sample("exaprobe_schedule_lateness_seconds_sum", &[], &float(h.sum));
        out.sample("exaprobe_schedule_lateness_seconds_count", &[], &h.count().to_string());

        out.family("exaprobe_exabgp_lines_total", "counter", "Command lines written to ExaBGP.");
        out.sample("exaprobe_exabgp_lines_total", &[], &self.lines.to_string());

        out.family(
            "exaprobe_exabgp_acks_total",
            "counter",
            "Answers to command lines: done, error, missing, or stray (an ack for no command of ours).",
        );
        for (result, n) in &self.acks {
            out.sample("exaprobe_exabgp_acks_total", &[("result", result)], &n.to_string());
        }

        out.family(
            "exaprobe_exabgp_dropped_lines_total",
            "counter",
            "Lines dropped at a bound: stdout (ExaBGP stopped reading) or stdin (a flood).",
        );
        for (channel, n) in &self.dropped {
            out.sample("exaprobe_exabgp_dropped_lines_total", &[("channel", channel)], &n.to_string());
        }

        out.family(
            "exaprobe_adj_rib_repairs_total",
            "counter",
            "Routes ExaBGP advertised otherwise than intended, repaired after a show adj-rib out.",
        );
        for (reason, n) in &self.repairs {
            out.sample("exaprobe_adj_rib_repairs_total", &[("reason", reason)], &n.to_string());
        }

        out.family(
            "exaprobe_watch_events_total",
            "counter",
            "Watch events by source: pid (process exited), listen (listener closed), maintenance, unit.",
        );
        for (source, n) in &self.watch_events {
            out.sample("exaprobe_watch_events_total", &[("source", source)], &n.to_string());
        }

        out.family("exaprobe_exabgp_channel_up", "gauge", "1 while the channel to ExaBGP works.");
        out.sample("exaprobe_exabgp_channel_up", &[], bit(live.channel_up));

        out.0
    }
}

fn health_index(h: Health) -> usize {
    match h {
        Health::Healthy => 0,
        Health::Degraded => 1,
        Health::Down => 2,
    }
}

use crate::ops::logger::truncate;

fn bit(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// A sample value as Prometheus reads it (Go's ParseFloat syntax: Rust's
/// shortest round-trip decimal form, and `+Inf`, `-Inf`, `NaN`).
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

/// The exposition being written.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let mut escaped = String::with_capacity(help.len());
        for c in help.chars() {
            match c {
                '\\' => escaped.push_str("\\\\"),
                '\n' => escaped.push_str("\\n"),
                c => escaped.push(c),
            }
        }
        let _ = write!(self.0, "# HELP {name} {escaped}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: &str) {
        self.0.push_str(name);
        self.labels(labels, None);
        self.0.push(' ');
        self.0.push_str(value);
        self.0.push('\n');
    }

    fn sample_le(&mut self, name: &str, labels: &[(&str, &str)], le: &str, value: u64) {
        self.0.push_str(name);
        self.labels(labels, Some(le));
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (name, value)) in all.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(name);
            self.0.push_str("=\"");
            escape_label_value(&mut self.0, value);
            self.0.push('"');
        }
        self.0.push('}');
    }
}

/// Appends `value` with `\`, `"` and newline escaped, as the text format
/// requires inside label values.
pub fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP listener

/// Limits of the listener.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Time a client has to send its request head, and to read the answer.
    deadline: Duration,
    /// Requests handled at once; more are answered 503 at once.
    max_conns: usize,
    /// Largest request head accepted (bytes).
    max_head: usize,
}

const LIMITS: Limits = Limits { deadline: Duration::from_secs(5), max_conns: 4, max_head: 8192 };

/// The rendering closure, shared with the request threads.
type Render = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Serves `GET /metrics` on `addr` from a thread of its own, for the life of
/// the process; returns the address bound (so port 0 works).
///
/// Every answer is HTTP/1.1 with `Connection: close`. `GET` and `HEAD` of
/// `/metrics` get `render()`'s text, or a 503 when it returns `None` (the
/// engine did not answer in time); other paths get a 404, other methods a
/// 405, a malformed request a 400, a request not sent within 5 s a 408. A
/// few requests are handled at once, each on a short-lived thread; beyond
/// that a client gets a 503 at once, so a slow client can neither hang the
/// listener nor make threads pile up.
pub fn serve(addr: SocketAddr, render: impl Fn() -> Option<String> + Send + Sync + 'static) -> io::Result<SocketAddr> {
    serve_with(addr, Arc::new(render), LIMITS)
}

fn serve_with(addr: SocketAddr, render: Render, limits: Limits) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    thread::Builder::new().name("metrics-http".into()).spawn(move || accept_loop(&listener, &render, limits))?;
    Ok(bound)
}

/// Decrements the count of requests in progress when a request thread ends,
/// however it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(listener: &TcpListener, render: &Render, limits: Limits) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors, say: do not spin.
                log::debug!("metrics: accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::SeqCst) >= limits.max_conns {
            let _slot = Slot(Arc::clone(&active));
            busy(stream, limits);
            continue;
        }
        let slot = Slot(Arc::clone(&active));
        let render = Arc::clone(render);
        let spawned = thread::Builder::new().name("metrics-request".into()).stack_size(128 * 1024).spawn(move || {
            let _slot = slot;
            handle(stream, &render, limits);
        });
        if let Err(e) = spawned {
            log::debug!("metrics: could not start a request thread: {e}");
        }
    }
}

/// Answers 503 on the accept thread. The request is read first (briefly),
/// because closing a socket with unread data sends a reset, which can make
/// the client lose the answer.
fn busy(mut stream: TcpStream, limits: Limits) {
    let brief = Limits { deadline: BUSY_DEADLINE, ..limits };
    let _ = stream.set_write_timeout(Some(BUSY_DEADLINE));
    let _ = read_head(&mut stream, brief);
    let _ = respond(&mut stream, 503, "Service Unavailable", &[], b"busy\n", false);
    let _ = stream.shutdown(Shutdown::Write);
}

/// How long the accept thread spends on a client it has no room for.
const BUSY_DEADLINE: Duration = Duration::from_millis(100);

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET` (`head == false`) or `HEAD` of `/metrics`.
    Metrics {
        head: bool,
    },
    NotFound,
    MethodNotAllowed,
    Malformed,
}

fn handle(mut stream: TcpStream, render: &Render, limits: Limits) {
    let _ = stream.set_write_timeout(Some(limits.deadline));
    let route = match read_head(&mut stream, limits) {
        Ok(Some(head)) => parse_request(&head),
        // Closed before sending anything: a port check.
        Ok(None) => return,
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            let _ = respond(&mut stream, 408, "Request Timeout", &[], b"request timeout\n", false);
            return finish(stream);
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Route::Malformed,
        Err(_) => return,
    };
    let _ = match route {
        Route::Metrics { head } => match render() {
            Some(text) => respond(&mut stream, 200, "OK", &[("Content-Type", CONTENT_TYPE)], text.as_bytes(), head),
            None => respond(&mut stream, 503, "Service Unavailable", &[], b"the engine did not answer in time\n", head),
        },
        Route::NotFound => respond(&mut stream, 404, "Not Found", &[], b"not found; try /metrics\n", false),
        Route::MethodNotAllowed => {
            respond(&mut stream, 405, "Method Not Allowed", &[("Allow", "GET, HEAD")], b"method not allowed\n", false)
        }
        Route::Malformed => respond(&mut stream, 400, "Bad Request", &[], b"bad request\n", false),
    };
    finish(stream);
}

/// Closes our side, then drains briefly what the client still sends (a body
/// we ignored), so that the close does not turn into a reset that could
/// destroy the answer before the client read it.
fn finish(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Reads up to the end of the request head, within the deadline. `Ok(None)`
/// when the client closed without sending anything; `InvalidData` when the
/// head is too long or cut short.
fn read_head(stream: &mut TcpStream, limits: Limits) -> io::Result<Option<Vec<u8>>> {
    let until = Instant::now() + limits.deadline;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(io::ErrorKind::InvalidData.into()) };
        }
        // Look for the end from a little before the new bytes, in case it
        // straddles two reads.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(Some(head));
        }
        if head.len() > limits.max_head {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}

/// The request decoder's entry point (public for the fuzz targets): the
/// status the listener answers when a client sends `received` at once and
/// closes: 200 for `GET`/`HEAD` of `/metrics`, else 404, 405 or 400 (a head
/// that is malformed, longer than the limit, or never ends).
pub fn status_for(received: &[u8]) -> u16 {
    let head = match head_end(received) {
        Some(end) if end <= LIMITS.max_head => &received[..end],
        _ => return 400,
    };
    match parse_request(head) {
        Route::Metrics { .. } => 200,
        Route::NotFound => 404,
        Route::MethodNotAllowed => 405,
        Route::Malformed => 400,
    }
}

/// Where the head ends (after the blank line), tolerating bare LF line ends.
fn head_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else if b[i..].starts_with(b"\n\r\n") {
            Some(i + 3)
        } else {
            None
        }
    })
}

/// Parses a request head (request line and header lines).
fn parse_request(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else { return Route::Malformed };
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else { return Route::Malformed };
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts[..] else { return Route::Malformed };
    let is_token =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !is_token(method) || !matches!(version, "HTTP/1.0" | "HTTP/1.1") {
        return Route::Malformed;
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control() || b >= 0x80) {
        return Route::Malformed;
    }
    for line in lines.take_while(|l| !l.is_empty()) {
        // Every header line is `name: value`; continuation lines are obsolete.
        let Some((name, _)) = line.split_once(':') else { return Route::Malformed };
        if !is_token(name) {
            return Route::Malformed;
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    match (path, method) {
        ("/metrics", "GET") => Route::Metrics { head: false },
        ("/metrics", "HEAD") => Route::Metrics { head: true },
        ("/metrics", _) => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {code} {reason}\r\n");
    let has_type = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    for (name, value) in headers.iter().chain((!has_type).then_some(&("Content-Type", "text/plain; charset=utf-8"))) {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(body);
    }
    stream.write_all(&bytes)?;
    stream.flush()
}

// ---------------------------------------------------------------------------
// Textfile

/// Writes `text` to `path` atomically, for node_exporter's textfile
/// collector, through [`crate::util::fs::write_atomic`]: the temporary file
/// (`.NAME.*.tmp`, which the collector, reading `*.prom`, never picks up) is
/// created fresh, never through a symlink, synced, then renamed over `path`.
/// A reader sees the old file or the new one, never a part of either. Mode
/// 0644: node_exporter usually runs as another user.
pub fn write_textfile(path: &Path, text: &str) -> io::Result<()> {
    crate::util::fs::write_atomic(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests;
