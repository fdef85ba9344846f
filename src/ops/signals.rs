//! Signals as events. SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 and SIGUSR2
//! ([`meaning`] says what each asks for) are blocked in every thread
//! and taken by one thread with `sigwait`, which forwards them on a channel:
//! no async-signal-safety concerns, no `unsafe`, no self-pipe.
//!
//! [`block`] must run before any other thread starts, so that every thread
//! inherits the mask. Children started with `std::process::Command` get their
//! signal mask reset, so external checks are unaffected.
//!
//! Two phases. During startup ([`startup`]: flags and config being read and
//! validated, nothing announced yet) SIGTERM and SIGINT end the process at
//! once, as if no signal were handled: a config on a hung mount must not
//! make exaprobe unkillable. Once the engine (or the idle mode) calls
//! [`spawn`], every signal goes to its handler instead.

use std::sync::{Mutex, PoisonError};
use std::thread;

use nix::sys::signal::{SigSet, Signal};

/// The signals exaprobe handles.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    // Their default action would kill exaprobe without a withdraw: SIGQUIT
    // is taken as SIGTERM, SIGUSR1 and SIGUSR2 are logged and ignored.
    set.add(Signal::SIGQUIT);
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGUSR2);
    set
}

/// What a handled signal asks of a running exaprobe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// Withdraw and exit (SIGTERM, SIGINT, SIGQUIT).
    Stop,
    /// Reload the config (SIGHUP).
    Reload,
    /// Nothing: logged (SIGUSR1, SIGUSR2).
    Ignore,
}

/// What `sig` means.
pub fn meaning(sig: Signal) -> Meaning {
    match sig {
        Signal::SIGHUP => Meaning::Reload,
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => Meaning::Stop,
        _ => Meaning::Ignore,
    }
}

/// Who gets the signals: `None` during startup.
type Handler = Box<dyn Fn(Signal) + Send>;
static HANDLER: Mutex<Option<Handler>> = Mutex::new(None);
/// Whether the signal thread runs.
static STARTED: Mutex<bool> = Mutex::new(false);

/// Blocks the handled signals in the calling thread (and so in every thread
/// it starts afterwards).
pub fn block() -> nix::Result<()> {
    handled().thread_block()
}

/// Starts the startup phase: from now until [`spawn`], SIGTERM, SIGINT and
/// SIGQUIT end the process at once and the others are ignored.
pub fn startup() -> std::io::Result<()> {
    ensure_thread()
}

/// Hands every signal from now on to `on_signal` (starting the thread that
/// waits for signals, if the startup phase has not).
pub fn spawn(on_signal: impl Fn(Signal) + Send + 'static) -> std::io::Result<()> {
    *HANDLER.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(on_signal));
    ensure_thread()
}

fn ensure_thread() -> std::io::Result<()> {
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if *started {
        return Ok(());
    }
    thread::Builder::new().name("signals".into()).spawn(move || {
        let set = handled();
        loop {
            match set.wait() {
                Ok(sig) => dispatch(sig),
                Err(e) => {
                    log::error!("waiting for signals failed: {e}");
                    return;
                }
            }
        }
    })?;
    *started = true;
    Ok(())
}

fn dispatch(sig: Signal) {
    let handler = HANDLER.lock().unwrap_or_else(PoisonError::into_inner);
    match &*handler {
        Some(on_signal) => on_signal(sig),
        None if meaning(sig) == Meaning::Stop => die(sig),
        None => {}
    }
}

/// Ends the process as `sig`'s default action would (so the parent sees it
/// killed by that signal): unblocked in this thread and raised again.
fn die(sig: Signal) -> ! {
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = set.thread_unblock();
    let _ = nix::sys::signal::raise(sig);
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_signal_means() {
        assert_eq!(meaning(Signal::SIGTERM), Meaning::Stop);
        assert_eq!(meaning(Signal::SIGQUIT), Meaning::Stop);
        assert_eq!(meaning(Signal::SIGHUP), Meaning::Reload);
        assert_eq!(meaning(Signal::SIGUSR1), Meaning::Ignore);
    }
}
