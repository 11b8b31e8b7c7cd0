//! The peer: PyTorch Geometric's TGN (`benches/peer/pyg_tgn.py`) against mspipe's TGN on the same
//! events (mspipe hides no nodes here, as PyG's example), split, negatives, batch size, dims,
//! learning rate and thread count, each reported at its best validation epoch, alternated
//! A B A B per dataset so that drifts of the machine hit both alike; round r seeds both systems
//! with r − 1, so the medians are over seeds too (one seed's AP can be a point or more off). Each round also runs mspipe
//! with `gnn.embed = "per_node"` — one embedding per node per batch, PyG's model — so the two
//! are compared work for work too. `generated-N` names a generated stream of 100,000 events over
//! N nodes (small dense graphs, where per-node embedding saves the most), `generated-NxD` the
//! same with D-wide edge features; `snapshot` the accuracy table's stream of yearly snapshots.
//! A stream's edge features go to both systems (PyG's messages, mspipe's mails and attention).

//!
//! torch and torch_geometric come from PyPI into a throw-away venv (`$MSPIPE_PEER_VENV`, default
//! `peer-venv` under the cargo target directory); `cargo test` never needs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{Format, format};
use mspipe::train::config::{ModelName, resolve};
use mspipe::train::session::Session;
use serde_json::{Value, json};

use crate::child::{Job, spawn};
use crate::placement::probed;
use crate::report::median_of;
use crate::shape::BatchShape;

/// What both systems train with.
pub struct Protocol {
    pub epochs: usize,
    pub rounds: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub threads: usize,
}

/// The venv's directory.
fn venv() -> PathBuf {
    match std::env::var_os("MSPIPE_PEER_VENV") {
        Some(v) => PathBuf::from(v),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("peer-venv"),
    }
}

/// The venv's python if an earlier peer run made it.
pub fn existing_venv_python() -> Option<PathBuf> {
    let python = venv().join("bin/python");
    python.exists().then_some(python)
}

/// The venv's python, created and filled on first use.
pub fn venv_python() -> Result<PathBuf> {
    let venv = venv();
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!(
            "peer: creating {} (torch, torch_geometric from PyPI)",
            venv.display()
        );
        command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        command(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "-q",
            "torch",
            "torch_geometric",
        ]))?;
    }
    command(Command::new(&python).args(["-c", "import torch, torch_geometric"]))
        .context("the peer venv lacks torch or torch_geometric")?;
    Ok(python)
}

fn command(c: &mut Command) -> Result<String> {
    let out = c.output().with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prefix of the generated streams' names.
pub const GENERATED: &str = "generated-";

/// The stream file both systems read for `dataset`: `src,dst,t` CSV with mspipe's dense node
/// ids, written into `dir` (a generated stream is made first). Edge features are left out.
pub fn export(dataset: &str, dir: &Path) -> Result<PathBuf> {
    Ok(export_with_features(dataset, dir)?.csv)
}

/// The files of a dataset's peer runs.
struct Exported {
    /// The `src,dst,t` CSV of [`export`]: PyG's events.
    csv: PathBuf,
    /// With edge features: the same events in DyGLib's layout (`ml_<name>.csv`, mspipe's input),
    /// and its `.npy` of features beside it (PyG's `--features`).
    dyglib: Option<(PathBuf, PathBuf)>,
}

/// [`export`], and the DyGLib copy when the stream has edge features.
fn export_with_features(dataset: &str, dir: &Path) -> Result<Exported> {
    let stream = match dataset.strip_prefix(GENERATED) {
        Some(size) => {
            let (nodes, dim) = size.split_once('x').unwrap_or((size, "0"));
            let number = |v: &str, what: &str| {
                v.parse::<usize>()
                    .with_context(|| format!("{dataset}: {what} in `{GENERATED}N[xD]`"))
            };
            generate(&SyntheticConfig {
                events: 100_000,
                nodes: number(nodes, "nodes N")?,
                edge_feat_dim: number(dim, "feature width D")?,
                seed: 11,
                ..Default::default()
            })?
        }
        None if dataset == crate::fidelity::SNAPSHOT => crate::fidelity::materialise(dataset)?,
        None => {
            let config = resolve(ModelName::Tgn, None, &[format!("data.dataset={dataset:?}")])?;
            mspipe::train::run::data(&config)?.0
        }
    };
    let csv = dir.join(format!("{dataset}.csv"));
    format::write(&stream, Format::Csv, &csv)?;
    let dyglib = match stream.edge_features() {
        None => None,
        Some(_) => {
            let path = dir.join(format!("ml_{dataset}.csv"));
            format::write(&stream, Format::DyGLib, &path)?;
            Some((path, dir.join(format!("ml_{dataset}.npy"))))
        }
    };
    Ok(Exported { csv, dyglib })
}

/// Mean training events/s over the epochs and the test AP/AUC of the epoch with the best
/// validation AP (the earliest of equals), from per-epoch lines: what TGN, TGL and mspipe report,
/// applied to both systems alike.
pub fn summarize(epochs: &[Value]) -> Value {
    let n = epochs.len().max(1) as f64;
    let eps = epochs
        .iter()
        .filter_map(|e| e["train_events_per_sec"].as_f64())
        .sum::<f64>()
        / n;
    let val = |e: &Value| e["val_ap"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let best = epochs
        .iter()
        .reduce(|a, b| if val(b) > val(a) { b } else { a })
        .cloned()
        .unwrap_or_default();
    json!({
        "train_events_per_sec": eps,
        "test_ap": best["test_ap"],
        "test_auc": best["test_auc"],
        "best_epoch": best["epoch"],
        "test_ap_per_epoch": epochs.iter().map(|e| e["test_ap"].clone()).collect::<Vec<_>>(),
    })
}

/// mspipe on `data` (the exported files: the same events as the peer's, and its edge features)
/// with `embed`, seeded `seed`.
fn mspipe_run(data: &Exported, p: &Protocol, embed: &str, seed: usize) -> Result<Value> {
    let run = probed(|| {
        spawn(&Job::Train {
            model: ModelName::Tgn,
            overrides: overrides(data, p, embed, seed),
        })
    })?;
    let mut summary = summarize(run["history"].as_array().map_or(&[][..], |h| h));
    summary["hand_over"] = run["hand_over"].clone();
    Ok(summary)
}

/// mspipe's config keys for a run on `data` with `embed`, seeded `seed`.
fn overrides(data: &Exported, p: &Protocol, embed: &str, seed: usize) -> Vec<String> {
    let (path, format) = match &data.dyglib {
        Some((path, _)) => (path, "dyglib"),
        None => (&data.csv, "csv"),
    };
    vec![
        format!("data.dataset={:?}", path.display().to_string()),
        format!("data.format={format:?}"),
        format!("gnn.embed={embed:?}"),
        format!("train.epochs={}", p.epochs),
        format!("train.lr={}", p.lr),
        format!("train.batch_size={}", p.batch_size),
        format!("train.threads={}", p.threads),
        format!("train.seed={seed}"),
        "train.patience=0".into(),
        "train.node_classification=false".into(),
        // PyG's example trains on every training event: no nodes hidden for inductive metrics.
        "data.new_node_fraction=0".into(),
    ]
}

/// The mean shape of mspipe's (per-event) training batches on `data`: the roots it embeds
/// against the unique nodes PyG embeds (see `crate::shape`).
fn batch_shape(data: &Exported, p: &Protocol) -> Result<Value> {
    let config = resolve(ModelName::Tgn, None, &overrides(data, p, "per_event", 0))?;
    let (stream, split) = mspipe::train::run::data(&config)?;
    let mut session = Session::new(config, stream, split)?;
    let all = session.train_batches();
    Ok(BatchShape::measure(&mut session, 0..all)?.to_json())
}

fn pyg_run(python: &Path, data: &Exported, p: &Protocol, seed: usize) -> Result<Value> {
    let mut args = vec![
        ("--epochs", p.epochs.to_string()),
        ("--lr", p.lr.to_string()),
        ("--batch-size", p.batch_size.to_string()),
        ("--threads", p.threads.to_string()),
        ("--seed", seed.to_string()),
    ];
    if let Some((_, features)) = &data.dyglib {
        args.push(("--features", features.display().to_string()));
    }
    script_run(python, "pyg_tgn.py", &data.csv, &args)
}

/// Runs `benches/peer/<script>` on `data` with `args`; summarises its per-epoch lines.
pub fn script_run(
    python: &Path,
    script: &str,
    data: &Path,
    args: &[(&str, String)],
) -> Result<Value> {
    // Cargo sets the variable when it runs the bench; the compile-time value may be another
    // checkout's when the build cache is shared.
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let mut c = Command::new(python);
    c.arg(root.join("benches/peer").join(script))
        .arg("--data")
        .arg(data);
    for (flag, value) in args {
        c.args([flag, value.as_str()]);
    }
    let out = command(&mut c)?;
    let epochs: Result<Vec<Value>, _> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect();
    Ok(summarize(&epochs?))
}

/// One row per dataset: every run of both systems, medians, and the ratios the targets name.
/// Rows of `earlier` for datasets this run does not measure are kept, in place (a cheap stream
/// can be re-run with more rounds alone).
pub fn run(
    datasets: &[String],
    p: &Protocol,
    scratch: &Path,
    earlier: Vec<Value>,
) -> Result<Vec<Value>> {
    let python = venv_python()?;
    let mut rows = earlier;
    for dataset in datasets {
        let data = export_with_features(dataset, scratch)?;
        let shape = batch_shape(&data, p)?;
        let (mut ours, mut theirs, mut per_node) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=p.rounds {
            let seed = round - 1;
            ours.push(mspipe_run(&data, p, "per_event", seed)?);
            eprintln!("peer {dataset} round {round} mspipe: {}", ours[seed]);
            theirs.push(pyg_run(&python, &data, p, seed)?);
            eprintln!("peer {dataset} round {round} pyg: {}", theirs[seed]);
            per_node.push(mspipe_run(&data, p, "per_node", seed)?);
            eprintln!(
                "peer {dataset} round {round} mspipe per node: {}",
                per_node[seed]
            );
        }
        let m = |runs: &[Value]| {
            json!({
                "train_events_per_sec": median_of(runs, "train_events_per_sec"),
                "test_ap": median_of(runs, "test_ap"),
                "test_auc": median_of(runs, "test_auc"),
            })
        };
        let (a, b, c) = (m(&ours), m(&theirs), m(&per_node));
        let speed = |v: &Value| v["train_events_per_sec"].as_f64().unwrap_or(f64::NAN);
        let ap_points = 100.0
            * (a["test_ap"].as_f64().unwrap_or(f64::NAN)
                - b["test_ap"].as_f64().unwrap_or(f64::NAN));
        let row = json!({
            "dataset": dataset,
            "epochs": p.epochs, "lr": p.lr, "batch_size": p.batch_size, "threads": p.threads,
            "mspipe_runs": ours, "pyg_runs": theirs, "mspipe_per_node_runs": per_node,
            "speed_ratio": speed(&a) / speed(&b),
            "speed_ratio_per_node": speed(&c) / speed(&b),
            "mspipe": a, "pyg": b, "mspipe_per_node": c,
            "test_ap_difference_points": ap_points,
            "batch_shape": shape,
        });
        match rows.iter_mut().find(|r| r["dataset"] == dataset.as_str()) {
            Some(earlier) => *earlier = row,
            None => rows.push(row),
        }
    }
    Ok(rows)
}
