//! φ(Δt) = cos(Δt·w + b) on host slices, rows in parallel. A tracked encoding also keeps
//! sin(Δt·w + b), which its forward gets almost free (the two share the argument reduction and
//! both polynomials are evaluated for every quadrant anyway): the backward is then products and
//! column sums, not a second pass of trigonometry. Column sums are taken per fixed block of rows
//! and the blocks added in order, so the result does not depend on the thread count.

use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::{par_filled, trig};

/// Rows per parallel task (and per partial column sum).
const BLOCK: usize = 256;

/// `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`.
pub fn forward(dt: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let t = w.len();
    // SAFETY: `encode` writes all `T` elements of each of its block's rows.
    unsafe {
        par_filled(dt.len() * t, BLOCK * t, |i, out| {
            encode(&dt[i * BLOCK..(i * BLOCK + out.len() / t)], w, b, out)
        })
    }
}

#[multiversion(targets = "simd")]
fn encode(dt: &[f32], w: &[f32], b: &[f32], out: &mut [MaybeUninit<f32>]) {
    for (row, &x) in out.chunks_exact_mut(w.len()).zip(dt) {
        for ((o, &w), &b) in row.iter_mut().zip(w).zip(b) {
            o.write(trig::cos(x * w + b));
        }
    }
}

/// [`forward`] and sin(Δt·w + b), both `[n, T]`.
pub fn forward_with_sine(dt: &[f32], w: &[f32], b: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let len = dt.len() * w.len();
    let (mut cos, mut sin) = (Vec::with_capacity(len), Vec::with_capacity(len));
    if len > 0 {
        let rows = BLOCK * w.len();
        cos.spare_capacity_mut()[..len]
            .par_chunks_mut(rows)
            .zip(sin.spare_capacity_mut()[..len].par_chunks_mut(rows))
            .zip(dt.par_chunks(BLOCK))
            .with_max_len(1)
            .for_each(|((cos, sin), dt)| encode_with_sine(dt, w, b, cos, sin));
    }
    // SAFETY: the chunks cover the first `len` elements of each, and `encode_with_sine` writes
    // every element of its block's rows (`dt` is chunked by the same rows).
    unsafe {
        cos.set_len(len);
        sin.set_len(len);
    }
    (cos, sin)
}

#[multiversion(targets = "simd")]
fn encode_with_sine(
    dt: &[f32],
    w: &[f32],
    b: &[f32],
    cos: &mut [MaybeUninit<f32>],
    sin: &mut [MaybeUninit<f32>],
) {
    let t = w.len();
    for ((cos, sin), &x) in cos.chunks_exact_mut(t).zip(sin.chunks_exact_mut(t)).zip(dt) {
        for (((c, s), &w), &b) in cos.iter_mut().zip(sin.iter_mut()).zip(w).zip(b) {
            let (cx, sx) = trig::cos_sin(x * w + b);
            c.write(cx);
            s.write(sx);
        }
    }
}

/// Gradients for `w` and `b` (`[T]` each) given the output's `grad` and the sine
/// [`forward_with_sine`] kept (`[n, T]` each).
pub fn backward(dt: &[f32], sine: &[f32], grad: &[f32], t: usize) -> (Vec<f32>, Vec<f32>) {
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if t == 0 {
        Vec::new()
    } else {
        grad.par_chunks(BLOCK * t)
            .zip(sine.par_chunks(BLOCK * t))
            .zip(dt.par_chunks(BLOCK))
            .with_max_len(1)
            .map(|((grad, sine), dt)| {
                let (mut dw, mut db) = (vec![0.0; t], vec![0.0; t]);
                accumulate(dt, sine, grad, &mut dw, &mut db);
                (dw, db)
            })
            .collect()
    };
    let (mut dw, mut db) = (vec![0.0f32; t], vec![0.0f32; t]);
    for (pw, pb) in &partials {
        dw.iter_mut().zip(pw).for_each(|(a, x)| *a += x);
        db.iter_mut().zip(pb).for_each(|(a, x)| *a += x);
    }
    (dw, db)
}

/// Adds this block's ∂/∂w = Σ −sin(Δt·w + b)·g·Δt and ∂/∂b = Σ −sin(Δt·w + b)·g to `dw`, `db`.
#[multiversion(targets = "simd")]
fn accumulate(dt: &[f32], sine: &[f32], grad: &[f32], dw: &mut [f32], db: &mut [f32]) {
    let t = dw.len();
    for ((g, s), &x) in grad.chunks_exact(t).zip(sine.chunks_exact(t)).zip(dt) {
        for (((g, &s), dw), db) in g.iter().zip(s).zip(dw.iter_mut()).zip(db.iter_mut()) {
            let d = -s * g;
            *dw += d * x;
            *db += d;
        }
    }
}
