//! Profiled stage durations: exponential moving averages of measured stage times.

use crate::Stage;

/// Per-stage durations τ_S..τ_U in seconds (or any unit: the planner only compares them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTimes(pub [f64; 5]);

impl StageTimes {
    /// From (sample, feature, memory, compute, update).
    pub fn new(s: f64, f: f64, m: f64, c: f64, u: f64) -> Self {
        StageTimes([s, f, m, c, u])
    }

    /// τ of `stage`.
    pub fn get(&self, stage: Stage) -> f64 {
        self.0[stage.index()]
    }

    /// Στ: one sequential iteration.
    pub fn total(&self) -> f64 {
        self.0.iter().sum()
    }

    /// The longest stage: one pipelined iteration when every stage has its own resource.
    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(0.0, f64::max)
    }
}

/// Online estimate of [`StageTimes`]: each measurement moves the estimate by `alpha` of the
/// difference, so the plan follows drifts (cache warm-up, growing graphs) without jitter.
#[derive(Debug, Clone)]
pub struct Profile {
    alpha: f64,
    times: StageTimes,
    seen: [bool; 5],
}

impl Profile {
    /// An empty profile; `alpha` in (0, 1] is the weight of the newest measurement.
    pub fn new(alpha: f64) -> Self {
        Profile {
            alpha: alpha.clamp(f64::MIN_POSITIVE, 1.0),
            times: StageTimes([0.0; 5]),
            seen: [false; 5],
        }
    }

    /// Adds one measured duration of `stage` (the first measurement is taken as is).
    pub fn record(&mut self, stage: Stage, seconds: f64) {
        let i = stage.index();
        let t = &mut self.times.0[i];
        *t = if self.seen[i] {
            *t + self.alpha * (seconds - *t)
        } else {
            seconds
        };
        self.seen[i] = true;
    }

    /// The current estimate (0 for stages never measured).
    pub fn times(&self) -> StageTimes {
        self.times
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_weights_the_newest_by_alpha() {
        let mut p = Profile::new(0.25);
        p.record(Stage::Compute, 8.0);
        assert_eq!(p.times().get(Stage::Compute), 8.0);
        p.record(Stage::Compute, 4.0);
        assert_eq!(p.times().get(Stage::Compute), 7.0);
        p.record(Stage::Compute, 11.0);
        assert_eq!(p.times().get(Stage::Compute), 8.0);
        assert_eq!(p.times().get(Stage::Sample), 0.0);
        let t = StageTimes::new(1.0, 2.0, 3.0, 4.0, 0.5);
        assert_eq!((t.total(), t.max()), (10.5, 4.0));
    }
}
