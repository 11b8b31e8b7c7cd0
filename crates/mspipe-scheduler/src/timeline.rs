//! What happened (executor) or would happen (simulator): start and end of every stage of every
//! iteration, the staleness bound and the staleness observed.

use std::fmt::Write;
use std::ops::Range;

use crate::Stage;

/// One iteration's stage spans and staleness.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iteration {
    /// `(start, end)` per stage, indexed by [`Stage::index`].
    pub spans: [Option<(f64, f64)>; 5],
    /// The bound k_i the fetch was planned with.
    pub staleness: usize,
    /// Updates the fetch actually missed (≤ `staleness`).
    pub observed: usize,
    /// When compute handed its memory update over (after the forward pass), if it did.
    pub handover: Option<f64>,
}

impl Iteration {
    /// Span of `stage`, if it ran.
    pub fn span(&self, stage: Stage) -> Option<(f64, f64)> {
        self.spans[stage.index()]
    }

    /// End of `stage`, if it ran.
    pub fn end(&self, stage: Stage) -> Option<f64> {
        self.span(stage).map(|s| s.1)
    }
}

/// Spans of a run of iterations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// One per iteration, in order.
    pub iterations: Vec<Iteration>,
    /// Compute workers (iteration `i` computed by worker `i mod workers`); 0 counts as 1.
    pub workers: usize,
}

impl Timeline {
    /// The record of iteration `i`, grown on demand.
    pub fn at(&mut self, i: usize) -> &mut Iteration {
        if self.iterations.len() <= i {
            self.iterations.resize_with(i + 1, Iteration::default);
        }
        &mut self.iterations[i]
    }

    /// Records `stage` of iteration `i` as running from `start` to `end`.
    pub fn record(&mut self, i: usize, stage: Stage, start: f64, end: f64) {
        self.at(i).spans[stage.index()] = Some((start, end));
    }

    fn spans(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.iterations
            .iter()
            .flat_map(|it| it.spans.iter().flatten().copied())
    }

    /// From the first start to the last end.
    pub fn makespan(&self) -> f64 {
        let (lo, hi) = self
            .spans()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (s, e)| {
                (lo.min(s), hi.max(e))
            });
        if hi > lo { hi - lo } else { 0.0 }
    }

    /// Total time `stage` was running.
    pub fn busy(&self, stage: Stage) -> f64 {
        self.iterations
            .iter()
            .filter_map(|it| it.span(stage))
            .map(|(s, e)| e - s)
            .sum()
    }

    /// Compute workers, at least 1.
    pub fn worker_count(&self) -> usize {
        self.workers.max(1)
    }

    /// Fraction of the makespan the compute workers were running (on average over them).
    pub fn compute_utilisation(&self) -> f64 {
        let m = self.makespan();
        if m > 0.0 {
            self.busy(Stage::Compute) / (m * self.worker_count() as f64)
        } else {
            0.0
        }
    }

    /// Seconds from each compute step's start to its memory update's hand-over, summed: with
    /// [`Timeline::busy`] of compute, the forward pass's share of a step.
    pub fn before_handover(&self) -> f64 {
        let offsets = self.iterations.iter().filter_map(|it| {
            let (start, _) = it.span(Stage::Compute)?;
            Some(it.handover? - start)
        });
        offsets.sum()
    }

    /// The planned staleness bounds k_i.
    pub fn staleness(&self) -> Vec<usize> {
        self.iterations.iter().map(|it| it.staleness).collect()
    }

    /// Mean and maximum of the observed staleness.
    pub fn observed_staleness(&self) -> (f64, usize) {
        let n = self.iterations.len().max(1) as f64;
        let sum: usize = self.iterations.iter().map(|it| it.observed).sum();
        let max = self.iterations.iter().map(|it| it.observed).max();
        (sum as f64 / n, max.unwrap_or(0))
    }

    /// The Gantt lane of `stage` of iteration `i`: one per stage, compute one per worker.
    fn lane(&self, stage: Stage, i: usize) -> usize {
        let compute = Stage::Compute.index();
        match stage {
            Stage::Compute => compute + i % self.worker_count(),
            s if s.index() > compute => s.index() + self.worker_count() - 1,
            s => s.index(),
        }
    }

    /// A Gantt chart of `window` (iteration indices) as SVG: one lane per stage (compute one
    /// per worker), one box per stage run labelled with its iteration, memory fetches annotated
    /// with the updates they missed.
    pub fn svg(&self, window: Range<usize>) -> String {
        let its = &self.iterations
            [window.start.min(self.iterations.len())..window.end.min(self.iterations.len())];
        let spans = || its.iter().flat_map(|it| it.spans.iter().flatten());
        let t0 = spans().map(|s| s.0).fold(f64::INFINITY, f64::min);
        let t1 = spans().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
        let (left, width, lane) = (90.0, 1100.0, 34.0);
        let scale = if t1 > t0 { width / (t1 - t0) } else { 0.0 };
        let lanes = 4 + self.worker_count();
        let height = lane * lanes as f64 + 50.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="11">"#,
            w = left + width + 20.0
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let names = Stage::ALL.iter().flat_map(|&stage| match stage {
            Stage::Compute if self.worker_count() > 1 => (0..self.worker_count())
                .map(|w| format!("{} {w}", stage.name()))
                .collect(),
            _ => vec![stage.name().to_string()],
        });
        for (row, name) in names.enumerate() {
            let y = 10.0 + lane * row as f64;
            let _ = writeln!(
                svg,
                r#"<text x="8" y="{}" >{name}</text>"#,
                y + lane / 2.0 + 4.0
            );
        }
        for (n, it) in its.iter().enumerate() {
            let i = window.start + n;
            let hue = (i * 67) % 360;
            for stage in Stage::ALL {
                let Some((s, e)) = it.span(stage) else {
                    continue;
                };
                let row = self.lane(stage, i);
                let (x, y) = (left + (s - t0) * scale, 12.0 + lane * row as f64);
                let w = ((e - s) * scale).max(0.5);
                let label = if stage == Stage::Memory {
                    format!("{i} k={}", it.observed)
                } else {
                    i.to_string()
                };
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="hsl({hue},60%,70%)" stroke="black" stroke-width="0.5"><title>{stage} {i}: {s:.4}–{e:.4}</title></rect>"#,
                    h = lane - 4.0,
                    stage = stage.name(),
                );
                // Fetches always carry their staleness, even when the box is narrow.
                if stage == Stage::Memory || w > 7.0 * label.len() as f64 {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}">{label}</text>"#,
                        x + 3.0,
                        y + lane / 2.0 + 2.0
                    );
                }
            }
        }
        let _ = writeln!(
            svg,
            r#"<text x="{left}" y="{}">iterations {}..{}, {:.4} time units; M boxes show the updates each fetch missed (k)</text>"#,
            height - 12.0,
            window.start,
            window.start + its.len(),
            (t1 - t0).max(0.0)
        );
        svg.push_str("</svg>\n");
        svg
    }
}
