//! Attention over gathered slot rows on host slices, roots in parallel. Each slot's row is read
//! in place from its two tables (node rows and Δt rows) and, between them, the slot's own row
//! (its edge's features, data) — the forward pass writes nothing per slot. The backward keeps two
//! numbers per slot and head (what the slot's table rows get of that head's query and of its
//! output's gradient); then each table row, owned by one task, sums its slots' terms in slot
//! order: deterministic, no atomics, and no per-slot gradient rows written and read back. Table
//! rows are read at random, so each pass over the slots asks for the rows a few slots ahead. A
//! padded slot adds nothing to any output or gradient, so no pass reads its rows (whatever they
//! hold: padding may point at any row).

use std::borrow::Cow;
use std::mem::MaybeUninit;

use multiversion::multiversion;
use rayon::prelude::*;

use super::exp::exp;
use super::par_filled;
use super::prefetch::prefetch;

/// Roots per parallel task.
const BLOCK: usize = 64;

/// How many slots ahead a pass over the slots prefetches their table rows.
const AHEAD: usize = 4;

/// Columns of a table's gradient row summed per pass (one AVX-512 register of `f32`).
const LANES: usize = 16;

/// Shapes: `n` roots, `k` slots, `h` heads; slot rows of `ca` columns from `a`, then `ce` of the
/// slot's own, then `cb` from `b`. Queries and outputs are `[h, n, c]` (heads outermost, as the
/// caller's per-head products are).
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub n: usize,
    pub k: usize,
    pub h: usize,
    pub ca: usize,
    pub ce: usize,
    pub cb: usize,
}

impl Dims {
    fn width(&self) -> usize {
        self.ca + self.ce + self.cb
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

/// The two tables and each slot's row in them, and the slots' own rows (`[n·k, ce]`).
pub struct Rows<'a> {
    pub a: Cow<'a, [f32]>,
    pub ia: Vec<usize>,
    pub e: Cow<'a, [f32]>,
    pub b: Cow<'a, [f32]>,
    pub ib: Vec<usize>,
}

/// A slot's row in its three parts: from `a`, its own, from `b`.
type Slot<'a> = [&'a [f32]; 3];

impl Rows<'_> {
    /// The three parts of slot `s`'s row.
    #[inline(always)]
    fn slot(&self, s: usize, d: Dims) -> Slot<'_> {
        [
            &self.a[self.ia[s] * d.ca..][..d.ca],
            &self.e[s * d.ce..][..d.ce],
            &self.b[self.ib[s] * d.cb..][..d.cb],
        ]
    }

    /// Starts loading the table rows of the slot [`AHEAD`] after `s`, if there is one.
    #[inline(always)]
    fn prefetch_after(&self, s: usize, d: Dims) {
        if let (Some(&ia), Some(&ib)) = (self.ia.get(s + AHEAD), self.ib.get(s + AHEAD)) {
            prefetch(&self.a[ia * d.ca..][..d.ca]);
            prefetch(&self.b[ib * d.cb..][..d.cb]);
        }
    }
}

/// A row of width `ca + ce + cb` cut as a slot's row is.
#[inline(always)]
fn parts(v: &[f32], d: Dims) -> Slot<'_> {
    let (a, rest) = v.split_at(d.ca);
    let (e, b) = rest.split_at(d.ce);
    [a, e, &b[..d.cb]]
}

/// [`parts`] of a row to write.
#[inline(always)]
fn parts_mut(v: &mut [f32], d: Dims) -> [&mut [f32]; 3] {
    let (a, rest) = v.split_at_mut(d.ca);
    let (e, b) = rest.split_at_mut(d.ce);
    [a, e, &mut b[..d.cb]]
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

/// A padded slot's score, as in the reference (callers multiply the softmax weights by the mask
/// afterwards, so a padded slot adds nothing anywhere: the passes below skip its row).
const PADDED: f32 = -1e9;

/// Slot `j`'s masked score for the query `q`, the reference's formula.
#[inline(always)]
fn score(q: &[f32], x: Slot<'_>, real: f32, d: Dims) -> f32 {
    dot_row(q, x, d) * real + (1.0 - real) * PADDED
}

/// ⟨`v`, x⟩ for a slot row x in its parts.
#[inline(always)]
fn dot_row(v: &[f32], [xa, xe, xb]: Slot<'_>, d: Dims) -> f32 {
    let [va, ve, vb] = parts(v, d);
    dot(va, xa) + dot(ve, xe) + dot(vb, xb)
}

/// `out` += `w`·x for a slot row x, `out` cut as x is.
#[inline(always)]
fn axpy_row(out: &mut [f32], w: f32, x: Slot<'_>, d: Dims) {
    for (o, x) in parts_mut(out, d).into_iter().zip(x) {
        axpy(o, w, x);
    }
}

/// `out` += `w`·`x`.
#[inline(always)]
fn axpy(out: &mut [f32], w: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, &x)| *o += w * x);
}

/// An `[h, n, c]` buffer as per-task parts: for each block of roots, its rows of every head.
fn head_blocks<T>(buf: &mut [T], d: Dims) -> Vec<Vec<&mut [T]>> {
    let c = d.width();
    let mut blocks: Vec<Vec<&mut [T]>> = (0..d.n.div_ceil(BLOCK)).map(|_| Vec::new()).collect();
    for head in buf.chunks_mut(d.n * c) {
        for (block, rows) in blocks.iter_mut().zip(head.chunks_mut(BLOCK * c)) {
            block.push(rows);
        }
    }
    blocks
}

/// An `[h, n, c]` output that blocks of roots accumulate into, in parallel: `accumulate` gets
/// each block's index, its rows of every head (zeroed by the same task just before, while they
/// are about to be used, rather than in a pass over the whole buffer) and its item of `with`
/// (one per block).
fn accumulated<W: Send>(
    d: Dims,
    with: impl IndexedParallelIterator<Item = W>,
    accumulate: impl Fn(usize, &mut [&mut [f32]], W) + Sync + Send,
) -> Vec<f32> {
    let len = d.h * d.n * d.width();
    if d.empty() {
        return vec![0.0; len];
    }
    let mut out = Vec::with_capacity(len);
    let blocks = head_blocks(&mut out.spare_capacity_mut()[..len], d);
    assert_eq!(with.len(), blocks.len(), "one item per block of roots");
    blocks
        .into_par_iter()
        .zip(with)
        .enumerate()
        .with_max_len(1)
        .for_each(|(block, (rows, with))| {
            let mut rows: Vec<&mut [f32]> = rows
                .into_iter()
                .map(|row| {
                    row.fill(MaybeUninit::new(0.0));
                    // SAFETY: every element was just written.
                    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
                })
                .collect();
            accumulate(block, &mut rows, with);
        });
    // SAFETY: the blocks' rows cover the `len` elements, each zeroed above.
    unsafe { out.set_len(len) };
    out
}

/// `q` `[h, n, c]`, `keep` `[n, k]`, `scale` `[h, n, k]` → `[h, n, c]`, and the softmax
/// weights `[n, h, k]` (what [`backward`] takes, so it need not take the scores again).
pub fn forward(
    q: &[f32],
    rows: &Rows<'_>,
    keep: &[f32],
    scale: &[f32],
    d: Dims,
) -> (Vec<f32>, Vec<f32>) {
    let mut weights = vec![0.0f32; d.n * d.h * d.k];
    let blocks = weights.par_chunks_mut((BLOCK * d.h * d.k).max(1));
    let out = accumulated(d, blocks, |block, out, weights| {
        forward_block(q, rows, keep, scale, d, block * BLOCK, out, weights);
    });
    (out, weights)
}

/// Root `r`'s softmax weights over its slots, every head's, into `p` (`[head·k + j]`).
#[inline(always)]
fn weights(q: &[f32], rows: &Rows<'_>, keep: &[f32], d: Dims, r: usize, p: &mut [f32]) {
    for j in 0..d.k {
        rows.prefetch_after(r * d.k + j, d);
        if keep[j] == 0.0 {
            // What `score` gives a padded slot whose row is finite.
            (0..d.h).for_each(|head| p[head * d.k + j] = PADDED);
            continue;
        }
        let x = rows.slot(r * d.k + j, d);
        for head in 0..d.h {
            p[head * d.k + j] = score(&q[d.at(head, r)], x, keep[j], d);
        }
    }
    p.chunks_exact_mut(d.k).for_each(softmax);
}

/// Per root, every head in each pass over the real slots, so each of their rows is read twice
/// (scores, then sums) whatever the number of heads. `out[head]` holds the block's rows of that head.
#[multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)] // one block's slices of every input and output
fn forward_block(
    q: &[f32],
    rows: &Rows<'_>,
    keep: &[f32],
    scale: &[f32],
    d: Dims,
    first: usize,
    out: &mut [&mut [f32]],
    p_block: &mut [f32],
) {
    let c = d.width();
    for i in 0..out[0].len() / c {
        let r = first + i;
        let keep = &keep[r * d.k..][..d.k];
        // `p[head·k + j]`.
        let p = &mut p_block[i * d.h * d.k..][..d.h * d.k];
        weights(q, rows, keep, d, r, p);
        for j in (0..d.k).filter(|&j| keep[j] != 0.0) {
            let x = rows.slot(r * d.k + j, d);
            for (head, out) in out.iter_mut().enumerate() {
                let w = p[head * d.k + j] * keep[j] * scale[d.slot(head, r, j)];
                axpy_row(&mut out[i * c..][..c], w, x, d);
            }
        }
    }
}

/// Gradients for `q` (`[h, n, c]`), `a` (`[rows_a, ca]`) and `b` (`[rows_b, cb]`) given the
/// output's (`[h, n, c]`) and the forward's softmax weights (`[n, h, k]`, from [`forward`]).
pub fn backward(
    q: &[f32],
    rows: &Rows<'_>,
    [keep, scale, weights]: [&[f32]; 3],
    grad: &[f32],
    d: Dims,
    [rows_a, rows_b]: [usize; 2],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    // Per slot and head, what the slot's table rows get of the head's query and of its output's
    // gradient: `[n·k, h, 2]`, written by the real slots' blocks (a padded slot's stay zero and
    // are never read).
    let mut coef = vec![0.0f32; d.n * d.k * d.h * 2];
    let blocks = coef.par_chunks_mut((BLOCK * d.k * d.h * 2).max(1));
    let dq = accumulated(d, blocks, |block, dq, coef| {
        let p = &weights[block * BLOCK * d.h * d.k..];
        backward_block(rows, [keep, scale, p], grad, d, block * BLOCK, dq, coef);
    });
    let slots = Slots {
        q,
        grad,
        coef: &coef,
        keep,
        d,
    };
    let (da, db) = rayon::join(
        || slots.table_grads(&rows.ia, rows_a, 0..d.ca),
        || slots.table_grads(&rows.ib, rows_b, d.ca + d.ce..d.width()),
    );
    (dq, da, db)
}

/// What the tables' gradients are made from: the queries and the output's gradient (`[h, n, c]`)
/// and each slot's coefficients (`[n·k, h, 2]`: ∂L/∂score and the weight, per head).
struct Slots<'a> {
    q: &'a [f32],
    grad: &'a [f32],
    coef: &'a [f32],
    keep: &'a [f32],
    d: Dims,
}

impl Slots<'_> {
    /// A table's gradient `[rows, w]` for the columns `part` of the slots' rows (`w` of them),
    /// slot `s` at row `index[s]`: row i is the sum over its real slots, in slot order from zero,
    /// of Σ_head (∂L/∂score·q + weight·g) restricted to `part` — each slot's term formed in full
    /// before it is added, as a scatter of per-slot gradient rows would add them. Ranges of rows
    /// go to parallel tasks, each scanning the slots in order for its own rows (consecutive
    /// slots share a root, whose rows stay in cache): every row is summed in slot order whatever
    /// the ranges, so the bits do not depend on the thread count. Padded slots are left out: their
    /// terms are +0.0, which leaves a sum started at +0.0 unchanged to the bit.
    fn table_grads(&self, index: &[usize], rows: usize, part: std::ops::Range<usize>) -> Vec<f32> {
        let w = part.len();
        let per_task = rows.div_ceil(2 * rayon::current_num_threads()).max(1);
        // SAFETY: each chunk is whole rows of `w`, all zeroed before anything is added.
        unsafe {
            par_filled(rows * w, per_task * w, |task, out| {
                out.fill(MaybeUninit::new(0.0));
                // SAFETY: just written.
                let out = &mut *(out as *mut [MaybeUninit<f32>] as *mut [f32]);
                let first = task * per_task;
                add_slots(self, out, first..first + out.len() / w, index, part.clone());
            })
        }
    }

    /// `out` += slot `s`'s term on the columns from `column` (`out.len()` of them, at most
    /// [`LANES`]): Σ_head (∂L/∂score·q + weight·g), summed from zero in that order before it is
    /// added — one pass over the columns, the term held in registers.
    #[inline(always)]
    fn add_term(&self, s: usize, column: usize, out: &mut [f32]) {
        let (d, n) = (self.d, out.len());
        let r = s / d.k;
        let mut term = [0.0f32; LANES];
        for head in 0..d.h {
            let [ds, weight] = [0, 1].map(|c| self.coef[(s * d.h + head) * 2 + c]);
            let row = d.at(head, r).start + column;
            let (q, g) = (&self.q[row..][..n], &self.grad[row..][..n]);
            for l in 0..n {
                term[l] += ds * q[l];
            }
            for l in 0..n {
                term[l] += weight * g[l];
            }
        }
        for l in 0..n {
            out[l] += term[l];
        }
    }
}

/// `out` (the table's rows `range`) += each real slot's term whose table row is in `range`, slot
/// by slot; see [`Slots::table_grads`].
#[multiversion(targets = "simd")]
fn add_slots(
    slots: &Slots<'_>,
    out: &mut [f32],
    range: std::ops::Range<usize>,
    index: &[usize],
    part: std::ops::Range<usize>,
) {
    let w = part.len();
    for (s, &i) in index.iter().enumerate() {
        if slots.keep[s] == 0.0 || !range.contains(&i) {
            continue;
        }
        let out = &mut out[(i - range.start) * w..][..w];
        let mut chunks = out.chunks_exact_mut(LANES);
        for (c, out) in (&mut chunks).enumerate() {
            slots.add_term(s, part.start + c * LANES, out);
        }
        let done = w - chunks.into_remainder().len();
        slots.add_term(s, part.start + done, &mut out[done..]);
    }
}

/// Two passes over each root's real slots: ⟨g, x⟩ for every head (the softmax weights are the
/// forward's), then the gradients of the query and the coefficients of the slot's table rows
/// for every head.
#[multiversion(targets = "simd")]
#[allow(clippy::too_many_arguments)] // one block's slices of every input and output
fn backward_block(
    rows: &Rows<'_>,
    [keep, scale, p_block]: [&[f32]; 3],
    grad: &[f32],
    d: Dims,
    first: usize,
    dq: &mut [&mut [f32]],
    coef: &mut [f32],
) {
    let c = d.width();
    // `p` (the forward's softmax weights), `dp` as `[head·k + j]`; `s[head]` = Σ_j p_j·m_j·dp_j
    // with m_j = keep_j·scale_j.
    let (mut dp, mut s) = (vec![0.0f32; d.h * d.k], vec![0.0; d.h]);
    for i in 0..dq[0].len() / c {
        let r = first + i;
        let keep = &keep[r * d.k..][..d.k];
        let p = &p_block[i * d.h * d.k..][..d.h * d.k];
        let real_slots = || (0..d.k).filter(|&j| keep[j] != 0.0);
        for j in 0..d.k {
            rows.prefetch_after(r * d.k + j, d);
            if keep[j] == 0.0 {
                continue;
            }
            let x = rows.slot(r * d.k + j, d);
            for head in 0..d.h {
                dp[head * d.k + j] = dot_row(&grad[d.at(head, r)], x, d);
            }
        }
        for head in 0..d.h {
            let (ph, dph) = (&p[head * d.k..][..d.k], &dp[head * d.k..][..d.k]);
            s[head] = real_slots()
                .map(|j| ph[j] * keep[j] * scale[d.slot(head, r, j)] * dph[j])
                .sum();
        }
        for j in real_slots() {
            let x = rows.slot(r * d.k + j, d);
            let real = keep[j];
            for (head, dq) in dq.iter_mut().enumerate() {
                let (pj, m) = (p[head * d.k + j], real * scale[d.slot(head, r, j)]);
                // ∂L/∂score_j through the mask, the softmax and the multiplier m.
                let ds = real * pj * (m * dp[head * d.k + j] - s[head]);
                axpy_row(&mut dq[i * c..][..c], ds, x, d);
                // x_j is the key (score) and the value (weight) of every head: its table rows
                // get ds·q + weight·g of each head (see `Slots::table_grads`).
                coef[((i * d.k + j) * d.h + head) * 2..][..2].copy_from_slice(&[ds, pj * m]);
            }
        }
    }
}
