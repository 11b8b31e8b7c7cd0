//! Several workers over one node memory against one worker: per cell (model, dataset) the
//! configurations of [`CONFIGS`] alternate within each round, one seed per round, each run in its
//! own process; the report adds the ideal for two one-thread workers — two one-thread runs side
//! by side, each in its own process, measured in the same round — and what the discrete-event
//! simulator predicts from the one-thread run's stage times.

use std::fmt::Write as _;

use anyhow::Result;
use mspipe::scheduler::{Mode, Stage, StageTimes, Workers, simulate_on_cores};
use mspipe::train::config::{ModelName, resolve};
use serde_json::{Value, json};

use crate::child::{Job, last_epoch, measured_run, run_row, spawn};
use crate::placement::{median_near, probed};
use crate::report::{f, mark, mean_std, median, placements};

/// Workers × threads per worker, the pipeline mode, and how the batch is shared.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub workers: usize,
    pub threads: usize,
    pub mode: Mode,
    pub batch: Batch,
}

/// The batch a worker trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The preset's batch; with N workers the learning rate grows by `lr_scaling` (√N).
    Whole,
    /// `1/workers` of the preset's batch at the preset's learning rate: an optimizer step averages
    /// as many events as one worker's, and an epoch takes as many steps.
    Split,
    /// Twice the preset's batch at the learning rate of two [`Batch::Whole`] workers (√2 times the
    /// preset's): one worker taking their optimizer steps, without their second replica or their
    /// staleness.
    Doubled,
}

impl Batch {
    /// Its name in a result row.
    fn name(self) -> &'static str {
        match self {
            Batch::Whole => "whole",
            Batch::Split => "split",
            Batch::Doubled => "doubled",
        }
    }

    /// The batch of `row` (rows from before this field record only whether it was split).
    fn of_row(row: &Value) -> &str {
        match row["batch"].as_str() {
            Some(name) => name,
            None if row["split_batch"] == true => Batch::Split.name(),
            None => Batch::Whole.name(),
        }
    }
}

const fn setup(workers: usize, threads: usize, mode: Mode, batch: Batch) -> Setup {
    Setup {
        workers,
        threads,
        mode,
        batch,
    }
}

/// One worker on both cores, strict: what every other configuration is compared against.
const BASE: Setup = setup(1, 2, Mode::Off, Batch::Whole);
/// Two one-thread MSPipe workers on whole batches (the configuration).
const TWO: Setup = setup(2, 1, MSPIPE, Batch::Whole);
/// One worker on one thread: the unit of the ideal and the simulator's profile.
const ONE: Setup = setup(1, 1, Mode::Off, Batch::Whole);
/// Two one-thread MSPipe workers on half a batch each.
const TWO_SPLIT: Setup = setup(2, 1, MSPIPE, Batch::Split);
/// One worker on both cores, strict, on the global batch of [`TWO`].
const BASE_DOUBLED: Setup = setup(1, 2, Mode::Off, Batch::Doubled);

/// One worker on both cores (strict and MSPipe), two one-thread workers (strict and MSPipe),
/// one worker on one thread, and two one-thread MSPipe workers on half a batch each.
pub const CONFIGS: [Setup; 6] = [
    BASE,
    setup(1, 2, MSPIPE, Batch::Whole),
    setup(2, 1, Mode::Off, Batch::Whole),
    TWO,
    ONE,
    TWO_SPLIT,
];

/// `--pipeline mspipe` with the preset's bound.
const MSPIPE: Mode = Mode::Adaptive { k_max: 4 };

/// What the part measures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// (model, dataset) pairs.
    pub cells: Vec<(ModelName, String)>,
    /// Rounds; round `r` runs every configuration with seed `r`.
    pub seeds: u64,
    pub epochs: usize,
    /// Measure accuracy at convergence instead: only 1 × 2 `off` (on the preset's batch and on the
    /// global batch of two whole-batch workers) and 2 × 1 `mspipe` (on whole and on half batches),
    /// each for `epochs`, compared by the test AP of their best validation epoch (see
    /// [`convergence`]).
    pub convergence: bool,
}

/// The configurations the convergence comparison trains: one worker strict against the issue's
/// two MSPipe workers, and against two on half a batch each — as many optimizer steps per epoch,
/// on as many events each, as the one worker takes; and one worker strict on the two workers'
/// global batch, which separates what the doubled batch costs from what the workers cost.
const CONVERGENCE: [Setup; 4] = [BASE, TWO, TWO_SPLIT, BASE_DOUBLED];

/// Whether a row belongs to the convergence comparison.
fn is_convergence(row: &Value) -> bool {
    row["convergence"] == true
}

/// One row per (cell, configuration, seed), and (not for the convergence comparison) the Gantt
/// chart of the first cell's 2 × 1 `mspipe` run. Rows of `earlier` for cells (and the kind of
/// comparison) this run does not measure are kept.
pub fn run(plan: &Plan, cpu: &Value, earlier: Vec<Value>) -> Result<(Vec<Value>, Option<String>)> {
    let measured = |r: &Value| {
        is_convergence(r) == plan.convergence
            && (plan.cells.iter())
                .any(|(m, d)| r["model"] == m.name() && r["dataset"] == d.as_str())
    };
    let mut rows: Vec<Value> = earlier.into_iter().filter(|r| !measured(r)).collect();
    let configs: &[Setup] = if plan.convergence {
        &CONVERGENCE
    } else {
        &CONFIGS
    };
    let mut gantt = None;
    for (model, dataset) in &plan.cells {
        for seed in 0..plan.seeds {
            for &setup in configs {
                let run = probed(|| spawn(&job(*model, dataset, plan.epochs, seed, setup)?))?;
                // The chart belongs with the speed table; a convergence run keeps the one it has.
                if !plan.convergence
                    && setup.workers == 2
                    && setup.mode == MSPIPE
                    && gantt.is_none()
                {
                    gantt = run["gantt"].as_str().map(str::to_string);
                }
                let mut row = row(*model, dataset, setup, seed, &run);
                row["cpu"] = cpu.clone();
                row["convergence"] = json!(plan.convergence);
                eprintln!("workers: {row}");
                rows.push(row);
            }
            if plan.convergence {
                continue;
            }
            let mut row = side_by_side(*model, dataset, seed, plan.epochs)?;
            row["cpu"] = cpu.clone();
            eprintln!("workers: {row}");
            rows.push(row);
        }
    }
    Ok((rows, gantt))
}

/// Two 1 × 1 runs at once, each in its own process, sharing nothing but the machine: the ideal
/// two one-thread workers are measured against (their events/s summed). Each run's sampler and
/// memory stages, and the cores' shared caches and clocks, cost here as they do for two workers;
/// twice a run alone counts none of that.
fn side_by_side(model: ModelName, dataset: &str, seed: u64, epochs: usize) -> Result<Value> {
    let job = job(model, dataset, epochs, seed, ONE)?;
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn(&job));
        let b = spawn(&job);
        (a.join().expect("side-by-side run panicked"), b)
    });
    let speed = f(&a?["train_events_per_sec"]) + f(&b?["train_events_per_sec"]);
    Ok(json!({
        "model": model,
        "dataset": dataset,
        "side_by_side": true,
        "seed": seed,
        "git_revision": mspipe::train::run::GIT_REV,
        "train_events_per_sec": speed,
    }))
}

/// The training run of `setup` on `dataset` with `seed`.
fn job(model: ModelName, dataset: &str, epochs: usize, seed: u64, setup: Setup) -> Result<Job> {
    let mut overrides = measured_run(dataset, epochs, seed);
    overrides.extend([
        format!("train.workers={}", setup.workers),
        format!("train.threads={}", setup.threads * setup.workers),
        format!("pipeline.mode=\"{}\"", setup.mode),
    ]);
    let preset = resolve(model, None, &[])?.train;
    match setup.batch {
        Batch::Whole => {}
        Batch::Split => overrides.extend([
            format!(
                "train.batch_size={}",
                preset.batch_size.div_ceil(setup.workers)
            ),
            "train.lr_scaling=\"none\"".into(),
        ]),
        Batch::Doubled => overrides.extend([
            format!("train.batch_size={}", 2 * preset.batch_size),
            format!("train.lr={}", preset.lr * preset.lr_scaling.factor(2)),
        ]),
    }
    Ok(Job::Train { model, overrides })
}

fn row(model: ModelName, dataset: &str, setup: Setup, seed: u64, run: &Value) -> Value {
    let last = last_epoch(run);
    let fields = json!({
        "model": model,
        "dataset": dataset,
        "workers": setup.workers,
        "threads": setup.threads,
        "mode": setup.mode.to_string(),
        "batch": setup.batch.name(),
        "seed": seed,
        "git_revision": mspipe::train::run::GIT_REV,
        "mean_staleness": last["pipeline"]["mean_staleness"],
        "forward_seconds": last["pipeline"]["forward_seconds"],
        "batches": batches(&last, f(&run["batch_size"])),
        "epochs": run["epochs"],
        "best_epoch": run["best_epoch"],
        "best_test_ap": run["test_ap"],
        "seconds_to_best": seconds_to(run, run["best_epoch"].as_u64().unwrap_or(0)),
    });
    run_row(fields, run)
}

/// Training seconds of `run`'s first `epochs` epochs.
fn seconds_to(run: &Value, epochs: u64) -> f64 {
    let history = run["history"].as_array().map_or(&[][..], Vec::as_slice);
    (history.iter().take(epochs as usize))
        .map(|e| f(&e["train_seconds"]))
        .sum()
}

/// Training batches of an epoch record: its events ÷ the batch size, rounded up.
fn batches(epoch: &Value, batch_size: f64) -> f64 {
    (f(&epoch["train_events_per_sec"]) * f(&epoch["train_seconds"]) / batch_size)
        .ceil()
        .max(1.0)
}

/// The last epoch's per-batch stage times of a one-worker row, and the share of a compute step
/// before its update was handed over.
pub fn profile(row: &Value) -> (StageTimes, f64) {
    let per = |stage: &str| f(&row["stage_seconds"][stage]) / f(&row["batches"]);
    let times = StageTimes::new(
        per("sample"),
        per("feature"),
        per("memory"),
        per("compute"),
        per("update"),
    );
    let handover = f(&row["forward_seconds"]) / f(&row["stage_seconds"]["compute"]);
    (times, handover)
}

/// Cores of the box the predictions for 4 and 8 workers are made for: one per worker and room
/// for each worker's sampler and memory stages.
const PREDICTED_CORES: usize = 16;

/// The simulator's epoch seconds for `setup`'s workers and mode on `cores` cores, from a
/// one-worker row's profile (compute `speed`× faster).
pub fn predict(one: &Value, setup: Setup, speed: f64, cores: usize) -> f64 {
    let (times, handover) = profile(one);
    let times = StageTimes::new(
        times.get(Stage::Sample),
        times.get(Stage::Feature),
        times.get(Stage::Memory),
        times.get(Stage::Compute) / speed,
        times.get(Stage::Update),
    );
    let workers = Workers {
        count: setup.workers,
        handover: if handover.is_finite() { handover } else { 1.0 },
    };
    let batches = f(&one["batches"]) as usize;
    simulate_on_cores(times, batches, setup.mode, workers, cores).makespan()
}

/// The rows of one cell in one configuration, of the speed table or of the convergence comparison.
fn of<'a>(
    rows: &'a [Value],
    cell: (&Value, &Value),
    setup: Setup,
    convergence: bool,
) -> Vec<&'a Value> {
    let mode = setup.mode.to_string();
    rows.iter()
        .filter(|r| (&r["model"], &r["dataset"]) == cell)
        .filter(|r| r["side_by_side"] != true)
        .filter(|r| is_convergence(r) == convergence)
        .filter(|r| r["workers"] == setup.workers && r["threads"] == setup.threads)
        .filter(|r| r["mode"] == mode.as_str())
        .filter(|r| Batch::of_row(r) == setup.batch.name())
        .collect()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = xs.fold((0.0, 0.0), |(s, n), x| (s + x, n + 1.0));
    sum / n
}

/// The report's section: per cell, the configurations' throughput and accuracy, the ideal for
/// two one-thread workers, and the simulator's epoch time next to the measured one.
pub fn section(md: &mut String, rows: &[Value], cores: usize) {
    if rows.is_empty() {
        return;
    }
    md.push_str("## Several workers over one node memory\n\nW × T: W data-parallel workers with T threads each (one shared host node memory, one optimizer step per W batches on their averaged gradient, lr × √W); every configuration alternates within a round, round r with seed r. Events/s: median over rounds; test AP: mean over seeds, after the last epoch. Simulator error: the last epoch of a one-thread configuration as predicted from the same seed's 1 × 1 run (its per-batch stage times and the measured share of compute before the memory update is handed over), against the measured one (mean over seeds; the simulator shares the machine's cores among all stages but does not model a worker's threads). Gantt chart of the first 2 × 1 `mspipe` run of the latest workers run: `workers-gantt.svg`.\n\n");
    for cell in cells(rows, false) {
        cell_table(md, rows, cell, cores);
    }
    convergence(md, rows);
}

/// The (model, dataset) cells of the rows of one kind, in order of first appearance.
fn cells(rows: &[Value], convergence: bool) -> Vec<(&Value, &Value)> {
    let mut cells: Vec<(&Value, &Value)> = Vec::new();
    for r in rows.iter().filter(|r| is_convergence(r) == convergence) {
        let cell = (&r["model"], &r["dataset"]);
        if !cells.contains(&cell) {
            cells.push(cell);
        }
    }
    cells
}

/// Per cell, one worker strict against two MSPipe workers trained for many epochs: the test AP of
/// each run's best validation epoch (the rule of TGN, TGL and MSPipe, and of the peer table) and
/// the training seconds it took to reach that epoch.
fn convergence(md: &mut String, rows: &[Value]) {
    let cells = cells(rows, true);
    if cells.is_empty() {
        return;
    }
    md.push_str("### Accuracy at convergence

1 × 2 `off` against 2 × 1 `mspipe` — on whole batches (twice the events per optimizer step) and on half a batch each (as many steps per epoch as one worker, learning rate unscaled) — and 1 × 2 `off` on the whole-batch workers' global batch (twice the batch, learning rate × √2: their optimizer steps without a second replica or staleness), each trained for the epochs given, seeds 0, 1, …; per run the test AP of its best validation epoch, and the training seconds up to that epoch. Mean over seeds (± sample std); seconds: median.\n\n| model / dataset | CPU | W × T | mode | epochs | seeds | best epoch (mean) | test AP at the best validation epoch | training seconds to it |\n|---|---|---|---|---|---|---|---|---|\n");
    let mut verdicts = String::new();
    for cell in cells {
        let runs = |setup| of(rows, cell, setup, true);
        let aps =
            |setup| -> Vec<f64> { runs(setup).iter().map(|r| f(&r["best_test_ap"])).collect() };
        let ap = |setup| mean_std(&aps(setup)).0;
        let seconds = |setup| {
            median(
                runs(setup)
                    .iter()
                    .map(|r| f(&r["seconds_to_best"]))
                    .collect(),
            )
        };
        // Results from before the half-batch configuration was trained have no rows for it.
        let trained: Vec<Setup> = CONVERGENCE
            .into_iter()
            .filter(|&s| !runs(s).is_empty())
            .collect();
        for &setup in &trained {
            let rs = runs(setup);
            let (mean_ap, std) = mean_std(&aps(setup));
            let _ = writeln!(
                md,
                "| {} / {} | {} | {} × {} | {} | {:.0} | {} | {:.1} | {:.4} ± {:.4} | {:.0} |",
                cell.0.as_str().unwrap_or("?"),
                cell.1.as_str().unwrap_or("?"),
                rs.first().and_then(|r| r["cpu"].as_str()).unwrap_or("?"),
                setup.workers,
                setup.threads,
                mode(setup),
                mean(rs.iter().map(|r| f(&r["epochs"]))),
                rs.len(),
                mean(rs.iter().map(|r| f(&r["best_epoch"]))),
                mean_ap,
                std,
                seconds(setup),
            );
        }
        for &setup in trained.iter().filter(|s| s.workers > 1) {
            let diff = 100.0 * (ap(setup) - ap(BASE));
            let _ = write!(
                verdicts,
                " {} / {}, {}: {diff:+.2} points (target ≥ −0.5: {}), reached in {:.2}× the training time.",
                cell.0.as_str().unwrap_or("?"),
                cell.1.as_str().unwrap_or("?"),
                mode(setup),
                mark(diff >= -0.5),
                seconds(setup) / seconds(BASE),
            );
            if setup.batch == Batch::Whole && !runs(BASE_DOUBLED).is_empty() {
                let same = 100.0 * (ap(setup) - ap(BASE_DOUBLED));
                let _ = write!(
                    verdicts,
                    " Against one worker on the same global batch ({}): {same:+.2} points (target ≥ −0.5: {}).",
                    mode(BASE_DOUBLED),
                    mark(same >= -0.5),
                );
            }
        }
    }
    let _ = write!(
        md,
        "\nTest AP of 2 × 1 against 1 × 2 `off` at convergence:{verdicts}\n\n"
    );
}

/// The mode column's text: the pipeline mode, and how the batch is shared when it is split.
fn mode(setup: Setup) -> String {
    let batch = match setup.batch {
        Batch::Whole => "",
        Batch::Split => ", ½ batch each, lr × 1",
        Batch::Doubled => ", batch × 2, lr × √2",
    };
    format!("{}{batch}", setup.mode)
}

fn cell_table(md: &mut String, rows: &[Value], cell: (&Value, &Value), cores: usize) {
    let cpu = rows
        .iter()
        .find(|r| (&r["model"], &r["dataset"]) == cell)
        .and_then(|r| r["cpu"].as_str())
        .unwrap_or("?");
    let _ = writeln!(
        md,
        "### {} on {}\n\nMeasured on {cpu}.\n\n| W × T | mode | events/s | vs 1 × 2 off | test AP | mean staleness | simulator error | runs by cores' placement |\n|---|---|---|---|---|---|---|---|",
        cell.0.as_str().unwrap_or("?"),
        cell.1.as_str().unwrap_or("?"),
    );
    let speed = |setup| {
        median(
            of(rows, cell, setup, false)
                .iter()
                .map(|r| f(&r["train_events_per_sec"]))
                .collect(),
        )
    };
    let ap = |setup| {
        mean(
            of(rows, cell, setup, false)
                .iter()
                .map(|r| f(&r["test_ap"])),
        )
    };
    let base = speed(BASE);
    let ones = of(rows, cell, ONE, false);
    for setup in CONFIGS {
        let runs = of(rows, cell, setup, false);
        // Results from before a configuration was measured have no rows for it.
        if runs.is_empty() {
            continue;
        }
        let error = simulator_error(&runs, &ones, setup, cores);
        let _ = writeln!(
            md,
            "| {} × {} | {} | {:.0} | {:.2}× | {:.4} | {:.2} | {error} | {} |",
            setup.workers,
            setup.threads,
            mode(setup),
            speed(setup),
            speed(setup) / base,
            ap(setup),
            mean(runs.iter().map(|r| f(&r["mean_staleness"]))),
            placements(runs.iter().copied()),
        );
    }
    let twice = 2.0 * speed(ONE);
    let paired: Vec<f64> = rows
        .iter()
        .filter(|r| (&r["model"], &r["dataset"]) == cell && r["side_by_side"] == true)
        .map(|r| f(&r["train_events_per_sec"]))
        .collect();
    let (ideal, what) = match paired.is_empty() {
        true => (twice, "twice 1 × 1".to_string()),
        false => {
            let ideal = median(paired);
            let what = format!(
                "two 1 × 1 runs side by side, each in its own process, summed; twice one alone: {twice:.0}, so running together costs {:.1} %",
                100.0 * (1.0 - ideal / twice)
            );
            (ideal, what)
        }
    };
    let share = speed(TWO) / ideal;
    let loss = 100.0 * (ap(BASE) - ap(TWO));
    let _ = write!(
        md,
        "\nIdeal for 2 × 1 ({what}): {ideal:.0} events/s; 2 × 1 `mspipe` reaches {:.0} % of it (target ≥ 90 %: {}). Test AP of 2 × 1 `mspipe` minus 1 × 2 `off`: {:+.2} points (target ≥ −0.5: {}).",
        100.0 * share,
        mark(share >= 0.9),
        -loss,
        mark(loss <= 0.5),
    );
    thread_scaling(md, &of(rows, cell, BASE, false), speed(ONE));
    if !of(rows, cell, TWO_SPLIT, false).is_empty() {
        let _ = write!(
            md,
            " On half a batch each (as many optimizer steps per epoch as one worker): {:.0} % of the ideal, {:+.2} points.",
            100.0 * speed(TWO_SPLIT) / ideal,
            100.0 * (ap(TWO_SPLIT) - ap(BASE)),
        );
    }
    md.push_str("\n\n");
    predictions(md, &ones);
}

/// One worker's 1 × 2 `off` speed (its median run at the near placement: a split op slows when
/// the host puts the two cores in two cache domains) over its 1 × 1 `off` speed `one`, and how
/// busy that run kept its second thread.
fn thread_scaling(md: &mut String, twos: &[&Value], one: f64) {
    let twos: Vec<Value> = twos.iter().map(|&r| r.clone()).collect();
    let Some(median) = median_near(&twos, |r| f(&r["train_events_per_sec"])) else {
        return;
    };
    let scaling = f(&median.row["train_events_per_sec"]) / one;
    let _ = write!(
        md,
        " Thread scaling of one worker, 1 × 2 `off` (its median run among the {} {}) over 1 × 1 `off`: {scaling:.2}× (target ≥ 1.7×: {})",
        median.count,
        if median.near {
            "at the near placement"
        } else {
            "of all placements"
        },
        mark(scaling >= 1.7),
    );
    match median.row["pool_busy_share"].as_f64() {
        Some(busy) => {
            let _ = write!(
                md,
                "; that run's second thread ran the pool's work {:.0} % of its training time, the rest waiting for the training thread's single-threaded stretches and for the joins of split ops.",
                100.0 * busy
            );
        }
        None => md.push('.'),
    }
}

/// The simulator's mean error over seeds on `runs` (one-thread workers on whole batches only: the
/// simulator is fed the 1 × 1 run's profile and knows nothing of a worker's threads or of other
/// batch sizes).
fn simulator_error(runs: &[&Value], ones: &[&Value], setup: Setup, cores: usize) -> String {
    if setup.threads != 1 || setup.batch != Batch::Whole {
        return "–".into();
    }
    let errors = runs.iter().filter_map(|r| {
        let one = ones.iter().find(|o| o["seed"] == r["seed"])?;
        let measured = f(&r["train_seconds"]);
        Some(100.0 * (predict(one, setup, 1.0, cores) - measured) / measured)
    });
    format!("{:+.1} %", mean(errors))
}

/// The simulator's speed-ups over one worker for 2, 4 and 8 workers, on this machine's profile
/// and with compute 5× faster (a GPU-like step), from the first 1 × 1 run.
fn predictions(md: &mut String, ones: &[&Value]) {
    let Some(one) = ones.first() else { return };
    let _ = writeln!(
        md,
        "Predicted by the simulator for a {PREDICTED_CORES}-core box (speed-up over one worker, `off` / `mspipe`):\n\n| profile | 2 workers | 4 workers | 8 workers |\n|---|---|---|---|"
    );
    for (name, speed) in [("this machine's stages", 1.0), ("compute 5× faster", 5.0)] {
        let time = |workers, mode| {
            predict(
                one,
                setup(workers, 1, mode, Batch::Whole),
                speed,
                PREDICTED_CORES,
            )
        };
        let alone = time(1, Mode::Off);
        let cells: Vec<String> = [2, 4, 8]
            .iter()
            .map(|&w| {
                format!(
                    "{:.2}× / {:.2}×",
                    alone / time(w, Mode::Off),
                    alone / time(w, MSPIPE)
                )
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    }
    md.push('\n');
}
