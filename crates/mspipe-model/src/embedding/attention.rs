//! One layer of temporal graph attention (TGAT): the root attends over its sampled past
//! neighbours. Query from the root's representation ⊕ φ(0); keys and values from each neighbour's
//! representation ⊕ the edge's features ⊕ φ(Δt); padded slots masked; the attention output is
//! merged with the root's representation by a two-layer MLP (TGAT's merge layer).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::TimeEncoding;
use crate::attention::attend;

/// Configuration of a [`TemporalAttention`] layer.
#[derive(Config, Debug)]
pub struct TemporalAttentionConfig {
    /// Width of the representations entering the layer.
    pub input: usize,
    /// Edge-feature width (0: none).
    pub edge: usize,
    /// Time-encoding width.
    pub time: usize,
    /// Output width.
    pub output: usize,
    /// Heads (must divide `output`).
    #[config(default = 2)]
    pub heads: usize,
}

/// A temporal attention layer.
#[derive(Module, Debug)]
pub struct TemporalAttention {
    /// `[input + time, output]`.
    pub query: Linear,
    /// `[input + edge + time, output]`.
    pub key: Linear,
    /// `[input + edge + time, output]`.
    pub value: Linear,
    /// TGAT merge layer, `[output + input, output]`.
    pub merge_hidden: Linear,
    /// `[output, output]`.
    pub merge_out: Linear,
    /// Number of heads.
    pub heads: usize,
}

/// The neighbours of the roots of one layer.
#[derive(Debug, Clone)]
pub struct Neighbors {
    /// `[R, K, input]` neighbour representations.
    pub h: Tensor<3>,
    /// `[R, K]` root time minus event time.
    pub dt: Tensor<2>,
    /// `[R, K, edge]` edge features, if the layer has any.
    pub edge: Option<Tensor<3>>,
    /// `[R, K]` real (true) or padding (false).
    pub mask: Tensor<2, Bool>,
}

impl TemporalAttentionConfig {
    /// Builds the layer on `device`.
    pub fn init(&self, device: &Device) -> TemporalAttention {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let kv_in = self.input + self.edge + self.time;
        TemporalAttention {
            query: lin(self.input + self.time, self.output),
            key: lin(kv_in, self.output),
            value: lin(kv_in, self.output),
            merge_hidden: lin(self.output + self.input, self.output),
            merge_out: lin(self.output, self.output),
            heads: self.heads,
        }
    }
}

impl TemporalAttention {
    /// `root`: `[R, input]` → `[R, output]`.
    pub fn forward(&self, root: Tensor<2>, nbr: Neighbors, time: &TimeEncoding) -> Tensor<2> {
        let [r, k, _] = nbr.h.dims();
        let device = root.device();
        let zero_t: Tensor<2> = time.forward(Tensor::<1>::zeros([r], &device));
        let q_in = Tensor::cat(vec![root.clone(), zero_t], 1);
        let mut kv = vec![nbr.h, time.forward(nbr.dt)];
        if let Some(e) = nbr.edge {
            kv.insert(1, e);
        }
        let kv_in = Tensor::cat(kv, 2);
        let out = self.query.weight.dims()[1];
        let dh = out / self.heads;
        let q = self.query.forward(q_in).reshape([r, self.heads, dh]);
        let key = self
            .key
            .forward(kv_in.clone())
            .reshape([r, k, self.heads, dh]);
        let value = self.value.forward(kv_in).reshape([r, k, self.heads, dh]);
        let a = attend(q, key, value, nbr.mask);
        let merged = relu(self.merge_hidden.forward(Tensor::cat(vec![a, root], 1)));
        self.merge_out.forward(merged)
    }
}
