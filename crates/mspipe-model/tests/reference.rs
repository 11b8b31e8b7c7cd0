//! Each module against an independent plain-Rust f64 computation of its equations on small random
//! inputs (relative error ≤ 1e-5), plus the padding invariance of attention.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, softmax};
use mspipe_model::embedding::{
    NeighborRows, Neighbors, TemporalAttentionConfig, TimeProjectionConfig,
};
use mspipe_model::linear;
use mspipe_model::memory::{
    GruCellConfig, MailboxAttention, MailboxAttentionConfig, RnnCellConfig,
};
use mspipe_model::tensors::{bools, floats, to_vec};
use mspipe_model::{
    AttentionHeadsConfig, EmbedInput, MemoryModelConfig, SlotTimes, TimeEncoding,
    TimeEncodingConfig,
};

fn device() -> Device {
    Device::flex()
}

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn f64s(t: Tensor<1>) -> Vec<f64> {
    to_vec(t).into_iter().map(f64::from).collect()
}

/// A Linear layer as (W [in][out], b [out]) in f64.
struct Lin {
    w: Vec<Vec<f64>>,
    b: Vec<f64>,
}

impl Lin {
    fn of(l: &Linear) -> Lin {
        let [i, o] = l.weight.val().dims();
        let w: Vec<f64> = to_vec(l.weight.val()).into_iter().map(f64::from).collect();
        let b = l.bias.as_ref().map_or(vec![0.0; o], |b| f64s(b.val()));
        Lin {
            w: (0..i).map(|r| w[r * o..(r + 1) * o].to_vec()).collect(),
            b,
        }
    }

    fn apply(&self, x: &[f64]) -> Vec<f64> {
        let mut y = self.b.clone();
        for (xi, row) in x.iter().zip(&self.w) {
            for (yj, wij) in y.iter_mut().zip(row) {
                *yj += xi * wij;
            }
        }
        y
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / w.abs().max(1.0);
        assert!(
            err <= 1e-5,
            "{what}[{i}]: got {g}, want {w} (rel err {err:e})"
        );
    }
}

fn rows(v: &[f32], width: usize) -> Vec<Vec<f64>> {
    v.chunks(width)
        .map(|r| r.iter().map(|&x| x as f64).collect())
        .collect()
}

/// Runs a recurrent cell on random `[n, input]`, `[n, hidden]` inputs and checks it against
/// `reference(W_i x + b_i, W_h h + b_h, h)` computed in f64 row by row.
fn check_cell(
    what: &str,
    (n, input, hidden): (usize, usize, usize),
    forward: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<2>,
    (wi, wh): (&Linear, &Linear),
    reference: impl Fn(&[f64], &[f64], &[f64]) -> Vec<f64>,
) {
    let (x, h) = (
        values(n * input, n as u64),
        values(n * hidden, 100 + n as u64),
    );
    let out = to_vec(forward(
        floats(&x, [n, input], &device()),
        floats(&h, [n, hidden], &device()),
    ));
    let (wi, wh) = (Lin::of(wi), Lin::of(wh));
    let want: Vec<f64> = rows(&x, input)
        .iter()
        .zip(rows(&h, hidden))
        .flat_map(|(xr, hr)| reference(&wi.apply(xr), &wh.apply(&hr), &hr))
        .collect();
    assert_close(&out, &want, what);
}

#[test]
fn gru_cell_matches_the_torch_equations() {
    let cell = GruCellConfig::new(7, 6).init(&device());
    let gru = |gi: &[f64], gh: &[f64], h: &[f64]| {
        let d = h.len();
        (0..d)
            .map(|j| {
                let r = sigmoid(gi[j] + gh[j]);
                let z = sigmoid(gi[d + j] + gh[d + j]);
                let c = (gi[2 * d + j] + r * gh[2 * d + j]).tanh();
                (1.0 - z) * c + z * h[j]
            })
            .collect()
    };
    // The input in two parts, as the updater passes mails and their time encodings.
    let forward = |x: Tensor<2>, h| cell.forward(x.clone().narrow(1, 0, 3), x.narrow(1, 3, 4), h);
    check_cell("gru", (5, 7, 6), forward, (&cell.input, &cell.hidden), gru);
}

#[test]
fn rnn_cell_matches_the_torch_equations() {
    let cell = RnnCellConfig::new(5, 3).init(&device());
    let rnn =
        |a: &[f64], b: &[f64], _: &[f64]| a.iter().zip(b).map(|(a, b)| (a + b).tanh()).collect();
    let forward = |x: Tensor<2>, h| cell.forward(x.clone().narrow(1, 0, 2), x.narrow(1, 2, 3), h);
    check_cell("rnn", (4, 5, 3), forward, (&cell.input, &cell.hidden), rnn);
}

/// cos(Δt·w + b). The product is rounded to f32 as the model's f32 arithmetic must (for Δt of
/// months in seconds the phase itself is only known to f32 precision); the rest is f64.
fn encode(te: &TimeEncoding, dt: f64) -> Vec<f64> {
    let (w, b) = te.parameters();
    f64s(w)
        .iter()
        .zip(f64s(b))
        .map(|(w, b)| (((dt as f32) * (*w as f32)) as f64 + b).cos())
        .collect()
}

#[test]
fn time_encoding_is_cos_of_geometric_frequencies() {
    let te = TimeEncodingConfig::new(10).init(&device());
    let (w, _) = te.parameters();
    let w = f64s(w);
    assert!((w[0] - 1.0).abs() < 1e-7 && (w[9] - 1e-9).abs() < 1e-15);
    assert!(
        (w[3] / w[4] - 10f64.powf(1.0)).abs() < 1e-4,
        "ratio 10^(9/9)"
    );
    let dt = [0.0f32, 1.5, 1234.0, 3.0e6];
    let out = to_vec::<2>(te.forward(floats(&dt, [4], &device())));
    let want: Vec<f64> = dt.iter().flat_map(|&t| encode(&te, t as f64)).collect();
    assert_close(&out, &want, "time encoding");
}

/// The attention layer, computed in f64 from its weights.
fn attention_reference(
    layer: &mspipe_model::embedding::TemporalAttention,
    te: &TimeEncoding,
    root: &[Vec<f64>],
    nbr: &[Vec<Vec<f64>>],
    edge: &[Vec<Vec<f64>>],
    dt: &[Vec<f64>],
    mask: &[Vec<bool>],
) -> Vec<f64> {
    let (q, k, v) = (
        Lin::of(&layer.query),
        Lin::of(&layer.key),
        Lin::of(&layer.value),
    );
    let (m1, m2) = (Lin::of(&layer.merge_hidden), Lin::of(&layer.merge_out));
    let heads = layer.heads;
    let mut out = vec![];
    for r in 0..root.len() {
        let qv = q.apply(&[root[r].clone(), encode(te, 0.0)].concat());
        let dh = qv.len() / heads;
        let kv: Vec<(Vec<f64>, Vec<f64>)> = (0..nbr[r].len())
            .map(|j| {
                let x = [nbr[r][j].clone(), edge[r][j].clone(), encode(te, dt[r][j])].concat();
                (k.apply(&x), v.apply(&x))
            })
            .collect();
        let mut attn = vec![0.0; qv.len()];
        for h in 0..heads {
            let hs = h * dh..(h + 1) * dh;
            let scores: Vec<f64> = kv
                .iter()
                .map(|(kj, _)| hs.clone().map(|i| qv[i] * kj[i]).sum::<f64>() / (dh as f64).sqrt())
                .collect();
            let valid: Vec<usize> = (0..scores.len()).filter(|&j| mask[r][j]).collect();
            if valid.is_empty() {
                continue;
            }
            let max = valid.iter().map(|&j| scores[j]).fold(f64::MIN, f64::max);
            let z: f64 = valid.iter().map(|&j| (scores[j] - max).exp()).sum();
            for &j in &valid {
                let a = (scores[j] - max).exp() / z;
                for i in hs.clone() {
                    attn[i] += a * kv[j].1[i];
                }
            }
        }
        let hidden: Vec<f64> = m1
            .apply(&[attn, root[r].clone()].concat())
            .into_iter()
            .map(|x| x.max(0.0))
            .collect();
        out.extend(m2.apply(&hidden));
    }
    out
}

fn nested(v: &[f32], a: usize, b: usize, c: usize) -> Vec<Vec<Vec<f64>>> {
    (0..a)
        .map(|i| rows(&v[i * b * c..(i + 1) * b * c], c))
        .collect()
}

#[test]
fn temporal_attention_matches_reference_and_ignores_padding() {
    let dev = device();
    for (heads, k) in [(1, 1), (2, 4), (4, 3)] {
        let (r, input, edge, time, out) = (3, 6, 2, 4, 8);
        let layer = TemporalAttentionConfig::new(input, edge, time, out)
            .with_attention(AttentionHeadsConfig::new().with_heads(heads))
            .init(&dev);
        let te = TimeEncodingConfig::new(time).init(&dev);
        let root = values(r * input, 10);
        let mut h = values(r * k * input, 11);
        let mut e = values(r * k * edge, 12);
        // Every third slot repeats one Δt: the layer encodes distinct values once and gathers.
        let dt: Vec<f32> = values(r * k, 13)
            .iter()
            .enumerate()
            .map(|(s, x)| if s % 3 == 0 { 25.0 } else { (x + 1.0) * 50.0 })
            .collect();
        // Row 0 all real, row 1 last slot padded (when k > 1), row 2 entirely padded.
        let mask: Vec<bool> = (0..r * k)
            .map(|s| match s / k {
                0 => true,
                1 => s % k != k - 1 || k == 1,
                _ => false,
            })
            .collect();
        let run = |h: &[f32], e: &[f32]| {
            to_vec(layer.forward(
                floats(&root, [r, input], &dev),
                Neighbors {
                    h: NeighborRows::Dense(floats(h, [r, k, input], &dev)),
                    dt: SlotTimes::from_host(&dt, &dev),
                    edge: Some(floats(e, [r, k, edge], &dev)),
                    mask: bools(&mask, [r, k], &dev),
                },
                &te,
            ))
        };
        let got = run(&h, &e);
        let want = attention_reference(
            &layer,
            &te,
            &rows(&root, input),
            &nested(&h, r, k, input),
            &nested(&e, r, k, edge),
            &rows(&dt, k),
            &mask.chunks(k).map(|c| c.to_vec()).collect::<Vec<_>>(),
        );
        assert_close(&got, &want, &format!("attention heads={heads} k={k}"));

        // Changing what sits in padded slots changes nothing.
        for s in (0..r * k).filter(|&s| !mask[s]) {
            h[s * input..(s + 1) * input].fill(1e3);
            e[s * edge..(s + 1) * edge].fill(-7.0);
        }
        assert_eq!(run(&h, &e), got, "padding leaked (heads={heads} k={k})");
    }
}

/// LayerNorm of one row in f64: (x − mean) / √(var + 1e-5)·γ + β (biased variance, as torch).
fn layer_norm(x: &[f64], gamma: &[f64], beta: &[f64]) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    x.iter()
        .zip(gamma.iter().zip(beta))
        .map(|(v, (g, b))| (v - mean) / (var + 1e-5).sqrt() * g + b)
        .collect()
}

fn randomize(norm: &mut burn::nn::LayerNorm, width: usize, seed: u64) {
    let dev = device();
    norm.gamma = Param::from_tensor(floats(&values(width, seed), [width], &dev));
    norm.beta = Some(Param::from_tensor(floats(
        &values(width, seed + 1),
        [width],
        &dev,
    )));
}

fn norm_params(norm: &burn::nn::LayerNorm) -> (Vec<f64>, Vec<f64>) {
    let beta = norm.beta.as_ref().expect("beta");
    (f64s(norm.gamma.val()), f64s(beta.val()))
}

#[test]
fn mailbox_attention_matches_tgl_transformer_updater() {
    let dev = device();
    let (n, m, input, hidden, heads) = (3, 4, 5, 6, 2);
    let mut att = MailboxAttentionConfig::new(input, hidden)
        .with_attention(AttentionHeadsConfig::new().with_heads(heads))
        .init(&dev);
    randomize(&mut att.norm, hidden, 30);
    let h = values(n * hidden, 31);
    let mails = values(n * m * input, 32);
    // Row 0 full, row 1 only the newest two slots, row 2 no mail at all.
    let mask: Vec<bool> = (0..n * m)
        .map(|s| match s / m {
            0 => true,
            1 => s % m >= m - 2,
            _ => false,
        })
        .collect();
    // Each entry's first two values as its mail, the rest as its time encoding.
    let entries = floats(&mails, [n, m, input], &dev);
    let got = to_vec(att.forward(
        entries.clone().narrow(2, 0, 2),
        entries.narrow(2, 2, input - 2),
        bools(&mask, [n, m], &dev),
        floats(&h, [n, hidden], &dev),
    ));

    let (q, k, v, out) = (
        Lin::of(&att.query),
        Lin::of(&att.key),
        Lin::of(&att.value),
        Lin::of(&att.out),
    );
    let (gamma, beta) = norm_params(&att.norm);
    let dh = hidden / heads;
    let mut want = vec![];
    for (r, hr) in rows(&h, hidden).iter().enumerate() {
        let qv = q.apply(hr);
        let slots: Vec<usize> = (0..m).filter(|&j| mask[r * m + j]).collect();
        let kv: Vec<(Vec<f64>, Vec<f64>)> = slots
            .iter()
            .map(|&j| {
                let x = &rows(&mails, input)[r * m + j];
                (k.apply(x), v.apply(x))
            })
            .collect();
        let mut a = hr.clone();
        for head in 0..heads {
            let hs = head * dh..(head + 1) * dh;
            let scores: Vec<f64> = kv
                .iter()
                .map(|(kj, _)| {
                    let s: f64 = hs.clone().map(|i| qv[i] * kj[i]).sum();
                    if s < 0.0 { 0.2 * s } else { s }
                })
                .collect();
            let max = scores.iter().copied().fold(f64::MIN, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            for (s, (_, vj)) in scores.iter().zip(&kv) {
                for i in hs.clone() {
                    a[i] += (s - max).exp() / z * vj[i];
                }
            }
        }
        let o = out.apply(&layer_norm(&a, &gamma, &beta));
        want.extend(o.into_iter().map(|x| x.max(0.0)));
    }
    assert_close(&got, &want, "mailbox attention");
}

/// The updater with its keys and values formed per mail, in burn ops, as TGL writes it.
fn mailbox_attention_formed(
    att: &MailboxAttention,
    mails: Tensor<3>,
    mask: Tensor<2, Bool>,
    h: Tensor<2>,
) -> Tensor<2> {
    let [n, m, _] = mails.dims();
    let d = h.dims()[1];
    let (heads, dh) = (att.heads, d / att.heads);
    let q: Tensor<4> = att.query.forward(h.clone()).reshape([n, 1, heads, dh]);
    let k: Tensor<4> = linear::rows(&att.key, mails.clone()).reshape([n, m, heads, dh]);
    let v: Tensor<4> = linear::rows(&att.value, mails).reshape([n, m, heads, dh]);
    let scores: Tensor<3> = leaky_relu((q * k).sum_dim(3).squeeze_dim(3), 0.2);
    let keep: Tensor<3> = mask.clone().float().unsqueeze_dim(2);
    let scores = scores.mask_fill(mask.bool_not().unsqueeze_dim(2), -1e30);
    let weights = softmax(scores, 1) * keep;
    let a: Tensor<2> = (v * weights.unsqueeze_dim(3)).sum_dim(1).reshape([n, d]);
    relu(att.out.forward(att.norm.forward(a + h)))
}

#[test]
fn mailbox_attention_gradients_match_keys_and_values_formed() {
    let dev = device().autodiff();
    let (n, m, input, hidden, heads) = (4, 3, 5, 6, 2);
    let att = MailboxAttentionConfig::new(input, hidden)
        .with_attention(
            AttentionHeadsConfig::new()
                .with_heads(heads)
                .with_dropout(0.0),
        )
        .init(&dev);
    let mask: Vec<bool> = (0..n * m).map(|s| s % 5 != 1 && s / m != 3).collect();
    let mask = bools(&mask, [n, m], &dev);
    let probe = floats(&values(n * hidden, 51), [n, hidden], &dev);
    let run = |formed: bool| {
        let mails = floats(&values(n * m * input, 52), [n, m, input], &dev).require_grad();
        let h = floats(&values(n * hidden, 53), [n, hidden], &dev).require_grad();
        let out = if formed {
            mailbox_attention_formed(&att, mails.clone(), mask.clone(), h.clone())
        } else {
            // Mail and encoding parts as views: the gradient reaches both parts' columns.
            let part = |from, len| mails.clone().narrow(2, from, len);
            att.forward(part(0, 3), part(3, input - 3), mask.clone(), h.clone())
        };
        let grads = (out.clone() * probe.clone()).sum().backward();
        let grad = |t: Tensor<2>| to_vec(t.grad(&grads).expect("a gradient"));
        let bias = |l: &Linear| l.bias.as_ref().expect("bias").val();
        vec![
            to_vec(out),
            to_vec(mails.grad(&grads).expect("mail gradient")),
            grad(h),
            grad(att.query.weight.val()),
            grad(att.key.weight.val()),
            to_vec(bias(&att.key).grad(&grads).expect("key bias gradient")),
            grad(att.value.weight.val()),
            to_vec(bias(&att.value).grad(&grads).expect("value bias gradient")),
        ]
    };
    let (got, want) = (run(false), run(true));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let w: Vec<f64> = w.iter().map(|&x| f64::from(x)).collect();
        assert!(w.iter().any(|&x| x != 0.0), "part {i} is all zero");
        assert_close(g, &w, &format!("part {i}"));
    }
}

#[test]
fn jodie_projection_drifts_the_memory() {
    let dev = device();
    let p = TimeProjectionConfig::new(4).init(&dev);
    let s = values(2 * 4, 40);
    let dt = [0.25f32, 0.9];
    let got = to_vec(p.forward(floats(&s, [2, 4], &dev), floats(&dt, [2], &dev)));
    let w = Lin::of(&p.w);
    let want: Vec<f64> = rows(&s, 4)
        .iter()
        .zip(dt)
        .flat_map(|(row, d)| {
            let drift = w.apply(&[d as f64]);
            row.iter()
                .zip(drift)
                .map(|(x, g)| x * (1.0 + g))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close(&got, &want, "time projection");
    // JODIE's NormalLinear: weights and biases drawn from N(0, 1), not zero.
    assert!(w.b.iter().chain(&w.w[0]).all(|&x| x != 0.0));
}

#[test]
fn jodie_drift_is_the_time_since_the_memory_over_the_time_since_the_start() {
    // Stream from t = 10; a root at 20 whose memory dates from 15: (10 − 5) / (10 + 1).
    assert_eq!(EmbedInput::drift(20.0, 15.0, 10.0), 5.0 / 11.0);
    // A node never updated (memory time 0, before the start) has drifted since the start.
    assert_eq!(EmbedInput::drift(20.0, 0.0, 10.0), 10.0 / 11.0);
    assert_eq!(EmbedInput::drift(10.0, 10.0, 10.0), 0.0);
}

#[test]
fn memory_embeddings_are_layer_normalised_before_the_projection() {
    let dev = device();
    let model = MemoryModelConfig::jodie(0)
        .with_memory_dim(4)
        .with_time_dim(2)
        .init(&dev);
    let memory = values(3 * 4, 50);
    let input = EmbedInput {
        root_index: mspipe_model::tensors::indices(&[2, 0], &dev),
        root_dt: floats(&[0.0, 0.5], [2], &dev),
        hops: vec![],
    };
    let got = to_vec(model.embed(floats(&memory, [3, 4], &dev), &input));
    // At initialisation γ = 1, β = 0: the root at Δ = 0 is LN(s)·(1 + b).
    let p = model.projection().expect("JODIE has a projection");
    let b = Lin::of(&p.w).b;
    let ln = layer_norm(&rows(&memory, 4)[2], &[1.0; 4], &[0.0; 4]);
    let want: Vec<f64> = ln.iter().zip(&b).map(|(x, b)| x * (1.0 + b)).collect();
    assert_close(&got[..4], &want, "LN(s)·(1 + b)");
}
