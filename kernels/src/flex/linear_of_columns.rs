//! A linear layer on two row-aligned inputs side by side, `[a ‖ b]·W + bias`, on flex as an
//! operation of its own ([`LinearColumnsBackend`]). The forward is [`ColumnsBackend`]'s
//! concatenation and [`LinearBackend`]'s layer, the same values to the bit. The backward forms the
//! input's gradient for each tracked input alone, from its rows of `W`: a memory updater's input is
//! its stored mails (data) beside their time encodings (learned), and the product that would make
//! the mails' gradient — most of the input's width — is never run.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;

use super::linear::input_grad_rows;
use super::{ColumnsBackend, LinearBackend};
use crate::autodiff::finish;

/// The linear layer on columns side by side, on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait LinearColumnsBackend: Backend {
    /// `[a ‖ b]·w + bias`: `a` `[n, ca]`, `b` `[n, cb]`, `w` `[ca + cb, out]`, `bias` `[out]` →
    /// `[n, out]`.
    fn linear_of_columns(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

impl LinearColumnsBackend for Flex {
    fn linear_of_columns(
        a: FlexTensor,
        b: FlexTensor,
        w: FlexTensor,
        bias: FlexTensor,
    ) -> FlexTensor {
        Flex::linear_forward(Flex::concat_columns(a, b), w, bias)
    }
}

/// The layer under autodiff: the inputs' gradients from their own rows of the weight, the
/// weight's and bias's from the concatenated input.
#[derive(Debug)]
struct LinearOfColumnsBackward;

impl Backward<Flex, 4> for LinearOfColumnsBackward {
    /// The concatenated input, the weight, and the first input's width.
    type State = (FlexTensor, FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (x, w, ca) = ops.state;
        let width = x.shape()[1];
        let [node_a, node_b, node_w, node_bias] = ops.parents;
        for (node, rows) in [(node_a, 0..ca), (node_b, ca..width)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, input_grad_rows(&w, &grad, rows));
            }
        }
        if node_w.is_some() || node_bias.is_some() {
            let (dw, dbias) = Flex::linear_param_grads(x, grad);
            for (node, g) in [(node_w, dw), (node_bias, dbias)] {
                if let Some(node) = node {
                    grads.register::<Flex>(node.id, g);
                }
            }
        }
    }
}

impl<C: CheckpointStrategy> LinearColumnsBackend for Autodiff<Flex, C> {
    fn linear_of_columns(
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        w: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep =
            LinearOfColumnsBackward.prepare::<C>([a.node(), b.node(), w.node(), bias.node()]);
        let [a, b, w, bias] = [a, b, w, bias].map(|t| t.into_primitive());
        let ca = a.shape()[1];
        let x = Flex::concat_columns(a, b);
        let out = Flex::linear_forward(x.clone(), w.clone(), bias);
        finish(prep.compute_bound().stateful(), (x, w, ca), out)
    }
}
