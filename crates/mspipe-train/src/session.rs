//! One training run's state — model, optimizer, node memory, graphs, samplers — and its batch
//! loops: sequential ([`Session::train_batch`], evaluation) and pipelined
//! ([`Session::train_pipelined`]), both running the stages of [`mspipe_step::batch`] over the
//! session's [`NodeMemory`].

use std::sync::{Mutex, PoisonError};

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use mspipe_data::{EventStream, Split};
use mspipe_model::tensors::to_vec;
use mspipe_model::{AttentionHeadsConfig, MemoryModel, MemoryModelConfig};
use mspipe_sampler::{Direction, NegativeSampler, NeighborConfig, NeighborSampler, TemporalGraph};
use mspipe_scheduler::{Emit, Executor, Mitigation, Stage, Timeline};
use mspipe_step::batch::{self, RootRows, SampleContext};
use mspipe_step::{
    AdamConfig, GradientMean, Handover, Inference, MemoryShape, MemoryStore, NodeMemory, Replica,
    Scored, StepConfig, TrainStages, Trainer, UpdatedRows, batch_events,
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
    /// Workers 1.. of a data-parallel run (worker 0 is `model`, `optim`, `device`).
    replicas: Vec<WorkerReplica>,
    /// One thread pool per compute worker (made at the first several-worker stretch).
    pools: Vec<rayon::ThreadPool>,
    /// What one unit of the model's time is, in the stream's own unit (see
    /// [`EventStream::time_resolution`]); the session's stream is counted in it.
    pub time_unit: f64,
}

/// The shortest span (in time units) the time encoding's frequencies cover: one decade, so a
/// training period of a few snapshots still gets frequencies below its own.
const MIN_TIME_SPAN: f64 = 10.0;

/// A [`SampleContext`] over session `$s`'s stream, sampling from its `$graph` and drawing
/// negatives from its `$negatives`. A macro rather than a method: it borrows single fields, so
/// `$s.sampler` can be borrowed mutably beside it.
macro_rules! sample_context {
    ($s:ident, $graph:ident, $negatives:ident, $key:expr, $per_positive:expr) => {
        SampleContext {
            stream: &$s.stream,
            graph: &$s.$graph,
            negatives: &$s.$negatives,
            negative_key: $key,
            per_positive: $per_positive,
            root_rows: $s.root_rows(),
            embed: $s.config.gnn.embed,
        }
    };
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

/// Draws every parameter's initial value now. burn initialises parameters lazily, at first use —
/// with one worker inside the first step, after that step seeded the generator — while forking
/// replicas touches them all at once; several workers draw them here, right after the session's
/// seed, so that the replicas and the sequential reference start from the same values.
fn materialize(model: &MemoryModel) {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            drop(param.val());
        }
    }
    model.visit(&mut Touch);
}

/// A data-parallel worker's own model, optimizer and device.
struct WorkerReplica {
    model: MemoryModel,
    optim: ModuleOptimizer,
    device: Device,
}

/// The device of compute worker `worker`: its own GPU with CUDA; the one device of the other
/// backends (flex's one CPU device — each worker runs on its own thread pool instead; wgpu's
/// default adapter).
fn worker_device(worker: usize) -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(worker).autodiff()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = worker;
        base_device().autodiff()
    }
}

/// `replicas`, made from `model` and `optim` for workers `1..workers` unless already there.
fn replicas<'a>(
    replicas: &'a mut Vec<WorkerReplica>,
    model: &MemoryModel,
    optim: &ModuleOptimizer,
    workers: usize,
) -> &'a mut [WorkerReplica] {
    if replicas.len() != workers - 1 {
        *replicas = (1..workers)
            .map(|w| {
                let device = worker_device(w);
                WorkerReplica {
                    model: model.clone().fork(&device),
                    optim: AdamConfig::new().init().load_record(optim.to_record()),
                    device,
                }
            })
            .collect();
    }
    replicas
}

/// `pools`: one per compute worker, `train.threads` (or every core) shared out evenly, at least
/// one thread each. A worker runs its steps inside its pool (`ThreadPool::install`), so flex's
/// parallel ops and the fused host loops — rayon's `par_*` and gemm's rayon parallelism use the
/// current pool — stay on that worker's threads.
fn worker_pools<'a>(
    pools: &'a mut Vec<rayon::ThreadPool>,
    train: &crate::config::TrainConfig,
) -> Result<&'a [rayon::ThreadPool]> {
    if pools.len() != train.workers {
        let threads = match train.threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        *pools = (0..train.workers)
            .map(|w| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads((threads / train.workers).max(1))
                    .thread_name(move |t| format!("worker{w}-{t}"))
                    .build()
                    .context("making a compute worker's thread pool")
            })
            .collect::<Result<_>>()?;
    }
    Ok(pools)
}

/// Hands values indexed `0, 1, 2, …` to `f` in index order, whatever order they arrive in.
struct InOrder<F> {
    f: F,
    next: usize,
    early: std::collections::BTreeMap<usize, f64>,
}

impl<F: FnMut(f64)> InOrder<F> {
    fn new(f: F) -> Self {
        InOrder {
            f,
            next: 0,
            early: Default::default(),
        }
    }

    fn push(&mut self, i: usize, value: f64) {
        self.early.insert(i, value);
        while let Some(v) = self.early.remove(&self.next) {
            (self.f)(v);
            self.next += 1;
        }
    }
}

/// Key of the evaluation negatives: the same in every epoch and run with the same seed.
pub const EVAL_KEY: u64 = u64::MAX;

pub(crate) fn model_config(c: &Config, edge_dim: usize) -> MemoryModelConfig {
    MemoryModelConfig::new(edge_dim, c.memory.updater, c.gnn.embedding)
        .with_memory_dim(c.memory.dim)
        .with_time_dim(c.memory.time_dim)
        .with_frozen_time(c.memory.time_fixed)
        .with_embed_dim(c.gnn.dim)
        .with_mailbox(c.memory.mailbox)
        .with_layers(c.sampling.layers)
        .with_attention(
            AttentionHeadsConfig::new()
                .with_heads(c.gnn.heads)
                .with_dropout(c.gnn.dropout)
                .with_att_dropout(c.gnn.att_dropout),
        )
        .with_neighbors(c.sampling.neighbors)
        .with_combine(c.memory.combine)
        .with_message(c.memory.message)
        .with_delivery(c.memory.delivery)
        .with_mail_ages(c.memory.mail_ages)
}

/// The neighbour sampler of `config`.
pub(crate) fn neighbor_sampler(config: &Config) -> Result<NeighborSampler> {
    Ok(NeighborSampler::new(NeighborConfig {
        k: config.sampling.neighbors,
        layers: config.sampling.layers,
        strategy: config.sampling.strategy,
        seed: config.train.seed,
    })?)
}

/// The negatives every evaluation of a run draws (DyGLib's: destinations of the whole stream),
/// shared by the learned models and EdgeBank.
pub fn eval_negatives(config: &Config, stream: &EventStream, split: &Split) -> NegativeSampler {
    NegativeSampler::new(
        config.train.eval_negatives,
        stream,
        |i| split.is_train_event(stream, i),
        eval_negative_seed(config),
    )
}

/// The seed of evaluation's negatives (training's draws from the run's seed itself).
pub(crate) fn eval_negative_seed(config: &Config) -> u64 {
    config.train.seed.wrapping_add(1)
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
        // learning rate per Adam step, which turns Δt = 3e7 (a year in seconds) into noise. Its
        // frequencies span the training period, no more (see `TimeEncodingConfig::span`).
        let time_unit = stream.time_resolution(split.train.clone());
        stream.rescale_time(time_unit);
        let time_span = stream.time_span(split.train.clone()).max(MIN_TIME_SPAN);
        let device = device.autodiff();
        device.seed(config.train.seed);
        let edge_dim = stream.edge_features().map_or(0, |f| f.dim());
        let model_config = model_config(&config, edge_dim).with_time_span(time_span);
        let model = model_config.init(&device);
        if config.train.workers > 1 {
            materialize(&model);
        }
        let shape = MemoryShape {
            nodes: stream.num_nodes(),
            dim: model_config.memory_dim,
            mail_dim: model_config.mail_dim(),
            slots: model_config.mailbox,
        };
        let first = stream.time().first().copied().unwrap_or(0.0);
        let store = S::empty(shape, first, &device);
        let sampler = neighbor_sampler(&config)?;
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
            replicas: Vec::new(),
            pools: Vec::new(),
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
    /// With `train.workers` = N > 1, each group of N batches (from `range.start`) makes one
    /// optimizer step with the gradient of their mean loss: what N workers in `off` mode compute.
    /// Returns the stages' timeline (compute spans a group's forward passes and its one step).
    pub fn train_sequential(
        &mut self,
        epoch: usize,
        range: std::ops::Range<usize>,
        mut on_loss: impl FnMut(f64),
    ) -> Result<Timeline> {
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_secs_f64();
        let mut tl = Timeline::default();
        let workers = self.config.train.workers;
        for group in range.clone().step_by(workers) {
            let batches = group..(group + workers).min(range.end);
            let mut prepared = Vec::new();
            for b in batches.clone() {
                let (i, t) = (b - range.start, now());
                let sampled = self.sample_train_batch(epoch, b)?;
                tl.record(i, Stage::Sample, t, now());
                let t = now();
                prepared.push(batch::fetch_features(&self.stream, sampled));
                tl.record(i, Stage::Feature, t, now());
            }
            let step = self.step_config();
            let updated = UpdatedRows::of(&self.model);
            let (stream, device) = (&self.stream, &self.device);
            let mut trainer = Trainer::new(&mut self.model, &mut self.optim, step, stream, device);
            let delivery = self.model_config.delivery;
            // A batch's write is applied just before the next fetch, or after the group's step:
            // the update's span stays apart from compute's, as in the pipeline.
            let apply = |store: &mut S, tl: &mut Timeline, (b, handover): (usize, _)| {
                let t = now();
                batch::apply_write(store, Handover::into_write(handover, stream, delivery));
                tl.record(b - range.start, Stage::Update, t, now());
            };
            let mut io = (&mut self.store, &mut tl, prepared.into_iter(), None);
            let start = now();
            let losses = trainer.step_averaged(
                epoch,
                batches.clone(),
                &mut io,
                |(store, tl, prepared, pending), b| {
                    if let Some(p) = pending.take() {
                        apply(store, tl, p);
                    }
                    let (t, p) = (now(), prepared.next().expect("one per batch"));
                    let fetched = batch::fetch_memory(&**store, p, updated, None);
                    tl.record(b - range.start, Stage::Memory, t, now());
                    fetched
                },
                |(_, _, _, pending), b, handover| *pending = Some((b, handover)),
            )?;
            let compute_end = now();
            let (store, tl, _, pending) = io;
            if let Some(p) = pending {
                apply(store, tl, p);
            }
            for (b, loss) in batches.zip(losses) {
                tl.record(b - range.start, Stage::Compute, start, compute_end);
                on_loss(loss);
            }
        }
        Ok(tl)
    }

    /// Stage S alone for training batch `b` of `epoch`: what that batch's compute would see
    /// (for cost models and benchmarks; training samples through [`Session::train_sequential`]).
    pub fn sample_train_batch(&mut self, epoch: usize, b: usize) -> Result<mspipe_step::Sampled> {
        let events = batch_events(&self.train_events, self.config.train.batch_size, b);
        let cx = sample_context!(self, train_graph, train_negatives, epoch as u64, 1);
        Ok(batch::sample(cx, &mut self.sampler, events)?)
    }

    /// The step's settings from the run's configuration.
    fn step_config(&self) -> StepConfig {
        let train = &self.config.train;
        StepConfig::new(self.model_config.delivery)
            .with_lr(train.lr * train.lr_scaling.factor(train.workers))
            .with_time_origin(self.time_origin())
            .with_seed(train.seed)
    }

    /// Whether the model needs a memory row per root.
    fn root_rows(&self) -> RootRows {
        RootRows::for_clock(self.model_config.mail_clock())
    }

    /// The stream's first event time (in the model's time unit).
    fn time_origin(&self) -> f64 {
        self.stream.time().first().copied().unwrap_or(0.0)
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
    /// `each` sees every batch's events and scores.
    fn replay(
        &mut self,
        events: &[usize],
        per_positive: usize,
        mut each: impl FnMut(&[usize], Scored, &Self),
    ) -> Result<()> {
        // Inference copy of the parameters, made once per pass rather than once per batch.
        let model = self.model.valid();
        let device = self.device.clone().inner();
        let inference = Inference {
            model: &model,
            delivery: self.model_config.delivery,
            time_origin: self.time_origin(),
            device: &device,
        };
        for events in events.chunks(self.config.train.batch_size) {
            let cx = sample_context!(self, full_graph, eval_negatives, EVAL_KEY, per_positive);
            let scored = inference.run(cx, &mut self.sampler, &mut self.store, events.to_vec())?;
            each(events, scored, self);
        }
        Ok(())
    }

    /// The destinations evaluation's random negatives are drawn from.
    pub(crate) fn eval_candidates(&self) -> &[u32] {
        self.eval_negatives.candidates()
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

    /// Trains on batches `range` of epoch `epoch` through the MSPipe executor, on
    /// `train.workers` data-parallel workers; `on_loss` gets each batch's loss in order. Returns
    /// the timeline of the stages.
    pub fn train_pipelined(
        &mut self,
        epoch: usize,
        range: std::ops::Range<usize>,
        executor: &Executor,
        on_loss: impl FnMut(f64) + Send,
    ) -> Result<Timeline> {
        let workers = self.config.train.workers;
        if workers > 1 && S::WRITES_ON_COMPUTE {
            bail!(
                "several workers share a host node memory: train.workers > 1 needs the host store"
            );
        }
        let exchange = GradientMean::new(workers);
        let step = self.step_config();
        let pipeline = &self.config.pipeline;
        let stages = TrainStages {
            cx: sample_context!(self, train_graph, train_negatives, epoch as u64, 1),
            sampler: Mutex::new(&mut self.sampler),
            events: &self.train_events,
            batch_size: self.config.train.batch_size,
            first: range.start,
            delivery: self.model_config.delivery,
            updated: UpdatedRows::of(&self.model),
            mitigation: pipeline.mitigation.then_some(Mitigation {
                lambda: pipeline.lambda,
                top: pipeline.top,
            }),
            quantile: pipeline.quantile,
            exchange: (workers > 1).then_some(&exchange),
            memory: std::marker::PhantomData,
        };
        let (stream, device) = (&self.stream, &self.device);
        let rows = self.store.shape().nodes;
        let first = range.start;
        if workers == 1 {
            let mut trainer = Trainer::new(&mut self.model, &mut self.optim, step, stream, device);
            trainer.ahead = S::WRITES_ON_COMPUTE.then(|| self.store.clone());
            let mut on_loss = on_loss;
            let compute = |i, f, emit: &mut Emit<'_, _>| {
                on_loss(trainer.step(epoch, first + i, f, emit)?);
                Ok(())
            };
            return Ok(executor.run(&stages, &mut self.store, rows, range.len(), compute)?);
        }
        let replicas = replicas(&mut self.replicas, &self.model, &self.optim, workers);
        let pools = worker_pools(&mut self.pools, &self.config.train)?;
        let losses = Mutex::new(InOrder::new(on_loss));
        let models = std::iter::once((&mut self.model, &mut self.optim, device)).chain(
            replicas
                .iter_mut()
                .map(|r| (&mut r.model, &mut r.optim, &r.device)),
        );
        let computes: Vec<_> = models
            .zip(pools.iter())
            .enumerate()
            .map(|(worker, ((model, optim, device), pool))| {
                let mut trainer = Trainer::new(model, optim, step.clone(), stream, device);
                trainer.replica = Some(Replica {
                    mean: &exchange,
                    worker,
                    workers,
                    batches: range.clone(),
                });
                let losses = &losses;
                move |i, f, emit: &mut Emit<'_, _>| {
                    let loss = pool.install(|| trainer.step(epoch, first + i, f, emit))?;
                    losses
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(i, loss);
                    Ok(())
                }
            })
            .collect();
        let timeline = executor.run_workers(&stages, &mut self.store, rows, range.len(), computes);
        if timeline.is_err() || !range.len().is_multiple_of(workers) {
            // A failed stretch, or a last group whose step left out the workers without a batch
            // in it, leaves replicas unlike worker 0: they are made again from it (model and
            // optimizer state) at the next stretch.
            self.replicas.clear();
        }
        Ok(timeline?)
    }

    /// The models of the workers beside the first (empty with one worker).
    pub fn replicas(&self) -> impl Iterator<Item = &MemoryModel> {
        self.replicas.iter().map(|r| &r.model)
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
        // Made again from the loaded model and optimizer at the next training stretch.
        self.replicas.clear();
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
        self.replicas.clear();
        Ok(())
    }
}
