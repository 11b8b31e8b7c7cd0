//! The GRU cell's gates on host slices (the matrix products stay with the backend's GEMM): one
//! pass forward, one pass backward recomputing the gates, rows in parallel.

use multiversion::multiversion;
use rayon::prelude::*;

use super::exp::{sigmoid, tanh};

/// Rows per parallel task.
const BLOCK: usize = 64;

/// `gi`, `gh` `[n, 3d]` (gates `r | z | n`), `h` `[n, d]` → `h'` `[n, d]`.
pub fn forward(gi: &[f32], gh: &[f32], h: &[f32], d: usize) -> Vec<f32> {
    let mut out = vec![0.0; h.len()];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut(BLOCK * d)
        .zip(h.par_chunks(BLOCK * d))
        .zip(
            gi.par_chunks(BLOCK * 3 * d)
                .zip(gh.par_chunks(BLOCK * 3 * d)),
        )
        .with_max_len(1)
        .for_each(|((out, h), (gi, gh))| forward_block(gi, gh, h, d, out));
    out
}

#[multiversion(targets = "simd")]
fn forward_block(gi: &[f32], gh: &[f32], h: &[f32], d: usize, out: &mut [f32]) {
    for (((gi, gh), h), out) in gi
        .chunks_exact(3 * d)
        .zip(gh.chunks_exact(3 * d))
        .zip(h.chunks_exact(d))
        .zip(out.chunks_exact_mut(d))
    {
        let ([ir, iz, inn], [hr, hz, hn]) = (gates(gi, d), gates(gh, d));
        for j in 0..d {
            let r = sigmoid(ir[j] + hr[j]);
            let z = sigmoid(iz[j] + hz[j]);
            let n = tanh(inn[j] + r * hn[j]);
            out[j] = (1.0 - z) * n + z * h[j];
        }
    }
}

/// A row's three gate slices `r | z | n`, each of length `d` (known lengths let the loops over
/// them vectorise without bounds checks).
#[inline(always)]
fn gates(row: &[f32], d: usize) -> [&[f32]; 3] {
    let (r, rest) = row.split_at(d);
    let (z, n) = rest.split_at(d);
    [r, z, &n[..d]]
}

#[inline(always)]
fn gates_mut(row: &mut [f32], d: usize) -> [&mut [f32]; 3] {
    let (r, rest) = row.split_at_mut(d);
    let (z, n) = rest.split_at_mut(d);
    [r, z, &mut n[..d]]
}

/// Gradients for `gi`, `gh` (`[n, 3d]`) and `h` (`[n, d]`) given the output's.
pub fn backward(
    gi: &[f32],
    gh: &[f32],
    h: &[f32],
    grad: &[f32],
    d: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut dgi, mut dgh, mut dh) = (vec![0.0; gi.len()], vec![0.0; gh.len()], vec![0.0; h.len()]);
    if d == 0 {
        return (dgi, dgh, dh);
    }
    let wide = BLOCK * 3 * d;
    dgi.par_chunks_mut(wide)
        .zip(dgh.par_chunks_mut(wide))
        .zip(dh.par_chunks_mut(BLOCK * d))
        .enumerate()
        .with_max_len(1)
        .for_each(|(block, ((dgi, dgh), dh))| {
            let rows = dh.len() / d;
            let at = |width: usize| block * BLOCK * width..(block * BLOCK + rows) * width;
            let input = (&gi[at(3 * d)], &gh[at(3 * d)], &h[at(d)], &grad[at(d)]);
            backward_block(input, d, (dgi, dgh, dh));
        });
    (dgi, dgh, dh)
}

type Inputs<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32]);
type Outputs<'a> = (&'a mut [f32], &'a mut [f32], &'a mut [f32]);

#[multiversion(targets = "simd")]
fn backward_block((gi, gh, h, grad): Inputs<'_>, d: usize, (dgi, dgh, dh): Outputs<'_>) {
    let rows = gi
        .chunks_exact(3 * d)
        .zip(gh.chunks_exact(3 * d))
        .zip(h.chunks_exact(d).zip(grad.chunks_exact(d)))
        .zip(dgi.chunks_exact_mut(3 * d).zip(dgh.chunks_exact_mut(3 * d)))
        .zip(dh.chunks_exact_mut(d));
    for ((((gi, gh), (h, g)), (dgi, dgh)), dh) in rows {
        let ([ir, iz, inn], [hr, hz, hn]) = (gates(gi, d), gates(gh, d));
        let ([dir, diz, din], [dhr, dhz, dhn]) = (gates_mut(dgi, d), gates_mut(dgh, d));
        let (h, g) = (&h[..d], &g[..d]);
        row_backward(
            [ir, iz, inn],
            [hr, hz, hn],
            h,
            g,
            &mut *dir,
            &mut *diz,
            din,
            dhn,
            dh,
        );
        dhr.copy_from_slice(dir);
        dhz.copy_from_slice(diz);
    }
}

/// One row's gradients of the pre-activations of `r`, `z`, `n` (shared by the input and the
/// hidden product, but for `n`'s hidden part `dhn`) and of the hidden state. The outputs come as
/// separate `&mut` parameters: LLVM then knows they do not overlap (slices split apart from one
/// row do not carry that), and the loop vectorises.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // separate `&mut` parameters are the point
fn row_backward(
    [ir, iz, inn]: [&[f32]; 3],
    [hr, hz, hn]: [&[f32]; 3],
    h: &[f32],
    g: &[f32],
    dr: &mut [f32],
    dz: &mut [f32],
    dn: &mut [f32],
    dhn: &mut [f32],
    dh: &mut [f32],
) {
    let d = h.len();
    let (ir, iz, inn, hr, hz, hn, g) = (
        &ir[..d],
        &iz[..d],
        &inn[..d],
        &hr[..d],
        &hz[..d],
        &hn[..d],
        &g[..d],
    );
    let (dr, dz, dn, dhn, dh) = (
        &mut dr[..d],
        &mut dz[..d],
        &mut dn[..d],
        &mut dhn[..d],
        &mut dh[..d],
    );
    for j in 0..d {
        let r = sigmoid(ir[j] + hr[j]);
        let z = sigmoid(iz[j] + hz[j]);
        let n = tanh(inn[j] + r * hn[j]);
        // h' = (1 − z)·n + z·h.
        let dpre_n = g[j] * (1.0 - z) * (1.0 - n * n);
        dn[j] = dpre_n;
        dhn[j] = dpre_n * r;
        dz[j] = g[j] * (h[j] - n) * z * (1.0 - z);
        dr[j] = dpre_n * hn[j] * r * (1.0 - r);
        dh[j] = g[j] * z;
    }
}
