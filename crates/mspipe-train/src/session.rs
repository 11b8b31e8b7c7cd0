//! One training run's state — model, optimizer, node memory, graphs, samplers — and its batch
//! loops: sequential ([`Session::train_batch`], evaluation) and pipelined
//! ([`Session::train_pipelined`]), both running the stages of [`mspipe_step::batch`] over the
//! session's [`NodeMemory`].

use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use mspipe_data::{EventStream, Split};
use mspipe_model::tensors::to_vec;
use mspipe_model::{MemoryModel, MemoryModelConfig};
use mspipe_sampler::{Direction, NegativeSampler, NeighborConfig, NeighborSampler, TemporalGraph};
use mspipe_scheduler::{Executor, Mitigation, Stage, Timeline};

use mspipe_step::batch::{self, SampleContext};
use mspipe_step::{
    MemoryShape, MemoryStore, NodeMemory, StepConfig, TrainStages, Trainer, batch_events,
};

use crate::config::Config;

/// Scores of a stretch of events.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// One logit per positive event.
    pub pos: Vec<f32>,
    /// `per_positive` logits per positive event.
    pub neg: Vec<f32>,
    /// Whether each positive involves a node unseen in training.
    pub new_node: Vec<bool>,
    /// Positives per evaluation batch, in order (metrics are averaged over batches).
    pub batch_len: Vec<usize>,
}

/// What an inference pass yields per batch.
struct Inference {
    pos: Tensor<1>,
    neg: Tensor<1>,
    sources: Tensor<2>,
}

/// The model, its optimizer, the node memory (of type `S`), the graphs and the samplers of a run.
pub struct Session<S: NodeMemory = MemoryStore> {
    pub config: Config,
    pub stream: EventStream,
    pub split: Split,
    model_config: MemoryModelConfig,
    pub model: MemoryModel,
    optim: ModuleOptimizer,
    store: S,
    sampler: NeighborSampler,
    train_graph: TemporalGraph,
    full_graph: TemporalGraph,
    train_negatives: NegativeSampler,
    eval_negatives: NegativeSampler,
    train_events: Vec<usize>,
    device: Device,
    /// What one unit of the model's time is, in the stream's own unit (see
    /// [`EventStream::time_resolution`]); the session's stream is counted in it.
    pub time_unit: f64,
}

/// The device models run on: CUDA's first GPU when built with `--features cuda`, the default wgpu
/// adapter with `--features wgpu`, else burn's flex CPU backend (the fastest CPU backend here).
pub fn base_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
    {
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(not(any(feature = "cuda", feature = "wgpu")))]
    {
        Device::flex()
    }
}

/// Name of the backend of [`base_device`], for run summaries.
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else {
    "flex"
};

/// Key of the evaluation negatives: the same in every epoch and run with the same seed.
pub const EVAL_KEY: u64 = u64::MAX;

fn model_config(c: &Config, edge_dim: usize) -> MemoryModelConfig {
    MemoryModelConfig::new(edge_dim, c.memory.updater, c.gnn.embedding)
        .with_memory_dim(c.memory.dim)
        .with_time_dim(c.memory.time_dim)
        .with_frozen_time(c.memory.time_fixed)
        .with_embed_dim(c.gnn.dim)
        .with_mailbox(c.memory.mailbox)
        .with_layers(c.sampling.layers)
        .with_heads(c.gnn.heads)
        .with_dropout(c.gnn.dropout)
        .with_att_dropout(c.gnn.att_dropout)
        .with_neighbors(c.sampling.neighbors)
        .with_combine(c.memory.combine)
        .with_message(c.memory.message)
        .with_delivery(c.memory.delivery)
}

/// The negatives every evaluation of a run draws (DyGLib's: destinations of the whole stream),
/// shared by the learned models and EdgeBank.
pub fn eval_negatives(config: &Config, stream: &EventStream, split: &Split) -> NegativeSampler {
    NegativeSampler::new(
        config.train.eval_negatives,
        stream,
        |i| split.is_train_event(stream, i),
        config.train.seed.wrapping_add(1),
    )
}

impl Session {
    /// Builds everything for `config` over `stream` split by `split` on [`base_device`], with
    /// node memory in host buffers; the model is initialised from the config's seed.
    pub fn new(config: Config, stream: EventStream, split: Split) -> Result<Self> {
        Self::on_device(config, stream, split, base_device())
    }
}

impl<S: NodeMemory> Session<S> {
    /// [`Session::new`] on `device`, with node memory in an `S`.
    pub fn on_device(
        config: Config,
        mut stream: EventStream,
        split: Split,
        device: Device,
    ) -> Result<Self> {
        // The model measures every Δt in the training period's time resolution, so it learns the
        // same whatever unit the timestamps are stored in: a learned frequency moves by about the
        // learning rate per Adam step, which turns Δt = 3e7 (a year in seconds) into noise.
        let time_unit = stream.time_resolution(split.train.clone());
        stream.rescale_time(time_unit);
        let device = device.autodiff();
        device.seed(config.train.seed);
        let edge_dim = stream.edge_features().map_or(0, |f| f.dim());
        let model_config = model_config(&config, edge_dim);
        let model = model_config.init(&device);
        let shape = MemoryShape {
            nodes: stream.num_nodes(),
            dim: model_config.memory_dim,
            mail_dim: model_config.mail_dim(),
            slots: model_config.mailbox,
        };
        let first = stream.time().first().copied().unwrap_or(0.0);
        let store = S::empty(shape, first, &device);
        let sampler = NeighborSampler::new(NeighborConfig {
            k: config.sampling.neighbors,
            layers: config.sampling.layers,
            strategy: config.sampling.strategy,
            seed: config.train.seed,
        })?;
        let train_events = split.train_events(&stream);
        if train_events.is_empty() {
            bail!("the training split holds no events");
        }
        let is_train = |i: usize| split.is_train_event(&stream, i);
        let train_graph = TemporalGraph::from_events(&stream, Direction::Undirected, is_train);
        let full_graph = TemporalGraph::from_stream(&stream, Direction::Undirected);
        let seed = config.train.seed;
        let train_negatives = NegativeSampler::for_training(&stream, is_train, seed);
        let eval_negatives = eval_negatives(&config, &stream, &split);
        Ok(Session {
            optim: AdamConfig::new().init(),
            config,
            model_config,
            model,
            store,
            sampler,
            train_graph,
            full_graph,
            train_negatives,
            eval_negatives,
            train_events,
            device,
            time_unit,
            stream,
            split,
        })
    }

    /// Number of training batches per epoch.
    pub fn train_batches(&self) -> usize {
        self.train_events
            .len()
            .div_ceil(self.config.train.batch_size)
    }

    /// Clears node memory and mailboxes (each epoch starts from empty memory).
    pub fn reset_memory(&mut self) {
        self.store.reset();
    }

    /// Trains on batch `b` of epoch `epoch`; returns its loss.
    pub fn train_batch(&mut self, epoch: usize, b: usize) -> Result<f64> {
        let mut loss = f64::NAN;
        self.train_sequential(epoch, b..b + 1, |l| loss = l)?;
        Ok(loss)
    }

    /// Trains on batches `range` of epoch `epoch`, the five stages of each batch back to back
    /// (the reference the pipeline is measured against); `on_loss` gets each batch's loss.
    /// Returns the stages' timeline.
    pub fn train_sequential(
        &mut self,
        epoch: usize,
        range: std::ops::Range<usize>,
        mut on_loss: impl FnMut(f64),
    ) -> Result<Timeline> {
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_secs_f64();
        let mut tl = Timeline::default();
        for (i, b) in range.enumerate() {
            let t = now();
            let sampled = self.sample_train_batch(epoch, b)?;
            tl.record(i, Stage::Sample, t, now());
            let t = now();
            let prepared = batch::fetch_features(&self.stream, sampled);
            tl.record(i, Stage::Feature, t, now());
            let t = now();
            let fetched = batch::fetch_memory(&self.store, prepared, None);
            tl.record(i, Stage::Memory, t, now());
            let (t, mut update) = (now(), None);
            on_loss(
                self.trainer()
                    .step(epoch, b, fetched, |u| update = Some(u))?,
            );
            tl.record(i, Stage::Compute, t, now());
            let t = now();
            if let Some(h) = update {
                let write = h.into_write(&self.stream, self.model_config.delivery);
                batch::apply_write(&mut self.store, write);
            }
            tl.record(i, Stage::Update, t, now());
        }
        Ok(tl)
    }

    /// Stage S alone for training batch `b` of `epoch`: what that batch's compute would see
    /// (for cost models and benchmarks; training samples through [`Session::train_sequential`]).
    pub fn sample_train_batch(&mut self, epoch: usize, b: usize) -> Result<mspipe_step::Sampled> {
        let events = batch_events(&self.train_events, self.config.train.batch_size, b);
        let cx = SampleContext {
            stream: &self.stream,
            graph: &self.train_graph,
            negatives: &self.train_negatives,
            negative_key: epoch as u64,
            per_positive: 1,
        };
        Ok(batch::sample(cx, &mut self.sampler, events)?)
    }

    /// The step's settings from the run's configuration.
    fn step_config(&self) -> StepConfig {
        let train = &self.config.train;
        StepConfig::new(self.model_config.delivery)
            .with_lr(train.lr)
            .with_time_scale(train.time_scale)
            .with_seed(train.seed)
    }

    /// The compute stage's view of the session.
    fn trainer(&mut self) -> Trainer<'_, S> {
        let step = self.step_config();
        Trainer::new(
            &mut self.model,
            &mut self.optim,
            step,
            &self.stream,
            &self.device,
        )
    }

    /// The events trained on (training period minus events of hidden nodes), in time order.
    pub fn train_events(&self) -> &[usize] {
        &self.train_events
    }

    /// Scores `events` in batches without training, inserting them into memory as they are
    /// scored (TGL's evaluation): `per_positive` fixed negatives each.
    pub fn evaluate(&mut self, events: &[usize], per_positive: usize) -> Result<Scores> {
        let mut scores = Scores::default();
        self.replay(events, per_positive, |events, f, session| {
            scores.pos.extend(to_vec(f.pos));
            scores.neg.extend(to_vec(f.neg));
            let s = &session.stream;
            let new = events
                .iter()
                .map(|&i| session.split.involves_new_node(s, i));
            scores.new_node.extend(new);
            scores.batch_len.push(events.len());
        })?;
        Ok(scores)
    }

    /// `[events, out]` embeddings of each event's source at its time, inserting the events into
    /// memory as they go (dynamic node classification's inputs).
    pub fn source_embeddings(&mut self, events: &[usize]) -> Result<Vec<f32>> {
        let mut rows = Vec::new();
        self.replay(events, 1, |_, f, _| rows.extend(to_vec(f.sources)))?;
        Ok(rows)
    }

    /// Runs `events` through the inference model batch by batch, in order, writing memory back;
    /// `each` sees every batch's events and forward output.
    fn replay(
        &mut self,
        events: &[usize],
        per_positive: usize,
        mut each: impl FnMut(&[usize], Inference, &Self),
    ) -> Result<()> {
        // Inference copy of the parameters, made once per pass rather than once per batch.
        let model = self.model.valid();
        let device = self.device.clone().inner();
        for events in events.chunks(self.config.train.batch_size) {
            let cx = SampleContext {
                stream: &self.stream,
                graph: &self.full_graph,
                negatives: &self.eval_negatives,
                negative_key: EVAL_KEY,
                per_positive,
            };
            let sampled = batch::sample(cx, &mut self.sampler, events.to_vec())?;
            let prepared = batch::fetch_features(&self.stream, sampled);
            let fetched = batch::fetch_memory(&self.store, prepared, None);
            let f = batch::forward(&model, fetched, self.config.train.time_scale, &device);
            let write = batch::prepare_write(&self.stream, self.model_config.delivery, f.update);
            batch::apply_write(&mut self.store, write);
            let out = Inference {
                pos: f.pos,
                neg: f.neg,
                sources: f.sources,
            };
            each(events, out, self);
        }
        Ok(())
    }

    /// Width of the embeddings the decoders see.
    pub fn embedding_dim(&self) -> usize {
        self.model_config.output_dim()
    }

    /// The node memory.
    pub fn memory(&self) -> &S {
        &self.store
    }

    /// The device training runs on (autodiff).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Trains on batches `range` of epoch `epoch` through the MSPipe executor; `on_loss` gets
    /// each batch's loss in order. Returns the timeline of the stages.
    pub fn train_pipelined(
        &mut self,
        epoch: usize,
        range: std::ops::Range<usize>,
        executor: &Executor,
        mut on_loss: impl FnMut(f64),
    ) -> Result<Timeline> {
        let step = self.step_config();
        let pipeline = &self.config.pipeline;
        let stages = TrainStages {
            cx: SampleContext {
                stream: &self.stream,
                graph: &self.train_graph,
                negatives: &self.train_negatives,
                negative_key: epoch as u64,
                per_positive: 1,
            },
            sampler: Mutex::new(&mut self.sampler),
            events: &self.train_events,
            batch_size: self.config.train.batch_size,
            first: range.start,
            delivery: self.model_config.delivery,
            mitigation: pipeline.mitigation.then_some(Mitigation {
                lambda: pipeline.lambda,
                top: pipeline.top,
            }),
            quantile: pipeline.quantile,
            memory: std::marker::PhantomData,
        };
        let (stream, device) = (&self.stream, &self.device);
        let mut trainer = Trainer::new(&mut self.model, &mut self.optim, step, stream, device);
        trainer.ahead = S::WRITES_ON_COMPUTE.then(|| self.store.clone());
        let rows = self.store.shape().nodes;
        let first = range.start;
        let timeline =
            executor.run(&stages, &mut self.store, rows, range.len(), |i, f, emit| {
                let loss = trainer.step(epoch, first + i, f, emit)?;
                on_loss(loss);
                Ok(())
            })?;
        Ok(timeline)
    }

    /// Saves the model and the optimizer state under `dir` (files `model.bpk`, `optim.bpk`).
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        self.save_model(dir)?;
        self.optim.save(dir.join("optim.bpk"))?;
        Ok(())
    }

    /// Saves the model alone under `dir` (file `model.bpk`).
    pub fn save_model(&self, dir: &std::path::Path) -> Result<()> {
        self.model.clone().save_file(dir.join("model.bpk"))?;
        Ok(())
    }

    /// Loads what [`Session::save_model`] wrote.
    pub fn load_model(&mut self, dir: &std::path::Path) -> Result<()> {
        self.model = self.model.clone().try_load_file(dir.join("model.bpk"))?;
        Ok(())
    }

    /// Saves node memory and mailboxes to `path` (mid-epoch checkpoints).
    pub fn save_memory(&self, path: &std::path::Path) -> Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        self.store.write_to(&mut w)?;
        std::io::Write::flush(&mut w)?;
        Ok(())
    }

    /// Restores what [`Session::save_memory`] wrote.
    pub fn load_memory(&mut self, path: &std::path::Path) -> Result<()> {
        let mut r = std::io::BufReader::new(std::fs::File::open(path)?);
        self.store
            .read_from(&mut r)
            .with_context(|| format!("reading {}", path.display()))
    }

    /// Loads what [`Session::save`] wrote.
    pub fn load(&mut self, dir: &std::path::Path) -> Result<()> {
        self.load_model(dir)?;
        let record = burn::optim::OptimizerRecord::load(dir.join("optim.bpk"))?;
        self.optim = AdamConfig::new().init().load_record(record);
        Ok(())
    }
}
