//! What operators touch while exaprobe runs: the control socket and its
//! state file, the pid file, metrics, logs, systemd notifications and
//! signals.

pub mod control;
pub mod logger;
pub mod metrics;
pub mod pidfile;
pub mod sdnotify;
pub mod signals;
pub mod state;
