//! The benchmark suite: `cargo bench --bench suite` (options after `--`; `--help` lists them).
//!
//! In one run on one machine: mspipe on the shipped datasets × TGN/JODIE/APAN with the pipeline
//! off and on ([`matrix`]); TGN against PyTorch Geometric's TGN, alternated A B A B ([`peer`]);
//! the FLOP floor of a TGN step ([`floor`]); the scale test on synthetic streams ([`scale`]); what
//! bounded staleness costs in accuracy and what mitigation recovers ([`staleness`], not run by
//! default: it takes hours). Writes `results.json`, `report.md`, `chart.svg` and
//! `staleness.svg` into `--out` (default `benches/report`).
//! Run it on a quiet machine: a build beside it halves every number.

mod child;
mod fidelity;
mod floor;
mod matrix;
mod peer;
mod placement;
mod reference;
mod report;
mod scale;
mod shape;
mod staleness;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use mspipe::train::config::ModelName;
use serde_json::json;

/// The allocator mspipe-train runs with: allocation costs are part of the step.
#[global_allocator]
static ALLOCATOR: mspipe::train::alloc::Allocator = mspipe::train::alloc::Allocator;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Matrix,
    Peer,
    Floor,
    Scale,
    /// The staleness study (`--staleness-*` options).
    Staleness,
    /// Test AP of every model and EdgeBank, and TGN's time-unit check (`--fidelity-*` options).
    Fidelity,
    /// Two one-thread workers against one two-thread worker (`--workers-*` options).
    Workers,
    /// mspipe's APAN and JODIE against TGL's in PyTorch on the accuracy table's streams
    /// (`--reference-*`, `--fidelity-datasets`, `--fidelity-epochs`).
    Reference,
    /// Measure nothing: rewrite `report.md` and `chart.svg` from the directory's `results.json`.
    Report,
}

#[derive(Parser, Debug)]
#[command(
    about = "mspipe's benchmark suite: throughput, accuracy, the PyG peer, the FLOP floor, scale"
)]
struct Args {
    /// Report directory.
    #[arg(long, default_value = "benches/report")]
    out: PathBuf,
    /// Parts to run.
    #[arg(long, value_delimiter = ',', default_value = "matrix,peer,floor,scale")]
    parts: Vec<Part>,
    /// Datasets (shipped names or paths).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wikipedia,collegemsg,mathoverflow"
    )]
    datasets: Vec<String>,
    /// Models of the matrix.
    #[arg(long, value_delimiter = ',', default_value = "tgn,jodie,apan")]
    models: Vec<ModelName>,
    /// Epochs of each matrix run.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Rounds of the matrix's modes, alternated; each mode's row is its median run at the near
    /// placement.
    #[arg(long, default_value_t = 3)]
    matrix_rounds: usize,
    /// Sequential (`off`) TGN runs the floor part times the step on, each probed for the cores'
    /// placement; the floor compares against their median at the near placement.
    #[arg(long, default_value_t = 3)]
    floor_runs: usize,
    /// Epochs of each peer run (both systems).
    #[arg(long, default_value_t = 3)]
    peer_epochs: usize,
    /// A B rounds per dataset in the peer comparison (round r seeds both systems with r − 1).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Learning rate of both systems in the peer comparison (PyG's TGN example uses 1e-4).
    #[arg(long, default_value_t = 1e-4)]
    peer_lr: f64,
    /// Synthetic stream sizes of the scale test (events).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000000,10000000,100000000"
    )]
    scale: Vec<usize>,
    /// Size of the scale run with 172-dim edge features (0: none).
    #[arg(long, default_value_t = 10_000_000)]
    feature_scale: usize,
    /// Nodes of the synthetic streams.
    #[arg(long, default_value_t = 1_000_000)]
    scale_nodes: usize,
    /// Training events measured per scale run (0: whole epochs — hours at 100M on 2 cores).
    #[arg(long, default_value_t = 1_000_000)]
    scale_window: usize,
    /// Streams of the accuracy table (`snapshot`: a generated stream of yearly snapshots).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wikipedia,collegemsg,mathoverflow,uslegis,bitcoin-alpha,snapshot"
    )]
    fidelity_datasets: Vec<String>,
    /// Epochs of each accuracy-table run.
    #[arg(long, default_value_t = 3)]
    fidelity_epochs: usize,
    /// Seeds (0, 1, …) of each trained model's accuracy-table runs; the table shows their mean.
    #[arg(long, default_value_t = 1)]
    fidelity_seeds: u64,
    /// Models of the reference part (mspipe's against TGL's in PyTorch).
    #[arg(long, value_delimiter = ',', default_value = "apan,jodie")]
    reference_models: Vec<ModelName>,
    /// Seeds (0, 1, …) of both systems in the reference part.
    #[arg(long, default_value_t = 3)]
    reference_seeds: u64,
    /// Cells of the staleness study, as model/dataset.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = staleness::cell,
        default_value = "tgn/wikipedia,tgn/collegemsg,tgn/mathoverflow,apan/wikipedia"
    )]
    staleness_cells: Vec<(ModelName, String)>,
    /// Staleness bounds K of the study (`pipeline.mode = fixed:K`); 0 is the baseline.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,4,8")]
    staleness_k: Vec<usize>,
    /// Seeds per study cell (0, 1, …).
    #[arg(long, default_value_t = 3)]
    staleness_seeds: u64,
    /// Epochs of each study run.
    #[arg(long, default_value_t = 3)]
    staleness_epochs: usize,
    /// Cells of the workers part, as model/dataset.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = staleness::cell,
        default_value = "tgn/wikipedia,apan/wikipedia,tgn/mathoverflow,apan/mathoverflow"
    )]
    workers_cells: Vec<(ModelName, String)>,
    /// Rounds (seeds 0, 1, …) of the workers part.
    #[arg(long, default_value_t = 3)]
    workers_seeds: u64,
    /// Epochs of each workers-part run.
    #[arg(long, default_value_t = 2)]
    workers_epochs: usize,
    /// Run the workers part's accuracy comparison instead: 1 × 2 `off` against 2 × 1 `mspipe`,
    /// each for `--workers-epochs` (take enough to converge), by the test AP of the best
    /// validation epoch.
    #[arg(long)]
    workers_convergence: bool,
    /// Internal: run one measurement (a JSON job) and print its result.
    #[arg(long, hide = true)]
    child: Option<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn machine() -> serde_json::Value {
    let memory_kb: f64 = proc_field("/proc/meminfo", "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    json!({
        "cpu": proc_field("/proc/cpuinfo", "model name"),
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "memory_bytes": memory_kb * 1024.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "backend": mspipe::train::session::BACKEND,
        "isa": isa(),
        "threads": rayon::current_num_threads(),
    })
}

/// The widest vector ISA flex's GEMM kernels run with here (burn's `x86-v4` feature picks at run
/// time).
fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
    }
    "scalar or other"
}

fn part_names(parts: &[Part]) -> Vec<String> {
    parts
        .iter()
        .map(|p| format!("{p:?}").to_lowercase())
        .collect()
}

/// What this run measures, at which revision, by which command.
fn this_run(parts: &[Part]) -> serde_json::Value {
    json!({
        "parts": part_names(parts),
        "cpu": machine()["cpu"],
        "git_revision": mspipe::train::run::GIT_REV,
        "command": std::iter::once("cargo bench --bench suite --".to_string())
            .chain(std::env::args().skip(1).filter(|a| a != "--bench"))
            .collect::<Vec<_>>()
            .join(" "),
    })
}

fn suite(args: &Args) -> Result<()> {
    // Made before anything is measured: a directory that cannot be made fails here, not after
    // an hour of runs.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the output directory {}", args.out.display()))?;
    let mut results = report::Results::load(&args.out)?;
    // Each run, and each workers row (a part that keeps other cells' rows), names its CPU: what
    // an earlier machine measured keeps the CPU it was measured on.
    for run in &mut results.runs {
        if run.get("cpu").is_none() {
            run["cpu"] = results.machine["cpu"].clone();
        }
    }
    let lists_workers = |r: &&serde_json::Value| {
        (r["parts"].as_array()).is_some_and(|p| p.iter().any(|p| p == "workers"))
    };
    let workers_cpu = (results.runs.iter().find(lists_workers))
        .map_or_else(|| results.machine["cpu"].clone(), |r| r["cpu"].clone());
    for row in &mut results.workers {
        if row.get("cpu").is_none() {
            row["cpu"] = workers_cpu.clone();
        }
    }
    if args.parts == [Part::Report] {
        return report::write(&args.out, &results);
    }
    results.machine = machine();
    // Earlier runs keep only the parts this one does not measure again; the peer, staleness,
    // reference and workers parts merge their rows (see each part's `run`), so earlier runs of
    // them stay listed.
    let merged = [Part::Peer, Part::Staleness, Part::Reference, Part::Workers];
    let replaced: Vec<Part> = (args.parts.iter().copied())
        .filter(|p| !merged.contains(p))
        .collect();
    let now = part_names(&replaced);
    for run in &mut results.runs {
        if let Some(parts) = run["parts"].as_array_mut() {
            parts.retain(|p| !now.iter().any(|n| p == n.as_str()));
        }
    }
    results
        .runs
        .retain(|r| r["parts"].as_array().is_some_and(|p| !p.is_empty()));
    results.runs.push(this_run(&args.parts));
    let has = |p| args.parts.contains(&p);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if has(Part::Matrix) {
        results.matrix = matrix::run(
            &args.datasets,
            &args.models,
            args.epochs,
            args.matrix_rounds,
        )?;
        report::write(&args.out, &results)?;
    }
    if has(Part::Peer) {
        let protocol = peer::Protocol {
            epochs: args.peer_epochs,
            rounds: args.rounds,
            lr: args.peer_lr,
            batch_size: 600,
            threads: cores,
        };
        let scratch = tempfile::tempdir()?;
        let earlier = std::mem::take(&mut results.peer);
        results.peer = peer::run(&args.datasets, &protocol, scratch.path(), earlier)?;
        report::write(&args.out, &results)?;
    }
    if has(Part::Floor) {
        let dataset = &args.datasets[0];
        let steps = floor::step_runs(dataset, args.epochs, args.floor_runs)?;
        results.floor = Some(floor::run(dataset, &steps)?);
        report::write(&args.out, &results)?;
    }
    if has(Part::Fidelity) {
        let scratch = tempfile::tempdir()?;
        let protocol = fidelity::Protocol {
            epochs: args.fidelity_epochs,
            seeds: args.fidelity_seeds,
        };
        results.fidelity = fidelity::run(&args.fidelity_datasets, protocol, scratch.path())?;
        report::write(&args.out, &results)?;
    }
    if has(Part::Reference) {
        let scratch = tempfile::tempdir()?;
        let protocol = reference::Protocol {
            models: args.reference_models.clone(),
            epochs: args.fidelity_epochs,
            seeds: args.reference_seeds,
            threads: cores,
        };
        let earlier = std::mem::take(&mut results.reference);
        results.reference =
            reference::run(&args.fidelity_datasets, &protocol, scratch.path(), earlier)?;
        report::write(&args.out, &results)?;
    }
    if has(Part::Staleness) {
        let study = staleness::Study {
            cells: args.staleness_cells.clone(),
            ks: args.staleness_k.clone(),
            seeds: args.staleness_seeds,
            epochs: args.staleness_epochs,
        };
        let earlier = std::mem::take(&mut results.staleness);
        results.staleness = staleness::run(&study, earlier, |rows| {
            results.staleness = rows.to_vec();
            report::write(&args.out, &results)
        })?;
        report::write(&args.out, &results)?;
    }
    if has(Part::Workers) {
        let plan = workers::Plan {
            cells: args.workers_cells.clone(),
            seeds: args.workers_seeds,
            epochs: args.workers_epochs,
            convergence: args.workers_convergence,
        };
        let earlier = std::mem::take(&mut results.workers);
        let (rows, gantt) = workers::run(&plan, &results.machine["cpu"], earlier)?;
        results.workers = rows;
        if let Some(svg) = gantt {
            mspipe::train::run::write_atomic(&args.out.join("workers-gantt.svg"), &svg)?;
        }
        report::write(&args.out, &results)?;
    }
    if has(Part::Scale) {
        let features = (args.feature_scale > 0).then_some(args.feature_scale);
        results.scale = scale::run(&args.scale, features, args.scale_nodes, args.scale_window)?;
        report::write(&args.out, &results)?;
    }
    eprintln!("report: {}", args.out.join("report.md").display());
    Ok(())
}

fn main() -> ExitCode {
    mspipe::train::alloc::keep_freed_memory();
    let args = Args::parse();
    let result = match &args.child {
        Some(job) => child::run(job).map(|value| println!("{value}")),
        None => suite(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
