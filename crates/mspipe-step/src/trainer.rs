//! Compute: one training step of a batch — forward, hand the memory update over, backward,
//! optimizer step.

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::tensors::to_vec;
use mspipe_model::{Delivery, MemoryModel};

use crate::batch::{self, Change, Fetched, Prepared, Update, Write};
use crate::{NodeMemory, StepError};

/// What a training step needs besides the model.
#[derive(Config, Debug)]
pub struct StepConfig {
    /// Who receives an event's mails: the model's own
    /// [`MemoryModelConfig::delivery`](mspipe_model::MemoryModelConfig::delivery).
    pub delivery: Delivery,
    /// Learning rate of the optimizer step.
    #[config(default = 1e-4)]
    pub lr: f64,
    /// Factor on Δt before JODIE's time projection.
    #[config(default = 1.0)]
    pub time_scale: f64,
    /// Seed of every step's random draws (dropout): batch `b` of epoch `e` draws from
    /// (seed, e, b), so a resumed run draws the same masks.
    #[config(default = 0)]
    pub seed: u64,
}

/// What compute hands the update stage.
pub enum Handover<S: NodeMemory> {
    /// The updated memories, for the update stage to prepare and write.
    Update(Update<S>),
    /// A write compute already prepared (and applied to its own copy of the store).
    Write(Write<S>),
}

impl<S: NodeMemory> Handover<S> {
    /// What to apply to the store.
    pub fn into_write(self, stream: &EventStream, delivery: Delivery) -> Write<S> {
        match self {
            Handover::Update(update) => batch::prepare_write(stream, delivery, update),
            Handover::Write(write) => write,
        }
    }
}

/// Compute's state: the model, its optimizer and the step's settings.
pub struct Trainer<'a, S: NodeMemory> {
    /// The model trained.
    pub model: &'a mut MemoryModel,
    /// Its optimizer.
    pub optim: &'a mut ModuleOptimizer,
    /// Learning rate, time scale, seed and delivery.
    pub config: StepConfig,
    /// The events (edge features of the mails).
    pub stream: &'a EventStream,
    /// The autodiff device the model lives on.
    pub device: &'a Device,
    /// The newest state of a store that compute keeps up to date itself: set in a pipeline over
    /// a store with [`NodeMemory::WRITES_ON_COMPUTE`] (every update compute has made, committed
    /// or not).
    pub ahead: Option<S>,
}

impl<'a, S: NodeMemory> Trainer<'a, S> {
    /// The trainer of `model` with `optim` on `device` (autodiff), on the events of `stream`.
    pub fn new(
        model: &'a mut MemoryModel,
        optim: &'a mut ModuleOptimizer,
        config: StepConfig,
        stream: &'a EventStream,
        device: &'a Device,
    ) -> Self {
        Trainer {
            model,
            optim,
            config,
            stream,
            device,
            ahead: None,
        }
    }

    /// Trains on `prepared` (batch `b` of `epoch`) back to back: memory fetch from `memory`, the
    /// step, the write-back. Returns the loss.
    ///
    /// # Errors
    /// As [`Trainer::step`]; the write-back is made either way.
    pub fn train_batch(
        &mut self,
        memory: &mut S,
        prepared: Prepared,
        epoch: usize,
        b: usize,
    ) -> Result<f64, StepError> {
        let fetched = batch::fetch_memory(memory, prepared, None);
        let mut handover = None;
        let loss = self.step(epoch, b, fetched, |h| handover = Some(h));
        if let Some(h) = handover {
            batch::apply_write(memory, self.write(h));
        }
        loss
    }

    /// What to apply to the store for `handover`.
    pub fn write(&self, handover: Handover<S>) -> Write<S> {
        handover.into_write(self.stream, self.config.delivery)
    }

    /// Trains on `fetched` (batch `b` of `epoch`); `emit` gets the memory update as soon as the
    /// forward pass has produced it. Returns the loss.
    ///
    /// # Errors
    /// [`StepError::NonFiniteLoss`] when the loss is NaN or infinite (the model is not stepped).
    ///
    /// # Panics
    /// As [`batch::forward`] and [`batch::prepare_write`].
    pub fn step(
        &mut self,
        epoch: usize,
        b: usize,
        fetched: Fetched<S>,
        emit: impl FnOnce(Handover<S>),
    ) -> Result<f64, StepError> {
        self.device.seed(step_seed(self.config.seed, epoch, b));
        let f = batch::forward(self.model, fetched, self.config.time_scale, self.device);
        emit(match &mut self.ahead {
            Some(newest) => {
                let write = batch::prepare_write(self.stream, self.config.delivery, f.update);
                let written = batch::apply_write(newest, write);
                Handover::Write(Write {
                    written,
                    change: Change::Replace(newest.clone()),
                })
            }
            None => Handover::Update(f.update),
        });
        let loss = f64::from(to_vec(f.loss.clone())[0]);
        if !loss.is_finite() {
            return Err(StepError::NonFiniteLoss { loss, epoch, b });
        }
        let grads = GradientsParams::from_grads(f.loss.backward(), &*self.model);
        *self.model = self.optim.step(self.config.lr, self.model.clone(), grads);
        Ok(loss)
    }
}

/// The seed of the random draws (dropout) of batch `b` of `epoch` in a run seeded `seed`.
fn step_seed(seed: u64, epoch: usize, b: usize) -> u64 {
    // splitmix64's finaliser over the three, so neighbouring batches get unrelated streams.
    let mut z = seed ^ (epoch as u64).rotate_left(32) ^ (b as u64);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
