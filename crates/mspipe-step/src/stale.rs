//! Correcting a memory fetch that missed updates (MSPipe's staleness mitigation).

use mspipe_sampler::SampledBatch;
use mspipe_scheduler::{Candidates, Mitigation, stale_rows};

/// How a fetch that missed updates is corrected.
#[derive(Debug, Clone, PartialEq)]
pub struct StaleFix {
    /// The blend of stale rows with their fresher neighbours'.
    pub mitigation: Mitigation,
    /// Δt quantile above which a node counts as stale.
    pub quantile: f64,
    /// Nodes written by the updates the fetch missed, sorted.
    pub missed: Vec<u32>,
}

/// Blends the stale roots' memories (`[U, dim]` rows of `batch.unique_nodes`, whose memories date
/// from `mem_time`) with their most similar fresh neighbours'; returns the rows changed.
pub(crate) fn mitigate(
    dim: usize,
    batch: &SampledBatch,
    memory: &mut [f32],
    mem_time: &[f64],
    fix: StaleFix,
) -> usize {
    let unique = batch.unique_nodes.len();
    let mut dt = vec![f64::NAN; unique];
    for (&u, &t) in batch.root_index.iter().zip(&batch.root_times) {
        let d = &mut dt[u as usize];
        let since = t - mem_time[u as usize];
        *d = if d.is_nan() { since } else { d.max(since) };
    }
    let missed: Vec<bool> = batch
        .unique_nodes
        .iter()
        .map(|n| fix.missed.binary_search(n).is_ok())
        .collect();
    let stale = stale_rows(&missed, &dt, fix.quantile);
    let hop = &batch.hops[0];
    let candidates = Candidates {
        root_row: &batch.root_index,
        slot_row: &hop.index,
        mask: &hop.mask,
        k: batch.k,
        time: mem_time,
    };
    fix.mitigation.apply(memory, dim, &stale, candidates)
}
