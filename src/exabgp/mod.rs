//! The channel to ExaBGP: what we write on stdout and what ExaBGP writes on
//! our stdin.
//!
//! ```text
//!   engine ──send/query──> Writer ──try_send──> Sink thread ──write(2)──> stdout ──> ExaBGP
//!     ^                      ^  <──reports (line fully written at t)──┘
//!     └──Routed::Event───────┴──on_stdin(Stamped)── stdin thread (read_lines) <── ExaBGP
//! ```
//!
//! - [`encoder`] renders command lines (pure).
//! - [`writer`]: [`Writer`], ack tracking, one command in flight, queries,
//!   supersession of a route's older lines. Never blocks; bounded.
//! - [`sink`]: the thread that owns stdout and writes whole lines; shutdown
//!   wins over a full pipe.
//! - [`stdin`]: classifies and reads ExaBGP's lines; total, bounded,
//!   drained to EOF, each line stamped with when it was read.
//! - [`adj_rib`]: parses `show adj-rib out [extensive]` answers and compares
//!   them with what should be announced (pure).

pub mod adj_rib;
pub mod encoder;
pub mod sink;
pub mod stdin;
pub mod writer;

pub use stdin::{Incoming, Stamped, parse_line, read_lines};
pub use writer::{AckMode, Answer, Counters, Routed, Writer};
