//! Datasets × models × pipeline modes: every run trains `epochs` epochs with the model's preset
//! and reports training events/s, peak RSS and test AP/AUC after the last epoch. The modes run
//! alternated for `rounds` rounds, each run probed for the cores' placement; a mode's row is its
//! median run among those at the near placement (among all when none was).

use anyhow::Result;
use mspipe::train::config::ModelName;
use serde_json::{Value, json};

use crate::child::{Job, last_epoch, measured_run, run_row, spawn};
use crate::placement::{median_near, probed};

/// The pipeline modes compared: TGL's sequential order, and MSPipe's online plan.
pub const MODES: [&str; 2] = ["off", "mspipe"];

/// One row per (dataset, model, mode).
pub fn run(
    datasets: &[String],
    models: &[ModelName],
    epochs: usize,
    rounds: usize,
) -> Result<Vec<Value>> {
    warm_up(datasets)?;
    let mut rows = Vec::new();
    for dataset in datasets {
        for &model in models {
            let mut runs: [Vec<Value>; 2] = Default::default();
            for _ in 0..rounds {
                for (mode, runs) in MODES.iter().zip(&mut runs) {
                    let mut overrides = measured_run(dataset, epochs, 0);
                    overrides.push(format!("pipeline.mode={mode:?}"));
                    let run = probed(|| spawn(&Job::Train { model, overrides }))?;
                    let row = row(dataset, model, mode, &run);
                    eprintln!("matrix: {row}");
                    runs.push(row);
                }
            }
            for runs in runs {
                let speed = |r: &Value| r["train_events_per_sec"].as_f64().unwrap_or(f64::NAN);
                if let Some(median) = median_near(&runs, speed) {
                    let mut row = median.row.clone();
                    row["median_of"] = json!(median.of());
                    let each = |r: &Value| {
                        json!({
                            "train_events_per_sec": r["train_events_per_sec"],
                            "hand_over": r["hand_over"],
                        })
                    };
                    row["rounds"] = json!(runs.iter().map(each).collect::<Vec<_>>());
                    rows.push(row);
                }
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
