//! Where the host has put the machine's first two cores, probed: what it costs them to hand data
//! to each other, against each keeping its own. Two threads take turns passing over a buffer that
//! fits in one core's L2 (each pass reads and writes all of it); "handed over" passes over the
//! buffer the other thread wrote last, "private" over the thread's own.
//!
//! A training step on one worker with several threads splits each op across the pool, so every op
//! hands its inputs from the core that wrote them to the cores that read them. Where the cores sit
//! in one cache domain the hand-over costs about what a private pass does; where they sit in two
//! (a VM whose host moves its vCPUs between core complexes) it costs several times more, and the
//! step's memory-bound ops slow with it. The suite probes before and after each timed run of
//! mspipe, so that a figure says which placement it was measured in.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Result;
use serde_json::{Value, json};

/// KiB per buffer: fits in the L2 of current x86 cores.
pub const KIB: usize = 512;

/// Passes per measurement, shared by the two threads.
pub const PASSES: usize = 4000;

/// A hand-over over a private pass at or above this is the far placement: between the ratios of
/// the two placements this host shows (`benches/report/history.md`).
pub const FAR: f64 = 1.7;

/// One probe: nanoseconds per KiB of a pass, either way.
#[derive(Debug, Clone, Copy)]
pub struct HandOver {
    pub private_ns_per_kib: f64,
    pub handed_over_ns_per_kib: f64,
}

impl HandOver {
    /// Probes with buffers of `kib` KiB over `passes` passes each way.
    pub fn measure(kib: usize, passes: usize) -> Self {
        HandOver {
            private_ns_per_kib: pass_cost(false, kib, passes),
            handed_over_ns_per_kib: pass_cost(true, kib, passes),
        }
    }

    /// What a hand-over costs over a private pass.
    pub fn ratio(&self) -> f64 {
        self.handed_over_ns_per_kib / self.private_ns_per_kib
    }
}

/// The cores' placement during a run, from the probes either side of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Near,
    Far,
    /// The probes disagree: the host moved the cores during the run.
    Changed,
}

impl Placement {
    /// The placement a run's `hand_over` (`[before, after]` ratios, see [`probed`]) says; `None`
    /// for a run measured without the probes.
    pub fn of(hand_over: &Value) -> Option<Self> {
        let far = |i: usize| hand_over[i].as_f64().map(|r| r >= FAR);
        Some(match (far(0)?, far(1)?) {
            (false, false) => Placement::Near,
            (true, true) => Placement::Far,
            _ => Placement::Changed,
        })
    }

    /// [`Placement::of`] as the report writes it ("–" when not probed).
    pub fn label(hand_over: &Value) -> &'static str {
        Placement::of(hand_over).map_or("–", Placement::name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Placement::Near => "near",
            Placement::Far => "far",
            Placement::Changed => "changed",
        }
    }
}

/// The median of runs by some measure, taken among those at the near placement when any was.
pub struct Median<'a> {
    /// The median run.
    pub row: &'a Value,
    /// Whether it was taken among the near runs alone (else among all).
    pub near: bool,
    /// How many runs it was taken among.
    pub count: usize,
}

impl Median<'_> {
    /// `"near"` or `"all"`, as results record which runs the median was taken among.
    pub fn of(&self) -> &'static str {
        if self.near { "near" } else { "all" }
    }
}

/// The run of `rows` (each with its `hand_over`, see [`probed`]) with the median `key` among those
/// at the near placement, or among all when none was near; `None` for no rows.
pub fn median_near(rows: &[Value], key: impl Fn(&Value) -> f64) -> Option<Median<'_>> {
    let near: Vec<&Value> = rows
        .iter()
        .filter(|r| Placement::of(&r["hand_over"]) == Some(Placement::Near))
        .collect();
    let (near, mut from) = match near.is_empty() {
        true => (false, rows.iter().collect()),
        false => (true, near),
    };
    from.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let count = from.len();
    from.get(count / 2).map(|row| Median { row, near, count })
}

/// `run`'s result with `"hand_over": [before, after]`, the probe's ratio either side of it.
pub fn probed(run: impl FnOnce() -> Result<Value>) -> Result<Value> {
    let before = HandOver::measure(KIB, PASSES).ratio();
    let mut out = run()?;
    let after = HandOver::measure(KIB, PASSES).ratio();
    out["hand_over"] = json!([before, after]);
    Ok(out)
}

/// One pass: read and write every element.
fn pass(buffer: *mut f32, len: usize) {
    // SAFETY: `buffer` is a live allocation of `len` floats that only the thread whose turn it is
    // touches (see `pass_cost`).
    let xs = unsafe { std::slice::from_raw_parts_mut(buffer, len) };
    for x in xs {
        *x = *x * 0.5 + 1.0;
    }
}

/// Nanoseconds per KiB of one pass, the two threads taking turns: pass `p` is thread `p % 2`'s,
/// over buffer 0 when `handed_over`, else over the thread's own. The turn counter keeps the two
/// from touching a buffer at once.
fn pass_cost(handed_over: bool, kib: usize, passes: usize) -> f64 {
    let len = kib * 1024 / size_of::<f32>();
    let mut buffers = [vec![1.0f32; len], vec![1.0f32; len]];
    // Addresses, not pointers, cross into the threads (raw pointers are not `Send`).
    let pointers = buffers.each_mut().map(|b| b.as_mut_ptr() as usize);
    let turn = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..2 {
            let turn = &turn;
            s.spawn(move || {
                let buffer = pointers[if handed_over { 0 } else { thread }] as *mut f32;
                for p in (thread..passes).step_by(2) {
                    // Spin, not sleep: a wake-up would cost more than the pass being measured.
                    while turn.load(Ordering::Acquire) != p {
                        std::hint::spin_loop();
                    }
                    pass(buffer, len);
                    turn.store(p + 1, Ordering::Release);
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(&buffers);
    seconds * 1e9 / (passes * kib) as f64
}
