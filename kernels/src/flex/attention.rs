//! Temporal attention on host slices, roots in parallel: per (root, head) the `K` scores live in
//! a small per-task buffer, so scores, mask, softmax and the weighted sum are one pass over `q`, `k`,
//! `v`, and the backward one more — the math of the cubecl kernel, laid out for a CPU core
//! (contiguous `dh`-wide rows, inner loops that vectorise).

use multiversion::multiversion;
use rayon::prelude::*;

use super::exp::exp;

/// Roots per parallel task.
const BLOCK: usize = 64;

/// Shapes: `n` roots, `k` slots, `h` heads of width `dh`.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub n: usize,
    pub k: usize,
    pub h: usize,
    pub dh: usize,
}

impl Dims {
    fn scale(&self) -> f32 {
        1.0 / (self.dh as f32).sqrt()
    }
}

/// `⟨a, b⟩` with eight partial sums in a fixed order (vectorisable, deterministic).
#[inline(always)]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The softmax weights of one (root, head) into `p[..k]`, masked scores at −1e9 as in the
/// reference (callers multiply by the mask afterwards, as the reference does).
#[inline(always)]
fn weights(q: &[f32], k: &[f32], keep: &[f32], d: Dims, head: usize, p: &mut [f32]) {
    let scale = d.scale();
    for (j, pj) in p.iter_mut().enumerate() {
        let kj = &k[(j * d.h + head) * d.dh..][..d.dh];
        let real = keep[j];
        let s = dot(q, kj) * scale * real + (1.0 - real) * -1e9;
        *pj = s;
    }
    softmax(p);
}

/// `p` ← softmax(`p`), in place.
#[inline(always)]
pub(super) fn softmax(p: &mut [f32]) {
    let top = p.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut total = 0.0;
    for pj in p.iter_mut() {
        *pj = exp(*pj - top);
        total += *pj;
    }
    for pj in p.iter_mut() {
        *pj /= total;
    }
}

/// Root `r`'s keys, values and mask, out of a block's.
#[inline(always)]
fn root<'a>(
    k: &'a [f32],
    v: &'a [f32],
    keep: &'a [f32],
    r: usize,
    d: Dims,
) -> (&'a [f32], &'a [f32], &'a [f32]) {
    let slab = d.k * d.h * d.dh;
    let slots = r * slab..(r + 1) * slab;
    (&k[slots.clone()], &v[slots], &keep[r * d.k..(r + 1) * d.k])
}

/// `q` `[n, h, dh]`, `k`, `v` `[n, k, h, dh]`, `keep` `[n, k]` → `[n, h·dh]`.
pub fn forward(q: &[f32], k: &[f32], v: &[f32], keep: &[f32], d: Dims) -> Vec<f32> {
    let width = d.h * d.dh;
    let mut out = vec![0.0; d.n * width];
    if width == 0 || d.k == 0 {
        return out;
    }
    let slab = d.k * width;
    out.par_chunks_mut(BLOCK * width)
        .enumerate()
        .for_each(|(block, out)| {
            let (first, roots) = (block * BLOCK, out.len() / width);
            let rows = |size: usize| first * size..(first + roots) * size;
            let (q, keep) = (&q[rows(width)], &keep[rows(d.k)]);
            forward_block(q, &k[rows(slab)], &v[rows(slab)], keep, d, out);
        });
    out
}

#[multiversion(targets = "simd")]
fn forward_block(q: &[f32], k: &[f32], v: &[f32], keep: &[f32], d: Dims, out: &mut [f32]) {
    let width = d.h * d.dh;
    let mut p = vec![0.0f32; d.k];
    let p = &mut p[..];
    for (r, out) in out.chunks_exact_mut(width).enumerate() {
        let (k, v, keep) = root(k, v, keep, r, d);
        for head in 0..d.h {
            let qh = &q[r * width + head * d.dh..][..d.dh];
            weights(qh, k, keep, d, head, p);
            let o = &mut out[head * d.dh..][..d.dh];
            o.fill(0.0);
            for (j, &pj) in p.iter().enumerate() {
                let w = pj * keep[j];
                let vj = &v[(j * d.h + head) * d.dh..][..d.dh];
                o.iter_mut().zip(vj).for_each(|(o, &x)| *o += w * x);
            }
        }
    }
}

/// Gradients for `q`, `k`, `v` given the output's (`[n, h·dh]`).
pub fn backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keep: &[f32],
    grad: &[f32],
    d: Dims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (width, slab) = (d.h * d.dh, d.k * d.h * d.dh);
    let mut dq = vec![0.0; d.n * width];
    let mut dk = vec![0.0; d.n * slab];
    let mut dv = vec![0.0; d.n * slab];
    if width == 0 || d.k == 0 {
        return (dq, dk, dv);
    }
    dq.par_chunks_mut(BLOCK * width)
        .zip(dk.par_chunks_mut(BLOCK * slab))
        .zip(dv.par_chunks_mut(BLOCK * slab))
        .enumerate()
        .for_each(|(block, ((dq, dk), dv))| {
            let (first, roots) = (block * BLOCK, dq.len() / width);
            let rows = |size: usize| first * size..(first + roots) * size;
            let grads = Grads { dq, dk, dv };
            backward_block(
                &q[rows(width)],
                &k[rows(slab)],
                &v[rows(slab)],
                &keep[rows(d.k)],
                &grad[rows(width)],
                d,
                grads,
            );
        });
    (dq, dk, dv)
}

/// One block's gradient outputs.
struct Grads<'a> {
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

#[multiversion(targets = "simd")]
fn backward_block(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keep: &[f32],
    grad: &[f32],
    d: Dims,
    out: Grads<'_>,
) {
    let (width, slab, scale) = (d.h * d.dh, d.k * d.h * d.dh, d.scale());
    let (mut p, mut dp) = (vec![0.0f32; d.k], vec![0.0f32; d.k]);
    let (p, dp) = (&mut p[..], &mut dp[..]);
    for r in 0..grad.len() / width {
        let (k, v, keep) = root(k, v, keep, r, d);
        for head in 0..d.h {
            let at = r * width + head * d.dh;
            let (qh, g) = (&q[at..][..d.dh], &grad[at..][..d.dh]);
            weights(qh, k, keep, d, head, p);
            // dp_j = ⟨g, v_j⟩; c = Σ_j w_j·dp_j with w_j = p_j·keep_j.
            let mut c = 0.0;
            for j in 0..d.k {
                dp[j] = dot(g, &v[(j * d.h + head) * d.dh..][..d.dh]);
                c += p[j] * keep[j] * dp[j];
            }
            let dq = &mut out.dq[at..][..d.dh];
            for j in 0..d.k {
                let real = keep[j];
                // ∂L/∂score_j through the mask and the softmax, then through the scale.
                let ds = real * p[j] * (dp[j] - c) * scale;
                let weight = p[j] * real;
                let slot = (j * d.h + head) * d.dh;
                let kj = &k[slot..][..d.dh];
                dq.iter_mut().zip(kj).for_each(|(a, &x)| *a += ds * x);
                let dk = &mut out.dk[r * slab + slot..][..d.dh];
                dk.iter_mut().zip(qh).for_each(|(a, &x)| *a = ds * x);
                let dv = &mut out.dv[r * slab + slot..][..d.dh];
                dv.iter_mut().zip(g).for_each(|(a, &x)| *a = weight * x);
            }
        }
    }
}
