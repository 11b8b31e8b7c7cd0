//! Attention over gathered slot rows (queries and outputs `[H, N, C]`). Forward: one unit per
//! (head, root), reading each slot's row straight from the two tables, the `K` scores in
//! registers. Backward: one unit per root (its heads in turn, so each slot's row gradient is
//! summed over heads by the unit that owns it), then the backend's own `select_assign` adds the
//! slot rows into the tables.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::IntTensor;
use burn::tensor::{DType, IndexingUpdateOp, Shape};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{floats, indices, launch, output};

/// ⟨`v[base..base + ca + cb]`, slot `slot`'s row⟩.
#[cube]
#[allow(clippy::too_many_arguments)]
fn row_dot<F: Float>(
    v: &[F],
    base: usize,
    a: &[F],
    ia: &[i32],
    b: &[F],
    ib: &[i32],
    slot: usize,
    ca: usize,
    cb: usize,
) -> F {
    let (ra, rb) = (
        usize::cast_from(ia[slot]) * ca,
        usize::cast_from(ib[slot]) * cb,
    );
    let mut s = F::new(0.0);
    for e in 0..ca {
        s += v[base + e] * a[ra + e];
    }
    for e in 0..cb {
        s += v[base + ca + e] * b[rb + e];
    }
    s
}

/// Softmax over the root's slots of the masked scores ⟨q, x_j⟩ (−1e9 on padding, as in the
/// reference), before the mask is applied to the weights.
#[cube]
#[allow(clippy::too_many_arguments)]
fn probabilities<F: Float>(
    q: &[F],
    a: &[F],
    ia: &[i32],
    b: &[F],
    ib: &[i32],
    keep: &[F],
    prob: &mut Array<F>,
    root: usize,
    q_base: usize,
    ca: usize,
    cb: usize,
    #[comptime] slots: usize,
) {
    let mut top = F::new(-3.0e38);
    for j in 0..slots {
        let slot = root * slots + j;
        let real = keep[slot];
        let s = row_dot::<F>(q, q_base, a, ia, b, ib, slot, ca, cb) * real
            + (F::new(1.0) - real) * F::new(-1.0e9);
        prob[j] = s;
        top = F::max(top, s);
    }
    normalize::<F>(prob, top, slots);
}

/// `prob[j]` ← exp(`prob[j]` − `top`) / Σ: the softmax of scores whose maximum is `top`.
#[cube]
fn normalize<F: Float>(prob: &mut Array<F>, top: F, #[comptime] slots: usize) {
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
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float>(
    q: &[F],
    a: &[F],
    ia: &[i32],
    b: &[F],
    ib: &[i32],
    keep: &[F],
    scale: &[F],
    out: &mut [F],
    units: usize,
    roots: usize,
    ca: usize,
    cb: usize,
    #[comptime] slots: usize,
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    // Unit = head·roots + root: queries and outputs are [H, N, C].
    let root = ABSOLUTE_POS % roots;
    let base = ABSOLUTE_POS * (ca + cb);
    let mut prob = Array::<F>::new(slots);
    probabilities::<F>(q, a, ia, b, ib, keep, &mut prob, root, base, ca, cb, slots);
    for j in 0..slots {
        prob[j] *= keep[root * slots + j] * scale[ABSOLUTE_POS * slots + j];
    }
    for e in 0..ca {
        let mut acc = F::new(0.0);
        for j in 0..slots {
            acc += prob[j] * a[usize::cast_from(ia[root * slots + j]) * ca + e];
        }
        out[base + e] = acc;
    }
    for e in 0..cb {
        let mut acc = F::new(0.0);
        for j in 0..slots {
            acc += prob[j] * b[usize::cast_from(ib[root * slots + j]) * cb + e];
        }
        out[base + ca + e] = acc;
    }
}

#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<F: Float>(
    q: &[F],
    a: &[F],
    ia: &[i32],
    b: &[F],
    ib: &[i32],
    keep: &[F],
    scale: &[F],
    grad: &[F],
    dq: &mut [F],
    dxa: &mut [F],
    dxb: &mut [F],
    roots: usize,
    heads: usize,
    ca: usize,
    cb: usize,
    #[comptime] slots: usize,
) {
    let root = ABSOLUTE_POS;
    if root >= roots {
        terminate!();
    }
    let c = ca + cb;
    for j in 0..slots {
        let slot = root * slots + j;
        for e in 0..ca {
            dxa[slot * ca + e] = F::new(0.0);
        }
        for e in 0..cb {
            dxb[slot * cb + e] = F::new(0.0);
        }
    }
    let mut prob = Array::<F>::new(slots);
    let mut dp = Array::<F>::new(slots);
    for head in 0..heads {
        let base = (head * roots + root) * c;
        probabilities::<F>(q, a, ia, b, ib, keep, &mut prob, root, base, ca, cb, slots);
        // dp_j = ⟨g, x_j⟩; s = Σ_j w_j·dp_j with w_j = prob_j·m_j, m_j = keep_j·scale_j.
        let unit = head * roots + root;
        let mut s = F::new(0.0);
        for j in 0..slots {
            let slot = root * slots + j;
            let d = row_dot::<F>(grad, base, a, ia, b, ib, slot, ca, cb);
            dp[j] = d;
            s += prob[j] * keep[slot] * scale[unit * slots + j] * d;
        }
        for e in 0..c {
            dq[base + e] = F::new(0.0);
        }
        for j in 0..slots {
            let slot = root * slots + j;
            let real = keep[slot];
            let m = real * scale[unit * slots + j];
            let weight = prob[j] * m;
            // ∂L/∂score_j through the mask, the softmax and the multiplier m.
            let ds = real * prob[j] * (m * dp[j] - s);
            let (ra, rb) = (
                usize::cast_from(ia[slot]) * ca,
                usize::cast_from(ib[slot]) * cb,
            );
            for e in 0..ca {
                dq[base + e] += ds * a[ra + e];
                dxa[slot * ca + e] += ds * q[base + e] + weight * grad[base + e];
            }
            for e in 0..cb {
                dq[base + ca + e] += ds * b[rb + e];
                dxb[slot * cb + e] += ds * q[base + ca + e] + weight * grad[base + ca + e];
            }
        }
    }
}

/// `[n, k, h, c]` from `q` `[h, n, c]` and `keep` `[n, k]`.
fn dims(q: &CubeTensor, keep: &CubeTensor) -> [usize; 4] {
    let (s, k) = (q.meta.shape(), keep.meta.shape()[1]);
    [s[1], k, s[0], s[2]]
}

fn width(t: &CubeTensor) -> usize {
    t.meta.shape()[1]
}

/// `q` `[H, N, Ca + Cb]`, tables and slot rows, `keep` `[N, K]`, `scale` `[H, N, K]` →
/// `[H, N, Ca + Cb]`.
pub fn forward(
    q: CubeTensor,
    a: CubeTensor,
    ia: CubeTensor,
    b: CubeTensor,
    ib: CubeTensor,
    [keep, scale]: [CubeTensor; 2],
) -> CubeTensor {
    let [n, slots, heads, c] = dims(&q, &keep);
    let (ca, cb) = (width(&a), width(&b));
    assert_eq!(c, ca + cb, "query width ≠ the tables' widths together");
    let (q, keep, scale) = (floats(q), floats(keep), floats(scale));
    let units = n * heads;
    if units == 0 || slots == 0 {
        // No slot to attend over: zeros, as the reference gives.
        return zeros(&q, [heads, n, c]);
    }
    let out = output(&q, [heads, n, c]);
    let (a, ia, b, ib) = (floats(a), indices(ia), floats(b), indices(ib));
    // SAFETY: contiguous f32 buffers (i32 indices) of the shapes read above; slot indices name rows
    // of their tables (the caller's contract, as for any gather); the guard keeps units in bounds.
    unsafe {
        launch!(
            forward_kernel on q.client.clone(), units;
            [q, a, ia, b, ib, keep, scale, out.clone()],
            units, n, ca, cb, slots
        );
    }
    out
}

/// Gradients for `q`, `a` and `b` given the output's (`[H, N, Ca + Cb]`).
pub fn backward(
    q: CubeTensor,
    a: CubeTensor,
    ia: IntTensor<CubeBackend>,
    b: CubeTensor,
    ib: IntTensor<CubeBackend>,
    [keep, scale]: [CubeTensor; 2],
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [n, slots, heads, c] = dims(&q, &keep);
    let ([rows_a, ca], [rows_b, cb]) = (
        [a.meta.shape()[0], width(&a)],
        [b.meta.shape()[0], width(&b)],
    );
    let (q, keep, scale, grad) = (floats(q), floats(keep), floats(scale), floats(grad));
    if n == 0 || heads == 0 || slots == 0 {
        let dq = zeros(&q, [heads, n, c]);
        return (dq, zeros(&q, [rows_a, ca]), zeros(&q, [rows_b, cb]));
    }
    let dq = output(&q, [heads, n, c]);
    let dxa = output(&q, [n * slots, ca]);
    let dxb = output(&q, [n * slots, cb]);
    let (slot_a, slot_b) = (indices(ia.clone()), indices(ib.clone()));
    // SAFETY: as in `forward`; unit `r` writes only root `r`'s rows of `dq`, `dxa` and `dxb`.
    unsafe {
        launch!(
            backward_kernel on q.client.clone(), n;
            [q, floats(a), slot_a, floats(b), slot_b, keep, scale, grad, dq.clone(), dxa.clone(), dxb.clone()],
            n, heads, ca, cb, slots
        );
    }
    let add = |rows: usize, w: usize, index, dx: CubeTensor| {
        let table = zeros(&dx, [rows, w]);
        CubeBackend::float_select_assign(table, 0, index, dx, IndexingUpdateOp::Add)
    };
    (dq, add(rows_a, ca, ia, dxa), add(rows_b, cb, ib, dxb))
}

/// Zeros of `shape` on `like`'s device.
fn zeros(like: &CubeTensor, shape: impl Into<Shape>) -> CubeTensor {
    CubeBackend::float_zeros(shape.into(), &like.device, DType::F32.into())
}
