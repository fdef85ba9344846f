//! The connect poller: one thread that runs every connect-only TCP probe as
//! a non-blocking socket on one epoll set, instead of a worker thread each.
//!
//! Why: a TCP connect on loopback costs about 25 µs, while handing a job to a
//! worker thread and its result back costs two wake-ups and about four futex
//! calls. Here the engine hands over all the probes of one step in one batch
//! (one lock, one eventfd write), and the poller sends back every result of
//! one epoll round in one event. A probe in flight is a file descriptor and a
//! deadline, not a thread: a service whose connects hang until their timeout
//! holds no worker, so it cannot delay any other.
//!
//! Results have the same reasons as [`crate::probe::tcp::TcpProbe::run`]
//! (`connected`, `refused`, `timeout`, …): the two are interchangeable.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::Event;
use super::core::ProbeJob;
use crate::probe::{Check, Outcome, io_reason};

/// The epoll token of the wake-up eventfd.
const WAKE: u64 = u64::MAX;

/// A finished probe.
#[derive(Debug)]
pub struct Done {
    /// The round it belongs to.
    pub round: u64,
    /// Index of the check in its service.
    pub check: usize,
    /// What it found.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// True for the probes the poller runs: TCP connects that send and expect
/// nothing.
pub fn handles(job: &ProbeJob) -> bool {
    matches!(&job.probe().check, Check::Tcp(t) if t.send.is_none() && t.expect.is_none())
}

#[derive(Debug)]
struct Shared {
    jobs: Mutex<Vec<ProbeJob>>,
    wake: EventFd,
}

/// The engine's handle on the poller thread.
#[derive(Debug)]
pub struct Poller {
    shared: Arc<Shared>,
}

impl Poller {
    /// Starts the poller thread; results come back as [`Event::Connects`].
    pub fn start(results: Sender<Event>) -> io::Result<Poller> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let shared = Arc::new(Shared { jobs: Mutex::new(Vec::new()), wake });
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(shared.wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let theirs = Arc::clone(&shared);
        thread::Builder::new().name("connects".into()).stack_size(256 * 1024).spawn(move || {
            if let Err(e) = run(&theirs, &epoll, &results) {
                log::error!("the connect poller stopped: {e}");
            }
        })?;
        Ok(Poller { shared })
    }

    /// Hands `jobs` to the poller, in one batch.
    pub fn submit(&self, jobs: Vec<ProbeJob>) {
        if jobs.is_empty() {
            return;
        }
        let was_empty = {
            let mut q = self.shared.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let was_empty = q.is_empty();
            q.extend(jobs);
            was_empty
        };
        // One wake-up per batch; a poller already awake takes the rest.
        if was_empty && let Err(e) = self.shared.wake.write(1) {
            log::error!("waking the connect poller: {e}");
        }
    }
}

/// A connect in flight.
struct Pending {
    socket: Socket,
    job: ProbeJob,
    started: Instant,
    deadline: Instant,
}

fn run(shared: &Shared, epoll: &Epoll, results: &Sender<Event>) -> io::Result<()> {
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut next_token = 0u64;
    let mut events = vec![EpollEvent::empty(); 256];
    loop {
        let now = Instant::now();
        let timeout = match pending.values().map(|p| p.deadline).min() {
            // Rounded up, so a wake-up is never before the deadline.
            Some(d) => EpollTimeout::try_from(d.saturating_duration_since(now) + Duration::from_micros(999))
                .unwrap_or(EpollTimeout::MAX),
            None => EpollTimeout::NONE,
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        let mut done = Vec::new();
        for ev in &events[..n] {
            if ev.data() == WAKE {
                let _ = shared.wake.read();
                let jobs = std::mem::take(&mut *shared.jobs.lock().unwrap_or_else(PoisonError::into_inner));
                for job in jobs {
                    match start(&job) {
                        Ok(Some(socket)) => {
                            next_token += 1;
                            if let Err(e) = epoll.add(socket.as_fd(), EpollEvent::new(EpollFlags::EPOLLOUT, next_token))
                            {
                                done.push(finish(job, Outcome::down(io_reason(&e.into())), now, now));
                                continue;
                            }
                            let deadline = now + job.timeout;
                            pending.insert(next_token, Pending { socket, job, started: now, deadline });
                        }
                        Ok(None) => done.push(finish(job, Outcome::healthy("connected"), now, now)),
                        Err(e) => done.push(finish(job, Outcome::down(io_reason(&e)), now, now)),
                    }
                }
                continue;
            }
            // Closing the socket (dropping it) takes it out of the epoll set.
            let Some(p) = pending.remove(&ev.data()) else { continue };
            let outcome = match p.socket.take_error() {
                Ok(None) => Outcome::healthy("connected"),
                Ok(Some(e)) | Err(e) => Outcome::down(io_reason(&e)),
            };
            done.push(finish(p.job, outcome, p.started, now));
        }
        let expired: Vec<u64> = pending.iter().filter(|(_, p)| p.deadline <= now).map(|(t, _)| *t).collect();
        for t in expired {
            let p = pending.remove(&t).expect("listed above");
            done.push(finish(p.job, Outcome::down("timeout"), p.started, now));
        }
        if !done.is_empty() && results.send(Event::Connects(done)).is_err() {
            return Ok(());
        }
    }
}

fn finish(job: ProbeJob, outcome: Outcome, started: Instant, now: Instant) -> Done {
    Done { round: job.round, check: job.check, outcome, elapsed: now.saturating_duration_since(started) }
}

/// Starts a non-blocking connect: `Ok(None)` when it completed at once,
/// `Ok(Some(socket))` while in progress.
fn start(job: &ProbeJob) -> io::Result<Option<Socket>> {
    let Check::Tcp(tcp) = &job.probe().check else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a connect probe"));
    };
    let socket =
        Socket::new(Domain::for_address(tcp.address), Type::STREAM.nonblocking().cloexec(), Some(Protocol::TCP))?;
    match socket.connect(&SockAddr::from(tcp.address)) {
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => Ok(Some(socket)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc;

    use super::*;
    use crate::probe::Health;
    use crate::probe::tcp::TcpProbe;

    fn job(round: u64, addr: SocketAddr, timeout: Duration) -> ProbeJob {
        let config = format!(
            r#"{{"services": [{{"name": "t", "prefixes": ["198.51.100.1/32"],
                 "checks": [{{"type": "tcp", "address": "{addr}"}}]}}]}}"#
        );
        let service = crate::model::config::load(&config).unwrap().services.remove(0);
        assert!(matches!(&service.checks[0].check, Check::Tcp(t) if *t == TcpProbe::connect(addr)));
        ProbeJob { round, check: 0, service: Arc::new(service), timeout }
    }

    fn collect(rx: &mpsc::Receiver<Event>, n: usize) -> Vec<Done> {
        let mut all = Vec::new();
        while all.len() < n {
            match rx.recv_timeout(Duration::from_secs(10)).expect("results within 10 s") {
                Event::Connects(d) => all.extend(d),
                e => panic!("unexpected {e:?}"),
            }
        }
        all.sort_by_key(|d| d.round);
        all
    }

    #[test]
    fn connected_refused_and_timeout_like_the_blocking_probe() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // A listener whose backlog is full and that never accepts: further
        // SYNs are dropped, so a connect hangs until its timeout.
        let silent = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        silent.bind(&SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap())).unwrap();
        silent.listen(0).unwrap();
        let silent_addr = silent.local_addr().unwrap().as_socket().unwrap();
        let _fillers: Vec<_> = (0..4)
            .filter_map(|_| std::net::TcpStream::connect_timeout(&silent_addr, Duration::from_millis(200)).ok())
            .collect();

        let (tx, rx) = mpsc::channel();
        let poller = Poller::start(tx).unwrap();
        let t0 = Instant::now();
        poller.submit(vec![
            job(1, open, Duration::from_secs(2)),
            job(2, closed, Duration::from_secs(2)),
            job(3, silent_addr, Duration::from_millis(300)),
        ]);
        let got = collect(&rx, 3);
        assert_eq!((got[0].outcome.health, got[0].outcome.reason.as_str()), (Health::Healthy, "connected"));
        assert_eq!((got[1].outcome.health, got[1].outcome.reason.as_str()), (Health::Down, "refused"));
        assert_eq!((got[2].outcome.health, got[2].outcome.reason.as_str()), (Health::Down, "timeout"));
        assert!(got[2].elapsed >= Duration::from_millis(300), "{:?}", got[2].elapsed);
        assert!(t0.elapsed() < Duration::from_secs(3));
        // The same answers as the blocking probe.
        for (addr, d) in [(open, &got[0]), (closed, &got[1])] {
            let o = TcpProbe::connect(addr).run(Duration::from_secs(2));
            assert_eq!((o.health, o.reason), (d.outcome.health, d.outcome.reason.clone()));
        }
    }

    #[test]
    fn many_connects_in_one_batch() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for c in listener.incoming().take(200) {
                drop(c);
            }
        });
        let (tx, rx) = mpsc::channel();
        let poller = Poller::start(tx).unwrap();
        poller.submit((1..=200).map(|r| job(r, addr, Duration::from_secs(5))).collect());
        let got = collect(&rx, 200);
        assert!(
            got.iter().all(|d| d.outcome.health == Health::Healthy),
            "{:?}",
            got.iter().find(|d| d.outcome.health != Health::Healthy)
        );
        assert_eq!(got.iter().map(|d| d.round).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
    }
}
