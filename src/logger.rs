//! The stderr logger. stdout belongs to ExaBGP; every log line goes to
//! stderr, which ExaBGP passes on to its own output (and systemd to the
//! journal).
//!
//! Format: `2026-11-27T03:39:30.123Z exaprobe[pid] LEVEL message`; messages
//! about a service start with its name.

use std::io::Write;
use std::sync::OnceLock;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    pid: u32,
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        // One write per line, so lines from threads do not interleave.
        let line = format!("{now} exaprobe[{}] {level} {}\n", self.pid, record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger (once; later calls only change the level).
pub fn init(level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| StderrLogger { pid: std::process::id() });
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}
