//! SIGTERM during startup (flags and config being read: a config on a hung
//! mount, say) ends the process at once, as killed by it; SIGHUP, SIGUSR1
//! and SIGUSR2 are ignored then. A test binary of its own, without the test
//! harness, because signals must be blocked before any thread starts, as
//! exaprobe's `main` does, and the harness starts threads first: run with
//! no arguments it is the test, and it runs itself again as the child.

use std::io::BufRead;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use exaprobe::ops::signals;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHILD: &str = "EXAPROBE_STARTUP_SIGNALS_CHILD";

#[allow(clippy::print_stdout)]
fn child() -> ExitCode {
    signals::block().unwrap();
    signals::startup().unwrap();
    println!("startup phase");
    // A startup that hangs.
    std::thread::sleep(Duration::from_secs(30));
    println!("SIGTERM did not end the startup phase");
    ExitCode::FAILURE
}

fn test() -> Result<(), String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.contains("startup phase") {
        return Err(format!("the child said {line:?}"));
    }
    for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        kill(pid, sig).map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(300));
    if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
        return Err(format!("SIGHUP, SIGUSR1 or SIGUSR2 ended the startup: {st:?}"));
    }
    let t = Instant::now();
    kill(pid, Signal::SIGTERM).map_err(|e| e.to_string())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if t.elapsed() > Duration::from_secs(2) {
        return Err(format!("SIGTERM took {:?}", t.elapsed()));
    }
    if std::os::unix::process::ExitStatusExt::signal(&status) != Some(15) {
        return Err(format!("not killed by SIGTERM: {status:?}"));
    }
    Ok(())
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    if std::env::var_os(CHILD).is_some() {
        return child();
    }
    // `cargo test -- --ignored` (the e2e stages) and filters run every test
    // binary: this one runs only without arguments or when named.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if !args.is_empty() && !args.iter().any(|a| "sigterm_during_startup".contains(a.as_str())) {
        return ExitCode::SUCCESS;
    }
    match test() {
        Ok(()) => {
            println!("test sigterm_during_startup ... ok\n\n1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("test sigterm_during_startup ... FAILED: {e}\n\n0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
