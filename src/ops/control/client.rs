//! The client side of the control socket: one request, one reply, for
//! `exaprobe status|drain|undrain|recheck` and for tests.

use crate::util::exit::Exit;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};

use super::proto::{Reply, Request};

/// How long the client waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest reply read (a status of thousands of services fits).
const MAX_REPLY: u64 = 16 * 1024 * 1024;

/// Sends one request to a running exaprobe and returns its reply line, as
/// sent (without the newline).
pub fn call_line(socket: &Path, request: &Request) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach exaprobe at {} (is it running with this control socket?)", socket.display())
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    writeln!(stream, "{}", serde_json::to_string(request)?)?;
    let mut line = String::new();
    BufReader::new(stream).take(MAX_REPLY).read_line(&mut line).context("reading exaprobe's reply")?;
    if !line.ends_with('\n') {
        bail!("exaprobe's reply is cut short");
    }
    line.pop();
    Ok(line)
}

/// Sends one request to a running exaprobe and returns its reply.
pub fn call(socket: &Path, request: &Request) -> anyhow::Result<Reply> {
    let line = call_line(socket, request)?;
    serde_json::from_str(&line).context("exaprobe's reply is not a reply")
}

/// Runs a subcommand: sends `request`, prints the status for a human (or
/// the reply line with `json`, and for every other command), errors on
/// stderr. Exit code 0 on success, 1 on any failure.
pub fn command(socket: &Path, request: &Request, json: bool) -> Exit {
    let parsed = call_line(socket, request)
        .and_then(|line| Ok((serde_json::from_str::<Reply>(&line).context("exaprobe's reply is not a reply")?, line)));
    let (reply, line) = match parsed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exaprobe: {e:#}");
            return Exit::Failure;
        }
    };
    let text = match reply {
        Reply::Error(e) => {
            eprintln!("exaprobe: {e}");
            return Exit::Failure;
        }
        Reply::Status(status) if !json => super::render::render_status(&status),
        // The line as the daemon sent it: keys this client does not know survive.
        _ => format!("{line}\n"),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    Exit::Success
}
