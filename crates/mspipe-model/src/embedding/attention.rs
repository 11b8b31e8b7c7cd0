//! One layer of temporal graph attention (TGAT): the root attends over its sampled past
//! neighbours. Query from the root's representation ⊕ φ(0); keys and values from each neighbour's
//! representation ⊕ the edge's features ⊕ φ(Δt); padded slots masked; the attention output is
//! merged with the root's representation by a two-layer MLP (TGAT's merge layer).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::TimeEncoding;
use crate::attention::attend;
use crate::input::SlotTimes;

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

/// Where the neighbours' representations come from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, one per layer per batch: boxing buys nothing
pub enum NeighborRows {
    /// `[R, K, input]`, one row per slot.
    Dense(Tensor<3>),
    /// Rows `index` (`[R·K]`) of `table` (`[U, input]`): the projection is applied to the `U`
    /// table rows before the gather, which is cheaper when slots repeat nodes (`R·K ≫ U`).
    Gather {
        table: Tensor<2>,
        index: Tensor<1, Int>,
    },
}

/// The neighbours of the roots of one layer.
#[derive(Debug, Clone)]
pub struct Neighbors {
    /// The neighbour representations.
    pub h: NeighborRows,
    /// Root time minus event time of the `R·K` slots.
    pub dt: SlotTimes,
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
    ///
    /// Keys and values are `[h ‖ e ‖ φ(Δt)]·W + b`, computed as `h·W_h + e·W_e + φ(Δt)·W_t + b`:
    /// the node part on the distinct rows only, the time part on the distinct Δt only, and no
    /// concatenated `[R·K, input + edge + time]` input is materialised.
    pub fn forward(&self, root: Tensor<2>, nbr: Neighbors, time: &TimeEncoding) -> Tensor<2> {
        let [r, k] = nbr.mask.dims();
        let input = root.dims()[1];
        let device = root.device();
        let out = self.query.weight.dims()[1];
        let dh = out / self.heads;

        // Query: [h_root ‖ φ(0)]·W_q + b; φ(0) is one row shared by every root.
        let wq = self.query.weight.val();
        let time_dim = wq.dims()[0] - input;
        let zero_t: Tensor<2> = time.forward(Tensor::<1>::zeros([1], &device));
        let q = root.clone().matmul(wq.clone().narrow(0, 0, input))
            + zero_t.matmul(wq.narrow(0, input, time_dim))
            + bias(&self.query, out);
        let q = q.reshape([r, self.heads, dh]);

        // Keys and values, each `[R, K, H, dh]` and contiguous (no column slices to copy).
        let edge_dim = self.key.weight.dims()[0] - input - time_dim;
        // φ(Δt) once per distinct Δt; its products are gathered to the slots.
        let phi: Tensor<2> = time.forward(nbr.dt.values);
        let edge = nbr.edge.map(|e| e.reshape([r * k, edge_dim]));
        let project = |layer: &Linear| -> Tensor<4> {
            let w = layer.weight.val();
            let time_part = phi
                .clone()
                .matmul(w.clone().narrow(0, input + edge_dim, time_dim));
            // One pass: each slot's node row + its Δt's row + the bias. Dense rows are their own
            // table, one row per slot.
            let (table, index) = match &nbr.h {
                NeighborRows::Gather { table, index } => (table.clone(), index.clone()),
                NeighborRows::Dense(h) => (
                    h.clone().reshape([r * k, input]),
                    Tensor::arange(0..(r * k) as i64, &h.device()),
                ),
            };
            let mut x = mspipe_kernels::gather_add(
                table.matmul(w.clone().narrow(0, 0, input)),
                index,
                time_part,
                nbr.dt.index.clone(),
                bias(layer, out).reshape([out]),
            );
            if let Some(e) = &edge {
                x = x + e.clone().matmul(w.narrow(0, input, edge_dim));
            }
            x.reshape([r, k, self.heads, dh])
        };
        let (key, value) = (project(&self.key), project(&self.value));
        let a = attend(q, key, value, nbr.mask);
        let merged = relu(self.merge_hidden.forward(Tensor::cat(vec![a, root], 1)));
        self.merge_out.forward(merged)
    }
}

/// A layer's bias as a `[1, out]` row (zeros when it has none).
fn bias(layer: &Linear, out: usize) -> Tensor<2> {
    match &layer.bias {
        Some(b) => b.val().unsqueeze(),
        None => Tensor::zeros([1, out], &layer.weight.device()),
    }
}
