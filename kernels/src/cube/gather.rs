//! `a[ia] + b[ib] + bias` on cubecl backends, composed from the backend's own gathers and adds
//! (the scatter of the backward needs atomics or a sort in a kernel; the backend's own
//! `select_assign` already does it).

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, TensorMetadata};
use burn::tensor::{IndexingUpdateOp, Shape};

/// `[n, w]`.
pub fn forward<B: Backend>(
    a: FloatTensor<B>,
    ia: IntTensor<B>,
    b: FloatTensor<B>,
    ib: IntTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    let (n, w) = (ia.shape()[0], bias.shape()[0]);
    if n == 0 {
        // No burn op on an empty tensor: some backends trip on them.
        let dtype = a.dtype().into();
        return B::float_zeros(Shape::new([0, w]), &a.device(), dtype);
    }
    let rows = B::float_add(B::float_select(a, 0, ia), B::float_select(b, 0, ib));
    B::float_add(rows, B::float_reshape(bias, Shape::new([1, w])))
}

/// Gradients for `a`, `b` and `bias`.
pub fn backward<B: Backend>(
    a: FloatTensor<B>,
    ia: IntTensor<B>,
    b: FloatTensor<B>,
    ib: IntTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let (n, w) = (ia.shape()[0], a.shape()[1]);
    let zeros = |like: &FloatTensor<B>, shape: Shape| {
        B::float_zeros(shape, &like.device(), like.dtype().into())
    };
    let scatter = |table: FloatTensor<B>, index| {
        let empty = zeros(&table, table.shape());
        if n == 0 {
            return empty;
        }
        B::float_select_assign(empty, 0, index, grad.clone(), IndexingUpdateOp::Add)
    };
    let dbias = if n == 0 {
        zeros(&a, Shape::new([w]))
    } else {
        B::float_reshape(B::float_sum_dim(grad.clone(), 0), Shape::new([w]))
    };
    (scatter(a, ia), scatter(b, ib), dbias)
}
