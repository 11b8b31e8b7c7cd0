//! The evaluation protocol's table: test AP (mean over evaluation batches) of TGN, JODIE, APAN and
//! EdgeBank on every stream after the same epochs, PyG's TGN where the peer part measured it, and
//! TGN's AP with every timestamp multiplied and divided by 3.15e7 (a year in seconds): a model
//! that learns the same in any time unit moves by less than a point.
//!
//! `snapshot` names a generated stream of yearly snapshots stored in seconds (the shape of
//! parliament and trade streams). Every model trains on a DyGLib copy of the stream written into a
//! scratch directory, as do the time-scaled runs, so all columns see the same node numbering (the
//! held-out new nodes are drawn over it).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{EventStream, Format, LoadOptions, load};
use mspipe::train::config::ModelName;
use serde_json::{Value, json};

use crate::child::{Job, measured_run, spawn};
use crate::report::{Results, f, mark};

/// One year in seconds: the factor the time-unit check scales timestamps by.
const YEAR: f64 = 31_536_000.0;

/// The name of the generated snapshot stream.
pub const SNAPSHOT: &str = "snapshot";

const MODELS: [ModelName; 4] = [
    ModelName::Tgn,
    ModelName::Jodie,
    ModelName::Apan,
    ModelName::Edgebank,
];

/// How each model of the table is trained.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    /// Epochs of every run.
    pub epochs: usize,
    /// Seeds 0, 1, … of every trained model (EdgeBank trains nothing: one run).
    pub seeds: u64,
}

/// One row per dataset: each column the mean test AP over the protocol's seeds (per seed under
/// the column's name + `_seeds`).
pub fn run(datasets: &[String], protocol: Protocol, scratch: &Path) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for dataset in datasets {
        let stream = materialise(dataset)?;
        let path = scratch.join(format!("ml_{}.csv", label(dataset)));
        mspipe::data::format::write(&stream, Format::DyGLib, &path)?;
        let mut row =
            json!({"dataset": dataset, "epochs": protocol.epochs, "seeds": protocol.seeds});
        for model in MODELS {
            let seeds = if model == ModelName::Edgebank {
                1
            } else {
                protocol.seeds
            };
            let p = Protocol { seeds, ..protocol };
            column(&mut row, model.name(), model, &path, p, &[])?;
        }
        let batch_ages = ["memory.mail_ages=\"batch\"".to_string()];
        column(
            &mut row,
            "apan_batch_ages",
            ModelName::Apan,
            &path,
            protocol,
            &batch_ages,
        )?;
        let self_delivery = ["memory.delivery=\"self\"".to_string()];
        column(
            &mut row,
            "apan_self_delivery",
            ModelName::Apan,
            &path,
            protocol,
            &self_delivery,
        )?;
        for (key, factor) in [("tgn_times_year", YEAR), ("tgn_over_year", 1.0 / YEAR)] {
            let scaled = scratch.join(format!("ml_{}_{key}.csv", label(dataset)));
            let mut s = stream.clone();
            s.rescale_time(1.0 / factor);
            mspipe::data::format::write(&s, Format::DyGLib, &scaled)?;
            column(&mut row, key, ModelName::Tgn, &scaled, protocol, &[])?;
        }
        eprintln!("fidelity: {row}");
        rows.push(row);
    }
    Ok(rows)
}

/// `row[key]`: `model`'s mean test AP over the protocol's seeds; `row[key_seeds]`: each seed's.
fn column(
    row: &mut Value,
    key: &str,
    model: ModelName,
    path: &Path,
    protocol: Protocol,
    extra: &[String],
) -> Result<()> {
    let mut aps = Vec::new();
    for seed in 0..protocol.seeds {
        aps.push(test_ap(model, path, protocol.epochs, seed, extra)?);
    }
    row[key] = json!(aps.iter().sum::<f64>() / aps.len().max(1) as f64);
    row[format!("{key}_seeds")] = json!(aps);
    Ok(())
}

/// The stream named `dataset`.
pub fn materialise(dataset: &str) -> Result<EventStream> {
    if dataset == SNAPSHOT {
        return Ok(generate(&SyntheticConfig {
            events: 60_000,
            nodes: 800,
            snapshots: Some(14),
            ..Default::default()
        })?);
    }
    let (path, format) = mspipe::train::run::dataset_path(dataset)?;
    let options = LoadOptions {
        read: mspipe::data::ReadOptions {
            format,
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(load(&path, &options)
        .with_context(|| format!("loading {}", path.display()))?
        .stream)
}

fn label(dataset: &str) -> String {
    Path::new(dataset)
        .file_stem()
        .map_or(dataset.into(), |s| s.to_string_lossy().into_owned())
}

fn test_ap(
    model: ModelName,
    path: &Path,
    epochs: usize,
    seed: u64,
    extra: &[String],
) -> Result<f64> {
    let mut overrides = measured_run(&path.display().to_string(), epochs, seed);
    overrides.extend_from_slice(extra);
    let run = spawn(&Job::Train { model, overrides })?;
    run["test_ap"]
        .as_f64()
        .with_context(|| format!("{model:?} on {} reported no test AP", path.display()))
}

/// The protocol table and the time-unit check, with their targets.
pub fn section(md: &mut String, r: &Results) {
    let Some(first) = r.fidelity.first() else {
        return;
    };
    let reference = match r.reference.is_empty() {
        true => "",
        false => {
            " Whether a miss is mspipe's or the model's: the next table trains TGL's APAN and JODIE beside mspipe's."
        }
    };
    let _ = writeln!(
        md,
        "## Accuracy under the evaluation protocol\n\nTest AP as TGN, TGL and MSPipe report it (mean over evaluation batches of 600; one random negative per positive, drawn from the whole stream's destinations; training negatives only from training destinations), the best epoch by validation AP of {} epochs, {}, each model's preset. EdgeBank: a pair scores 1 if it occurred before (unlimited memory). PyG: the peer part's TGN (its protocol and learning rate, see above). `snapshot`: a generated stream of 14 yearly snapshots stored in seconds. Multiplying integer timestamps by 31,536,000 is exact, and training then is bit-identical; dividing rounds every timestamp, a perturbation that grows through training as a change of seed does. APAN measures its mails' ages at each root's own time (TGL's per-root updater, the default); the next column measures them at the batch's first event time, one updated memory per node (`memory.mail_ages = \"batch\"`), and the one after it delivers mails to the endpoints only (`memory.delivery = \"self\"`; APAN's own delivery to sampled neighbours fills two thirds of a mailbox with other nodes' events, see `apan-jodie.md`).{reference}\n",
        first["epochs"],
        match first["seeds"].as_u64().unwrap_or(1) {
            1 => "seed 0".to_string(),
            n => format!("the mean over seeds 0–{} (EdgeBank: one run)", n - 1),
        },
    );
    md.push_str("| dataset | TGN | JODIE | APAN | APAN, ages at the batch's start | APAN, self delivery | EdgeBank | PyG TGN | − EdgeBank, points: TGN / JODIE / APAN (target ≥ −1) | APAN − TGN, points (target ≥ −3 on Wikipedia) | TGN, times × 3.15e7 | TGN, times ÷ 3.15e7 | largest change, points (target < 1) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &r.fidelity {
        let tgn = f(&row["tgn"]);
        let pyg = r
            .peer
            .iter()
            .find(|p| p["dataset"] == row["dataset"])
            .map_or("–".into(), |p| format!("{:.4}", f(&p["pyg"]["test_ap"])));
        let margins = ["tgn", "jodie", "apan"].map(|m| 100.0 * (f(&row[m]) - f(&row["edgebank"])));
        let missed: Vec<&str> = ["TGN", "JODIE", "APAN"]
            .iter()
            .zip(&margins)
            .filter(|(_, m)| **m < -1.0)
            .map(|(name, _)| *name)
            .collect();
        let margins_cell = format!(
            "{:+.2} / {:+.2} / {:+.2} ({})",
            margins[0],
            margins[1],
            margins[2],
            if missed.is_empty() {
                "met".to_string()
            } else {
                format!("**missed**: {}", missed.join(", "))
            }
        );
        let apan_gap = 100.0 * (f(&row["apan"]) - tgn);
        let apan_cell = match row["dataset"].as_str() {
            Some("wikipedia") => format!("{apan_gap:+.2} ({})", mark(apan_gap >= -3.0)),
            _ => format!("{apan_gap:+.2}"),
        };
        let change = [f(&row["tgn_times_year"]), f(&row["tgn_over_year"])]
            .iter()
            .map(|x| 100.0 * (x - tgn).abs())
            .fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {:.4} | {} | {} | {:.4} | {} | {} | {} | {:.4} | {:.4} | {:.2} ({}) |",
            row["dataset"].as_str().unwrap_or("?"),
            tgn,
            f(&row["jodie"]),
            f(&row["apan"]),
            optional(row, "apan_batch_ages"),
            optional(row, "apan_self_delivery"),
            f(&row["edgebank"]),
            pyg,
            margins_cell,
            apan_cell,
            f(&row["tgn_times_year"]),
            f(&row["tgn_over_year"]),
            change,
            mark(change < 1.0),
        );
    }
    md.push('\n');
}

/// `row[key]` to four places, or a dash for a row measured before the column existed.
fn optional(row: &Value, key: &str) -> String {
    row.get(key).map_or("–".into(), |v| format!("{:.4}", f(v)))
}
