//! The five stages of one training iteration.

/// A stage of a training iteration, in the order sequential training runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Temporal neighbour and negative sampling (S).
    Sample,
    /// Edge/node feature gather (F).
    Feature,
    /// Node memory and mailbox read (M): the only stage that depends on earlier updates.
    Memory,
    /// Forward, backward and optimizer step (C).
    Compute,
    /// Write-back of the updated memories and new mails (U).
    Update,
}

impl Stage {
    /// All stages, in iteration order.
    pub const ALL: [Stage; 5] = [
        Stage::Sample,
        Stage::Feature,
        Stage::Memory,
        Stage::Compute,
        Stage::Update,
    ];

    /// Position in [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// One-letter name used in timelines (S, F, M, C, U).
    pub fn letter(self) -> char {
        ['S', 'F', 'M', 'C', 'U'][self.index()]
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        ["sample", "feature", "memory", "compute", "update"][self.index()]
    }
}
