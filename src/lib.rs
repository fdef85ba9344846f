//! exaprobe: a health-checking ExaBGP API process.
//!
//! ExaBGP starts exaprobe from a `process` stanza. exaprobe probes local
//! services and writes ExaBGP text-API commands (`announce route …`,
//! `withdraw route …`) on stdout, with rise/fall hysteresis so that a
//! wobbling service does not flap its route.
//!
//! Module map:
//! - [`cli`]: command-line flags (a drop-in for the bundled healthcheck) and
//!   their conversion into a validated [`service::Service`];
//! - [`bgp`]: validated BGP values (prefixes, next hops, communities, …);
//! - [`service`]: the validated description of one service;
//! - [`fsm`]: the rise/fall state machine, pure, with time passed in;
//! - [`encoder`]: renders ExaBGP command lines, pure;
//! - [`exabgp`]: the channel to ExaBGP: stdout writer, ack tracking, stdin lines;
//! - [`probe`]: the probes;
//! - [`engine`]: the scheduler that ties it all together;
//! - [`signals`]: signal delivery as events;
//! - [`generate`]: man page and completions from the clap definition;
//! - [`logger`]: the stderr logger.

pub mod bgp;
pub mod cli;
pub mod duration;
pub mod encoder;
pub mod engine;
pub mod exabgp;
pub mod fsm;
pub mod generate;
pub mod logger;
pub mod probe;
pub mod service;
pub mod signals;
