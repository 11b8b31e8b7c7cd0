//! The training batch's stages as the scheduler's [`Stages`]: sampling and feature fetch read
//! only immutable data (graph, stream), the memory fetch and update go through the executor's
//! versioned store, and compute ([`Trainer`]) stays on the caller's thread with the model.
//!
//! With node memory on the device, every device operation runs on compute's thread: the fetch
//! stage only keeps the store's handles, compute reads them and applies its own update to the
//! newest state ([`DeviceUpdates`]), and the update stage commits that state as it is.
//! burn-fusion 0.22.1 orders operations across threads' streams for its own operations but not
//! for a custom operation's outputs (training read stale memories and, rarely, lost a handle),
//! so no device tensor is worked on by two threads.

use std::sync::Mutex;

use anyhow::{Result, bail};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::tensors::to_vec;
use mspipe_model::{Delivery, MemoryModel};
use mspipe_sampler::NeighborSampler;
use mspipe_scheduler::{BoxError, Mitigation, ReadVersion, Stages};

use crate::batch::{self, Fetched, Prepared, SampleContext, Sampled, StaleFix, Update, Write};
use crate::config::TrainConfig;
use crate::memory::{DeviceStore, NodeMemory};

/// The events of batch `b` of `size` events.
pub fn batch_events(events: &[usize], size: usize, b: usize) -> Vec<usize> {
    let end = ((b + 1) * size).min(events.len());
    events[b * size..end].to_vec()
}

/// The seed of the random draws (dropout) of batch `b` of `epoch` in a run seeded `seed`.
fn step_seed(seed: u64, epoch: usize, b: usize) -> u64 {
    // splitmix64's finaliser over the three, so neighbouring batches get unrelated streams.
    let mut z = seed ^ (epoch as u64).rotate_left(32) ^ (b as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What compute hands the update stage.
// burn tensors are large handles; each value moves a few times per batch, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Handover {
    /// The updated memories, for the update stage to write.
    Update(Update),
    /// A write compute already applied (device memory).
    Write(Write),
}

impl Handover {
    /// What to apply to the store.
    pub fn into_write(self, stream: &EventStream, delivery: Delivery) -> Write {
        match self {
            Handover::Update(update) => batch::prepare_write(stream, delivery, update),
            Handover::Write(write) => write,
        }
    }
}

/// Node memory on the device as compute keeps it in the pipeline: the newest state, with the
/// updates not yet committed.
pub struct DeviceUpdates<'a> {
    pub newest: DeviceStore,
    pub stream: &'a EventStream,
    pub delivery: Delivery,
}

/// Compute: forward, hand the memory update over, backward, optimizer step.
pub struct Trainer<'a> {
    pub model: &'a mut MemoryModel,
    pub optim: &'a mut ModuleOptimizer,
    pub lr: f64,
    /// Memory width and mailbox slots.
    pub dims: (usize, usize),
    pub time_scale: f64,
    /// The run's seed: every step's dropout masks are drawn from (seed, epoch, batch), so a
    /// resumed run draws the same ones.
    pub seed: u64,
    pub device: &'a Device,
    /// Set in the pipeline when node memory is on the device.
    pub device_updates: Option<DeviceUpdates<'a>>,
}

impl<'a> Trainer<'a> {
    /// The trainer of `model` with `optim` and the learning rate and time scale of `train`.
    pub fn new(
        model: &'a mut MemoryModel,
        optim: &'a mut ModuleOptimizer,
        train: &TrainConfig,
        dims: (usize, usize),
        device: &'a Device,
    ) -> Self {
        Trainer {
            model,
            optim,
            lr: train.lr,
            dims,
            time_scale: train.time_scale,
            seed: train.seed,
            device,
            device_updates: None,
        }
    }

    /// Trains on `fetched` (batch `b` of `epoch`); `emit` gets the memory update as soon as the
    /// forward pass has produced it. Returns the loss.
    pub fn step(
        &mut self,
        epoch: usize,
        b: usize,
        fetched: Fetched,
        emit: impl FnOnce(Handover),
    ) -> Result<f64> {
        self.device.seed(step_seed(self.seed, epoch, b));
        let f = batch::forward(self.model, fetched, self.dims, self.time_scale, self.device);
        emit(match &mut self.device_updates {
            Some(d) => {
                let write = batch::prepare_write(d.stream, d.delivery, f.update);
                Handover::Write(batch::apply_here(&mut d.newest, write))
            }
            None => Handover::Update(f.update),
        });
        let value = to_vec(f.loss.clone())[0] as f64;
        if !value.is_finite() {
            bail!("loss became {value} at epoch {epoch}, batch {b}: stopping (lower train.lr?)");
        }
        let grads = GradientsParams::from_grads(f.loss.backward(), &*self.model);
        *self.model = self.optim.step(self.lr, self.model.clone(), grads);
        Ok(value)
    }
}

/// Sampling, feature fetch, memory fetch and update of training batches `first..`.
pub struct TrainStages<'a> {
    pub cx: SampleContext<'a>,
    /// Only the sampling thread uses it; the lock is never contended.
    pub sampler: Mutex<&'a mut NeighborSampler>,
    pub events: &'a [usize],
    pub batch_size: usize,
    /// Batch of iteration 0.
    pub first: usize,
    pub delivery: Delivery,
    /// Applied to fetches that missed updates; `None` switches mitigation off.
    pub mitigation: Option<Mitigation>,
    pub quantile: f64,
}

impl TrainStages<'_> {
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

impl Stages for TrainStages<'_> {
    type Sampled = Sampled;
    type Prepared = Prepared;
    type Fetched = Fetched;
    type Update = Handover;
    type Write = Write;
    type Memory = NodeMemory;

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
        memory: &NodeMemory,
        _stamps: &[u32],
        version: ReadVersion,
    ) -> Result<Fetched, BoxError> {
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
        Ok(batch::fetch_memory(memory, prepared, fix))
    }

    fn prepare_update(&self, _: usize, handover: Handover) -> Result<Write, BoxError> {
        Ok(handover.into_write(self.cx.stream, self.delivery))
    }

    fn apply_update(&self, _: usize, write: Write, memory: &mut NodeMemory) -> Vec<u32> {
        batch::apply_write(memory, write)
    }
}
