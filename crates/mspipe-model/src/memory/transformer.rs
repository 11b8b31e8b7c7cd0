//! APAN's mailbox updater: the memory attends over its mails (each with its time encoding), and
//! the result is added to the memory and layer-normalised.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

use crate::attention::attend;

/// Configuration of a [`MailboxAttention`].
#[derive(Config, Debug)]
pub struct MailboxAttentionConfig {
    /// Width of one mailbox entry (mail ⊕ time encoding).
    pub input: usize,
    /// Memory width.
    pub hidden: usize,
    /// Attention heads (must divide `hidden`).
    #[config(default = 2)]
    pub heads: usize,
}

/// Multi-head attention of the memory over its mailbox.
#[derive(Module, Debug)]
pub struct MailboxAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    norm: LayerNorm,
    heads: usize,
}

impl MailboxAttentionConfig {
    /// Builds the updater on `device`.
    pub fn init(&self, device: &Device) -> MailboxAttention {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        MailboxAttention {
            query: lin(self.hidden, self.hidden),
            key: lin(self.input, self.hidden),
            value: lin(self.input, self.hidden),
            out: lin(self.hidden, self.hidden),
            norm: LayerNormConfig::new(self.hidden).init(device),
            heads: self.heads,
        }
    }
}

impl MailboxAttention {
    /// `h`: `[N, hidden]`, `mails`: `[N, M, input]`, `mask`: `[N, M]` → `[N, hidden]`.
    pub fn forward(&self, mails: Tensor<3>, mask: Tensor<2, Bool>, h: Tensor<2>) -> Tensor<2> {
        let [n, m, _] = mails.dims();
        let d = h.dims()[1];
        let dh = d / self.heads;
        let q = self.query.forward(h.clone()).reshape([n, self.heads, dh]);
        let k = self
            .key
            .forward(mails.clone())
            .reshape([n, m, self.heads, dh]);
        let v = self.value.forward(mails).reshape([n, m, self.heads, dh]);
        let a = attend(q, k, v, mask);
        self.norm.forward(h + self.out.forward(a))
    }
}
