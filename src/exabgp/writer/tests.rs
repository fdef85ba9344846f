//! Tests of the parent module.

use super::*;
use std::io::{BufRead, BufReader, PipeReader};
use std::sync::mpsc;

const LONG: Duration = Duration::from_secs(10);

/// A writer over a real pipe, and the lines its reader thread sees.
fn writer(mode: AckMode) -> (Writer<io::PipeWriter>, mpsc::Receiver<String>) {
    let (r, w) = io::pipe().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    (Writer::new(w, mode).unwrap(), rx)
}

/// Waits (bounded) until the sink wrote what it holds, then lets the
/// writer collect the reports: the state a test then asserts is settled.
fn settle<W>(w: &mut Writer<W>) {
    assert!(w.sink.wait_idle(Instant::now() + LONG));
    w.on_tick(Instant::now()).unwrap();
}

fn got(rx: &mpsc::Receiver<String>) -> Vec<String> {
    rx.try_iter().collect()
}

/// An ack read now (after everything so far was written).
fn ack(ok: bool) -> Stamped {
    Stamped { incoming: if ok { Incoming::Done } else { Incoming::Error }, read_at: Instant::now() }
}

fn line(text: &str) -> Stamped {
    Stamped { incoming: crate::exabgp::parse_line(text), read_at: Instant::now() }
}

/// Reads what the pipe's reader thread got, waiting for `n` lines.
fn wait_lines(rx: &mpsc::Receiver<String>, n: usize) -> Vec<String> {
    let mut v = Vec::new();
    while v.len() < n {
        v.push(rx.recv_timeout(LONG).expect("line"));
    }
    v
}

#[test]
fn one_command_in_flight_until_its_ack() {
    let t0 = Instant::now();
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    w.send("announce route 198.51.100.1/32 next-hop self".into(), None, t0).unwrap();
    w.send("announce route 198.51.100.2/32 next-hop self".into(), None, t0).unwrap();
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), ["announce route 198.51.100.1/32 next-hop self"]);
    let written = w.in_flight.front().unwrap().written_at.unwrap();
    assert_eq!(w.deadline(), Some(written + Duration::from_secs(2)));
    assert_eq!(w.on_stdin(ack(true), Instant::now()).unwrap(), Routed::Taken);
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), ["announce route 198.51.100.2/32 next-hop self"]);
    w.on_stdin(ack(false), Instant::now()).unwrap();
    assert!(w.is_idle());
    assert_eq!(w.counters(), Counters { lines: 2, done: 1, error: 1, ..Counters::default() });
}

#[test]
fn an_ack_read_before_the_command_was_written_is_stray() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    let early = Instant::now(); // ExaBGP's late `done` for something else
    w.send("a".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    wait_lines(&rx, 1);
    let stray = Stamped { incoming: Incoming::Done, read_at: early };
    assert_eq!(w.on_stdin(stray, Instant::now()).unwrap(), Routed::Taken);
    assert_eq!(w.counters().stray, 1);
    assert_eq!(w.in_flight(), 1, "`a` still waits for its own ack");
    w.send("b".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    assert_eq!(got(&rx), Vec::<String>::new(), "`b` waits");
    w.on_stdin(ack(true), Instant::now()).unwrap();
    assert_eq!(w.counters().done, 1);
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), ["b"]);
    // With nothing in flight, an ack is stray too.
    w.on_stdin(ack(true), Instant::now()).unwrap();
    w.on_stdin(ack(true), Instant::now()).unwrap();
    assert_eq!((w.counters().done, w.counters().stray), (2, 2));
}

#[test]
fn an_ack_that_beats_the_write_report_waits_for_it() {
    let (mut w, _rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    w.send("a".into(), None, Instant::now()).unwrap();
    // Do not collect the report: the ack comes "first".
    assert!(w.sink.wait_idle(Instant::now() + LONG));
    let read_at = Instant::now();
    w.parked.push_back((true, read_at));
    assert!(w.in_flight.front().unwrap().written_at.is_none());
    w.on_tick(Instant::now()).unwrap();
    assert_eq!(w.counters().done, 1);
    assert!(w.is_idle());
}

#[test]
fn a_missing_ack_times_out_and_the_next_command_goes() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    w.on_stdin(ack(true), Instant::now()).unwrap(); // acks do work on this ExaBGP (a stray one)
    w.send("a".into(), None, Instant::now()).unwrap();
    w.send("b".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    let written = w.in_flight.front().unwrap().written_at.unwrap();
    w.on_tick(written + Duration::from_secs(1)).unwrap();
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), ["a"]);
    assert_eq!(got(&rx), Vec::<String>::new());
    w.on_tick(written + Duration::from_secs(2)).unwrap();
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), ["b"]);
    assert_eq!(w.counters().missing, 1);
}

#[test]
fn never_any_ack_switches_to_no_wait() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
    for l in ["a", "b", "c", "d", "e"] {
        w.send(l.into(), None, Instant::now()).unwrap();
    }
    for _ in 0..3 {
        settle(&mut w);
        let written = w.in_flight.front().unwrap().written_at.unwrap();
        w.on_tick(written + Duration::from_secs(1)).unwrap();
    }
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 5), ["a", "b", "c", "d", "e"]);
    assert!(w.is_idle());
    assert_eq!(w.deadline(), None);
    assert!(!w.query(adj_rib_query(), Instant::now()).unwrap(), "no query without acks");
}

fn adj_rib_query() -> String {
    crate::exabgp::adj_rib::QUERY.to_string()
}

#[test]
fn a_newer_line_for_the_same_key_supersedes_a_queued_one() {
    let k = |s: &str| Some(s.to_string());
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
    let now = Instant::now();
    w.send("announce p1 med 100".into(), k("p1"), now).unwrap();
    w.send("announce p1 med 1000".into(), k("p1"), now).unwrap();
    w.send("withdraw p2".into(), None, now).unwrap();
    w.send("announce p1 med 100".into(), k("p1"), now).unwrap();
    for _ in 0..3 {
        settle(&mut w);
        w.on_stdin(ack(true), Instant::now()).unwrap();
    }
    assert_eq!(wait_lines(&rx, 3), ["announce p1 med 100", "withdraw p2", "announce p1 med 100"]);
    assert!(w.is_idle());
}

#[test]
fn no_wait_writes_everything_and_send_now_jumps_the_queue() {
    let (mut w, rx) = writer(AckMode::NoWait);
    w.send("a".into(), None, Instant::now()).unwrap();
    w.send("b".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 2), ["a", "b"]);
    assert!(w.is_idle());
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(1)));
    w.send("a".into(), None, Instant::now()).unwrap();
    w.send("stale".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    w.send_now(&["x".into(), "y".into()], Instant::now()).unwrap();
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 3), ["a", "x", "y"]);
    assert_eq!(w.in_flight(), 3);
}

#[test]
fn a_query_collects_its_answer_until_done() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    assert!(w.query(adj_rib_query(), Instant::now()).unwrap());
    settle(&mut w);
    assert_eq!(wait_lines(&rx, 1), [adj_rib_query()]);
    let answer = [
        "neighbor 127.0.40.1 ipv4 unicast 198.51.100.5/32 next-hop 127.0.40.2",
        "127.0.40.1 ipv4 unicast 198.51.100.6/32 next-hop 198.51.100.254",
    ];
    assert_eq!(w.on_stdin(line(answer[0]), Instant::now()).unwrap(), Routed::Taken);
    // Session events and JSON still reach the engine.
    let event = w.on_stdin(line("neighbor 127.0.40.1 down - peer reset"), Instant::now()).unwrap();
    assert!(matches!(event, Routed::Event(Incoming::Neighbor(_))));
    assert!(matches!(w.on_stdin(line("{ \"type\": \"state\" }"), Instant::now()).unwrap(), Routed::Event(_)));
    assert_eq!(w.on_stdin(line(answer[1]), Instant::now()).unwrap(), Routed::Taken);
    let done = w.on_stdin(ack(true), Instant::now()).unwrap();
    assert_eq!(
        done,
        Routed::Answer(Answer {
            command: adj_rib_query(),
            lines: answer.map(String::from).to_vec(),
            ok: true,
            complete: true,
            behind: 0
        })
    );
    // After the query, such lines are the engine's again.
    assert!(matches!(w.on_stdin(line(answer[1]), Instant::now()).unwrap(), Routed::Event(Incoming::Other(_))));
}

#[test]
fn a_query_waits_its_turn_and_only_one_of_each_waits() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    w.send("a".into(), None, Instant::now()).unwrap();
    for _ in 0..3 {
        w.query(adj_rib_query(), Instant::now()).unwrap();
    }
    settle(&mut w);
    // Lines read while `a` is in flight are not the query's.
    assert!(matches!(w.on_stdin(line("127.0.0.1 ipv4 unicast x"), Instant::now()).unwrap(), Routed::Event(_)));
    w.on_stdin(ack(true), Instant::now()).unwrap();
    settle(&mut w);
    w.send("b".into(), None, Instant::now()).unwrap(); // behind the query
    assert_eq!(
        w.on_stdin(ack(false), Instant::now()).unwrap(),
        Routed::Answer(Answer { command: adj_rib_query(), lines: vec![], ok: false, complete: true, behind: 1 })
    );
    settle(&mut w);
    w.on_stdin(ack(true), Instant::now()).unwrap();
    assert!(w.is_idle());
    assert_eq!(wait_lines(&rx, 3), ["a".to_string(), adj_rib_query(), "b".to_string()]);
}

#[test]
fn keyless_lines_are_capped() {
    let (mut w, _rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    for i in 0..MAX_KEYLESS + 10 {
        w.send(format!("withdraw route {i}"), None, Instant::now()).unwrap();
    }
    // One went to the sink; the cap waits here; the rest were dropped.
    assert_eq!(w.queue.len(), MAX_KEYLESS);
    assert_eq!(w.counters().dropped, 9);
}

/// A pipe whose reader never reads: once its 64 KiB are full the
/// engine-side calls still return at once, memory stays bounded, and the
/// final flush returns at its deadline having written nothing more than
/// whole lines.
#[test]
fn a_reader_that_stops_reading_never_blocks_the_engine() {
    let (reader, w_end): (PipeReader, _) = io::pipe().unwrap();
    let mut w = Writer::new(w_end, AckMode::NoWait).unwrap();
    let started = Instant::now();
    let routes = 50;
    for i in 0..20_000 {
        let r = i % routes;
        let line = format!("announce route 198.51.100.{r}/32 next-hop self med {i} community [ 65000:1 65000:2 ]");
        w.send(line, Some(format!("r{r}")), Instant::now()).unwrap();
        w.on_tick(Instant::now()).unwrap();
    }
    let took = started.elapsed();
    // 20 000 lines of ~80 bytes are 1.6 MB: far more than the pipe holds.
    assert!(!w.is_idle());
    assert!(w.queue.len() <= routes, "queue {} > one line per route", w.queue.len());
    assert!(took < Duration::from_secs(5), "sending took {took:?}");
    let deadline = Instant::now() + Duration::from_millis(300);
    let finals: Vec<String> = (0..5).map(|i| format!("withdraw route 198.51.100.{i}/32")).collect();
    let written = w.flush_final(&finals, deadline);
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(Instant::now() >= deadline);
    assert!(late < Duration::from_secs(2), "flush_final returned {late:?} after its deadline");
    assert_eq!(written, 0, "the pipe stayed full");
    drop(w);
    // Now read everything: whole lines only, and no final line (the
    // deadline passed, nothing more was started).
    let text = io::read_to_string(reader).unwrap();
    assert!(text.ends_with('\n'));
    assert!(text.lines().all(|l| l.starts_with("announce route 198.51.100.") && l.ends_with(" ]")));
    assert!(!text.contains("withdraw"));
}

#[test]
fn flush_final_writes_the_final_lines_first_when_the_pipe_drains() {
    let (mut w, rx) = writer(AckMode::Wait(Duration::from_secs(2)));
    w.send("a".into(), None, Instant::now()).unwrap();
    w.send("queued".into(), None, Instant::now()).unwrap();
    settle(&mut w);
    let n = w.flush_final(&["x".into(), "y".into()], Instant::now() + LONG);
    assert_eq!(n, 2);
    assert_eq!(wait_lines(&rx, 3), ["a", "x", "y"]);
    w.send("after".into(), None, Instant::now()).ok();
    drop(w);
    assert_eq!(rx.recv_timeout(Duration::from_millis(100)).ok(), None, "nothing after the final flush");
}

#[test]
fn a_write_error_is_returned() {
    let (r, w_end) = io::pipe().unwrap();
    drop(r);
    let mut w = Writer::new(w_end, AckMode::NoWait).unwrap();
    w.send("a".into(), None, Instant::now()).unwrap();
    assert!(!w.sink.wait_idle(Instant::now() + LONG));
    assert_eq!(w.on_tick(Instant::now()).map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
}
