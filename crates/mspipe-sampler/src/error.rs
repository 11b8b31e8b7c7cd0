//! Errors of the sampler crate.

/// Why a sampler call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[allow(missing_docs)] // every field is named in its variant's message
pub enum SamplerError {
    /// Appends must come in time order, after everything the graph holds.
    #[error("event at t={time} is older than the newest event in the graph (t={newest})")]
    OutOfOrder { time: f64, newest: f64 },
    /// A node id outside the graph.
    #[error("node {node} is outside the graph's {num_nodes} nodes")]
    UnknownNode { node: u32, num_nodes: usize },
    /// Roots and their times must pair up.
    #[error("{roots} roots but {times} root times")]
    RootTimes { roots: usize, times: usize },
    /// A configuration value out of range.
    #[error("{0}")]
    Config(String),
}
