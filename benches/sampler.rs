//! Neighbour-sampling throughput on sx-mathoverflow, printed as one JSON object:
//! `cargo bench --bench sampler`.
//!
//! Batches of 600 events in time order; roots are their sources, destinations and one random
//! negative destination each (1,800 roots, as in TGN training), k = 10, L = 1 and 2, recent and
//! uniform, on the global rayon pool (all cores). Reported: slots filled per second (roots × k per
//! hop, padding included: the work the tensors see) and valid neighbours per second, and the speed
//! of the brute-force reference (scan the event log for each root) on the same roots.

use std::time::Instant;

use mspipe::data::{LoadOptions, load, registry};
use mspipe::sampler::{
    Direction, NegativeSampler, NegativeStrategy, Negatives, NeighborConfig, NeighborSampler,
    SampledBatch, Strategy, TemporalGraph,
};
use serde_json::json;

const BATCH: usize = 600;
const K: usize = 10;

struct Roots {
    nodes: Vec<Vec<u32>>,
    times: Vec<Vec<f64>>,
}

fn roots(s: &mspipe::data::EventStream) -> Roots {
    let neg = NegativeSampler::new(NegativeStrategy::Random, s, |_| true, 0);
    let mut out = Roots {
        nodes: vec![],
        times: vec![],
    };
    let mut n = Negatives::default();
    for start in (0..s.len()).step_by(BATCH) {
        let b = start..(start + BATCH).min(s.len());
        neg.sample(s, &b.clone().collect::<Vec<_>>(), 1, 0, &mut n);
        out.nodes
            .push([&s.src()[b.clone()], &s.dst()[b.clone()], &n.dst[..]].concat());
        let t = &s.time()[b];
        out.times.push([t, t, t].concat());
    }
    out
}

fn run(g: &TemporalGraph, r: &Roots, layers: usize, strategy: Strategy) -> (f64, usize, usize) {
    let config = NeighborConfig {
        k: K,
        layers,
        strategy,
        seed: 1,
    };
    let mut sampler = NeighborSampler::new(config).expect("config");
    let mut out = SampledBatch::default();
    let (mut slots, mut valid) = (0, 0);
    let start = Instant::now();
    for (i, (nodes, times)) in r.nodes.iter().zip(&r.times).enumerate() {
        sampler
            .sample(g, nodes, times, (i * BATCH) as u32, i as u64, &mut out)
            .expect("sample");
        for h in &out.hops {
            slots += h.len();
            valid += h.valid();
        }
    }
    (start.elapsed().as_secs_f64(), slots, valid)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The reference: for each root, scan every event before its time and keep the last k involving it.
fn brute_force_rate(s: &mspipe::data::EventStream, r: &Roots, batches: usize) -> f64 {
    let start = Instant::now();
    let mut slots = 0usize;
    let mut sink = 0u64;
    let stride = r.nodes.len() / batches;
    for b in (0..batches).map(|i| i * stride + stride / 2) {
        for (&u, &t) in r.nodes[b].iter().zip(&r.times[b]) {
            let mut found = Vec::with_capacity(K);
            let end = s.time().partition_point(|&x| x < t);
            for i in (0..end).rev() {
                if s.src()[i] == u || s.dst()[i] == u {
                    found.push(i);
                    if found.len() == K {
                        break;
                    }
                }
            }
            sink += found.len() as u64;
            slots += K;
        }
    }
    std::hint::black_box(sink);
    slots as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let entry = registry::find("mathoverflow").expect("registered");
    let s = load(
        &registry::default_root().join(entry.file),
        &LoadOptions::default(),
    )
    .expect("load")
    .stream;
    let t = Instant::now();
    let g = TemporalGraph::from_stream(&s, Direction::Undirected);
    let build_secs = t.elapsed().as_secs_f64();
    let r = roots(&s);
    let brute = brute_force_rate(&s, &r, 20);

    let mut results = vec![];
    for layers in [1, 2] {
        for (name, strategy) in [("recent", Strategy::Recent), ("uniform", Strategy::Uniform)] {
            let runs: Vec<(f64, usize, usize)> =
                (0..5).map(|_| run(&g, &r, layers, strategy)).collect();
            let secs = median(runs.iter().map(|x| x.0).collect());
            let (slots, valid) = (runs[0].1, runs[0].2);
            results.push(json!({
                "strategy": name,
                "layers": layers,
                "seconds": secs,
                "slots_per_sec": slots as f64 / secs,
                "valid_neighbors_per_sec": valid as f64 / secs,
                "valid_fraction": valid as f64 / slots as f64,
                "speedup_vs_brute_force": slots as f64 / secs / brute,
            }));
        }
    }
    let report = json!({
        "dataset": "sx-mathoverflow",
        "events": s.len(),
        "threads": rayon::current_num_threads(),
        "batch": BATCH,
        "roots_per_batch": 3 * BATCH,
        "k": K,
        "graph_build_seconds": build_secs,
        "brute_force_slots_per_sec": brute,
        "results": results,
    });
    println!("{report}");
}
