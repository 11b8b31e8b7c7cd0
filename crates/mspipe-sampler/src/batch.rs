//! The flat, tensor-ready output of neighbour sampling.

/// The neighbours sampled at one hop: `k` slots per root of that hop, row-major `[roots × k]`.
///
/// Valid slots come first in each row, oldest event first; padding (a node with fewer than `k`
/// past events) follows with `mask = false`, node 0, edge 0, `ts = dt = 0` and `index = 0`, so the
/// arrays can be gathered from without bounds checks and the mask alone hides the padding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hop {
    /// Neighbour node ids.
    pub nbr: Vec<u32>,
    /// Edge (event) ids, for edge-feature gathers.
    pub eid: Vec<u32>,
    /// Event timestamps.
    pub ts: Vec<f64>,
    /// Root time minus event time (never negative: no later event is sampled; 0 for an event at
    /// the root's time in an earlier batch).
    pub dt: Vec<f32>,
    /// Whether the slot holds a real event.
    pub mask: Vec<bool>,
    /// Position of `nbr` in [`SampledBatch::unique_nodes`].
    pub index: Vec<u32>,
}

impl Hop {
    pub(crate) fn reset(&mut self, slots: usize) {
        self.nbr.clear();
        self.nbr.resize(slots, 0);
        self.eid.clear();
        self.eid.resize(slots, 0);
        self.ts.clear();
        self.ts.resize(slots, 0.0);
        self.dt.clear();
        self.dt.resize(slots, 0.0);
        self.mask.clear();
        self.mask.resize(slots, false);
        self.index.clear();
        self.index.resize(slots, 0);
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.nbr.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.nbr.is_empty()
    }

    /// Number of valid (non-padding) slots.
    pub fn valid(&self) -> usize {
        self.mask.iter().filter(|&&m| m).count()
    }
}

/// Everything sampled for one batch of roots. Hop `l + 1` has `k` slots for every slot of hop `l`
/// (the roots of hop `l + 1` are hop `l`'s neighbours, at their event times), so hop `l` has
/// `roots × k^(l+1)` slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledBatch {
    /// Slots per root per hop.
    pub k: usize,
    /// The roots, as given.
    pub roots: Vec<u32>,
    /// Their query times.
    pub root_times: Vec<f64>,
    /// Position of each root in `unique_nodes`.
    pub root_index: Vec<u32>,
    /// One entry per hop.
    pub hops: Vec<Hop>,
    /// Every node the batch touches (roots, then valid neighbours), once, in first-seen order:
    /// the rows the memory gather reads.
    pub unique_nodes: Vec<u32>,
}

impl SampledBatch {
    /// Rows of [`SampledBatch::unique_nodes`] that roots occupy: roots come first, so these are
    /// rows `0..root_rows()` and the rest are neighbours that are no root.
    pub fn root_rows(&self) -> usize {
        self.root_index.iter().max().map_or(0, |&r| r as usize + 1)
    }

    /// Gives every root a row of its own: `unique_nodes` becomes the roots, in order, then the
    /// neighbours that are no root, and `root_index` becomes `0..roots`. A neighbour slot of a
    /// node that is also a root points at that node's first root row. For models whose updated
    /// memory depends on the time it is asked at (APAN's mail ages), so that each root is updated
    /// at its own time, as TGL does.
    pub fn separate_roots(&mut self) {
        let rows = self.unique_nodes.len();
        let mut first_root = vec![u32::MAX; rows];
        for (i, &u) in self.root_index.iter().enumerate() {
            let first = &mut first_root[u as usize];
            if *first == u32::MAX {
                *first = i as u32;
            }
        }
        let mut unique = self.roots.clone();
        let moved: Vec<u32> = (0..rows)
            .map(|u| match first_root[u] {
                u32::MAX => {
                    unique.push(self.unique_nodes[u]);
                    (unique.len() - 1) as u32
                }
                root => root,
            })
            .collect();
        for hop in &mut self.hops {
            for (index, &valid) in hop.index.iter_mut().zip(&hop.mask) {
                if valid {
                    *index = moved[*index as usize];
                }
            }
        }
        self.root_index = (0..self.roots.len() as u32).collect();
        self.unique_nodes = unique;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separate_roots_gives_each_root_a_row() {
        // Roots 5, 6, 5 (node 5 twice); neighbours 9 (no root) and 6 (a root), one padding slot.
        let mut b = SampledBatch {
            k: 1,
            roots: vec![5, 6, 5],
            root_times: vec![1.0, 2.0, 3.0],
            root_index: vec![0, 1, 0],
            hops: vec![Hop {
                nbr: vec![9, 6, 0],
                mask: vec![true, true, false],
                index: vec![2, 1, 0],
                ..Hop::default()
            }],
            unique_nodes: vec![5, 6, 9],
        };
        assert_eq!(b.root_rows(), 2);
        b.separate_roots();
        assert_eq!(b.root_rows(), 3);
        assert_eq!(b.unique_nodes, [5, 6, 5, 9]);
        assert_eq!(b.root_index, [0, 1, 2]);
        assert_eq!(b.hops[0].index, [3, 1, 0]);
        // Every row still names its node.
        for (&r, &n) in b.root_index.iter().zip(&b.roots) {
            assert_eq!(b.unique_nodes[r as usize], n);
        }
        for (&i, &n) in b.hops[0].index.iter().zip(&b.hops[0].nbr).take(2) {
            assert_eq!(b.unique_nodes[i as usize], n);
        }
    }
}
