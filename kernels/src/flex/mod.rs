//! The CPU route: [`FusedBackend`] for burn's pure-Rust `Flex` backend, as host loops over the
//! tensors' buffers (roots and rows in parallel on rayon's pool, inner loops compiled for
//! AVX-512, AVX2/FMA or SVE where the CPU has them, picked at run time). Same math as the cubecl
//! kernels and the burn-ops reference.
//!
//! Loops over blocks of rows split down to single blocks (`with_max_len(1)`): rayon otherwise
//! stops splitting after a few halvings unless work is stolen, and a thread done early finds the
//! other's last few blocks out of reach.

pub(crate) mod adam;
mod columns;
mod exp;
mod gathered;
mod gru;
mod layer_norm;
mod linear;
mod linear_of_columns;
mod masked_rows;
mod matvec;
mod prefetch;
mod rnn;
mod select_rows;
mod slot_rows;
mod small_product;
mod time_encoding;
mod trig;

use std::borrow::Cow;
use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::tensor::{DType, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

pub use columns::ColumnsBackend;
pub use layer_norm::LayerNormBackend;
pub use linear::{BatchLayout, LinearBackend, runs_on};
pub use linear_of_columns::LinearColumnsBackend;
pub use masked_rows::MaskedRowsBackend;
pub use rnn::RnnBackend;
pub use select_rows::SelectRowsBackend;
pub use slot_rows::SlotRowsBackend;

/// The values of `t` in row-major order, borrowed when already contiguous.
fn floats(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "mspipe-kernels run in f32, got {:?}",
        t.dtype()
    );
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

/// Row indices as `usize` (a negative one becomes out of range and panics where it is used).
fn rows(t: &FlexTensor) -> Vec<usize> {
    // flex's default int is i32 (the device's setting); burn's conversion is the fallback for
    // other int types and views (a copy and a dynamic iterator).
    if let Some(values) = t.as_slice::<i32>() {
        values.iter().map(|&i| i as usize).collect()
    } else if let Some(values) = t.as_slice::<i64>() {
        values.iter().map(|&i| i as usize).collect()
    } else {
        let data = t.clone().into_data();
        data.iter::<i64>().map(|i| i as usize).collect()
    }
}

/// `len` floats written by `fill`, which is handed disjoint chunks of `chunk` floats (the last
/// may be shorter) with their index, in parallel. The buffer is not zeroed first: the outputs
/// built this way are overwritten whole, and zeroing them was a pass over megabytes per call.
///
/// # Safety
/// `fill` must write every element of each chunk it is handed.
unsafe fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .with_max_len(1)
        .for_each(|(i, c)| fill(i, c));
    // SAFETY: the chunks cover the first `len` elements and `fill` wrote each (the contract).
    unsafe { out.set_len(len) };
    out
}

/// Sums of less work than this (floats) run on one thread.
const PARALLEL_SUM: usize = 1 << 15;

/// The sums of the `width` columns of `rows`, each over the rows in order, as flex's sum over the
/// first dimension adds them (see [`by_column_ranges`]).
fn column_sums<'a>(
    rows: impl Iterator<Item = &'a [f32]> + Clone + Send + Sync,
    width: usize,
    work: usize,
) -> Vec<f32> {
    by_column_ranges(width, work, |first, sums| {
        for row in rows.clone() {
            let row = &row[first..first + sums.len()];
            sums.iter_mut().zip(row).for_each(|(s, g)| *s += g);
        }
    })
}

/// `width` sums, zeroed, then `add(first, sums)` for ranges of columns starting at `first`, the
/// ranges in parallel when the `work` (floats) is large enough (a column's order, and so its
/// bits, do not depend on the split).
fn by_column_ranges(width: usize, work: usize, add: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut sums = vec![0.0f32; width];
    let threads = if work >= PARALLEL_SUM {
        rayon::current_num_threads()
    } else {
        1
    };
    let part = width.div_ceil(threads).max(1);
    sums.par_chunks_mut(part)
        .enumerate()
        .for_each(|(i, sums)| add(i * part, sums));
    sums
}

/// Floats written per parallel task at least by [`by_rows`].
const ROWS_TASK: usize = 1 << 14;

/// `[n, d]` rows, each written whole by `write(i, row)`, blocks of rows in parallel.
///
/// # Panics
/// If `write` reports another number of values written than `d` (its return value).
fn written_rows(
    n: usize,
    d: usize,
    write: impl Fn(usize, &mut [MaybeUninit<f32>]) -> usize + Sync,
) -> FlexTensor {
    let per_task = (ROWS_TASK / d.max(1)).max(1);
    // SAFETY: every row of every chunk is written whole (asserted).
    let out = unsafe {
        par_filled(n * d, per_task * d, |task, out| {
            for (i, out) in (task * per_task..).zip(out.chunks_exact_mut(d)) {
                assert_eq!(write(i, out), d, "a row of {d} values");
            }
        })
    };
    tensor(out, [n, d])
}

/// `[n, d]` rows, row `i` the `d` values of `row(i)`, blocks of rows in parallel.
///
/// # Panics
/// If a row has another number of values.
fn by_rows<I: Iterator<Item = f32>>(
    n: usize,
    d: usize,
    row: impl Fn(usize) -> I + Sync,
) -> FlexTensor {
    written_rows(n, d, |i, out| {
        let mut written = 0;
        for (o, v) in out.iter_mut().zip(row(i)) {
            o.write(v);
            written += 1;
        }
        written
    })
}

/// `[n, d]` rows, row `i` the slices of `parts(i)` one after another (`d` floats in all), blocks
/// of rows in parallel. Slice copies, where [`by_rows`]' element iterator would go value by value:
/// for gathers and concatenations that is several times slower.
///
/// # Panics
/// If a row's parts do not add up to `d` floats.
fn copied_rows<'a, P: IntoIterator<Item = &'a [f32]>>(
    n: usize,
    d: usize,
    parts: impl Fn(usize) -> P + Sync,
) -> FlexTensor {
    written_rows(n, d, |i, out| {
        let mut written = 0;
        for part in parts(i) {
            // Panics (a slice out of range) when the parts run past the row.
            out[written..written + part.len()].write_copy_of_slice(part);
            written += part.len();
        }
        written
    })
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

crate::backend::fused_backend! {
    impl[] for Flex;
    time_encoding(dt, w, b) {
        let (n, t) = (dt.shape()[0], w.shape()[0]);
        tensor(time_encoding::forward(&floats(&dt), &floats(&w), &floats(&b)), [n, t])
    }
    time_encoding_with_sine(dt, w, b) {
        let (n, t) = (dt.shape()[0], w.shape()[0]);
        let (cos, sin) = time_encoding::forward_with_sine(&floats(&dt), &floats(&w), &floats(&b));
        (tensor(cos, [n, t]), tensor(sin, [n, t]))
    }
    time_encoding_backward(dt, sine, grad) {
        let t = sine.shape()[1];
        let [dt, sine, grad] = [&dt, &sine, &grad].map(floats);
        let (dw, db) = time_encoding::backward(&dt, &sine, &grad, t);
        (tensor(dw, [t]), tensor(db, [t]))
    }
    gru_gates(gi, gh, h) {
        let shape = h.shape();
        let out = gru::forward(&floats(&gi), &floats(&gh), &floats(&h), shape[1]);
        tensor(out, [shape[0], shape[1]])
    }
    gru_gates_backward(gi, gh, h, grad) {
        let [n, d] = [h.shape()[0], h.shape()[1]];
        let [gi, gh, h, grad] = [&gi, &gh, &h, &grad].map(floats);
        let (dgi, dgh, dh) = gru::backward(&gi, &gh, &h, &grad, d);
        (tensor(dgi, [n, 3 * d]), tensor(dgh, [n, 3 * d]), tensor(dh, [n, d]))
    }
    gathered_attention(q, a, ia, b, ib, keep, scale) {
        slot_rows::forward([&q, &keep, &scale], (&a, &ia), None, (&b, &ib)).0
    }
    gathered_attention_backward(q, a, ia, b, ib, keep, scale, grad) {
        slot_rows::backward([&q, &keep, &scale, &grad], (&a, &ia), None, (&b, &ib), None)
    }
}
