//! The mapping between the ids a dataset file uses and the dense ids `0..num_nodes` used everywhere
//! else (memory rows, sampler arrays).

/// Dense id → original id, with the bipartite layout when the source had two id spaces.
///
/// Dense ids are assigned by ascending original id (so `ml_*` files whose ids are `1..=N` map to
/// `id - 1`), and for two-sided sources (JODIE) users come first, then items.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeIds {
    original: Vec<u64>,
    /// Number of dense ids on the user side when users and items had separate id spaces.
    users: Option<usize>,
}

impl NodeIds {
    /// Identity mapping over `0..n`.
    pub fn identity(n: usize) -> Self {
        NodeIds {
            original: (0..n as u64).collect(),
            users: None,
        }
    }

    pub(crate) fn new(original: Vec<u64>, users: Option<usize>) -> Self {
        NodeIds { original, users }
    }

    /// Appends a node (see [`crate::EventStream::push_node`]).
    pub(crate) fn push(&mut self, original: u64) {
        self.original.push(original);
    }

    /// Original id of dense node `d` (within its side for two-sided sources).
    pub fn original(&self, d: u32) -> u64 {
        self.original[d as usize]
    }

    /// All original ids, indexed by dense id.
    pub fn originals(&self) -> &[u64] {
        &self.original
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.original.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.original.is_empty()
    }

    /// Users-side size if users and items were two id spaces (JODIE): dense `0..u` are users.
    pub fn users(&self) -> Option<usize> {
        self.users
    }

    /// Dense id of an original id in a single id space (`None` for unknown ids).
    pub fn dense(&self, original: u64) -> Option<u32> {
        let side = &self.original[..self.users.unwrap_or(self.original.len())];
        side.binary_search(&original).ok().map(|d| d as u32)
    }

    /// Dense id of an item's original id in a two-sided source (`None` for one-sided sources).
    pub fn dense_item(&self, original: u64) -> Option<u32> {
        let users = self.users?;
        let items = &self.original[users..];
        items
            .binary_search(&original)
            .ok()
            .map(|d| (users + d) as u32)
    }
}
