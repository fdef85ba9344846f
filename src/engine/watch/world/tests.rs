//! The watcher against real processes, files and sockets.

use std::sync::mpsc;

use super::*;

fn services(watch: &str) -> Vec<Service> {
    let text = format!(
        r#"{{"services": [{{"name": "web", "prefixes": ["198.51.100.1/32"],
            "checks": [{{"type": "tcp", "address": "127.0.0.1:80"}}]{watch}}}]}}"#
    );
    crate::model::config::load(&text).unwrap().services
}

/// What `inotify_init1` says when `fs.inotify.max_user_instances` is used up.
fn refused() -> io::Result<Parts> {
    Err(io::Error::other("inotify: too many inotify instances"))
}

/// The next batch of reports: (watch, state) of each state.
fn states(rx: &mpsc::Receiver<Event>) -> Vec<(String, String)> {
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Event::Watch(reports)) => reports
            .into_iter()
            .filter_map(|r| match r {
                Report::State { watch, state, .. } => Some((watch, state)),
                Report::Fired { .. } => None,
            })
            .collect(),
        other => panic!("no watch reports: {other:?}"),
    }
}

#[test]
fn a_watcher_the_kernel_refuses_leaves_every_watch_pending() {
    let (tx, rx) = mpsc::channel();
    let s = services(r#", "disable_file": "/nonexistent/m", "watch": {"pid_file": "/run/web.pid"}"#);
    // Before the fix this was an io::Result, and an error stopped the engine.
    let w = Watcher::start_with(&s, tx, refused);
    assert!(w.running());
    let pending = "pending: inotify: too many inotify instances (retry every 5s)";
    assert_eq!(
        states(&rx),
        [
            ("pid-file /run/web.pid".to_string(), pending.to_string()),
            ("maintenance-file /nonexistent/m".to_string(), pending.to_string()),
        ]
    );
}

fn world() -> (World, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let parts = open_parts().unwrap();
    (World::new(parts.epoll, parts.files, Arc::new(parts.wake), tx), rx)
}

fn fired(w: &mut World) -> Vec<WatchEvent> {
    std::mem::take(&mut w.out.batch)
        .into_iter()
        .filter_map(|r| match r {
            Report::Fired { event, .. } => Some(event),
            Report::State { .. } => None,
        })
        .collect()
}

#[test]
fn a_stale_pidfd_readiness_does_not_fire_on_the_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("a.pid");
    let mut a = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let mut b = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&pid_file, format!("{}\n", a.id())).unwrap();
    let (mut w, _rx) = world();
    w.procs.push(ProcWatch::new("web".into(), Process::PidFile(pid_file.clone())));
    assert!(w.arm_proc(0));
    let mut evs = [EpollEvent::empty(); 8];
    a.kill().unwrap();
    a.wait().unwrap();
    // A's pidfd is ready; then B is started and the pid file names it.
    let n = w.epoll.wait(&mut evs, EpollTimeout::try_from(Duration::from_secs(5)).unwrap()).unwrap();
    let stale = evs[..n].iter().map(EpollEvent::data).find(|d| *d & 0xffff_ffff == 0).expect("A's readiness");
    std::fs::write(&pid_file, format!("{}\n", b.id())).unwrap();
    // In one batch the inotify event is handled first: armed on B ...
    assert!(w.arm_proc(0));
    assert_eq!(w.procs[0].armed.as_ref().map(|a| a.1), Some(b.id()));
    fired(&mut w);
    // ... then A's readiness, from the same batch: not B's exit.
    w.on_exit(stale, Instant::now());
    assert_eq!(fired(&mut w), []);
    assert_eq!(w.procs[0].armed.as_ref().map(|a| a.1), Some(b.id()), "still armed on B");
    b.kill().unwrap();
    b.wait().unwrap();
}

#[test]
fn a_watcher_that_dies_says_so_for_every_watch() {
    let (mut w, rx) = world();
    w.out.state("web", "pid-file /run/web.pid".into(), "armed (pid 1)".into());
    w.out.state("dns", "listen 127.0.0.1:53".into(), "armed (socket-destroy events)".into());
    assert!(w.out.flush());
    assert_eq!(states(&rx).len(), 2);
    run_guarded(&mut w, |_| panic!("boom"));
    assert_eq!(
        states(&rx),
        [
            ("listen 127.0.0.1:53".to_string(), "stopped: panic: boom; probing as usual".to_string()),
            ("pid-file /run/web.pid".to_string(), "stopped: panic: boom; probing as usual".to_string()),
        ]
    );
    run_guarded(&mut w, |_| Err(io::Error::other("epoll_wait: EBADF")));
    assert_eq!(states(&rx)[0].1, "stopped: epoll_wait: EBADF; probing as usual");
}

#[test]
fn a_process_that_exits_with_no_successor_yet_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("a.pid");
    let mut a = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(&pid_file, format!("{}\n", a.id())).unwrap();
    let (mut w, _rx) = world();
    w.procs.push(ProcWatch::new("web".into(), Process::PidFile(pid_file)));
    assert!(w.arm_proc(0));
    assert_eq!(w.retry_at, None);
    a.kill().unwrap();
    a.wait().unwrap();
    let mut evs = [EpollEvent::empty(); 8];
    let n = w.epoll.wait(&mut evs, EpollTimeout::try_from(Duration::from_secs(5)).unwrap()).unwrap();
    let token = evs[..n].iter().map(EpollEvent::data).find(|d| *d & 0xffff_ffff == 0).expect("A's readiness");
    let t = Instant::now();
    w.on_exit(token, t);
    assert_eq!(fired(&mut w), [WatchEvent::ProcessExited { pid: a.id() }]);
    // The pid file still names A: not armed, and tried again later.
    assert!(w.procs[0].armed.is_none());
    assert_eq!(w.retry_at, Some(t + RETRY_EVERY));
}

#[test]
fn a_retry_looks_only_at_the_watches_that_are_pending() {
    let dir = tempfile::tempdir().unwrap();
    let (armed, missing) = (dir.path().join("a.pid"), dir.path().join("b.pid"));
    std::fs::write(&armed, format!("{}\n", std::process::id())).unwrap();
    let (mut w, _rx) = world();
    w.procs.push(ProcWatch::new("a".into(), Process::PidFile(armed.clone())));
    w.procs.push(ProcWatch::new("b".into(), Process::PidFile(missing.clone())));
    let t = Instant::now();
    w.arm_pending(t, true);
    assert!(w.procs[0].armed.is_some() && w.procs[1].armed.is_none());
    assert!(w.retry_at.is_some(), "b is pending: retried");
    w.out.batch.clear();
    // a's pid file is unreadable now (its events not handled yet): a
    // retry does not read it, so a stays armed and says nothing.
    std::fs::write(&armed, "garbage").unwrap();
    w.arm_pending(t + RETRY_EVERY, false);
    assert!(w.procs[0].armed.is_some());
    let states: Vec<String> = std::mem::take(&mut w.out.batch)
        .into_iter()
        .filter_map(|r| match r {
            Report::State { service, .. } => Some(service),
            Report::Fired { .. } => None,
        })
        .collect();
    assert!(!states.contains(&"a".to_string()), "{states:?}");
}

#[test]
fn nothing_to_watch_starts_no_thread_until_a_reload_asks() {
    let (tx, rx) = mpsc::channel();
    let w = Watcher::start_with(&services(""), tx, refused);
    assert!(!w.running());
    w.set(&services(r#", "watch": {"listen": "127.0.0.1:80"}"#));
    assert!(w.running());
    assert_eq!(states(&rx)[0].0, "listen 127.0.0.1:80");
}
