//! The suite's output: `results.json` (every figure), `report.md` (tables, targets met or missed
//! with the dominating stage named) and `chart.svg` (throughput ratios and test AP per dataset
//! and model).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::matrix::MODES;
use crate::placement::{FAR, Placement};

/// Everything the report shows. A run replaces the parts it measures and keeps the others from
/// the directory's previous `results.json`; `runs` records which run measured what.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    pub machine: Value,
    /// Per suite run: its parts, git revision and command line.
    pub runs: Vec<Value>,
    pub matrix: Vec<Value>,
    pub peer: Vec<Value>,
    pub scale: Vec<Value>,
    pub floor: Option<Value>,
    /// The staleness study (see [`crate::staleness`]).
    pub staleness: Vec<Value>,
    /// Test AP of every model and EdgeBank under the evaluation protocol (see
    /// [`crate::fidelity`]).
    pub fidelity: Vec<Value>,
    /// Several workers against one (see [`crate::workers`]).
    pub workers: Vec<Value>,
    /// mspipe's APAN against TGL's in PyTorch (see [`crate::reference`]).
    pub reference: Vec<Value>,
}

impl Results {
    /// The previous results in `dir`, if any.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("results.json");
        if !path.exists() {
            return Ok(Results::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }
}

const STAGES: [&str; 5] = ["sample", "feature", "memory", "compute", "update"];

/// The cores of the machine a results file was measured on (1 when it does not say).
fn cores(machine: &Value) -> usize {
    machine["cores"].as_u64().map_or(1, |c| c.max(1) as usize)
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The median of `xs` (NaN when empty).
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Mean and sample standard deviation.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The median of `key` over `runs` (runs without it left out).
pub fn median_of(runs: &[Value], key: &str) -> f64 {
    median(runs.iter().filter_map(|r| r[key].as_f64()).collect())
}

fn find<'a>(rows: &'a [Value], dataset: &Value, model: &Value, mode: &str) -> Option<&'a Value> {
    rows.iter()
        .find(|r| &r["dataset"] == dataset && &r["model"] == model && r["mode"] == mode)
}

/// The largest stage of a row and its share of the stages' busy time.
fn dominant(row: &Value) -> (String, f64) {
    let secs: Vec<f64> = STAGES.iter().map(|s| f(&row["stage_seconds"][s])).collect();
    let total: f64 = secs.iter().sum();
    let (i, max) = secs.iter().enumerate().fold(
        (0, 0.0),
        |best, (i, &s)| if s > best.1 { (i, s) } else { best },
    );
    (STAGES[i].to_string(), max / total)
}

/// MSPipe's ideal speed-up over the sequential order on `cores` cores, from the sequential
/// run's stage seconds: Στ / max(max τ, Στ / cores).
pub fn ideal_speedup(off: &Value, cores: f64) -> f64 {
    let secs: Vec<f64> = STAGES.iter().map(|s| f(&off["stage_seconds"][s])).collect();
    let total: f64 = secs.iter().sum();
    let max = secs.iter().copied().fold(0.0, f64::max);
    total / max.max(total / cores)
}

pub fn mark(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn gib(v: &Value) -> String {
    format!("{:.2}", f(v) / (1u64 << 30) as f64)
}

/// Writes the three files into `dir`.
pub fn write(dir: &Path, r: &Results) -> Result<()> {
    let write = mspipe::train::run::write_atomic;
    write(&dir.join("results.json"), &serde_json::to_string_pretty(r)?)?;
    write(&dir.join("report.md"), &markdown(r))?;
    if !r.staleness.is_empty() {
        staleness_chart(&dir.join("staleness.svg"), &r.staleness)?;
    }
    chart(&dir.join("chart.svg"), r)
}

fn markdown(r: &Results) -> String {
    let mut md = String::from("# mspipe benchmark report\n\n");
    let m = &r.machine;
    let _ = writeln!(
        md,
        "Machine of the latest run: {} ({} cores, {} GiB), Linux {}; training backend {}, {} kernels, {} threads.\n",
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        gib(&m["memory_bytes"]),
        m["kernel"].as_str().unwrap_or("?"),
        m["backend"].as_str().unwrap_or("?"),
        m["isa"].as_str().unwrap_or("?"),
        m["threads"],
    );
    let faults: Vec<f64> = (r.matrix.iter())
        .map(|row| f(&row["minor_faults_per_batch"]))
        .filter(|x| x.is_finite())
        .collect();
    if !faults.is_empty() {
        let max = faults.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            md,
            "Minor page faults per training batch in the matrix runs' last epoch: at most {max:.2}.\n"
        );
    }
    let busy: Vec<f64> = (r.matrix.iter())
        .filter_map(|row| row["pool_busy_share"].as_f64())
        .collect();
    if !busy.is_empty() {
        let (lo, hi) = busy
            .iter()
            .fold((1.0f64, 0.0f64), |(l, h), &b| (l.min(b), h.max(b)));
        let _ = writeln!(
            md,
            "The pool's other threads ran its work {:.0}–{:.0} % of the matrix runs' training time in their last epoch (the rest they wait for the training thread's single-threaded stretches and for the joins of split ops: a second thread speeds training up by less than that share).\n",
            100.0 * lo,
            100.0 * hi
        );
    }
    let _ = writeln!(
        md,
        "The cores' placement: around each timed mspipe run of the matrix, peer and workers parts (not the two runs side by side that set the workers' ideal), the suite probes what it costs the first two cores to hand a buffer to each other against each keeping its own (`benches/suite/placement.rs`); \"near\" when a hand-over costs under {FAR}× a private pass before and after the run, \"far\" when it costs more both times (the host has put the cores in two cache domains; every op split across them slows), \"changed\" when the probes disagree.\n"
    );
    for run in &r.runs {
        // A run measured on another CPU than the machine above says which.
        let elsewhere = match run["cpu"].as_str() {
            Some(cpu) if run["cpu"] != m["cpu"] => format!(", on {cpu}"),
            _ => String::new(),
        };
        let _ = writeln!(
            md,
            "- {}: git revision `{}`, `{}`{elsewhere}",
            run["parts"].as_array().map_or(String::new(), |p| {
                p.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            run["git_revision"].as_str().unwrap_or("?"),
            run["command"].as_str().unwrap_or("?"),
        );
    }
    md.push('\n');
    matrix_section(&mut md, r);
    peer_section(&mut md, r);
    floor_section(&mut md, r);
    scale_section(&mut md, r);
    crate::fidelity::section(&mut md, r);
    crate::reference::section(&mut md, r);
    staleness_section(&mut md, &r.staleness);
    crate::workers::section(&mut md, &r.workers, cores(&r.machine));
    md
}

/// The study's rows of one cell: K = 0, then (no mitigation, mitigation) per K > 0.
fn study_cells(rows: &[Value]) -> Vec<(String, Vec<&Value>)> {
    let mut cells: Vec<(String, Vec<&Value>)> = Vec::new();
    for row in rows {
        let name = format!(
            "{} / {}",
            row["model"].as_str().unwrap_or("?"),
            row["dataset"].as_str().unwrap_or("?")
        );
        match cells.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(row),
            None => cells.push((name, vec![row])),
        }
    }
    cells
}

fn staleness_section(md: &mut String, rows: &[Value]) {
    let Some(first) = rows.first() else { return };
    let _ = writeln!(
        md,
        "## Staleness and mitigation\n\nEach run reads node memory that misses exactly K updates (`pipeline.mode = fixed:K`), with mitigation (λ = 0.9, blending only with fresher memories) off and on; {} epochs, test AP (mean over evaluation batches) after the last epoch, mean ± sample std over the cell's seeds (0, 1, …; their count in the K = 0 row). Loss: points of AP below K = 0, ± the standard error of the per-seed differences (each seed against K = 0 with the same seed: the same initial weights and negatives, so the pairs cancel much of the seeds' spread); recovered: the share of that loss mitigation wins back. Chart: `staleness.svg`.\n",
        first["epochs"],
    );
    md.push_str("| model / dataset | K | AP, no mitigation | AP, mitigation | loss, points (no mit. / mit.) | recovered |
|---|---|---|---|---|---|
");
    let mut worst_small_k = f64::NEG_INFINITY;
    let mut recoveries = Vec::new();
    let mut noise = Vec::new();
    for (name, cell) in study_cells(rows) {
        let Some(base_row) = cell.iter().find(|r| r["k"] == 0) else {
            continue;
        };
        let base = f(&base_row["mean"]);
        // A loss counts when it exceeds 0.3 points and the seeds' own spread at K = 0.
        let floor = (100.0 * f(&base_row["std"])).max(0.3);
        let mut ks: Vec<u64> = cell.iter().filter_map(|r| r["k"].as_u64()).collect();
        ks.dedup();
        for k in ks {
            let pick = |m: bool| cell.iter().find(|r| r["k"] == k && r["mitigation"] == m);
            let cellf = |r: Option<&&Value>| {
                r.map_or("–".into(), |r| {
                    format!("{:.4} ± {:.4}", f(&r["mean"]), f(&r["std"]))
                })
            };
            let (off, on) = (pick(false), pick(true));
            if k == 0 {
                let std = off.map_or(f64::NAN, |r| 100.0 * f(&r["std"]));
                noise.push(format!("{name} {std:.2}"));
                let seeds = off.map_or(0, |r| r["test_ap"].as_array().map_or(0, Vec::len));
                let _ = writeln!(
                    md,
                    "| {name} | 0 | {} | – | seed std {std:.2} ({seeds} seeds) | – |",
                    cellf(off)
                );
                continue;
            }
            let loss = |r: Option<&&Value>| r.map_or(f64::NAN, |r| 100.0 * (base - f(&r["mean"])));
            let (l_off, l_on) = (loss(off), loss(on));
            let se = |r: Option<&&Value>| r.map_or(f64::NAN, |r| paired_se(base_row, r));
            let recovered = (l_off - l_on) / l_off;
            if k <= 2 {
                worst_small_k = worst_small_k.max(l_on);
            }
            let recovered = if l_off > floor {
                recoveries.push(recovered);
                format!("{:.0}%", 100.0 * recovered)
            } else {
                "–".into()
            };
            let _ = writeln!(
                md,
                "| {name} | {k} | {} | {} | {:+.2} ± {:.2} / {:+.2} ± {:.2} | {recovered} |",
                cellf(off),
                cellf(on),
                l_off,
                se(off),
                l_on,
                se(on),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nK ≤ 2 (with mitigation, as MSPipe runs) costs at most {:.2} points against K = 0 (target ≤ 0.3: {}). For scale, the spread over seeds at K = 0, in points: {}.",
        worst_small_k,
        mark(worst_small_k <= 0.3),
        noise.join(", "),
    );
    if recoveries.is_empty() {
        md.push_str("No K lost more than 0.3 points and the seed spread without mitigation: there was nothing for mitigation to recover.

");
    } else {
        let least = recoveries.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            md,
            "Where staleness cost more than 0.3 points and more than the cell's seed std at K = 0, mitigation recovered at least {:.0}% of the loss ({} cases; target ≥ 50%: {}).
",
            100.0 * least,
            recoveries.len(),
            mark(least >= 0.5),
        );
    }
}

/// The standard error, in points, of the per-seed AP differences between `base` (K = 0) and
/// `row`, seed by seed (NaN without two seeds in both).
fn paired_se(base: &Value, row: &Value) -> f64 {
    let aps = |r: &Value| -> Vec<f64> {
        r["test_ap"]
            .as_array()
            .map_or(Vec::new(), |v| v.iter().map(f).collect())
    };
    let (a, b) = (aps(base), aps(row));
    if a.len() != b.len() || a.len() < 2 {
        return f64::NAN;
    }
    let d: Vec<f64> = a.iter().zip(&b).map(|(x, y)| 100.0 * (x - y)).collect();
    mean_std(&d).1 / (d.len() as f64).sqrt()
}

/// Test AP against K, one panel per cell: a line without and one with mitigation.
fn staleness_chart(path: &Path, rows: &[Value]) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let cells = study_cells(rows);
    let root = SVGBackend::new(path, (420 * cells.len().max(1) as u32, 360)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (area, (name, cell)) in root
        .split_evenly((1, cells.len().max(1)))
        .iter()
        .zip(&cells)
    {
        staleness_panel(area, name, cell).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn staleness_panel(
    area: &Area<'_>,
    name: &str,
    cell: &[&Value],
) -> Result<(), Box<dyn std::error::Error>> {
    let k_max = cell
        .iter()
        .filter_map(|r| r["k"].as_u64())
        .max()
        .unwrap_or(1) as f64;
    let means: Vec<f64> = cell.iter().map(|r| f(&r["mean"])).collect();
    let lo = means.iter().copied().fold(f64::INFINITY, f64::min) - 0.01;
    let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.01;
    let mut c = ChartBuilder::on(area)
        .caption(name, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.2f64..k_max + 0.2, lo..hi)?;
    c.configure_mesh().x_desc("K").y_desc("test AP").draw()?;
    for (s, mitigation) in [false, true].into_iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let points: Vec<(f64, f64)> = cell
            .iter()
            .filter(|r| r["mitigation"] == mitigation || r["k"] == 0)
            .map(|r| (f(&r["k"]), f(&r["mean"])))
            .collect();
        let label = if mitigation {
            "mitigation"
        } else {
            "no mitigation"
        };
        c.draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
        c.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )?;
    }
    legend(&mut c, SeriesLabelPosition::LowerLeft)
}

fn matrix_section(md: &mut String, r: &Results) {
    if r.matrix.is_empty() {
        return;
    }
    let cores = f(&r.machine["cores"]);
    md.push_str("## Datasets × models, pipeline off vs mspipe\n\n");
    md.push_str("Training events/s over all epochs, test AP/AUC after the last epoch, peak RSS of the run's process; the modes alternated round by round, each mode's row its median run among those at the near placement of the cores (among all when none was). Ideal speed-up: Στ / max(max τ, Στ / cores) from the `off` run's stage seconds.\n\n");
    md.push_str("| dataset | model | off ev/s | mspipe ev/s | speed-up | ideal | % of ideal | off AP / AUC | mspipe AP / AUC | peak RSS GiB (off, mspipe) | largest stage (off) | runs by cores' placement (off; mspipe) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for off in r.matrix.iter().filter(|x| x["mode"] == MODES[0]) {
        let Some(on) = find(&r.matrix, &off["dataset"], &off["model"], MODES[1]) else {
            continue;
        };
        let speedup = f(&on["train_events_per_sec"]) / f(&off["train_events_per_sec"]);
        let ideal = ideal_speedup(off, cores);
        let (stage, share) = dominant(off);
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {:.3}× | {:.3}× | {:.1}% ({}) | {:.4} / {:.4} | {:.4} / {:.4} | {}, {} | {} {:.1}% | {}; {} |",
            off["dataset"].as_str().unwrap_or("?"),
            off["model"].as_str().unwrap_or("?"),
            f(&off["train_events_per_sec"]),
            f(&on["train_events_per_sec"]),
            speedup,
            ideal,
            100.0 * speedup / ideal,
            mark(speedup / ideal >= 0.9),
            f(&off["test_ap"]),
            f(&off["test_auc"]),
            f(&on["test_ap"]),
            f(&on["test_auc"]),
            gib(&off["peak_rss_bytes"]),
            gib(&on["peak_rss_bytes"]),
            stage,
            100.0 * share,
            rounds(off),
            rounds(on),
        );
    }
    md.push_str("\nTarget: pipelined ≥ 90% of its ideal (column \"% of ideal\").\n\n");
}

/// How a matrix row's rounds ran by the cores' placement (the row's own run for a row measured
/// in one round).
fn rounds(row: &Value) -> String {
    match row["rounds"].as_array() {
        Some(runs) => placements(runs),
        None => placements([row]),
    }
}

fn peer_section(md: &mut String, r: &Results) {
    if r.peer.is_empty() {
        return;
    }
    let p = &r.peer[0];
    let rounds = |row: &Value| row["mspipe_runs"].as_array().map_or(0, Vec::len);
    let _ = writeln!(
        md,
        "## TGN: mspipe vs PyTorch Geometric\n\nSame events (no nodes hidden from training), chronological split, one random negative per positive, batch {}, dims 100, Adam lr {}, {} threads, {} epochs; runs alternated A B A B ({} rounds where the dataset names no other count, round r seeding both systems with r − 1); medians. Events/s is the mean over epochs of the training loop; test AP at each run's best validation epoch. Per node: mspipe with `gnn.embed = \"per_node\"` (each node embedded once per batch, at the batch's first event time: PyG's model), run in the same rounds.\n",
        p["batch_size"],
        p["lr"],
        p["threads"],
        p["epochs"],
        rounds(p),
    );
    md.push_str("| dataset | mspipe ev/s | PyG ev/s | speed ratio (target ≥ 2× on the shipped streams) | mspipe test AP | PyG test AP | AP difference, points (target ≥ −0.5) | per node: ev/s, ratio (target ≥ 2× on the generated streams), test AP | roots / unique nodes per batch | largest stage (mspipe, matrix run) | mspipe rounds by cores' placement |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &r.peer {
        let name = row["dataset"].as_str().unwrap_or("?");
        let label = match rounds(row) == rounds(p) {
            true => name.to_string(),
            false => format!("{name} ({} rounds)", rounds(row)),
        };
        // The per-event speed target is the shipped streams'; the per-node one the generated
        // streams'; the snapshot stream is there for its accuracy.
        let generated = name.starts_with(crate::peer::GENERATED);
        let shipped = !generated && name != crate::fidelity::SNAPSHOT;
        let judge = |ratio: f64, target: bool| {
            if target {
                mark(ratio >= 2.0)
            } else {
                "no target"
            }
        };
        let ratio = f(&row["speed_ratio"]);
        let diff = f(&row["test_ap_difference_points"]);
        let tgn = Value::from("tgn");
        let stage = find(&r.matrix, &row["dataset"], &tgn, MODES[0])
            .map(dominant)
            .map_or("–".to_string(), |(s, share)| {
                format!("{s} {:.1}%", 100.0 * share)
            });
        let per_node = &row["mspipe_per_node"];
        let node_ratio = f(&row["speed_ratio_per_node"]);
        let per_node = if per_node.is_null() {
            "–".to_string()
        } else {
            format!(
                "{:.0}, {:.2}× ({}), {:.4}",
                f(&per_node["train_events_per_sec"]),
                node_ratio,
                judge(node_ratio, generated),
                f(&per_node["test_ap"]),
            )
        };
        let shape = &row["batch_shape"];
        let shape = match shape.is_null() {
            true => "–".to_string(),
            false => format!(
                "{:.0} / {:.0}",
                f(&shape["roots_per_batch"]),
                f(&shape["unique_nodes_per_batch"])
            ),
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.2}× ({}) | {:.4} | {:.4} | {:+.2} ({}) | {} | {} | {} | {} |",
            label,
            f(&row["mspipe"]["train_events_per_sec"]),
            f(&row["pyg"]["train_events_per_sec"]),
            ratio,
            judge(ratio, shipped),
            f(&row["mspipe"]["test_ap"]),
            f(&row["pyg"]["test_ap"]),
            diff,
            mark(diff >= -0.5),
            per_node,
            shape,
            stage,
            placements(row["mspipe_runs"].as_array().into_iter().flatten()),
        );
    }
    md.push_str("\nWork per batch: mspipe's default embeds every root (an event's source, destination and negative, each at the event's time; roots sharing node, time and sample once), PyG's TGN each unique node once (column \"roots / unique nodes\"): the attention over sampled neighbours, the merge layer and the encodings of the neighbours' Δt run per root in mspipe and per unique node in PyG. The per-node column is mspipe doing PyG's work.\n");
    md.push('\n');
}

/// How many of `runs` ran in each placement of the cores ("–" when none was probed).
pub fn placements<'a>(runs: impl IntoIterator<Item = &'a Value>) -> String {
    let probed: Vec<Option<Placement>> = runs
        .into_iter()
        .map(|r| Placement::of(&r["hand_over"]))
        .collect();
    let counts: Vec<String> = [Placement::Near, Placement::Far, Placement::Changed]
        .into_iter()
        .map(|p| (p, probed.iter().filter(|&&r| r == Some(p)).count()))
        .filter(|&(_, n)| n > 0)
        .map(|(p, n)| format!("{n} {}", p.name()))
        .collect();
    match counts.is_empty() {
        true => "–".to_string(),
        false => counts.join(", "),
    }
}

/// The floor's measured step: the median over its sequential runs (at the near placement when
/// one was), then each run's step and placement.
fn measured_step(m: &Value) -> String {
    let runs = m["runs"].as_array().map_or(&[][..], |r| r);
    let each: Vec<String> = runs
        .iter()
        .map(|r| {
            let label = Placement::label(&r["hand_over"]);
            format!("{:.1} ms ({label})", 1e3 * f(&r["seconds_per_step"]))
        })
        .collect();
    let of = match m["median_of"].as_str() {
        Some("near") => format!("the {} runs at the near placement", m["median_count"]),
        _ => "all runs".to_string(),
    };
    let busy = match m["pool_busy_share"].as_f64() {
        Some(b) => format!(
            "; in that run the pool's second thread ran its work {:.0} % of the training time",
            100.0 * b
        ),
        None => String::new(),
    };
    format!(
        "{:.1} ms (compute stage {:.1} ms), the median over {of} of {} sequential runs of the matrix's kind (each: {}){busy}",
        1e3 * f(&m["seconds_per_step"]),
        1e3 * f(&m["compute_seconds_per_step"]),
        runs.len(),
        each.join(", "),
    )
}

/// Where the floor section's step goes beyond the products: the timed non-product operations and
/// what is left, against the time the 1.5× target allows. A timed operation may do some of the
/// floor's work itself (the gathered attention: its scores and weighted sums); that share is
/// counted once, in the operation.
fn other_work(md: &mut String, fl: &Value) {
    let others = fl["others"].as_array().map_or(&[][..], |o| o);
    if others.is_empty() {
        return;
    }
    let floor = f(&fl["floor_seconds_per_step"]);
    let step = f(&fl["measured"]["seconds_per_step"]);
    let share = |o: &Value| o["floor_seconds_per_step"].as_f64().unwrap_or(0.0);
    let timed: f64 = others.iter().map(|o| f(&o["seconds_per_step"])).sum();
    let inside: f64 = others.iter().map(share).sum();
    let parts: Vec<String> = others
        .iter()
        .map(|o| {
            let within = match share(o) > 0.0 {
                true => format!(" (the floor's share of it {:.1} ms)", 1e3 * share(o)),
                false => String::new(),
            };
            format!(
                "{} {:.1} ms{within}",
                o["name"].as_str().unwrap_or("?"),
                1e3 * f(&o["seconds_per_step"]),
            )
        })
        .collect();
    let accounted = floor - inside + timed;
    let _ = writeln!(
        md,
        "Beside the products, the step's two largest other operations, timed the same way (forward and backward on the batches' shapes, random values and rows): {}. The products the model runs as products ({:.1} ms) and these: {:.1} ms; the rest of the step, {:.1} ms ({:.0} %), is not timed separately (the memory updater's and merge layer's element-wise work, gathers and copies, the loss, the optimizer, the pool's waits). The target allows {:.1} ms a step, {:.1} ms beyond the floor, where the two timed operations take {:.1} ms beyond their share of it.\n",
        parts.join(", "),
        1e3 * (floor - inside),
        1e3 * accounted,
        1e3 * (step - accounted),
        100.0 * (step - accounted) / step,
        1e3 * 1.5 * floor,
        1e3 * 0.5 * floor,
        1e3 * (timed - inside),
    );
    if let Some(busy) = fl["measured"]["pool_busy_share"].as_f64() {
        // The training thread is busy nearly all the step: the work is about (1 + busy)·step
        // thread-seconds, which two threads never idle would finish in half that.
        let busy_both = 0.5 * (1.0 + busy) * step;
        let _ = writeln!(
            md,
            "Had the second thread been busy all of the step with the same work, the step would take about {:.1} ms, {:.2}× the floor: the miss is the work beside the products more than the second thread's waiting.\n",
            1e3 * busy_both,
            busy_both / floor,
        );
    }
}

fn floor_section(md: &mut String, r: &Results) {
    let Some(fl) = &r.floor else { return };
    let ratio = f(&fl["measured_over_floor"]);
    let _ = writeln!(
        md,
        "## FLOP floor (TGN, {})\n\nA training step's matrix products (forward; backward: the weight's gradient, and the input's for the inputs that are learned — not the memory updater's stored mails or the memory it reads) with the shapes of the real batches (per batch on average: {:.0} roots, {:.0} unique nodes, {:.0} of {:.0} neighbour slots valid, {:.0} distinct Δt), each timed on the training backend (a linear layer's product with its bias through mspipe's linear operation, as the model runs it; the attention's products, which the model runs per head through mspipe's batched product, as one such product of the same work; its scores and weighted sums, which the model computes inside its attention over the gathered slot rows, as a product of the same work too): {:.2} GFLOP per step at {:.1} GFLOP/s → floor {:.1} ms per step. Measured sequential step: {} → **{:.2}× the floor** (target ≤ 1.5×: {}).\n",
        fl["dataset"].as_str().unwrap_or("?"),
        f(&fl["roots_per_batch"]),
        f(&fl["unique_nodes_per_batch"]),
        f(&fl["valid_slots_per_batch"]),
        f(&fl["slots_per_batch"]),
        f(&fl["distinct_dt_per_batch"]),
        f(&fl["gflop_per_step"]),
        f(&fl["gemm_gflops_per_sec"]),
        1e3 * f(&fl["floor_seconds_per_step"]),
        measured_step(&fl["measured"]),
        ratio,
        mark(ratio <= 1.5),
    );
    other_work(md, fl);
    let terms = fl["terms"].as_array().map_or(&[][..], |t| t);
    if terms
        .iter()
        .all(|t| t["reference_gflops_per_sec"].is_null())
    {
        md.push_str("Reference BLAS not measured: torch's venv is made by `--parts peer`; run the floor part after it.\n\n");
    }
    md.push_str("| product | m × k × n | forward GFLOP | GFLOP/s | torch `mm` GFLOP/s | mspipe / torch (target ≥ 90%) |\n|---|---|---|---|---|---|\n");
    for t in terms {
        let (ours, theirs) = (f(&t["gflops_per_sec"]), f(&t["reference_gflops_per_sec"]));
        let share = ours / theirs;
        let _ = writeln!(
            md,
            "| {} | {} × {} × {} | {:.3} | {:.1} | {:.1} | {} |",
            t["name"].as_str().unwrap_or("?"),
            t["m"],
            t["k"],
            t["n"],
            f(&t["forward_gflop"]),
            ours,
            theirs,
            if share.is_nan() {
                "–".to_string()
            } else {
                format!("{:.0}% ({})", 100.0 * share, mark(share >= 0.9))
            },
        );
    }
    md.push('\n');
}

fn scale_section(md: &mut String, r: &Results) {
    if r.scale.is_empty() {
        return;
    }
    md.push_str("## Scale: synthetic streams over 1M nodes, TGN\n\nEach size in its own process: generation, set-up (split, T-CSR graphs, memory, samplers), then training on the epoch's last `trained` events (the whole epoch when it is smaller; the end of an epoch is its most expensive stretch: the longest neighbour lists) with every structure at full size; \"projected epoch\" scales the window's time to the whole epoch. Peak RSS is the process's high-water mark.\n\n");
    md.push_str("| events | edge features | epoch events | trained | ev/s | generate s | set-up s | set-up µs/event | projected epoch s | peak RSS GiB | valid slots / unique nodes / distinct Δt per batch | GEMM GFLOP/s | largest stage |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.scale {
        let (stage, share) = dominant(s);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.2} | {:.0} | {} | {:.0} / {:.0} / {:.0} | {:.1} | {} {:.1}% |",
            s["events"],
            s["edge_feat_dim"],
            s["epoch_events"],
            s["trained_events"],
            f(&s["train_events_per_sec"]),
            f(&s["generate_seconds"]),
            f(&s["setup_seconds"]),
            1e6 * f(&s["setup_seconds"]) / f(&s["events"]),
            f(&s["projected_epoch_seconds"]),
            gib(&s["peak_rss_bytes"]),
            f(&s["valid_slots_per_batch"]),
            f(&s["unique_nodes_per_batch"]),
            f(&s["distinct_dt_per_batch"]),
            gemm_rate(s),
            stage,
            100.0 * share,
        );
    }
    let plain: Vec<&Value> = r.scale.iter().filter(|s| s["edge_feat_dim"] == 0).collect();
    if let (Some(a), Some(b)) = (plain.first(), plain.last())
        && a["events"] != b["events"]
    {
        let ratio = f(&a["train_events_per_sec"]) / f(&b["train_events_per_sec"]);
        let work = gemm_rate(a) / gemm_rate(b);
        let fits = f(&b["peak_rss_bytes"]) < 24.0 * (1u64 << 30) as f64;
        let _ = writeln!(
            md,
            "\nLinearity: events/s at {} ÷ at {} = {:.3} (target within 20%: {}); the same ratio of GEMM work done per second (the step's matrix products at each size's measured batch sizes: denser streams fill more neighbour slots, so an event costs more) = {:.3}. Peak RSS at {} events {} GiB (target < 24 GiB: {}).",
            a["events"],
            b["events"],
            ratio,
            mark((ratio - 1.0).abs() <= 0.2),
            work,
            b["events"],
            gib(&b["peak_rss_bytes"]),
            mark(fits),
        );
    }
    md.push('\n');
}

/// GFLOP/s of matrix-product work a scale row sustained (see [`crate::floor::step_gflop`]).
fn gemm_rate(row: &Value) -> f64 {
    let edge = row["edge_feat_dim"].as_u64().unwrap_or(0) as usize;
    let gflop = crate::floor::step_gflop(row, BATCH, edge).unwrap_or(f64::NAN);
    gflop * f(&row["train_events_per_sec"]) / BATCH as f64
}

/// Batch size of the scale runs (the TGN preset's).
const BATCH: usize = 600;

/// Two panels: throughput ratios (mspipe ÷ off; TGN ÷ PyG) and test AP per dataset and model
/// (the matrix's off and mspipe runs; for TGN also both systems under the peer protocol).
fn chart(path: &Path, r: &Results) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    let groups: Vec<&Value> = r.matrix.iter().filter(|x| x["mode"] == MODES[0]).collect();
    let labels: Vec<String> = groups
        .iter()
        .map(|g| {
            format!(
                "{}/{}",
                g["dataset"].as_str().unwrap_or("?"),
                g["model"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let peer = |g: &Value| {
        (g["model"] == "tgn")
            .then(|| r.peer.iter().find(|p| p["dataset"] == g["dataset"]))
            .flatten()
    };
    let mut ratios: Vec<[f64; 2]> = Vec::new();
    let mut aps: Vec<[f64; 4]> = Vec::new();
    for g in &groups {
        let on = find(&r.matrix, &g["dataset"], &g["model"], MODES[1]);
        let on_eps = on.map_or(f64::NAN, |o| f(&o["train_events_per_sec"]));
        let p = peer(g);
        ratios.push([
            on_eps / f(&g["train_events_per_sec"]),
            p.map_or(f64::NAN, |p| f(&p["speed_ratio"])),
        ]);
        aps.push([
            f(&g["test_ap"]),
            on.map_or(f64::NAN, |o| f(&o["test_ap"])),
            p.map_or(f64::NAN, |p| f(&p["mspipe"]["test_ap"])),
            p.map_or(f64::NAN, |p| f(&p["pyg"]["test_ap"])),
        ]);
    }
    let width = (160 + 130 * groups.len().max(1)) as u32;
    let root = SVGBackend::new(path, (width, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(360);
    let ratio_max = ratios
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(2.2, f64::max);
    bars(
        &top,
        "training throughput ratio",
        &labels,
        &ratios.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
        &["mspipe ÷ off", "mspipe TGN ÷ PyG TGN"],
        ratio_max * 1.1,
        Some(1.0),
    )
    .map_err(|e| err(&e))?;
    bars(
        &bottom,
        "test AP",
        &labels,
        &aps.iter().map(|a| a.to_vec()).collect::<Vec<_>>(),
        &[
            "off (matrix epochs)",
            "mspipe (matrix epochs)",
            "mspipe TGN (peer protocol)",
            "PyG TGN (peer protocol)",
        ],
        1.3,
        None,
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The series' legend at `position`, on a translucent white box.
fn legend<'a, 'b: 'a>(
    c: &mut Chart<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), Box<dyn std::error::Error>> {
    c.configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Grouped bars: one group per label, one bar per series (NaN: no bar); `line` draws a
/// horizontal reference.
fn bars(
    area: &Area<'_>,
    title: &str,
    labels: &[String],
    values: &[Vec<f64>],
    series: &[&str],
    y_max: f64,
    line: Option<f64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let n = labels.len().max(1);
    let mut c = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_max)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&label)
        .draw()?;
    let w = 0.8 / series.len() as f64;
    for (s, name) in series.iter().enumerate() {
        let color = Palette99::pick(s).to_rgba();
        let rects = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v[s].is_finite())
            .map(move |(i, v)| {
                let x0 = i as f64 - 0.4 + s as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.9, v[s])], color.filled())
            });
        c.draw_series(rects)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    if let Some(y) = line {
        c.draw_series(LineSeries::new(
            [(-0.5, y), (n as f64 - 0.5, y)],
            BLACK.stroke_width(1),
        ))?;
    }
    legend(&mut c, SeriesLabelPosition::UpperRight)
}
