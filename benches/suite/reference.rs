//! APAN and JODIE against references: TGL's models written in plain PyTorch
//! (`benches/peer/tgl_models.py`), trained on the same events, split and negatives as mspipe's,
//! with the same learning rate and dropouts, over the same seeds. mspipe hides no nodes here (the
//! reference cannot draw the same hidden set), and EdgeBank is measured under that protocol too,
//! so every column of a row answers the same question. The reference APAN attends over empty
//! mailbox slots as TGL does; mspipe masks them (`mspipe_model::memory::MailboxAttention`).
//!
//! What it answers: whether a model's distance from EdgeBank on a stream is mspipe's or the
//! model's — a faithful model that scores as low on the same stream says the stream defeats it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use mspipe::train::config::{ModelName, resolve};
use serde_json::{Value, json};

use crate::child::{Job, measured_run, spawn};
use crate::peer::{export, script_run, summarize, venv_python};
use crate::report::{Results, f, mark, median_of};

/// How both systems are trained.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// Models compared (APAN, JODIE).
    pub models: Vec<ModelName>,
    /// Epochs of every run.
    pub epochs: usize,
    /// Seeds 0, 1, … of both systems.
    pub seeds: u64,
    /// Threads of every run.
    pub threads: usize,
}

/// One row per dataset and model: per seed, each system's test AP at its best validation epoch
/// and training events/s (the two systems alternated, seed by seed); their means; EdgeBank's test
/// AP under the same protocol. Rows of `earlier` for the datasets and models this run does not
/// measure are kept.
pub fn run(
    datasets: &[String],
    p: &Protocol,
    scratch: &Path,
    earlier: Vec<Value>,
) -> Result<Vec<Value>> {
    let python = venv_python()?;
    let measured = |row: &Value| {
        let model = p.models.iter().any(|m| row["model"] == m.name());
        model && datasets.iter().any(|d| row["dataset"] == d.as_str())
    };
    let mut rows: Vec<Value> = earlier.into_iter().filter(|r| !measured(r)).collect();
    for dataset in datasets {
        let data = export(dataset, scratch)?;
        let edgebank = mspipe_run(ModelName::Edgebank, &data, p, 0)?;
        for &model in &p.models {
            rows.push(row(model, dataset, &data, p, &python, &edgebank)?);
        }
    }
    Ok(rows)
}

/// `model`'s row on `dataset` (exported to `data`).
fn row(
    model: ModelName,
    dataset: &str,
    data: &Path,
    p: &Protocol,
    python: &Path,
    edgebank: &Value,
) -> Result<Value> {
    let preset = resolve(model, None, &[])?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for seed in 0..p.seeds {
        let run = mspipe_run(model, data, p, seed)?;
        eprintln!(
            "reference {dataset} {} seed {seed} mspipe: {run}",
            model.name()
        );
        ours.push(run);
        let args = [
            ("--model", model.name().to_string()),
            ("--epochs", p.epochs.to_string()),
            ("--lr", preset.train.lr.to_string()),
            ("--batch-size", preset.train.batch_size.to_string()),
            ("--threads", p.threads.to_string()),
            ("--seed", seed.to_string()),
            ("--dropout", preset.gnn.dropout.to_string()),
            ("--att-dropout", preset.gnn.att_dropout.to_string()),
        ];
        let run = script_run(python, "tgl_models.py", data, &args)?;
        eprintln!(
            "reference {dataset} {} seed {seed} tgl: {run}",
            model.name()
        );
        theirs.push(run);
    }
    let aps = |runs: &[Value]| runs.iter().map(|r| f(&r["test_ap"])).collect::<Vec<_>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (a, b) = (aps(&ours), aps(&theirs));
    Ok(json!({
        "dataset": dataset, "model": model.name(),
        "epochs": p.epochs, "seeds": p.seeds, "threads": p.threads,
        "lr": preset.train.lr, "dropout": preset.gnn.dropout, "att_dropout": preset.gnn.att_dropout,
        "mspipe_runs": ours, "tgl_runs": theirs,
        "mspipe_test_ap": mean(&a), "tgl_test_ap": mean(&b),
        "mspipe_test_ap_seeds": a, "tgl_test_ap_seeds": b,
        "edgebank_test_ap": edgebank["test_ap"],
    }))
}

/// `model` on the exported `data` with the reference's protocol: every training event kept.
fn mspipe_run(model: ModelName, data: &Path, p: &Protocol, seed: u64) -> Result<Value> {
    let mut overrides = measured_run(&data.display().to_string(), p.epochs, seed);
    overrides.extend([
        "data.format=\"csv\"".into(),
        format!("train.threads={}", p.threads),
        "data.new_node_fraction=0".into(),
    ]);
    let run = spawn(&Job::Train { model, overrides })?;
    let history = run["history"].as_array().map_or(&[][..], |h| h);
    let summary = summarize(history);
    summary["test_ap"]
        .as_f64()
        .with_context(|| format!("{model:?} on {} reported no test AP", data.display()))?;
    Ok(summary)
}

/// The table: each model against its reference, EdgeBank, and how far each is from the other and
/// from EdgeBank.
pub fn section(md: &mut String, r: &Results) {
    let Some(first) = r.reference.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "### APAN and JODIE against TGL's, in PyTorch\n\nTGL's APAN and JODIE written in plain PyTorch from their modules' description (`benches/peer/tgl_models.py`; APAN: attention of the memory over 10 mails, LayerNorm → Linear → ReLU, delivery to the 10 most recent neighbours, the last mail of a batch kept, LayerNorm embedding; JODIE: an RNN cell over one mail, LayerNorm embedding projected by (1 + w·Δt); both TGL's time encoding and edge predictor), trained with mspipe's preset's learning rate and dropouts on the same events, split and negatives; no nodes hidden from training in either (nor for EdgeBank here). Test AP at each run's best validation epoch of {}, the mean over seeds 0–{} (each seed's in brackets). The reference APAN attends over empty mailbox slots, as TGL does; mspipe masks them. Speed: training events/s, the median over seeds, the two systems run alternately seed by seed with the same threads.\n",
        first["epochs"],
        first["seeds"].as_u64().unwrap_or(1).saturating_sub(1),
    );
    md.push_str("| dataset | model | lr / dropout / attention dropout | mspipe | TGL (reference) | mspipe − reference, points | EdgeBank | reference − EdgeBank, points | mspipe − EdgeBank, points (target ≥ −1) | events/s mspipe / reference (speed ratio) |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for model in ["apan", "jodie"] {
        for row in r.reference.iter().filter(|row| row["model"] == model) {
            reference_row(md, row);
        }
    }
    md.push('\n');
}

fn reference_row(md: &mut String, row: &Value) {
    let (ours, theirs, edgebank) = (
        f(&row["mspipe_test_ap"]),
        f(&row["tgl_test_ap"]),
        f(&row["edgebank_test_ap"]),
    );
    let seeds = |key: &str| {
        row[key].as_array().map_or(String::new(), |v| {
            v.iter()
                .map(|x| format!("{:.3}", f(x)))
                .collect::<Vec<_>>()
                .join(" / ")
        })
    };
    let (ref_margin, our_margin) = (100.0 * (theirs - edgebank), 100.0 * (ours - edgebank));
    let rate = |key: &str| {
        let runs = row[key].as_array().map_or(&[][..], |v| v);
        median_of(runs, "train_events_per_sec")
    };
    let (our_rate, their_rate) = (rate("mspipe_runs"), rate("tgl_runs"));
    let _ = writeln!(
        md,
        "| {} | {} | {} / {} / {} | {ours:.4} ({}) | {theirs:.4} ({}) | {:+.2} | {edgebank:.4} | {ref_margin:+.2} | {our_margin:+.2} ({}) | {our_rate:.0} / {their_rate:.0} ({:.2}×) |",
        row["dataset"].as_str().unwrap_or("?"),
        row["model"].as_str().unwrap_or("?"),
        row["lr"],
        row["dropout"],
        row["att_dropout"],
        seeds("mspipe_test_ap_seeds"),
        seeds("tgl_test_ap_seeds"),
        100.0 * (ours - theirs),
        mark(our_margin >= -1.0),
        our_rate / their_rate,
    );
}
