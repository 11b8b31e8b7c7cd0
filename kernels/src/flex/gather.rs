//! `a[ia] + b[ib] + bias` on host slices: the attention's keys and values from their node part
//! (projected per distinct node) and time part (projected per distinct Δt) in one pass, instead of
//! two row gathers and two additions over `[n, w]`; the backward scatters the gradient into both
//! tables and sums it for the bias in one pass each, in row order (deterministic).

use std::mem::MaybeUninit;

use super::par_filled;

/// Rows per parallel task.
const BLOCK: usize = 256;

/// `a` `[.., w]` rows `ia`, plus `b` `[.., w]` rows `ib`, plus `bias` `[w]` → `[n, w]`.
pub fn forward(a: &[f32], ia: &[usize], b: &[f32], ib: &[usize], bias: &[f32]) -> Vec<f32> {
    let w = bias.len();
    let fill = |block: usize, out: &mut [MaybeUninit<f32>]| {
        let rows = block * BLOCK..;
        for ((row, &i), &j) in out
            .chunks_exact_mut(w)
            .zip(&ia[rows.clone()])
            .zip(&ib[rows])
        {
            let (x, y) = (&a[i * w..(i + 1) * w], &b[j * w..(j + 1) * w]);
            for (((o, &x), &y), &c) in row.iter_mut().zip(x).zip(y).zip(bias) {
                o.write(x + y + c);
            }
        }
    };
    // SAFETY: `fill` writes all `w` elements of each of its block's rows.
    unsafe { par_filled(ia.len() * w, BLOCK * w, fill) }
}

/// Gradients for `a` (`[rows_a, w]`), `b` (`[rows_b, w]`) and `bias` given the output's.
pub fn backward(
    grad: &[f32],
    ia: &[usize],
    ib: &[usize],
    rows_a: usize,
    rows_b: usize,
    w: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let scatter = |index: &[usize], rows: usize| {
        let mut out = vec![0.0f32; rows * w];
        if w > 0 {
            for (g, &i) in grad.chunks_exact(w).zip(index) {
                out[i * w..(i + 1) * w]
                    .iter_mut()
                    .zip(g)
                    .for_each(|(o, &g)| *o += g);
            }
        }
        out
    };
    let ((da, db), dbias) = rayon::join(
        || rayon::join(|| scatter(ia, rows_a), || scatter(ib, rows_b)),
        || {
            let mut sum = vec![0.0f32; w];
            if w > 0 {
                for g in grad.chunks_exact(w) {
                    sum.iter_mut().zip(g).for_each(|(s, &g)| *s += g);
                }
            }
            sum
        },
    );
    (da, db, dbias)
}
