//! burn's linear layer `x·W + b` and its batched product on flex as operations of their own
//! ([`LinearBackend`]), forward and backward, by the same GEMM flex calls — the same products, so
//! the same values to the bit — but for a layer with one output, whose output and weight gradient
//! are dot products ([`matvec`]), within rounding of the GEMM's.
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
use burn_flex::{FlexTensor, Layout};
use rayon::prelude::*;

use super::{column_sums, floats, matvec, small_product, tensor};
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

    /// `lhs` `[B, m, k]` · `rhs` `[B, k, n]` → `[B, m, n]`, batch by batch, laid out as `layout`
    /// says; either operand may be a strided view (a transpose), read in place.
    fn batched_product(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        layout: BatchLayout,
    ) -> FloatTensor<Self>;

    /// The gradient `grad·rhsᵀ` `[B, m, k]` of a batched product's `lhs`, laid out as `lhs` is
    /// when `lhs` is a dense view with adjacent columns (so the views that made `lhs` undo
    /// without a copy), else stacked.
    fn batched_lhs_grad(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// How a batched product lays out its `[B, m, n]` output in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchLayout {
    /// Batch after batch: contiguous `[B, m, n]`.
    Stacked,
    /// Each output row's batches side by side: the buffer is `[m, B, n]`, so the per-head
    /// outputs of an attention layer are already its `[m, B·n]` concatenation.
    SideBySide,
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
        layer_product([n, input, out], lhs, rhs, Some(&b))
    }

    fn linear_input_grad(w: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let input = matrix_dims(&w)[0];
        input_grad_rows(&w, &grad, 0..input)
    }

    fn linear_param_grads(x: FlexTensor, grad: FlexTensor) -> (FlexTensor, FlexTensor) {
        let ([n, input], [_, out]) = (matrix_dims(&x), matrix_dims(&grad));
        let (x, grad) = (floats(&x), floats(&grad));
        let (lhs, rhs) = (Matrix::columns(&x, input), Matrix::rows(&grad, out));
        let dw = layer_product([input, n, out], lhs, rhs, None);
        (
            dw,
            tensor(
                column_sums(grad.chunks_exact(out.max(1)), out, grad.len()),
                [out],
            ),
        )
    }

    fn batched_product(lhs: FlexTensor, rhs: FlexTensor, layout: BatchLayout) -> FlexTensor {
        let [batches, m, _, n] = batched_dims(&lhs, &rhs);
        let place = match layout {
            BatchLayout::Stacked => Placement::stacked(m, n),
            BatchLayout::SideBySide => Placement::side_by_side(batches, n),
        };
        batched(&lhs, &rhs, place)
    }

    fn batched_lhs_grad(lhs: FlexTensor, rhs: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let rhs_t = rhs.transpose(1, 2);
        let [_, m, _, k] = batched_dims(&grad, &rhs_t);
        let place = Placement::like(&lhs).unwrap_or(Placement::stacked(m, k));
        batched(&grad, &rhs_t, place)
    }
}

/// `[B, m, k, n]` of a batched product's operands.
///
/// # Panics
/// If they are not `[B, m, k]` and `[B, k, n]`.
fn batched_dims(lhs: &FlexTensor, rhs: &FlexTensor) -> [usize; 4] {
    let (l, r) = (lhs.shape(), rhs.shape());
    assert!(
        l.num_dims() == 3 && r.num_dims() == 3 && l[0] == r[0] && l[2] == r[1],
        "batched product of {l:?} and {r:?}"
    );
    [l[0], l[1], l[2], r[2]]
}

/// Where a batched product's `[B, m, n]` output sits in its buffer: batch `b`'s row `i` starts at
/// `b·batch + i·row`, its columns adjacent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Placement {
    batch: usize,
    row: usize,
}

impl Placement {
    fn stacked(m: usize, n: usize) -> Self {
        Placement {
            batch: m * n,
            row: n,
        }
    }

    fn side_by_side(batches: usize, n: usize) -> Self {
        Placement {
            batch: n,
            row: batches * n,
        }
    }

    /// `t`'s own placement, when `t` `[B, m, n]` covers its buffer from the start exactly once
    /// with adjacent columns (a permutation of a contiguous tensor that keeps the last axis).
    fn like(t: &FlexTensor) -> Option<Self> {
        let layout = t.layout();
        let (shape, strides) = (layout.shape(), layout.strides());
        let place = Placement {
            batch: usize::try_from(strides[0]).ok()?,
            row: usize::try_from(strides[1]).ok()?,
        };
        let [batches, m, n] = [shape[0], shape[1], shape[2]];
        let dense = [
            Placement::stacked(m, n),
            Placement::side_by_side(batches, n),
        ]
        .contains(&place);
        (dense && strides[2] == 1 && layout.start_offset() == 0).then_some(place)
    }
}

/// `lhs` · `rhs` batch by batch, each batch's product written where `place` puts it: the batches
/// in parallel, a large product split further by rows; products with little work per output row
/// through a thin side by plain loops, blocks of rows in parallel ([`small_product`]).
fn batched(lhs: &FlexTensor, rhs: &FlexTensor, place: Placement) -> FlexTensor {
    let [batches, m, k, n] = batched_dims(lhs, rhs);
    let len = batches * m * n;
    let mut out = Vec::<f32>::with_capacity(len);
    let dst = Out(out.as_mut_ptr());
    let operands = |b| {
        let (a, c) = (Matrix::batch(lhs, b), Matrix::batch(rhs, b));
        assert!(
            a.holds(m, k) && c.holds(k, n),
            "batched product: operand smaller than its shape"
        );
        (a, c)
    };
    // SAFETY (both arms): the placements of a stacked or side-by-side layout give each (batch,
    // row, column) its own element of the `len` allocated: tasks write disjoint elements.
    if small_product::runs_here([k, n]) {
        let per_task = small_product::rows_per_task([k, n]);
        let blocks = m.div_ceil(per_task);
        (0..batches * blocks).into_par_iter().for_each(|task| {
            let (b, first) = (task / blocks, task % blocks * per_task);
            let (a, c) = operands(b);
            let rows = per_task.min(m - first);
            unsafe {
                let dst = dst.offset(b * place.batch + first * place.row).0;
                small_product::product_at(dst, place.row, [rows, k, n], a.rows_from(first), c)
            }
        });
    } else {
        (0..batches).into_par_iter().for_each(|b| {
            let (a, c) = operands(b);
            unsafe {
                product_at(
                    dst.offset(b * place.batch),
                    place.row,
                    [m, k, n],
                    a,
                    c,
                    None,
                )
            }
        });
    }
    // SAFETY: every batch's product wrote its `[m, n]` elements, which together are all `len`.
    unsafe { out.set_len(len) };
    let strides = vec![place.batch as isize, place.row as isize, 1];
    tensor(out, [len]).with_layout(Layout::new([batches, m, n].into(), strides, 0))
}

/// A product's output buffer, shared by the tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct Out(*mut f32);

// SAFETY: the tasks holding an `Out` write disjoint elements (each user's contract).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The buffer `count` floats further on.
    ///
    /// # Safety
    /// The result must stay within the allocation.
    unsafe fn offset(self, count: usize) -> Out {
        // SAFETY: the caller's contract.
        Out(unsafe { self.0.add(count) })
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

/// The gradient `grad·w[rows]ᵀ` `[n, rows.len()]` of the input columns `rows` of a layer with
/// weight `w` `[in, out]`, given the output's `grad` `[n, out]`: each element is the same sum over
/// `out` as in the whole input's gradient.
pub(super) fn input_grad_rows(
    w: &FlexTensor,
    grad: &FlexTensor,
    rows: std::ops::Range<usize>,
) -> FlexTensor {
    let ([n, out], [input, _]) = (matrix_dims(grad), matrix_dims(w));
    assert!(rows.end <= input, "input columns {rows:?} of {input}");
    let (w, grad) = (floats(w), floats(grad));
    let lhs = Matrix::rows(&grad, out);
    let rhs = Matrix::columns(&w[rows.start * out..], out);
    product([n, out, rows.len()], lhs, rhs, None)
}

/// `[rows, columns]` of a 2-D tensor.
fn matrix_dims(t: &FlexTensor) -> [usize; 2] {
    let shape = t.shape();
    [shape[0], shape[1]]
}

/// A matrix read from a row-major buffer, as stored or transposed.
#[derive(Clone, Copy)]
pub(super) struct Matrix<'a> {
    pub(super) data: &'a [f32],
    /// Step between consecutive rows and columns of the matrix meant.
    pub(super) row_stride: isize,
    pub(super) col_stride: isize,
}

impl<'a> Matrix<'a> {
    /// The buffer's matrix, rows of `width`.
    pub(super) fn rows(data: &'a [f32], width: usize) -> Self {
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
            // Past the end only when the matrix is empty (what `holds` then accepts).
            data: t
                .storage::<f32>()
                .get(offset + b * stride(0)..)
                .unwrap_or_default(),
            row_stride: stride(1) as isize,
            col_stride: stride(2) as isize,
        }
    }

    /// The transpose of the buffer's matrix of rows of `width`.
    pub(super) fn columns(data: &'a [f32], width: usize) -> Self {
        Matrix {
            data,
            row_stride: 1,
            col_stride: width as isize,
        }
    }

    /// The matrix from row `first` on.
    pub(super) fn rows_from(&self, first: usize) -> Self {
        Matrix {
            data: &self.data[first * self.row_stride as usize..],
            ..*self
        }
    }

    /// Element `(i, j)` (strides non-negative).
    #[inline(always)]
    pub(super) fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride as usize + j * self.col_stride as usize]
    }

    /// The first `len` elements of row `i` (its columns adjacent: `col_stride` 1).
    #[inline(always)]
    pub(super) fn row(&self, i: usize, len: usize) -> &'a [f32] {
        &self.data[i * self.row_stride as usize..][..len]
    }

    /// The first `len` elements of column `j` (its rows adjacent: `row_stride` 1).
    #[inline(always)]
    pub(super) fn column(&self, j: usize, len: usize) -> &'a [f32] {
        &self.data[j * self.col_stride as usize..][..len]
    }
}

/// Products at least this large (m·k·n) split across rayon's pool, as flex splits them.
const PARALLEL_WORK: usize = 192 * 192 * 192;

/// `lhs` `[m, k]` · `rhs` `[k, n]` (+ `bias` `[n]` on every row) → `[m, n]`, written once by the
/// GEMM.
fn product(shape: [usize; 3], lhs: Matrix, rhs: Matrix, bias: Option<&[f32]>) -> FlexTensor {
    let [m, _, n] = shape;
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: the `m·n` floats allocated hold `[m, n]` rows of `n`.
    unsafe { product_at(Out(out.as_mut_ptr()), n, shape, lhs, rhs, bias) };
    // SAFETY: `product_at` wrote every element.
    unsafe { out.set_len(m * n) };
    tensor(out, [m, n])
}

/// Writes `lhs` `[m, k]` · `rhs` `[k, n]` as rows `row` floats apart from `dst`, then adds `bias`
/// `[n]` to each row. A large product is split by output rows, one single-threaded GEMM per
/// thread (each adding the bias to its own rows while they are in cache); on the model's shapes
/// this split keeps both cores busier than the GEMM's own. The GEMM blocks its depth by the rows
/// it is given and the CPU's cache sizes, so the last bits of a product can depend on the thread
/// count (and on the CPU); with the same ones a run repeats to the bit.
///
/// # Safety
/// `dst` must be valid for writes of the `n` floats from `i·row` for every `i < m`, and nothing
/// else may access them during the call.
unsafe fn product_at(
    dst: Out,
    row: usize,
    [m, k, n]: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
    bias: Option<&[f32]>,
) {
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "product: operand smaller than its shape"
    );
    if m == 0 || n == 0 {
        return;
    }
    let threads = if m * k * n >= PARALLEL_WORK {
        rayon::current_num_threads()
    } else {
        1
    };
    let rows = m.div_ceil(threads);
    (0..m.div_ceil(rows)).into_par_iter().for_each(|i| {
        let (first, count) = (i * rows, rows.min(m - i * rows));
        // SAFETY: rows `first..first + count` are this task's alone (the caller's contract).
        let out = unsafe { dst.offset(first * row) }.0;
        if k == 0 {
            for r in 0..count {
                for j in 0..n {
                    // SAFETY: as above; an empty product is its bias (or zero).
                    unsafe { out.add(r * row + j).write(bias.map_or(0.0, |b| b[j])) };
                }
            }
            return;
        }
        // SAFETY: the operands hold `[m, k]` and `[k, n]` at the strides given (asserted above)
        // and this task's rows start at `first`; with `read_dst` false the GEMM writes every
        // element of its `[count, n]` without reading any (dst = 0·dst + 1·lhs·rhs).
        unsafe {
            gemm::gemm(
                count,
                n,
                k,
                out,
                1,
                row as isize,
                false,
                lhs.data.as_ptr().offset(first as isize * lhs.row_stride),
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
            for r in 0..count {
                // SAFETY: the GEMM wrote this row just above; it is this task's alone.
                let y = unsafe { std::slice::from_raw_parts_mut(out.add(r * row), n) };
                y.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
    });
}

/// [`product`], or by [`matvec`] when the product has one output column and `lhs`'s rows or
/// columns are contiguous in its buffer (a layer's input, or its transpose for the weight's
/// gradient). Only for a layer's output and weight gradient: an input's gradient keeps the GEMM,
/// so that the gradients of a concatenation's parts are the bits of the whole's
/// ([`input_grad_rows`]).
fn layer_product(shape: [usize; 3], lhs: Matrix, rhs: Matrix, bias: Option<&[f32]>) -> FlexTensor {
    let [m, k, n] = shape;
    if n != 1 || k == 0 || !(lhs.holds(m, k) && rhs.holds(k, n)) {
        return product(shape, lhs, rhs, bias);
    }
    let v: Vec<f32> = (0..k)
        .map(|j| rhs.data[j * rhs.row_stride as usize])
        .collect();
    let mut out = vec![0.0; m];
    match (lhs.row_stride, lhs.col_stride) {
        (row, 1) if row >= 0 => matvec::par_row_dots(lhs.data, row as usize, &v, &mut out),
        (1, col) if col >= 0 => matvec::transposed(lhs.data, col as usize, &v, &mut out),
        _ => return product(shape, lhs, rhs, bias),
    }
    if let Some(&[b]) = bias {
        out.iter_mut().for_each(|o| *o += b);
    }
    tensor(out, [m, 1])
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
    /// The batched product under autodiff, with burn's own backward: `grad·rhsᵀ` (laid out as
    /// `lhs`, see [`LinearBackend::batched_lhs_grad`]) and `lhsᵀ·grad`, the transposes as views,
    /// for the tracked parents only.
    BatchedProductBackward<B: LinearBackend>, 2,
    |grads, grad, (lhs: FloatTensor, rhs: FloatTensor), [node_lhs, node_rhs]| {
        register_tracked!(grads, node_lhs, B::batched_lhs_grad(lhs.clone(), rhs, grad.clone()));
        let lhs_t = B::float_transpose(lhs);
        register_tracked!(grads, node_rhs, B::batched_product(lhs_t, grad, BatchLayout::Stacked));
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

    fn batched_product(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        layout: BatchLayout,
    ) -> FloatTensor<Self> {
        let prep = BatchedProductBackward.prepare::<C>([lhs.node(), rhs.node()]);
        let [lhs, rhs] = [lhs, rhs].map(|t| t.into_primitive());
        let out = B::batched_product(lhs.clone(), rhs.clone(), layout);
        finish(prep.compute_bound().stateful(), (lhs, rhs), out)
    }

    fn batched_lhs_grad(
        lhs: FloatTensor<Self>,
        rhs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let [lhs, rhs, grad] = [lhs, rhs, grad].map(|t| t.into_primitive());
        constant::<B, C>(B::batched_lhs_grad(lhs, rhs, grad))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer's products with one output column take the dot-product route, the weight's
    /// gradient (a transposed input) too: the same bits as [`matvec`]'s.
    #[test]
    fn one_column_layer_products_take_the_dot_product_route() {
        let (m, k) = (70, 33);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let v: Vec<f32> = (0..k).map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0).collect();
        let out = layer_product(
            [m, k, 1],
            Matrix::rows(&x, k),
            Matrix::rows(&v, 1),
            Some(&[0.5]),
        );
        let mut want = vec![0.0; m];
        matvec::row_dots(&x, k, &v, &mut want);
        want.iter_mut().for_each(|w| *w += 0.5);
        assert_eq!(floats(&out).as_ref(), want.as_slice());
        // xᵀ·g with x stored [m, k]: `[k, m]` read as columns.
        let g: Vec<f32> = (0..m).map(|i| (i % 5) as f32 - 2.0).collect();
        let out = layer_product([k, m, 1], Matrix::columns(&x, k), Matrix::rows(&g, 1), None);
        let mut want = vec![0.0; k];
        matvec::transposed(&x, k, &g, &mut want);
        assert_eq!(floats(&out).as_ref(), want.as_slice());
    }

    /// A one-column product large enough to split across the pool: each row's dot product has
    /// the bits of the single pass, at any thread count and with rows left over.
    #[test]
    fn split_dot_products_have_the_single_pass_bits() {
        for (m, threads) in [(1200, 2), (1203, 3), (5000, 4)] {
            let k = 100;
            let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let v: Vec<f32> = (0..k).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut want = vec![0.0; m];
            matvec::row_dots(&x, k, &v, &mut want);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let mut got = vec![f32::NAN; m];
            pool.expect("a pool")
                .install(|| matvec::par_row_dots(&x, k, &v, &mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m} rows, {threads} threads");
        }
    }
}
