//! Each model learns a learnable temporal rule: on a generated user–item stream where users keep
//! returning to a favourite item, the training loss falls and the AP of the last fifth of the
//! stream (scored without training on it) rises well above chance.
//!
//! The loop follows TGL's semantics: gather memory and mailboxes of the batch's nodes, update them
//! (differentiably), embed, score, step, then write back the updated memories of the batch's
//! endpoints and the batch's mails (to neighbours too for APAN).

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use mspipe::data::EventStream;
use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::model::memory::{Gathered, MemoryStore};
use mspipe::model::tensors::{floats, indices, to_vec};
use mspipe::model::{Delivery, EmbedInput, HopInput, MemoryInput, MemoryModel, MemoryModelConfig};
use mspipe::sampler::{
    Direction, NegativeSampler, NegativeStrategy, Negatives, NeighborConfig, NeighborSampler,
    SampledBatch, TemporalGraph,
};

const BATCH: usize = 200;
const TIME_SCALE: f64 = 1e-3;
const EPOCHS: u64 = 15;
const SEED: u64 = 42;

struct Run {
    config: MemoryModelConfig,
    model: MemoryModel,
    store: MemoryStore,
    sampler: NeighborSampler,
    batch: SampledBatch,
    gathered: Gathered,
}

/// One batch: returns (loss, positive scores, negative scores); steps the optimizer when given.
fn step(
    run: &mut Run,
    s: &EventStream,
    graph: &TemporalGraph,
    events: std::ops::Range<usize>,
    neg: &Negatives,
    device: &Device,
) -> (Tensor<1>, Vec<f32>, Vec<f32>) {
    let b = events.len();
    let t = &s.time()[events.clone()];
    let roots: Vec<u32> = [
        &s.src()[events.clone()],
        &s.dst()[events.clone()],
        &neg.dst[..],
    ]
    .concat();
    let times: Vec<f64> = [t, t, t].concat();
    run.sampler
        .sample(graph, &roots, &times, events.start as u64, &mut run.batch)
        .expect("sample");
    let sb = &run.batch;
    run.store.gather(&sb.unique_nodes, &mut run.gathered);
    let g = &run.gathered;
    let (d, m) = (run.store.dim(), run.store.slots());
    // Time of the memory after the update: its newest mail, else its last update.
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
    let memory = run
        .model
        .update_memory(MemoryInput::from_host(g, d, m, device));
    let root_dt: Vec<f32> = sb
        .root_index
        .iter()
        .zip(&times)
        .map(|(&u, &t)| ((t - mem_time[u as usize]) * TIME_SCALE) as f32)
        .collect();
    let k = sb.k;
    let input = EmbedInput {
        root_index: indices(&sb.root_index, device),
        root_dt: floats(&root_dt, [roots.len()], device),
        hops: sb
            .hops
            .iter()
            .map(|h| HopInput::from_host(&h.index, &h.dt, &h.mask, None, k, device))
            .collect(),
    };
    let h = run.model.embed(memory.clone(), &input);
    let src: Vec<u32> = (0..b as u32).collect();
    let pos = run.model.score(
        h.clone(),
        indices(&src, device),
        indices(&(b as u32..2 * b as u32).collect::<Vec<_>>(), device),
    );
    let neg_logits = run.model.score(
        h,
        indices(&src, device),
        indices(&(2 * b as u32..3 * b as u32).collect::<Vec<_>>(), device),
    );
    let loss = MemoryModel::loss(pos.clone(), neg_logits.clone());

    // Write back: endpoints take their updated memory; everyone gets the batch's mails.
    let rows = to_vec(memory.detach());
    let mut nodes = vec![];
    let mut node_rows = vec![];
    let mut node_times = vec![];
    for (&node, &u) in roots[..2 * b].iter().zip(&sb.root_index) {
        let u = u as usize;
        nodes.push(node);
        node_rows.extend_from_slice(&rows[u * d..(u + 1) * d]);
        node_times.push(mem_time[u]);
    }
    run.store.write_memory(&nodes, &node_rows, &node_times);
    let (mut targets, mut mails, mut mail_times) = (vec![], vec![], vec![]);
    for (i, &time) in t.iter().enumerate() {
        for (me, other) in [(i, b + i), (b + i, i)] {
            let (um, uo) = (sb.root_index[me] as usize, sb.root_index[other] as usize);
            let mail = [&rows[um * d..(um + 1) * d], &rows[uo * d..(uo + 1) * d]].concat();
            let mut deliver = |target: u32| {
                targets.push(target);
                mails.extend_from_slice(&mail);
                mail_times.push(time);
            };
            deliver(roots[me]);
            if run.config.delivery == Delivery::ToNeighbors {
                let hop = &sb.hops[0];
                for slot in me * k..(me + 1) * k {
                    if hop.mask[slot] {
                        deliver(hop.nbr[slot]);
                    }
                }
            }
        }
    }
    run.store.push_mails(&targets, &mails, &mail_times);
    (loss, to_vec(pos.detach()), to_vec(neg_logits.detach()))
}

/// Average precision of positives against negatives.
fn average_precision(pos: &[f32], neg: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&p| (p, true))
        .chain(neg.iter().map(|&n| (n, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut hits, mut sum) = (0.0, 0.0);
    for (rank, &(_, positive)) in all.iter().enumerate() {
        if positive {
            hits += 1.0;
            sum += hits / (rank + 1) as f64;
        }
    }
    sum / pos.len() as f64
}

fn learns(config: MemoryModelConfig) -> (f64, f64, f64) {
    let device = Device::flex().autodiff();
    device.seed(SEED);
    let s = generate(&SyntheticConfig {
        events: 6_000,
        nodes: 400,
        users: Some(300),
        repeat_probability: 0.8,
        seed: 5,
        ..Default::default()
    })
    .expect("generate");
    let graph = TemporalGraph::from_stream(&s, Direction::Undirected);
    let negatives = NegativeSampler::new(NegativeStrategy::Random, &s, |_| true, 1);
    let train_end = s.len() * 4 / 5;
    let mut run = Run {
        model: config.init(&device),
        store: MemoryStore::new(
            s.num_nodes(),
            config.memory_dim,
            config.mail_dim(),
            config.mailbox,
        ),
        sampler: NeighborSampler::new(NeighborConfig {
            k: config.neighbors,
            layers: config.layers,
            ..Default::default()
        })
        .expect("sampler"),
        batch: SampledBatch::default(),
        gathered: Gathered::default(),
        config,
    };
    let mut optim = AdamConfig::new().init();
    let mut neg = Negatives::default();
    let (mut first_loss, mut last_loss) = (None, 0.0);
    for epoch in 0..EPOCHS {
        run.store.reset();
        let mut epoch_loss = vec![];
        for start in (0..train_end).step_by(BATCH) {
            let ev = start..(start + BATCH).min(train_end);
            negatives.sample(&s, ev.clone(), 1, epoch, &mut neg);
            let (loss, _, _) = step(&mut run, &s, &graph, ev, &neg, &device);
            epoch_loss.push(to_vec(loss.clone())[0] as f64);
            let grads = GradientsParams::from_grads(loss.backward(), &run.model);
            run.model = optim.step(1e-3, run.model.clone(), grads);
        }
        let mean = epoch_loss.iter().sum::<f64>() / epoch_loss.len() as f64;
        first_loss.get_or_insert(epoch_loss[..5].iter().sum::<f64>() / 5.0);
        last_loss = mean;
    }
    let (mut pos, mut negs) = (vec![], vec![]);
    for start in (train_end..s.len()).step_by(BATCH) {
        let ev = start..(start + BATCH).min(s.len());
        negatives.sample(&s, ev.clone(), 1, u64::MAX, &mut neg);
        let (_, p, n) = step(&mut run, &s, &graph, ev, &neg, &device);
        pos.extend(p);
        negs.extend(n);
    }
    (
        first_loss.unwrap_or(0.0),
        last_loss,
        average_precision(&pos, &negs),
    )
}

fn small(config: MemoryModelConfig) -> MemoryModelConfig {
    config
        .with_memory_dim(32)
        .with_time_dim(16)
        .with_embed_dim(32)
        .with_neighbors(5)
}

/// One test, models in turn: burn seeds its parameter RNG per device (globally on flex), so
/// parallel tests would race for it.
#[test]
fn every_model_learns() {
    let presets = [
        ("tgn", MemoryModelConfig::tgn(0), 0.80),
        ("jodie", MemoryModelConfig::jodie(0), 0.65),
        ("apan", MemoryModelConfig::apan(0), 0.62),
    ];
    for (name, config, min_ap) in presets {
        let (first, last, ap) = learns(small(config));
        eprintln!("{name}: loss {first:.4} -> {last:.4}, AP {ap:.4}");
        assert!(last < 0.92 * first, "{name}: loss {first} -> {last}");
        assert!(ap > min_ap, "{name}: test AP {ap}");
    }
}

#[test]
fn average_precision_matches_hand_computation() {
    // Ranking: p(0.9) n(0.8) p(0.7) n(0.1) → AP = (1/1 + 2/3) / 2.
    let ap = average_precision(&[0.9, 0.7], &[0.8, 0.1]);
    assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
}
