//! Products too small for a GEMM call. APAN's attention over each node's mailbox multiplies, per
//! node, `[mails, input]` by `[input, heads]` and `[heads, mails]` by `[mails, input]` (and, in
//! the backward, their transposes): thousands of products a step, each of a few thousand
//! multiply-adds per output row. A GEMM call spends more than that around them (dispatch, packing
//! the operands into buffers it allocates, a tile mostly empty); plain loops over the operands
//! where they lie serve them better. Whether a product runs here depends on the shape of one
//! output row's work (`k` and `n`), and each output row is summed the same way whatever the other
//! rows — so a row's bits do not depend on how many rows the product has, nor on how they are
//! split across tasks or threads (a model that embeds each distinct row once and gathers gets the
//! bits of embedding every row). They are not the GEMM's, whose order of summation follows its
//! tiling.

use multiversion::multiversion;

use super::linear::Matrix;

/// Products whose output rows take at most this many multiply-adds each (`k·n`)...
const SMALL_ROW: usize = 1 << 13;

/// ...through a side (`k` or `n`) at most this long run here: a GEMM's tiles would be mostly
/// empty. Others, however many rows, run on the GEMM.
const THIN: usize = 16;

/// Whether `[m, k]·[k, n]` products run here, whatever `m`.
pub(super) fn runs_here([k, n]: [usize; 2]) -> bool {
    k * n <= SMALL_ROW && k.min(n) <= THIN
}

/// Multiply-adds a parallel task of rows takes at least ([`rows_per_task`]).
const TASK_WORK: usize = 1 << 15;

/// Independent partial sums of a dot product (one AVX-512 register of `f32`).
const LANES: usize = 16;

/// Output rows summed at once along the output's columns (a stack buffer of that many floats).
const COLUMN_PART: usize = 64;

/// What the innermost loop runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inner {
    /// An output row: `out[i, ·] += lhs[i, p]·rhs[p, ·]` in order of `p`.
    Row,
    /// The depth: `out[i, j] = lhs[i, ·]·rhs[·, j]` in [`LANES`] partial sums.
    Depth,
    /// An output column: `out[·, j] += lhs[·, p]·rhs[p, j]` in order of `p`.
    Column,
}

impl Inner {
    /// The loop order for the operands' layouts. Whether the sums run in lanes ([`Inner::Depth`],
    /// where `lhs`'s rows and `rhs`'s columns are contiguous and the depth is the longer run) or
    /// in order of `p` is decided without the row count, so a row's bits never depend on it; an
    /// output row or column, which add in the same order, then by the longer contiguous run.
    fn of(rows: usize, [k, n]: [usize; 2], lhs: &Matrix, rhs: &Matrix) -> Self {
        let (row, column) = (rhs.col_stride == 1, lhs.row_stride == 1);
        let depth = lhs.col_stride == 1 && rhs.row_stride == 1;
        if depth && (!row || k > n) {
            Inner::Depth
        } else if column && (!row || rows > n) {
            Inner::Column
        } else {
            Inner::Row
        }
    }
}

/// Output rows per parallel task for `[k, n]` products, at least one.
pub(super) fn rows_per_task([k, n]: [usize; 2]) -> usize {
    (TASK_WORK / (k * n).max(1)).max(1)
}

/// Writes `lhs` `[m, k]` · `rhs` `[k, n]` as rows `row` floats apart from `dst`, on the calling
/// thread (see the module's documentation).
///
/// # Safety
/// `dst` must be valid for writes of the `n` floats from `i·row` for every `i < m`, nothing else
/// may access them during the call, and the operands must hold `[m, k]` and `[k, n]` at their
/// strides (non-negative).
pub(super) unsafe fn product_at(
    dst: *mut f32,
    row: usize,
    shape: [usize; 3],
    lhs: Matrix,
    rhs: Matrix,
) {
    let [m, k, n] = shape;
    // SAFETY: the caller's contract, row by row.
    let out_row = |i: usize| unsafe { std::slice::from_raw_parts_mut(dst.add(i * row), n) };
    if k == 0 {
        // An empty sum (the operands may hold no element to read).
        return (0..m).for_each(|i| out_row(i).fill(0.0));
    }
    match Inner::of(m, [k, n], &lhs, &rhs) {
        Inner::Row => (0..m).for_each(|i| along_row(out_row(i), i, k, &lhs, &rhs)),
        Inner::Depth => (0..m).for_each(|i| {
            let a = lhs.row(i, k);
            for (j, out) in out_row(i).iter_mut().enumerate() {
                *out = dot(a, rhs.column(j, k));
            }
        }),
        Inner::Column => {
            for first in (0..m).step_by(COLUMN_PART) {
                let rows = COLUMN_PART.min(m - first);
                for j in 0..n {
                    let mut sums = [0.0f32; COLUMN_PART];
                    along_column(&mut sums[..rows], first, j, k, &lhs, &rhs);
                    for (i, s) in sums[..rows].iter().enumerate() {
                        out_row(first + i)[j] = *s;
                    }
                }
            }
        }
    }
}

/// `out` = row `i` of `lhs`·`rhs`: `rhs`'s rows scaled by `lhs[i, p]` and added in order of `p`.
#[multiversion(targets = "simd")]
fn along_row(out: &mut [f32], i: usize, k: usize, lhs: &Matrix, rhs: &Matrix) {
    out.fill(0.0);
    for p in 0..k {
        let a = lhs.at(i, p);
        if rhs.col_stride == 1 {
            let b = rhs.row(p, out.len());
            out.iter_mut().zip(b).for_each(|(o, &b)| *o += a * b);
        } else {
            for (j, o) in out.iter_mut().enumerate() {
                *o += a * rhs.at(p, j);
            }
        }
    }
}

/// `sums` = rows `first..` of column `j` of `lhs`·`rhs`: `lhs`'s columns (contiguous) scaled by
/// `rhs[p, j]` and added in order of `p`.
#[multiversion(targets = "simd")]
fn along_column(sums: &mut [f32], first: usize, j: usize, k: usize, lhs: &Matrix, rhs: &Matrix) {
    for p in 0..k {
        let b = rhs.at(p, j);
        let a = &lhs.column(p, first + sums.len())[first..];
        sums.iter_mut().zip(a).for_each(|(s, &a)| *s += a * b);
    }
}

/// `⟨a, b⟩` in [`LANES`] interleaved partial sums added in order at the end, then the last
/// `len mod LANES` terms in order.
#[multiversion(targets = "simd")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = (ca.remainder().iter().zip(cb.remainder())).fold(0.0, |s, (x, y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().fold(0.0, |s, &l| s + l) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[rows, cols]` of `values` stored row-major (`transposed` false) or column-major.
    fn matrix(values: &[f32], [rows, cols]: [usize; 2], transposed: bool) -> Matrix<'_> {
        match transposed {
            false => Matrix::rows(values, cols),
            true => Matrix::columns(values, rows),
        }
    }

    /// `lhs`·`rhs` in f64 from the row-major values.
    fn reference(a: &[f32], b: &[f32], [m, k, n]: [usize; 3]) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
            }
        }
        out
    }

    /// `values` `[rows, cols]` row-major, stored column-major when `transposed`.
    fn stored(values: &[f32], [rows, cols]: [usize; 2], transposed: bool) -> Vec<f32> {
        match transposed {
            false => values.to_vec(),
            true => (0..rows * cols)
                .map(|s| values[(s % rows) * cols + s / rows])
                .collect(),
        }
    }

    /// Row-major `[m, k]` and `[k, n]` of small, varied values.
    fn operands([m, k, n]: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
        let a = (0..m * k).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0);
        let b = (0..k * n).map(|i| ((i * 13 % 19) as f32 - 9.0) / 5.0);
        (a.collect(), b.collect())
    }

    #[test]
    fn hand_worked() {
        // [1 2; 3 4]·[5 6; 7 8] = [19 22; 43 50], its rows 3 floats apart.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]);
        let mut out = [f32::NAN; 5];
        let (lhs, rhs) = (Matrix::rows(&a, 2), Matrix::rows(&b, 2));
        unsafe { product_at(out.as_mut_ptr(), 3, [2, 2, 2], lhs, rhs) };
        assert_eq!(out[..2], [19.0, 22.0]);
        assert!(out[2].is_nan(), "between the rows: untouched");
        assert_eq!(out[3..], [43.0, 50.0]);
    }

    /// Every loop order (chosen by the operands' layouts and the shape) against an f64 product:
    /// within the rounding of sums of `k` products.
    #[test]
    fn every_loop_order_matches_the_product() {
        let shapes = [
            [10, 47, 2],
            [2, 10, 47],
            [47, 10, 2],
            [70, 3, 5],
            [1, 1, 1],
            [3, 0, 4],
        ];
        let mut seen = Vec::new();
        for shape @ [m, k, n] in shapes {
            let (a, b) = operands([m, k, n]);
            let want = reference(&a, &b, shape);
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (sa, sb) = (stored(&a, [m, k], ta), stored(&b, [k, n], tb));
                let (lhs, rhs) = (matrix(&sa, [m, k], ta), matrix(&sb, [k, n], tb));
                seen.push(Inner::of(m, [k, n], &lhs, &rhs));
                let mut out = vec![f32::NAN; m * n];
                unsafe { product_at(out.as_mut_ptr(), n, shape, lhs, rhs) };
                for (got, want) in out.iter().zip(&want) {
                    let tolerance = 1e-5 * (1.0 + want.abs()) * k.max(1) as f64;
                    assert!(
                        (*got as f64 - want).abs() <= tolerance,
                        "{shape:?} {ta} {tb}: {got} against {want}"
                    );
                }
            }
        }
        for inner in [Inner::Row, Inner::Depth, Inner::Column] {
            assert!(seen.contains(&inner), "{inner:?} not exercised");
        }
    }

    /// Each output row has the same bits in a product of many rows as in a product of just its
    /// own, for every layout: a model may embed each distinct row once and gather.
    #[test]
    fn a_row_does_not_depend_on_the_other_rows() {
        let (m, k, n) = (70, 33, 5);
        let (a, b) = operands([m, k, n]);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let (sa, sb) = (stored(&a, [m, k], ta), stored(&b, [k, n], tb));
            let (lhs, rhs) = (matrix(&sa, [m, k], ta), matrix(&sb, [k, n], tb));
            let mut all = vec![0.0f32; m * n];
            unsafe { product_at(all.as_mut_ptr(), n, [m, k, n], lhs, rhs) };
            for i in [0, 1, 31, m - 1] {
                let mut one = vec![0.0f32; n];
                unsafe { product_at(one.as_mut_ptr(), n, [1, k, n], lhs.rows_from(i), rhs) };
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&one), bits(&all[i * n..][..n]), "row {i}, {ta} {tb}");
            }
        }
    }
}
