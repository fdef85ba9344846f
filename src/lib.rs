//! exaprobe: a health-checking ExaBGP API process.
//!
//! ExaBGP starts exaprobe from a `process` stanza. exaprobe probes local
//! services and writes ExaBGP text-API commands (`announce route …`,
//! `withdraw route …`) on stdout, with rise/fall hysteresis so that a
//! wobbling service does not flap its route.
//!
//! Module map:
//! - [`app`]: the program: mode selection, subcommands, startup errors under ExaBGP;
//! - [`cli`]: command-line flags (a drop-in for the bundled healthcheck) and
//!   their conversion into a validated [`service::Service`];
//! - [`bgp`]: validated BGP values (prefixes, next hops, communities, …);
//! - [`service`]: the validated description of one service;
//! - [`config`]: the JSON config file (`--config`): schema and validation;
//! - [`lint`]: the report of `exaprobe check`: lines per state, lints, RPKI;
//! - [`control`]: the control socket (status, drain, recheck) and its state file;
//! - [`dampening`]: RFC 2439-style flap dampening, pure;
//! - [`fsm`]: the rise/fall state machine, pure, with time passed in;
//! - [`encoder`]: renders ExaBGP command lines, pure;
//! - [`exabgp`]: the channel to ExaBGP: stdout writer, ack tracking, stdin lines;
//! - [`probe`]: the probes;
//! - [`engine`]: the scheduler that ties it all together;
//! - [`signals`]: signal delivery as events;
//! - [`generate`]: man page and completions from the clap definition;
//! - [`logger`]: the logger: stderr, syslog or journald;
//! - [`metrics`]: Prometheus metrics: registry, exposition, HTTP listener, textfile;
//! - [`sdnotify`]: systemd readiness and watchdog notifications.

pub mod app;
pub mod bgp;
pub mod cli;
pub mod config;
pub mod control;
pub mod dampening;
pub mod duration;
pub mod encoder;
pub mod engine;
pub mod exabgp;
pub mod fsm;
pub mod generate;
pub mod lint;
pub mod logger;
pub mod metrics;
pub mod probe;
pub mod sdnotify;
pub mod service;
pub mod signals;
