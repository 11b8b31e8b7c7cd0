//! One batch as the five stages of MSPipe — sample (S), feature fetch (F), memory fetch (M),
//! compute (C), memory update (U) — each a function of the previous stage's output, so the
//! sequential loop and the pipelined executor run the very same code.
//!
//! TGL's semantics: the batch's node memories and mailboxes are gathered and updated
//! (differentiably), the roots embedded, positive and negative links scored; then the endpoints
//! take their updated memories (detached) and the batch's mails are delivered — latest event
//! winning for a node that occurs several times.

use anyhow::Result;
use burn::prelude::*;
use mspipe_data::EventStream;
use mspipe_model::memory::{Gathered, MemoryStore};
use mspipe_model::tensors::{floats, indices, to_vec};
use mspipe_model::{Delivery, EmbedInput, HopInput, MemoryInput, MemoryModel};
use mspipe_sampler::{NegativeSampler, Negatives, NeighborSampler, SampledBatch, TemporalGraph};
use mspipe_scheduler::{Candidates, Mitigation, stale_rows};

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

/// M: [`Prepared`] plus the gathered memory state of the batch's unique nodes.
pub struct Fetched {
    pub prepared: Prepared,
    pub gathered: Gathered,
    /// Per unique node: time of the memory the updater produces (newest mail, or last update).
    pub mem_time: Vec<f64>,
    /// Rows changed by staleness mitigation.
    pub mitigated: usize,
}

/// C's hand-over to U: the updated memories of the batch's unique nodes.
pub struct Update {
    pub sampled: Sampled,
    /// `[U, d]`.
    pub rows: Vec<f32>,
    pub mem_time: Vec<f64>,
}

/// U, ready to apply: memory rows of the endpoints and the mails to deliver.
pub struct Write {
    nodes: Vec<u32>,
    node_rows: Vec<f32>,
    node_times: Vec<f64>,
    targets: Vec<u32>,
    mails: Vec<f32>,
    mail_times: Vec<f64>,
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
    let key = events.first().copied().unwrap_or(0) as u64;
    let mut batch = SampledBatch::default();
    sampler.sample(cx.graph, &roots, &root_times, key, &mut batch)?;
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
pub struct StaleFix<'a> {
    pub mitigation: Mitigation,
    /// Δt quantile above which a node counts as stale.
    pub quantile: f64,
    /// Nodes written by the updates the fetch missed.
    pub missed: &'a dyn Fn(u32) -> bool,
}

/// M: gathers the unique nodes' memory and mailboxes; with `fix`, mitigates stale rows.
pub fn fetch_memory(store: &MemoryStore, prepared: Prepared, fix: Option<StaleFix<'_>>) -> Fetched {
    let sb = &prepared.sampled.batch;
    let mut gathered = Gathered::default();
    store.gather(&sb.unique_nodes, &mut gathered);
    let m = store.slots();
    let mem_time: Vec<f64> = (0..sb.unique_nodes.len())
        .map(|u| {
            let newest = u * m + m - 1;
            if gathered.mail_mask[newest] {
                gathered.last_update[u] + gathered.mail_dt[newest] as f64
            } else {
                gathered.last_update[u]
            }
        })
        .collect();
    let mitigated = fix.map_or(0, |fix| {
        mitigate(store.dim(), sb, &mut gathered, &mem_time, fix)
    });
    Fetched {
        prepared,
        gathered,
        mem_time,
        mitigated,
    }
}

/// Blends the stale roots' memories with their most similar fresh neighbours'.
fn mitigate(
    dim: usize,
    sb: &SampledBatch,
    gathered: &mut Gathered,
    mem_time: &[f64],
    fix: StaleFix<'_>,
) -> usize {
    let unique = sb.unique_nodes.len();
    let mut dt = vec![f64::NAN; unique];
    for (&u, &t) in sb.root_index.iter().zip(&sb.root_times) {
        let d = &mut dt[u as usize];
        let since = t - mem_time[u as usize];
        *d = if d.is_nan() { since } else { d.max(since) };
    }
    let missed: Vec<bool> = sb.unique_nodes.iter().map(|&n| (fix.missed)(n)).collect();
    let stale = stale_rows(&missed, &dt, fix.quantile);
    let hop = &sb.hops[0];
    let candidates = Candidates {
        root_row: &sb.root_index,
        slot_row: &hop.index,
        mask: &hop.mask,
        k: sb.k,
    };
    fix.mitigation
        .apply(&mut gathered.memory, dim, &stale, candidates)
}

/// C, forward half: memory update, embeddings, link scores and loss on `device`; the updated
/// memories come back to the host for U.
pub fn forward(
    model: &MemoryModel,
    fetched: Fetched,
    (dim, slots): (usize, usize),
    time_scale: f64,
    device: &Device,
) -> Forward {
    let Fetched {
        prepared,
        gathered,
        mem_time,
        ..
    } = fetched;
    let Prepared {
        sampled,
        edges,
        edge_dim,
    } = prepared;
    let sb = &sampled.batch;
    let memory = model.update_memory(MemoryInput::from_host(&gathered, dim, slots, device));
    let root_dt: Vec<f32> = sb
        .root_index
        .iter()
        .zip(&sb.root_times)
        .map(|(&u, &t)| ((t - mem_time[u as usize]) * time_scale) as f32)
        .collect();
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
        root_dt: floats(&root_dt, [sb.roots.len()], device),
        hops,
    };
    let h = model.embed(memory.clone(), &input);
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
            rows: to_vec(memory.detach()),
            mem_time,
            sampled,
        },
    }
}

/// U, first half: the endpoints' new memory rows and the mails (self ⊕ other ⊕ edge) for the
/// endpoints (and, delivering to neighbours, their sampled neighbours).
pub fn prepare_write(stream: &EventStream, delivery: Delivery, update: Update) -> Write {
    let Update {
        sampled,
        rows,
        mem_time,
    } = update;
    let sb = &sampled.batch;
    let b = sampled.events.len();
    let d = rows.len() / sb.unique_nodes.len().max(1);
    let row = |r: usize| {
        let u = sb.root_index[r] as usize;
        &rows[u * d..(u + 1) * d]
    };
    let mut w = Write {
        nodes: sb.roots[..2 * b].to_vec(),
        node_rows: Vec::with_capacity(2 * b * d),
        node_times: Vec::with_capacity(2 * b),
        targets: Vec::new(),
        mails: Vec::new(),
        mail_times: Vec::new(),
    };
    for r in 0..2 * b {
        w.node_rows.extend_from_slice(row(r));
        w.node_times.push(mem_time[sb.root_index[r] as usize]);
    }
    let edge = stream.edge_features();
    let k = sb.k;
    for (i, (&e, &t)) in sampled.events.iter().zip(&sampled.times).enumerate() {
        for (me, other) in [(i, b + i), (b + i, i)] {
            let mut mail = [row(me), row(other)].concat();
            if let Some(f) = edge {
                mail.extend_from_slice(f.row(e));
            }
            let mut deliver = |target: u32| {
                w.targets.push(target);
                w.mails.extend_from_slice(&mail);
                w.mail_times.push(t);
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
    w
}

/// U, second half: writes into the store; returns the nodes written.
pub fn apply_write(store: &mut MemoryStore, w: Write) -> Vec<u32> {
    store.write_memory(&w.nodes, &w.node_rows, &w.node_times);
    store.push_mails(&w.targets, &w.mails, &w.mail_times);
    let mut written = w.nodes;
    written.extend(w.targets);
    written
}
