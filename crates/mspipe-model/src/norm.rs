//! burn's [`LayerNorm`] on rows, as one operation on flex ([`mspipe_kernels::layer_norm`]).

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

/// The ε every layer normalisation of the model adds to the variance (burn's default): set when
/// one is made and used by [`forward`] (burn's `LayerNorm` keeps its own private).
pub const EPSILON: f64 = 1e-5;

/// A layer normalisation of rows of `d` values with [`EPSILON`].
pub fn init(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(EPSILON).init(device)
}

/// `norm` on the rows of `x`.
///
/// # Shapes
/// - `x`: `[n, d]`; output: `[n, d]`.
pub fn forward(norm: &LayerNorm, x: Tensor<2>) -> Tensor<2> {
    let gamma = norm.gamma.val();
    let beta = match &norm.beta {
        Some(beta) => beta.val(),
        None => Tensor::zeros(gamma.dims(), &gamma.device()),
    };
    mspipe_kernels::layer_norm(x, gamma, beta, EPSILON)
}
