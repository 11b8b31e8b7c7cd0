//! The GRU cell's gates on host slices (the matrix products stay with the backend's GEMM): one
//! pass forward, one pass backward recomputing the gates, rows in parallel.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::exp::{sigmoid, tanh};

/// Rows per parallel task.
const BLOCK: usize = 64;

/// `gi`, `gh` `[n, 3d]` (gates `r | z | n`), `h` `[n, d]` → `h'` `[n, d]`.
pub fn forward(gi: &[f32], gh: &[f32], h: &[f32], d: usize) -> Vec<f32> {
    if d == 0 {
        return vec![0.0; h.len()];
    }
    let mut out = Vec::with_capacity(h.len());
    out.spare_capacity_mut()[..h.len()]
        .par_chunks_mut(BLOCK * d)
        .zip(h.par_chunks(BLOCK * d))
        .zip(
            gi.par_chunks(BLOCK * 3 * d)
                .zip(gh.par_chunks(BLOCK * 3 * d)),
        )
        .with_max_len(1)
        .for_each(|((out, h), (gi, gh))| forward_block(gi, gh, h, d, out));
    // SAFETY: the blocks cover `h.len()` elements and `forward_block` writes each of its rows
    // whole (rows of `h` and `out` are both `d` wide).
    unsafe { out.set_len(h.len()) };
    out
}

#[multiversion(targets = "simd")]
fn forward_block(gi: &[f32], gh: &[f32], h: &[f32], d: usize, out: &mut [MaybeUninit<f32>]) {
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
            out[j].write((1.0 - z) * n + z * h[j]);
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
fn gates_mut<T>(row: &mut [T], d: usize) -> [&mut [T]; 3] {
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
    if d == 0 {
        return (vec![0.0; gi.len()], vec![0.0; gh.len()], vec![0.0; h.len()]);
    }
    let (mut dgi, mut dgh, mut dh) = (
        Vec::with_capacity(gi.len()),
        Vec::with_capacity(gh.len()),
        Vec::with_capacity(h.len()),
    );
    let wide = BLOCK * 3 * d;
    dgi.spare_capacity_mut()[..gi.len()]
        .par_chunks_mut(wide)
        .zip(dgh.spare_capacity_mut()[..gh.len()].par_chunks_mut(wide))
        .zip(dh.spare_capacity_mut()[..h.len()].par_chunks_mut(BLOCK * d))
        .enumerate()
        .with_max_len(1)
        .for_each(|(block, ((dgi, dgh), dh))| {
            let rows = dh.len() / d;
            let at = |width: usize| block * BLOCK * width..(block * BLOCK + rows) * width;
            let input = (&gi[at(3 * d)], &gh[at(3 * d)], &h[at(d)], &grad[at(d)]);
            backward_block(input, d, (dgi, dgh, dh));
        });
    // SAFETY: the blocks cover every element of the three (`gi`, `gh` are `[n, 3d]`, `h` `[n, d]`)
    // and `backward_block` writes each of its rows whole.
    unsafe {
        dgi.set_len(gi.len());
        dgh.set_len(gh.len());
        dh.set_len(h.len());
    }
    (dgi, dgh, dh)
}

type Inputs<'a> = (&'a [f32], &'a [f32], &'a [f32], &'a [f32]);
type Outputs<'a> = (
    &'a mut [MaybeUninit<f32>],
    &'a mut [MaybeUninit<f32>],
    &'a mut [MaybeUninit<f32>],
);

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
            [dir, dhr],
            [diz, dhz],
            din,
            dhn,
            dh,
        );
    }
}

/// One row's gradients of the pre-activations of `r`, `z`, `n` (shared by the input and the
/// hidden product — `r`'s and `z`'s written to both — but for `n`'s hidden part `dhn`) and of the
/// hidden state, each element written once into memory nobody zeroed. The outputs come as
/// separate `&mut` parameters: LLVM then knows they do not overlap (slices split apart from one
/// row do not carry that), and the loop vectorises.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // separate `&mut` parameters are the point
fn row_backward(
    [ir, iz, inn]: [&[f32]; 3],
    [hr, hz, hn]: [&[f32]; 3],
    h: &[f32],
    g: &[f32],
    [dr, dhr]: [&mut [MaybeUninit<f32>]; 2],
    [dz, dhz]: [&mut [MaybeUninit<f32>]; 2],
    dn: &mut [MaybeUninit<f32>],
    dhn: &mut [MaybeUninit<f32>],
    dh: &mut [MaybeUninit<f32>],
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
    let (dr, dhr, dz, dhz, dn, dhn, dh) = (
        &mut dr[..d],
        &mut dhr[..d],
        &mut dz[..d],
        &mut dhz[..d],
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
        let (dpre_z, dpre_r) = (
            g[j] * (h[j] - n) * z * (1.0 - z),
            dpre_n * hn[j] * r * (1.0 - r),
        );
        dn[j].write(dpre_n);
        dhn[j].write(dpre_n * r);
        dz[j].write(dpre_z);
        dhz[j].write(dpre_z);
        dr[j].write(dpre_r);
        dhr[j].write(dpre_r);
        dh[j].write(g[j] * z);
    }
}
