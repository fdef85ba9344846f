//! The validated domain: everything runtime code sees of the user's input.
//!
//! Raw input (flags, JSON) is turned into these types once, by the
//! validator; nothing after that re-checks or re-parses user text.

pub mod bgp;
pub mod config;
pub mod duration;
pub mod file;
pub mod fleet;
pub mod origin;
pub mod raw;
pub mod service;
pub mod validate;
pub mod watch;
