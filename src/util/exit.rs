//! The program's exit codes: one enum, mapped to a process exit code in one
//! place ([`From<Exit> for ExitCode`]), so every path that ends exaprobe
//! says which of the three outcomes it is.

use std::process::ExitCode;

/// How exaprobe ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0: it ran and stopped as asked (ExaBGP went away, a signal), a
    /// subcommand succeeded, `check` found no error.
    Success,
    /// 1: a run-time failure, or the daemon refused a control request.
    Failure,
    /// 2: the input is wrong: bad flags, an invalid config (`check` found
    /// errors), a subcommand where it cannot run.
    Invalid,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Invalid => 2,
        })
    }
}
