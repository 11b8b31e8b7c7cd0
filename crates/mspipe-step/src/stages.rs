//! A training epoch's batches as the scheduler's [`Stages`]: sampling and feature fetch read
//! only immutable data (graph, stream), the memory fetch and update go through the executor's
//! versioned store, and compute ([`crate::Trainer`]) stays on the caller's thread with the model.

use std::sync::Mutex;

use mspipe_model::Delivery;
use mspipe_sampler::NeighborSampler;
use mspipe_scheduler::{BoxError, Mitigation, ReadVersion, Stages};

use crate::batch::{self, Fetched, Prepared, SampleContext, Sampled, Write};
use crate::{GradientMean, Handover, NodeMemory, StaleFix, UpdatedRows};

/// The events of batch `b` of `size` events.
pub fn batch_events(events: &[usize], size: usize, b: usize) -> Vec<usize> {
    let end = ((b + 1) * size).min(events.len());
    events[b * size..end].to_vec()
}

/// Sampling, feature fetch, memory fetch and update of training batches `first..` over a store
/// of type `S`.
pub struct TrainStages<'a, S> {
    /// What sampling reads.
    pub cx: SampleContext<'a>,
    /// Only the sampling thread uses it; the lock is never contended.
    pub sampler: Mutex<&'a mut NeighborSampler>,
    /// The events trained on, in time order.
    pub events: &'a [usize],
    /// Events per batch.
    pub batch_size: usize,
    /// Batch of iteration 0.
    pub first: usize,
    /// Who receives the mails.
    pub delivery: Delivery,
    /// The rows compute updates ([`UpdatedRows::of`] the model): the fetch reads their mailboxes.
    pub updated: UpdatedRows,
    /// Applied to fetches that missed updates; `None` switches mitigation off.
    pub mitigation: Option<Mitigation>,
    /// Δt quantile above which a node that missed updates counts as stale.
    pub quantile: f64,
    /// The gradient exchange of several compute workers, released when the run fails.
    pub exchange: Option<&'a GradientMean>,
    /// The store type.
    pub memory: std::marker::PhantomData<fn() -> S>,
}

impl<S> TrainStages<'_, S> {
    /// Sorted endpoints of the batches of iterations `from..to`.
    fn endpoints(&self, from: usize, to: usize) -> Vec<u32> {
        let s = self.cx.stream;
        let mut nodes: Vec<u32> = (self.first + from..self.first + to)
            .flat_map(|b| batch_events(self.events, self.batch_size, b))
            .flat_map(|e| [s.src()[e], s.dst()[e]])
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

impl<S: NodeMemory> Stages for TrainStages<'_, S> {
    type Sampled = Sampled;
    type Prepared = Prepared;
    type Fetched = Fetched<S>;
    type Update = Handover<S>;
    type Write = Write<S>;
    type Memory = S;

    fn sample(&self, i: usize) -> Result<Sampled, BoxError> {
        let events = batch_events(self.events, self.batch_size, self.first + i);
        let mut sampler = self.sampler.lock().unwrap_or_else(|p| p.into_inner());
        Ok(batch::sample(self.cx, &mut sampler, events)?)
    }

    fn fetch_features(&self, _: usize, sampled: Sampled) -> Result<Prepared, BoxError> {
        Ok(batch::fetch_features(self.cx.stream, sampled))
    }

    fn fetch_memory(
        &self,
        i: usize,
        prepared: Prepared,
        memory: &S,
        _stamps: &[u32],
        version: ReadVersion,
    ) -> Result<Fetched<S>, BoxError> {
        let missed = match self.mitigation {
            Some(_) if version.staleness() > 0 => self.endpoints(version.committed, i),
            _ => Vec::new(),
        };
        let fix = self
            .mitigation
            .filter(|_| !missed.is_empty())
            .map(|mitigation| StaleFix {
                mitigation,
                quantile: self.quantile,
                missed,
            });
        Ok(batch::fetch_memory(memory, prepared, self.updated, fix))
    }

    fn prepare_update(&self, _: usize, handover: Handover<S>) -> Result<Write<S>, BoxError> {
        Ok(handover.into_write(self.cx.stream, self.delivery))
    }

    fn apply_update(&self, _: usize, write: Write<S>, memory: &mut S) -> Vec<u32> {
        batch::apply_write(memory, write)
    }

    fn abort(&self) {
        if let Some(exchange) = self.exchange {
            exchange.abort();
        }
    }
}
