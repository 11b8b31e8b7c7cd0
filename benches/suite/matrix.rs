//! Datasets × models × pipeline modes: every run trains `epochs` epochs with the model's preset
//! and reports training events/s, peak RSS and test AP/AUC after the last epoch.

use anyhow::Result;
use mspipe::train::config::ModelName;
use serde_json::{Value, json};

use crate::child::{Job, last_epoch, measured_run, run_row, spawn};
use crate::placement::probed;

/// The pipeline modes compared: TGL's sequential order, and MSPipe's online plan.
pub const MODES: [&str; 2] = ["off", "mspipe"];

/// One row per (dataset, model, mode).
pub fn run(datasets: &[String], models: &[ModelName], epochs: usize) -> Result<Vec<Value>> {
    warm_up(datasets)?;
    let mut rows = Vec::new();
    for dataset in datasets {
        for &model in models {
            for mode in MODES {
                let mut overrides = measured_run(dataset, epochs, 0);
                overrides.push(format!("pipeline.mode={mode:?}"));
                let run = probed(|| spawn(&Job::Train { model, overrides }))?;
                let row = row(dataset, model, mode, &run);
                eprintln!("matrix: {row}");
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// One unmeasured TGN epoch on the first dataset. The first training process after a quiet spell
/// ran ~25% slower here than the same run repeated (first-touch cost of the VM's memory), and the
/// FLOP floor compares against the first row.
fn warm_up(datasets: &[String]) -> Result<()> {
    let Some(dataset) = datasets.first() else {
        return Ok(());
    };
    let overrides = vec![
        format!("data.dataset={dataset:?}"),
        "train.epochs=1".into(),
        "train.node_classification=false".into(),
    ];
    spawn(&Job::Train {
        model: ModelName::Tgn,
        overrides,
    })?;
    Ok(())
}

/// The figures of one run: throughput over all epochs, accuracy of the last epoch.
fn row(dataset: &str, model: ModelName, mode: &str, run: &Value) -> Value {
    let last = last_epoch(run);
    let fields = json!({
        "dataset": dataset,
        "model": model,
        "mode": mode,
        "epochs": run["epochs"],
        "peak_rss_bytes": run["peak_rss_bytes"],
        "test_auc": last["test_auc"],
        "mean_staleness": run["pipeline"]["mean_staleness"],
        "minor_faults_per_batch": last["pipeline"]["minor_faults_per_batch"],
    });
    run_row(fields, run)
}
