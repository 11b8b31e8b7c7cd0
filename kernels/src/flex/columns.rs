//! Two row-aligned tensors side by side, `[a ‖ b]`, on flex as an operation of its own
//! ([`ColumnsBackend`]): flex's `cat` copies on the training thread alone, which for APAN's
//! updater input (ten mails a node beside their time encodings) is tens of megabytes a batch.
//! Here blocks of rows are copied in parallel, and so are the backward's: each tracked input gets
//! its columns of the gradient as a tensor of its own. (A view of them, as burn's `cat` hands out,
//! is copied later anyway, by flex's strided copy at a fraction of the speed, as soon as it is
//! reshaped: APAN's time encodings are.)

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;

use super::{copied_rows, floats};
use crate::autodiff::finish;

/// Columns side by side, on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait ColumnsBackend: Backend {
    /// `[a ‖ b]`: `a` `[n, ca]` and `b` `[n, cb]` → `[n, ca + cb]`.
    fn concat_columns(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `[n, ca, cb]` of the two inputs.
///
/// # Panics
/// If they do not have the same rows.
fn dims(a: &FlexTensor, b: &FlexTensor) -> [usize; 3] {
    let (a, b) = (a.shape(), b.shape());
    assert_eq!(a[0], b[0], "concat_columns: {} rows beside {}", a[0], b[0]);
    [a[0], a[1], b[1]]
}

impl ColumnsBackend for Flex {
    fn concat_columns(a: FlexTensor, b: FlexTensor) -> FlexTensor {
        let [n, ca, cb] = dims(&a, &b);
        let width = ca + cb;
        let (a, b) = (floats(&a), floats(&b));
        copied_rows(n, width, |i| [&a[i * ca..][..ca], &b[i * cb..][..cb]])
    }
}

/// The concatenation under autodiff: each input gets its columns of the gradient.
#[derive(Debug)]
struct ConcatColumnsBackward;

impl Backward<Flex, 2> for ConcatColumnsBackward {
    /// The first input's width.
    type State = usize;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [n, width] = [grad.shape()[0], grad.shape()[1]];
        let ca = ops.state;
        let values = floats(&grad);
        let [node_a, node_b] = ops.parents;
        for (node, (from, len)) in [(node_a, (0, ca)), (node_b, (ca, width - ca))] {
            if let Some(node) = node {
                let part = copied_rows(n, len, |i| [&values[i * width + from..][..len]]);
                grads.register::<Flex>(node.id, part);
            }
        }
    }
}

impl<C: CheckpointStrategy> ColumnsBackend for Autodiff<Flex, C> {
    fn concat_columns(a: FloatTensor<Self>, b: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = ConcatColumnsBackward.prepare::<C>([a.node(), b.node()]);
        let [a, b] = [a, b].map(|t| t.into_primitive());
        let ca = a.shape()[1];
        let out = Flex::concat_columns(a, b);
        finish(prep.compute_bound().stateful(), ca, out)
    }
}
