//! De-duplication of the nodes a batch touches, with a generation-stamped table instead of a hash
//! set: O(1) per lookup and no clearing between batches.

/// Assigns each distinct node its first-seen position.
#[derive(Debug, Clone, Default)]
pub(crate) struct UniqueNodes {
    stamp: Vec<u32>,
    slot: Vec<u32>,
    generation: u32,
}

impl UniqueNodes {
    /// Starts a new batch over `num_nodes` nodes.
    pub fn begin(&mut self, num_nodes: usize, out: &mut Vec<u32>) {
        if self.stamp.len() < num_nodes {
            self.stamp.resize(num_nodes, 0);
            self.slot.resize(num_nodes, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
        out.clear();
    }

    /// Position of `u` in `out`, adding it when new.
    #[inline]
    pub fn index(&mut self, u: u32, out: &mut Vec<u32>) -> u32 {
        let i = u as usize;
        if self.stamp[i] != self.generation {
            self.stamp[i] = self.generation;
            self.slot[i] = out.len() as u32;
            out.push(u);
        }
        self.slot[i]
    }
}
