//! Staleness mitigation: blend a stale node's memory with the memories of similar, fresher nodes,
//! `m ← λ·m + (1 − λ)·mean(top-s similar fresh memories)` (MSPipe, λ = 0.9). A candidate counts
//! only if its own read missed nothing and its memory is strictly newer than the stale node's:
//! blending with an older memory would move the node back in time, not forward.
//!
//! Similarity is maintained online rather than read from a precomputed file: the candidates of a
//! node are its most recent temporal neighbours — the nodes it exchanged mails with, whose
//! memories the same events drove, kept current by the append-only T-CSR and already fetched by
//! the neighbour sampler — ranked by cosine similarity of their current memories. Nothing is
//! precomputed, it follows the graph as it grows, and costs O(k·d) per stale node.

/// λ and s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mitigation {
    /// Weight of the node's own (stale) memory.
    pub lambda: f32,
    /// How many of the most similar fresh candidates are averaged.
    pub top: usize,
}

impl Default for Mitigation {
    fn default() -> Self {
        Mitigation {
            lambda: 0.9,
            top: 10,
        }
    }
}

/// Candidates of each root: `k` slots per root, as the neighbour sampler lays them out.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// Memory row of each root.
    pub root_row: &'a [u32],
    /// Memory row of each slot (`k` per root).
    pub slot_row: &'a [u32],
    /// Whether each slot holds a neighbour.
    pub mask: &'a [bool],
    /// Slots per root.
    pub k: usize,
    /// Time of each memory row (its last update, or its newest mail's): a candidate must be
    /// strictly newer than the stale row it blends into.
    pub time: &'a [f64],
}

/// The rows to mitigate: those whose update was missed, and those whose `dt` (query time minus
/// last update) lies above the batch's `q`-quantile.
pub fn stale_rows(missed: &[bool], dt: &[f64], q: f64) -> Vec<bool> {
    let mut sorted: Vec<f64> = dt.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let cut = if sorted.is_empty() {
        f64::INFINITY
    } else {
        sorted[((sorted.len() - 1) as f64 * q).round() as usize]
    };
    missed.iter().zip(dt).map(|(&m, &t)| m || t > cut).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

impl Mitigation {
    /// Blends every stale root's row of `memory` (`[rows, dim]`) with the mean of its `top` most
    /// cosine-similar fresh candidates; all blends read the memory as it was before any of them.
    /// Returns how many rows changed.
    pub fn apply(
        &self,
        memory: &mut [f32],
        dim: usize,
        stale: &[bool],
        c: Candidates<'_>,
    ) -> usize {
        let before = memory.to_vec();
        let row = |r: u32| &before[r as usize * dim..(r as usize + 1) * dim];
        let mut done = vec![false; stale.len()];
        let mut changed = 0;
        let mut ranked: Vec<(f32, u32)> = Vec::with_capacity(c.k);
        for (root, &r) in c.root_row.iter().enumerate() {
            if !stale[r as usize] || done[r as usize] {
                continue;
            }
            done[r as usize] = true;
            ranked.clear();
            for s in root * c.k..(root + 1) * c.k {
                let n = c.slot_row[s];
                let fresher = c.time[n as usize] > c.time[r as usize];
                if c.mask[s] && fresher && !stale[n as usize] && !ranked.iter().any(|x| x.1 == n) {
                    ranked.push((cosine(row(r), row(n)), n));
                }
            }
            if ranked.is_empty() {
                continue;
            }
            // Highest similarity first; ties by row for determinism.
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            ranked.truncate(self.top);
            let w = (1.0 - self.lambda) / ranked.len() as f32;
            let out = &mut memory[r as usize * dim..(r as usize + 1) * dim];
            for (j, x) in out.iter_mut().enumerate() {
                let mean: f32 = ranked.iter().map(|&(_, n)| row(n)[j]).sum();
                *x = self.lambda * row(r)[j] + w * mean;
            }
            changed += 1;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_rows_are_missed_or_above_the_quantile() {
        let dt: Vec<f64> = (0..101).map(f64::from).collect();
        let mut missed = vec![false; 101];
        missed[3] = true;
        let stale = stale_rows(&missed, &dt, 0.99);
        // The 0.99 quantile of 0..=100 is 99: only 100 lies above it.
        let rows: Vec<usize> = (0..101).filter(|&i| stale[i]).collect();
        assert_eq!(rows, vec![3, 100]);
    }

    #[test]
    fn blends_with_the_most_similar_fresh_neighbours() {
        // Rows: 0 stale root; 1, 2, 3 fresh neighbours; 4 a stale neighbour.
        let dim = 2;
        let mut memory = vec![
            1.0, 0.0, // 0
            2.0, 0.1, // 1: nearly parallel to row 0
            0.0, 1.0, // 2: orthogonal
            3.0, -0.2, // 3: nearly parallel
            9.0, 0.0, // 4: parallel but stale itself
        ];
        let stale = [true, false, false, false, true];
        let time = [5.0, 6.0, 6.0, 7.0, 9.0];
        let c = Candidates {
            root_row: &[0],
            slot_row: &[1, 2, 3, 4, 1],
            mask: &[true, true, true, true, false],
            k: 5,
            time: &time,
        };
        let m = Mitigation {
            lambda: 0.9,
            top: 2,
        };
        assert_eq!(m.apply(&mut memory, dim, &stale, c), 1);
        // Top-2 by cosine among fresh {1, 2, 3}: rows 1 and 3; mean (2.5, −0.05).
        let expect = [0.9 * 1.0 + 0.1 * 2.5, 0.9 * 0.0 + 0.1 * -0.05];
        assert!((memory[0] - expect[0]).abs() < 1e-6 && (memory[1] - expect[1]).abs() < 1e-6);
        assert_eq!(&memory[2..], &[2.0, 0.1, 0.0, 1.0, 3.0, -0.2, 9.0, 0.0]);
        // No fresh candidate: unchanged.
        let mut lone = vec![1.0, 2.0, 3.0, 4.0];
        let c = Candidates {
            root_row: &[0],
            slot_row: &[1],
            mask: &[true],
            k: 1,
            time: &[1.0, 2.0],
        };
        assert_eq!(
            Mitigation::default().apply(&mut lone, 2, &[true, true], c),
            0
        );
        assert_eq!(lone, vec![1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_stale_node_with_only_older_or_equal_neighbours_is_left_unchanged() {
        // Row 0 is stale at time 5; rows 1 and 2 are fresh reads but their memories are older
        // (4) or as old (5): nothing fresher to blend with.
        let mut memory = vec![1.0, 0.0, 1.0, 0.1, 0.9, 0.0];
        let before = memory.clone();
        let mut c = Candidates {
            root_row: &[0],
            slot_row: &[1, 2],
            mask: &[true, true],
            k: 2,
            time: &[5.0, 4.0, 5.0],
        };
        let m = Mitigation::default();
        assert_eq!(m.apply(&mut memory, 2, &[true, false, false], c), 0);
        assert_eq!(memory, before);
        // One newer neighbour (row 2 at 6): it alone is blended in.
        c.time = &[5.0, 4.0, 6.0];
        assert_eq!(m.apply(&mut memory, 2, &[true, false, false], c), 1);
        let expect = [0.9 * 1.0 + 0.1 * 0.9, 0.0];
        assert!((memory[0] - expect[0]).abs() < 1e-6 && memory[1].abs() < 1e-6);
    }
}
