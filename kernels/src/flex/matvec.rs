//! A product with one output column, `[m, k] · [k, 1]`: the link predictor's last layer and its
//! weight's gradient. The GEMM's microkernels are built for tiles of several columns and waste
//! most of each tile on one; plain loops serve it better: a dot product per row when rows are
//! contiguous, several rows at once, else (a transpose: the weight's gradient `xᵀ·g`) the rows of
//! the stored matrix added in order, scaled by the vector.

use multiversion::multiversion;
use rayon::prelude::*;

/// Independent partial sums of a dot product, one AVX2 register: a short row (the model's are
/// 100 long) has fewer lanes to add up at its end than with an AVX-512 register's sixteen.
const LANES: usize = 8;

/// Rows whose dot products run interleaved: each row's sum is a chain of dependent additions, and
/// a short row (the model's are 100 long: twelve chunks) is over before one chain's latency is hidden.
const ROWS: usize = 8;

/// Products at least this large (`m·k`) split their rows across rayon's pool: a matrix-vector
/// product streams its matrix once, and two cores' caches and load ports stream it faster than
/// one, where a GEMM of this size would not yet gain from the split.
const PARALLEL_DOTS: usize = 1 << 16;

/// [`row_dots`] with the rows split across the pool when the product is large enough. Each row's
/// sum is taken the same way whichever part it falls in: the same bits as one pass.
pub(super) fn par_row_dots(lhs: &[f32], row: usize, v: &[f32], out: &mut [f32]) {
    let m = out.len();
    if m * v.len() < PARALLEL_DOTS {
        return row_dots(lhs, row, v, out);
    }
    let part = m
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(ROWS);
    out.par_chunks_mut(part)
        .enumerate()
        .for_each(|(c, out)| row_dots(&lhs[c * part * row..], row, v, out));
}

/// `out[i] = Σ_j lhs[i·row + j]·v[j]` for each of the `out.len()` rows of `v.len()` contiguous
/// values `row` floats apart. Each sum is taken in [`LANES`] interleaved parts added pairwise at
/// the end, then the last `len mod LANES` terms in order: the same order for every row, group and
/// CPU.
#[multiversion(targets = "simd")]
pub(super) fn row_dots(lhs: &[f32], row: usize, v: &[f32], out: &mut [f32]) {
    let k = v.len();
    let at = |i: usize| &lhs[i * row..i * row + k];
    let grouped = out.len() - out.len() % ROWS;
    let (groups, rest) = out.split_at_mut(grouped);
    for (g, sums) in groups.chunks_exact_mut(ROWS).enumerate() {
        dots::<ROWS>(std::array::from_fn(|r| at(g * ROWS + r)), v, sums);
    }
    for (i, sum) in rest.iter_mut().enumerate() {
        dots::<1>([at(grouped + i)], v, std::slice::from_mut(sum));
    }
}

/// `sums[r] = rows[r]·v` for `R` rows at once (inlined into [`row_dots`]'s instruction set).
#[inline(always)]
fn dots<const R: usize>(rows: [&[f32]; R], v: &[f32], sums: &mut [f32]) {
    let body = v.len() - v.len() % LANES;
    let mut acc = [[0.0f32; LANES]; R];
    for c in (0..body).step_by(LANES) {
        let v = &v[c..c + LANES];
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let x = &row[c..c + LANES];
            for l in 0..LANES {
                acc[l] = x[l].mul_add(v[l], acc[l]);
            }
        }
    }
    for ((sum, acc), row) in sums.iter_mut().zip(&mut acc).zip(&rows) {
        // Halves added onto halves, each step written out so it compiles to one vector add.
        halve::<4>(acc);
        halve::<2>(acc);
        halve::<1>(acc);
        *sum = row[body..]
            .iter()
            .zip(&v[body..])
            .fold(acc[0], |s, (x, v)| x.mul_add(*v, s));
    }
}

/// `acc[l] += acc[l + H]` for `l < H`.
#[inline(always)]
fn halve<const H: usize>(acc: &mut [f32; LANES]) {
    let (low, high) = acc.split_at_mut(H);
    low.iter_mut().zip(&high[..H]).for_each(|(a, b)| *a += b);
}

/// `out[j] = Σ_i lhs[i·stride + j]·v[i]` for `j < out.len()`: the product of the transpose of a
/// stored `[v.len(), ·]` matrix (rows `stride` floats apart) and `v`, the stored rows added in
/// order.
#[multiversion(targets = "simd")]
pub(super) fn transposed(lhs: &[f32], stride: usize, v: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    let m = out.len();
    for (i, &s) in v.iter().enumerate() {
        let x = &lhs[i * stride..i * stride + m];
        out.iter_mut().zip(x).for_each(|(o, x)| *o += x * s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn row_dots_match_f64_sums_at_every_length_around_the_lanes() {
        for k in [0, 1, 15, 16, 17, 100, 257] {
            // Eight rows at once, then the rest one by one.
            let (m, row) = (13, k + 3);
            let (lhs, v) = (values(m * row, 7), values(k, 11));
            let mut got = vec![f32::NAN; m];
            row_dots(&lhs, row, &v, &mut got);
            for (i, got) in got.iter().enumerate() {
                let want: f64 = (0..k)
                    .map(|j| f64::from(lhs[i * row + j]) * f64::from(v[j]))
                    .sum();
                assert!(
                    (f64::from(*got) - want).abs() < 1e-4,
                    "k {k} row {i}: {got} vs {want}"
                );
                // In a group or alone, a row's sum is the same.
                let mut alone = [0.0];
                dots([&lhs[i * row..i * row + k]], &v, &mut alone);
                assert_eq!(got.to_bits(), alone[0].to_bits(), "k {k} row {i}");
            }
        }
    }

    #[test]
    fn transposed_adds_the_rows_in_order() {
        let (k, m, stride) = (37, 10, 12);
        let (lhs, v) = (values(k * stride, 3), values(k, 5));
        let mut got = vec![f32::NAN; m];
        transposed(&lhs, stride, &v, &mut got);
        for (j, got) in got.iter().enumerate() {
            // The same order, so the same bits.
            let want = (0..k).fold(0.0f32, |s, i| s + lhs[i * stride + j] * v[i]);
            assert_eq!(got.to_bits(), want.to_bits(), "column {j}");
        }
    }
}
