//! Masked multi-head attention of one query over `K` keys per row: the shared core of temporal
//! graph attention (keys = sampled neighbours) and of APAN's mailbox updater (keys = mails).
//! It runs as one fused kernel on cubecl devices and as plain burn ops elsewhere
//! ([`mspipe_kernels::attention`]).

use burn::prelude::*;

/// `q`: `[N, H, dh]`; `k`, `v`: `[N, K, H, dh]`; `mask`: `[N, K]` (true = real slot).
/// Returns `[N, H·dh]`. Padded slots get exactly zero weight, and a row without any real slot
/// yields zeros (not NaN).
pub fn attend(q: Tensor<3>, k: Tensor<4>, v: Tensor<4>, mask: Tensor<2, Bool>) -> Tensor<2> {
    mspipe_kernels::attention(q, k, v, mask.float())
}
