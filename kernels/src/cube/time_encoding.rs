//! φ(Δt) = cos(Δt·w + b) on cubecl backends, composed from the backend's own ops: with the
//! attention and memory kernels doing the heavy lifting there, a kernel of its own would save one
//! elementwise pass and is not worth a second copy of the math.

use burn::backend::Backend;
use burn::backend::TensorMetadata;
use burn::backend::tensor::FloatTensor;
use burn::tensor::Shape;

/// Δt·w + b as `[n, T]`.
fn phase<B: Backend>(dt: FloatTensor<B>, w: FloatTensor<B>, b: FloatTensor<B>) -> FloatTensor<B> {
    let (n, t) = (dt.shape()[0], w.shape()[0]);
    let dt = B::float_reshape(dt, Shape::new([n, 1]));
    let row = |x| B::float_reshape(x, Shape::new([1, t]));
    B::float_add(B::float_mul(dt, row(w)), row(b))
}

/// `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`.
pub fn forward<B: Backend>(
    dt: FloatTensor<B>,
    w: FloatTensor<B>,
    b: FloatTensor<B>,
) -> FloatTensor<B> {
    let (n, t) = (dt.shape()[0], w.shape()[0]);
    if n == 0 {
        // No burn op on an empty tensor: some backends trip on them.
        let dtype = w.dtype().into();
        return B::float_zeros(Shape::new([0, t]), &w.device(), dtype);
    }
    B::float_cos(phase::<B>(dt, w, b))
}

/// Gradients for `w` and `b`: ∂/∂w = Σ −sin(Δt·w + b)·g·Δt, ∂/∂b = Σ −sin(Δt·w + b)·g.
pub fn backward<B: Backend>(
    dt: FloatTensor<B>,
    w: FloatTensor<B>,
    b: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let (n, t) = (dt.shape()[0], w.shape()[0]);
    if n == 0 {
        let zeros = |x| B::float_mul_scalar(x, 0.0.into());
        return (zeros(w.clone()), zeros(w));
    }
    let dphase = B::float_mul(
        B::float_neg(B::float_sin(phase::<B>(dt.clone(), w, b))),
        grad,
    );
    let column_sum = |x| B::float_reshape(B::float_sum_dim(x, 0), Shape::new([t]));
    let dt = B::float_reshape(dt, Shape::new([n, 1]));
    (
        column_sum(B::float_mul(dphase.clone(), dt)),
        column_sum(dphase),
    )
}
