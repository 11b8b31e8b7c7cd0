//! Sequential vs pipelined training, printed as one JSON object:
//! `cargo bench --bench pipeline` (options: `-- --epochs N --rounds R --dataset NAME`).
//!
//! TGN on the dataset (default: the shipped Wikipedia edges), batch 600, for each of `rounds`
//! rounds the modes in turn (sequential loop, `off`, `mspipe` — alternated so drifts of the
//! machine hit all alike): training events/s, test AP after the last epoch, per-stage seconds.
//! The ideal speed-up comes from the sequential stage times on this machine's cores:
//! Στ / max(max τ, Στ / cores) — a pipeline cannot beat its longest stage, nor do more than
//! `cores` stages' work at once.

use std::time::Instant;

use mspipe::scheduler::{Stage, Timeline};
use mspipe::train::config::{ModelName, resolve};
use mspipe::train::metrics::average_precision;
use mspipe::train::run::data;
use mspipe::train::session::Session;
use serde_json::{Value, json};

/// The allocator mspipe-train runs with: allocation costs are part of the step.
#[global_allocator]
static ALLOCATOR: mspipe::train::alloc::Allocator = mspipe::train::alloc::Allocator;

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// One run of `mode`: (train events/s, test AP after the last epoch, stage seconds).
fn run(dataset: &str, mode: &str, epochs: usize) -> (f64, f64, [f64; 5]) {
    let pipeline = if mode == "sequential" { "off" } else { mode };
    let overrides = vec![
        format!("data.dataset={dataset:?}"),
        format!("pipeline.mode={pipeline:?}"),
    ];
    let config = resolve(ModelName::Tgn, None, &overrides).expect("config");
    let (stream, split) = data(&config).expect("dataset");
    let mut s = Session::new(config, stream, split).expect("session");
    let executor = s.config.pipeline.executor();
    let n = s.train_batches();
    let (mut seconds, mut stages, mut ap) = (0.0, [0.0; 5], 0.0);
    for epoch in 0..epochs {
        s.reset_memory();
        let start = Instant::now();
        let tl: Timeline = if mode == "sequential" {
            s.train_sequential(epoch, 0..n, |_| {})
        } else {
            s.train_pipelined(epoch, 0..n, &executor, |_| {})
        }
        .expect("trains");
        seconds += start.elapsed().as_secs_f64();
        for st in Stage::ALL {
            stages[st.index()] += tl.busy(st);
        }
        let val: Vec<usize> = s.split.val.clone().collect();
        let test: Vec<usize> = s.split.test.clone().collect();
        s.evaluate(&val, 1).expect("val");
        let scores = s.evaluate(&test, 1).expect("test");
        ap = average_precision(&scores.pos, &scores.neg);
    }
    let events = (s.train_events().len() * epochs) as f64;
    (events / seconds, ap, stages)
}

fn main() {
    mspipe::train::alloc::keep_freed_memory();
    let epochs: usize = arg("--epochs").and_then(|v| v.parse().ok()).unwrap_or(5);
    let rounds: usize = arg("--rounds").and_then(|v| v.parse().ok()).unwrap_or(2);
    let dataset = arg("--dataset").unwrap_or_else(|| "wikipedia".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let modes = ["sequential", "off", "mspipe"];
    let mut results: Vec<Vec<(f64, f64, [f64; 5])>> = vec![Vec::new(); modes.len()];
    for _ in 0..rounds {
        for (m, mode) in modes.iter().enumerate() {
            let r = run(&dataset, mode, epochs);
            eprintln!(
                "{mode}: {:.0} events/s, test AP {:.4}, stages {:?}",
                r.0, r.1, r.2
            );
            results[m].push(r);
        }
    }
    let mut report = json!({
        "dataset": dataset, "model": "tgn", "batch_size": 600, "epochs": epochs,
        "rounds": rounds, "cores": cores,
    });
    let seq = &results[0];
    for (round, r) in seq.iter().enumerate() {
        let total: f64 = r.2.iter().sum();
        let max = r.2.iter().copied().fold(0.0, f64::max);
        let ideal = total / max.max(total / cores);
        let mut row = json!({"ideal_speedup": ideal});
        for (m, mode) in modes.iter().enumerate() {
            let (eps, ap, stages) = results[m][round];
            let named: serde_json::Map<String, Value> = Stage::ALL
                .iter()
                .map(|s| (s.name().to_string(), json!(stages[s.index()])))
                .collect();
            row[mode] = json!({"events_per_sec": eps, "test_ap": ap, "stage_seconds": named});
            if m > 0 {
                let speedup = eps / r.0;
                row[mode]["speedup"] = json!(speedup);
                row[mode]["fraction_of_ideal"] = json!(speedup / ideal);
                row[mode]["ap_minus_sequential"] = json!(ap - r.1);
            }
        }
        report[format!("round{}", round + 1)] = row;
    }
    println!("{report}");
}
