//! burn's linear layer `x·W + b` and its batched product on flex as operations of their own
//! ([`LinearBackend`]), forward and backward, by the same GEMM flex calls — the same products, so
//! the same values to the bit.
//!
//! What it saves is around the products: flex makes every output as a zeroed byte vector and
//! then copies it into a fresh aligned allocation, and adds the bias as a separate operation with
//! its own output; here each output is written once, by the GEMM, into a buffer nobody zeroed. A
//! layer's forward is one product and a pass adding the bias; its backward computes only the
//! gradients autodiff asks for (an input that is data, as the memory updater's, gets none).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::Backward;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DispatchDevice, Flex, TensorMetadata, backend_extension};
use burn::prelude::Device;
use burn_flex::FlexTensor;

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{floats, par_filled, tensor};
use crate::autodiff::{backward_with, constant, finish, register, register_tracked};

/// The linear layer on backend primitives: `x` `[n, in]`, `w` `[in, out]`, `b` `[out]`.
#[backend_extension(Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x·w + b` `[n, out]`.
    fn linear_forward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The input's gradient `grad·wᵀ` `[n, in]` given the output's `grad` `[n, out]`.
    fn linear_input_grad(w: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The weight's and bias's gradients `xᵀ·grad` `[in, out]` and `Σ_rows grad` `[out]`.
    fn linear_param_grads(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `lhs` `[B, m, k]` · `rhs` `[B, k, n]` → `[B, m, n]`, batch by batch; either may be a
    /// strided view (a transpose), read in place.
    fn batched_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Whether `device` is flex (directly or under autodiff), where [`LinearBackend`] runs.
pub fn runs_on(device: &Device) -> bool {
    match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

impl LinearBackend for Flex {
    fn linear_forward(x: FlexTensor, w: FlexTensor, b: FlexTensor) -> FlexTensor {
        let [n, input, out] = dims(&x, &w);
        let (x, w, b) = (floats(&x), floats(&w), floats(&b));
        let (lhs, rhs) = (Matrix::rows(&x, input), Matrix::rows(&w, out));
        product([n, input, out], lhs, rhs, Some(&b))
    }

    fn linear_input_grad(w: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let ([n, out], [input, _]) = (matrix_dims(&grad), matrix_dims(&w));
        let (w, grad) = (floats(&w), floats(&grad));
        let (lhs, rhs) = (Matrix::rows(&grad, out), Matrix::columns(&w, out));
        product([n, out, input], lhs, rhs, None)
    }

    fn linear_param_grads(x: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let ([n, input], [_, out]) = (matrix_dims(&x), matrix_dims(&grad));
        let (x, grad) = (floats(&x), floats(&grad));
        let (lhs, rhs) = (Matrix::columns(&x, input), Matrix::rows(&grad, out));
        let dw = product([input, n, out], lhs, rhs, None);
        // Row after row, as flex's sum over the first dimension adds them.
        let mut db = vec![0.0f32; out];
        for row in grad.chunks_exact(out) {
            db.iter_mut().zip(row).for_each(|(s, g)| *s += g);
        }
        (dw, tensor(db, [out]))
    }

    fn batched_product(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
        let (l, r) = (lhs.shape(), rhs.shape());
        assert!(
            l.num_dims() == 3 && r.num_dims() == 3 && l[0] == r[0] && l[2] == r[1],
            "batched product of {l:?} and {r:?}"
        );
        let [batches, m, k, n] = [l[0], l[1], l[2], r[2]];
        // SAFETY: each batch's chunk is one `[m, n]` output, all of which `product_into` writes.
        let out = unsafe {
            par_filled(batches * m * n, (m * n).max(1), |b, out| {
                let (a, c) = (Matrix::batch(&lhs, b), Matrix::batch(&rhs, b));
                product_into(out, [m, k, n], a, c, None)
            })
        };
        tensor(out, [batches, m, n])
    }
}

/// `[n, in, out]` of a layer's input and weight.
///
/// # Panics
/// If the input's width is not the weight's height.
fn dims(x: &FlexTensor, w: &FlexTensor) -> [usize; 3] {
    let (x, w) = (x.shape(), w.shape());
    assert_eq!(
        x[1], w[0],
        "linear: input width {} ≠ weight rows {}",
        x[1], w[0]
    );
    [x[0], x[1], w[1]]
}

/// `[rows, columns]` of a 2-D tensor.
fn matrix_dims(t: &FlexTensor) -> [usize; 2] {
    let shape = t.shape();
    [shape[0], shape[1]]
}

/// A matrix read from a row-major buffer, as stored or transposed.
#[derive(Clone, Copy)]
struct Matrix<'a> {
    data: &'a [f32],
    /// Step between consecutive rows and columns of the matrix meant.
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// The buffer's matrix, rows of `width`.
    fn rows(data: &'a [f32], width: usize) -> Self {
        Matrix {
            data,
            row_stride: width as isize,
            col_stride: 1,
        }
    }

    /// Whether the buffer holds a `[rows, cols]` matrix at these strides.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        let last = |count: usize, stride: isize| count.saturating_sub(1) * stride.unsigned_abs();
        rows == 0
            || cols == 0
            || last(rows, self.row_stride) + last(cols, self.col_stride) < self.data.len()
    }

    /// Batch `b` of a 3-D tensor `[B, rows, cols]`, at the tensor's own strides.
    ///
    /// # Panics
    /// If a stride is negative (a flipped view).
    fn batch(t: &'a FlexTensor, b: usize) -> Self {
        let (strides, offset) = (t.layout().strides(), t.layout().start_offset());
        let stride = |i: usize| usize::try_from(strides[i]).expect("a flipped view");
        Matrix {
            data: &t.storage::<f32>()[offset + b * stride(0)..],
            row_stride: stride(1) as isize,
            col_stride: stride(2) as isize,
        }
    }

    /// The transpose of the buffer's matrix of rows of `width`.
    fn columns(data: &'a [f32], width: usize) -> Self {
        Matrix {
            data,
            row_stride: 1,
            col_stride: width as isize,
        }
    }
}

/// Products at least this large (m·k·n) split across rayon's pool, as flex splits them.
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// `lhs` `[m, k]` · `rhs` `[k, n]` (+ `bias` `[n]` on every row) → `[m, n]`, written once by the
/// GEMM.
fn product(shape: [usize; 3], lhs: Matrix, rhs: Matrix, bias: Option<&[f32]>) -> FlexTensor {
    let [m, _, n] = shape;
    // SAFETY: one chunk, the whole `[m, n]` output, which `product_into` writes (splitting it
    // across the pool itself).
    let out = unsafe {
        par_filled(m * n, (m * n).max(1), |_, out| {
            product_into(out, shape, lhs, rhs, bias)
        })
    };
    tensor(out, [m, n])
}

/// Writes `lhs` `[m, k]` · `rhs` `[k, n]` into `out` (row-major `[m, n]`), then adds `bias` `[n]`
/// to each row. A large product is split by output rows, one single-threaded GEMM per thread
/// (each adding the bias to its own rows while they are in cache); on the model's shapes this
/// split keeps both cores busier than the GEMM's own. The GEMM blocks its depth by the rows it is
/// given and the CPU's cache sizes, so the last bits of a product can depend on the thread count
/// (and on the CPU); with the same ones a run repeats to the bit.
fn product_into(
    out: &mut [MaybeUninit<f32>],
    [m, k, n]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
) {
    assert!(
        out.len() == m * n && lhs.holds(m, k) && rhs.holds(k, n),
        "product: operand or output smaller than its shape"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in out.chunks_exact_mut(n) {
            for (j, o) in row.iter_mut().enumerate() {
                o.write(bias.map_or(0.0, |b| b[j]));
            }
        }
        return;
    }
    let threads = if m * k * n >= PARALLEL_WORK {
        rayon::current_num_threads()
    } else {
        1
    };
    let rows = m.div_ceil(threads);
    out.par_chunks_mut(rows * n)
        .enumerate()
        .for_each(|(i, out)| {
            let first = (i * rows) as isize * lhs.row_stride;
            // SAFETY: the operands hold `[m, k]` and `[k, n]` at the strides given (asserted above)
            // and this chunk's rows start at `first`; `out` holds its rows of `n`, and with
            // `read_dst` false the GEMM writes every element without reading any
            // (dst = 0·dst + 1·lhs·rhs).
            unsafe {
                gemm::gemm(
                    out.len() / n,
                    n,
                    k,
                    out.as_mut_ptr().cast::<f32>(),
                    1,
                    n as isize,
                    false,
                    lhs.data.as_ptr().offset(first),
                    lhs.col_stride,
                    lhs.row_stride,
                    rhs.data.as_ptr(),
                    rhs.col_stride,
                    rhs.row_stride,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
            if let Some(bias) = bias {
                // SAFETY: the GEMM wrote every element of `out` just above.
                let out = unsafe { &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]) };
                for row in out.chunks_exact_mut(n) {
                    row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
                }
            }
        });
}

backward_with!(
    /// The linear layer under autodiff: the forward on the inner backend, recorded with its input
    /// and weight; the backward asks the inner backend for the tracked parents' gradients only.
    LinearBackward<B: LinearBackend>, 3,
    |grads, grad, (x: FloatTensor, w: FloatTensor), [node_x, node_w, node_b]| {
        register_tracked!(grads, node_x, B::linear_input_grad(w, grad.clone()));
        if node_w.is_some() || node_b.is_some() {
            let (dw, db) = B::linear_param_grads(x, grad);
            register!(grads, [node_w, node_b], [dw, db]);
        }
    }
);

backward_with!(
    /// The batched product under autodiff, with burn's own backward: `grad·rhsᵀ` and
    /// `lhsᵀ·grad`, the transposes as views, for the tracked parents only.
    BatchedProductBackward<B: LinearBackend>, 2,
    |grads, grad, (lhs: FloatTensor, rhs: FloatTensor), [node_lhs, node_rhs]| {
        let rhs_t = B::float_transpose(rhs);
        register_tracked!(grads, node_lhs, B::batched_product(grad.clone(), rhs_t));
        let lhs_t = B::float_transpose(lhs);
        register_tracked!(grads, node_rhs, B::batched_product(lhs_t, grad));
    }
);

impl<B: LinearBackend, C: CheckpointStrategy> LinearBackend for Autodiff<B, C> {
    fn linear_forward(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = LinearBackward.prepare::<C>([x.node(), w.node(), b.node()]);
        let [x, w, b] = [x, w, b].map(|t| t.into_primitive());
        let out = B::linear_forward(x.clone(), w.clone(), b);
        finish(prep.compute_bound().stateful(), (x, w), out)
    }

    fn batched_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = BatchedProductBackward.prepare::<C>([lhs.node(), rhs.node()]);
        let [lhs, rhs] = [lhs, rhs].map(|t| t.into_primitive());
        let out = B::batched_product(lhs.clone(), rhs.clone());
        finish(prep.compute_bound().stateful(), (lhs, rhs), out)
    }

    fn linear_input_grad(w: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        constant::<B, C>(B::linear_input_grad(
            w.into_primitive(),
            grad.into_primitive(),
        ))
    }

    fn linear_param_grads(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dw, db) = B::linear_param_grads(x.into_primitive(), grad.into_primitive());
        (constant::<B, C>(dw), constant::<B, C>(db))
    }
}
