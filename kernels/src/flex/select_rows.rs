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
/// each task owns a range of the table's rows and adds, index by index, the gradient rows that
/// fall in it. A row's first gradient row is written as `0 + g` — the bits of adding it to a
/// zeroed row, −0 becoming +0 — and only rows no index selects are zeroed, so the table is not
/// swept once more before the sums.
fn table_grad(index: &[usize], grad: &[f32], stride: usize, rows: usize, d: usize) -> Vec<f32> {
    let tasks = if index.len() * d >= TASK {
        2 * rayon::current_num_threads()
    } else {
        1
    };
    let per_task = rows.div_ceil(tasks).max(1);
    let fill = |task: usize, out: &mut [MaybeUninit<f32>]| {
        let first = task * per_task;
        let mut written = vec![false; out.len() / d.max(1)];
        for (r, &i) in index.iter().enumerate() {
            let Some(j) = i.checked_sub(first).filter(|&j| j < written.len()) else {
                continue;
            };
            let (row, g) = (&mut out[j * d..][..d], &grad[r * stride..][..d]);
            if written[j] {
                // SAFETY: written whole at the row's first index.
                let row = unsafe { row.assume_init_mut() };
                row.iter_mut().zip(g).for_each(|(s, g)| *s += g);
            } else {
                row.iter_mut().zip(g).for_each(|(s, &g)| {
                    s.write(0.0 + g);
                });
                written[j] = true;
            }
        }
        let unwritten = out.chunks_exact_mut(d.max(1)).zip(&written);
        unwritten
            .filter(|(_, w)| !**w)
            .for_each(|(row, _)| row.fill(MaybeUninit::new(0.0)));
    };
    // SAFETY: each chunk is whole table rows of `d`, each row written whole: at its first index,
    // or zeroed at the end when it has none.
    unsafe { par_filled(rows * d, per_task * d, fill) }
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
