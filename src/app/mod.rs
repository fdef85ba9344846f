//! The program: reads argv, picks the mode (a subcommand, a JSON config, or
//! one service from flags), and runs it.
//!
//! Under ExaBGP (stdin and stdout are both pipes) a fatal startup error must
//! not make exaprobe exit: ExaBGP respawns an exiting process and shuts
//! itself down after 5 respawns in 64 s. exaprobe then reports the error on
//! stderr, and idles until ExaBGP closes stdin or sends SIGTERM, repeating
//! the error every minute so the operator finds it in the log.

pub mod drill;
mod fleet;

use crate::util::exit::Exit;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use log::LevelFilter;

use crate::cli::{Args, Sub, expand_config};
use crate::engine::{self, Options, Reload, Stop};
use crate::exabgp::AckMode;
use crate::model::duration;
use crate::model::service::Service;

/// How often the idle mode repeats its error.
const IDLE_REPEAT: Duration = Duration::from_secs(60);

/// True when stdin and stdout are both pipes: ExaBGP started us.
fn under_exabgp() -> bool {
    use nix::sys::stat::{SFlag, fstat};
    use std::os::fd::AsFd;
    let is_pipe = |fd: std::os::fd::BorrowedFd<'_>| {
        fstat(fd).is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
    };
    is_pipe(std::io::stdin().as_fd()) && is_pipe(std::io::stdout().as_fd())
}

/// The program: parse, validate, run. Returns the process exit code.
pub fn main() -> Exit {
    // Before any thread exists, so that every thread inherits the mask.
    if let Err(e) = crate::ops::signals::block() {
        eprintln!("exaprobe: cannot block signals: {e}");
        return Exit::Failure;
    }
    // Until the engine takes the signals, SIGTERM and SIGINT end exaprobe at
    // once: reading a config on a hung mount must not make it unkillable.
    if let Err(e) = crate::ops::signals::startup() {
        eprintln!("exaprobe: cannot wait for signals: {e}");
        return Exit::Failure;
    }
    let exabgp = under_exabgp();
    let argv = match expand_config(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(msg) => return fatal("exaprobe", &[msg], exabgp),
    };
    let parsed = Args::command().try_get_matches_from(argv).and_then(|m| Args::from_arg_matches(&m).map(|a| (a, m)));
    let (args, matches) = match parsed {
        Ok(a) => a,
        Err(err) => {
            use clap::error::ErrorKind;
            return match err.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion if !exabgp => {
                    let _ = err.print();
                    Exit::Success
                }
                _ => fatal("exaprobe", &[crate::cli::clap_error_text(&err)], exabgp),
            };
        }
    };
    match &args.command {
        // A subcommand prints for a human; in a `run` line its output would
        // reach ExaBGP as commands and its exit would start a respawn loop.
        Some(_) if exabgp => {
            let msg = "subcommands (check, status, drain, …) are for a shell, not for ExaBGP's process stanza";
            return fatal("exaprobe", &[msg.to_string()], exabgp);
        }
        Some(Sub::Generate { what }) => return crate::cli::generate::print(*what),
        Some(Sub::Check { config, vrps, origin_as }) => return check(config, vrps.as_deref(), origin_as.as_deref()),
        Some(Sub::Drill {
            service,
            duration,
            witness,
            rate,
            before,
            after,
            witness_timeout,
            reason,
            json,
            force,
            socket,
        }) => {
            return drill::run(&drill::DrillArgs {
                service: service.clone(),
                duration: duration.clone(),
                witness: witness.clone(),
                rate: *rate,
                before: before.clone(),
                after: after.clone(),
                witness_timeout: witness_timeout.clone(),
                reason: reason.clone(),
                json: *json,
                force: *force,
                socket: socket.clone(),
            });
        }
        Some(Sub::Fleet(fleet)) => return self::fleet::run(fleet),
        Some(sub) => return client(sub),
        None => {}
    }
    let name = log_name(&args);
    crate::ops::logger::init(if args.debug { LevelFilter::Debug } else { args.log_level });
    let (services, options, reload, log_level) = if let Some(path) = args.config.clone() {
        match config_mode(&args, &matches, &path) {
            Ok((services, options, reload)) => (services, options, Some(reload), args.level()),
            Err(errors) => return fatal("exaprobe", &errors, exabgp),
        }
    } else {
        match args.settings() {
            Ok(s) => (vec![s.service], s.options, None, s.log_level),
            Err(errors) => return fatal(&name, &errors, exabgp),
        }
    };
    let mut options = options;
    crate::ops::logger::init_with(log_level, args.log_target);
    // systemd notification only when standalone: under ExaBGP a
    // NOTIFY_SOCKET in the environment would be ExaBGP's own unit's.
    options.notify = !exabgp;
    options.read_stdin |= exabgp;
    if exabgp && options.dry_run {
        log::warn!("--dry-run under ExaBGP: the lines go to ExaBGP all the same, without waiting for acks");
    }
    let _pid = match args.pid.as_deref().map(crate::ops::pidfile::PidFile::create).transpose() {
        Ok(p) => p,
        Err(msg) => return fatal(&name, &[msg], exabgp),
    };
    for s in &services {
        log::info!(
            "{}: {} prefix(es) {}, checks [{}], interval {}, fast-interval {}, timeout {}, rise {}, fall {}{}",
            s.name,
            s.prefixes.len(),
            s.prefixes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            s.checks.iter().map(|c| c.check.to_string()).collect::<Vec<_>>().join(", "),
            duration::show(s.timing.interval),
            duration::show(s.timing.fast_interval),
            duration::show(s.timing.timeout),
            s.timing.rise,
            s.timing.fall,
            if options.dry_run { ", dry run" } else { "" },
        );
    }
    // A socket that is taken, say, must not make exaprobe exit under ExaBGP
    // any more than a bad flag.
    let engine = match engine::start(services, &options, reload) {
        Ok(e) => e,
        Err(e) => return fatal(&name, &[format!("{e:#}")], exabgp),
    };
    match engine.run() {
        Ok(Stop::ExabgpGone | Stop::Signalled) => Exit::Success,
        Err(e) => {
            log::error!("{e:#}");
            Exit::Failure
        }
    }
}

/// The name that prefixes exaprobe's own messages: the service's, when it is
/// valid (an invalid one could forge log lines), else the first prefix's,
/// else `exaprobe`.
fn log_name(args: &Args) -> String {
    match &args.name {
        Some(n) => crate::model::validate::valid_name(n).unwrap_or_else(|_| "exaprobe".into()),
        None => args
            .ips
            .first()
            .and_then(|p| p.parse::<crate::model::bgp::Prefix>().ok())
            .map_or_else(|| "exaprobe".into(), |p| p.to_string()),
    }
}

/// Flags that go with `--config` (a JSON file); the others describe a
/// single service and are refused with it.
const CONFIG_MODE_FLAGS: [&str; 18] = [
    "config",
    "dry_run",
    "no_ack",
    "ack_timeout",
    "log_level",
    "log_target",
    "debug",
    "silent",
    "pid",
    "no_syslog",
    "no_ip_setup",
    "debounce",
    "control_socket",
    "state_file",
    "metrics_listen",
    "metrics_textfile",
    "name",
    "command",
];

/// The services and options of a JSON config, and how to reload it.
fn config_mode(
    args: &Args,
    matches: &clap::ArgMatches,
    path: &Path,
) -> Result<(Vec<Service>, Options, Reload), Vec<String>> {
    use clap::parser::ValueSource;
    let cmd = Args::command();
    let extra: Vec<String> = cmd
        .get_arguments()
        .filter(|a| {
            let id = a.get_id().as_str();
            matches.value_source(id) == Some(ValueSource::CommandLine) && !CONFIG_MODE_FLAGS.contains(&id)
        })
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    if !extra.is_empty() {
        return Err(vec![format!(
            "--config {} describes the services; the single-service flags {} go in that file instead",
            path.display(),
            extra.join(" ")
        )]);
    }
    let show = |errors: Vec<crate::model::config::ConfigError>| -> Vec<String> {
        errors.iter().map(|e| format!("{}: {e}", path.display())).collect()
    };
    let config = crate::model::config::load_file(path).map_err(show)?;
    for w in &config.warnings {
        log::warn!("{}: {w}", path.display());
    }
    let ack_timeout = duration::parse(&args.ack_timeout).map_err(|e| vec![format!("--ack-timeout: {e}")])?;
    let mut control = config.control.clone();
    if let Some(s) = &args.control_socket {
        control.socket.clone_from(s);
    }
    if let Some(s) = &args.state_file {
        control.state_file = Some(s.clone());
    }
    let options = Options {
        ack: if args.no_ack { AckMode::NoWait } else { AckMode::Wait(ack_timeout) },
        dry_run: args.dry_run,
        read_stdin: !args.dry_run,
        workers: config.workers,
        control: Some(control),
        metrics: engine::MetricsOptions {
            listen: args.metrics_listen.or(config.metrics.listen),
            textfile: args.metrics_textfile.clone().or_else(|| config.metrics.textfile.clone()),
        },
        notify: false,
        fleet: config.fleet.clone(),
    };
    let file = path.to_path_buf();
    // The fleet client is started once, with these settings: a reload
    // cannot change them (services guarded without a running client are
    // decided per host).
    let running_fleet = config.fleet.clone();
    let reload: Reload = Box::new(move || {
        let shown = |errors: Vec<crate::model::config::ConfigError>| -> Vec<String> {
            errors.iter().map(|e| format!("{}: {e}", file.display())).collect()
        };
        let config = crate::model::config::load_file(&file).map_err(shown)?;
        if config.fleet != running_fleet {
            let change = match (&running_fleet, &config.fleet) {
                (None, Some(_)) => "added",
                (Some(_), None) => "removed",
                _ => "changed",
            };
            log::warn!(
                "{}: the top-level \"fleet\" was {change}: restart exaprobe to apply it; until then {}",
                file.display(),
                if running_fleet.is_some() {
                    "the running fleet client keeps its settings (services without a guard are not counted)"
                } else {
                    "no fleet client runs, every service is decided per host"
                }
            );
        }
        Ok(config.services)
    });
    Ok((config.services, options, reload))
}

/// `exaprobe check`: validate, lint, report.
fn check(path: &Path, vrps: Option<&Path>, origin_as: Option<&str>) -> Exit {
    let config = match crate::model::config::load_file(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}: error: {e}", path.display());
            }
            eprintln!("{}: {} error(s); the config is not valid", path.display(), errors.len());
            return Exit::Invalid;
        }
    };
    let vrps = match vrps.map(crate::lint::load_vrps).transpose() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("--vrps: {e}");
            return Exit::Invalid;
        }
    };
    let origin = match origin_as.map(crate::model::config::parse_asn).transpose() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("--origin-as: {e}");
            return Exit::Invalid;
        }
    };
    let report = crate::lint::report(&config, vrps.as_ref(), origin);
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_all(&mut out, report.text.as_bytes());
    if report.errors > 0 { Exit::Invalid } else { Exit::Success }
}

/// Runs a control-socket subcommand.
fn client(sub: &Sub) -> Exit {
    use crate::ops::control::Request;
    let (socket, request, json) = match sub {
        Sub::Status { json, socket } => (socket, Request::Status {}, *json),
        Sub::Drain { service, all, duration, reason, force, socket } => {
            let (service, duration, reason) = (service.clone(), duration.clone(), reason.clone());
            let force = *force;
            (socket, Request::Drain { service, all: *all, duration, reason, force, by: String::new() }, false)
        }
        Sub::Undrain { service, all, socket } => {
            (socket, Request::Undrain { service: service.clone(), all: *all }, false)
        }
        Sub::Recheck { service, socket } => (socket, Request::Recheck { service: service.clone() }, false),
        Sub::Check { .. } | Sub::Generate { .. } | Sub::Drill { .. } | Sub::Fleet(_) => return Exit::Invalid,
    };
    crate::ops::control::client::command(socket, &request, json)
}

/// Reports a fatal startup error: exit 2 when run by hand; under ExaBGP,
/// idle (see the module docs).
fn fatal(name: &str, errors: &[String], exabgp: bool) -> Exit {
    let report = || {
        for e in errors {
            for line in e.lines() {
                eprintln!("exaprobe[{name}]: error: {line}");
            }
        }
    };
    report();
    if !exabgp {
        return Exit::Invalid;
    }
    eprintln!(
        "exaprobe[{name}]: not exiting, so that ExaBGP does not respawn exaprobe until it shuts itself down; \
         idle until ExaBGP stops us. Fix the flags and reload ExaBGP."
    );
    let (tx, rx) = mpsc::channel::<()>();
    let sig_tx = tx.clone();
    let started = crate::ops::signals::spawn(move |sig| {
        if sig != nix::sys::signal::Signal::SIGHUP {
            let _ = sig_tx.send(());
        }
    });
    let stdin = std::thread::Builder::new().name("stdin".into()).spawn(move || {
        crate::exabgp::read_lines(std::io::stdin().lock(), |line| {
            if line.is_none_or(|l| l.incoming == crate::exabgp::Incoming::Shutdown) {
                let _ = tx.send(());
            }
        });
    });
    if started.is_err() || stdin.is_err() {
        return Exit::Invalid;
    }
    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(IDLE_REPEAT) {
        report();
    }
    Exit::Invalid
}
