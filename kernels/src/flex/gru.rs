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
        .for_each(|((out, h), (gi, gh))| forward_block(gi, gh, h, d, out));
    out
}

#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn forward_block(gi: &[f32], gh: &[f32], h: &[f32], d: usize, out: &mut [f32]) {
    for (((gi, gh), h), out) in gi
        .chunks_exact(3 * d)
        .zip(gh.chunks_exact(3 * d))
        .zip(h.chunks_exact(d))
        .zip(out.chunks_exact_mut(d))
    {
        for j in 0..d {
            let r = sigmoid(gi[j] + gh[j]);
            let z = sigmoid(gi[d + j] + gh[d + j]);
            let n = tanh(gi[2 * d + j] + r * gh[2 * d + j]);
            out[j] = (1.0 - z) * n + z * h[j];
        }
    }
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

#[multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
fn backward_block((gi, gh, h, grad): Inputs<'_>, d: usize, (dgi, dgh, dh): Outputs<'_>) {
    for row in 0..h.len() / d {
        let (w, s) = (3 * d * row, d * row);
        let (gi, gh, dgi, dgh) = (
            &gi[w..w + 3 * d],
            &gh[w..w + 3 * d],
            &mut dgi[w..w + 3 * d],
            &mut dgh[w..w + 3 * d],
        );
        let (h, g, dh) = (&h[s..s + d], &grad[s..s + d], &mut dh[s..s + d]);
        for j in 0..d {
            let r = sigmoid(gi[j] + gh[j]);
            let z = sigmoid(gi[d + j] + gh[d + j]);
            let hn = gh[2 * d + j];
            let n = tanh(gi[2 * d + j] + r * hn);
            // h' = (1 − z)·n + z·h.
            let dn = g[j] * (1.0 - z) * (1.0 - n * n);
            let dz = g[j] * (h[j] - n) * z * (1.0 - z);
            let dr = dn * hn * r * (1.0 - r);
            dh[j] = g[j] * z;
            dgi[j] = dr;
            dgh[j] = dr;
            dgi[d + j] = dz;
            dgh[d + j] = dz;
            dgi[2 * d + j] = dn;
            dgh[2 * d + j] = dn * r;
        }
    }
}
