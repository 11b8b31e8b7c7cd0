//! Attention over gathered slot rows on host slices, roots in parallel. Each slot's row is read
//! in place from its two tables (node rows and Δt rows) — the forward pass writes nothing per
//! slot. The backward writes each slot's row gradient once (summed over heads, every slot owned
//! by one root) and then adds those into the tables in slot order: deterministic, no atomics.

use std::borrow::Cow;
use std::cell::Cell;
use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::exp::exp;
use super::par_filled;

/// Roots per parallel task.
const BLOCK: usize = 64;

/// Shapes: `n` roots, `k` slots, `h` heads; slot rows of `ca` columns from `a` beside `cb` from `b`.
/// Queries and outputs are `[h, n, c]` (heads outermost, as the caller's per-head products are).
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub n: usize,
    pub k: usize,
    pub h: usize,
    pub ca: usize,
    pub cb: usize,
}

impl Dims {
    fn width(&self) -> usize {
        self.ca + self.cb
    }

    /// Whether there is nothing to compute (outputs stay zero).
    fn empty(&self) -> bool {
        self.n == 0 || self.h == 0 || self.k == 0 || self.width() == 0
    }

    /// Head `head`'s weight of root `r`'s slot `j` in an `[h, n, k]` buffer.
    #[inline(always)]
    fn slot(&self, head: usize, r: usize, j: usize) -> usize {
        (head * self.n + r) * self.k + j
    }

    /// Head `head`'s row of root `r` in an `[h, n, c]` buffer.
    #[inline(always)]
    fn at(&self, head: usize, r: usize) -> std::ops::Range<usize> {
        let c = self.width();
        (head * self.n + r) * c..(head * self.n + r + 1) * c
    }
}

/// The two tables and each slot's row in them.
pub struct Rows<'a> {
    pub a: Cow<'a, [f32]>,
    pub ia: Vec<usize>,
    pub b: Cow<'a, [f32]>,
    pub ib: Vec<usize>,
}

impl Rows<'_> {
    /// The two parts of slot `s`'s row.
    #[inline(always)]
    fn slot(&self, s: usize, d: Dims) -> (&[f32], &[f32]) {
        (
            &self.a[self.ia[s] * d.ca..][..d.ca],
            &self.b[self.ib[s] * d.cb..][..d.cb],
        )
    }
}

/// `⟨a, b⟩` with eight partial sums in a fixed order (vectorisable, deterministic).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// `p` ← softmax(`p`), in place.
#[inline(always)]
fn softmax(p: &mut [f32]) {
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

/// Slot `j`'s masked score for the query `q`: −1e9 on padding, as in the reference (callers
/// multiply the softmax weights by the mask afterwards).
#[inline(always)]
fn score(q: &[f32], (xa, xb): (&[f32], &[f32]), real: f32, ca: usize) -> f32 {
    let (qa, qb) = q.split_at(ca);
    (dot(qa, xa) + dot(qb, xb)) * real + (1.0 - real) * -1e9
}

/// ⟨`v`, x⟩ for a slot row x in two parts.
#[inline(always)]
fn dot_row(v: &[f32], (xa, xb): (&[f32], &[f32]), ca: usize) -> f32 {
    let (va, vb) = v.split_at(ca);
    dot(va, xa) + dot(vb, xb)
}

/// `out` += `w`·`x`.
#[inline(always)]
fn axpy(out: &mut [f32], w: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, &x)| *o += w * x);
}

/// An `[h, n, c]` buffer as per-task parts: for each block of roots, its rows of every head.
fn head_blocks(buf: &mut [f32], d: Dims) -> Vec<Vec<&mut [f32]>> {
    let c = d.width();
    let mut blocks: Vec<Vec<&mut [f32]>> = (0..d.n.div_ceil(BLOCK)).map(|_| Vec::new()).collect();
    for head in buf.chunks_mut(d.n * c) {
        for (block, rows) in blocks.iter_mut().zip(head.chunks_mut(BLOCK * c)) {
            block.push(rows);
        }
    }
    blocks
}

/// `q` `[h, n, c]`, `keep` `[n, k]`, `scale` `[h, n, k]` → `[h, n, c]`.
pub fn forward(q: &[f32], rows: &Rows<'_>, keep: &[f32], scale: &[f32], d: Dims) -> Vec<f32> {
    let mut out = zeroed(d.h * d.n * d.width());
    if d.empty() {
        return out;
    }
    head_blocks(&mut out, d)
        .into_par_iter()
        .enumerate()
        .for_each(|(block, mut out)| {
            forward_block(q, rows, keep, scale, d, block * BLOCK, &mut out);
        });
    out
}

/// Root `r`'s softmax weights over its slots, every head's, into `p` (`[head·k + j]`); `also`
/// sees each (head, slot, slot row) as the scores are taken.
#[inline(always)]
fn weights(
    q: &[f32],
    rows: &Rows<'_>,
    keep: &[f32],
    d: Dims,
    r: usize,
    p: &mut [f32],
    mut also: impl FnMut(usize, usize, (&[f32], &[f32])),
) {
    for j in 0..d.k {
        let x = rows.slot(r * d.k + j, d);
        for head in 0..d.h {
            p[head * d.k + j] = score(&q[d.at(head, r)], x, keep[j], d.ca);
            also(head, j, x);
        }
    }
    p.chunks_exact_mut(d.k).for_each(softmax);
}

/// Per root, every head in each pass over the slots, so each slot row is read twice (scores,
/// then sums) whatever the number of heads. `out[head]` holds the block's rows of that head.
#[multiversion(targets = "simd")]
fn forward_block(
    q: &[f32],
    rows: &Rows<'_>,
    keep: &[f32],
    scale: &[f32],
    d: Dims,
    first: usize,
    out: &mut [&mut [f32]],
) {
    let c = d.width();
    // `p[head·k + j]`.
    let mut p = vec![0.0f32; d.h * d.k];
    for i in 0..out[0].len() / c {
        let r = first + i;
        let keep = &keep[r * d.k..][..d.k];
        weights(q, rows, keep, d, r, &mut p, |_, _, _| {});
        for j in 0..d.k {
            let (xa, xb) = rows.slot(r * d.k + j, d);
            for (head, out) in out.iter_mut().enumerate() {
                let w = p[head * d.k + j] * keep[j] * scale[d.slot(head, r, j)];
                let (oa, ob) = out[i * c..][..c].split_at_mut(d.ca);
                axpy(oa, w, xa);
                axpy(ob, w, xb);
            }
        }
    }
}

/// Gradients for `q` (`[h, n, c]`), `a` (`[rows_a, ca]`) and `b` (`[rows_b, cb]`) given the
/// output's (`[h, n, c]`).
pub fn backward(
    q: &[f32],
    rows: &Rows<'_>,
    keep: &[f32],
    scale: &[f32],
    grad: &[f32],
    d: Dims,
    [rows_a, rows_b]: [usize; 2],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = d.width();
    let mut dq = zeroed(d.h * d.n * c);
    // Each slot's row gradient, `[n·k, c]`: scratch kept across calls (the step's largest
    // buffer, otherwise zeroed and page-faulted in anew each time), every row written by its block.
    let mut dx = SLOT_GRADS.take();
    dx.resize(d.n * d.k * c, 0.0);
    if d.empty() {
        dx.fill(0.0);
    } else {
        head_blocks(&mut dq, d)
            .into_par_iter()
            .zip(dx.par_chunks_mut(BLOCK * d.k * c))
            .enumerate()
            .for_each(|(block, (mut dq, dx))| {
                let first = block * BLOCK;
                backward_block(q, rows, [keep, scale], grad, d, first, &mut dq, dx);
            });
    }
    let add_into = |index: &[usize], rows: usize, offset: usize, w: usize| {
        let mut table = vec![0.0f32; rows * w];
        if w > 0 {
            for (g, &i) in dx.chunks_exact(c).zip(index) {
                axpy(&mut table[i * w..][..w], 1.0, &g[offset..][..w]);
            }
        }
        table
    };
    let (da, db) = rayon::join(
        || add_into(&rows.ia, rows_a, 0, d.ca),
        || add_into(&rows.ib, rows_b, d.ca, d.cb),
    );
    SLOT_GRADS.set(dx);
    (dq, da, db)
}

thread_local! {
    /// [`backward`]'s per-slot row gradients, reused by the next call on the same thread.
    static SLOT_GRADS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `len` zeros, written by the pool's threads (a serial memset of the step's larger buffers
/// leaves the other cores idle).
fn zeroed(len: usize) -> Vec<f32> {
    // SAFETY: every chunk is filled whole.
    unsafe { par_filled(len, 1 << 16, |_, c| c.fill(MaybeUninit::new(0.0))) }
}

/// Two passes over each root's slots as in the forward: scores and ⟨g, x⟩ for every head, then
/// the gradients of the query and of the slot rows for every head.
#[multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)] // one block's slices of every input and output
fn backward_block(
    q: &[f32],
    rows: &Rows<'_>,
    [keep, scale]: [&[f32]; 2],
    grad: &[f32],
    d: Dims,
    first: usize,
    dq: &mut [&mut [f32]],
    dx: &mut [f32],
) {
    let c = d.width();
    // `p`, `dp` as `[head·k + j]`; `s[head]` = Σ_j p_j·m_j·dp_j with m_j = keep_j·scale_j.
    let (mut p, mut dp, mut s) = (
        vec![0.0f32; d.h * d.k],
        vec![0.0f32; d.h * d.k],
        vec![0.0; d.h],
    );
    for i in 0..dq[0].len() / c {
        let r = first + i;
        let keep = &keep[r * d.k..][..d.k];
        weights(q, rows, keep, d, r, &mut p, |head, j, x| {
            dp[head * d.k + j] = dot_row(&grad[d.at(head, r)], x, d.ca);
        });
        for head in 0..d.h {
            let (ph, dph) = (&p[head * d.k..][..d.k], &dp[head * d.k..][..d.k]);
            s[head] = (0..d.k)
                .map(|j| ph[j] * keep[j] * scale[d.slot(head, r, j)] * dph[j])
                .sum();
        }
        let dx = &mut dx[i * d.k * c..][..d.k * c];
        for (j, dxj) in dx.chunks_exact_mut(c).enumerate() {
            dxj.fill(0.0);
            let (xa, xb) = rows.slot(r * d.k + j, d);
            let real = keep[j];
            for (head, dq) in dq.iter_mut().enumerate() {
                let (pj, m) = (p[head * d.k + j], real * scale[d.slot(head, r, j)]);
                // ∂L/∂score_j through the mask, the softmax and the multiplier m.
                let ds = real * pj * (m * dp[head * d.k + j] - s[head]);
                let (dqa, dqb) = dq[i * c..][..c].split_at_mut(d.ca);
                axpy(dqa, ds, xa);
                axpy(dqb, ds, xb);
                // x_j is the key (score) and the value (weight) of every head.
                axpy(dxj, ds, &q[d.at(head, r)]);
                axpy(dxj, pj * m, &grad[d.at(head, r)]);
            }
        }
    }
}
