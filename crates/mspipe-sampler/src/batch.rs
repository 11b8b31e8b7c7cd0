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
