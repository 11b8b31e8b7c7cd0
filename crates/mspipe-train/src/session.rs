//! One training run's state and its batch step, with TGL's semantics: gather the batch's node
//! memories and mailboxes, update them (differentiably), embed the roots, score positive and
//! negative links, step the optimizer, then write back the endpoints' updated memories (detached)
//! and the batch's mails — latest event winning for a node that occurs several times.

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use mspipe_data::{EventStream, Split};
use mspipe_model::memory::{Combine, Gathered, MemoryStore};
use mspipe_model::tensors::{floats, indices, to_vec};
use mspipe_model::{
    Delivery, EmbedInput, EmbeddingKind, HopInput, MemoryInput, MemoryModel, MemoryModelConfig,
    MessageKind, UpdaterKind,
};
use mspipe_sampler::{
    Direction, NegativeSampler, NegativeStrategy, Negatives, NeighborConfig, NeighborSampler,
    SampledBatch, Strategy, TemporalGraph,
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
}

/// Reused per-batch buffers.
#[derive(Default)]
struct Scratch {
    batch: SampledBatch,
    gathered: Gathered,
    negatives: Negatives,
}

/// The model, its optimizer, the node memory, the graphs and the samplers of a run.
pub struct Session {
    pub config: Config,
    pub stream: EventStream,
    pub split: Split,
    model_config: MemoryModelConfig,
    pub model: MemoryModel,
    optim: ModuleOptimizer,
    store: MemoryStore,
    sampler: NeighborSampler,
    train_graph: TemporalGraph,
    full_graph: TemporalGraph,
    train_negatives: NegativeSampler,
    eval_negatives: NegativeSampler,
    train_events: Vec<usize>,
    device: Device,
    scratch: Scratch,
}

/// The device models run on: CUDA's first GPU when built with `--features cuda`, else burn's flex
/// CPU backend (the fastest CPU backend here).
pub fn base_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}

/// Name of the backend of [`base_device`], for run summaries.
pub const BACKEND: &str = if cfg!(feature = "cuda") {
    "cuda"
} else {
    "flex"
};

/// Key of the evaluation negatives: the same in every epoch and run with the same seed.
const EVAL_KEY: u64 = u64::MAX;

fn model_config(c: &Config, edge_dim: usize) -> MemoryModelConfig {
    MemoryModelConfig::new(
        edge_dim,
        match c.memory.updater.as_str() {
            "rnn" => UpdaterKind::Rnn,
            "transformer" => UpdaterKind::Transformer,
            _ => UpdaterKind::Gru,
        },
        match c.gnn.embedding.as_str() {
            "identity" => EmbeddingKind::Identity,
            "time-projection" => EmbeddingKind::TimeProjection,
            _ => EmbeddingKind::Attention,
        },
    )
    .with_memory_dim(c.memory.dim)
    .with_time_dim(c.memory.time_dim)
    .with_embed_dim(c.gnn.dim)
    .with_mailbox(c.memory.mailbox)
    .with_layers(c.sampling.layers)
    .with_heads(c.gnn.heads)
    .with_neighbors(c.sampling.neighbors)
    .with_combine(if c.memory.combine == "mean" {
        Combine::Mean
    } else {
        Combine::Last
    })
    .with_message(if c.memory.message == "mlp" {
        MessageKind::Mlp
    } else {
        MessageKind::Identity
    })
    .with_delivery(if c.memory.delivery == "neighbors" {
        Delivery::ToNeighbors
    } else {
        Delivery::ToSelf
    })
}

fn negative_strategy(name: &str) -> NegativeStrategy {
    match name {
        "historical" => NegativeStrategy::Historical,
        "inductive" => NegativeStrategy::Inductive,
        _ => NegativeStrategy::Random,
    }
}

impl Session {
    /// Builds everything for `config` over `stream` split by `split`; the model is initialised
    /// from the config's seed.
    pub fn new(config: Config, stream: EventStream, split: Split) -> Result<Self> {
        let device = base_device().autodiff();
        device.seed(config.train.seed);
        let edge_dim = stream.edge_features().map_or(0, |f| f.dim());
        let model_config = model_config(&config, edge_dim);
        let model = model_config.init(&device);
        let store = MemoryStore::new(
            stream.num_nodes(),
            model_config.memory_dim,
            model_config.mail_dim(),
            model_config.mailbox,
        );
        let sampler = NeighborSampler::new(NeighborConfig {
            k: config.sampling.neighbors,
            layers: config.sampling.layers,
            strategy: if config.sampling.strategy == "uniform" {
                Strategy::Uniform
            } else {
                Strategy::Recent
            },
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
        let train_negatives =
            NegativeSampler::new(NegativeStrategy::Random, &stream, is_train, seed);
        let eval_negatives = NegativeSampler::new(
            negative_strategy(&config.train.eval_negatives),
            &stream,
            is_train,
            seed.wrapping_add(1),
        );
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
            scratch: Scratch::default(),
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
        let size = self.config.train.batch_size;
        let end = ((b + 1) * size).min(self.train_events.len());
        let events: Vec<usize> = self.train_events[b * size..end].to_vec();
        self.train_negatives.sample(
            &self.stream,
            &events,
            1,
            epoch as u64,
            &mut self.scratch.negatives,
        );
        let negatives = std::mem::take(&mut self.scratch.negatives);
        let model = self.model.clone();
        let (loss, _, _) = self.step(&model, &events, &negatives, true);
        self.scratch.negatives = negatives;
        let value = to_vec(loss.clone())[0] as f64;
        if !value.is_finite() {
            bail!("loss became {value} at epoch {epoch}, batch {b}: stopping (lower train.lr?)");
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self
            .optim
            .step(self.config.train.lr, self.model.clone(), grads);
        Ok(value)
    }

    /// The events trained on (training period minus events of hidden nodes), in time order.
    pub fn train_events(&self) -> &[usize] {
        &self.train_events
    }

    /// Scores `events` in batches without training, inserting them into memory as they are
    /// scored (TGL's evaluation): `per_positive` fixed negatives each.
    pub fn evaluate(&mut self, events: &[usize], per_positive: usize) -> Scores {
        let mut scores = Scores::default();
        let size = self.config.train.batch_size;
        // Inference copy of the parameters, made once per pass rather than once per batch.
        let model = self.model.valid();
        for events in events.chunks(size) {
            self.eval_negatives.sample(
                &self.stream,
                events,
                per_positive,
                EVAL_KEY,
                &mut self.scratch.negatives,
            );
            let negatives = std::mem::take(&mut self.scratch.negatives);
            let (_, pos, neg) = self.step(&model, events, &negatives, false);
            self.scratch.negatives = negatives;
            scores.pos.extend(to_vec(pos));
            scores.neg.extend(to_vec(neg));
            scores.new_node.extend(
                events
                    .iter()
                    .map(|&i| self.split.involves_new_node(&self.stream, i)),
            );
        }
        scores
    }

    /// One batch with `model` (the autodiff model when `train`, its inference copy otherwise):
    /// returns (loss, positive logits, negative logits) and writes memory back.
    fn step(
        &mut self,
        model: &MemoryModel,
        events: &[usize],
        neg: &Negatives,
        train: bool,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let s = &self.stream;
        let b = events.len();
        let k_neg = neg.per_positive;
        let times: Vec<f64> = events.iter().map(|&i| s.time()[i]).collect();
        // Roots: positive sources, positive destinations, negative destinations, then the
        // negative sources that differ from their positive's source (historical/inductive).
        let mut roots: Vec<u32> = events.iter().map(|&i| s.src()[i]).collect();
        roots.extend(events.iter().map(|&i| s.dst()[i]));
        roots.extend_from_slice(&neg.dst);
        let mut root_times: Vec<f64> = [&times[..], &times[..]].concat();
        root_times.extend((0..b * k_neg).map(|j| times[j / k_neg]));
        let mut neg_src_row: Vec<u32> = Vec::with_capacity(b * k_neg);
        for j in 0..b * k_neg {
            let p = j / k_neg;
            if neg.src[j] == roots[p] {
                neg_src_row.push(p as u32);
            } else {
                neg_src_row.push(roots.len() as u32);
                roots.push(neg.src[j]);
                root_times.push(times[p]);
            }
        }
        let graph = if train {
            &self.train_graph
        } else {
            &self.full_graph
        };
        let key = events.first().copied().unwrap_or(0) as u64;
        let sb = &mut self.scratch.batch;
        self.sampler
            .sample(graph, &roots, &root_times, key, sb)
            .expect("roots are graph nodes");
        self.store
            .gather(&sb.unique_nodes, &mut self.scratch.gathered);
        let g = &self.scratch.gathered;
        let (d, m) = (self.store.dim(), self.store.slots());
        let mem_time: Vec<f64> = (0..sb.unique_nodes.len())
            .map(|u| {
                let newest = u * m + m - 1;
                if g.mail_mask[newest] {
                    g.last_update[u] + g.mail_dt[newest] as f64
                } else {
                    g.last_update[u]
                }
            })
            .collect();
        let device = if train {
            self.device.clone()
        } else {
            base_device()
        };
        let memory = model.update_memory(MemoryInput::from_host(g, d, m, &device));
        let scale = self.config.train.time_scale;
        let root_dt: Vec<f32> = sb
            .root_index
            .iter()
            .zip(&root_times)
            .map(|(&u, &t)| ((t - mem_time[u as usize]) * scale) as f32)
            .collect();
        let k = sb.k;
        let features = s.edge_features();
        let mut edge_rows = Vec::new();
        let hops = sb
            .hops
            .iter()
            .map(|h| {
                let edge = features.map(|f| {
                    edge_rows.clear();
                    for (slot, &e) in h.eid.iter().enumerate() {
                        if h.mask[slot] {
                            edge_rows.extend_from_slice(f.row(e as usize));
                        } else {
                            edge_rows.extend(std::iter::repeat_n(0.0, f.dim()));
                        }
                    }
                    (&edge_rows[..], f.dim())
                });
                HopInput::from_host(&h.index, &h.dt, &h.mask, edge, k, &device)
            })
            .collect();
        let input = EmbedInput {
            root_index: indices(&sb.root_index, &device),
            root_dt: floats(&root_dt, [roots.len()], &device),
            hops,
        };
        let h = model.embed(memory.clone(), &input);
        let pos_src: Vec<u32> = (0..b as u32).collect();
        let pos_dst: Vec<u32> = (b as u32..2 * b as u32).collect();
        let neg_dst: Vec<u32> = (2 * b as u32..(2 * b + b * k_neg) as u32).collect();
        let pos = model.score(
            h.clone(),
            indices(&pos_src, &device),
            indices(&pos_dst, &device),
        );
        let negl = model.score(
            h,
            indices(&neg_src_row, &device),
            indices(&neg_dst, &device),
        );
        let loss = MemoryModel::loss(pos.clone(), negl.clone());
        self.write_back(events, &roots, &times, to_vec(memory.detach()), &mem_time);
        (loss, pos.detach(), negl.detach())
    }

    /// Endpoints of the batch take their updated memories; the batch's mails are delivered to
    /// the endpoints (and their sampled neighbours for APAN).
    fn write_back(
        &mut self,
        events: &[usize],
        roots: &[u32],
        times: &[f64],
        rows: Vec<f32>,
        mem_time: &[f64],
    ) {
        let sb = &self.scratch.batch;
        let s = &self.stream;
        let b = events.len();
        let d = self.store.dim();
        let row = |r: usize| {
            let u = sb.root_index[r] as usize;
            &rows[u * d..(u + 1) * d]
        };
        let mut nodes = Vec::with_capacity(2 * b);
        let mut node_rows = Vec::with_capacity(2 * b * d);
        let mut node_times = Vec::with_capacity(2 * b);
        for (r, &node) in roots[..2 * b].iter().enumerate() {
            nodes.push(node);
            node_rows.extend_from_slice(row(r));
            node_times.push(mem_time[sb.root_index[r] as usize]);
        }
        self.store.write_memory(&nodes, &node_rows, &node_times);
        let edge = s.edge_features();
        let neighbors = self.model_config.delivery == Delivery::ToNeighbors;
        let k = sb.k;
        let (mut targets, mut mails, mut mail_times) = (vec![], vec![], vec![]);
        for (i, (&e, &t)) in events.iter().zip(times).enumerate() {
            for (me, other) in [(i, b + i), (b + i, i)] {
                let mut mail = [row(me), row(other)].concat();
                if let Some(f) = edge {
                    mail.extend_from_slice(f.row(e));
                }
                let mut deliver = |target: u32| {
                    targets.push(target);
                    mails.extend_from_slice(&mail);
                    mail_times.push(t);
                };
                deliver(roots[me]);
                if neighbors {
                    let hop = &sb.hops[0];
                    for slot in me * k..(me + 1) * k {
                        if hop.mask[slot] {
                            deliver(hop.nbr[slot]);
                        }
                    }
                }
            }
        }
        self.store.push_mails(&targets, &mails, &mail_times);
    }

    /// Saves the model and the optimizer state under `dir` (files `model.bpk`, `optim.bpk`).
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        self.model.clone().save_file(dir.join("model.bpk"))?;
        self.optim.save(dir.join("optim.bpk"))?;
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
        self.model = self.model.clone().try_load_file(dir.join("model.bpk"))?;
        let record = burn::optim::OptimizerRecord::load(dir.join("optim.bpk"))?;
        self.optim = AdamConfig::new().init().load_record(record);
        Ok(())
    }
}
