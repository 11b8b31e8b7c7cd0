//! One layer of temporal graph attention (TGAT): the root attends over its sampled past
//! neighbours. Query from the root's representation ⊕ φ(0); keys and values from each neighbour's
//! representation ⊕ the edge's features ⊕ φ(Δt); padded slots masked; the attention output is
//! merged with the root's representation by a two-layer MLP (TGAT's merge layer). In training only,
//! TGL's two dropouts: `att_dropout` on each head's attention weights (where TGN's 0.1 acts, inside
//! `torch.nn.MultiheadAttention`) and `dropout` on the attention output and the merge layer's
//! hidden units.

use burn::nn::{Dropout, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use mspipe_kernels::{
    GatheredAttention, add_bias_where, batched_matmul, batched_matmul_side_by_side, select_rows,
};

use crate::draws::dropout;
use crate::input::SlotTimes;
use crate::linear::{self, bias, per_head};
use crate::{AttentionHeadsConfig, TimeEncoding};

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
    /// Heads (must divide `output`) and dropout.
    #[config(default = "AttentionHeadsConfig::new()")]
    pub attention: AttentionHeadsConfig,
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
    /// Applied to the attention output and the merge's hidden units (training only).
    pub dropout: Dropout,
    /// Applied to the attention weights (training only).
    pub att_dropout: Dropout,
}

/// Where the representations of a level (the roots, or their neighbours) come from.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // short-lived, one per layer per batch: boxing buys nothing
pub enum NeighborRows {
    /// `[R, K, input]`, one row per slot (`[1, R, input]` for roots).
    Dense(Tensor<3>),
    /// Rows `index` (`[R·K]`) of `table` (`[U, input]`): what is computed from a row alone is
    /// computed on the `U` table rows before the gather, which is cheaper when the level repeats
    /// nodes (`R·K ≫ U`).
    Gather {
        /// `[U, input]`.
        table: Tensor<2>,
        /// `[R·K]` rows of `table`.
        index: Tensor<1, Int>,
    },
}

impl From<Tensor<2>> for NeighborRows {
    /// `[R, input]` rows, one per root.
    fn from(rows: Tensor<2>) -> Self {
        NeighborRows::Dense(rows.unsqueeze())
    }
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
    ///
    /// # Panics
    /// If the heads do not divide `output`, or a dropout is not in `[0, 1)`.
    pub fn init(&self, device: &Device) -> TemporalAttention {
        self.attention.assert_divides(self.output);
        let (dropout, att_dropout) = self.attention.dropouts();
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let kv_in = self.input + self.edge + self.time;
        TemporalAttention {
            query: lin(self.input + self.time, self.output),
            key: lin(kv_in, self.output),
            value: lin(kv_in, self.output),
            merge_hidden: lin(self.output + self.input, self.output),
            merge_out: lin(self.output, self.output),
            heads: self.attention.heads,
            dropout,
            att_dropout,
        }
    }
}

impl TemporalAttention {
    /// `root`: `[R, input]` rows (or rows of a table) → `[R, output]`.
    ///
    /// The projections run per root, not per slot. With a slot's row `x = [h ‖ e ‖ φ(Δt)]`, head
    /// `h` scores `q_h·(x·W_k + b_k)_h / √dh = x·(W_k,h·q_h) / √dh + c(root, h)`, and the constant
    /// drops out of the softmax; its output is `Σ α·(x·W_v + b_v)_h = (Σ α·x)·W_v,h + b_v,h`. So
    /// the query is folded through `W_k` and `W_v` is applied to the weighted row sums, per head
    /// as batched products. The slots' rows are only read, from the distinct nodes' rows, the
    /// edges' features and the distinct Δt's encodings ([`mspipe_kernels::gathered_attention`]):
    /// no `[R·K, output]` keys or values exist. A root's query depends on its row alone: given
    /// roots as rows of a smaller table (a node that is the root of several events), the query
    /// and its fold through `W_k` are computed once per table row and gathered.
    pub fn forward(
        &self,
        root: impl Into<NeighborRows>,
        nbr: Neighbors,
        time: &TimeEncoding,
    ) -> Tensor<2> {
        let [r, k] = nbr.mask.dims();
        let (own, at) = own_rows(root.into(), r);
        let input = own.dims()[1];
        let device = own.device();
        let out = self.query.weight.dims()[1];
        let dh = out / self.heads;

        // Query: [h_root ‖ φ(0)]·W_q + b; φ(0) is one row shared by every root.
        let wq = self.query.weight.val();
        let time_dim = wq.dims()[0] - input;
        let zero_t: Tensor<2> = time.forward(Tensor::<1>::zeros([1], &device));
        let q = batched_matmul(
            own.clone().unsqueeze(),
            wq.clone().narrow(0, 0, input).unsqueeze(),
        )
        .squeeze_dim(0)
            + zero_t.matmul(wq.narrow(0, input, time_dim))
            + bias(&self.query, [1, out]);
        let root = match &at {
            Some(index) => select_rows(own, index.clone()),
            None => own,
        };

        // Slot rows [h ‖ e ‖ φ(Δt)]: h from `table`, the edge's features per slot, φ from the
        // distinct Δt's encodings.
        let (table, index) = match nbr.h {
            NeighborRows::Gather { table, index } => (table, index),
            NeighborRows::Dense(h) => (
                h.reshape([r * k, input]),
                Tensor::arange(0..(r * k) as i64, &device),
            ),
        };
        let phi: Tensor<2> = time.forward(nbr.dt.values);
        let edge_dim = self.key.weight.dims()[0] - input - time_dim;
        let edge = nbr.edge.map(|e| e.reshape([r * k, edge_dim]));
        // Per head h: q_h·W_k,hᵀ [H, R, row] (per table row, then gathered) and (Σ α·x)_h·W_v,h
        // [H, R, dh], as batched products.
        let heads = self.heads;
        let rows = q.dims()[0];
        let q: Tensor<3> = (q * (1.0 / (dh as f64).sqrt()))
            .reshape([rows, heads, dh])
            .swap_dims(0, 1);
        let w_k: Tensor<3> = per_head(&self.key, heads).swap_dims(1, 2);
        let q_k = batched_matmul(q, w_k);
        let q_k = match &at {
            Some(index) => rows_per_root(q_k, index),
            None => q_k,
        };
        let keep = nbr.mask.clone().float();
        // Attention dropout as a multiplier of the weights (ones in evaluation).
        let scale = dropout(&self.att_dropout, Tensor::ones([heads, r, k], &device));
        let sums = mspipe_kernels::gathered_attention(GatheredAttention {
            q: q_k,
            a: table,
            ia: index,
            e: edge,
            b: phi,
            ib: nbr.dt.index,
            keep,
            scale,
        });
        let w_v: Tensor<3> = per_head(&self.value, heads);
        let a = batched_matmul_side_by_side(sums, w_v);
        // A root without a real slot has zero weights: zeros, not b_v.
        let a = match &self.value.bias {
            Some(b) => add_bias_where(a, b.val(), nbr.mask.any_dim(1).float().reshape([r])),
            None => a,
        };
        let a = dropout(&self.dropout, a);
        // [a ‖ root]·W as one layer on both parts: each part's gradient comes from its own rows of
        // W, with no concatenated input gradient to split.
        let merged = relu(linear::of_columns(&self.merge_hidden, a, root));
        linear::forward(&self.merge_out, dropout(&self.dropout, merged))
    }
}

/// The rows a layer's root-only products run on, `[T, input]`, and when they are rows of a table
/// each root's row of it (`[r]`): the table when it has fewer rows than there are roots, else one
/// row per root.
fn own_rows(root: NeighborRows, r: usize) -> (Tensor<2>, Option<Tensor<1, Int>>) {
    match root {
        NeighborRows::Dense(h) => {
            let [a, b, c] = h.dims();
            (h.reshape([a * b, c]), None)
        }
        NeighborRows::Gather { table, index } if table.dims()[0] < r => (table, Some(index)),
        NeighborRows::Gather { table, index } => (select_rows(table, index), None),
    }
}

/// `[H, T, C]` per table row → `[H, R, C]` per root, root `i` taking row `index[i]` of every head.
fn rows_per_root(x: Tensor<3>, index: &Tensor<1, Int>) -> Tensor<3> {
    let [heads, t, c] = x.dims();
    let r = index.dims()[0];
    let first: Tensor<2, Int> = Tensor::<1, Int>::arange(0..heads as i64, &index.device())
        .mul_scalar(t as i64)
        .unsqueeze_dim(1);
    let at = (first + index.clone().unsqueeze_dim(0)).reshape([heads * r]);
    select_rows(x.reshape([heads * t, c]), at).reshape([heads, r, c])
}
