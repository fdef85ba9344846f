//! exaprobe: a health-checking ExaBGP API process.
//!
//! ExaBGP starts exaprobe from a `process` stanza. exaprobe probes local
//! services and writes ExaBGP text-API commands (`announce route …`,
//! `withdraw route …`) on stdout, with rise/fall hysteresis so that a
//! wobbling service does not flap its route.
//!
//! The folders follow the data, from what the user types to what ExaBGP reads:
//! - [`cli`]: command-line flags (a drop-in for the bundled healthcheck), the
//!   man page and completions;
//! - [`model`]: the validated domain: BGP values, durations, the one
//!   [`model::service::Service`], the JSON config and its validator;
//! - [`core`]: the pure decision logic: rise/fall state machines, dampening;
//! - [`engine`]: the scheduler that runs probes and turns their results into
//!   ExaBGP commands;
//! - [`exabgp`]: the channel to ExaBGP: encoder, stdout writer, stdin lines;
//! - [`fleet`]: the fleet client: the sites' shared store (etcd) behind the fleet guard;
//! - [`probe`]: the probes, one module per protocol;
//! - [`ops`]: what operators touch: the control socket and state file,
//!   metrics, logs, systemd notifications, signals;
//! - [`lint`]: the report of `exaprobe check`: lines per state, lints, RPKI;
//! - [`app`]: the program: mode selection, subcommands, startup errors under ExaBGP;
//! - [`util`]: helpers shared across folders: the one safe file writer.

pub mod app;
pub mod cli;
pub mod core;
pub mod engine;
pub mod exabgp;
pub mod fleet;
pub mod lint;
pub mod model;
pub mod ops;
pub mod probe;
pub mod util;
