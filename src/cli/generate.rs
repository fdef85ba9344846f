//! Generated documentation: the man page and shell completions, built from
//! the same clap definition as `--help`, so they never drift from it.
//! Reached through the hidden `exaprobe generate man|bash|zsh|fish`.

use crate::util::exit::Exit;
use std::io::Write;

use clap::CommandFactory;

use crate::cli::Args;

/// What `exaprobe generate` can print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Artefact {
    /// The man page (roff), for `man 1 exaprobe`.
    Man,
    /// bash completion.
    Bash,
    /// zsh completion.
    Zsh,
    /// fish completion.
    Fish,
}

/// Prints `what` on stdout.
pub fn print(what: Artefact) -> Exit {
    let mut cmd = Args::command();
    let mut out = std::io::stdout().lock();
    let result = match what {
        Artefact::Man => clap_mangen::Man::new(cmd).render(&mut out),
        Artefact::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "exaprobe", &mut out);
            Ok(())
        }
        Artefact::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "exaprobe", &mut out);
            Ok(())
        }
        Artefact::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "exaprobe", &mut out);
            Ok(())
        }
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("exaprobe: generate: {e}");
            Exit::Failure
        }
    }
}
