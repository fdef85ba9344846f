//! The probe workers: threads that run blocking checks, one job at a time
//! each, started on demand.
//!
//! Each worker has its own one-slot channel, and the engine hands a job to
//! an idle worker directly (the most recently idle first, whose stack is
//! warm): one wake-up per job and one per result, no queue shared by all
//! workers and no lock to fight over.
//!
//! A new worker is started when a job comes and none is idle, up to the
//! limit. The default limit is the number of configured checks, which rounds
//! (that never overlap within a service) can never exceed: so a check that
//! hangs until its timeout holds only its own worker, and never delays
//! another service's probe. Jobs beyond an explicit lower limit wait in
//! order.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::thread;
use std::time::Instant;

use super::Event;
use super::core::ProbeJob;
use crate::probe::Outcome;
use crate::probe::command::Children;

/// The pool, driven by the engine thread.
#[derive(Debug)]
pub struct Pool {
    workers: Vec<SyncSender<ProbeJob>>,
    idle: Vec<usize>,
    waiting: VecDeque<ProbeJob>,
    limit: usize,
    results: Sender<Event>,
    children: Children,
}

impl Pool {
    /// A pool of at most `limit` workers (at least one) sending results as
    /// [`Event::Probe`] on `results`.
    pub fn new(limit: usize, results: Sender<Event>, children: Children) -> Self {
        Pool { workers: Vec::new(), idle: Vec::new(), waiting: VecDeque::new(), limit: limit.max(1), results, children }
    }

    /// Raises or lowers the limit (a reload changed the number of checks).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Workers started so far.
    pub fn started(&self) -> usize {
        self.workers.len()
    }

    /// Runs `job` on an idle worker, a new one, or as soon as one is free.
    pub fn submit(&mut self, job: ProbeJob) {
        let job = match self.idle.pop() {
            Some(w) => match self.workers[w].try_send(job) {
                Ok(()) => return,
                Err(e) => unsent(e),
            },
            None => job,
        };
        if self.workers.len() < self.limit {
            match self.spawn() {
                Ok(w) => {
                    if let Err(e) = self.workers[w].try_send(job) {
                        self.waiting.push_back(unsent(e));
                    }
                    return;
                }
                Err(e) => log::error!("could not start a probe worker: {e}"),
            }
        }
        self.waiting.push_back(job);
    }

    /// Worker `w` sent its result: it takes the next waiting job, or idles.
    pub fn returned(&mut self, w: usize) {
        if w >= self.workers.len() {
            return;
        }
        match self.waiting.pop_front() {
            Some(job) => {
                if let Err(e) = self.workers[w].try_send(job) {
                    self.waiting.push_front(unsent(e));
                    self.idle.push(w);
                }
            }
            None => self.idle.push(w),
        }
    }

    fn spawn(&mut self) -> std::io::Result<usize> {
        let w = self.workers.len();
        let (tx, rx) = mpsc::sync_channel::<ProbeJob>(1);
        let (results, children) = (self.results.clone(), self.children.clone());
        thread::Builder::new().name(format!("probe-{w}")).stack_size(256 * 1024).spawn(move || {
            while let Ok(job) = rx.recv() {
                let start = Instant::now();
                // A panicking probe is a failed check, not a dead process.
                let outcome = catch_unwind(AssertUnwindSafe(|| job.probe().check.run(job.timeout, &children)))
                    .unwrap_or_else(|_| Outcome::down("panic"));
                let event =
                    Event::Probe { round: job.round, check: job.check, outcome, elapsed: start.elapsed(), worker: w };
                if results.send(event).is_err() {
                    return;
                }
            }
        })?;
        self.workers.push(tx);
        Ok(w)
    }
}

/// The job a failed `try_send` gave back (the worker's slot was taken, or the
/// worker is gone).
fn unsent(e: TrySendError<ProbeJob>) -> ProbeJob {
    match e {
        TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
    }
}
