//! Compute: one training step of a batch — forward, hand the memory update over, backward,
//! optimizer step.

use std::ops::Range;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::draws::with_step_draws;
use mspipe_model::tensors::to_vec;
use mspipe_model::{Delivery, MemoryModel};

use crate::batch::{self, Change, Fetched, Prepared, Update, Write};
use crate::gradient_mean::{self, GradientMean};
use crate::{NodeMemory, StepError, UpdatedRows};

/// What a training step needs besides the model.
#[derive(Config, Debug)]
pub struct StepConfig {
    /// Who receives an event's mails: the model's own
    /// [`MemoryModelConfig::delivery`](mspipe_model::MemoryModelConfig::delivery).
    pub delivery: Delivery,
    /// Learning rate of the optimizer step.
    #[config(default = 1e-4)]
    pub lr: f64,
    /// The stream's first event time: JODIE's projection sees the time since a root's last update
    /// as a fraction of the time since then ([`mspipe_model::EmbedInput::root_dt`]).
    #[config(default = 0.0)]
    pub time_origin: f64,
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

/// How one of several data-parallel replicas joins the others: batches `batches` are dealt in
/// turn (batch `b` to worker `(b − start) mod workers`), and each group of `workers` consecutive
/// batches ends in one optimizer step with their gradients averaged.
#[derive(Debug, Clone)]
pub struct Replica<'a> {
    /// The exchange the gradients are averaged through.
    pub mean: &'a GradientMean,
    /// This replica's index.
    pub worker: usize,
    /// Replicas in all.
    pub workers: usize,
    /// The batches dealt (the last group may be short).
    pub batches: Range<usize>,
}

impl Replica<'_> {
    /// Workers whose gradients batch `b`'s step averages.
    fn participants(&self, b: usize) -> usize {
        let group_start = b - (b - self.batches.start) % self.workers;
        self.workers.min(self.batches.end - group_start)
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
    /// Set when this trainer is one of several data-parallel replicas.
    pub replica: Option<Replica<'a>>,
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
            replica: None,
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
        let fetched = batch::fetch_memory(memory, prepared, UpdatedRows::of(self.model), None);
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
    /// A [`Replica`] steps with the mean of its group's gradients.
    ///
    /// # Errors
    /// [`StepError::NonFiniteLoss`] when the loss is NaN or infinite (the model is not stepped);
    /// a replica also [`StepError::Aborted`] when a peer failed.
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
        let f = self.forward(epoch, b, fetched);
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
            if let Some(r) = &self.replica {
                // The peers would wait for this step's gradients forever.
                r.mean.abort();
            }
            return Err(StepError::NonFiniteLoss { loss, epoch, b });
        }
        let mut grads = GradientsParams::from_grads(f.loss.backward(), &*self.model);
        if let Some(r) = &self.replica {
            let device = self.device.clone().inner();
            grads = r
                .mean
                .mean(r.worker, r.participants(b), grads, &*self.model, &device)?;
        }
        *self.model = self.optim.step(self.config.lr, self.model.clone(), grads);
        Ok(loss)
    }
}

impl<S: NodeMemory> Trainer<'_, S> {
    /// Trains on the group of batches `batches` (of `epoch`) as data-parallel workers do, one
    /// after another on this model: each batch is fetched by `fetch` (after the earlier batches'
    /// updates went to `write`; both get `io`, e.g. the store) and run forward and backward with
    /// the same parameters, then one optimizer step follows with the mean of their gradients.
    /// Returns the batches' losses. The reference several [`Replica`]s are checked against; with
    /// one batch, exactly [`Trainer::step`].
    ///
    /// # Errors
    /// [`StepError::NonFiniteLoss`] as [`Trainer::step`].
    pub fn step_averaged<T>(
        &mut self,
        epoch: usize,
        batches: Range<usize>,
        io: &mut T,
        mut fetch: impl FnMut(&mut T, usize) -> Fetched<S>,
        mut write: impl FnMut(&mut T, usize, Handover<S>),
    ) -> Result<Vec<f64>, StepError> {
        let mut grads = Vec::with_capacity(batches.len());
        let mut losses = Vec::with_capacity(batches.len());
        for b in batches {
            let fetched = fetch(io, b);
            let f = self.forward(epoch, b, fetched);
            write(io, b, Handover::Update(f.update));
            let loss = f64::from(to_vec(f.loss.clone())[0]);
            if !loss.is_finite() {
                return Err(StepError::NonFiniteLoss { loss, epoch, b });
            }
            losses.push(loss);
            grads.push(GradientsParams::from_grads(f.loss.backward(), &*self.model));
        }
        if !grads.is_empty() {
            let device = self.device.clone().inner();
            let mean = gradient_mean::average(grads, &*self.model, &device);
            *self.model = self.optim.step(self.config.lr, self.model.clone(), mean);
        }
        Ok(losses)
    }
}

impl<S: NodeMemory> Trainer<'_, S> {
    /// The forward pass of batch `b` of `epoch`, its random draws seeded by the step.
    fn forward(&self, epoch: usize, b: usize, fetched: Fetched<S>) -> batch::Forward<S> {
        let seed = step_seed(self.config.seed, epoch, b);
        with_step_draws(seed, || {
            batch::forward(self.model, fetched, self.config.time_origin, self.device)
        })
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
