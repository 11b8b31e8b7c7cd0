//! Two per-row choices of the model as operations of their own on flex ([`MaskedRowsBackend`]):
//! a node without mail keeps its memory (`updated·m + memory·(1 − m)` with `m` `[n, 1]`), and a
//! root without a real neighbour gets no value bias (`x + bias·m`). As burn operations these are
//! products against a broadcast column, which flex runs element by element through its strided
//! path on one thread, forward and backward. Here each row is copied, or has the bias added, in
//! parallel; the values are burn's but for the sign of a zero (burn adds `±0` where a row is not
//! chosen).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;

use super::{by_rows, column_sums, copied_rows, floats, tensor};
use crate::autodiff::finish;

/// Rows chosen by a mask, on backend primitives: `keep` `[n]` holds 1 for a chosen row, else 0.
#[backend_extension(Flex, Autodiff)]
pub trait MaskedRowsBackend: Backend {
    /// Row `i` of `a` `[n, d]` where `keep[i]` ≠ 0, else row `i` of `b` `[n, d]`.
    fn rows_where(
        keep: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x[i] + bias` (`x` `[n, d]`, `bias` `[d]`) where `keep[i]` ≠ 0, else `x[i]`.
    fn add_bias_where(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `[n, d]` of `t`, with `keep` one value per row.
///
/// # Panics
/// If `keep` does not hold one value per row.
fn rows_of(t: &FlexTensor, keep: &FlexTensor) -> [usize; 2] {
    let [n, d] = [t.shape()[0], t.shape()[1]];
    assert_eq!(keep.shape().num_elements(), n, "one mask value per row");
    [n, d]
}

impl MaskedRowsBackend for Flex {
    fn rows_where(keep: FlexTensor, a: FlexTensor, b: FlexTensor) -> FlexTensor {
        let [n, d] = rows_of(&a, &keep);
        assert_eq!(a.shape(), b.shape(), "rows_where: two shapes");
        let [keep, a, b] = [&keep, &a, &b].map(floats);
        copied_rows(n, d, |i| {
            let from = if keep[i] != 0.0 { &a } else { &b };
            [&from[i * d..][..d]]
        })
    }

    fn add_bias_where(x: FlexTensor, bias: FlexTensor, keep: FlexTensor) -> FlexTensor {
        let [n, d] = rows_of(&x, &keep);
        let [x, bias, keep] = [&x, &bias, &keep].map(floats);
        assert_eq!(bias.len(), d, "add_bias_where: one bias per column");
        by_rows(n, d, |i| {
            let kept = keep[i] != 0.0;
            let row = x[i * d..(i + 1) * d].iter().zip(bias.iter());
            row.map(move |(&v, &b)| if kept { v + b } else { v })
        })
    }
}

/// `grad`'s rows where `keep` is `kept` (≠ 0 when true), zeros elsewhere.
fn masked_grad(keep: &FlexTensor, grad: &FlexTensor, kept: bool) -> FlexTensor {
    let [n, d] = rows_of(grad, keep);
    let [keep, grad] = [keep, grad].map(floats);
    by_rows(n, d, |i| {
        let chosen = (keep[i] != 0.0) == kept;
        let row = grad[i * d..(i + 1) * d].iter();
        row.map(move |&v| if chosen { v } else { 0.0 })
    })
}

/// The choice under autodiff: each input gets the gradient of its chosen rows.
#[derive(Debug)]
struct RowsWhereBackward;

impl Backward<Flex, 2> for RowsWhereBackward {
    /// The mask.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        for (parent, kept) in ops.parents.into_iter().zip([true, false]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, masked_grad(&ops.state, &grad, kept));
            }
        }
    }
}

/// The bias under autodiff: `x` gets the gradient as it is, the bias the column sums of the
/// kept rows, row after row (as burn's sum of the masked gradient adds them).
#[derive(Debug)]
struct AddBiasWhereBackward;

impl Backward<Flex, 2> for AddBiasWhereBackward {
    /// The mask.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [node_x, node_bias] = ops.parents;
        if let Some(node) = node_bias {
            let [_, d] = rows_of(&grad, &ops.state);
            let (keep, g) = (floats(&ops.state), floats(&grad));
            let rows = g.chunks_exact(d.max(1)).zip(keep.iter());
            let kept = rows.filter(|(_, k)| **k != 0.0).map(|(row, _)| row);
            let sums = column_sums(kept, d, g.len());
            grads.register::<Flex>(node.id, tensor(sums, [d]));
        }
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

impl<C: CheckpointStrategy> MaskedRowsBackend for Autodiff<Flex, C> {
    fn rows_where(
        keep: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = RowsWhereBackward.prepare::<C>([a.node(), b.node()]);
        let [keep, a, b] = [keep, a, b].map(|t| t.into_primitive());
        let out = Flex::rows_where(keep.clone(), a, b);
        finish(prep.compute_bound().stateful(), keep, out)
    }

    fn add_bias_where(
        x: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = AddBiasWhereBackward.prepare::<C>([x.node(), bias.node()]);
        let [x, bias, keep] = [x, bias, keep].map(|t| t.into_primitive());
        let out = Flex::add_bias_where(x, bias, keep.clone());
        finish(prep.compute_bound().stateful(), keep, out)
    }
}
