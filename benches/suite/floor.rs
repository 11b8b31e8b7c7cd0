//! The FLOP floor of a TGN training step: the floating-point work of one batch's matrix products
//! (forward, and twice that for backward), each timed as a GEMM of the same shape on the training
//! backend, summed. Shapes come from real batches: roots `R` and unique nodes `U` of the
//! dataset's training batches as the sampler produces them. Element-wise work (time encoding,
//! activations, softmax) is left out, so the floor is a lower bound on a step.
//!
//! Each shape is also timed on a reference BLAS — torch's `mm` (MKL or oneDNN in the PyPI
//! wheels) in the peer's venv, same threads — when that venv exists (`--parts peer` makes it);
//! the report says when it does not.

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::Distribution;
use mspipe::model::TimeEncodingConfig;
use mspipe::model::kernels::GatheredAttention;
use mspipe::train::config::{Config, ModelName, resolve};
use mspipe::train::session::{Session, base_device};

use crate::child::{Job, measured_run, run_row, spawn};
use crate::placement::{median_near, probed};
use crate::report::f;
use crate::shape::{BatchShape, merge};
use serde_json::{Value, json};

/// One matrix product of the forward pass: `[m, k] × [k, n]`.
struct Gemm {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// A linear layer's product, which the model runs as `mspipe_kernels::linear` (the product
    /// and the bias); the others are plain products.
    layer: bool,
    /// The input columns whose gradient the backward forms: all `k` but for the memory updater,
    /// whose stored mails are data beside their learned time encodings
    /// (`mspipe_kernels::linear_of_columns`).
    input_grad: usize,
    /// Work the model does inside the attention over the gathered slot rows (one of the timed
    /// other operations) rather than as a product: that operation's share of the floor.
    in_gathered: bool,
}

impl Gemm {
    /// The forward product's floating-point operations.
    fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }

    /// Forward and backward (the weight's gradient, and the input's for its `input_grad`
    /// columns), in units of the forward product.
    fn passes(&self) -> f64 {
        2.0 + self.input_grad as f64 / self.k.max(1) as f64
    }
}

/// TGN's forward products for a batch of `shape` (see `mspipe-model`: GRU updater on every unique
/// node; one attention layer over `k` neighbours with its projections folded out of the slots —
/// the query through W_k and W_v on the weighted row sums, per head — and the slots' rows read in
/// place; the link predictor on the positive and negative pairs).
fn tgn_gemms(shape: &BatchShape, pairs: usize, c: &Config, edge: usize) -> Vec<Gemm> {
    let (r, u) = (
        shape.roots.round() as usize,
        shape.unique_nodes.round() as usize,
    );
    let (d, t, out, k, heads) = (
        c.memory.dim,
        c.memory.time_dim,
        c.gnn.dim,
        c.sampling.neighbors,
        c.gnn.heads,
    );
    // A root's query and its fold through W_k run once per memory row when the batch's table
    // has fewer rows than there are roots (`TemporalAttention::forward`).
    let query_rows = u.min(r);
    let updater_in = 2 * d + edge + t;
    // A slot's row: node memory ‖ edge features ‖ φ(Δt).
    let row = d + edge + t;
    vec![
        Gemm {
            name: "GRU input",
            m: u,
            k: updater_in,
            n: 3 * d,
            layer: true,
            // The mails are data; their time encodings are learned.
            input_grad: t,
            in_gathered: false,
        },
        Gemm {
            name: "GRU hidden",
            m: u,
            k: d,
            n: 3 * d,
            layer: true,
            // The memory read is data (stored detached).
            input_grad: 0,
            in_gathered: false,
        },
        Gemm {
            name: "attention query",
            m: query_rows,
            k: d,
            n: out,
            layer: false,
            input_grad: d,
            in_gathered: false,
        },
        // Per head [R, dh] × [dh, row], batched over the heads: r·out·row multiply-adds.
        Gemm {
            name: "attention query through W_k",
            m: query_rows,
            k: out,
            n: row,
            layer: false,
            input_grad: out,
            in_gathered: false,
        },
        // Scores and the weighted row sums: r·k·heads·row multiply-adds each.
        Gemm {
            name: "attention scores + sums",
            m: r * k,
            k: row,
            n: 2 * heads,
            layer: false,
            input_grad: row,
            in_gathered: true,
        },
        // Per head [R, row] × [row, dh], batched over the heads.
        Gemm {
            name: "attention sums through W_v",
            m: r,
            k: row,
            n: out,
            layer: false,
            input_grad: row,
            in_gathered: false,
        },
        Gemm {
            name: "merge hidden",
            m: r,
            k: out + d,
            n: out,
            layer: true,
            input_grad: out + d,
            in_gathered: false,
        },
        Gemm {
            name: "merge out",
            m: r,
            k: out,
            n: out,
            layer: true,
            input_grad: out,
            in_gathered: false,
        },
        Gemm {
            name: "link src + dst",
            m: 4 * pairs,
            k: out,
            n: out,
            layer: true,
            input_grad: out,
            in_gathered: false,
        },
        Gemm {
            name: "link out",
            m: 2 * pairs,
            k: out,
            n: 1,
            layer: true,
            input_grad: out,
            in_gathered: false,
        },
    ]
}

/// Calls timed per shape (after one untimed call); the median is kept.
const CALLS: usize = 21;

/// Median seconds of `[m, k] × [k, n]` on `device` as the model runs it, over [`CALLS`] calls
/// after a warm-up call, timed on one of rayon's workers with the others awake, as training runs
/// (see `mspipe_train::pool`).
fn time_gemm(g: &Gemm, device: &Device) -> f64 {
    time_on_pool(|| time_gemm_here(g, device))
}

fn time_gemm_here(g: &Gemm, device: &Device) -> f64 {
    let a = Tensor::<2>::random([g.m, g.k], Distribution::Default, device);
    let b = Tensor::<2>::random([g.k, g.n], Distribution::Default, device);
    let bias = Tensor::<1>::random([g.n], Distribution::Default, device);
    median_seconds(device, || match g.layer {
        true => mspipe::model::kernels::linear(a.clone(), b.clone(), bias.clone()),
        false => {
            mspipe::model::kernels::batched_matmul(a.clone().unsqueeze(), b.clone().unsqueeze())
                .squeeze_dim(0)
        }
    })
}

/// Median seconds of `call` on `device` (until the device is done, its result still alive), over
/// [`CALLS`] calls after a warm-up call.
fn median_seconds<T>(device: &Device, mut call: impl FnMut() -> T) -> f64 {
    let mut times: Vec<f64> = (0..=CALLS)
        .map(|_| {
            let start = Instant::now();
            let out = call();
            device.sync().expect("sync");
            drop(out);
            start.elapsed().as_secs_f64()
        })
        .skip(1)
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// An operation of the step beside its products, timed.
struct Other {
    name: &'static str,
    seconds: f64,
    /// Whether it does the work of the products marked [`Gemm::in_gathered`].
    gathered: bool,
}

/// The step's two largest operations besides its products, forward and backward on the batch's
/// shapes as the model runs them (random values; slots drawn real at the batch's valid share):
/// the attention over the slots' gathered rows and the time encoding of the distinct Δt. Seconds
/// per step of each, timed as [`time_gemm`] is.
fn time_others(shape: &BatchShape, c: &Config, edge: usize, device: &Device) -> [Other; 2] {
    let device = device.clone().autodiff();
    let round = |x: f64| (x.round() as usize).max(1);
    let (r, u, dts) = (
        round(shape.roots),
        round(shape.unique_nodes),
        round(shape.distinct_dt),
    );
    let (d, t, k, heads) = (
        c.memory.dim,
        c.memory.time_dim,
        c.sampling.neighbors,
        c.gnn.heads,
    );
    let normal = Distribution::Normal(0.0, 1.0);
    let rows = |n: usize, to: usize| {
        Tensor::<1, Int>::random([n], Distribution::Uniform(0.0, to as f64), &device)
    };
    let (ia, ib) = (rows(r * k, u), rows(r * k, dts));
    let q = Tensor::<3>::random([heads, r, d + edge + t], normal, &device);
    let (a, b) = (
        Tensor::<2>::random([u, d], normal, &device),
        Tensor::<2>::random([dts, t], normal, &device),
    );
    let e = (edge > 0).then(|| Tensor::<2>::random([r * k, edge], normal, &device));
    let valid = (shape.valid_slots / shape.slots.max(1.0)).clamp(0.0, 1.0);
    let keep = Tensor::<2>::random([r, k], Distribution::Bernoulli(valid), &device);
    let scale = Tensor::<3>::ones([heads, r, k], &device);
    let attention = time_on_pool(|| {
        median_seconds(&device, || {
            let out = mspipe::model::kernels::gathered_attention(GatheredAttention {
                q: q.clone().require_grad(),
                a: a.clone().require_grad(),
                ia: ia.clone(),
                e: e.clone(),
                b: b.clone().require_grad(),
                ib: ib.clone(),
                keep: keep.clone(),
                scale: scale.clone(),
            });
            out.sum().backward()
        })
    });
    let time = TimeEncodingConfig::new(t).init(&device);
    let dt = Tensor::<1>::random([dts], Distribution::Uniform(0.0, 1e6), &device);
    let encoding = time_on_pool(|| {
        median_seconds(&device, || {
            let phi: Tensor<2> = time.forward(dt.clone());
            phi.sum().backward()
        })
    });
    [
        Other {
            name: "attention over the gathered slot rows",
            seconds: attention,
            gathered: true,
        },
        Other {
            name: "time encoding of the distinct Δt",
            seconds: encoding,
            gathered: false,
        },
    ]
}

/// `f` on one of rayon's workers with the others awake, as training runs (see
/// `mspipe_train::pool`).
fn time_on_pool(f: impl FnOnce() -> f64 + Send) -> f64 {
    mspipe::train::pool::train_on_pool(f)
}

/// GFLOP/s of torch's `mm` on each of `gemms`' shapes with this machine's threads (median of
/// [`CALLS`] after a pass over every shape and a warm-up call), in the peer's venv; `None` when
/// that venv has not been made.
fn reference_gflops(gemms: &[Gemm]) -> Result<Option<Vec<f64>>> {
    let Some(python) = crate::peer::existing_venv_python() else {
        return Ok(None);
    };
    let shapes: Vec<[usize; 3]> = gemms.iter().map(|g| [g.m, g.k, g.n]).collect();
    let threads = rayon::current_num_threads();
    let script = format!(
        "import json, time, torch\n\
         torch.set_num_threads({threads})\n\
         out = []\n\
         for m, k, n in {shapes:?}:\n\
         \x20   torch.mm(torch.rand(m, k), torch.rand(k, n))\n\
         for m, k, n in {shapes:?}:\n\
         \x20   a, b = torch.rand(m, k), torch.rand(k, n)\n\
         \x20   torch.mm(a, b)\n\
         \x20   ts = []\n\
         \x20   for _ in range({CALLS}):\n\
         \x20       t = time.perf_counter(); torch.mm(a, b); ts.append(time.perf_counter() - t)\n\
         \x20   out.append(2 * m * k * n / sorted(ts)[{CALLS} // 2] / 1e9)\n\
         print(json.dumps(out))\n"
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "torch reference GEMMs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some(serde_json::from_slice(&out.stdout)?))
}

/// GFLOP of the matrix products of a TGN training step (forward + backward) with the preset's
/// dimensions, for batches of `pairs` events with the sizes of `shape` (a
/// [`BatchShape::to_json`] object) and `edge` edge features: the work a step must do, to set
/// throughputs of differently dense streams side by side.
pub fn step_gflop(shape: &Value, pairs: usize, edge: usize) -> Result<f64> {
    let config = resolve(ModelName::Tgn, None, &[])?;
    let gemms = tgn_gemms(&BatchShape::from_json(shape), pairs, &config, edge);
    Ok(gemms.iter().map(|g| g.passes() * g.flops()).sum::<f64>() / 1e9)
}

/// `count` sequential (`off`) TGN runs of `epochs` epochs on `dataset`, as the matrix runs them,
/// each probed for the cores' placement: rows with the last epoch's train and compute-stage
/// seconds. One run's step moves with the host's placement of the cores (`crate::placement`)
/// more than the changes the floor is there to show.
pub fn step_runs(dataset: &str, epochs: usize, count: usize) -> Result<Vec<Value>> {
    (0..count)
        .map(|_| {
            let mut overrides = measured_run(dataset, epochs, 0);
            overrides.push("pipeline.mode=\"off\"".into());
            let model = ModelName::Tgn;
            let run = probed(|| spawn(&Job::Train { model, overrides }))?;
            Ok(run_row(json!({}), &run))
        })
        .collect()
}

/// Each of `runs`' (see [`step_runs`]) seconds per step of `batches`, and the median over the
/// runs at the near placement (over all when none was).
fn measured_steps(runs: &[Value], batches: usize) -> Value {
    let per_step = |r: &Value, key: &str| r[key].as_f64().unwrap_or(f64::NAN) / batches as f64;
    let steps: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "seconds_per_step": per_step(r, "train_seconds"),
                "compute_seconds_per_step": per_step(&r["stage_seconds"], "compute"),
                "pool_busy_share": r["pool_busy_share"],
                "hand_over": r["hand_over"],
            })
        })
        .collect();
    let median = median_near(&steps, |s| f(&s["seconds_per_step"]));
    let pick = |key: &str| median.as_ref().map_or(Value::Null, |m| m.row[key].clone());
    let (of, count) = median.as_ref().map_or(("all", 0), |m| (m.of(), m.count));
    let mut out = json!({
        "median_of": of,
        "median_count": count,
        "seconds_per_step": pick("seconds_per_step"),
        "compute_seconds_per_step": pick("compute_seconds_per_step"),
        "pool_busy_share": pick("pool_busy_share"),
    });
    out["runs"] = json!(steps);
    out
}

/// The floor for `dataset`, against the sequential step measured by `runs` ([`step_runs`]).
pub fn run(dataset: &str, runs: &[Value]) -> Result<Value> {
    let config = resolve(ModelName::Tgn, None, &[format!("data.dataset={dataset:?}")])?;
    let (stream, split) = mspipe::train::run::data(&config)?;
    let mut session = Session::new(config, stream, split)?;
    let all = session.train_batches();
    let shape = BatchShape::measure(&mut session, 0..all)?;
    let edge = session.stream.edge_features().map_or(0, |f| f.dim());
    let gemms = tgn_gemms(
        &shape,
        session.config.train.batch_size,
        &session.config,
        edge,
    );
    let batches = shape.batches;
    let reference = reference_gflops(&gemms)?;
    let device = base_device();
    // One untimed pass over every shape first: without it the first shapes timed ran at one
    // thread's rate (the pool's second thread still waking) and the same shape later at two's.
    for g in &gemms {
        time_gemm(g, &device);
    }
    let mut terms = Vec::new();
    let (mut flops, mut seconds, mut in_gathered) = (0.0, 0.0, 0.0);
    for (i, g) in gemms.iter().enumerate() {
        let s = time_gemm(g, &device);
        flops += g.passes() * g.flops();
        seconds += g.passes() * s;
        if g.in_gathered {
            in_gathered += g.passes() * s;
        }
        terms.push(json!({
            "name": g.name, "m": g.m, "k": g.k, "n": g.n,
            "forward_gflop": g.flops() / 1e9, "gflops_per_sec": g.flops() / s / 1e9,
            "reference_gflops_per_sec": reference.as_ref().map(|r| r[i]),
        }));
    }
    let others: Vec<Value> = time_others(&shape, &session.config, edge, &device)
        .into_iter()
        .map(|o| {
            json!({
                "name": o.name,
                "seconds_per_step": o.seconds,
                "floor_seconds_per_step": if o.gathered { in_gathered } else { 0.0 },
            })
        })
        .collect();
    let mut out = json!({
        "dataset": dataset,
        "others": others,
        "batches": batches,
        "gflop_per_step": flops / 1e9,
        "floor_seconds_per_step": seconds,
        "gemm_gflops_per_sec": flops / seconds / 1e9,
        "terms": terms,
    });
    merge(&mut out, shape.to_json());
    let measured = measured_steps(runs, batches);
    out["measured_over_floor"] = json!(f(&measured["seconds_per_step"]) / seconds);
    out["measured"] = measured;
    Ok(out)
}
