//! The Elman RNN cell's activation `tanh(gi + gh)` from its two products as one operation on flex
//! ([`RnnBackend`]). burn adds the products and then runs libm's scalar `tanhf` element by element
//! on one thread, and its backward is three more operations; here the sum and the tanh (the
//! vectorisable one the GRU's gates use, within 2e-7 of the exact value) run in one parallel pass,
//! and the backward `g·(1 − h'²)` in another.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;
use multiversion::multiversion;

use super::exp::tanh;
use super::{floats, par_filled};
use crate::autodiff::finish;

/// Elements per parallel task.
const BLOCK: usize = 1 << 14;

/// The RNN cell's activation on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait RnnBackend: Backend {
    /// `tanh(gi + gh)`, both `[n, d]`.
    fn rnn_gates(gi: FloatTensor<Self>, gh: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `f` over the elements of `a` and `b` (one shape), blocks in parallel.
fn zip_map(
    a: &FlexTensor,
    b: &FlexTensor,
    f: fn(&[f32], &[f32], &mut [std::mem::MaybeUninit<f32>]),
) -> FlexTensor {
    assert_eq!(a.shape(), b.shape(), "rnn_gates: two shapes");
    let shape: Vec<usize> = a.shape().iter().copied().collect();
    let (a, b) = (floats(a), floats(b));
    // SAFETY: `f` writes every element of the block it is handed.
    let out = unsafe {
        par_filled(a.len(), BLOCK, |i, out| {
            let at = i * BLOCK..i * BLOCK + out.len();
            f(&a[at.clone()], &b[at], out);
        })
    };
    FlexTensor::from_data(burn::tensor::TensorData::new(out, shape))
}

#[multiversion(targets = "simd")]
fn forward_block(gi: &[f32], gh: &[f32], out: &mut [std::mem::MaybeUninit<f32>]) {
    for ((o, &a), &b) in out.iter_mut().zip(gi).zip(gh) {
        o.write(tanh(a + b));
    }
}

#[multiversion(targets = "simd")]
fn backward_block(h: &[f32], grad: &[f32], out: &mut [std::mem::MaybeUninit<f32>]) {
    for ((o, &y), &g) in out.iter_mut().zip(h).zip(grad) {
        o.write(g * (1.0 - y * y));
    }
}

impl RnnBackend for Flex {
    fn rnn_gates(gi: FlexTensor, gh: FlexTensor) -> FlexTensor {
        zip_map(&gi, &gh, forward_block)
    }
}

/// The activation under autodiff: both products get `g·(1 − h'²)`.
#[derive(Debug)]
struct RnnGatesBackward;

impl Backward<Flex, 2> for RnnGatesBackward {
    /// The output `h'`.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let d = zip_map(&ops.state, &grad, backward_block);
        for node in ops.parents.into_iter().flatten() {
            grads.register::<Flex>(node.id, d.clone());
        }
    }
}

impl<C: CheckpointStrategy> RnnBackend for Autodiff<Flex, C> {
    fn rnn_gates(gi: FloatTensor<Self>, gh: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = RnnGatesBackward.prepare::<C>([gi.node(), gh.node()]);
        let [gi, gh] = [gi, gh].map(|t| t.into_primitive());
        let out = Flex::rnn_gates(gi, gh);
        finish(prep.compute_bound().stateful(), out.clone(), out)
    }
}
