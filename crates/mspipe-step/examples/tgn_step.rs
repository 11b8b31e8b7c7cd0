//! TGN trained for a few steps from a fresh project's point of view: a generated stream, the
//! model on burn's flex CPU device, mspipe's sampler for each batch's neighbourhoods and
//! negatives, node memory in host buffers, and [`Trainer::train_batch`] for the step (memory
//! fetch, forward, loss, write-back, backward, Adam).
//!
//! `cargo run -p mspipe-step --example tgn_step`

use burn::prelude::*;
use mspipe_data::synthetic::{SyntheticConfig, generate};
use mspipe_model::MemoryModelConfig;
use mspipe_sampler::{Direction, NegativeSampler, NeighborConfig, NeighborSampler, TemporalGraph};
use mspipe_step::AdamConfig;
use mspipe_step::batch::{self, Embed, RootRows, SampleContext};
use mspipe_step::{MemoryShape, MemoryStore, NodeMemory, StepConfig, Trainer, batch_events};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream = generate(&SyntheticConfig {
        events: 2_000,
        nodes: 100,
        edge_feat_dim: 4,
        ..Default::default()
    })?;
    let device = Device::flex().autodiff();
    device.seed(7);

    // The model, its optimizer and an empty node memory of the model's widths.
    let config = MemoryModelConfig::tgn(4)
        .with_memory_dim(32)
        .with_time_dim(16)
        .with_embed_dim(32);
    let mut model = config.init(&device);
    let mut optim = AdamConfig::new().init();
    let shape = MemoryShape {
        nodes: stream.num_nodes(),
        dim: config.memory_dim,
        mail_dim: config.mail_dim(),
        slots: config.mailbox,
    };
    let mut memory = MemoryStore::empty(shape, stream.time()[0], &device);

    // What sampling reads: the graph (a batch sees only earlier events), random negatives.
    let graph = TemporalGraph::from_stream(&stream, Direction::Undirected);
    let negatives = NegativeSampler::for_training(&stream, |_| true, 7);
    let mut sampler = NeighborSampler::new(NeighborConfig {
        k: config.neighbors,
        layers: config.layers,
        ..Default::default()
    })?;
    let cx = SampleContext {
        stream: &stream,
        graph: &graph,
        negatives: &negatives,
        negative_key: 0,
        per_positive: 1,
        root_rows: RootRows::for_clock(config.mail_clock()),
        embed: Embed::PerEvent,
    };

    let step = StepConfig::new(config.delivery).with_lr(1e-3);
    let mut trainer = Trainer::new(&mut model, &mut optim, step, &stream, &device);
    let events: Vec<usize> = (0..stream.len()).collect();
    let mut losses = Vec::new();
    for b in 0..events.len().div_ceil(200) {
        let sampled = batch::sample(cx, &mut sampler, batch_events(&events, 200, b))?;
        let prepared = batch::fetch_features(&stream, sampled);
        losses.push(trainer.train_batch(&mut memory, prepared, 0, b)?);
    }
    println!("loss per batch: {losses:.3?}");
    assert!(losses.iter().all(|l| l.is_finite()));
    // Every endpoint of the stream now has a memory.
    let written = (0..stream.num_nodes() as u32).filter(|&u| memory.last_update(u) > 0.0);
    println!(
        "{} of {} nodes have a memory",
        written.count(),
        stream.num_nodes()
    );
    Ok(())
}
