//! φ(Δt) = cos(Δt·w + b) on host slices: one pass forward, one pass backward (−sin, the products
//! with the incoming gradient and the column sums for `w` and `b` together), rows in parallel.
//! Column sums are taken per fixed block of rows and the blocks added in order, so the result
//! does not depend on the thread count.

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

/// Gradients for `w` and `b` given the output's (`[n, T]`).
pub fn backward(dt: &[f32], w: &[f32], b: &[f32], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let t = w.len();
    let partials: Vec<(Vec<f32>, Vec<f32>)> = if t == 0 {
        Vec::new()
    } else {
        grad.par_chunks(BLOCK * t)
            .zip(dt.par_chunks(BLOCK))
            .map(|(grad, dt)| {
                let (mut dw, mut db) = (vec![0.0; t], vec![0.0; t]);
                accumulate(dt, w, b, grad, &mut dw, &mut db);
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
fn accumulate(dt: &[f32], w: &[f32], b: &[f32], grad: &[f32], dw: &mut [f32], db: &mut [f32]) {
    for (g, &x) in grad.chunks_exact(w.len()).zip(dt) {
        for ((((g, &w), &b), dw), db) in
            g.iter().zip(w).zip(b).zip(dw.iter_mut()).zip(db.iter_mut())
        {
            let d = -trig::sin(x * w + b) * g;
            *dw += d * x;
            *db += d;
        }
    }
}
