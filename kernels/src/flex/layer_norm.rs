//! Layer normalisation of rows as one operation on flex, forward and backward
//! ([`LayerNormBackend`]). Under autodiff burn composes it from nine elementwise operations (mean,
//! centring, variance, square root, division, scale, shift) and their backwards, each a pass over
//! the rows; here the forward is one parallel pass that also keeps each row's normalised values
//! and reciprocal deviation, and the backward one pass for the input's gradient and one, by
//! column ranges, for the scale's and shift's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;
use multiversion::multiversion;
use rayon::prelude::*;

use super::{ROWS_TASK, by_column_ranges, by_rows, column_sums, floats, tensor};
use crate::autodiff::{finish, register_tracked};

/// Layer normalisation on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait LayerNormBackend: Backend {
    /// Each row of `x` `[n, d]` less its mean, over its deviation (`epsilon` added to the
    /// variance), times `gamma` plus `beta` (both `[d]`).
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// Each row's normalised values `[n, d]` and reciprocal deviation `[n]`.
///
/// # Panics
/// If the rows are empty (`d` = 0).
fn normalise(x: &FlexTensor, epsilon: f64) -> (Vec<f32>, Vec<f32>) {
    let [n, d] = [x.shape()[0], x.shape()[1]];
    assert!(d > 0, "layer_norm_rows: rows of no values");
    let x = floats(x);
    let mut normed = vec![0.0f32; n * d];
    let mut inv = vec![0.0f32; n];
    let rows = (ROWS_TASK / d).max(1);
    normed
        .par_chunks_mut(rows * d)
        .zip(inv.par_chunks_mut(rows))
        .enumerate()
        .with_max_len(1)
        .for_each(|(task, (out, inv))| {
            let x = &x[task * rows * d..][..out.len()];
            normalise_rows(x, d, epsilon as f32, out, inv);
        });
    (normed, inv)
}

#[multiversion(targets = "simd")]
fn normalise_rows(x: &[f32], d: usize, epsilon: f32, out: &mut [f32], inv: &mut [f32]) {
    for ((x, out), inv) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).zip(inv) {
        let mean = x.iter().sum::<f32>() / d as f32;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        *inv = 1.0 / (var + epsilon).sqrt();
        out.iter_mut()
            .zip(x)
            .for_each(|(o, v)| *o = (v - mean) * *inv);
    }
}

/// `normed · gamma + beta` by rows.
fn scale_shift(normed: &[f32], gamma: &[f32], beta: &[f32], n: usize) -> FlexTensor {
    let d = gamma.len();
    by_rows(n, d, |i| {
        normed[i * d..][..d]
            .iter()
            .zip(gamma)
            .zip(beta)
            .map(|((v, g), b)| v * g + b)
    })
}

impl LayerNormBackend for Flex {
    fn layer_norm_rows(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let n = x.shape()[0];
        let (normed, _) = normalise(&x, epsilon);
        scale_shift(&normed, &floats(&gamma), &floats(&beta), n)
    }
}

/// The gradient of the rows' input: with `ĝ = g·gamma`, row by row
/// `inv · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂))`.
fn input_grad(normed: &[f32], inv: &[f32], gamma: &[f32], grad: &[f32]) -> FlexTensor {
    let d = gamma.len();
    by_rows(inv.len(), d, |i| {
        let (xh, g) = (&normed[i * d..][..d], &grad[i * d..][..d]);
        let gg = |j: usize| g[j] * gamma[j];
        let mean_g = (0..d).map(gg).sum::<f32>() / d as f32;
        let mean_gx = (0..d).map(|j| gg(j) * xh[j]).sum::<f32>() / d as f32;
        (0..d).map(move |j| inv[i] * (gg(j) - mean_g - xh[j] * mean_gx))
    })
}

/// `Σ_rows grad · x̂` by column, the rows in order.
fn scale_grad(normed: &[f32], grad: &[f32], d: usize) -> Vec<f32> {
    by_column_ranges(d, grad.len(), |first, sums| {
        for (x, g) in normed.chunks_exact(d).zip(grad.chunks_exact(d)) {
            let (x, g) = (&x[first..][..sums.len()], &g[first..][..sums.len()]);
            sums.iter_mut()
                .zip(x.iter().zip(g))
                .for_each(|(s, (x, g))| *s += x * g);
        }
    })
}

/// The normalisation under autodiff: the input's, scale's and shift's gradients from the
/// forward's normalised rows and reciprocal deviations.
#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    /// `x̂` `[n, d]`, the reciprocal deviations `[n]` and `gamma`.
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (normed, inv, gamma) = ops.state;
        let d = gamma.shape()[0];
        let [normed, inv, gamma, grad] = [&normed, &inv, &gamma, &grad].map(floats);
        let [node_x, node_gamma, node_beta] = ops.parents;
        // The gradients are flex's (`register_tracked!` names the backend `B`).
        type B = Flex;
        register_tracked!(grads, node_x, input_grad(&normed, &inv, &gamma, &grad));
        register_tracked!(
            grads,
            node_gamma,
            tensor(scale_grad(&normed, &grad, d), [d])
        );
        let beta = column_sums(grad.chunks_exact(d.max(1)), d, grad.len());
        register_tracked!(grads, node_beta, tensor(beta, [d]));
    }
}

impl<C: CheckpointStrategy> LayerNormBackend for Autodiff<Flex, C> {
    fn layer_norm_rows(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        let prep = LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]);
        let [x, gamma, beta] = [x, gamma, beta].map(|t| t.into_primitive());
        let n = x.shape()[0];
        let (normed, inv) = normalise(&x, epsilon);
        let out = scale_shift(&normed, &floats(&gamma), &floats(&beta), n);
        let d = gamma.shape()[0];
        let state = (tensor(normed, [n, d]), tensor(inv, [n]), gamma);
        finish(prep.compute_bound().stateful(), state, out)
    }
}
