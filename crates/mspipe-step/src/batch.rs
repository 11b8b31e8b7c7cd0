//! One batch as the five stages of MSPipe — sample (S), feature fetch (F), memory fetch (M),
//! compute (C), memory update (U) — each a function of the previous stage's output, so a
//! sequential loop and the pipelined executor run the very same code.
//!
//! TGL's semantics: the batch's node memories and mailboxes are gathered and updated
//! (differentiably), the roots embedded, positive and negative links scored; then the endpoints
//! take their updated memories (detached) and the batch's mails are delivered — latest event
//! winning for a node that occurs several times.

use burn::prelude::*;
use burn::tensor::TensorData;
use mspipe_data::EventStream;
use mspipe_data::Features;
use mspipe_model::tensors::{index_data, indices};
use mspipe_model::{Delivery, EmbedInput, HopInput, HostHop, MailAges, MailClock, MemoryModel};
use mspipe_sampler::{
    Hop, NegativeSampler, Negatives, NeighborSampler, SampledBatch, SamplerError, TemporalGraph,
};

use crate::shared::SharedRoots;
use crate::{Mailing, NodeMemory, StaleFix, UpdatedRows};

/// What sampling needs and does not change.
#[derive(Debug, Clone, Copy)]
pub struct SampleContext<'a> {
    /// The events.
    pub stream: &'a EventStream,
    /// The graph neighbours are sampled from (only events before each root's time are seen).
    pub graph: &'a TemporalGraph,
    /// Where the negative destinations come from.
    pub negatives: &'a NegativeSampler,
    /// Key of the negative draws (the epoch, or a fixed evaluation key).
    pub negative_key: u64,
    /// Negatives per positive event.
    pub per_positive: usize,
    /// Whether the roots of one node share a memory row.
    pub root_rows: RootRows,
    /// At which time roots are embedded.
    pub embed: Embed,
}

/// At which time a batch embeds its nodes (`gnn.embed` in a config).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, burn::serde::Serialize, burn::serde::Deserialize,
)]
#[serde(crate = "burn::serde", rename_all = "snake_case")]
pub enum Embed {
    /// Every root at its own event's time (TGN, TGL): an event sees the batch's earlier events
    /// among its neighbours.
    #[default]
    PerEvent,
    /// Every root at the batch's first event time, so each node is embedded once per batch (its
    /// roots share one embedding), as PyG's TGN does: cheaper on small graphs, and a different
    /// model — a batch's events see none of the batch's events among their neighbours.
    PerNode,
}

/// Whether the roots of one node share a memory row (see [`SampledBatch::separate_roots`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootRows {
    /// One row per node of the batch: its memory is updated once.
    Shared,
    /// One row per root: the node's memory is updated at each root's own time.
    PerRoot,
}

impl RootRows {
    /// What a model with mail clock `clock` needs: a row per root when the updater measures mail
    /// ages at each root's time (the updated memory then depends on it), else shared rows.
    pub fn for_clock(clock: MailClock) -> Self {
        match clock {
            MailClock::Age(MailAges::Root) => RootRows::PerRoot,
            MailClock::Age(MailAges::Batch) | MailClock::SinceUpdate => RootRows::Shared,
        }
    }
}

/// S: the batch's events, roots and sampled neighbourhoods.
#[derive(Debug, Clone)]
pub struct Sampled {
    /// The batch's events (rows of the stream), in time order.
    pub events: Vec<usize>,
    /// Their times.
    pub times: Vec<f64>,
    /// Embedding row of each negative's source (a positive's source row when they coincide).
    pub neg_src_row: Vec<u32>,
    /// Negatives per positive.
    pub per_positive: usize,
    /// Roots (positive sources, positive destinations, negative destinations, extra negative
    /// sources) and their sampled neighbours.
    pub batch: SampledBatch,
}

/// F: [`Sampled`] plus the embedding's inputs that its sample fixes.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The sampled batch.
    pub sampled: Sampled,
    /// The embedding's inputs as host data.
    pub embed: EmbedHost,
}

/// What a batch's sample fixes of its [`EmbedInput`] — every hop's slots with their edge features
/// and distinct Δt, and the roots embedded — as host data: the feature stage builds it, compute
/// only moves it to the device. All but the roots' drift since their memory's time
/// ([`EmbedInput::root_dt`]), which depends on the memory read.
#[derive(Debug, Clone)]
pub struct EmbedHost {
    hops: Vec<HostHop>,
    /// The roots' memory rows (of the roots embedded).
    root_index: TensorData,
    /// With shared embeddings ([`SharedRoots`]): the roots embedded, and each root's row among
    /// them.
    shared: Option<[TensorData; 2]>,
}

impl EmbedHost {
    /// `sb`'s inputs, with the edge features of `stream`; roots shared where that is worth it.
    fn of(sb: &SampledBatch, stream: &EventStream) -> Self {
        let shared = SharedRoots::of(sb);
        EmbedHost::new(sb, stream, shared.is_worth_it().then_some(&shared))
    }

    /// `sb`'s inputs, with the edge features of `stream`, embedding the roots `shared` keeps
    /// (all without).
    fn new(sb: &SampledBatch, stream: &EventStream, shared: Option<&SharedRoots>) -> Self {
        let features = stream.edge_features();
        let roots = shared.map(|s| &s.embedded[..]);
        // Hop `l` holds `k^(l+1)` slots per root, root after root.
        let mut width = 1;
        let hops = sb
            .hops
            .iter()
            .map(|h| {
                width *= sb.k;
                let edge = features.map(|f| {
                    let rows = match roots {
                        None => edge_rows(h, f, 0..h.eid.len()),
                        Some(r) => {
                            let slots = r.iter().flat_map(|&r| {
                                let first = r as usize * width;
                                first..first + width
                            });
                            edge_rows(h, f, slots)
                        }
                    };
                    (rows, f.dim())
                });
                match roots {
                    None => HostHop::new(&h.index, &h.dt, h.mask.clone(), edge, sb.k),
                    Some(r) => HostHop::new(
                        &blocks(&h.index, r, width),
                        &blocks(&h.dt, r, width),
                        blocks(&h.mask, r, width),
                        edge,
                        sb.k,
                    ),
                }
            })
            .collect();
        let root_index = match roots {
            None => index_data(&sb.root_index),
            Some(r) => index_data(&blocks(&sb.root_index, r, 1)),
        };
        EmbedHost {
            hops,
            root_index,
            shared: shared.map(|s| [index_data(&s.embedded), index_data(&s.row)]),
        }
    }

    /// The inputs on `device`, with the roots' drift `root_dt` (`[R]`, every root's), and with
    /// shared embeddings each root's row among those embedded.
    fn upload(self, root_dt: Tensor<1>, device: &Device) -> (EmbedInput, Option<Tensor<1, Int>>) {
        let (root_dt, rows) = match self.shared {
            None => (root_dt, None),
            Some([embedded, row]) => (
                root_dt.select(0, Tensor::from_data(embedded, device)),
                Some(Tensor::from_data(row, device)),
            ),
        };
        let input = EmbedInput {
            root_index: Tensor::from_data(self.root_index, device),
            root_dt,
            hops: self
                .hops
                .into_iter()
                .map(|h| HopInput::upload(h, device))
                .collect(),
        };
        (input, rows)
    }
}

/// The edge-feature rows of `slots` of `hop`, in order (zeros for padding).
fn edge_rows(hop: &Hop, features: &Features, slots: impl Iterator<Item = usize>) -> Vec<f32> {
    let mut rows = Vec::with_capacity(hop.eid.len() * features.dim());
    for slot in slots {
        if hop.mask[slot] {
            rows.extend_from_slice(features.row(hop.eid[slot] as usize));
        } else {
            rows.extend(std::iter::repeat_n(0.0, features.dim()));
        }
    }
    rows
}

/// M: [`Prepared`] plus what the memory fetch read.
pub struct Fetched<S: NodeMemory> {
    /// The batch with its features.
    pub prepared: Prepared,
    /// The memory state of the batch's unique nodes as the read saw it.
    pub memory: S::Fetched,
}

/// C's hand-over to U: the batch and the updated memories of its rows that compute read.
pub struct Update<S: NodeMemory> {
    /// The batch.
    pub sampled: Sampled,
    /// The updated memories of the rows compute read ([`crate::Updated::memory`]), detached.
    pub rows: S::Rows,
}

/// U, ready to apply to a store.
pub struct Write<S: NodeMemory> {
    /// Every node the write changes (the scheduler stamps them).
    pub written: Vec<u32>,
    /// What it changes.
    pub change: Change<S>,
}

/// How a [`Write`] changes a store.
pub enum Change<S: NodeMemory> {
    /// Apply one batch's rows and mails.
    Apply(S::Write),
    /// Take over a state that already holds them (a store whose writes run on compute's thread,
    /// see [`NodeMemory::WRITES_ON_COMPUTE`]).
    Replace(S),
}

/// Output of the forward pass.
pub struct Forward<S: NodeMemory> {
    /// `[1]` binary cross-entropy of the positive and negative logits.
    pub loss: Tensor<1>,
    /// `[B]` positive logits (detached).
    pub pos: Tensor<1>,
    /// `[B·per_positive]` negative logits (detached).
    pub neg: Tensor<1>,
    /// `[B, out]` embeddings of the positive sources (detached), for node classification.
    pub sources: Tensor<2>,
    /// What the update stage writes.
    pub update: Update<S>,
}

/// S for `events`: negatives keyed by the context's key, roots, neighbour sampling (keyed by the
/// batch's first event).
pub fn sample(
    cx: SampleContext<'_>,
    sampler: &mut NeighborSampler,
    events: Vec<usize>,
) -> Result<Sampled, SamplerError> {
    let s = cx.stream;
    let mut neg = Negatives::default();
    cx.negatives
        .sample(s, &events, cx.per_positive, cx.negative_key, &mut neg);
    let b = events.len();
    let k_neg = neg.per_positive;
    let times: Vec<f64> = events.iter().map(|&i| s.time()[i]).collect();
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
    if let (Embed::PerNode, Some(&start)) = (cx.embed, times.first()) {
        root_times.fill(start);
    }
    let first = events.first().copied().unwrap_or(0);
    let batch = sample_batch(cx, sampler, &roots, &root_times, first)?;
    Ok(Sampled {
        events,
        times,
        neg_src_row,
        per_positive: k_neg,
        batch,
    })
}

/// S for arbitrary roots: `roots` at `time`, as seen by a batch whose first event is `first`
/// (events at `time` from `first` on are not yet in the past), with no events of their own.
///
/// # Errors
/// What the neighbour sampler refuses.
pub fn sample_roots(
    cx: SampleContext<'_>,
    sampler: &mut NeighborSampler,
    roots: Vec<u32>,
    time: f64,
    first: usize,
) -> Result<Sampled, SamplerError> {
    let batch = sample_batch(cx, sampler, &roots, &vec![time; roots.len()], first)?;
    Ok(Sampled {
        events: Vec::new(),
        times: Vec::new(),
        neg_src_row: Vec::new(),
        per_positive: 0,
        batch,
    })
}

/// The neighbours of `roots` at `times` for a batch whose first event is `first` (its sampling
/// key), a memory row per root when `cx` asks for it.
fn sample_batch(
    cx: SampleContext<'_>,
    sampler: &mut NeighborSampler,
    roots: &[u32],
    times: &[f64],
    first: usize,
) -> Result<SampledBatch, SamplerError> {
    let mut batch = SampledBatch::default();
    sampler.sample(
        cx.graph,
        roots,
        times,
        first as u32,
        first as u64,
        &mut batch,
    )?;
    if cx.root_rows == RootRows::PerRoot {
        batch.separate_roots();
    }
    Ok(batch)
}

/// F: the embedding's inputs from the sample ([`EmbedHost`]).
pub fn fetch_features(stream: &EventStream, sampled: Sampled) -> Prepared {
    let embed = EmbedHost::of(&sampled.batch, stream);
    Prepared { sampled, embed }
}

/// M: reads the unique nodes' memory and the `updated` rows' mailboxes from `memory`; with `fix`,
/// mitigates stale rows.
///
/// # Panics
/// With `fix`, if the batch was sampled without hops (the fresher rows come from its first hop).
pub fn fetch_memory<S: NodeMemory>(
    memory: &S,
    prepared: Prepared,
    updated: UpdatedRows,
    fix: Option<StaleFix>,
) -> Fetched<S> {
    let memory = memory.fetch(&prepared.sampled.batch, updated, fix);
    Fetched { prepared, memory }
}

/// C, forward half: memory update, embeddings, link scores and loss on `device`; the updated
/// memories go to U in the store's own form.
///
/// # Panics
/// If the batch was sampled with fewer hops than the model has attention layers (see
/// [`MemoryModel::embed`]).
pub fn forward<S: NodeMemory>(
    model: &MemoryModel,
    fetched: Fetched<S>,
    time_origin: f64,
    device: &Device,
) -> Forward<S> {
    let (h, sampled, rows) = embed(model, fetched, time_origin, device);
    let b = sampled.events.len() as u32;
    let sources = h.clone().slice(0..b as usize).detach();
    let n_neg = sampled.neg_src_row.len() as u32;
    // Positive pairs, then negative pairs, scored in one pass (each pair's logit is its own row's).
    let src: Vec<u32> = (0..b).chain(sampled.neg_src_row.iter().copied()).collect();
    let dst: Vec<u32> = (b..2 * b + n_neg).collect();
    let logits = model.score(h, indices(&src, device), indices(&dst, device));
    let pos = logits.clone().slice(0..b as usize);
    let neg = logits.slice(b as usize..);
    let loss = MemoryModel::loss(pos.clone(), neg.clone());
    Forward {
        loss,
        pos: pos.detach(),
        neg: neg.detach(),
        sources,
        update: Update { sampled, rows },
    }
}

/// The roots' embeddings `[R, out]` from the memory fetched (updated from the mailboxes, not
/// written anywhere), with the sampled batch and the updated rows handed back. Roots that share
/// node, time and sampled slots are embedded once ([`SharedRoots`]).
fn embed<S: NodeMemory>(
    model: &MemoryModel,
    fetched: Fetched<S>,
    time_origin: f64,
    device: &Device,
) -> (Tensor<2>, Sampled, S::Rows) {
    let Fetched { prepared, memory } = fetched;
    let Prepared { sampled, embed } = prepared;
    let updated = S::update(model, memory, &sampled.batch, time_origin, device);
    let (input, rows) = embed.upload(updated.root_dt, device);
    let h = model.embed(updated.memory, &input);
    let h = match rows {
        Some(rows) => mspipe_model::kernels::select_rows(h, rows),
        None => h,
    };
    (h, sampled, updated.rows)
}

/// The blocks of `width` values of `roots` (block `r` of `v` is `v[r·width..(r+1)·width]`: a
/// hop holds `k^(l+1)` slots per root, root after root), in order.
fn blocks<T: Copy>(v: &[T], roots: &[u32], width: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(roots.len() * width);
    for &r in roots {
        let r = r as usize;
        out.extend_from_slice(&v[r * width..(r + 1) * width]);
    }
    out
}

/// U, first half: the endpoints' new memory rows and the mails (self ⊕ other ⊕ edge) for the
/// endpoints (and, delivering to neighbours, their sampled neighbours).
///
/// # Panics
/// Delivering to neighbours, if the batch was sampled without hops.
pub fn prepare_write<S: NodeMemory>(
    stream: &EventStream,
    delivery: Delivery,
    update: Update<S>,
) -> Write<S> {
    let mailing = Mailing::of(&update.sampled, delivery);
    let written = mailing.written();
    Write {
        written,
        change: Change::Apply(S::prepare_write(
            update.rows,
            mailing,
            stream.edge_features(),
        )),
    }
}

/// U, second half: writes into the store; returns the nodes written.
pub fn apply_write<S: NodeMemory>(memory: &mut S, w: Write<S>) -> Vec<u32> {
    match w.change {
        Change::Apply(data) => memory.apply(data),
        Change::Replace(state) => *memory = state,
    }
    w.written
}

/// A batch's link scores from [`Inference::run`].
#[derive(Debug, Clone)]
pub struct Scored {
    /// `[B]` logit of each event's link.
    pub pos: Tensor<1>,
    /// `[B·K]` logits of its `K` negatives, row-major.
    pub neg: Tensor<1>,
    /// `[B, out]` embedding of each event's source at its time.
    pub sources: Tensor<2>,
}

/// Inference as TGL evaluates: each batch is scored from the memory before it, then written into
/// memory, so the next batch sees it. Evaluation replay and streaming inference both run it.
#[derive(Debug, Clone, Copy)]
pub struct Inference<'a> {
    /// An inference model (no autodiff: dropout off, nothing recorded).
    pub model: &'a MemoryModel,
    /// Where the batch's mails go.
    pub delivery: Delivery,
    /// The stream's first event time ([`crate::StepConfig::time_origin`]).
    pub time_origin: f64,
    /// The model's device.
    pub device: &'a Device,
}

impl Inference<'_> {
    /// Samples `events` in `cx` (with `cx.per_positive` negatives each), scores them, and writes
    /// the batch into `memory`.
    ///
    /// # Errors
    /// What [`sample`] refuses.
    pub fn run<S: NodeMemory>(
        &self,
        cx: SampleContext<'_>,
        sampler: &mut NeighborSampler,
        memory: &mut S,
        events: Vec<usize>,
    ) -> Result<Scored, SamplerError> {
        let sampled = sample(cx, sampler, events)?;
        let prepared = fetch_features(cx.stream, sampled);
        let updated = UpdatedRows::of(self.model);
        let fetched = fetch_memory(&*memory, prepared, updated, None);
        let f = forward(self.model, fetched, self.time_origin, self.device);
        apply_write(memory, prepare_write(cx.stream, self.delivery, f.update));
        Ok(Scored {
            pos: f.pos,
            neg: f.neg,
            sources: f.sources,
        })
    }

    /// [`Inference::run`], and before it writes, the logits `[B, C]` of every pair (event
    /// source, candidate destination): the sources embedded at their events' times, the
    /// `candidates` once for the batch, at its first event's time (never after any event's,
    /// so nothing of the batch leaks into them).
    ///
    /// # Errors
    /// What [`sample`] refuses.
    ///
    /// # Panics
    /// If `events` is empty.
    pub fn run_ranking<S: NodeMemory>(
        &self,
        cx: SampleContext<'_>,
        sampler: &mut NeighborSampler,
        memory: &mut S,
        events: Vec<usize>,
        candidates: &[u32],
    ) -> Result<(Scored, Tensor<2>), SamplerError> {
        let first = events[0];
        let time = cx.stream.time()[first];
        let sampled = sample_roots(cx, sampler, candidates.to_vec(), time, first)?;
        let prepared = fetch_features(cx.stream, sampled);
        let fetched = fetch_memory(&*memory, prepared, UpdatedRows::of(self.model), None);
        let (h, _, _) = embed(self.model, fetched, self.time_origin, self.device);
        let scored = self.run(cx, sampler, memory, events)?;
        let pairs = self.model.score_all(scored.sources.clone(), h);
        Ok((scored, pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryShape, MemoryStore};
    use mspipe_data::synthetic::{SyntheticConfig, generate};
    use mspipe_model::tensors::to_vec;
    use mspipe_model::{EmbeddingKind, MemoryModelConfig, UpdaterKind};
    use mspipe_sampler::{Direction, NeighborConfig};

    /// The whole stream's graph, training negatives over all of it, and a sampler of the `k`
    /// most recent neighbours over two hops.
    fn sampling(
        stream: &EventStream,
        k: usize,
    ) -> (TemporalGraph, NegativeSampler, NeighborSampler) {
        let config = NeighborConfig {
            k,
            layers: 2,
            ..Default::default()
        };
        (
            TemporalGraph::from_stream(stream, Direction::Undirected),
            NegativeSampler::for_training(stream, |_| true, 0),
            NeighborSampler::new(config).expect("k and layers are at least 1"),
        )
    }

    #[test]
    fn shared_roots_embed_to_the_bit_what_each_root_embeds() {
        // Three snapshots: a batch names each node many times at one time.
        let stream = generate(&SyntheticConfig {
            events: 900,
            nodes: 40,
            edge_feat_dim: 3,
            snapshots: Some(3),
            seed: 1,
            ..Default::default()
        })
        .unwrap();
        let device = Device::flex();
        let config = MemoryModelConfig::new(3, UpdaterKind::Gru, EmbeddingKind::Attention)
            .with_memory_dim(8)
            .with_time_dim(4)
            .with_embed_dim(8)
            .with_layers(2)
            .with_neighbors(3);
        let model = config.init(&device);
        let shape = MemoryShape {
            nodes: stream.num_nodes(),
            dim: 8,
            mail_dim: config.mail_dim(),
            slots: 1,
        };
        let mut memory = MemoryStore::empty(shape, 0.0, &device);
        let (graph, negatives, mut sampler) = sampling(&stream, 3);
        let cx = SampleContext {
            stream: &stream,
            graph: &graph,
            negatives: &negatives,
            negative_key: 0,
            per_positive: 2,
            root_rows: RootRows::Shared,
            embed: Embed::PerEvent,
        };
        let inference = Inference {
            model: &model,
            delivery: config.delivery,
            time_origin: 0.0,
            device: &device,
        };
        // Memory and mails from a first stretch of the stream, then a batch inside a snapshot.
        inference
            .run(cx, &mut sampler, &mut memory, (0..400).collect())
            .unwrap();
        let sampled = sample(cx, &mut sampler, (400..600).collect()).unwrap();
        let sb = sampled.batch.clone();
        let shared = SharedRoots::of(&sb);
        assert!(
            shared.embedded.len() * 2 < sb.roots.len(),
            "{} of {} roots embedded",
            shared.embedded.len(),
            sb.roots.len()
        );
        let prepared = fetch_features(&stream, sampled);
        let each = {
            let fetched = fetch_memory(&memory, prepared.clone(), UpdatedRows::All, None);
            let updated = MemoryStore::update(&model, fetched.memory, &sb, 0.0, &device);
            let (input, _) = EmbedHost::new(&sb, &stream, None).upload(updated.root_dt, &device);
            to_vec(model.embed(updated.memory, &input).reshape([-1]))
        };
        let fetched = fetch_memory(&memory, prepared, UpdatedRows::All, None);
        let (h, _, _) = embed(&model, fetched, 0.0, &device);
        let once = to_vec(h.reshape([-1]));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&once), bits(&each));
    }

    #[test]
    fn per_node_embeds_each_node_once_from_before_the_batch() {
        let stream = generate(&SyntheticConfig {
            events: 2_000,
            nodes: 60,
            seed: 4,
            ..Default::default()
        })
        .unwrap();
        let (graph, negatives, mut sampler) = sampling(&stream, 4);
        let cx = |embed| SampleContext {
            stream: &stream,
            graph: &graph,
            negatives: &negatives,
            negative_key: 0,
            per_positive: 1,
            root_rows: RootRows::Shared,
            embed,
        };
        let events: Vec<usize> = (1_000..1_300).collect();
        let per_node = sample(cx(Embed::PerNode), &mut sampler, events.clone()).unwrap();
        let sb = &per_node.batch;
        let mut nodes = sb.roots.clone();
        nodes.sort_unstable();
        nodes.dedup();
        assert_eq!(SharedRoots::of(sb).embedded.len(), nodes.len());
        let start = stream.time()[1_000];
        assert!(sb.root_times.iter().all(|&t| t == start));
        for hop in &sb.hops {
            for (&e, &valid) in hop.eid.iter().zip(&hop.mask) {
                assert!(!valid || e < 1_000, "event {e} of the batch seen");
            }
        }
        // Per event, later events of the batch see earlier ones.
        let per_event = sample(cx(Embed::PerEvent), &mut sampler, events).unwrap();
        let seen = per_event.batch.hops[0]
            .eid
            .iter()
            .zip(&per_event.batch.hops[0].mask);
        assert!(seen.filter(|&(_, &valid)| valid).any(|(&e, _)| e >= 1_000));
        assert_eq!(
            per_event.times, per_node.times,
            "events keep their own times"
        );
    }
}
