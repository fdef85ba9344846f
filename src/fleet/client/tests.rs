//! The client's pure pieces: the guard's count, the keys, the coalescing queue.

use super::*;
use std::time::SystemTime;

fn worker() -> Worker {
    let settings = FleetSettings {
        endpoints: vec!["http://127.0.0.1:9".into()],
        site: "a".into(),
        prefix: "/p/".into(),
        ttl: Duration::from_secs(10),
        timeout: Duration::from_millis(100),
        min_sites: 1,
        tls: None,
        auth: None,
    };
    let gateway = Arc::new(Gateway::new(&settings).unwrap());
    let shared = Arc::new(Shared {
        settings,
        notify: Box::new(|_| {}),
        pending: Mutex::new(HashMap::new()),
        pending_changed: Condvar::new(),
        stopping: AtomicBool::new(false),
        told: Mutex::new(None),
        first_revision: AtomicI64::new(0),
    });
    Worker::new(shared, gateway)
}

fn entry(reason: &str) -> Entry {
    Entry { announcing: true, held: false, state: "UP".into(), since: SystemTime::now(), reason: reason.into() }
}

fn publish(service: &str, reason: &str) -> Op {
    Op::Publish { service: service.into(), entry: entry(reason) }
}

fn shape(w: &Worker) -> Vec<String> {
    w.queue
        .iter()
        .map(|op| match op {
            Op::Publish { service, entry } => format!("publish {service} {}", entry.reason),
            Op::Ask { service, ticket, .. } => format!("ask {service} {ticket}"),
            Op::Stop(_) => "stop".into(),
        })
        .collect()
}

#[test]
fn publishes_coalesce_but_never_across_a_question() {
    let mut w = worker();
    w.enqueue(publish("x", "1"));
    w.enqueue(publish("y", "1"));
    w.enqueue(publish("x", "2"));
    assert_eq!(shape(&w), ["publish x 2", "publish y 1"]);
    w.enqueue(Op::Ask { service: "x".into(), ticket: 7, min_sites: 1, withdrawn: entry("down") });
    w.enqueue(publish("x", "3"));
    w.enqueue(publish("y", "2"));
    w.enqueue(publish("x", "4"));
    assert_eq!(shape(&w), ["publish x 2", "publish y 2", "ask x 7", "publish x 4"]);
    let (done, _wait) = mpsc::channel();
    w.enqueue(Op::Stop(done));
    assert_eq!(shape(&w), ["stop"]);
}

#[test]
fn without_a_lease_the_answer_is_local_at_once() {
    let mut w = worker();
    let v = w.guard("x", 1, &entry("down"), Instant::now() + Duration::from_secs(1));
    assert!(matches!(v, Verdict::Local { .. }), "{v:?}");
}
