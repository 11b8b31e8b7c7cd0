//! Roots that share an embedding. A root's embedding is a function of its memory row, its time
//! and its sampled neighbourhood alone, so roots with the same node, time and sampled slots
//! (streams with coarse timestamps repeat them: a snapshot's batch names each node many times)
//! are embedded once and the result gathered; the others' work is skipped, their values the same
//! to the bit.

use mspipe_sampler::SampledBatch;
use rustc_hash::FxHashMap;

/// Which roots of a batch are embedded ([`SharedRoots::embedded`]) and which embedded row each
/// root takes ([`SharedRoots::row`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SharedRoots {
    /// Positions of the roots embedded, in order.
    pub embedded: Vec<u32>,
    /// Per root, its row among the embedded.
    pub row: Vec<u32>,
}

impl SharedRoots {
    /// The roots of `batch` grouped by node, time and sampled slots (every hop's).
    pub fn of(batch: &SampledBatch) -> Self {
        let mut first: FxHashMap<(u32, u64), Vec<u32>> = FxHashMap::default();
        let mut embedded = Vec::new();
        let row = (0..batch.roots.len())
            .map(|r| {
                let key = (batch.roots[r], batch.root_times[r].to_bits());
                let same = first.entry(key).or_default();
                if let Some(&e) = same
                    .iter()
                    .find(|&&e| same_slots(batch, embedded[e as usize], r))
                {
                    return e;
                }
                let e = embedded.len() as u32;
                embedded.push(r);
                same.push(e);
                e
            })
            .collect();
        SharedRoots {
            embedded: embedded.into_iter().map(|r| r as u32).collect(),
            row,
        }
    }

    /// Whether sharing is worth it: it skips at least an eighth of the roots. Below that the
    /// gathers cost about what they save, and the batch is embedded root by root as without
    /// sharing — which keeps training on streams with fine timestamps exactly as it was: the
    /// forward values are the same to the bit either way, but a shared row's gradient is summed
    /// before the backward matrix products, not inside them (the same sum in another order).
    pub fn is_worth_it(&self) -> bool {
        self.embedded.len() * 8 <= self.row.len() * 7
    }
}

/// Whether roots `a` and `b` sampled the same slots at every hop (neighbour rows, times, masks,
/// events); hop `l` holds `k^(l+1)` slots per root, root after root.
fn same_slots(batch: &SampledBatch, a: usize, b: usize) -> bool {
    let mut width = 1;
    batch.hops.iter().all(|h| {
        width *= batch.k;
        let (x, y) = (a * width..(a + 1) * width, b * width..(b + 1) * width);
        h.index[x.clone()] == h.index[y.clone()]
            && h.eid[x.clone()] == h.eid[y.clone()]
            && h.mask[x.clone()] == h.mask[y.clone()]
            && h.dt[x]
                .iter()
                .zip(&h.dt[y])
                .all(|(p, q)| p.to_bits() == q.to_bits())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspipe_sampler::Hop;

    #[test]
    fn roots_share_only_node_time_and_slots() {
        // Roots: 5@1, 6@1, 5@1 (same slots as the first), 5@2, 5@1 (other slots), 5@1 again.
        let hop = Hop {
            nbr: vec![7, 8, 7, 7, 8, 7],
            eid: vec![1, 2, 1, 3, 9, 1],
            ts: vec![0.0; 6],
            dt: vec![1.0, 2.0, 1.0, 1.0, 2.0, 1.0],
            mask: vec![true; 6],
            index: vec![2, 3, 2, 2, 3, 2],
        };
        let batch = SampledBatch {
            k: 1,
            roots: vec![5, 6, 5, 5, 5, 5],
            root_times: vec![1.0, 1.0, 1.0, 2.0, 1.0, 1.0],
            root_index: vec![0, 1, 0, 0, 0, 0],
            hops: vec![hop],
            unique_nodes: vec![5, 6, 7, 8],
        };
        let shared = SharedRoots::of(&batch);
        assert_eq!(shared.embedded, [0, 1, 3, 4]);
        assert_eq!(shared.row, [0, 1, 0, 2, 3, 0]);
        assert!(shared.is_worth_it(), "a third of the roots skipped");
        let one_of_nine = SharedRoots {
            embedded: (0..8).collect(),
            row: vec![0, 1, 2, 3, 4, 5, 6, 7, 0],
        };
        assert!(
            !one_of_nine.is_worth_it(),
            "a ninth skipped: under an eighth"
        );
    }
}
