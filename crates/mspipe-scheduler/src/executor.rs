//! Runs the five stages of a stream of iterations on their own threads, joined by bounded queues,
//! over a [`Versioned`] memory: S → F → M → C → U.
//!
//! Sampling and feature fetch run ahead freely (they do not read memory). The memory fetch of
//! iteration `i` reads under the plan's staleness bound, delayed as the plan says but never past
//! the moment compute waits for it (the plan's compute times are estimates). Compute runs on one
//! or more workers (worker 0 on the caller's thread, the others on threads of their own),
//! iteration `i` on worker `i mod N`; each hands its memory update over as soon as it has one —
//! after the forward pass — so the update can commit while the backward pass runs. Updates commit
//! in iteration order whichever worker finishes first.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crate::plan::{PlanInput, fetch_deadline, plan_fetch};
use crate::versioned::{ReadVersion, Versioned};
use crate::{BoxError, Mode, Profile, SchedulerError, Stage, Timeline};

/// The stages of one iteration, called from the executor's threads.
pub trait Stages: Sync {
    /// Output of sampling.
    type Sampled: Send;
    /// Output of the feature fetch.
    type Prepared: Send;
    /// Output of the memory fetch, consumed by compute.
    type Fetched: Send;
    /// The memory update compute hands over.
    type Update: Send;
    /// An update made ready to apply.
    type Write: Send;
    /// The node memory.
    type Memory: Send + Sync;

    /// S(i).
    fn sample(&self, i: usize) -> Result<Self::Sampled, BoxError>;
    /// F(i).
    fn fetch_features(&self, i: usize, sampled: Self::Sampled) -> Result<Self::Prepared, BoxError>;
    /// M(i): `memory` holds the updates of iterations `0..version.committed`, `stamps` the
    /// iteration that last wrote each row.
    fn fetch_memory(
        &self,
        i: usize,
        prepared: Self::Prepared,
        memory: &Self::Memory,
        stamps: &[u32],
        version: ReadVersion,
    ) -> Result<Self::Fetched, BoxError>;
    /// U(i), first part, outside the memory lock: turn the update into what is written
    /// (memory rows, mails), so fetches are blocked only while [`Stages::apply_update`] copies.
    fn prepare_update(&self, i: usize, update: Self::Update) -> Result<Self::Write, BoxError>;
    /// U(i), second part, under the write lock: apply `write` to `memory`; returns the rows
    /// written (they are stamped `i`).
    fn apply_update(&self, i: usize, write: Self::Write, memory: &mut Self::Memory) -> Vec<u32>;

    /// Called once when the run fails, from the thread that saw the failure: release whatever
    /// the compute workers wait on besides the executor's queues (e.g. a gradient exchange).
    fn abort(&self) {}
}

/// What compute calls to hand its memory update over (from whichever thread it runs its step on).
pub type Emit<'a, U> = dyn FnMut(U) + Send + 'a;

/// Pipeline settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Executor {
    /// How staleness is chosen.
    pub mode: Mode,
    /// Iterations sampling and feature fetch may run ahead of the memory fetch.
    pub queue: usize,
    /// Weight of the newest measurement in the stage-time averages.
    pub alpha: f64,
}

impl Executor {
    /// `mode` with the default queue (2) and stage-time smoothing (0.2).
    pub fn new(mode: Mode) -> Self {
        Executor {
            mode,
            queue: 2,
            alpha: 0.2,
        }
    }
}

/// Shared bookkeeping: what ran when, the stage-time profile, the first error.
struct Shared<'m, M> {
    start: Instant,
    memory: Versioned<&'m mut M>,
    /// [`Stages::abort`] of the run's stages.
    abort: &'m (dyn Fn() + Sync),
    state: Mutex<State>,
    /// Signalled when a compute worker starts waiting for a fetch ([`State::wanted`]).
    wanted: Condvar,
}

#[derive(Default)]
struct State {
    timeline: Timeline,
    profile: Option<Profile>,
    /// Compute workers: C(j) follows C(j − workers) on the same worker.
    workers: usize,
    /// Start of each compute step begun so far, by iteration.
    compute_started: BTreeMap<usize, f64>,
    /// Moving average of compute start → update handed over (the forward pass).
    emit_offset: f64,
    /// One past the latest iteration a compute worker is ready for and waiting on its fetch.
    wanted: usize,
    error: Option<SchedulerError>,
}

impl<M> Shared<'_, M> {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `stage` of iteration `i` as having run from `start` until now.
    fn record(&self, i: usize, stage: Stage, start: f64) {
        let end = self.now();
        let mut s = self.lock();
        s.timeline.record(i, stage, start, end);
        if let Some(p) = s.profile.as_mut() {
            p.record(stage, end - start);
        }
    }

    /// Keeps the first error and stops every waiting stage.
    fn fail(&self, error: SchedulerError) {
        let first = {
            let mut state = self.lock();
            let first = state.error.is_none();
            state.error.get_or_insert(error);
            first
        };
        self.wanted.notify_all();
        self.memory.abort();
        if first {
            (self.abort)();
        }
    }

    fn stage_error(&self, stage: Stage, iteration: usize, source: BoxError) {
        self.fail(SchedulerError::Stage {
            stage,
            iteration,
            source,
        });
    }

    fn failed(&self) -> bool {
        self.lock().error.is_some()
    }

    /// A compute worker is ready for iteration `i` and waits for its fetch.
    fn want(&self, i: usize) {
        let mut st = self.lock();
        st.wanted = st.wanted.max(i + 1);
        self.wanted.notify_all();
    }

    /// Sleeps until `at`, or until a compute worker waits for iteration `i` or a later one (whose
    /// fetch queues behind M(i)): the plan delays a fetch by its estimate of compute's progress,
    /// and once compute waits, every further moment of delay stalls it.
    fn delay_fetch(&self, i: usize, at: f64) {
        let mut st = self.lock();
        loop {
            let left = at - self.now();
            if left <= 0.0 || st.wanted > i || st.error.is_some() {
                return;
            }
            st = self
                .wanted
                .wait_timeout(st, Duration::from_secs_f64(left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl State {
    fn tau(&self, stage: Stage) -> f64 {
        self.profile.as_ref().map_or(0.0, |p| p.times().get(stage))
    }

    /// Expected start of C(j) seen at `now`.
    fn compute_start(&self, j: usize, now: f64) -> f64 {
        match (self.compute_started.get(&j), j.checked_sub(self.workers)) {
            (Some(&s), _) => s,
            (None, Some(p)) => self.compute_end(p, now).max(now),
            (None, None) => now,
        }
    }

    /// Iteration `j`'s record, if it has one yet.
    fn iteration(&self, j: usize) -> Option<&crate::Iteration> {
        self.timeline.iterations.get(j)
    }

    /// Expected end of C(j).
    fn compute_end(&self, j: usize, now: f64) -> f64 {
        let done = self.iteration(j).and_then(|it| it.end(Stage::Compute));
        done.unwrap_or_else(|| (self.compute_start(j, now) + self.tau(Stage::Compute)).max(now))
    }

    /// Expected end of U(j): after its hand-over and after U(j − 1) (updates commit in order).
    fn update_end(&self, j: usize, now: f64) -> f64 {
        let done = self.iteration(j).and_then(|it| it.end(Stage::Update));
        done.unwrap_or_else(|| {
            let handed = match self.iteration(j).and_then(|it| it.handover) {
                Some(e) => e,
                None => self.compute_start(j, now) + self.emit_offset,
            };
            let previous = j.checked_sub(1).map_or(now, |p| self.update_end(p, now));
            handed.max(previous).max(now) + self.tau(Stage::Update)
        })
    }
}

/// Receives from `rx`, or `None` when the sender is gone (shutdown).
fn next<T>(rx: &Receiver<T>) -> Option<T> {
    rx.recv().ok()
}

impl Executor {
    /// Runs `iterations` iterations of `stages` over `memory` (`rows` rows), calling `compute`
    /// for each on this thread with the fetched inputs and a callback to hand over the memory
    /// update (exactly once per iteration). Returns the timeline.
    pub fn run<S, C>(
        &self,
        stages: &S,
        memory: &mut S::Memory,
        rows: usize,
        iterations: usize,
        compute: C,
    ) -> Result<Timeline, SchedulerError>
    where
        S: Stages,
        C: FnMut(usize, S::Fetched, &mut Emit<'_, S::Update>) -> Result<(), BoxError> + Send,
    {
        self.run_workers(stages, memory, rows, iterations, vec![compute])
    }

    /// [`Executor::run`] with one compute worker per element of `workers`: iteration `i` is
    /// computed by worker `i mod N` (worker 0 on this thread, the others on their own), in
    /// iteration order on each worker. The memory fetch and update stay one stage each, shared by
    /// all workers, so every read keeps the staleness bound of a single worker's pipeline.
    ///
    /// # Panics
    /// If `workers` is empty.
    pub fn run_workers<S, C>(
        &self,
        stages: &S,
        memory: &mut S::Memory,
        rows: usize,
        iterations: usize,
        workers: Vec<C>,
    ) -> Result<Timeline, SchedulerError>
    where
        S: Stages,
        C: FnMut(usize, S::Fetched, &mut Emit<'_, S::Update>) -> Result<(), BoxError> + Send,
    {
        assert!(!workers.is_empty(), "an executor needs a compute worker");
        let n = workers.len();
        let exact = !matches!(self.mode, Mode::Adaptive { .. });
        let abort = || stages.abort();
        let shared = Shared {
            start: Instant::now(),
            memory: Versioned::new(memory, rows, exact),
            abort: &abort,
            state: Mutex::new(State {
                profile: Some(Profile::new(self.alpha)),
                workers: n,
                ..State::default()
            }),
            wanted: Condvar::new(),
        };
        let queue = self.queue.max(1);
        let (s_tx, s_rx) = sync_channel(queue);
        let (f_tx, f_rx) = sync_channel(queue);
        let (m_txs, m_rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| sync_channel(1)).unzip();
        let (u_tx, u_rx) = sync_channel(self.mode.bound() + n + 1);
        let shared = &shared;
        thread::scope(|scope| {
            let handles: [(Stage, ScopedJoinHandle<'_, ()>); 4] = [
                (
                    Stage::Sample,
                    scope.spawn(move || sampler(shared, stages, iterations, s_tx)),
                ),
                (
                    Stage::Feature,
                    scope.spawn(move || features(shared, stages, s_rx, f_tx)),
                ),
                (
                    Stage::Memory,
                    scope.spawn(move || self.fetcher(shared, stages, iterations, f_rx, m_txs)),
                ),
                (
                    Stage::Update,
                    scope.spawn(move || self.updater(shared, stages, iterations, u_rx)),
                ),
            ];
            // A panic in compute unwinds through here: release the stages waiting on memory first.
            struct AbortOnUnwind<'a, 'm, M>(&'a Shared<'m, M>);
            impl<M> Drop for AbortOnUnwind<'_, '_, M> {
                fn drop(&mut self) {
                    if thread::panicking() {
                        self.0.memory.abort();
                        (self.0.abort)();
                    }
                }
            }
            let guard = AbortOnUnwind(shared);
            let mut workers = workers.into_iter().zip(m_rxs).enumerate();
            let (_, (mut first, first_rx)) = workers.next().expect("checked above");
            let others: Vec<_> = workers
                .map(|(w, (mut compute, rx))| {
                    let tx = u_tx.clone();
                    let worker = Worker { index: w, count: n };
                    let h = scope.spawn(move || {
                        let _guard = AbortOnUnwind(shared);
                        computer::<S, C>(shared, worker, iterations, rx, tx, &mut compute)
                    });
                    (w, h)
                })
                .collect();
            let worker = Worker { index: 0, count: n };
            computer::<S, C>(shared, worker, iterations, first_rx, u_tx, &mut first);
            drop(guard);
            for (w, h) in others {
                if h.join().is_err() {
                    shared.fail(SchedulerError::WorkerPanicked(w));
                }
            }
            for (stage, h) in handles {
                if h.join().is_err() {
                    // A stage that panicked never reported; name it.
                    shared.fail(SchedulerError::Panicked(stage));
                }
            }
        });
        let state = std::mem::take(&mut *shared.lock());
        match state.error {
            Some(e) => Err(e),
            None => Ok(Timeline {
                workers: n,
                ..state.timeline
            }),
        }
    }

    /// M: plans each fetch, waits as the plan says, reads.
    fn fetcher<S: Stages>(
        &self,
        shared: &Shared<'_, S::Memory>,
        stages: &S,
        iterations: usize,
        rx: Receiver<(usize, S::Prepared)>,
        txs: Vec<SyncSender<S::Fetched>>,
    ) {
        let mut previous = None;
        while let Some((i, prepared)) = next(&rx) {
            let now = shared.now();
            let k = match self.mode.fixed_staleness(i) {
                Some(k) => k,
                None => {
                    let plan = {
                        let st = shared.lock();
                        let memory_time = st.tau(Stage::Memory);
                        // The fetches of the workers' next iterations queue behind this one.
                        let queued = (i..iterations).take(txs.len());
                        let input = PlanInput {
                            iteration: i,
                            feature_end: now,
                            deadline: fetch_deadline(
                                queued.map(|j| st.compute_start(j, now)),
                                memory_time,
                            ),
                            memory_time,
                            previous,
                        };
                        plan_fetch(input, self.mode.bound(), |j| st.update_end(j, now))
                    };
                    // Delay to the planned start: the later the read, the fresher the memory.
                    shared.delay_fetch(i, plan.start.min(now + 1.0));
                    plan.staleness
                }
            };
            previous = Some(k);
            // The span starts once the bound is met: waiting for an update is not fetch time.
            let fetched = shared.memory.read(i, k, |memory, stamps, version| {
                let start = shared.now();
                (
                    stages.fetch_memory(i, prepared, memory, stamps, version),
                    version,
                    start,
                )
            });
            let Ok((fetched, version, start)) = fetched else {
                return;
            };
            match fetched {
                Ok(f) => {
                    shared.record(i, Stage::Memory, start);
                    let mut st = shared.lock();
                    let it = st.timeline.at(i);
                    it.staleness = k;
                    it.observed = version.staleness();
                    drop(st);
                    if txs[i % txs.len()].send(f).is_err() {
                        return;
                    }
                }
                Err(e) => return shared.stage_error(Stage::Memory, i, e),
            }
        }
    }

    /// U: commits updates in iteration order (workers hand them over in any order).
    fn updater<S: Stages>(
        &self,
        shared: &Shared<'_, S::Memory>,
        stages: &S,
        iterations: usize,
        rx: Receiver<(usize, S::Update)>,
    ) {
        let mut early = BTreeMap::new();
        let mut next_i = 0;
        let in_order = std::iter::from_fn(|| {
            while !early.contains_key(&next_i) {
                let (i, update) = next(&rx)?;
                early.insert(i, update);
            }
            let update = early.remove(&next_i)?;
            next_i += 1;
            Some((next_i - 1, update))
        });
        for (i, update) in in_order {
            let start = shared.now();
            // Exact modes: the update of i stays out of the memory until M(i + K) has read.
            let hold = self.mode.bound().min(iterations - 1 - i);
            let write = match stages.prepare_update(i, update) {
                Ok(w) => w,
                Err(e) => return shared.stage_error(Stage::Update, i, e),
            };
            let apply = |memory: &mut &mut S::Memory| stages.apply_update(i, write, memory);
            if shared.memory.commit(i, hold, apply).is_err() {
                return;
            }
            shared.record(i, Stage::Update, start);
        }
    }
}

/// S: samples every iteration in order.
fn sampler<S: Stages>(
    shared: &Shared<'_, S::Memory>,
    stages: &S,
    iterations: usize,
    tx: SyncSender<(usize, S::Sampled)>,
) {
    for i in 0..iterations {
        if shared.failed() {
            return;
        }
        let start = shared.now();
        match stages.sample(i) {
            Ok(s) => {
                shared.record(i, Stage::Sample, start);
                if tx.send((i, s)).is_err() {
                    return;
                }
            }
            Err(e) => return shared.stage_error(Stage::Sample, i, e),
        }
    }
}

/// F: fetches features for each sampled iteration.
fn features<S: Stages>(
    shared: &Shared<'_, S::Memory>,
    stages: &S,
    rx: Receiver<(usize, S::Sampled)>,
    tx: SyncSender<(usize, S::Prepared)>,
) {
    while let Some((i, sampled)) = next(&rx) {
        let start = shared.now();
        match stages.fetch_features(i, sampled) {
            Ok(p) => {
                shared.record(i, Stage::Feature, start);
                if tx.send((i, p)).is_err() {
                    return;
                }
            }
            Err(e) => return shared.stage_error(Stage::Feature, i, e),
        }
    }
}

/// Which compute worker a thread is, of how many.
#[derive(Debug, Clone, Copy)]
struct Worker {
    index: usize,
    count: usize,
}

/// C: one worker's compute step for each of its fetched iterations (`index`, `index + count`, …).
fn computer<S, C>(
    shared: &Shared<'_, S::Memory>,
    worker: Worker,
    iterations: usize,
    rx: Receiver<S::Fetched>,
    tx: SyncSender<(usize, S::Update)>,
    compute: &mut C,
) where
    S: Stages,
    C: FnMut(usize, S::Fetched, &mut Emit<'_, S::Update>) -> Result<(), BoxError>,
{
    for i in (worker.index..iterations).step_by(worker.count) {
        shared.want(i);
        let Some(fetched) = next(&rx) else { return };
        let start = shared.now();
        shared.lock().compute_started.insert(i, start);
        let mut emitted = false;
        let mut emit = |update: S::Update| {
            if emitted {
                return;
            }
            emitted = true;
            let at = shared.now();
            {
                let mut st = shared.lock();
                st.timeline.at(i).handover = Some(at);
                st.emit_offset += 0.2 * ((at - start) - st.emit_offset);
            }
            // A closed queue means the updater stopped on an error already recorded.
            let _ = tx.send((i, update));
        };
        let result = compute(i, fetched, &mut emit);
        match result {
            Ok(()) if emitted => shared.record(i, Stage::Compute, start),
            Ok(()) => return shared.fail(SchedulerError::NoUpdate(i)),
            Err(e) => return shared.stage_error(Stage::Compute, i, e),
        }
    }
}
