//! The executor on toy stages with random delays: bounds, ordering, completion, failures.

use std::sync::Mutex;
use std::time::Duration;

use mspipe_scheduler::{
    BoxError, Emit, Executor, Mode, ReadVersion, SchedulerError, Stage, Stages,
};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 8;

/// Memory: row 0 counts committed updates; update i adds i + 1 to row (i mod 7) + 1.
struct Toy {
    seed: u64,
    /// Per stage: fixed delay, plus a random one of up to `jitter_us`.
    delay_us: [u64; 5],
    jitter_us: u64,
    /// Compute time after the update is handed over (the backward pass).
    backward_us: u64,
    /// The first `.0` iterations' compute takes `.1` µs longer (a slow start).
    slow_start: (usize, u64),
    fail: Option<(Stage, usize)>,
    /// (iteration, updates visible in row 0, version) of every fetch.
    reads: Mutex<Vec<(usize, u64, ReadVersion)>>,
}

impl Toy {
    fn new(seed: u64, jitter_us: u64) -> Self {
        Toy {
            seed,
            delay_us: [0; 5],
            jitter_us,
            backward_us: 0,
            slow_start: (0, 0),
            fail: None,
            reads: Mutex::new(Vec::new()),
        }
    }

    fn pause(&self, stage: Stage, i: usize) -> Result<(), BoxError> {
        let key = self.seed ^ ((i as u64) << 8) ^ stage as u64;
        let jitter = ChaCha8Rng::seed_from_u64(key).random_range(0..=self.jitter_us);
        let slow = if stage == Stage::Compute && i < self.slow_start.0 {
            self.slow_start.1
        } else {
            0
        };
        let us = self.delay_us[stage.index()] + jitter + slow;
        std::thread::sleep(Duration::from_micros(us));
        if self.fail == Some((stage, i)) {
            return Err(format!("injected failure at {i}").into());
        }
        Ok(())
    }
}

impl Stages for Toy {
    type Sampled = usize;
    type Prepared = usize;
    type Fetched = u64;
    type Update = u64;
    type Write = u64;
    type Memory = Vec<u64>;

    fn sample(&self, i: usize) -> Result<usize, BoxError> {
        self.pause(Stage::Sample, i).map(|()| i)
    }

    fn fetch_features(&self, i: usize, s: usize) -> Result<usize, BoxError> {
        assert_eq!(s, i, "iterations arrive in order");
        self.pause(Stage::Feature, i).map(|()| i)
    }

    fn fetch_memory(
        &self,
        i: usize,
        p: usize,
        memory: &Vec<u64>,
        stamps: &[u32],
        version: ReadVersion,
    ) -> Result<u64, BoxError> {
        assert_eq!(p, i);
        self.pause(Stage::Memory, i)?;
        // Row 0 is written by every update: its stamp is the last committed iteration.
        let newest = version
            .committed
            .checked_sub(1)
            .map_or(u32::MAX, |c| c as u32);
        assert_eq!(stamps[0], newest);
        self.reads.lock().unwrap().push((i, memory[0], version));
        Ok(memory.iter().sum())
    }

    fn prepare_update(&self, i: usize, u: u64) -> Result<u64, BoxError> {
        self.pause(Stage::Update, i).map(|()| u)
    }

    fn apply_update(&self, i: usize, u: u64, memory: &mut Vec<u64>) -> Vec<u32> {
        assert_eq!(memory[0], i as u64, "updates commit in order, once each");
        let row = i % (ROWS - 1) + 1;
        memory[0] += 1;
        memory[row] += u;
        vec![0, row as u32]
    }
}

/// Runs `n` iterations on one compute worker; see [`run_on`].
fn run(
    toy: &Toy,
    mode: Mode,
    n: usize,
) -> (Result<mspipe_scheduler::Timeline, SchedulerError>, Vec<u64>) {
    run_on(toy, mode, n, 1)
}

/// Runs `n` iterations on `workers` compute workers; compute sleeps, checks that it runs on the
/// worker the iteration belongs to, in order, and hands over `i + 1`.
fn run_on(
    toy: &Toy,
    mode: Mode,
    n: usize,
    workers: usize,
) -> (Result<mspipe_scheduler::Timeline, SchedulerError>, Vec<u64>) {
    let mut memory = vec![0u64; ROWS];
    let computes = (0..workers)
        .map(|w| {
            let mut expected = w;
            // Compute works (forward), hands its update over, works on (backward).
            move |i: usize, _fetched: u64, emit: &mut Emit<'_, u64>| -> Result<(), BoxError> {
                assert_eq!(i, expected, "worker {w} gets its own iterations in order");
                expected += workers;
                toy.pause(Stage::Compute, i)?;
                emit(i as u64 + 1);
                std::thread::sleep(Duration::from_micros(toy.backward_us));
                Ok(())
            }
        })
        .collect();
    let result = Executor::new(mode).run_workers(toy, &mut memory, ROWS, n, computes);
    (result, memory)
}

/// Sum of the memory after the first `c` updates.
fn sum_after(c: u64) -> u64 {
    c + c * (c + 1) / 2
}

fn check(toy: &Toy, mode: Mode, n: usize, workers: usize) {
    let (result, memory) = run_on(toy, mode, n, workers);
    let tl = result.expect("completes");
    assert_eq!(memory[0], n as u64, "every update committed once");
    assert_eq!(memory.iter().sum::<u64>(), sum_after(n as u64));
    assert_eq!(tl.iterations.len(), n);
    for it in &tl.iterations {
        assert!(
            it.spans.iter().all(Option::is_some),
            "all five stages ran: {it:?}"
        );
        assert!(it.observed <= it.staleness && it.staleness <= mode.bound());
    }
    let ends: Vec<f64> = tl
        .iterations
        .iter()
        .map(|it| it.end(Stage::Update).unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] <= w[1]), "commits in order");
    let reads = toy.reads.lock().unwrap();
    assert_eq!(reads.len(), n);
    for (j, &(i, visible, v)) in reads.iter().enumerate() {
        assert_eq!(i, j, "fetches in order");
        assert_eq!(visible as usize, v.committed);
        let bound = tl.iterations[i].staleness;
        assert!(
            v.staleness() <= bound,
            "iteration {i} missed {} > {bound}",
            v.staleness()
        );
        assert_eq!(v.staleness(), tl.iterations[i].observed);
        if let Some(k) = mode.fixed_staleness(i) {
            assert_eq!(v.staleness(), k, "fixed modes read exactly k back");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_delays_never_break_the_bounds(
        seed in any::<u64>(),
        k in 0usize..4,
        adaptive in any::<bool>(),
        workers in 1usize..4,
    ) {
        let mode = if adaptive { Mode::Adaptive { k_max: k } } else { Mode::Fixed(k) };
        check(&Toy::new(seed, 300), mode, 40, workers);
    }
}

#[test]
fn off_mode_reproduces_sequential_inputs() {
    for workers in [1, 3] {
        let toy = Toy::new(7, 200);
        let (result, _) = run_on(&toy, Mode::Off, 30, workers);
        result.expect("completes");
        for &(i, visible, _) in toy.reads.lock().unwrap().iter() {
            assert_eq!(visible, i as u64, "iteration {i} saw every earlier update");
        }
    }
}

#[test]
fn several_workers_compute_side_by_side_when_staleness_allows() {
    // Compute 4 ms per iteration and nothing else: one worker takes ≥ 48 ms for 12 iterations;
    // two workers reading one update back overlap their compute.
    let mut toy = Toy::new(5, 0);
    toy.delay_us = [0, 0, 0, 4_000, 0];
    let (one, _) = run_on(&toy, Mode::Fixed(1), 12, 1);
    let mut toy = Toy::new(5, 0);
    toy.delay_us = [0, 0, 0, 4_000, 0];
    let (two, _) = run_on(&toy, Mode::Fixed(1), 12, 2);
    let overlapping = |tl: &mspipe_scheduler::Timeline| {
        let spans: Vec<_> = tl
            .iterations
            .iter()
            .map(|it| it.span(Stage::Compute).unwrap())
            .collect();
        spans.windows(2).filter(|w| w[1].0 < w[0].1).count()
    };
    assert_eq!(
        overlapping(&one.expect("completes")),
        0,
        "one worker computes in turn"
    );
    assert!(
        overlapping(&two.expect("completes")) >= 5,
        "two workers overlap"
    );
}

#[test]
fn adaptive_mode_uses_staleness_only_when_updates_lag_behind_compute() {
    // Forward 2 ms, backward 1 ms, update 2 ms: the update of i ends 1 ms after compute of i,
    // so a fetch that waited for it would stall compute; the planner reads one update back.
    let mut toy = Toy::new(3, 0);
    toy.delay_us = [100, 100, 200, 2_000, 2_000];
    toy.backward_us = 1_000;
    let (result, _) = run(&toy, Mode::Adaptive { k_max: 3 }, 40);
    let tl = result.expect("completes");
    let (mean, max) = tl.observed_staleness();
    assert!(mean > 0.5 && max <= 3, "mean {mean}, max {max}");
    assert!(tl.svg(0..10).contains("k="));
    // Instant updates: no staleness is needed (an update commits before the next fetch plans).
    let mut toy = Toy::new(3, 0);
    toy.delay_us = [100, 100, 200, 2_000, 0];
    toy.backward_us = 1_000;
    let (result, _) = run(&toy, Mode::Adaptive { k_max: 3 }, 40);
    let (mean, _) = result.expect("completes").observed_staleness();
    assert!(mean < 0.5, "mean {mean}");
}

#[test]
fn a_fetch_the_plan_delays_starts_once_compute_waits_for_it() {
    // Forward 1 ms, backward 0.5 ms, update 1 ms: the fetch reads one update back, planned to
    // start as late as compute allows. The first 10 steps take 30 ms more, so once compute speeds
    // up the profile overestimates it for a while (by ~30 ms, then 24, 19, …: over 100 ms in all)
    // and the plan would start fetches long after compute is ready for them.
    let mut toy = Toy::new(11, 0);
    toy.delay_us = [100, 100, 500, 1_000, 1_000];
    toy.backward_us = 500;
    toy.slow_start = (10, 30_000);
    let (result, _) = run(&toy, Mode::Adaptive { k_max: 3 }, 40);
    let tl = result.expect("completes");
    let compute = |i: usize| tl.iterations[i].span(Stage::Compute).expect("ran");
    // Compute waits for a fetch at most about the fetch's own 0.5 ms per step.
    let idle: f64 = (11..40).map(|i| compute(i).0 - compute(i - 1).1).sum();
    assert!(idle < 0.05, "compute idle {idle} s over 29 steps");
    assert!(tl.observed_staleness().0 > 0.3, "the plan used staleness");
}

#[test]
fn a_failing_stage_stops_the_pipeline_with_its_name_and_iteration() {
    for stage in [
        Stage::Sample,
        Stage::Feature,
        Stage::Memory,
        Stage::Compute,
        Stage::Update,
    ] {
        for (mode, workers) in [
            (Mode::Off, 1),
            (Mode::Fixed(2), 1),
            (Mode::Adaptive { k_max: 2 }, 1),
            (Mode::Fixed(2), 2),
        ] {
            let mut toy = Toy::new(1, 50);
            toy.fail = Some((stage, 5));
            let err = run_on(&toy, mode, 20, workers).0.expect_err("fails");
            let text = err.to_string();
            assert!(
                matches!(err, SchedulerError::Stage { stage: s, iteration: 5, .. } if s == stage),
                "{text}"
            );
            assert!(
                text.contains(stage.name()) && text.contains("injected failure at 5"),
                "{text}"
            );
        }
    }
}

#[test]
fn compute_that_never_hands_over_an_update_is_an_error() {
    let toy = Toy::new(1, 0);
    let mut memory = vec![0u64; ROWS];
    let err = Executor::new(Mode::Off)
        .run(&toy, &mut memory, ROWS, 5, |i, _, emit| {
            if i != 3 {
                emit(1);
            }
            Ok(())
        })
        .expect_err("fails");
    assert!(matches!(err, SchedulerError::NoUpdate(3)), "{err}");
}
