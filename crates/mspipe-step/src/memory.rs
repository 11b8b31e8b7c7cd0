//! The node-memory interface a batch reads and writes: [`NodeMemory`], implemented by the host
//! store ([`MemoryStore`], plain buffers) and the device store ([`crate::DeviceStore`], tensors
//! on a cubecl device read and written by fused kernels).
//!
//! # Several workers over one store
//! A store is one value that the scheduler's executor versions: the memory fetch of a batch reads
//! it through `&self` while no write holds it, an update takes `&mut self` between reads. Several
//! workers share one *host* store by sharing that executor: each worker's fetch gathers its rows
//! into host buffers ([`NodeMemory::fetch`]), its compute uploads them to its own device
//! ([`NodeMemory::update`] only needs the model's device) and hands back host rows, which the
//! update stage writes into the one store. A device store belongs to one device and to compute's
//! thread ([`NodeMemory::WRITES_ON_COMPUTE`]); it is not shared.

use std::io::{self, Read, Write};

use burn::prelude::*;
use mspipe_data::Features;
use mspipe_model::memory::MemoryStore;
use mspipe_model::{MailAges, MailClock, MemoryModel};
use mspipe_sampler::SampledBatch;

use crate::{Mailing, StaleFix};

/// Size of a node memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryShape {
    /// Nodes of the stream.
    pub nodes: usize,
    /// Memory width.
    pub dim: usize,
    /// Width of a raw mail (self memory ⊕ other memory ⊕ edge features).
    pub mail_dim: usize,
    /// Mails kept per node.
    pub slots: usize,
}

/// What compute makes of a fetch.
#[derive(Debug)]
pub struct Updated<R> {
    /// `[U', d]` updated memories of the batch's first `U'` unique nodes, differentiable (the
    /// updater learns through the embeddings computed from them): every row when the embedding
    /// attends over neighbours' memories, else only the roots' rows (the first
    /// [`SampledBatch::root_rows`]).
    pub memory: Tensor<2>,
    /// `[R]` each root's time since its memory's time, as a fraction of the time since the
    /// stream began ([`mspipe_model::EmbedInput::root_dt`]).
    pub root_dt: Tensor<1>,
    /// The same memories, detached, where the store writes them from.
    pub rows: R,
}

/// A node memory that a batch reads and writes: per node a memory vector, its last-update time
/// and a FIFO mailbox of the last [`MemoryShape::slots`] mails with their times.
///
/// The batch's stages call, in order: [`fetch`](NodeMemory::fetch) (stage M, through `&self`),
/// [`update`](NodeMemory::update) (compute, on the model's device),
/// [`prepare_write`](NodeMemory::prepare_write) and [`apply`](NodeMemory::apply) (stage U, the
/// latter through `&mut self`). Each associated type carries one stage's output to the next, so a
/// host fetch can only feed a host update and a device write only a device store.
pub trait NodeMemory: Clone + Send + Sync + Sized + 'static {
    /// What the memory fetch hands compute.
    type Fetched: Send;
    /// The batch's updated memories (detached) and their times, as the store writes them.
    type Rows: Send;
    /// A batch's write, prepared outside the store's lock.
    type Write: Send;

    /// Whether the store's device work must stay on compute's thread. In the pipeline, compute
    /// then applies each batch's write to its own newest copy of the store and the update stage
    /// commits that copy as it is (burn-fusion 0.22.1 does not order a custom operation's
    /// outputs across threads).
    const WRITES_ON_COMPUTE: bool = false;

    /// Zero memory of `shape` placed for `device`, for a stream whose first event is at
    /// `first_time` (a device store measures its f32 times from there).
    fn empty(shape: MemoryShape, first_time: f64, device: &Device) -> Self;

    /// The store's size.
    fn shape(&self) -> MemoryShape;

    /// Back to zero memory (epoch start).
    fn reset(&mut self);

    /// Stage M: reads the memory of `batch.unique_nodes` and the mailboxes of the `updated` rows;
    /// with `fix`, blends the rows that missed updates with fresher neighbours' (see
    /// [`StaleFix`]).
    fn fetch(
        &self,
        batch: &SampledBatch,
        updated: UpdatedRows,
        fix: Option<StaleFix>,
    ) -> Self::Fetched;

    /// Compute: the updated memories of the fetched nodes on `device` and each root's
    /// [`root_dt`](mspipe_model::EmbedInput::root_dt) for a stream that began at `time_origin`.
    fn update(
        model: &MemoryModel,
        fetched: Self::Fetched,
        batch: &SampledBatch,
        time_origin: f64,
        device: &Device,
    ) -> Updated<Self::Rows>;

    /// Stage U, first half: the endpoints' new rows and the mails of `mailing` (self ⊕ other ⊕
    /// the event's `edges` row).
    fn prepare_write(rows: Self::Rows, mailing: Mailing, edges: Option<&Features>) -> Self::Write;

    /// Stage U, second half: writes the rows, then delivers the mails, a node named several
    /// times getting only its latest.
    fn apply(&mut self, write: Self::Write);

    /// A host copy of the whole state (a device store is read back).
    fn to_host(&self) -> MemoryStore;

    /// Replaces the state with `host`'s, which has this store's shape.
    fn restore(&mut self, host: &MemoryStore);

    /// Writes the state in [`MemoryStore::write_to`]'s format, so a checkpoint resumes on either
    /// kind of store.
    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        self.to_host().write_to(w)
    }

    /// Restores what [`NodeMemory::write_to`] wrote; the shape must match.
    fn read_from(&mut self, r: &mut impl Read) -> io::Result<()> {
        let mut host = self.to_host();
        host.read_from(r)?;
        self.restore(&host);
        Ok(())
    }
}

/// Which of a batch's rows compute updates, and so whose mailboxes the memory fetch reads: all of
/// them when the model's embedding attends over neighbours' memories (TGN), else only the roots'
/// (JODIE, APAN); the neighbours then only receive mails or lend their memory to staleness
/// mitigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdatedRows {
    /// Every unique node of the batch.
    All,
    /// The roots' rows, the first [`SampledBatch::root_rows`].
    Roots,
}

impl UpdatedRows {
    /// The rows `model` updates.
    pub fn of(model: &MemoryModel) -> Self {
        match model.layers().is_empty() {
            true => UpdatedRows::Roots,
            false => UpdatedRows::All,
        }
    }

    /// How many of `batch`'s rows (its leading unique nodes) that is.
    pub fn count(self, batch: &SampledBatch) -> usize {
        match self {
            UpdatedRows::All => batch.unique_nodes.len(),
            UpdatedRows::Roots => batch.root_rows(),
        }
    }
}

/// How many of `batch`'s rows `model` updates ([`UpdatedRows`]).
pub(crate) fn rows_read(model: &MemoryModel, batch: &SampledBatch) -> usize {
    UpdatedRows::of(model).count(batch)
}

/// Per row of `batch`, the time a [`MailClock::Age`] clock measures its mails' ages at: its
/// root's time with [`MailAges::Root`] (and [`crate::RootRows::PerRoot`] every root has a row of
/// its own; a row shared by several roots would take the earliest); the batch's first event time
/// with [`MailAges::Batch`], for a row that is no root's, and for any other clock.
pub(crate) fn ages_from(batch: &SampledBatch, clock: MailClock) -> Vec<f64> {
    let start = batch
        .root_times
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let mut now = vec![start; batch.unique_nodes.len()];
    if clock != MailClock::Age(MailAges::Root) {
        return now;
    }
    let mut seen = vec![false; batch.unique_nodes.len()];
    for (&u, &t) in batch.root_index.iter().zip(&batch.root_times) {
        let u = u as usize;
        now[u] = if seen[u] { now[u].min(t) } else { t };
        seen[u] = true;
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_taken_at_each_nodes_first_root() {
        // Roots 7@3, 8@4, 7@2 (node 7 twice, the later position first in time); node 9 is only a
        // sampled neighbour.
        let batch = SampledBatch {
            roots: vec![7, 8, 7],
            root_times: vec![3.0, 4.0, 2.0],
            root_index: vec![0, 1, 0],
            unique_nodes: vec![7, 8, 9],
            ..SampledBatch::default()
        };
        assert_eq!(
            ages_from(&batch, MailClock::Age(MailAges::Root)),
            [2.0, 4.0, 2.0]
        );
        assert_eq!(ages_from(&batch, MailClock::Age(MailAges::Batch)), [2.0; 3]);
    }
}
