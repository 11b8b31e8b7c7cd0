//! Temporal attention, one unit per (root, head): the `K` scores stay in registers, so scores,
//! mask, softmax and the weighted sum of values are one pass over `q`, `k`, `v` and the backward
//! is one more, without any `[N, K, H]` intermediate in memory.

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{floats, launch, output};

/// Fills `prob[j]` with the softmax over `j` of the masked scores `scale·⟨q, k_j⟩` (−1e9 on
/// padding, as in the reference), before the mask is applied to the weights.
#[cube]
fn probabilities<F: Float>(
    q: &[F],
    k: &[F],
    keep: &[F],
    prob: &mut Array<F>,
    root: usize,
    head: usize,
    heads: usize,
    #[comptime] slots: usize,
    #[comptime] dh: usize,
) {
    let scale = F::new(1.0) / F::sqrt(F::cast_from(dh));
    let q_base = (root * heads + head) * dh;
    let mut top = F::new(-3.0e38);
    for j in 0..slots {
        let k_base = ((root * slots + j) * heads + head) * dh;
        let mut s = F::new(0.0);
        for e in 0..dh {
            s += q[q_base + e] * k[k_base + e];
        }
        let real = keep[root * slots + j];
        let s = s * scale * real + (F::new(1.0) - real) * F::new(-1.0e9);
        prob[j] = s;
        top = F::max(top, s);
    }
    normalize::<F>(prob, top, slots);
}

/// `prob[j]` ← exp(`prob[j]` − `top`) / Σ: the softmax of scores whose maximum is `top`.
#[cube]
pub fn normalize<F: Float>(prob: &mut Array<F>, top: F, #[comptime] slots: usize) {
    let mut total = F::new(0.0);
    for j in 0..slots {
        let x = F::exp(prob[j] - top);
        prob[j] = x;
        total += x;
    }
    for j in 0..slots {
        prob[j] /= total;
    }
}

#[cube(launch_unchecked)]
fn forward_kernel<F: Float>(
    q: &[F],
    k: &[F],
    v: &[F],
    keep: &[F],
    out: &mut [F],
    units: usize,
    heads: usize,
    #[comptime] slots: usize,
    #[comptime] dh: usize,
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let root = ABSOLUTE_POS / heads;
    let head = ABSOLUTE_POS % heads;
    let mut prob = Array::<F>::new(slots);
    probabilities::<F>(q, k, keep, &mut prob, root, head, heads, slots, dh);
    for j in 0..slots {
        prob[j] *= keep[root * slots + j];
    }
    for e in 0..dh {
        let mut acc = F::new(0.0);
        for j in 0..slots {
            acc += prob[j] * v[((root * slots + j) * heads + head) * dh + e];
        }
        out[ABSOLUTE_POS * dh + e] = acc;
    }
}

#[cube(launch_unchecked)]
fn backward_kernel<F: Float>(
    q: &[F],
    k: &[F],
    v: &[F],
    keep: &[F],
    grad: &[F],
    dq: &mut [F],
    dk: &mut [F],
    dv: &mut [F],
    units: usize,
    heads: usize,
    #[comptime] slots: usize,
    #[comptime] dh: usize,
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let root = ABSOLUTE_POS / heads;
    let head = ABSOLUTE_POS % heads;
    let scale = F::new(1.0) / F::sqrt(F::cast_from(dh));
    let g_base = ABSOLUTE_POS * dh;
    let mut prob = Array::<F>::new(slots);
    let mut dp = Array::<F>::new(slots);
    probabilities::<F>(q, k, keep, &mut prob, root, head, heads, slots, dh);
    // dp_j = ⟨g, v_j⟩; c = Σ_j w_j·dp_j with w_j = prob_j·keep_j.
    let mut c = F::new(0.0);
    for j in 0..slots {
        let v_base = ((root * slots + j) * heads + head) * dh;
        let mut d = F::new(0.0);
        for e in 0..dh {
            d += grad[g_base + e] * v[v_base + e];
        }
        dp[j] = d;
        c += prob[j] * keep[root * slots + j] * d;
    }
    for e in 0..dh {
        dq[g_base + e] = F::new(0.0);
    }
    for j in 0..slots {
        let real = keep[root * slots + j];
        let weight = prob[j] * real;
        // ∂L/∂score_j through the mask and the softmax, then through the scale.
        let ds = real * prob[j] * (dp[j] - c) * scale;
        let base = ((root * slots + j) * heads + head) * dh;
        for e in 0..dh {
            dq[g_base + e] += ds * k[base + e];
            dk[base + e] = ds * q[g_base + e];
            dv[base + e] = weight * grad[g_base + e];
        }
    }
}

fn dims(k: &CubeTensor) -> [usize; 4] {
    let s = k.meta.shape();
    [s[0], s[1], s[2], s[3]]
}

/// `[N, H, dh]`, `[N, K, H, dh]` ×2, `[N, K]` → `[N, H·dh]`.
pub fn forward(q: CubeTensor, k: CubeTensor, v: CubeTensor, keep: CubeTensor) -> CubeTensor {
    let [n, slots, heads, dh] = dims(&k);
    let (q, k, v, keep) = (floats(q), floats(k), floats(v), floats(keep));
    let out = output(&q, [n, heads * dh]);
    let (client, units) = (q.client.clone(), n * heads);
    // SAFETY: every buffer is contiguous f32 of the shape the indexing assumes (checked above),
    // and the guard on `units` keeps every access in bounds.
    unsafe {
        launch!(forward_kernel on client, units; [q, k, v, keep, out.clone()], units, heads, slots, dh);
    }
    out
}

/// Gradients for `q`, `k`, `v` given the output's (`[N, H·dh]`).
pub fn backward(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    keep: CubeTensor,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [n, slots, heads, dh] = dims(&k);
    let (q, k, v, keep, grad) = (floats(q), floats(k), floats(v), floats(keep), floats(grad));
    let dq = output(&q, [n, heads, dh]);
    let dk = output(&q, [n, slots, heads, dh]);
    let dv = output(&q, [n, slots, heads, dh]);
    let (client, units) = (q.client.clone(), n * heads);
    // SAFETY: as in `forward`; each unit writes only its own (root, head) slices.
    unsafe {
        launch!(
            backward_kernel on client, units;
            [q, k, v, keep, grad, dq.clone(), dk.clone(), dv.clone()],
            units, heads, slots, dh
        );
    }
    (dq, dk, dv)
}
