//! burn's [`Linear`] on the shapes the model feeds it: rows of a 3-D tensor, and its bias as a
//! broadcastable row.

use burn::nn::Linear;
use burn::prelude::*;

/// `layer` on `x`: burn's linear layer, as one operation on flex ([`mspipe_kernels::linear`],
/// the same values to the bit).
///
/// # Shapes
/// - `x`: `[n, in]`; output: `[n, out]`.
pub fn forward(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    match &layer.bias {
        Some(b) => mspipe_kernels::linear(x, layer.weight.val(), b.val()),
        None => layer.forward(x),
    }
}

/// `layer` on `a` and `b` side by side, `[a ‖ b]` ([`mspipe_kernels::linear_of_columns`]: the
/// same values as [`forward`] on the concatenation, and no input gradient for a part that is data).
///
/// # Shapes
/// - `a`: `[n, ca]`, `b`: `[n, cb]` with `ca + cb = in`; output: `[n, out]`.
pub fn of_columns(layer: &Linear, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    match &layer.bias {
        Some(bias) => mspipe_kernels::linear_of_columns(a, b, layer.weight.val(), bias.val()),
        None => layer.forward(mspipe_kernels::concat_columns(a, b)),
    }
}

/// `layer` on every row of `[N, M, in]` as one `[N·M, in]` product. burn keeps a product with
/// few rows per batch (`M`) batched, one small product per `n` against the broadcast weight, whose
/// gradient is then an `[N, in, out]` tensor summed over `N`: `N` copies of the weight's size.
///
/// # Shapes
/// - `x`: `[N, M, in]`; output: `[N, M, out]`.
pub fn rows(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [n, m, input] = x.dims();
    let y = forward(layer, x.reshape([n * m, input]));
    let out = y.dims()[1];
    y.reshape([n, m, out])
}

/// `layer`'s bias reshaped to `shape` (zeros for a layer without one).
///
/// # Panics
/// If `shape` does not hold exactly the layer's output width.
pub fn bias<const D: usize>(layer: &Linear, shape: [usize; D]) -> Tensor<D> {
    match &layer.bias {
        Some(b) => b.val().reshape(shape),
        None => Tensor::zeros(shape, &layer.weight.device()),
    }
}

/// `layer`'s weight `[in, heads·dh]` split by head: `[heads, in, dh]`, head `h` holding output
/// columns `h·dh..(h + 1)·dh`.
///
/// # Panics
/// If `heads` does not divide the layer's output width.
pub fn per_head(layer: &Linear, heads: usize) -> Tensor<3> {
    let [input, out] = layer.weight.dims();
    layer
        .weight
        .val()
        .reshape([input, heads, out / heads])
        .swap_dims(0, 1)
}
