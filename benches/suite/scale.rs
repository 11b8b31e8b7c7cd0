//! The scale test: TGN over synthetic streams of growing size on 1M nodes. Each size runs in its
//! own process and reports generation and set-up time, training events/s and peak RSS.
//!
//! A full epoch at 100M events takes hours on 2 cores, so each size trains the epoch's last
//! `window` events by default, with every data structure (stream, T-CSR graphs, memory of every
//! node, negative sampler) at full size: the end of the epoch is where neighbour lists are
//! longest, so the window is the epoch's most expensive stretch. `window = 0` trains whole epochs.

use std::time::Instant;

use anyhow::Result;
use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{Split, SplitConfig};
use mspipe::scheduler::Stage;
use mspipe::train::config::{ModelName, resolve};
use mspipe::train::session::Session;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::shape::{BatchShape, merge};

/// One size of the scale test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleJob {
    pub events: usize,
    pub nodes: usize,
    pub edge_feat_dim: usize,
    /// Training events measured at the end of the epoch (0: the whole epoch).
    pub window: usize,
}

/// Child side: generate, build the session, train the window.
pub fn measure(job: &ScaleJob) -> Result<Value> {
    let start = Instant::now();
    let stream = generate(&SyntheticConfig {
        events: job.events,
        nodes: job.nodes,
        edge_feat_dim: job.edge_feat_dim,
        seed: 1,
        ..Default::default()
    })?;
    let generate_seconds = start.elapsed().as_secs_f64();
    let config = resolve(
        ModelName::Tgn,
        None,
        &["train.node_classification=false".into()],
    )?;
    let start = Instant::now();
    let split = Split::chronological(
        &stream,
        &SplitConfig {
            val_fraction: config.data.val_fraction,
            test_fraction: config.data.test_fraction,
            new_node_fraction: config.data.new_node_fraction,
            seed: config.train.seed,
        },
    )?;
    let executor = config.pipeline.executor();
    let mut session = Session::new(config, stream, split)?;
    let setup_seconds = start.elapsed().as_secs_f64();
    let epoch_events = session.train_events().len();
    let batch = session.config.train.batch_size;
    let all = session.train_batches();
    let first = match job.window {
        0 => 0,
        w => all.saturating_sub(w.div_ceil(batch)),
    };
    let trained = epoch_events - first * batch;
    let start = Instant::now();
    let timeline = session.train_pipelined(0, first..all, &executor, |_| {})?;
    let train_seconds = start.elapsed().as_secs_f64();
    let stage_seconds: serde_json::Map<String, Value> = Stage::ALL
        .iter()
        .map(|&s| (s.name().to_string(), json!(timeline.busy(s))))
        .collect();
    // Batch sizes over the window, from 20 batches spread across it.
    let step = ((all - first) / 20).max(1);
    let shape = BatchShape::measure(&mut session, (first..all).step_by(step))?;
    let mut row = json!({
        "events": job.events,
        "nodes": job.nodes,
        "edge_feat_dim": job.edge_feat_dim,
        "epoch_events": epoch_events,
        "trained_events": trained,
        "generate_seconds": generate_seconds,
        "setup_seconds": setup_seconds,
        "train_seconds": train_seconds,
        "train_events_per_sec": trained as f64 / train_seconds,
        "projected_epoch_seconds": epoch_events as f64 * train_seconds / trained as f64,
        "peak_rss_bytes": mspipe::train::run::peak_rss_bytes(),
        "stage_seconds": stage_seconds,
    });
    merge(&mut row, shape.to_json());
    Ok(row)
}

/// Parent side: every size of `sizes`, then the feature-rich run at `feature_size`.
pub fn run(
    sizes: &[usize],
    feature_size: Option<usize>,
    nodes: usize,
    window: usize,
) -> Result<Vec<Value>> {
    let mut jobs: Vec<ScaleJob> = sizes
        .iter()
        .map(|&events| ScaleJob {
            events,
            nodes,
            edge_feat_dim: 0,
            window,
        })
        .collect();
    if let Some(events) = feature_size {
        jobs.push(ScaleJob {
            events,
            nodes,
            edge_feat_dim: 172,
            window,
        });
    }
    let mut rows = Vec::new();
    for job in jobs {
        eprintln!(
            "scale: {} events, {} edge features",
            job.events, job.edge_feat_dim
        );
        let row = crate::child::spawn(&crate::child::Job::Scale(job))?;
        eprintln!("  {row}");
        rows.push(row);
    }
    Ok(rows)
}
