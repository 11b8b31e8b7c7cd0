//! Discrete-event simulation of a plan: every stage has its own resource (one lane, iterations in
//! order; compute one lane per worker), with the dependencies of MTGNN training — F(i) after S(i),
//! M(i) after F(i) and U(i − 1 − k_i), C(i) after M(i) and C(i − N) (the same worker's previous
//! iteration, which ends with its group's gradient exchange), U(i) after C(i) handed its update
//! over and U(i − 1).

use crate::plan::{FetchPlan, PlanInput, fetch_deadline, plan_fetch};
use crate::{Mode, Stage, StageTimes, Timeline};

/// The compute workers of a simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workers {
    /// Data-parallel workers; iteration `i` on worker `i mod count`, and each group of `count`
    /// consecutive iterations ends together (their gradients are averaged before the step).
    pub count: usize,
    /// Fraction of a compute step after which its memory update is handed over (the forward
    /// pass's share of the step; 1 hands it over at the end).
    pub handover: f64,
}

impl Workers {
    /// One worker handing its update over when compute ends.
    pub const ONE: Workers = Workers {
        count: 1,
        handover: 1.0,
    };
}

/// Simulates `iterations` iterations with fixed stage durations `times` under `mode`, one
/// compute worker handing its update over at the end of each step.
pub fn simulate(times: StageTimes, iterations: usize, mode: Mode) -> Timeline {
    simulate_workers(times, iterations, mode, Workers::ONE)
}

/// [`simulate`] on `workers`.
pub fn simulate_workers(
    times: StageTimes,
    iterations: usize,
    mode: Mode,
    workers: Workers,
) -> Timeline {
    let n = workers.count.max(1);
    let mut tl = Timeline {
        workers: n,
        ..Timeline::default()
    };
    let tau = |s: Stage| times.get(s);
    for i in 0..iterations {
        // End of `stage` of iteration `j`, 0 before the first iteration.
        let end = |tl: &Timeline, j: Option<usize>, stage: Stage| {
            j.and_then(|j| tl.iterations[j].end(stage)).unwrap_or(0.0)
        };
        let (me, prev) = (Some(i), i.checked_sub(1));
        let s0 = end(&tl, prev, Stage::Sample);
        tl.record(i, Stage::Sample, s0, s0 + tau(Stage::Sample));
        let f0 = end(&tl, me, Stage::Sample).max(end(&tl, prev, Stage::Feature));
        tl.record(i, Stage::Feature, f0, f0 + tau(Stage::Feature));
        let feature_end = end(&tl, me, Stage::Feature);
        let start_of = |j: usize| end(&tl, j.checked_sub(n), Stage::Compute);
        let compute_start = start_of(i);
        let plan = match mode.fixed_staleness(i) {
            Some(k) => FetchPlan {
                staleness: k,
                start: end(&tl, (i - k).checked_sub(1), Stage::Update).max(feature_end),
            },
            None => plan_fetch(
                PlanInput {
                    iteration: i,
                    feature_end,
                    // One fetch lane: the next workers' fetches queue behind this one.
                    deadline: fetch_deadline(
                        (i..iterations).take(n).map(start_of),
                        tau(Stage::Memory),
                    ),
                    memory_time: tau(Stage::Memory),
                    previous: prev.map(|p| tl.iterations[p].staleness),
                },
                mode.bound(),
                |j| end(&tl, Some(j), Stage::Update),
            ),
        };
        // Each lane runs its iterations in order.
        let m0 = plan.start.max(end(&tl, prev, Stage::Memory)).max(0.0);
        tl.record(i, Stage::Memory, m0, m0 + tau(Stage::Memory));
        let c0 = end(&tl, me, Stage::Memory).max(compute_start);
        tl.record(i, Stage::Compute, c0, c0 + tau(Stage::Compute));
        let handed = c0 + workers.handover * tau(Stage::Compute);
        let u0 = handed.max(end(&tl, prev, Stage::Update));
        tl.record(i, Stage::Update, u0, u0 + tau(Stage::Update));
        if (i + 1) % n == 0 || i + 1 == iterations {
            exchange(&mut tl, i + 1 - (i % n + 1));
        }
        // In the simulation every fetch reads exactly what it waited for.
        let it = tl.at(i);
        it.staleness = plan.staleness;
        it.observed = plan.staleness;
    }
    tl
}

/// [`simulate_workers`] on a machine of `cores` cores that every stage shares. The simulation
/// gives each stage and each worker its own processor; where its stages' work would keep more than
/// `cores` busy on average, the machine instead shares its cores among them (each runs
/// proportionally slower), which stretches every duration by the same factor: the timeline then
/// lasts the work divided by the cores. Stretching all durations alike changes no plan decision,
/// so the shape of the timeline is the unbounded simulation's.
///
/// # Panics
/// If `cores` is 0.
pub fn simulate_on_cores(
    times: StageTimes,
    iterations: usize,
    mode: Mode,
    workers: Workers,
    cores: usize,
) -> Timeline {
    assert!(cores > 0, "a machine has at least one core");
    let free = simulate_workers(times, iterations, mode, workers);
    let work = times.total() * iterations as f64;
    let stretch = work / (cores as f64 * free.makespan());
    // An empty timeline (no iterations, or no work) has nothing to stretch.
    if !stretch.is_finite() || stretch <= 1.0 {
        return free;
    }
    let StageTimes(t) = times;
    simulate_workers(
        StageTimes(t.map(|x| x * stretch)),
        iterations,
        mode,
        workers,
    )
}

/// The group of iterations `first..` (to the end of the timeline) ends its compute together, when
/// its slowest member does: the gradient exchange.
fn exchange(tl: &mut Timeline, first: usize) {
    let group = &mut tl.iterations[first..];
    let spans = || group.iter().filter_map(|it| it.span(Stage::Compute));
    let last = spans().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    for it in group.iter_mut() {
        if let Some((s, _)) = it.span(Stage::Compute) {
            it.spans[Stage::Compute.index()] = Some((s, last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TGN on GDELT with 4 GPUs as MSPipe reports it (seconds per epoch).
    fn gdelt() -> StageTimes {
        StageTimes::new(107.8, 40.1, 55.9, 133.3, 29.5)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn cores_bound_the_timeline_by_the_work_they_can_do() {
        // Two workers, each step 10 s of compute, 1 s each of sample, memory and update: 13 s of
        // work per iteration. Unbounded, two workers overlap fully under MSPipe's plan.
        let times = StageTimes::new(1.0, 0.0, 1.0, 10.0, 1.0);
        let workers = Workers {
            count: 2,
            handover: 1.0,
        };
        let mode = Mode::Adaptive { k_max: 4 };
        let free = simulate_workers(times, 40, mode, workers);
        // Plenty of cores: the same timeline.
        let wide = simulate_on_cores(times, 40, mode, workers, 8);
        assert!(close(wide.makespan(), free.makespan()));
        // Two cores cannot do 40 · 13 s of work in less than 260 s, and sharing them stretches
        // the free timeline to exactly that.
        assert!(free.makespan() < 260.0, "{}", free.makespan());
        let two = simulate_on_cores(times, 40, mode, workers, 2);
        assert!((two.makespan() - 260.0).abs() < 1e-6, "{}", two.makespan());
        assert_eq!(two.staleness(), free.staleness(), "same plan decisions");
        // One worker in strict mode leaves a core idle most of the time: no stretch.
        let strict = simulate_on_cores(times, 40, Mode::Off, Workers::ONE, 2);
        assert!(close(
            strict.makespan(),
            simulate(times, 40, Mode::Off).makespan()
        ));
    }

    #[test]
    #[should_panic(expected = "at least one core")]
    fn no_cores_panics() {
        simulate_on_cores(gdelt(), 2, Mode::Off, Workers::ONE, 0);
    }

    #[test]
    fn sequential_plan_is_the_sum_of_stages_per_iteration_but_prefetches_sampling() {
        let tl = simulate(gdelt(), 3, Mode::Off);
        // Iteration 0: S 0–107.8, F –147.9, M –203.8, C –337.1, U –366.6.
        assert_eq!(tl.iterations[0].span(Stage::Compute), Some((203.8, 337.1)));
        // Iteration 1: S, F ran ahead (F ended at 255.7) but M waits for U(0) = 366.6.
        let m1 = tl.iterations[1].span(Stage::Memory).expect("ran");
        assert!(close(m1.0, 366.6) && close(m1.1, 422.5), "{m1:?}");
        // Each later iteration takes M + C + U = 218.7 (the S/F chain is shorter).
        assert!(
            close(tl.makespan(), 366.6 + 2.0 * 218.7),
            "{}",
            tl.makespan()
        );
        assert_eq!(tl.staleness(), vec![0, 0, 0]);
    }

    #[test]
    fn mspipe_plan_on_the_gdelt_profile_keeps_compute_busy_with_staleness_one() {
        let tl = simulate(gdelt(), 10, Mode::Adaptive { k_max: 4 });
        // Iteration 1: C(1) starts at e_C(0) = 337.1, so M(1) must start by 281.2; U(0) ends at
        // 366.6 → k = 1, and M(1) starts exactly at 281.2 (as late as possible).
        let m1 = tl.iterations[1].span(Stage::Memory).expect("ran");
        assert!(close(m1.0, 281.2) && close(m1.1, 337.1), "{m1:?}");
        // Iteration 2: M(2) must start by 470.4 − 55.9 = 414.5; U(1) ends at 499.9, U(0) at
        // 366.6 → k = 1 again.
        assert!(close(
            tl.iterations[2].span(Stage::Memory).expect("ran").0,
            414.5
        ));
        assert_eq!(tl.staleness(), vec![0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
        // Compute runs back to back from 203.8: makespan = 203.8 + 10·133.3 + 29.5.
        for w in tl.iterations.windows(2) {
            let (a, b) = (w[0].span(Stage::Compute), w[1].span(Stage::Compute));
            assert!(close(a.expect("ran").1, b.expect("ran").0));
        }
        assert!(
            close(tl.makespan(), 203.8 + 1333.0 + 29.5),
            "{}",
            tl.makespan()
        );
        let sequential = simulate(gdelt(), 10, Mode::Off).makespan();
        let speedup = sequential / tl.makespan();
        // Sequential: 366.6 for the first iteration, then M + C + U = 218.7 each.
        assert!(
            (speedup - (366.6 + 9.0 * 218.7) / 1566.3).abs() < 1e-9,
            "{speedup}"
        );
        // Long runs approach Στ / τ_C = 366.6 / 133.3 against strictly serial training, and
        // compute utilisation approaches 1.
        let long = simulate(gdelt(), 1000, Mode::Adaptive { k_max: 4 });
        assert!(long.compute_utilisation() > 0.998);
        let serial = 1000.0 * gdelt().total();
        assert!((serial / long.makespan() - 366.6 / 133.3).abs() < 0.01);
    }

    #[test]
    fn fixed_staleness_waits_for_exactly_k_updates_back() {
        // Compute-light profile: U(i−1) is late, so fixed:2 reads U(i−3)'s memory.
        let t = StageTimes::new(1.0, 1.0, 1.0, 2.0, 3.0);
        let tl = simulate(t, 6, Mode::Fixed(2));
        assert_eq!(tl.staleness(), vec![0, 1, 2, 2, 2, 2]);
        for i in 3..6 {
            let m = tl.iterations[i].span(Stage::Memory).expect("ran").0;
            let u = tl.iterations[i - 3].end(Stage::Update).expect("ran");
            assert!(m >= u);
        }
        // The update lane (3 per iteration) is the bottleneck: it runs back to back.
        for w in tl.iterations[1..].windows(2) {
            assert_eq!(
                w[0].end(Stage::Update),
                w[1].span(Stage::Update).map(|s| s.0)
            );
        }
    }

    #[test]
    fn two_workers_take_turns_when_strict_and_compute_side_by_side_with_staleness() {
        // Compute dominates: 10 per step, forward 4 of it; fetch and update 1 each.
        let t = StageTimes::new(0.5, 0.5, 1.0, 10.0, 1.0);
        let two = |mode, handover| {
            let workers = Workers { count: 2, handover };
            simulate_workers(t, 40, mode, workers)
        };
        // Strict, update at the end of compute: each fetch waits for the previous update, so the
        // workers take turns — no faster than one worker.
        let one = simulate(t, 40, Mode::Off).makespan();
        let strict = two(Mode::Off, 1.0).makespan();
        assert!(strict >= one * 0.99, "{strict} vs {one}");
        // Strict with the update handed over after the forward pass: the next worker's forward
        // overlaps this one's backward.
        assert!(two(Mode::Off, 0.4).makespan() < strict * 0.8);
        // Adaptive staleness keeps both workers busy: about half the time of one worker.
        let tl = two(Mode::Adaptive { k_max: 4 }, 0.4);
        let adaptive = tl.makespan();
        assert!(adaptive < one * 0.6, "{adaptive} vs {one}");
        assert!(
            tl.compute_utilisation() > 0.9,
            "{}",
            tl.compute_utilisation()
        );
        assert!(tl.staleness().iter().all(|&k| k <= 4));
        // Each group of two ends its compute together (the gradient exchange).
        for pair in tl.iterations.chunks(2) {
            assert_eq!(pair[0].end(Stage::Compute), pair[1].end(Stage::Compute));
        }
    }

    #[test]
    fn one_fetch_lane_has_every_worker_of_a_group_fetched_when_the_group_starts() {
        // Fetches take 2 of a 10 step, updates are handed over at the end of a step (so the
        // fetches read stale memory, planned as late as they may start). After each exchange
        // both workers start again together: both their fetches must have run by then, not the
        // second only once the first ended.
        let t = StageTimes::new(0.5, 0.5, 2.0, 10.0, 1.0);
        let workers = Workers {
            count: 2,
            handover: 1.0,
        };
        let tl = simulate_workers(t, 40, Mode::Adaptive { k_max: 4 }, workers);
        let start = |i: usize| tl.iterations[i].span(Stage::Compute).expect("ran").0;
        for g in (2..40).step_by(2) {
            assert!(
                close(start(g), start(g + 1)),
                "group {g}: {} vs {}",
                start(g),
                start(g + 1)
            );
            // Each group starts when the one before it ended: compute never waits for a fetch.
            let before = tl.iterations[g - 1].end(Stage::Compute).expect("ran");
            assert!(close(start(g), before), "group {g}");
        }
        assert!(tl.staleness()[2..].iter().all(|&k| (1..=4).contains(&k)));
    }

    #[test]
    fn adaptive_never_exceeds_k_max_and_never_jumps_back_more_than_one() {
        // Memory fetch dominates: no staleness helps, and k stays within its caps.
        let t = StageTimes::new(1.0, 1.0, 9.0, 1.0, 5.0);
        let tl = simulate(t, 30, Mode::Adaptive { k_max: 3 });
        let k = tl.staleness();
        assert!(k.iter().all(|&k| k <= 3), "{k:?}");
        assert!(k.windows(2).all(|w| w[1] <= w[0] + 1), "{k:?}");
    }
}
