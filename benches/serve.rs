//! Streaming inference against training's evaluation pass, printed as one JSON object:
//! `cargo bench --bench serve` (options: `-- --dataset NAME --epochs N --rounds R`).
//!
//! TGN trained on the dataset (default: the shipped Wikipedia edges), its serving state exported
//! after validation; then the test split is served, as a client sends it, at micro-batches of 1,
//! 10 and 200 events (events/s scored and ingested, per-batch latency p50/p99), through the line
//! protocol at 200 (parsing and JSON out included), with one negative per event at 200 (the
//! evaluation's work), with the top 10 destinations at 200, and scored by training's evaluation
//! pass (`Session::evaluate`, one negative per event) — each round serving and evaluation in
//! turn, so drifts of the machine hit both alike.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use mspipe::train::config::{ModelName, resolve};
use mspipe::train::run::{EvalSplit, Existing, data, run_config, train, with_best_session};
use mspipe::train::serve::{NewEvent, ServeOptions, Server, export_run, serve};
use serde_json::{Value, json};

/// The allocator mspipe-train runs with: allocation costs are part of serving.
#[global_allocator]
static ALLOCATOR: mspipe::train::alloc::Allocator = mspipe::train::alloc::Allocator;

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// The test split as a client sends it (original ids and time unit, edge features).
fn test_events(run: &Path) -> Vec<NewEvent> {
    let config = run_config(run).expect("config");
    let (stream, split) = data(&config).expect("dataset");
    let ids = stream.node_ids();
    split
        .test
        .map(|i| NewEvent {
            src: ids.original(stream.src()[i]),
            dst: ids.original(stream.dst()[i]),
            t: stream.time()[i],
            features: stream.edge_features().map(|f| f.row(i).to_vec()),
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The test split served in micro-batches of `batch` (`negatives` and `top` per event) from
/// the state after validation: events/s and per-batch latency quantiles (milliseconds).
fn served(run: &Path, events: &[NewEvent], batch: usize, negatives: usize, top: usize) -> Value {
    let mut server = Server::open(run).expect("open");
    let mut latency = Vec::with_capacity(events.len() / batch + 1);
    let start = Instant::now();
    // On a rayon worker, as `serve` runs its stream.
    rayon::scope(|_| {
        for b in events.chunks(batch) {
            let t = Instant::now();
            server.score_ranked(b, negatives, top).expect("score");
            latency.push(t.elapsed().as_secs_f64() * 1e3);
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    latency.sort_by(f64::total_cmp);
    json!({
        "batch": batch, "negatives": negatives, "top_k": top,
        "events_per_sec": events.len() as f64 / seconds,
        "p50_ms": quantile(&latency, 0.5), "p99_ms": quantile(&latency, 0.99),
    })
}

/// The same through the line protocol: CSV lines in, JSON lines out (to a sink).
fn protocol(run: &Path, events: &[NewEvent], batch: usize) -> Value {
    let mut text = String::new();
    for e in events {
        text += &format!("{},{},{}", e.src, e.dst, e.t);
        for x in e.features.iter().flatten() {
            text += &format!(",{x}");
        }
        text.push('\n');
    }
    let mut server = Server::open(run).expect("open");
    let options = ServeOptions {
        batch,
        max_delay: Duration::from_secs(60),
        ..Default::default()
    };
    let start = Instant::now();
    let report = serve(
        &mut server,
        Cursor::new(text.into_bytes()),
        &mut std::io::sink(),
        &mut std::io::sink(),
        &options,
    )
    .expect("serve");
    assert_eq!(report.scored, events.len());
    json!({"batch": batch, "events_per_sec": events.len() as f64 / start.elapsed().as_secs_f64()})
}

/// Training's evaluation pass over the test split (one negative per event, batch as trained),
/// from memory after training and validation.
fn evaluation(run: &Path) -> Value {
    // On a rayon worker, as training runs its evaluation.
    rayon::scope(|_| with_best_session(run, |s| {
        let train = s.train_events().to_vec();
        let val: Vec<usize> = s.split.val.clone().collect();
        let test: Vec<usize> = s.split.test.clone().collect();
        s.reset_memory();
        s.evaluate(&train, 1)?;
        s.evaluate(&val, 1)?;
        let start = Instant::now();
        s.evaluate(&test, 1)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(json!({"batch": s.config.train.batch_size, "events_per_sec": test.len() as f64 / seconds}))
    }))
    .expect("evaluation")
}

fn main() {
    mspipe::train::alloc::keep_freed_memory();
    let dataset = arg("--dataset").unwrap_or_else(|| "wikipedia".into());
    let epochs: usize = arg("--epochs").map_or(1, |e| e.parse().expect("--epochs N"));
    let rounds: usize = arg("--rounds").map_or(2, |r| r.parse().expect("--rounds R"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let sets = [
        format!("data.dataset={dataset:?}"),
        format!("train.epochs={epochs}"),
        "train.node_classification=false".into(),
    ];
    let config = resolve(ModelName::Tgn, None, &sets).expect("config");
    let summary = train(&config, &run, Existing::Replace).expect("train");
    export_run(&run, EvalSplit::Val).expect("export");
    let events = test_events(&run);
    let mut rows = Vec::new();
    for round in 0..rounds {
        let mut cell =
            |name: &str, v: Value| rows.push(json!({"round": round, "what": name, "result": v}));
        cell("evaluation", evaluation(&run));
        for batch in [200, 10, 1] {
            cell("serve", served(&run, &events, batch, 0, 0));
        }
        cell("serve", served(&run, &events, 200, 1, 0));
        cell(
            "serve",
            served(&run, &events, config.train.batch_size, 1, 0),
        );
        cell("serve top-k", served(&run, &events, 200, 0, 10));
        cell("protocol", protocol(&run, &events, 200));
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
    });
    let out = json!({
        "cpu": cpu,
        "threads": rayon::current_num_threads(),
        "dataset": dataset,
        "test_events": events.len(),
        "test_ap": summary.test.ap,
        "git_revision": mspipe::train::run::GIT_REV,
        "rows": rows,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
