//! Signals as events. SIGTERM, SIGINT and SIGHUP are blocked in every thread
//! and taken by one thread with `sigwait`, which forwards them on a channel:
//! no async-signal-safety concerns, no `unsafe`, no self-pipe.
//!
//! [`block`] must run before any other thread starts, so that every thread
//! inherits the mask. Children started with `std::process::Command` get their
//! signal mask reset, so external checks are unaffected.

use std::thread;

use nix::sys::signal::{SigSet, Signal};

/// The signals exaprobe handles.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set
}

/// Blocks the handled signals in the calling thread (and so in every thread
/// it starts afterwards).
pub fn block() -> nix::Result<()> {
    handled().thread_block()
}

/// Starts the thread that waits for signals and hands each to `on_signal`.
pub fn spawn(on_signal: impl Fn(Signal) + Send + 'static) -> std::io::Result<()> {
    thread::Builder::new().name("signals".into()).spawn(move || {
        let set = handled();
        loop {
            match set.wait() {
                Ok(sig) => on_signal(sig),
                Err(e) => {
                    log::error!("waiting for signals failed: {e}");
                    return;
                }
            }
        }
    })?;
    Ok(())
}
