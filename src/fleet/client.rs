//! The fleet client's threads: the worker (lease, publishing, the guarded
//! withdraw), the watch, and the deadline keeper.
//!
//! - The **worker** owns the lease and does every write, one at a time and
//!   in the order asked (a publish asked before a withdraw is written before
//!   it): it grants the lease, keeps it alive every `ttl/3` (checked before
//!   every call, also between the calls of a flush or a guarded withdraw,
//!   so a busy worker delays a keep-alive by one call at most),
//!   re-grants it when it is lost and then writes every entry again.
//!   Publishes queued for a service coalesce: the newest entry wins.
//! - The **watch** follows the whole prefix and reports other sites'
//!   changes as [`Notice::Changed`]; it reconnects (from the next revision,
//!   so nothing is missed) when the stream breaks, and every `rotate` in
//!   any case, so that a member that stopped answering (SIGSTOP) costs at
//!   most that long.
//! - The **deadline keeper** answers [`Verdict::Local`] for every ticket the
//!   worker has not answered by its deadline (ask + timeout): whoever takes
//!   a ticket out of the pending set first answers it, so each ticket gets
//!   exactly one verdict.
//!
//! The engine talks to the worker through a channel and hears back through
//! the callback: nothing here blocks it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::watch::watch;
use super::gateway::{Gateway, b64, int, prefix_end, unb64};
use super::view::{decode, encode, key, service_prefix, split_key};
use super::{Entry, Notice, Verdict};
use crate::model::fleet::FleetSettings;

mod watch;

/// The most sites one service may have (the guard's transaction compares
/// each of them, and etcd allows 128 operations per transaction).
pub(crate) const SITES_MAX: usize = 100;

/// How many times the guard re-reads after its transaction lost a race.
const GUARD_RETRIES: u32 = 8;

/// The guard's first wait before it tries again after a transient error
/// (no leader, leader changed, request timed out, every member refusing);
/// doubled each time, up to [`RETRY_MAX`], until the question's deadline.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_millis(800);

/// The longest queue of operations the worker keeps (publishes coalesce
/// per service, so this is only reached with thousands of services).
const QUEUE_MAX: usize = 4096;

/// The largest watch stream read before a new one is opened.
const WATCH_STREAM_MAX: u64 = 64 * 1024 * 1024;

/// The callback the engine gave.
pub(crate) type Notify = Box<dyn Fn(Notice) + Send + Sync>;

/// What the engine asks of the worker.
enum Op {
    Publish {
        service: String,
        entry: Entry,
    },
    Ask {
        service: String,
        ticket: u64,
        min_sites: u32,
        withdrawn: Entry,
    },
    /// Revoke the lease and stop (the reply says it is done).
    Stop(Sender<()>),
}

/// State shared by the threads.
struct Shared {
    settings: FleetSettings,
    notify: Notify,
    /// Tickets not answered yet, with their deadlines.
    pending: Mutex<HashMap<(String, u64), Instant>>,
    pending_changed: Condvar,
    stopping: AtomicBool,
    /// The last connection state told (`None`: nothing told yet).
    told: Mutex<Option<bool>>,
    /// The revision after the first lease grant (0: not yet): the watch
    /// starts there, so no change made after the client first connected is
    /// missed, however late the watch stream opens.
    first_revision: AtomicI64,
}

impl Shared {
    /// Answers a ticket, unless it was answered already.
    fn answer(&self, service: &str, ticket: u64, verdict: Verdict) {
        let taken = self.pending.lock().unwrap_or_else(PoisonError::into_inner).remove(&(service.to_string(), ticket));
        if taken.is_some() {
            (self.notify)(Notice::Verdict { service: service.to_string(), ticket, verdict });
        }
    }

    /// True while the ticket waits for its answer.
    fn waiting(&self, service: &str, ticket: u64) -> Option<Instant> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(&(service.to_string(), ticket)).copied()
    }

    /// Tells the engine the store's state, when it changed.
    fn connected(&self, connected: bool, detail: String) {
        let mut told = self.told.lock().unwrap_or_else(PoisonError::into_inner);
        if *told != Some(connected) {
            *told = Some(connected);
            drop(told);
            (self.notify)(Notice::Store { connected, detail });
        }
    }
}

/// The running client.
pub(crate) struct Client {
    ops: Sender<Op>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl Client {
    pub(crate) fn start(settings: FleetSettings, services: Vec<String>, notify: Notify) -> Client {
        let shared = Arc::new(Shared {
            settings,
            notify,
            pending: Mutex::new(HashMap::new()),
            pending_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            told: Mutex::new(None),
            first_revision: AtomicI64::new(0),
        });
        let (ops, rx) = mpsc::channel();
        let gateway = match Gateway::new(&shared.settings) {
            Ok(g) => Some(Arc::new(g)),
            Err(why) => {
                shared.connected(false, format!("fleet client cannot start: {why}"));
                None
            }
        };
        let keeper = Arc::clone(&shared);
        let _ = std::thread::Builder::new().name("fleet-deadline".into()).spawn(move || deadlines(&keeper));
        let worker = gateway.map(|gateway| {
            let watch_shared = Arc::clone(&shared);
            let watch_gateway = Arc::clone(&gateway);
            let known: HashSet<String> = services.iter().cloned().collect();
            let _ = std::thread::Builder::new()
                .name("fleet-watch".into())
                .spawn(move || watch(&watch_shared, &watch_gateway, &known));
            let worker_shared = Arc::clone(&shared);
            std::thread::Builder::new().name("fleet".into()).spawn(move || {
                Worker::new(worker_shared, gateway).run(&rx);
            })
        });
        let worker = match worker {
            Some(Ok(handle)) => Some(handle),
            Some(Err(e)) => {
                shared.connected(false, format!("fleet client cannot start a thread: {e}"));
                None
            }
            None => None,
        };
        Client { ops, shared, worker }
    }

    pub(crate) fn publish(&self, service: &str, entry: Entry) {
        let _ = self.ops.send(Op::Publish { service: service.to_string(), entry });
    }

    pub(crate) fn ask_withdraw(&self, service: &str, ticket: u64, min_sites: u32, withdrawn: Entry) {
        let deadline = Instant::now() + self.shared.settings.timeout;
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((service.to_string(), ticket), deadline);
        self.shared.pending_changed.notify_all();
        let op = Op::Ask { service: service.to_string(), ticket, min_sites, withdrawn };
        if self.ops.send(op).is_err() || self.worker.is_none() {
            self.shared.answer(service, ticket, Verdict::Local { why: "the fleet client is not running".into() });
        }
    }

    /// Revokes the lease (bounded by the timeout) and stops the threads.
    pub(crate) fn stop(mut self) {
        let (done, wait) = mpsc::channel();
        if self.ops.send(Op::Stop(done)).is_ok() {
            // The revoke is bounded by the timeout; a little more for the
            // queue before it.
            let _ = wait.recv_timeout(self.shared.settings.timeout + Duration::from_millis(200));
        }
        self.worker = None;
    }
}

impl Drop for Client {
    /// Without [`Client::stop`]: the threads stop, the lease is not revoked
    /// (it expires after its ttl, as if the process had died).
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.pending_changed.notify_all();
    }
}

/// The deadline keeper's loop.
fn deadlines(shared: &Shared) {
    let mut pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = Instant::now();
        let stopping = shared.stopping.load(Ordering::SeqCst);
        let late: Vec<(String, u64)> =
            pending.iter().filter(|(_, d)| **d <= now || stopping).map(|(k, _)| k.clone()).collect();
        if !late.is_empty() {
            for k in &late {
                pending.remove(k);
            }
            drop(pending);
            let why = if stopping { "the fleet client stopped" } else { "etcd did not answer within the timeout" };
            for (service, ticket) in late {
                (shared.notify)(Notice::Verdict { service, ticket, verdict: Verdict::Local { why: why.into() } });
            }
            pending = shared.pending.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        if stopping {
            return;
        }
        let wait = pending.values().min().map_or(Duration::from_secs(3600), |d| d.saturating_duration_since(now));
        pending = shared.pending_changed.wait_timeout(pending, wait).unwrap_or_else(PoisonError::into_inner).0;
    }
}

/// The lease, as the worker knows it.
#[derive(Clone, Copy, Debug)]
enum Lease {
    /// None (never granted, or lost); try to grant at `retry`.
    None { retry: Instant },
    /// Live until `expires` (the last keep-alive plus the ttl) unless kept
    /// alive at `renew`; `ok` is when etcd last answered.
    Live { id: i64, renew: Instant, expires: Instant, ok: Instant },
}

/// One service's entry as the engine last asked for it.
struct Published {
    entry: Entry,
    /// Not (or not surely) in the store yet.
    dirty: bool,
}

struct Worker {
    shared: Arc<Shared>,
    gateway: Arc<Gateway>,
    lease: Lease,
    queue: VecDeque<Op>,
    published: HashMap<String, Published>,
    /// Leases replaced while the store looked unreachable: revoked once it
    /// answers (they would expire anyway; revoking is tidier).
    orphans: Vec<i64>,
    last_error: String,
}

impl Worker {
    fn new(shared: Arc<Shared>, gateway: Arc<Gateway>) -> Worker {
        Worker {
            shared,
            gateway,
            lease: Lease::None { retry: Instant::now() },
            queue: VecDeque::new(),
            published: HashMap::new(),
            orphans: Vec::new(),
            last_error: String::new(),
        }
    }

    fn ttl(&self) -> Duration {
        self.shared.settings.ttl.max(Duration::from_secs(1))
    }

    fn timeout(&self) -> Duration {
        self.shared.settings.timeout
    }

    /// How long the store is retried after a failure.
    fn retry_every(&self) -> Duration {
        (self.ttl() / 10).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }

    fn run(mut self, rx: &Receiver<Op>) {
        loop {
            if self.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let wait = if self.queue.is_empty() { self.next_due() } else { Duration::ZERO };
            match rx.recv_timeout(wait) {
                Ok(op) => self.enqueue(op),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(op) = rx.try_recv() {
                self.enqueue(op);
            }
            self.maintain();
            if let Some(op) = self.queue.pop_front() {
                match op {
                    Op::Publish { service, entry } => {
                        self.published.insert(service.clone(), Published { entry, dirty: true });
                        self.flush_one(&service);
                    }
                    Op::Ask { service, ticket, min_sites, withdrawn } => {
                        self.ask(&service, ticket, min_sites, withdrawn);
                    }
                    Op::Stop(done) => {
                        self.revoke();
                        let _ = done.send(());
                        self.shared.stopping.store(true, Ordering::SeqCst);
                        self.shared.pending_changed.notify_all();
                        return;
                    }
                }
            }
        }
    }

    /// Queues an operation; a publish replaces a queued publish of the
    /// same service unless a withdraw question for it comes in between; a
    /// stop goes first.
    fn enqueue(&mut self, op: Op) {
        if let Op::Publish { service, entry } = &op {
            for queued in self.queue.iter_mut().rev() {
                match queued {
                    Op::Publish { service: s, entry: e } if s == service => {
                        *e = entry.clone();
                        return;
                    }
                    Op::Ask { service: s, .. } if s == service => break,
                    _ => {}
                }
            }
        }
        if let Op::Stop(_) = op {
            // The lease is revoked at once: what is queued would be deleted
            // with it (unanswered questions get Local from the deadlines).
            self.queue.clear();
            self.queue.push_front(op);
            return;
        }
        if self.queue.len() >= QUEUE_MAX
            && let Op::Ask { service, ticket, .. } = &op
        {
            self.shared.answer(service, *ticket, Verdict::Local { why: "the fleet client is overloaded".into() });
            return;
        }
        self.queue.push_back(op);
    }

    /// The time until the worker has something to do on its own.
    fn next_due(&self) -> Duration {
        let now = Instant::now();
        let at = match self.lease {
            Lease::None { retry } => retry,
            Lease::Live { renew, .. } if self.published.values().any(|p| p.dirty) => {
                renew.min(now + self.retry_every())
            }
            Lease::Live { renew, .. } => renew,
        };
        at.saturating_duration_since(now)
    }

    /// Grants, keeps alive or re-grants the lease, and writes what is
    /// dirty, as due.
    fn maintain(&mut self) {
        let now = Instant::now();
        match self.lease {
            Lease::None { retry } if now >= retry => self.grant(),
            Lease::Live { id, renew, expires, ok } if now >= renew => self.keepalive(id, expires, ok),
            _ => {}
        }
        if let Lease::Live { .. } = self.lease
            && self.published.values().any(|p| p.dirty)
            && self.queue.is_empty()
        {
            self.flush_all();
        }
    }

    fn lost(&mut self, why: String) {
        log::debug!("fleet: {why}");
        self.last_error.clone_from(&why);
        self.lease = Lease::None { retry: Instant::now() + self.retry_every() };
        for p in self.published.values_mut() {
            p.dirty = true;
        }
        self.shared.connected(false, why);
    }

    /// etcd did not answer. The engine hears of it once etcd has not
    /// answered for half the ttl: before, a leader election (a second or
    /// two) would release every held service for nothing; after, the other
    /// sites are about to stop counting this one, and its view is stale.
    fn unreachable(&mut self, why: String) {
        log::debug!("fleet: {why}");
        self.last_error.clone_from(&why);
        if let Lease::Live { ok, .. } = self.lease
            && ok.elapsed() >= self.ttl() / 2
        {
            self.shared.connected(false, why);
        }
    }

    fn grant(&mut self) {
        let ttl = self.ttl().as_secs().max(1);
        match self.gateway.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}), self.timeout()) {
            Ok(reply) if int(&reply["ID"]) != 0 => {
                let id = int(&reply["ID"]);
                let revision = int(&reply["header"]["revision"]);
                let _ =
                    self.shared.first_revision.compare_exchange(0, revision + 1, Ordering::SeqCst, Ordering::SeqCst);
                let granted = Duration::from_secs(int(&reply["TTL"]).max(1) as u64);
                let now = Instant::now();
                self.lease = Lease::Live { id, renew: now + granted / 3, expires: now + granted, ok: now };
                for p in self.published.values_mut() {
                    p.dirty = true;
                }
                for old in std::mem::take(&mut self.orphans) {
                    let _ = self.gateway.call("/v3/lease/revoke", &json!({"ID": old.to_string()}), self.timeout());
                }
                self.flush_all();
            }
            Ok(_) => self.lost("etcd granted no lease".into()),
            Err(e) => self.lost(format!("cannot get a lease: {e}")),
        }
    }

    fn keepalive(&mut self, id: i64, expires: Instant, ok: Instant) {
        match self.gateway.call("/v3/lease/keepalive", &json!({"ID": id.to_string()}), self.timeout()) {
            Ok(reply) => {
                let ttl = int(&reply["result"]["TTL"]);
                if ttl <= 0 {
                    return self.lost(format!("lease {id:x} expired"));
                }
                let ttl = Duration::from_secs(ttl as u64);
                let now = Instant::now();
                self.lease = Lease::Live { id, renew: now + ttl / 3, expires: now + ttl, ok: now };
                if !self.published.values().any(|p| p.dirty) {
                    self.shared.connected(true, format!("lease {id:x} kept alive"));
                }
            }
            Err(e) if e.lease_not_found() => self.lost(format!("lease {id:x} expired")),
            Err(e) => {
                let now = Instant::now();
                if now >= expires {
                    // It has surely expired by now; a new one is needed
                    // (the old one is revoked when the store answers).
                    self.orphans.push(id);
                    self.orphans.truncate(16);
                    self.lost(format!("lease {id:x} not kept alive within its ttl: {e}"));
                } else {
                    self.lease = Lease::Live { id, renew: now + self.retry_every(), expires, ok };
                    for p in self.published.values_mut() {
                        p.dirty = true;
                    }
                    self.unreachable(format!("cannot keep lease {id:x} alive: {e}"));
                }
            }
        }
    }

    /// Writes a service's entry with the lease (when there is one).
    fn flush_one(&mut self, service: &str) -> bool {
        let Lease::Live { id, .. } = self.lease else { return false };
        let Some(p) = self.published.get(service) else { return true };
        if !p.dirty {
            return true;
        }
        let settings = &self.shared.settings;
        let body = json!({
            "key": b64(&key(&settings.prefix, service, &settings.site)),
            "value": b64(&encode(&p.entry, &settings.site)),
            "lease": id.to_string(),
        });
        match self.gateway.call("/v3/kv/put", &body, self.timeout()) {
            Ok(_) => {
                if let Some(p) = self.published.get_mut(service) {
                    p.dirty = false;
                }
                true
            }
            Err(e) if e.lease_not_found() => {
                self.lost(format!("lease {id:x} expired"));
                false
            }
            Err(e) => {
                self.unreachable(format!("cannot publish {service}: {e}"));
                false
            }
        }
    }

    /// Keeps the lease alive now if that is due: between the calls of a
    /// long flush (a rejoin writes every entry) or of a guarded withdraw, so
    /// that many calls in a row never starve the keep-alive.
    fn keepalive_if_due(&mut self) {
        if let Lease::Live { id, renew, expires, ok } = self.lease
            && Instant::now() >= renew
        {
            self.keepalive(id, expires, ok);
        }
    }

    /// Writes every dirty entry; tells the engine it is connected once
    /// they are all written.
    fn flush_all(&mut self) {
        let dirty: Vec<String> = self.published.iter().filter(|(_, p)| p.dirty).map(|(s, _)| s.clone()).collect();
        for service in dirty {
            self.keepalive_if_due();
            if !self.flush_one(&service) {
                return;
            }
        }
        if let Lease::Live { id, .. } = self.lease {
            self.shared.connected(true, format!("lease {id:x}, every entry published"));
        }
    }

    fn revoke(&mut self) {
        if let Lease::Live { id, .. } = self.lease {
            let _ = self.gateway.call("/v3/lease/revoke", &json!({"ID": id.to_string()}), self.timeout());
        }
        self.lease = Lease::None { retry: Instant::now() + Duration::from_secs(3600) };
    }

    /// The guarded withdraw: read the service's keys, count the other sites
    /// announcing, and mark this one withdrawn in a transaction that fails
    /// if any key under the service changed, appeared or vanished since.
    fn ask(&mut self, service: &str, ticket: u64, min_sites: u32, withdrawn: Entry) {
        let Some(deadline) = self.shared.waiting(service, ticket) else { return };
        let verdict = self.guard(service, min_sites, &withdrawn, deadline);
        if let Verdict::Withdraw = verdict {
            self.published.insert(service.to_string(), Published { entry: withdrawn, dirty: false });
        }
        self.shared.answer(service, ticket, verdict);
    }

    fn guard(&mut self, service: &str, min_sites: u32, withdrawn: &Entry, deadline: Instant) -> Verdict {
        let local = |why: String| Verdict::Local { why };
        let Lease::Live { id, .. } = self.lease else {
            return local(format!("no lease ({})", self.last_error));
        };
        let shared = Arc::clone(&self.shared);
        let settings = &shared.settings;
        let from = service_prefix(&settings.prefix, service);
        let to = prefix_end(&from);
        let own = key(&settings.prefix, service, &settings.site);
        let mut races = 0;
        let mut backoff = RETRY_FIRST;
        // A transient error (an election, a member going away) is tried
        // again until the deadline: answered Local at once, it would make
        // every site withdraw during a leader election.
        let retry = |e: &super::gateway::GwError, backoff: &mut Duration| {
            let wait = *backoff;
            if !e.transient() || Instant::now() + wait >= deadline {
                return false;
            }
            log::debug!("fleet: {service}: {e}; trying again in {wait:?}");
            std::thread::sleep(wait);
            *backoff = (wait * 2).min(RETRY_MAX);
            true
        };
        while races < GUARD_RETRIES {
            self.keepalive_if_due();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return local("etcd did not answer within the timeout".into());
            }
            let range = json!({"key": b64(&from), "range_end": b64(&to), "limit": (SITES_MAX + 1).to_string()});
            let reply = match self.gateway.call("/v3/kv/range", &range, left) {
                Ok(r) => r,
                Err(e) if retry(&e, &mut backoff) => continue,
                Err(e) => return local(e.to_string()),
            };
            let revision = int(&reply["header"]["revision"]);
            let kvs = reply["kvs"].as_array().map_or(&[][..], Vec::as_slice);
            if kvs.len() > SITES_MAX {
                return local(format!("more than {SITES_MAX} sites publish {service}"));
            }
            let mut sites = 1u32;
            let mut compares = vec![json!({
                "key": b64(&from), "range_end": b64(&to),
                "target": "MOD", "result": "LESS", "mod_revision": (revision + 1).to_string(),
            })];
            let mut others = 0u32;
            for kv in kvs {
                let k = unb64(&kv["key"]);
                let Some((_, site)) = split_key(&settings.prefix, &k) else { continue };
                if k.len() != from.len() + site.len() || site == settings.site {
                    continue;
                }
                if !leased(kv) {
                    // Not written by a live exaprobe (by hand, with
                    // etcdctl?): nothing expires it, so it is not counted.
                    log::debug!("fleet: {service}/{site} has no lease: not counted");
                    continue;
                }
                sites += 1;
                if decode(&unb64(&kv["value"])).announcing {
                    others += 1;
                    // Counted: it must still be there, unchanged, when this
                    // site withdraws (a lease that expired since deletes it).
                    compares.push(json!({
                        "key": b64(&k), "target": "MOD", "result": "EQUAL",
                        "mod_revision": int(&kv["mod_revision"]).to_string(),
                    }));
                }
            }
            if others < min_sites {
                return Verdict::Hold { others_announcing: others, sites };
            }
            let txn = json!({
                "compare": compares,
                "success": [{"request_put": {
                    "key": b64(&own),
                    "value": b64(&encode(withdrawn, &settings.site)),
                    "lease": id.to_string(),
                }}],
            });
            let left = deadline.saturating_duration_since(Instant::now());
            match self.gateway.call("/v3/kv/txn", &txn, left) {
                Ok(reply) if reply["succeeded"].as_bool() == Some(true) => return Verdict::Withdraw,
                // Something changed since the read: read again.
                Ok(_) => races += 1,
                Err(e) if e.lease_not_found() => {
                    self.lost(format!("lease {id:x} expired"));
                    return local(format!("lease {id:x} expired"));
                }
                // Applied or not, the next read tells: it compares against
                // what is there then.
                Err(e) if retry(&e, &mut backoff) => {}
                Err(e) => return local(e.to_string()),
            }
        }
        local(format!("the guard lost {GUARD_RETRIES} races in a row for {service}"))
    }
}

/// Whether a key is bound to a lease (etcd's JSON omits a zero `lease`):
/// exaprobe writes every entry with its lease, so a key without one was
/// written by something else and would never expire.
pub(crate) fn leased(kv: &Value) -> bool {
    int(&kv["lease"]) != 0
}

fn sleep_unless_stopping(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !shared.stopping.load(Ordering::SeqCst) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests;
