//! Replay tests: scenarios as data (tests/replay/*.scenario), run through the
//! engine's pure core with a virtual clock, compared with the transcript in
//! the `.expected` file beside each: every stdout line, every transition and
//! every control reply, with its time.
//!
//! After a reviewed change of behaviour, rewrite the transcripts with
//! `EXAPROBE_BLESS=1 cargo test --test replay` and read the diff.
//!
//! # Scenario format
//!
//! ```text
//! # comment
//! ack: off | auto | wait 2s          (default off; auto: every line is acked at once)
//! config:
//! { JSON config, as for --config, up to a line `end` }
//! end
//! 0s    health web 0 down [reason]   (check 0 of web answers down from now on; default healthy)
//! 0s    latency web 0 3s             (its probes take 3 s from now on; default 0)
//! 1s    maintenance web on|off       (a maintenance file of web exists, or not)
//! 2s    stdin done                   (a line from ExaBGP)
//! 3s    control {"command":"drain","service":"web","for":"2s"}
//! 4s    reload                       (a new config follows, up to `end`)
//! 5s    event web exited 42          (a watch event: exited PID, gone [udp:]IP:PORT, maintenance PATH)
//! 9s    sigterm                      (drain on shutdown if configured, then the final withdraws)
//! 12s   end                          (stop the clock; default: the last event)
//! ```
//!
//! With a top-level `"fleet"` in the config, the fleet guard runs (its
//! store is scripted; it starts not connected), and these steps answer for it:
//!
//! ```text
//! 0s    store up|down [detail]       (Notice::Store)
//! 5s    verdict web withdraw         (answers web's latest question: Notice::Verdict)
//! 5s    verdict web hold 0 3         (hold: 0 others announcing of 3 sites)
//! 5s    verdict web local why        (the client decided locally)
//! 6s    changed web                  (another site's entry changed: Notice::Changed)
//! ```
//!
//! The transcript shows each call to the fleet client (`fleet ask …`,
//! `fleet publish …`), and a control reply that waits for a verdict as
//! `reply later #N`, then `reply #N {…}` when it comes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exaprobe::engine::core::watch::WatchEvent;
use exaprobe::engine::core::{Answer, Core, Effects, FleetCall};
use exaprobe::exabgp::{AckMode, Incoming, Stamped, Writer, parse_line};
use exaprobe::fleet::{Notice, Verdict};
use exaprobe::model::duration;
use exaprobe::model::service::Service;
use exaprobe::model::watch::parse_listen;
use exaprobe::ops::control::Request;
use exaprobe::probe::{Health, Outcome};

/// stdout, shared between the writer's sink thread and the test.
#[derive(Clone, Default)]
struct Out(Arc<Mutex<Vec<u8>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
enum Step {
    Health(String, usize, Health, String),
    Latency(String, usize, Duration),
    Maintenance(String, bool),
    Stdin(String),
    Control(String),
    Reload(String),
    Event(String, WatchEvent),
    Sigterm,
    End,
    Store(bool, String),
    Verdict(String, Verdict),
    Changed(String),
}

struct Scenario {
    ack: String,
    config: String,
    steps: Vec<(Duration, Step)>,
}

fn services(config: &str) -> Vec<Service> {
    match exaprobe::model::config::load(config) {
        Ok(c) => c.services,
        Err(e) => panic!("scenario config: {e:?}"),
    }
}

fn parse(text: &str) -> Scenario {
    let mut lines = text.lines();
    let (mut ack, mut config, mut steps) = ("off".to_string(), String::new(), Vec::new());
    let block = |lines: &mut std::str::Lines<'_>| -> String {
        let mut s = String::new();
        for l in lines.by_ref() {
            if l.trim() == "end" {
                return s;
            }
            s.push_str(l);
            s.push('\n');
        }
        panic!("a config block without `end`");
    };
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(a) = line.strip_prefix("ack:") {
            ack = a.trim().to_string();
            continue;
        }
        if line == "config:" {
            config = block(&mut lines);
            continue;
        }
        let (at, rest) = line.split_once(char::is_whitespace).expect("TIME STEP");
        let at = duration::parse(at).unwrap_or_else(|e| panic!("{at}: {e}"));
        let rest = rest.trim();
        let (verb, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let words: Vec<&str> = args.split_whitespace().collect();
        let step = match verb {
            "health" => {
                let health = match words[2] {
                    "healthy" => Health::Healthy,
                    "degraded" => Health::Degraded,
                    "down" => Health::Down,
                    h => panic!("health {h}"),
                };
                let reason = words.get(3).map_or(health.as_str(), |r| r).to_string();
                Step::Health(words[0].into(), words[1].parse().unwrap(), health, reason)
            }
            "latency" => Step::Latency(words[0].into(), words[1].parse().unwrap(), duration::parse(words[2]).unwrap()),
            "maintenance" => Step::Maintenance(words[0].into(), words[1] == "on"),
            "stdin" => Step::Stdin(args.to_string()),
            "control" => Step::Control(args.to_string()),
            "reload" => Step::Reload(block(&mut lines)),
            "event" => Step::Event(
                words[0].into(),
                match words[1] {
                    "exited" => WatchEvent::ProcessExited { pid: words[2].parse().unwrap() },
                    "gone" => WatchEvent::ListenerGone { listen: parse_listen(words[2]).unwrap() },
                    "maintenance" => WatchEvent::Maintenance { path: words[2].into(), exists: true },
                    e => panic!("event {e}"),
                },
            ),
            "sigterm" => Step::Sigterm,
            "store" => Step::Store(words[0] == "up", words[1..].join(" ")),
            "verdict" => Step::Verdict(
                words[0].into(),
                match words[1] {
                    "withdraw" => Verdict::Withdraw,
                    "hold" => {
                        Verdict::Hold { others_announcing: words[2].parse().unwrap(), sites: words[3].parse().unwrap() }
                    }
                    "local" => Verdict::Local { why: words[2..].join(" ") },
                    v => panic!("verdict {v}"),
                },
            ),
            "changed" => Step::Changed(words[0].into()),
            "end" => Step::End,
            v => panic!("unknown step {v}"),
        };
        steps.push((at, step));
    }
    Scenario { ack, config, steps }
}

/// Runs a scenario; returns its transcript.
fn run(s: &Scenario) -> String {
    let t0 = Instant::now();
    let out = Out::default();
    let mode = match s.ack.as_str() {
        "off" | "auto" => AckMode::NoWait,
        w => AckMode::Wait(duration::parse(w.strip_prefix("wait ").expect("ack: wait T")).unwrap()),
    };
    let auto_ack = s.ack == "auto";
    let mut core = Core::new(Writer::new(out.clone(), mode).unwrap(), services(&s.config), t0);
    if let Some(fleet) = exaprobe::model::config::load(&s.config).ok().and_then(|c| c.fleet) {
        core.enable_fleet(fleet.timeout);
    }
    // Each service's latest question to the fleet store.
    let mut tickets: HashMap<String, u64> = HashMap::new();
    let mut transcript = String::new();
    let mut health: HashMap<(String, usize), (Health, String)> = HashMap::new();
    let mut latency: HashMap<(String, usize), Duration> = HashMap::new();
    let mut maintenance: HashMap<String, bool> = HashMap::new();
    // Probe results to deliver: (when, order) -> (round, check, outcome, took).
    let mut pending: BTreeMap<(Duration, u64), (u64, usize, Outcome, Duration)> = BTreeMap::new();
    let mut order = 0u64;
    let end = s
        .steps
        .iter()
        .rev()
        .find(|(_, st)| matches!(st, Step::End))
        .or(s.steps.last())
        .map_or(Duration::ZERO, |(t, _)| *t);
    let mut steps = s.steps.iter().peekable();
    let mut flushed = 0usize;
    let mut now = Duration::ZERO;
    let log = |transcript: &mut String, at: Duration, what: &str| {
        transcript.push_str(&format!("{:>8.3} {what}\n", at.as_secs_f64()));
    };
    loop {
        let mut fx = Effects::default();
        core.tick(t0 + now, &mut fx).unwrap();
        // Results due now, then scenario steps due now.
        while let Some((&(at, o), _)) = pending.first_key_value() {
            if at > now {
                break;
            }
            let (round, check, outcome, took) = pending.remove(&(at, o)).unwrap();
            core.probe_done(round, check, outcome, took, t0 + now, &mut fx).unwrap();
        }
        let mut stop = false;
        while let Some((at, step)) = steps.peek() {
            if *at > now {
                break;
            }
            match step {
                Step::Health(svc, c, h, r) => {
                    health.insert((svc.clone(), *c), (*h, r.clone()));
                }
                Step::Latency(svc, c, d) => {
                    latency.insert((svc.clone(), *c), *d);
                }
                Step::Maintenance(svc, on) => {
                    maintenance.insert(svc.clone(), *on);
                }
                Step::Stdin(line) => {
                    log(&mut transcript, now, &format!("in  {line}"));
                    // Read after what was written: the sink thread stamps
                    // writes with the real clock, which the virtual one may
                    // trail at the start.
                    let read_at = Instant::now().max(t0 + now);
                    let incoming = Stamped { incoming: parse_line(line), read_at };
                    if core.stdin(incoming, t0 + now, &mut fx).unwrap().is_some() {
                        log(&mut transcript, now, "stop: ExaBGP gone");
                        stop = true;
                    }
                }
                Step::Control(json) => {
                    let request: Request = serde_json::from_str(json).expect("a control request");
                    let answer = core.control(request, t0 + now, 1_000_000.0 + now.as_secs_f64(), &mut fx).unwrap();
                    match answer {
                        Answer::Now(reply) => {
                            let reply = serde_json::to_value(&reply).unwrap();
                            log(&mut transcript, now, &format!("reply {}", redact(reply)));
                        }
                        Answer::Later(id) => log(&mut transcript, now, &format!("reply later #{id}")),
                    }
                }
                Step::Store(connected, detail) => {
                    let notice = Notice::Store { connected: *connected, detail: detail.clone() };
                    core.fleet_notice(notice, t0 + now, &mut fx).unwrap();
                }
                Step::Verdict(service, verdict) => {
                    let ticket = tickets.get(service).copied().expect("a verdict without a question");
                    let notice = Notice::Verdict { service: service.clone(), ticket, verdict: verdict.clone() };
                    core.fleet_notice(notice, t0 + now, &mut fx).unwrap();
                }
                Step::Changed(service) => {
                    core.fleet_notice(Notice::Changed { service: service.clone() }, t0 + now, &mut fx).unwrap();
                }
                Step::Reload(config) => {
                    core.reload(services(config), t0 + now, &mut fx).unwrap();
                }
                Step::Event(svc, event) => {
                    core.watch_event(svc, event.clone(), t0 + now, &mut fx).unwrap();
                }
                Step::Sigterm => {
                    log(&mut transcript, now, "SIGTERM");
                    let stage = core.begin_shutdown(t0 + now, &mut fx).unwrap();
                    if let Some(stage) = stage {
                        record(&mut transcript, &mut fx, &mut core, now, &out, &mut flushed, &mut tickets);
                        now += stage;
                    }
                    let lines = core.final_withdraws();
                    let written = core.writer().flush_final(&lines, Instant::now() + Duration::from_secs(5));
                    assert_eq!(written, lines.len());
                    stop = true;
                }
                Step::End => stop = true,
            }
            steps.next();
        }
        // Rounds: the maintenance file first, then each check's scripted result.
        let mut more = std::mem::take(&mut fx.rounds);
        while let Some(job) = more.pop() {
            let name = job.service.name.clone();
            let file = maintenance.get(&name).copied().unwrap_or(false).then(|| PathBuf::from("/maintenance"));
            core.round_checked(job.round, file.as_deref(), t0 + now, &mut fx).unwrap();
            more.append(&mut fx.rounds);
            if file.is_some() {
                continue;
            }
            for p in job.probes {
                let key = (name.clone(), p.check);
                let (h, reason) = health.get(&key).cloned().unwrap_or((Health::Healthy, "ok".into()));
                let took = latency.get(&key).copied().unwrap_or_default().min(p.timeout);
                let outcome = Outcome { health: h, reason, detail: String::new(), identity: None };
                let outcome =
                    if latency.get(&key).is_some_and(|l| *l >= p.timeout) { Outcome::down("timeout") } else { outcome };
                order += 1;
                pending.insert((now + took, order), (p.round, p.check, outcome, took));
            }
        }
        record(&mut transcript, &mut fx, &mut core, now, &out, &mut flushed, &mut tickets);
        if auto_ack {
            while core.writer().in_flight() > 0 {
                let done = Stamped { incoming: Incoming::Done, read_at: Instant::now().max(t0 + now) };
                core.stdin(done, t0 + now, &mut fx).unwrap();
                record(&mut transcript, &mut fx, &mut core, now, &out, &mut flushed, &mut tickets);
            }
        }
        if stop || now >= end {
            break;
        }
        let next_step = steps.peek().map(|(t, _)| *t);
        let next_result = pending.first_key_value().map(|((t, _), _)| *t);
        let next_core = core.next_deadline().map(|d| d.saturating_duration_since(t0));
        let Some(next) = [next_step, next_result, next_core].into_iter().flatten().min() else { break };
        now = next.max(now).min(end);
    }
    transcript
}

/// Appends the events and the new stdout lines to the transcript, once the
/// writer's sink thread wrote what it may.
fn record(
    transcript: &mut String,
    fx: &mut Effects,
    core: &mut Core<Out>,
    now: Duration,
    out: &Out,
    flushed: &mut usize,
    tickets: &mut HashMap<String, u64>,
) {
    assert!(core.writer().flush(Instant::now() + Duration::from_secs(5)), "the writer's sink is stuck");
    for e in fx.events.drain(..) {
        if e.level() <= log::Level::Info {
            transcript.push_str(&format!("{:>8.3} log {e}\n", now.as_secs_f64()));
        }
    }
    if fx.save_drains {
        transcript.push_str(&format!("{:>8.3} save-drains\n", now.as_secs_f64()));
        fx.save_drains = false;
    }
    for call in fx.fleet.drain(..) {
        let line = match call {
            FleetCall::Publish { service, entry } => format!(
                "fleet publish {service} announcing={} held={} state={} reason={:?}",
                entry.announcing, entry.held, entry.state, entry.reason
            ),
            FleetCall::Ask { service, ticket, min_sites, withdrawn } => {
                tickets.insert(service.clone(), ticket);
                format!("fleet ask {service} #{ticket} min_sites={min_sites} withdrawn.state={}", withdrawn.state)
            }
        };
        transcript.push_str(&format!("{:>8.3} {line}\n", now.as_secs_f64()));
    }
    for (id, reply) in fx.replies.drain(..) {
        let reply = serde_json::to_value(&reply).unwrap();
        transcript.push_str(&format!("{:>8.3} reply #{id} {}\n", now.as_secs_f64(), redact(reply)));
    }
    let buf = out.0.lock().unwrap();
    for line in String::from_utf8_lossy(&buf[*flushed..]).lines() {
        transcript.push_str(&format!("{:>8.3} out {line}\n", now.as_secs_f64()));
    }
    *flushed = buf.len();
}

/// Status replies carry float seconds; keep them but round for stability.
fn redact(v: serde_json::Value) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or_default();
                *v = serde_json::json!((f * 1000.0).round() / 1000.0);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            serde_json::Value::Object(o) => o.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = v;
    walk(&mut v);
    v.to_string()
}

fn scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    v.sort();
    v
}

#[test]
fn replay_scenarios() {
    let bless = std::env::var_os("EXAPROBE_BLESS").is_some();
    let mut failed = Vec::new();
    let all = scenarios();
    assert!(all.len() >= 10, "the scenarios are missing: {}", all.len());
    for path in all {
        let text = std::fs::read_to_string(&path).unwrap();
        let got = run(&parse(&text));
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            eprintln!("=== {} differs from {}:\n{got}", path.display(), expected_path.display());
            failed.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(failed.is_empty(), "scenarios whose transcript changed (EXAPROBE_BLESS=1 to accept): {failed:?}");
}
