//! Masked multi-head attention of one query over `K` keys per row: the shared core of temporal
//! graph attention (keys = sampled neighbours) and of APAN's mailbox updater (keys = mails).

use burn::prelude::*;
use burn::tensor::activation::softmax;

/// `q`: `[N, H, dh]`; `k`, `v`: `[N, K, H, dh]`; `mask`: `[N, K]` (true = real slot).
/// Returns `[N, H·dh]`. Padded slots get exactly zero weight, and a row without any real slot
/// yields zeros (not NaN).
pub fn attend(q: Tensor<3>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<2, Bool>) -> Tensor<2> {
    let [n, slots, heads, dh] = k.dims();
    let scale = 1.0 / (dh as f64).sqrt();
    let scores: Tensor<3> = (q.unsqueeze_dim::<4>(1) * k).sum_dim(3).squeeze_dim(3) * scale;
    let keep: Tensor<3> = mask.float().unsqueeze_dim(2); // [N, K, 1]
    let scores = scores * keep.clone() + (keep.clone().neg() + 1.0) * -1e9;
    let weights = softmax(scores, 1) * keep; // [N, K, H]
    let out: Tensor<3> = (weights.unsqueeze_dim::<4>(3) * v)
        .sum_dim(1)
        .squeeze_dim(1);
    let _ = slots;
    out.reshape([n, heads * dh])
}
