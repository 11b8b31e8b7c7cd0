//! The staleness plan: which iteration's memory update each memory fetch may miss, and when the
//! fetch starts.
//!
//! Staleness `k_i` means the memory fetch of iteration `i` (M(i)) waits for the update of
//! iteration `i − 1 − k_i` and may miss the `k_i` updates after it; `k = 0` is sequential
//! semantics. MSPipe's rule: compute C(i) starts when C(i − 1) ends (`b_C(i)`); pick the smallest
//! `k` such that M(i) — startable once F(i) and U(i − 1 − k) have ended — still finishes by
//! `b_C(i)`, then start M(i) as late as that allows, `b_M = max(e_U(i−1−k), e_F(i), b_C(i) − τ_M)`,
//! so it reads the freshest memory that does not stall compute. One refinement: when `k = 0`
//! nothing fresher exists, so M(i) starts at `max(e_U(i−1), e_F(i))` — delaying it would only
//! risk stalling compute when the compute estimate runs long. With several compute workers one
//! fetcher serves them all, and the workers of a group start their next steps together (after
//! the gradient exchange): M(i) must then end early enough for the fetches queued behind it to
//! end in time as well ([`fetch_deadline`]), or each later worker of the group starts a fetch late
//! and the others wait that long at the next exchange.

use std::fmt;
use std::str::FromStr;

use crate::SchedulerError;

/// How staleness is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sequential semantics: every fetch sees every earlier update (sampling and feature fetch
    /// still run ahead, they do not depend on memory). Results equal the sequential loop's.
    Off,
    /// Every fetch misses exactly `K` updates (fewer for the first `K` iterations):
    /// deterministic for a seed, as the update of `i − K` waits until M(i) has read.
    Fixed(usize),
    /// MSPipe: the smallest staleness that keeps compute busy, chosen online per iteration from
    /// the profiled stage times, at most `k_max`; fetches read the freshest memory committed.
    Adaptive {
        /// The largest staleness it may choose.
        k_max: usize,
    },
}

impl Mode {
    /// The largest staleness the mode allows.
    pub fn bound(self) -> usize {
        match self {
            Mode::Off => 0,
            Mode::Fixed(k) => k,
            Mode::Adaptive { k_max } => k_max,
        }
    }

    /// Staleness of iteration `i` for the non-adaptive modes (an iteration cannot miss updates
    /// of iterations that never existed).
    pub fn fixed_staleness(self, i: usize) -> Option<usize> {
        match self {
            Mode::Off => Some(0),
            Mode::Fixed(k) => Some(k.min(i)),
            Mode::Adaptive { .. } => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Off => write!(f, "off"),
            Mode::Fixed(k) => write!(f, "fixed:{k}"),
            Mode::Adaptive { .. } => write!(f, "mspipe"),
        }
    }
}

impl FromStr for Mode {
    type Err = SchedulerError;

    /// `off`, `mspipe` (adaptive, k_max 4: the paper's bound is set separately with
    /// [`Mode::Adaptive`]) or `fixed:K`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SchedulerError::Mode(s.to_string());
        match s {
            "off" => Ok(Mode::Off),
            "mspipe" => Ok(Mode::Adaptive { k_max: 4 }),
            _ => {
                let k = s.strip_prefix("fixed:").ok_or_else(bad)?;
                k.parse().map(Mode::Fixed).map_err(|_| bad())
            }
        }
    }
}

/// What the planner knows when it plans M(i): end times are absolute, on one clock.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput {
    /// Iteration being planned.
    pub iteration: usize,
    /// End of F(i).
    pub feature_end: f64,
    /// When M(i) must end not to stall compute: the (expected) start of C(i), earlier where
    /// fetches queued behind M(i) need the time ([`fetch_deadline`]).
    pub deadline: f64,
    /// τ_M.
    pub memory_time: f64,
    /// Staleness of the previous iteration: a fetch never reads older memory than the fetch
    /// before it, so `k_i ≤ k_{i−1} + 1`.
    pub previous: Option<usize>,
}

/// The plan of one memory fetch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FetchPlan {
    /// Staleness bound k_i.
    pub staleness: usize,
    /// Planned start b_M.
    pub start: f64,
}

/// When M(i) must end for one fetcher, running M(i), M(i + 1), … in order and each in
/// `memory_time`, to end every one of them by its compute's start: `starts` are the (expected)
/// starts of C(i), C(i + 1), … — with N workers, the N iterations from i.
pub fn fetch_deadline(starts: impl IntoIterator<Item = f64>, memory_time: f64) -> f64 {
    starts
        .into_iter()
        .enumerate()
        .map(|(m, start)| start - m as f64 * memory_time)
        .fold(f64::INFINITY, f64::min)
}

/// MSPipe's rule for M(i). `update_end(j)` is the (expected) end of U(j); iterations before the
/// first have ended at −∞.
pub fn plan_fetch(input: PlanInput, k_max: usize, update_end: impl Fn(usize) -> f64) -> FetchPlan {
    let i = input.iteration;
    let end_of = |k: usize| {
        if k >= i {
            f64::NEG_INFINITY
        } else {
            update_end(i - 1 - k)
        }
    };
    // C(i) is not stalled by M(i) iff M(i) can start by `latest`.
    let latest = input.feature_end.max(input.deadline - input.memory_time);
    let cap = input.previous.map_or(k_max, |p| (p + 1).min(k_max)).min(i);
    let staleness = (0..=cap).find(|&k| end_of(k) <= latest).unwrap_or(cap);
    // Waiting past U(i − 1) buys no freshness: with k = 0 the fetch starts as soon as it can.
    let start = match staleness {
        0 => end_of(0).max(input.feature_end),
        k => end_of(k).max(latest),
    };
    FetchPlan { staleness, start }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        assert_eq!("off".parse::<Mode>().ok(), Some(Mode::Off));
        assert_eq!("fixed:3".parse::<Mode>().ok(), Some(Mode::Fixed(3)));
        assert_eq!(
            "mspipe".parse::<Mode>().ok(),
            Some(Mode::Adaptive { k_max: 4 })
        );
        for bad in ["fixed:", "fixed:-1", "on", ""] {
            let err = bad.parse::<Mode>().unwrap_err().to_string();
            assert!(err.contains("off, mspipe or fixed:K"), "{err}");
        }
        assert_eq!(Mode::Fixed(2).to_string(), "fixed:2");
        assert_eq!(Mode::Fixed(2).fixed_staleness(1), Some(1));
    }

    #[test]
    fn a_fetch_ends_early_enough_for_the_fetches_queued_behind_it() {
        // One worker: C(i)'s start.
        assert_eq!(fetch_deadline([10.0], 3.0), 10.0);
        // Two workers starting together at 10: M(i) by 7, so M(i + 1) ends by 10 too.
        assert_eq!(fetch_deadline([10.0, 10.0], 3.0), 7.0);
        // The next worker starts later than M(i)'s end plus a fetch: C(i)'s start.
        assert_eq!(fetch_deadline([10.0, 20.0], 3.0), 10.0);
        assert_eq!(fetch_deadline([10.0, 12.0, 13.0], 2.0), 9.0);
    }

    #[test]
    fn smallest_staleness_that_does_not_stall_compute_and_latest_start() {
        // U(0..4) ended at 10, 20, 30, 40; C(5) starts at 38, M takes 5, F(5) ended at 12.
        let ends = [10.0, 20.0, 30.0, 40.0, 50.0];
        let input = PlanInput {
            iteration: 5,
            feature_end: 12.0,
            deadline: 38.0,
            memory_time: 5.0,
            previous: None,
        };
        // (staleness, start) of the plan for `input` under `k_max`.
        let plan = |input: PlanInput, k_max: usize| {
            let p = plan_fetch(input, k_max, |j| ends[j]);
            (p.staleness, p.start)
        };
        // latest start 33: U(4) = 50 and U(3) = 40 too late, U(2) = 30 fits → k = 2, start 33.
        assert_eq!(plan(input, 4), (2, 33.0));
        // Capped: k_max 1 → the fetch waits for U(3) and compute stalls.
        assert_eq!(plan(input, 1), (1, 40.0));
        // Never older than the previous fetch + 1.
        let after_fresh = PlanInput {
            previous: Some(0),
            ..input
        };
        assert_eq!(plan(after_fresh, 4), (1, 40.0));
        // A slow feature fetch: compute waits for F anyway, and the fetch takes U(4) if it has
        // ended by then.
        let late_f = PlanInput {
            feature_end: 55.0,
            ..input
        };
        assert_eq!(plan(late_f, 4), (0, 55.0));
        // k = 0 is not delayed: U(4) ended at 50, before the latest start 53.
        let early = PlanInput {
            deadline: 58.0,
            ..input
        };
        assert_eq!(plan(early, 4), (0, 50.0));
        // The first iteration has nothing to wait for.
        let first = PlanInput {
            iteration: 0,
            ..input
        };
        assert_eq!(plan_fetch(first, 4, |_| unreachable!()).staleness, 0);
    }
}
