//! Every measured run happens in a child process (the bench binary re-run with `--child JOB`), so
//! each gets its own peak RSS and no run inherits another's heap or thread pools.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use mspipe::train::config::{ModelName, resolve};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One measured run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Job {
    /// `mspipe-train` with `model` and config `overrides`, in a throw-away run directory.
    Train {
        model: ModelName,
        overrides: Vec<String>,
    },
    /// One TGN training window over a synthetic stream (see [`crate::scale`]).
    Scale(crate::scale::ScaleJob),
}

/// The overrides every measured training run shares: `dataset`, `epochs` and `seed`, all epochs
/// trained (no early stop), no node classification afterwards.
pub fn measured_run(dataset: &str, epochs: usize, seed: u64) -> Vec<String> {
    vec![
        format!("data.dataset={dataset:?}"),
        format!("train.epochs={epochs}"),
        format!("train.seed={seed}"),
        "train.patience=0".into(),
        "train.node_classification=false".into(),
    ]
}

/// The last epoch's record of a training run's summary (null when it has none).
pub fn last_epoch(run: &Value) -> Value {
    let history = run["history"].as_array();
    history.and_then(|h| h.last()).cloned().unwrap_or_default()
}

/// A part's row: `fields`, then what every part records of `run` — its training events/s over
/// all epochs, its last epoch's test AP, stage seconds and training seconds, and the cores'
/// hand-over probed either side of it (null when it was not; see [`crate::placement`]).
pub fn run_row(fields: Value, run: &Value) -> Value {
    let last = last_epoch(run);
    let mut row = fields;
    for (key, value) in [
        ("train_events_per_sec", &run["train_events_per_sec"]),
        ("test_ap", &last["test_ap"]),
        ("stage_seconds", &last["pipeline"]["stage_seconds"]),
        ("pool_busy_share", &last["pipeline"]["pool_busy_share"]),
        ("train_seconds", &last["train_seconds"]),
        ("hand_over", &run["hand_over"]),
    ] {
        row[key] = value.clone();
    }
    row
}

/// Runs `job` in a child process; returns the JSON object it printed last.
pub fn spawn(job: &Job) -> Result<Value> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let output = Command::new(exe)
        .arg("--child")
        .arg(serde_json::to_string(job)?)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .context("starting a child run")?;
    if !output.status.success() {
        bail!("child run {job:?} failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().context("the child printed nothing")?;
    serde_json::from_str(last).with_context(|| format!("child output {last:?}"))
}

/// Child side: runs the job and returns what it measured.
pub fn run(job: &str) -> Result<Value> {
    match serde_json::from_str(job).context("parsing the child job")? {
        Job::Train { model, overrides } => train(model, &overrides),
        Job::Scale(job) => crate::scale::measure(&job),
    }
}

/// A training run's summary plus its per-epoch history (`metrics.jsonl`).
fn train(model: ModelName, overrides: &[String]) -> Result<Value> {
    let config = resolve(model, None, overrides)?;
    mspipe::train::run::use_threads(config.train.threads)?;
    let dir = tempfile::tempdir()?;
    let summary =
        mspipe::train::run::train(&config, dir.path(), mspipe::train::run::Existing::Refuse)?;
    let mut summary = serde_json::to_value(summary)?;
    summary["history"] = history(&dir.path().join("metrics.jsonl"))?;
    summary["batch_size"] = json!(config.train.batch_size);
    let gantt = std::fs::read_to_string(dir.path().join("gantt.svg")).ok();
    summary["gantt"] = json!(gantt);
    Ok(summary)
}

fn history(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)?;
    let lines: Result<Vec<Value>, _> = text.lines().map(serde_json::from_str).collect();
    Ok(json!(lines?))
}
