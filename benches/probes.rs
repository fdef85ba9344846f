//! Benchmark: CPU and wall time of the native probes against the `--cmd`
//! shell checks they replace (`nc -z`, `curl -sf`, `dig +short`), per 1000
//! probes, against servers on 127.0.0.1 (ephemeral ports): the HTTP and DNS
//! responders of `tests/fixtures` and a plain accept-and-close TCP listener.
//!
//! `cargo bench --bench probes [-- KIND...]`, or `scripts/bench-probes`, which
//! installs nc, curl and dig first. KIND is `tcp`, `http` or `dns` (default:
//! all three). Each method runs after a short warm-up; the counts are
//! `EXAPROBE_BENCH_NATIVE` (default 1000) native probes and
//! `EXAPROBE_BENCH_SHELL` (default 200) shell probes per kind, all scaled to
//! "per 1000 probes" in the table.
//!
//! CPU time is user + system time from getrusage: `RUSAGE_SELF` (this
//! process, all its threads, so a command probe's helper threads count) plus
//! `RUSAGE_CHILDREN` (the shells and tools it ran, once reaped; a shell's own
//! children are folded into it when it reaps them). The shell checks go
//! through [`CommandProbe`] with [`Program::Shell`], exactly as `--cmd` runs
//! them (`/bin/sh -c`, own process group, output captured). The servers run
//! in a separate process (this binary, re-executed with `EXAPROBE_BENCH_SERVE`
//! set), so their work is not in the probes' CPU time; it has its own column,
//! from the server process's `/proc/PID/stat` (10 ms ticks).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it is a smoke
//! test instead: a few probes of each method, skipping missing tools, and
//! its arguments (test filters) are ignored. It fails (exit 1) if any probe
//! was not healthy, bench or smoke test.

#![allow(clippy::print_stdout, reason = "a benchmark prints its table")]

#[allow(dead_code, reason = "the bench uses only the plain TCP, HTTP and DNS servers")]
#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use exaprobe::probe::command::{Children, CommandProbe, ExitCodes, Program};
use exaprobe::probe::dns::DnsProbe;
use exaprobe::probe::http::HttpProbe;
use exaprobe::probe::tcp::TcpProbe;
use exaprobe::probe::{Health, Outcome};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;
use nix::unistd::{SysconfVar, sysconf};

/// Set in the environment of the re-executed binary that runs the servers.
const SERVE_ENV: &str = "EXAPROBE_BENCH_SERVE";
/// Timeouts: generous, every probe here is expected to succeed.
const NATIVE_TIMEOUT: Duration = Duration::from_secs(2);
const SHELL_TIMEOUT: Duration = Duration::from_secs(5);
const KINDS: [&str; 3] = ["tcp", "http", "dns"];

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        serve();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    // Kinds only with --bench: under `cargo test -- FILTER` the words are test filters.
    let kinds: Vec<&str> = args.iter().filter(|a| bench && !a.starts_with('-')).map(String::as_str).collect();
    if let Some(bad) = kinds.iter().find(|k| !KINDS.contains(k)) {
        eprintln!("probes bench: unknown kind {bad:?} (known: {})", KINDS.join(", "));
        std::process::exit(2);
    }
    let wanted = |kind: &str| kinds.is_empty() || kinds.contains(&kind);
    let counts = if bench {
        Counts { native: env_count("EXAPROBE_BENCH_NATIVE", 1000), shell: env_count("EXAPROBE_BENCH_SHELL", 200) }
    } else {
        Counts { native: 5, shell: 2 }
    };

    let servers = Servers::start();
    let children = Children::default();
    let mut rows = Vec::new();
    for kind in KINDS.into_iter().filter(|k| wanted(k)) {
        let (native, shell) = methods(kind, &servers);
        let native_sample = measure(&servers, counts.native, counts.native / 50, &|| native.run(NATIVE_TIMEOUT));
        let shell_sample = on_path(shell.tool)
            .then(|| measure(&servers, counts.shell, counts.shell / 40, &|| shell.run(SHELL_TIMEOUT, &children)));
        rows.push(Row { kind, native: native_sample, shell, shell_sample });
    }
    drop(servers);

    print_table(bench, &counts, &rows);
    let failed: usize = rows.iter().map(|r| r.native.failed + r.shell_sample.as_ref().map_or(0, |s| s.failed)).sum();
    if failed > 0 {
        eprintln!("probes bench: {failed} probe(s) were not healthy; the numbers above are not meaningful");
        std::process::exit(1);
    }
}

struct Counts {
    native: usize,
    shell: usize,
}

fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => match v.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("probes bench: {name}={v:?} is not a positive count");
                std::process::exit(2);
            }
        },
    }
}

// ------------------------------------------------------------------- servers

/// Server mode: starts the servers, prints their addresses on one line and
/// serves until stdin closes.
fn serve() {
    // Not fixtures::TcpServer: it starts a thread per connection. And a deep accept queue: with
    // std's (128), a connect-only probe every 20 µs fills it whenever the acceptor is not
    // scheduled for a few ms, and the dropped SYN costs that probe a 1 s retransmission.
    let tcp = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    tcp.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    tcp.listen(4096).expect("listen");
    let tcp = std::net::TcpListener::from(tcp);
    let tcp_addr = tcp.local_addr().expect("addr");
    std::thread::spawn(move || tcp.incoming().for_each(drop));
    let http = fixtures::HttpServer::start();
    let dns = fixtures::DnsServer::start();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} {} {}", tcp_addr, http.addr, dns.addr).and_then(|()| out.flush()).expect("write addresses");
    drop(out);
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// The server process, as seen from the bench.
struct Servers {
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
    dns: SocketAddr,
    clock_ticks: u64,
}

impl Servers {
    fn start() -> Self {
        let exe = std::env::current_exe().expect("the bench's own path");
        let mut child = Command::new(exe)
            .env(SERVE_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server process");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read the server addresses");
        let addrs: Vec<SocketAddr> = line.split_whitespace().map(|a| a.parse().expect("an address")).collect();
        let [tcp, http, dns] = addrs[..] else { panic!("expected 3 server addresses, got {line:?}") };
        let clock_ticks =
            sysconf(SysconfVar::CLK_TCK).ok().flatten().and_then(|t| u64::try_from(t).ok()).unwrap_or(100);
        Servers { child, tcp, http, dns, clock_ticks }
    }

    /// CPU time (user + system, all threads) the server process has used.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("server stat");
        // After "(comm)": field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        let fields: Vec<&str> = stat.rsplit_once(')').expect("stat format").1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        Duration::from_nanos(ticks * 1_000_000_000 / self.clock_ticks)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------- methods

/// A native probe, as `--tcp`, `--http` or `--dns` builds it from its flag form.
enum Native {
    Tcp(TcpProbe),
    Http(HttpProbe),
    Dns(DnsProbe),
}

impl Native {
    fn run(&self, timeout: Duration) -> Outcome {
        match self {
            Native::Tcp(p) => p.run(timeout),
            Native::Http(p) => p.run(timeout),
            Native::Dns(p) => p.run(timeout),
        }
    }
}

/// A `--cmd` check.
struct Shell {
    /// Short name for the table.
    name: &'static str,
    /// The program it needs on PATH.
    tool: &'static str,
    /// The shell string, with `PORT` for the port (for the legend).
    template: &'static str,
    probe: CommandProbe,
}

impl Shell {
    fn new(name: &'static str, tool: &'static str, template: &'static str, port: u16) -> Self {
        let program = Program::Shell(template.replace("PORT", &port.to_string()));
        Shell {
            name,
            tool,
            template,
            probe: CommandProbe { program, exit_codes: ExitCodes::ZeroIsHealthy, run_as: None },
        }
    }

    fn run(&self, timeout: Duration, children: &Children) -> Outcome {
        self.probe.run(timeout, children)
    }
}

fn methods(kind: &str, s: &Servers) -> (Native, Shell) {
    fn flag<T>(e: exaprobe::probe::SpecError) -> T {
        panic!("flag form: {e}")
    }
    match kind {
        "tcp" => (
            Native::Tcp(s.tcp.to_string().parse().unwrap_or_else(flag)),
            Shell::new("nc -z", "nc", "nc -z 127.0.0.1 PORT", s.tcp.port()),
        ),
        "http" => (
            Native::Http(format!("http://{}/", s.http).parse().unwrap_or_else(flag)),
            Shell::new("curl -sf", "curl", "curl -sf -o /dev/null http://127.0.0.1:PORT/", s.http.port()),
        ),
        "dns" => (
            // The fixture answers A 192.0.2.1 for any name; dig must exit 0 and print an answer.
            Native::Dns(format!("{} example.com A answer=192.0.2.1", s.dns).parse().unwrap_or_else(flag)),
            Shell::new(
                "dig +short",
                "dig",
                r#"out=$(dig +short +time=1 +tries=1 @127.0.0.1 -p PORT example.com A) && [ -n "$out" ]"#,
                s.dns.port(),
            ),
        ),
        _ => unreachable!("kinds are checked in main"),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

// --------------------------------------------------------------- measurement

struct Sample {
    probes: usize,
    wall: Duration,
    cpu: Duration,
    server_cpu: Duration,
    failed: usize,
    first_failure: Option<Outcome>,
    /// Each probe's wall time, sorted.
    times: Vec<Duration>,
}

impl Sample {
    fn per_1000(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e3 * 1000.0 / self.probes as f64
    }

    /// A percentile of the single probes' wall times, in ms.
    fn percentile_ms(&self, p: usize) -> f64 {
        let i = (self.times.len() * p / 100).min(self.times.len().saturating_sub(1));
        self.times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// This process's CPU time plus that of its reaped children.
fn own_cpu() -> Duration {
    let total = |t: TimeVal| Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64);
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| getrusage(who).expect("getrusage"))
        .map(|u| total(u.user_time()) + total(u.system_time()))
        .sum()
}

fn measure(servers: &Servers, probes: usize, warmup: usize, run: &dyn Fn() -> Outcome) -> Sample {
    for _ in 0..warmup {
        run();
    }
    let (cpu, server_cpu, start) = (own_cpu(), servers.cpu(), Instant::now());
    let mut sample = Sample {
        probes,
        wall: Duration::ZERO,
        cpu: Duration::ZERO,
        server_cpu: Duration::ZERO,
        failed: 0,
        first_failure: None,
        times: Vec::with_capacity(probes),
    };
    for _ in 0..probes {
        let one = Instant::now();
        let outcome = run();
        sample.times.push(one.elapsed());
        if outcome.health != Health::Healthy {
            sample.failed += 1;
            sample.first_failure.get_or_insert(outcome);
        }
    }
    sample.wall = start.elapsed();
    sample.cpu = own_cpu().saturating_sub(cpu);
    sample.server_cpu = servers.cpu().saturating_sub(server_cpu);
    sample.times.sort();
    sample
}

// ---------------------------------------------------------------------- table

struct Row {
    kind: &'static str,
    native: Sample,
    shell: Shell,
    shell_sample: Option<Sample>,
}

fn print_table(bench: bool, counts: &Counts, rows: &[Row]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let mode = if bench { "benchmark" } else { "smoke test (run with --bench for numbers)" };
    println!();
    println!(
        "probes: {mode}; {profile} build, {cores} core(s); {} native and {} shell probes per kind, after a warm-up",
        counts.native, counts.shell
    );
    println!("times per 1000 probes; CPU = user + sys of the bench and its children (servers excluded)");
    println!();
    // Two header lines, so that the columns stay narrow.
    let header = |c: [&str; 11]| {
        println!(
            "{:<5} {:<11} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>10}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
        );
    };
    header(["", "", "", "", "wall", "CPU", "speed-up", "speed-up", "p50", "max", "server CPU"]);
    header(["kind", "method", "probes", "failed", "ms/1000", "ms/1000", "wall", "CPU", "ms", "ms", "ms/1000"]);
    let line = |kind: &str, method: &str, s: &Sample, speedup: Option<(f64, f64)>| {
        let (wall, cpu) = match speedup {
            Some((w, c)) => (format!("{w:.1}x"), format!("{c:.1}x")),
            None => (String::new(), String::new()),
        };
        println!(
            "{kind:<5} {method:<11} {:>6} {:>6} {:>9.1} {:>9.1} {wall:>9} {cpu:>9} {:>7.2} {:>7.2} {:>10.0}",
            s.probes,
            s.failed,
            s.per_1000(s.wall),
            s.per_1000(s.cpu),
            s.percentile_ms(50),
            s.percentile_ms(100),
            s.per_1000(s.server_cpu),
        );
    };
    for row in rows {
        let speedup = row.shell_sample.as_ref().map(|sh| {
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
            (
                ratio(sh.per_1000(sh.wall), row.native.per_1000(row.native.wall)),
                ratio(sh.per_1000(sh.cpu), row.native.per_1000(row.native.cpu)),
            )
        });
        line(row.kind, "native", &row.native, speedup);
        match &row.shell_sample {
            Some(s) => line(row.kind, row.shell.name, s, None),
            None => println!("{:<5} {:<11} skipped: {} not found on PATH", row.kind, row.shell.name, row.shell.tool),
        }
    }
    println!();
    println!("speed-up = shell time / native time, same kind; p50, max = single probes' wall time");
    println!("server CPU = the servers' CPU (another process, 10 ms ticks, so coarse), not part of CPU");
    println!("native: the --tcp, --http and --dns flag forms (dns with answer=192.0.2.1)");
    for row in rows {
        println!("{:<11} --cmd '{}'", row.shell.name, row.shell.template);
    }
    for row in rows {
        let failures = [("native", Some(&row.native)), (row.shell.name, row.shell_sample.as_ref())];
        for (method, sample) in failures {
            if let Some(o) = sample.and_then(|s| s.first_failure.as_ref()) {
                println!("{} {method}: first failure: {o}", row.kind);
            }
        }
    }
}
