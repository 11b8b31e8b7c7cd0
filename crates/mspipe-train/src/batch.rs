//! One batch as the five stages of MSPipe — sample (S), feature fetch (F), memory fetch (M),
//! compute (C), memory update (U) — each a function of the previous stage's output, so the
//! sequential loop and the pipelined executor run the very same code.
//!
//! TGL's semantics: the batch's node memories and mailboxes are gathered and updated
//! (differentiably), the roots embedded, positive and negative links scored; then the endpoints
//! take their updated memories (detached) and the batch's mails are delivered — latest event
//! winning for a node that occurs several times. With node memory on the device
//! ([`NodeMemory::Device`]) M keeps the store as it is (tensors are values: later commits do not
//! change what it holds), C reads it with the fused fetch and U writes with the fused update.

use anyhow::Result;
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::kernels::{DeviceMemory, Writes};
use mspipe_model::memory::Gathered;
use mspipe_model::tensors::{floats, indices, to_vec};
use mspipe_model::{Delivery, EmbedInput, HopInput, MemoryInput, MemoryModel};
use mspipe_sampler::{NegativeSampler, Negatives, NeighborSampler, SampledBatch, TemporalGraph};
use mspipe_scheduler::{Candidates, Mitigation, stale_rows};

use crate::memory::{self, DeviceStore, NodeMemory};

/// What sampling needs and does not change.
#[derive(Clone, Copy)]
pub struct SampleContext<'a> {
    pub stream: &'a EventStream,
    pub graph: &'a TemporalGraph,
    pub negatives: &'a NegativeSampler,
    /// Key of the negative draws (the epoch, or the fixed evaluation key).
    pub negative_key: u64,
    pub per_positive: usize,
}

/// S: the batch's events, roots and sampled neighbourhoods.
pub struct Sampled {
    pub events: Vec<usize>,
    pub times: Vec<f64>,
    /// Embedding row of each negative's source (a positive's source row when they coincide).
    pub neg_src_row: Vec<u32>,
    pub per_positive: usize,
    /// Roots (positive sources, positive destinations, negative destinations, extra negative
    /// sources) and their sampled neighbours.
    pub batch: SampledBatch,
}

/// F: [`Sampled`] plus the edge features of every sampled slot, per hop.
pub struct Prepared {
    pub sampled: Sampled,
    /// `[slots, edge_dim]` per hop; `None` without edge features.
    pub edges: Vec<Option<Vec<f32>>>,
    pub edge_dim: usize,
}

/// M: [`Prepared`] plus the memory state of the batch's unique nodes as the read saw it.
pub struct Fetched {
    pub prepared: Prepared,
    pub memory: FetchedMemory,
}

/// What the memory fetch read.
// burn tensors are large handles; each value moves a few times per batch, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum FetchedMemory {
    /// The gathered rows and, per unique node, the time of the memory the updater produces
    /// (newest mail, or last update).
    Host {
        gathered: Gathered,
        mem_time: Vec<f64>,
    },
    /// The device store as it was (tensors are values: later commits do not change it), which
    /// compute reads in one fused pass with the model's time encoding, and mitigates with `fix`.
    Device {
        store: DeviceStore,
        fix: Option<StaleFix>,
    },
}

/// C's hand-over to U: the updated memories of the batch's unique nodes.
pub struct Update {
    pub sampled: Sampled,
    pub memory: UpdatedMemory,
}

/// The batch's `U` updated memories (detached) and their times, where the store keeps them.
// burn tensors are large handles; each value moves a few times per batch, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum UpdatedMemory {
    /// `[U, d]` row-major.
    Host { rows: Vec<f32>, mem_time: Vec<f64> },
    /// `[U, d]` and `[U]` (times from `origin`, see [`DeviceStore`]), without autodiff.
    Device {
        rows: Tensor<2>,
        time: Tensor<1>,
        origin: f64,
    },
}

/// U, ready to apply: memory rows of the endpoints and the mails to deliver.
pub struct Write {
    nodes: Vec<u32>,
    targets: Vec<u32>,
    data: WriteData,
}

/// The rows, mails and times of a [`Write`].
// burn tensors are large handles; each value moves a few times per batch, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
enum WriteData {
    Host {
        node_rows: Vec<f32>,
        node_times: Vec<f64>,
        mails: Vec<f32>,
        mail_times: Vec<f64>,
    },
    Device(Writes),
    /// A device state that compute already computed (see [`crate::pipeline::DeviceUpdates`]).
    Replace(DeviceStore),
}

/// Output of the forward pass.
pub struct Forward {
    pub loss: Tensor<1>,
    pub pos: Tensor<1>,
    pub neg: Tensor<1>,
    /// `[B, out]` embeddings of the positive sources (detached), for node classification.
    pub sources: Tensor<2>,
    pub update: Update,
}

/// S for `events`: negatives keyed by the context's key, roots, neighbour sampling (keyed by the
/// batch's first event).
pub fn sample(
    cx: SampleContext<'_>,
    sampler: &mut NeighborSampler,
    events: Vec<usize>,
) -> Result<Sampled> {
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
    let first = events.first().copied().unwrap_or(0);
    let mut batch = SampledBatch::default();
    sampler.sample(
        cx.graph,
        &roots,
        &root_times,
        first as u32,
        first as u64,
        &mut batch,
    )?;
    Ok(Sampled {
        events,
        times,
        neg_src_row,
        per_positive: k_neg,
        batch,
    })
}

/// F: the edge-feature rows of every valid slot (zeros for padding).
pub fn fetch_features(stream: &EventStream, sampled: Sampled) -> Prepared {
    let features = stream.edge_features();
    let edges = sampled
        .batch
        .hops
        .iter()
        .map(|h| {
            features.map(|f| {
                let mut rows = Vec::with_capacity(h.eid.len() * f.dim());
                for (slot, &e) in h.eid.iter().enumerate() {
                    if h.mask[slot] {
                        rows.extend_from_slice(f.row(e as usize));
                    } else {
                        rows.extend(std::iter::repeat_n(0.0, f.dim()));
                    }
                }
                rows
            })
        })
        .collect();
    Prepared {
        sampled,
        edges,
        edge_dim: features.map_or(0, |f| f.dim()),
    }
}

/// How a fetch that missed updates is corrected.
pub struct StaleFix {
    pub mitigation: Mitigation,
    /// Δt quantile above which a node counts as stale.
    pub quantile: f64,
    /// Nodes written by the updates the fetch missed, sorted.
    pub missed: Vec<u32>,
}

/// M: reads the unique nodes' memory and mailboxes; with `fix`, mitigates stale rows. A device
/// store is only kept as it is here: its reads (and the mitigation's) run in C, on the thread
/// that does all the pipeline's device work (see [`crate::pipeline::DeviceUpdates`]).
pub fn fetch_memory(memory: &NodeMemory, prepared: Prepared, fix: Option<StaleFix>) -> Fetched {
    let sb = &prepared.sampled.batch;
    let memory = match memory {
        NodeMemory::Host(store) => {
            let mut gathered = Gathered::default();
            store.gather(&sb.unique_nodes, &mut gathered);
            let mem_time = memory_times(&gathered, store.slots());
            if let Some(fix) = fix {
                mitigate(store.dim(), sb, &mut gathered.memory, &mem_time, fix);
            }
            FetchedMemory::Host { gathered, mem_time }
        }
        NodeMemory::Device(store) => FetchedMemory::Device {
            store: store.clone(),
            fix,
        },
    };
    Fetched { prepared, memory }
}

/// Per gathered node, the time of the memory the updater produces: the newest mail's, or the last
/// update without mail.
fn memory_times(gathered: &Gathered, slots: usize) -> Vec<f64> {
    (0..gathered.last_update.len())
        .map(|u| {
            let newest = u * slots + slots - 1;
            if gathered.mail_mask[newest] {
                gathered.last_update[u] + gathered.mail_dt[newest] as f64
            } else {
                gathered.last_update[u]
            }
        })
        .collect()
}

/// Blends the stale roots' memories with their most similar fresh neighbours'.
fn mitigate(
    dim: usize,
    sb: &SampledBatch,
    memory: &mut [f32],
    mem_time: &[f64],
    fix: StaleFix,
) -> usize {
    let unique = sb.unique_nodes.len();
    let mut dt = vec![f64::NAN; unique];
    for (&u, &t) in sb.root_index.iter().zip(&sb.root_times) {
        let d = &mut dt[u as usize];
        let since = t - mem_time[u as usize];
        *d = if d.is_nan() { since } else { d.max(since) };
    }
    let missed: Vec<bool> = sb
        .unique_nodes
        .iter()
        .map(|n| fix.missed.binary_search(n).is_ok())
        .collect();
    let stale = stale_rows(&missed, &dt, fix.quantile);
    let hop = &sb.hops[0];
    let candidates = Candidates {
        root_row: &sb.root_index,
        slot_row: &hop.index,
        mask: &hop.mask,
        k: sb.k,
        time: mem_time,
    };
    fix.mitigation.apply(memory, dim, &stale, candidates)
}

/// C, forward half: memory update, embeddings, link scores and loss on `device`; the updated
/// memories go to U where the store keeps them.
pub fn forward(
    model: &MemoryModel,
    fetched: Fetched,
    (dim, slots): (usize, usize),
    time_scale: f64,
    device: &Device,
) -> Forward {
    let Fetched {
        prepared, memory, ..
    } = fetched;
    let Prepared {
        sampled,
        edges,
        edge_dim,
    } = prepared;
    let sb = &sampled.batch;
    let (memory, root_dt, updated) = match memory {
        FetchedMemory::Host { gathered, mem_time } => {
            let memory = model.update_memory(MemoryInput::from_host(&gathered, dim, slots, device));
            let root_dt: Vec<f32> = sb
                .root_index
                .iter()
                .zip(&sb.root_times)
                .map(|(&u, &t)| ((t - mem_time[u as usize]) * time_scale) as f32)
                .collect();
            let root_dt = floats(&root_dt, [sb.roots.len()], device);
            let rows = to_vec(memory.clone().detach());
            (memory, root_dt, UpdatedMemory::Host { rows, mem_time })
        }
        FetchedMemory::Device { store, fix } => {
            let nodes = indices(&sb.unique_nodes, device);
            let mut fetched = model.fetch_memory(&memory::on(&store.state, device), nodes);
            if let Some(fix) = fix {
                // The blend works on host rows: one round trip of the batch's rows, only in
                // iterations that missed updates.
                let mut rows = to_vec(fetched.memory.clone());
                let time = to_vec(fetched.time.clone());
                let mem_time: Vec<f64> =
                    time.iter().map(|&t| f64::from(t) + store.origin).collect();
                if mitigate(dim, sb, &mut rows, &mem_time, fix) > 0 {
                    fetched.memory = floats(&rows, [sb.unique_nodes.len(), dim], device);
                }
            }
            let memory = model.update_fetched(&fetched);
            let root_times: Vec<f32> = sb.root_times.iter().map(|&t| store.time(t)).collect();
            let root_times = floats(&root_times, [sb.roots.len()], device);
            let root_rows = indices(&sb.root_index, device);
            let since = root_times - fetched.time.clone().select(0, root_rows);
            let updated = UpdatedMemory::Device {
                rows: memory.clone().detach().inner(),
                time: fetched.time.inner(),
                origin: store.origin,
            };
            (memory, since * time_scale, updated)
        }
    };
    let hops = sb
        .hops
        .iter()
        .zip(&edges)
        .map(|(h, e)| {
            let edge = e.as_deref().map(|rows| (rows, edge_dim));
            HopInput::from_host(&h.index, &h.dt, &h.mask, edge, sb.k, device)
        })
        .collect();
    let input = EmbedInput {
        root_index: indices(&sb.root_index, device),
        root_dt,
        hops,
    };
    let h = model.embed(memory, &input);
    let b = sampled.events.len() as u32;
    let sources = h.clone().slice(0..b as usize).detach();
    let n_neg = sampled.neg_src_row.len() as u32;
    let pos_src: Vec<u32> = (0..b).collect();
    let pos_dst: Vec<u32> = (b..2 * b).collect();
    let neg_dst: Vec<u32> = (2 * b..2 * b + n_neg).collect();
    let pos = model.score(
        h.clone(),
        indices(&pos_src, device),
        indices(&pos_dst, device),
    );
    let neg = model.score(
        h,
        indices(&sampled.neg_src_row, device),
        indices(&neg_dst, device),
    );
    let loss = MemoryModel::loss(pos.clone(), neg.clone());
    Forward {
        loss,
        pos: pos.detach(),
        neg: neg.detach(),
        sources,
        update: Update {
            sampled,
            memory: updated,
        },
    }
}

/// Who gets which mail: per mail the unique-node rows of its sender (self) and of the other
/// endpoint, its event, time and receiver.
#[derive(Default)]
struct Mailing {
    me: Vec<u32>,
    other: Vec<u32>,
    event: Vec<usize>,
    time: Vec<f64>,
    target: Vec<u32>,
}

impl Mailing {
    /// Each event's two mails, to its endpoints (and, delivering to neighbours, to their sampled
    /// neighbours), in event order.
    fn of(sampled: &Sampled, delivery: Delivery) -> Self {
        let sb = &sampled.batch;
        let (b, k) = (sampled.events.len(), sb.k);
        let mut m = Mailing::default();
        for (i, (&e, &t)) in sampled.events.iter().zip(&sampled.times).enumerate() {
            for (me, other) in [(i, b + i), (b + i, i)] {
                let mut deliver = |target: u32| {
                    m.me.push(sb.root_index[me]);
                    m.other.push(sb.root_index[other]);
                    m.event.push(e);
                    m.time.push(t);
                    m.target.push(target);
                };
                deliver(sb.roots[me]);
                if delivery == Delivery::ToNeighbors {
                    let hop = &sb.hops[0];
                    for slot in me * k..(me + 1) * k {
                        if hop.mask[slot] {
                            deliver(hop.nbr[slot]);
                        }
                    }
                }
            }
        }
        m
    }
}

/// U, first half: the endpoints' new memory rows and the mails (self ⊕ other ⊕ edge) for the
/// endpoints (and, delivering to neighbours, their sampled neighbours).
pub fn prepare_write(stream: &EventStream, delivery: Delivery, update: Update) -> Write {
    let Update { sampled, memory } = update;
    let sb = &sampled.batch;
    let b = sampled.events.len();
    let mailing = Mailing::of(&sampled, delivery);
    let edge = stream.edge_features();
    // The unique-node row of each endpoint.
    let endpoint_rows = &sb.root_index[..2 * b];
    let data = match memory {
        UpdatedMemory::Host { rows, mem_time } => {
            let d = rows.len() / sb.unique_nodes.len().max(1);
            let row = |u: u32| &rows[u as usize * d..(u as usize + 1) * d];
            let mut mails = Vec::with_capacity(mailing.me.len() * (2 * d));
            for j in 0..mailing.me.len() {
                mails.extend_from_slice(row(mailing.me[j]));
                mails.extend_from_slice(row(mailing.other[j]));
                if let Some(f) = edge {
                    mails.extend_from_slice(f.row(mailing.event[j]));
                }
            }
            WriteData::Host {
                node_rows: endpoint_rows
                    .iter()
                    .flat_map(|&u| row(u))
                    .copied()
                    .collect(),
                node_times: endpoint_rows
                    .iter()
                    .map(|&u| mem_time[u as usize])
                    .collect(),
                mails,
                mail_times: mailing.time,
            }
        }
        UpdatedMemory::Device { rows, time, origin } => {
            let device = rows.device();
            let select = |t: Tensor<2>, which: &[u32]| t.select(0, indices(which, &device));
            let mut mails = vec![
                select(rows.clone(), &mailing.me),
                select(rows.clone(), &mailing.other),
            ];
            if let Some(f) = edge {
                let e: Vec<f32> = mailing
                    .event
                    .iter()
                    .flat_map(|&e| f.row(e))
                    .copied()
                    .collect();
                mails.push(floats(&e, [mailing.event.len(), f.dim()], &device));
            }
            let mail_times: Vec<f32> = mailing.time.iter().map(|&t| (t - origin) as f32).collect();
            let endpoints = indices(endpoint_rows, &device);
            WriteData::Device(Writes {
                nodes: indices(&sb.roots[..2 * b], &device),
                times: time.select(0, endpoints.clone()),
                rows: rows.select(0, endpoints),
                targets: indices(&mailing.target, &device),
                mail_times: floats(&mail_times, [mail_times.len()], &device),
                mails: Tensor::cat(mails, 1),
            })
        }
    };
    Write {
        nodes: sb.roots[..2 * b].to_vec(),
        targets: mailing.target,
        data,
    }
}

/// U, second half: writes into the store; returns the nodes written.
pub fn apply_write(memory: &mut NodeMemory, w: Write) -> Vec<u32> {
    match (memory, w.data) {
        (
            NodeMemory::Host(store),
            WriteData::Host {
                node_rows,
                node_times,
                mails,
                mail_times,
            },
        ) => {
            store.write_memory(&w.nodes, &node_rows, &node_times);
            store.push_mails(&w.targets, &mails, &mail_times);
        }
        (NodeMemory::Device(store), WriteData::Device(writes)) => update_device(store, writes),
        (NodeMemory::Device(store), WriteData::Replace(state)) => *store = state,
        _ => unreachable!("a write is prepared for the store it came from"),
    }
    let mut written = w.nodes;
    written.extend(w.targets);
    written
}

/// Applies a prepared device write to `store`.
fn update_device(store: &mut DeviceStore, writes: Writes) {
    // Taken out, the update holds the store's only handles and writes in place when nothing
    // else still reads them.
    let empty = DeviceMemory::zeros(0, 0, 0, 0, &writes.times.device());
    let state = std::mem::replace(&mut store.state, empty);
    store.state = mspipe_model::kernels::update(state, writes);
}

/// Applies a device write to `store` here and returns the write that publishes the result (the
/// nodes it wrote and the new state), for a store on another thread to take over as it is.
pub fn apply_here(store: &mut DeviceStore, w: Write) -> Write {
    let WriteData::Device(writes) = w.data else {
        unreachable!("only device writes are applied ahead")
    };
    update_device(store, writes);
    let mut nodes = w.nodes;
    nodes.extend(w.targets);
    Write {
        nodes,
        targets: Vec::new(),
        data: WriteData::Replace(store.clone()),
    }
}
