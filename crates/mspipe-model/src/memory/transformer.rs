//! APAN's mailbox updater as TGL and MSPipe build it (`TransformerMemoryUpdater`): the memory is
//! the query over the node's mails (each ⊕ the time encoding of its age), scores are
//! LeakyReLU(0.2) of the per-head dot products (no √d scaling), and the attention output joins
//! the memory before LayerNorm → Linear → dropout → ReLU.
//!
//! One difference from the reference, on purpose: empty mailbox slots are masked out. TGL
//! attends over them too (zero mails, whose age is the time since 0), which makes a node's
//! memory depend on how many slots are still empty.

use burn::nn::{Dropout, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, softmax};

use crate::AttentionHeadsConfig;
use crate::draws::dropout;
use crate::linear::{self, bias, per_head};
use mspipe_kernels::batched_matmul;

/// Configuration of a [`MailboxAttention`].
#[derive(Config, Debug)]
pub struct MailboxAttentionConfig {
    /// Width of one mailbox entry (mail ⊕ time encoding).
    pub input: usize,
    /// Memory width.
    pub hidden: usize,
    /// Heads (must divide `hidden`) and dropout (TGL's `dropout` acts on the output layer).
    #[config(default = "AttentionHeadsConfig::new()")]
    pub attention: AttentionHeadsConfig,
}

/// Multi-head attention of the memory over its mailbox.
#[derive(Module, Debug)]
pub struct MailboxAttention {
    /// `[hidden, hidden]`.
    pub query: Linear,
    /// `[input, hidden]`.
    pub key: Linear,
    /// `[input, hidden]`.
    pub value: Linear,
    /// On the attention output plus the memory.
    pub norm: LayerNorm,
    /// `[hidden, hidden]`, after the norm.
    pub out: Linear,
    /// Number of heads.
    pub heads: usize,
    /// Applied to `out`'s output (training only).
    pub dropout: Dropout,
    /// Applied to the attention weights (training only).
    pub att_dropout: Dropout,
}

/// Slope of the scores' LeakyReLU (TGL's `att_act`).
const SLOPE: f64 = 0.2;

impl MailboxAttentionConfig {
    /// Builds the updater on `device`.
    ///
    /// # Panics
    /// If `heads` does not divide `hidden`, or a dropout is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> MailboxAttention {
        self.attention.assert_divides(self.hidden);
        let (dropout, att_dropout) = self.attention.dropouts();
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        MailboxAttention {
            query: lin(self.hidden, self.hidden),
            key: lin(self.input, self.hidden),
            value: lin(self.input, self.hidden),
            norm: crate::norm::init(self.hidden, device),
            out: lin(self.hidden, self.hidden),
            heads: self.attention.heads,
            dropout,
            att_dropout,
        }
    }
}

impl MailboxAttention {
    /// The new memories. A row without any mail yields ReLU(out(LayerNorm(h))): the caller keeps
    /// such a node's memory as it was ([`crate::memory::MemoryUpdater`]). Each mailbox entry is
    /// a mail beside its time encoding, given as the two parts: the mails are data and the
    /// encodings learned, and only the encodings' part gets a gradient formed.
    ///
    /// # Shapes
    /// - `mail`: `[N, M, mail]`, `time`: `[N, M, input − mail]`, `mask`: `[N, M]` (true = a
    ///   mail), `h`: `[N, hidden]`;
    /// - output: `[N, hidden]`.
    pub fn forward(
        &self,
        mail: Tensor<3>,
        time: Tensor<3>,
        mask: Tensor<2, Bool>,
        h: Tensor<2>,
    ) -> Tensor<2> {
        let [n, _, mail_width] = mail.dims();
        let d = h.dims()[1];
        let (heads, dh) = (self.heads, d / self.heads);
        // Each entry's columns, as the key's and value's weight rows run: the mail's, then its
        // encoding's.
        let parts = [(mail, 0), (time, mail_width)];
        // Keys and values are linear in a mail, so they are never formed: per head,
        // q·(W_k x + b_k) = (W_kᵀq)·x + q·b_k and Σ α (W_v x + b_v) = W_v (Σ α x) + b_v Σ α.
        // The products then run per root, not per mail (M times fewer flops), and the mails only
        // meet the query and the weights, in small batched products, part by part: the weights'
        // rows are narrowed, never the mails.
        let q: Tensor<3> = linear::forward(&self.query, h.clone()).reshape([n, heads, dh]);
        let w_k: Tensor<3> = per_head(&self.key, heads).swap_dims(1, 2); // [H, dh, input]
        let q_heads = q.clone().swap_dims(0, 1);
        let scores: Tensor<3> = sum(parts.iter().map(|(x, from)| {
            let width = x.dims()[2];
            let q_wk = batched_matmul(q_heads.clone(), w_k.clone().narrow(2, *from, width));
            batched_matmul(x.clone(), q_wk.permute([1, 2, 0])) // [N, M, H]
        }));
        let q_bk: Tensor<3> = (q * bias(&self.key, [1, heads, dh]))
            .sum_dim(2)
            .swap_dims(1, 2);
        let scores = leaky_relu(scores + q_bk, SLOPE);
        // Masked softmax over the slots; an all-empty row has all-zero weights.
        let keep: Tensor<3> = mask.clone().float().unsqueeze_dim(2);
        let scores = scores.mask_fill(mask.bool_not().unsqueeze_dim(2), -1e30);
        let weights = dropout(&self.att_dropout, softmax(scores, 1) * keep).swap_dims(1, 2);
        let total: Tensor<3> = weights.clone().sum_dim(2); // [N, H, 1]
        let w_v: Tensor<3> = per_head(&self.value, heads); // [H, input, dh]
        let a: Tensor<3> = sum(parts.into_iter().map(|(x, from)| {
            let width = x.dims()[2];
            let sums = batched_matmul(weights.clone(), x); // [N, H, width]
            batched_matmul(sums.swap_dims(0, 1), w_v.clone().narrow(1, from, width))
        }));
        let a = a.swap_dims(0, 1) + total * bias(&self.value, [1, heads, dh]);
        let normed = crate::norm::forward(&self.norm, a.reshape([n, d]) + h);
        let out = linear::forward(&self.out, normed);
        relu(dropout(&self.dropout, out))
    }
}

/// The sum of `terms` (at least one).
fn sum(terms: impl Iterator<Item = Tensor<3>>) -> Tensor<3> {
    terms.reduce(|a, b| a + b).expect("a term")
}
