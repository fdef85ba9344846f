//! `exaprobe drill SERVICE`: a game day in one command. It checks through the
//! control socket that the service is UP, drains it (the staged drain:
//! GRACEFUL_SHUTDOWN, then withdraw, as `exaprobe drain` does), undrains it
//! after `--for`, and meanwhile runs an optional witness command at a fixed
//! rate before, during and after the drain. It then reports what the witness
//! saw: when it first got an answer from elsewhere (different from the
//! baseline answer seen before the drain), how many answers were lost
//! (witness failures), when the site answered again after the undrain.
//!
//! It always undrains: at the end of `--for`, on SIGINT/SIGTERM/SIGQUIT, and
//! on a witness that cannot be started. As a backstop against a `kill -9` of
//! the drill itself, the drain is requested with an expiry `--for` plus
//! [`BACKSTOP`], so the daemon ends it by itself.
//!
//! Everything is bounded: the durations ([`MAX_PHASE`]), the rate
//! ([`MAX_RATE`]), each witness run ([`WITNESS_TIMEOUT_MAX`], killed when
//! over) and the witness output kept ([`MAX_OUTPUT`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::model::duration;
use crate::ops::control::{Reply, Request, call};
use crate::util::exit::Exit;

/// The longest `--before`, `--for` or `--after`.
pub const MAX_PHASE: Duration = Duration::from_secs(24 * 3600);
/// The highest `--rate` (witness runs per second).
pub const MAX_RATE: f64 = 100.0;
/// The lowest `--rate`.
pub const MIN_RATE: f64 = 0.01;
/// The longest `--witness-timeout`.
pub const WITNESS_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// Bytes of a witness's stdout kept as its answer (the rest is read and dropped).
pub const MAX_OUTPUT: usize = 4096;
/// How much longer than `--for` the daemon keeps the drain if the drill dies
/// without undraining.
pub const BACKSTOP: Duration = Duration::from_secs(10);
/// How often a wait without a witness looks at the signal flag.
const TICK: Duration = Duration::from_millis(20);

/// The drill's settings, as given on the command line (see `cli::Sub::Drill`).
#[derive(Clone, Debug)]
pub struct DrillArgs {
    /// The service to drain.
    pub service: String,
    /// `--for`: how long the drain lasts.
    pub duration: String,
    /// `--witness`: a shell command whose stdout is the answer.
    pub witness: Option<String>,
    /// `--rate`: witness runs per second.
    pub rate: f64,
    /// `--before`: the baseline phase.
    pub before: String,
    /// `--after`: the phase after the undrain (default: `--before`).
    pub after: Option<String>,
    /// `--witness-timeout`.
    pub witness_timeout: String,
    /// `--reason`.
    pub reason: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `--socket`.
    pub socket: PathBuf,
}

/// The validated settings.
#[derive(Clone, Debug)]
struct Plan {
    service: String,
    drain: Duration,
    before: Duration,
    after: Duration,
    witness: Option<String>,
    period: Duration,
    witness_timeout: Duration,
    reason: String,
}

fn phase(flag: &str, s: &str) -> Result<Duration, String> {
    let d = duration::parse(s).map_err(|e| format!("{flag}: {e}"))?;
    if d > MAX_PHASE {
        return Err(format!("{flag}: {} is longer than the limit of {}", duration::show(d), duration::show(MAX_PHASE)));
    }
    Ok(d)
}

impl Plan {
    fn new(a: &DrillArgs) -> Result<Plan, String> {
        let drain = phase("--for", &a.duration)?;
        if drain.is_zero() {
            return Err("--for: a drill needs a drain longer than 0".into());
        }
        let before = phase("--before", &a.before)?;
        let after = phase("--after", a.after.as_deref().unwrap_or(&a.before))?;
        if !(MIN_RATE..=MAX_RATE).contains(&a.rate) || !a.rate.is_finite() {
            return Err(format!("--rate: {} is not between {MIN_RATE} and {MAX_RATE} runs per second", a.rate));
        }
        let witness_timeout = duration::parse(&a.witness_timeout).map_err(|e| format!("--witness-timeout: {e}"))?;
        if witness_timeout.is_zero() || witness_timeout > WITNESS_TIMEOUT_MAX {
            return Err(format!(
                "--witness-timeout: must be above 0 and at most {}",
                duration::show(WITNESS_TIMEOUT_MAX)
            ));
        }
        if a.witness.as_deref().is_some_and(|w| w.trim().is_empty()) {
            return Err("--witness: the command is empty".into());
        }
        Ok(Plan {
            service: a.service.clone(),
            drain,
            before,
            after,
            witness: a.witness.clone(),
            period: Duration::from_secs_f64(1.0 / a.rate),
            witness_timeout,
            reason: a.reason.clone().unwrap_or_else(|| "drill".into()),
        })
    }
}

/// One witness run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// Exit 0 with this (trimmed, non-empty) output.
    Answer(String),
    /// Anything else: a failure, a timeout, an empty answer.
    Lost,
}

/// Counts of one phase.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseStats {
    /// Witness runs.
    pub runs: u64,
    /// Runs that answered the baseline answer.
    pub baseline: u64,
    /// Runs that answered something else.
    pub elsewhere: u64,
    /// Runs that failed (no answer).
    pub lost: u64,
}

impl PhaseStats {
    fn count(&mut self, seen: &Seen, baseline: Option<&str>) {
        self.runs += 1;
        match seen {
            Seen::Lost => self.lost += 1,
            Seen::Answer(a) if Some(a.as_str()) == baseline => self.baseline += 1,
            Seen::Answer(_) => self.elsewhere += 1,
        }
    }
}

/// What the drill saw; times are milliseconds since the drain request
/// (`first_elsewhere_ms`) or since the undrain request (`back_ms`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DrillReport {
    /// The service.
    pub service: String,
    /// The witness command, if any.
    pub witness: Option<String>,
    /// The answer the witness gave before the drain (the most frequent one).
    pub baseline: Option<String>,
    /// Unix time of the drain request.
    pub drained_at: Option<f64>,
    /// Unix time of the undrain request.
    pub undrained_at: Option<f64>,
    /// When the witness first answered something other than the baseline.
    pub first_elsewhere_ms: Option<f64>,
    /// That answer.
    pub elsewhere: Option<String>,
    /// Witness failures during the drain and after it.
    pub lost: u64,
    /// When the baseline answer came back after the undrain.
    pub back_ms: Option<f64>,
    /// Whether the site answered again (the baseline answer after the undrain).
    pub answered_again: bool,
    /// Counts before the drain.
    pub before: PhaseStats,
    /// Counts during the drain.
    pub during: PhaseStats,
    /// Counts after the undrain.
    pub after: PhaseStats,
    /// Whether a signal cut the drill short.
    pub interrupted: bool,
    /// Whether the undrain was acknowledged.
    pub undrained: bool,
    /// Errors met (the undrain failing, a witness that cannot start).
    pub errors: Vec<String>,
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Runs `cmd` through `sh -c`, keeping at most [`MAX_OUTPUT`] bytes of its
/// stdout, killing it after `timeout`.
fn run_witness(cmd: &str, timeout: Duration) -> std::io::Result<Seen> {
    use std::os::unix::process::CommandExt;
    // Its own process group, so a timeout kills the whole pipeline, not only the shell.
    let mut child: Child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut out = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
    let reader = thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut out).take(MAX_OUTPUT as u64).read_to_end(&mut kept);
        // Read the rest and drop it, so a chatty witness does not block on a full pipe.
        let _ = std::io::copy(&mut out, &mut std::io::sink());
        kept
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(2));
    };
    // A grandchild holding the pipe open would keep the reader going: give it
    // a moment only.
    let kept = join_bounded(reader, Duration::from_millis(200));
    Ok(match (status, kept) {
        (Some(st), Some(kept)) if st.success() => {
            let text = String::from_utf8_lossy(&kept).trim().to_string();
            if text.is_empty() { Seen::Lost } else { Seen::Answer(text) }
        }
        _ => Seen::Lost,
    })
}

fn join_bounded<T>(h: thread::JoinHandle<T>, wait: Duration) -> Option<T> {
    let until = Instant::now() + wait;
    while !h.is_finished() {
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
    h.join().ok()
}

/// The phases of a drill.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Before,
    During,
    After,
}

struct Drill<'a> {
    plan: &'a Plan,
    socket: &'a Path,
    stop: Arc<AtomicBool>,
    report: DrillReport,
    /// Answers seen before the drain, for the baseline.
    before_answers: Vec<String>,
    drained: Option<Instant>,
    undrained: Option<Instant>,
}

impl Drill<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Runs one phase for `len`; returns false when a signal cut it short.
    fn phase(&mut self, which: Phase, len: Duration) -> bool {
        let start = Instant::now();
        let end = start + len;
        let mut next = start;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            let Some(cmd) = self.plan.witness.clone() else {
                thread::sleep(TICK.min(end - now));
                continue;
            };
            if now < next {
                thread::sleep((next - now).min(TICK));
                continue;
            }
            // A fixed rate: the next run is one period after this one's
            // start; a witness slower than the period runs back to back.
            next += self.plan.period;
            if next < now {
                next = now;
            }
            let seen = match run_witness(&cmd, self.plan.witness_timeout) {
                Ok(s) => s,
                Err(e) => {
                    self.report.errors.push(format!("--witness: cannot run {cmd:?}: {e}"));
                    return false;
                }
            };
            let at = Instant::now();
            self.record(which, &seen, at);
        }
    }

    fn record(&mut self, which: Phase, seen: &Seen, at: Instant) {
        let baseline = self.report.baseline.clone();
        match which {
            Phase::Before => {
                self.report.before.runs += 1;
                match seen {
                    Seen::Answer(a) => self.before_answers.push(a.clone()),
                    Seen::Lost => self.report.before.lost += 1,
                }
            }
            Phase::During => {
                self.report.during.count(seen, baseline.as_deref());
                if let (Seen::Answer(a), Some(d)) = (seen, self.drained)
                    && Some(a.as_str()) != baseline.as_deref()
                    && self.report.first_elsewhere_ms.is_none()
                {
                    self.report.first_elsewhere_ms = Some(ms(at - d));
                    self.report.elsewhere = Some(a.clone());
                }
                if *seen == Seen::Lost {
                    self.report.lost += 1;
                }
            }
            Phase::After => {
                self.report.after.count(seen, baseline.as_deref());
                if let (Seen::Answer(a), Some(u)) = (seen, self.undrained)
                    && Some(a.as_str()) == baseline.as_deref()
                    && self.report.back_ms.is_none()
                {
                    self.report.back_ms = Some(ms(at - u));
                    self.report.answered_again = true;
                }
                if *seen == Seen::Lost {
                    self.report.lost += 1;
                }
            }
        }
    }

    /// The most frequent answer before the drain.
    fn settle_baseline(&mut self) {
        let mut best: Option<(&String, usize)> = None;
        for a in &self.before_answers {
            let n = self.before_answers.iter().filter(|b| *b == a).count();
            if best.is_none_or(|(_, m)| n > m) {
                best = Some((a, n));
            }
        }
        self.report.baseline = best.map(|(a, _)| a.clone());
        let baseline = self.report.baseline.clone();
        let answers = std::mem::take(&mut self.before_answers);
        for a in &answers {
            if Some(a) == baseline.as_ref() {
                self.report.before.baseline += 1;
            } else {
                self.report.before.elsewhere += 1;
            }
        }
    }

    fn undrain(&mut self) {
        self.undrained = Some(Instant::now());
        self.report.undrained_at = Some(unix_now());
        let req = Request::Undrain { service: Some(self.plan.service.clone()), all: false };
        match call(self.socket, &req) {
            Ok(Reply::Undrained(_)) => self.report.undrained = true,
            Ok(Reply::Error(e)) => self.report.errors.push(format!("undrain refused: {e}")),
            Ok(other) => self.report.errors.push(format!("undrain: unexpected reply {other:?}")),
            Err(e) => self.report.errors.push(format!("undrain failed: {e:#}")),
        }
        if !self.report.undrained {
            self.report.errors.push(format!(
                "the drain was NOT ended by the drill; exaprobe ends it by itself {} after it began, \
                 or run: exaprobe undrain {} --socket {}",
                duration::show(self.plan.drain + BACKSTOP),
                self.plan.service,
                self.socket.display()
            ));
        }
    }
}

/// Why a drill refuses to start.
fn precheck(socket: &Path, service: &str) -> Result<(), String> {
    let status = match call(socket, &Request::Status {}) {
        Ok(Reply::Status(s)) => s,
        Ok(Reply::Error(e)) => return Err(format!("status refused: {e}")),
        Ok(other) => return Err(format!("status: unexpected reply {other:?}")),
        Err(e) => return Err(format!("{e:#}")),
    };
    let Some(s) = status.services.iter().find(|s| s.name == service) else {
        let names: Vec<&str> = status.services.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("no service {service:?} (configured: {})", names.join(", ")));
    };
    if s.state != "UP" || s.drained.is_some() {
        return Err(format!(
            "refusing to drill {service}: it is {} ({}), not UP; a drill drains a service that is serving",
            s.state, s.reason
        ));
    }
    Ok(())
}

/// Runs `exaprobe drill`.
pub fn run(args: &DrillArgs) -> Exit {
    let plan = match Plan::new(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("exaprobe drill: {e}");
            return Exit::Invalid;
        }
    };
    if let Err(e) = precheck(&args.socket, &plan.service) {
        eprintln!("exaprobe drill: {e}");
        return Exit::Failure;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = crate::ops::signals::spawn(move |sig| {
        if crate::ops::signals::meaning(sig) == crate::ops::signals::Meaning::Stop {
            flag.store(true, Ordering::SeqCst);
        }
    }) {
        eprintln!("exaprobe drill: cannot take signals: {e}");
        return Exit::Failure;
    }
    let mut d = Drill {
        plan: &plan,
        socket: &args.socket,
        stop,
        report: DrillReport { service: plan.service.clone(), witness: plan.witness.clone(), ..Default::default() },
        before_answers: Vec::new(),
        drained: None,
        undrained: None,
    };
    let mut ok = d.phase(Phase::Before, plan.before);
    d.settle_baseline();
    if ok && plan.witness.is_some() && d.report.baseline.is_none() {
        d.report.errors.push("the witness never answered before the drain: no baseline, nothing drained".into());
        ok = false;
    }
    let mut drain_failed = false;
    if ok {
        // Once more, right before: the service may have gone down meanwhile.
        if let Err(e) = precheck(&args.socket, &plan.service) {
            d.report.errors.push(e);
            drain_failed = true;
        }
    }
    if ok && !drain_failed {
        let req = Request::Drain {
            service: Some(plan.service.clone()),
            all: false,
            duration: Some(duration::show(plan.drain + BACKSTOP)),
            reason: Some(plan.reason.clone()),
            by: String::new(),
        };
        d.drained = Some(Instant::now());
        d.report.drained_at = Some(unix_now());
        match call(&args.socket, &req) {
            Ok(Reply::Drained(_)) => {}
            Ok(Reply::Error(e)) => {
                d.report.errors.push(format!("drain refused: {e}"));
                drain_failed = true;
            }
            Ok(other) => {
                // Undrain all the same below: it may have been taken.
                d.report.errors.push(format!("drain: unexpected reply {other:?}"));
            }
            Err(e) => d.report.errors.push(format!("drain failed: {e:#}")),
        }
        if !drain_failed {
            ok = d.phase(Phase::During, plan.drain);
            d.undrain();
            if ok {
                let _ = d.phase(Phase::After, plan.after);
            }
        }
    }
    d.report.interrupted = d.stopped();
    let report = d.report;
    let text =
        if args.json { serde_json::to_string(&report).unwrap_or_default() + "\n" } else { render(&report, &plan) };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    for e in &report.errors {
        eprintln!("exaprobe drill: {e}");
    }
    let drained_ok = report.drained_at.is_some() && report.undrained && !drain_failed;
    if drained_ok && !report.interrupted && report.errors.is_empty() { Exit::Success } else { Exit::Failure }
}

/// The report for a human.
fn render(r: &DrillReport, plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "drill {}: drained for {}", r.service, duration::show(plan.drain));
    match &r.witness {
        None => {
            let _ = writeln!(s, "  no witness (--witness CMD): nothing observed");
        }
        Some(w) => {
            let _ = writeln!(s, "  witness: {w} ({:.3}/s)", 1.0 / plan.period.as_secs_f64());
            let _ = writeln!(s, "  baseline answer: {}", r.baseline.as_deref().map_or("none".into(), one_line));
            let phase = |name: &str, p: &PhaseStats| {
                format!(
                    "  {name}: {} runs, {} baseline, {} elsewhere, {} lost\n",
                    p.runs, p.baseline, p.elsewhere, p.lost
                )
            };
            s += &phase("before", &r.before);
            s += &phase("during", &r.during);
            s += &phase("after ", &r.after);
            match (r.first_elsewhere_ms, &r.elsewhere) {
                (Some(t), Some(a)) => {
                    let _ = writeln!(s, "  answered from elsewhere {t:.0} ms after the drain: {}", one_line(a));
                }
                _ if r.drained_at.is_some() => {
                    let _ = writeln!(s, "  never answered from elsewhere during the drain");
                }
                _ => {}
            }
            let _ = writeln!(s, "  answers lost during and after the drain: {}", r.lost);
            match r.back_ms {
                Some(t) => {
                    let _ = writeln!(s, "  site back {t:.0} ms after the undrain: it answered again");
                }
                None if r.undrained_at.is_some() => {
                    let _ = writeln!(s, "  the site did NOT answer again after the undrain");
                }
                None => {}
            }
        }
    }
    if r.drained_at.is_none() {
        let _ = writeln!(s, "  nothing was drained");
    } else if r.undrained {
        let _ = writeln!(s, "  undrained");
    }
    if r.interrupted {
        let _ = writeln!(s, "  interrupted by a signal");
    }
    s
}

fn one_line(a: &str) -> String {
    let flat: String = a.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
    format!("{flat:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> DrillArgs {
        DrillArgs {
            service: "dns".into(),
            duration: "5s".into(),
            witness: Some("echo a".into()),
            rate: 10.0,
            before: "1s".into(),
            after: None,
            witness_timeout: "1s".into(),
            reason: None,
            json: false,
            socket: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn bounds_are_enforced_with_the_flag_named() {
        let bad = |f: fn(&mut DrillArgs), want: &str| {
            let mut a = args();
            f(&mut a);
            let e = Plan::new(&a).unwrap_err();
            assert!(e.starts_with(want), "{e}");
        };
        bad(|a| a.rate = 1000.0, "--rate");
        bad(|a| a.rate = f64::NAN, "--rate");
        bad(|a| a.duration = "0s".into(), "--for");
        bad(|a| a.duration = "2d".into(), "--for");
        bad(|a| a.before = "x".into(), "--before");
        bad(|a| a.witness_timeout = "5m".into(), "--witness-timeout");
        bad(|a| a.witness = Some(" ".into()), "--witness");
        let p = Plan::new(&args()).unwrap();
        assert_eq!(p.period, Duration::from_millis(100));
        assert_eq!(p.after, Duration::from_secs(1), "--after defaults to --before");
    }

    #[test]
    fn a_witness_is_bounded_in_output_and_time() {
        let big = run_witness("head -c 100000 /dev/zero | tr '\\0' x", Duration::from_secs(5)).unwrap();
        let Seen::Answer(a) = big else { panic!("no answer") };
        assert_eq!(a.len(), MAX_OUTPUT);
        let t = Instant::now();
        assert_eq!(run_witness("sleep 5; echo late", Duration::from_millis(100)).unwrap(), Seen::Lost);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(run_witness("echo x; exit 1", Duration::from_secs(1)).unwrap(), Seen::Lost);
        assert_eq!(run_witness("true", Duration::from_secs(1)).unwrap(), Seen::Lost, "empty is no answer");
    }
}
