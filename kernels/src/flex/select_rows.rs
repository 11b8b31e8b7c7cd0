//! burn's `table.select(0, index)` on flex as an operation of its own ([`SelectRowsBackend`]).
//! flex gathers the rows on one thread, and its backward zeroes a table-sized gradient in a pass
//! of its own and scatters the output's gradient into it row after row, also on one thread: the
//! pool's other threads wait. Here the rows are gathered in parallel, and in the backward each
//! task zeroes its own range of the table's rows and adds the gradient rows that point into it,
//! scanning the index in order: every table row is summed in burn's order (from zero, index
//! after index), so the bits are burn's whatever the split.

use std::mem::MaybeUninit;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;

use super::{copied_rows, floats, par_filled, rows, tensor};
use crate::autodiff::finish;

/// Floats summed at least before the backward runs in parallel (below, one task: the pool's
/// hand-off would cost more than the sums).
const TASK: usize = 1 << 14;

/// Rows of a table by index, on backend primitives.
#[backend_extension(Flex, Autodiff)]
pub trait SelectRowsBackend: Backend {
    /// Rows `index` `[n]` of `table` `[U, d]` → `[n, d]`.
    fn select_rows(table: FloatTensor<Self>, index: IntTensor<Self>) -> FloatTensor<Self>;
}

impl SelectRowsBackend for Flex {
    fn select_rows(table: FlexTensor, index: FlexTensor) -> FlexTensor {
        let [rows_in, d] = [table.shape()[0], table.shape()[1]];
        let (table, index) = (floats(&table), rows(&index));
        if let Some(&i) = index.iter().find(|&&i| i >= rows_in) {
            panic!("select_rows: row {i} of a table of {rows_in}");
        }
        copied_rows(index.len(), d, |r| [&table[index[r] * d..][..d]])
    }
}

/// The table's gradient `[rows, d]` from the output's `[n, d]` (row `r` at `grad[r·stride..][..d]`):
/// each task zeroes a range of the table's rows and adds, index by index, the gradient rows that
/// fall in it.
fn table_grad(index: &[usize], grad: &[f32], stride: usize, rows: usize, d: usize) -> Vec<f32> {
    let tasks = if index.len() * d >= TASK {
        2 * rayon::current_num_threads()
    } else {
        1
    };
    let per_task = rows.div_ceil(tasks).max(1);
    // SAFETY: each chunk is whole table rows of `d`, all zeroed before anything is added.
    unsafe {
        par_filled(rows * d, per_task * d, |task, out| {
            out.fill(MaybeUninit::new(0.0));
            // SAFETY: just written.
            let out = &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]);
            let range = task * per_task..task * per_task + out.len() / d.max(1);
            for (r, &i) in index.iter().enumerate() {
                if range.contains(&i) {
                    let row = &mut out[(i - range.start) * d..][..d];
                    let g = &grad[r * stride..][..d];
                    row.iter_mut().zip(g).for_each(|(s, g)| *s += g);
                }
            }
        })
    }
}

/// A 2-D tensor whose rows are each contiguous, as its buffer from the first row and the step
/// between rows: a whole matrix, or a range of a wider one's columns (the gradient of a
/// concatenation's part), which is then read in place rather than copied out.
fn spaced_rows(t: &FlexTensor) -> Option<(&[f32], usize)> {
    let (layout, shape) = (t.layout(), t.shape());
    let &[stride, 1] = layout.strides() else {
        return None;
    };
    let ([n, d], stride) = ([shape[0], shape[1]], usize::try_from(stride).ok()?);
    if n == 0 || stride < d {
        return None;
    }
    let values = t.storage::<f32>().get(layout.start_offset()..)?;
    (values.len() >= (n - 1) * stride + d).then_some((values, stride))
}

/// The selection under autodiff on flex: the table's gradient by [`table_grad`].
#[derive(Debug)]
struct SelectRowsBackward;

impl Backward<Flex, 1> for SelectRowsBackward {
    /// The index and the table's row count.
    type State = (FlexTensor, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (index, table_rows) = ops.state;
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let d = grad.shape()[1];
            let index = rows(&index);
            let g = match spaced_rows(&grad) {
                Some((values, stride)) => table_grad(&index, values, stride, table_rows, d),
                None => table_grad(&index, &floats(&grad), d, table_rows, d),
            };
            grads.register::<Flex>(node.id, tensor(g, [table_rows, d]));
        }
    }
}

impl<C: CheckpointStrategy> SelectRowsBackend for Autodiff<Flex, C> {
    fn select_rows(table: FloatTensor<Self>, index: IntTensor<Self>) -> FloatTensor<Self> {
        let prep = SelectRowsBackward.prepare::<C>([table.node()]);
        let table = table.into_primitive();
        let table_rows = table.shape()[0];
        let out = Flex::select_rows(table, index.clone());
        finish(prep.compute_bound().stateful(), (index, table_rows), out)
    }
}
