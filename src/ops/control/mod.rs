//! The control socket: a Unix socket speaking line-delimited JSON, used by
//! `exaprobe status|drain|undrain|recheck` and by any other tool. This module
//! owns the socket's settings and default path; the parts are:
//! - [`proto`]: the requests, replies and status report, as Rust types
//!   shared by server and client (the wire format is documented there);
//! - [`server`]: taking the path, binding it privately, serving within
//!   bounds;
//! - [`client`]: one request, one reply, and the subcommands' output;
//! - [`render`]: the status report as text.
//!
//! Protocol: one JSON object per line each way. Requests:
//!
//! ```text
//! {"command": "status"}
//! {"command": "drain", "service": "dns", "for": "10m", "reason": "kernel upgrade"}
//! {"command": "drain", "all": true}
//! {"command": "undrain", "service": "dns"}        {"command": "undrain", "all": true}
//! {"command": "recheck", "service": "dns"}
//! ```
//!
//! Every reply has `"ok": true|false`; a failed one has `"error"`. A status
//! reply has `"services": [ … ]` (see the README). Bad JSON or an unknown
//! command gets an error reply; the connection stays open for the next line.
//!
//! The socket is created with mode 0600 (or 0660 with a group). A socket file
//! that answers belongs to a live instance, and exaprobe refuses to take it;
//! one that does not answer is stale and is replaced; anything else at the
//! path is an error. Drains are kept in the state file ([`crate::ops::state`]).

use std::path::PathBuf;

pub mod client;
pub mod proto;
pub mod render;
mod render_fleet;
pub mod server;

pub use client::call;
pub use proto::{CheckStatus, DrainStatus, LastResult, Reply, Request, ServiceStatus, Status};
pub use render::render_status;
pub use server::{Call, serve};

/// The default state file, re-exported for the config's documentation.
pub use crate::ops::state::DEFAULT_STATE_FILE;

/// Where the socket is and who may use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlSettings {
    /// The socket path.
    pub socket: PathBuf,
    /// Its permission bits: 0o600, or 0o660 with `group`.
    pub mode: u32,
    /// The group allowed in with mode 0o660.
    pub group: Option<String>,
    /// Where drains are kept across restarts, when configured; see
    /// [`ControlSettings::state_path`].
    pub state_file: Option<PathBuf>,
}

/// The default socket path.
pub const DEFAULT_SOCKET: &str = "/run/exaprobe/exaprobe.sock";

impl Default for ControlSettings {
    /// The default socket, mode 0600, no group, the default state file.
    fn default() -> Self {
        ControlSettings { socket: PathBuf::from(DEFAULT_SOCKET), mode: 0o600, group: None, state_file: None }
    }
}

impl ControlSettings {
    /// The state file: the configured one, or the one that goes with the
    /// socket ([`crate::ops::state::default_path`]).
    pub fn state_path(&self) -> PathBuf {
        self.state_file.clone().unwrap_or_else(|| crate::ops::state::default_path(&self.socket))
    }
}
