//! MSPipe's scheduler driving a model of your own: the five stages of every batch on their own
//! threads, memory fetches allowed to miss at most K updates, with mspipe's sampler for the
//! neighbourhoods. The "model" here is deliberately tiny — a per-node memory that moves towards
//! the memories of its neighbours at each interaction — so the loop is the point.
//!
//! `cargo run --example custom_loop`

use std::sync::Mutex;

use mspipe::data::EventStream;
use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::sampler::{Direction, NeighborConfig, NeighborSampler, SampledBatch, TemporalGraph};
use mspipe::scheduler::{BoxError, Executor, Mode, ReadVersion, Stages};

const BATCH: usize = 200;
const DIM: usize = 4;

/// Sampling, feature fetch, memory fetch and update of a stream's batches; compute is the
/// caller's closure (it owns the model).
struct MyStages {
    stream: EventStream,
    graph: TemporalGraph,
    /// Reuses its buffers between calls; only the sampling thread takes it.
    sampler: Mutex<NeighborSampler>,
}

/// What compute gets for batch `i`: each event's endpoints and their neighbours' memories.
struct Inputs {
    endpoints: Vec<u32>,
    neighbour_mean: Vec<[f32; DIM]>,
    staleness: usize,
}

impl Stages for MyStages {
    type Sampled = (Vec<u32>, SampledBatch);
    type Prepared = (Vec<u32>, SampledBatch);
    type Fetched = Inputs;
    type Update = Vec<(u32, [f32; DIM])>;
    type Write = Vec<(u32, [f32; DIM])>;
    type Memory = Vec<[f32; DIM]>;

    fn sample(&self, i: usize) -> Result<Self::Sampled, BoxError> {
        let events = i * BATCH..((i + 1) * BATCH).min(self.stream.len());
        let roots: Vec<u32> = events
            .clone()
            .flat_map(|e| [self.stream.src()[e], self.stream.dst()[e]])
            .collect();
        let times: Vec<f64> = events
            .clone()
            .flat_map(|e| [self.stream.time()[e]; 2])
            .collect();
        let mut out = SampledBatch::default();
        let first = events.start as u32;
        let mut sampler = self.sampler.lock().map_err(|_| "sampler poisoned")?;
        sampler.sample(&self.graph, &roots, &times, first, i as u64, &mut out)?;
        Ok((roots, out))
    }

    fn fetch_features(
        &self,
        _i: usize,
        sampled: Self::Sampled,
    ) -> Result<Self::Prepared, BoxError> {
        Ok(sampled) // no edge features in this stream
    }

    fn fetch_memory(
        &self,
        _i: usize,
        (roots, batch): Self::Prepared,
        memory: &Self::Memory,
        _stamps: &[u32],
        version: ReadVersion,
    ) -> Result<Self::Fetched, BoxError> {
        let hop = &batch.hops[0];
        let k = hop.len() / roots.len().max(1);
        let neighbour_mean = (0..roots.len())
            .map(|r| {
                let mut mean = [0.0; DIM];
                let real: Vec<usize> = (r * k..(r + 1) * k).filter(|&s| hop.mask[s]).collect();
                for &s in &real {
                    let row = memory[hop.nbr[s] as usize];
                    mean.iter_mut()
                        .zip(row)
                        .for_each(|(m, x)| *m += x / real.len() as f32);
                }
                mean
            })
            .collect();
        Ok(Inputs {
            endpoints: roots,
            neighbour_mean,
            staleness: version.staleness(),
        })
    }

    fn prepare_update(&self, _i: usize, update: Self::Update) -> Result<Self::Write, BoxError> {
        Ok(update)
    }

    fn apply_update(&self, _i: usize, write: Self::Write, memory: &mut Self::Memory) -> Vec<u32> {
        // The latest event of a node wins, as in TGN.
        write
            .into_iter()
            .map(|(node, row)| {
                memory[node as usize] = row;
                node
            })
            .collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stream = generate(&SyntheticConfig {
        events: 20_000,
        nodes: 500,
        ..Default::default()
    })?;
    let graph = TemporalGraph::from_stream(&stream, Direction::Undirected);
    let sampler = NeighborSampler::new(NeighborConfig {
        k: 5,
        layers: 1,
        ..Default::default()
    })?;
    let nodes = stream.num_nodes();
    let batches = stream.len().div_ceil(BATCH);
    let stages = MyStages {
        stream,
        graph,
        sampler: Mutex::new(sampler),
    };
    // Node i starts at a one-hot-ish memory so that mixing is visible.
    let mut memory: Vec<[f32; DIM]> = (0..nodes)
        .map(|n| std::array::from_fn(|d| f32::from(u8::from(n % DIM == d))))
        .collect();
    let k = 2;
    let mut worst = 0;
    let timeline = Executor::new(Mode::Fixed(k)).run(
        &stages,
        &mut memory,
        nodes,
        batches,
        |_i, inputs, hand_over| {
            worst = worst.max(inputs.staleness);
            // "Compute": each endpoint's new memory moves halfway to its neighbours' mean.
            let update = inputs
                .endpoints
                .iter()
                .zip(&inputs.neighbour_mean)
                .map(|(&node, mean)| (node, mean.map(|m| 0.5 * m + 0.5 / DIM as f32)))
                .collect();
            hand_over(update);
            Ok(())
        },
    )?;
    assert!(
        worst <= k,
        "a fetch missed {worst} updates, the bound is {k}"
    );
    let (mean, max) = timeline.observed_staleness();
    println!(
        "{batches} batches with fetches at most {k} updates stale: observed mean {mean:.2}, max {max}"
    );
    Ok(())
}
