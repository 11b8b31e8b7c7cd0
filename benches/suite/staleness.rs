//! The staleness study: what reading memory that misses exactly K updates costs in test AP, and
//! how much of that mitigation recovers. Every cell (model, dataset) trains with `fixed:K` for
//! each K, with mitigation off and on (K = 0 has nothing to mitigate), over several seeds; each run
//! in its own process.

use anyhow::Result;
use mspipe::train::config::ModelName;
use serde_json::{Value, json};

use crate::child::{Job, measured_run, spawn};
use crate::report::mean_std;

/// What the study runs.
#[derive(Debug, Clone)]
pub struct Study {
    /// (model, dataset) pairs.
    pub cells: Vec<(ModelName, String)>,
    /// Staleness bounds; 0 is the baseline every loss is measured against.
    pub ks: Vec<usize>,
    pub seeds: u64,
    pub epochs: usize,
}

/// Parses `model/dataset`.
pub fn cell(text: &str) -> Result<(ModelName, String), String> {
    let (model, dataset) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?}: expected model/dataset, e.g. tgn/wikipedia"))?;
    let model = clap::ValueEnum::from_str(model, true)?;
    Ok((model, dataset.to_string()))
}

/// One row per (cell, K, mitigation), merged into `rows` from earlier runs: a measured row
/// replaces the earlier one of its (cell, K, mitigation), the others stay (each row names its git
/// revision), so one cell or one K can be measured again without the hours of the whole study.
/// `done` sees the rows after each measurement (the report is kept current as it goes).
pub fn run(
    study: &Study,
    mut rows: Vec<Value>,
    mut done: impl FnMut(&[Value]) -> Result<()>,
) -> Result<Vec<Value>> {
    for (model, dataset) in &study.cells {
        for &k in &study.ks {
            for mitigation in [false, true] {
                if k == 0 && mitigation {
                    continue;
                }
                let mut aps = Vec::new();
                let mut staleness = Vec::new();
                for seed in 0..study.seeds {
                    let mut overrides = measured_run(dataset, study.epochs, seed);
                    overrides.push(format!("pipeline.mode=\"fixed:{k}\""));
                    overrides.push(format!("pipeline.mitigation={mitigation}"));
                    let run = spawn(&Job::Train {
                        model: *model,
                        overrides,
                    })?;
                    aps.push(run["test_ap"].as_f64().unwrap_or(f64::NAN));
                    staleness.push(run["pipeline"]["mean_staleness"].clone());
                }
                let (mean, std) = mean_std(&aps);
                let row = json!({
                    "model": model,
                    "dataset": dataset,
                    "k": k,
                    "mitigation": mitigation,
                    "epochs": study.epochs,
                    "test_ap": aps,
                    "mean": mean,
                    "std": std,
                    "mean_staleness": staleness,
                    "git_revision": mspipe::train::run::GIT_REV,
                });
                eprintln!("staleness: {row}");
                merge(&mut rows, row);
                done(&rows)?;
            }
        }
    }
    Ok(rows)
}

/// Puts `row` in place of the row of its (model, dataset, K, mitigation), or after its cell's rows
/// in K order.
fn merge(rows: &mut Vec<Value>, row: Value) {
    let order = |r: &Value| (r["k"].as_u64(), r["mitigation"].as_bool());
    let same_cell = |r: &Value| r["model"] == row["model"] && r["dataset"] == row["dataset"];
    if let Some(old) = rows
        .iter_mut()
        .find(|r| same_cell(r) && order(r) == order(&row))
    {
        *old = row;
        return;
    }
    let at = match rows.iter().rposition(same_cell) {
        Some(last) => {
            let first = rows.iter().position(same_cell).unwrap_or(last);
            (first..=last)
                .find(|&i| order(&rows[i]) > order(&row))
                .unwrap_or(last + 1)
        }
        None => rows.len(),
    };
    rows.insert(at, row);
}
