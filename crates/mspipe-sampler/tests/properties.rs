//! Sampling against a brute-force scan of the event list, on random graphs.

use mspipe_data::EventStream;
use mspipe_sampler::{
    Direction, NeighborConfig, NeighborSampler, SampledBatch, Strategy as Pick, TemporalGraph,
};
use proptest::prelude::*;

/// Events of `u` before `t` — strictly earlier, or at `t` with an index below `first` (an
/// earlier batch) — oldest first, by scanning every event (the reference).
fn brute(s: &EventStream, dir: Direction, u: u32, t: f64, first: u32) -> Vec<(u32, u32, f64)> {
    let mut out = vec![];
    for i in 0..s.len() {
        let (a, b, ti) = (s.src()[i], s.dst()[i], s.time()[i]);
        if ti > t || (ti == t && i as u32 >= first) {
            continue;
        }
        if a == u {
            out.push((b, i as u32, ti));
        }
        if b == u && dir == Direction::Undirected {
            out.push((a, i as u32, ti));
        }
    }
    out
}

fn random_stream() -> impl proptest::strategy::Strategy<Value = EventStream> {
    (2usize..30, 1usize..300).prop_flat_map(|(nodes, events)| {
        let n = nodes as u32;
        (
            proptest::collection::vec((0..n, 0..n, 0u32..50), events),
            Just(nodes),
        )
            .prop_map(|(mut ev, nodes)| {
                ev.sort_by_key(|e| e.2); // integer times: many ties
                EventStream::from_edges(
                    ev.iter().map(|e| e.0).collect(),
                    ev.iter().map(|e| e.1).collect(),
                    ev.iter().map(|e| e.2 as f64).collect(),
                    nodes,
                )
                .expect("valid columns")
            })
    })
}

/// A sampler drawing `k` uniform picks per root over `layers` hops.
fn uniform(k: usize, layers: usize, seed: u64) -> NeighborSampler {
    NeighborSampler::new(NeighborConfig {
        k,
        layers,
        strategy: Pick::Uniform,
        seed,
    })
    .expect("k and layers are at least 1")
}

fn slot(b: &SampledBatch, hop: usize, s: usize) -> (u32, u32, f64) {
    let h = &b.hops[hop];
    (h.nbr[s], h.eid[s], h.ts[s])
}

fn roots_of(s: &EventStream, picks: &[(usize, f64)]) -> (Vec<u32>, Vec<f64>) {
    picks
        .iter()
        .map(|&(i, dt)| (s.src()[i % s.len()], s.time()[i % s.len()] + dt))
        .unzip()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn recent_is_exactly_the_k_latest_before(
        s in random_stream(),
        picks in proptest::collection::vec((0usize..1000, -1.0f64..2.0), 1..40),
        k in 1usize..6,
        directed in any::<bool>(),
        first in 0u32..320,
    ) {
        let dir = if directed { Direction::Directed } else { Direction::Undirected };
        let g = TemporalGraph::from_stream(&s, dir);
        let (roots, times) = roots_of(&s, &picks);
        let mut sampler = NeighborSampler::new(NeighborConfig { k, layers: 2, ..Default::default() }).unwrap();
        let mut b = SampledBatch::default();
        sampler.sample(&g, &roots, &times, first, 0, &mut b).unwrap();
        for r in 0..roots.len() {
            let all = brute(&s, dir, roots[r], times[r], first);
            let want = &all[all.len().saturating_sub(k)..];
            for j in 0..k {
                let sl = r * k + j;
                prop_assert_eq!(b.hops[0].mask[sl], j < want.len());
                if j < want.len() {
                    prop_assert_eq!(slot(&b, 0, sl), want[j]);
                    prop_assert_eq!(b.hops[0].dt[sl], (times[r] - want[j].2) as f32);
                    // Hop 2 is the recent sample around this neighbour at its event time.
                    let second = brute(&s, dir, want[j].0, want[j].2, first);
                    let want2 = &second[second.len().saturating_sub(k)..];
                    for j2 in 0..k {
                        let s2 = sl * k + j2;
                        prop_assert_eq!(b.hops[1].mask[s2], j2 < want2.len());
                        if j2 < want2.len() {
                            prop_assert_eq!(slot(&b, 1, s2), want2[j2]);
                        }
                    }
                } else {
                    prop_assert!((0..k).all(|j2| !b.hops[1].mask[sl * k + j2]));
                }
            }
        }
        // The unique set lists each touched node once and every index points at its node.
        let mut sorted = b.unique_nodes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), b.unique_nodes.len());
        for (r, &u) in roots.iter().enumerate() {
            prop_assert_eq!(b.unique_nodes[b.root_index[r] as usize], u);
        }
        for h in &b.hops {
            for sl in (0..h.len()).filter(|&sl| h.mask[sl]) {
                prop_assert_eq!(b.unique_nodes[h.index[sl] as usize], h.nbr[sl]);
            }
        }
    }

    #[test]
    fn uniform_draws_only_past_events_in_time_order(
        s in random_stream(),
        picks in proptest::collection::vec((0usize..1000, -1.0f64..2.0), 1..40),
        k in 1usize..6,
        seed in any::<u64>(),
    ) {
        let g = TemporalGraph::from_stream(&s, Direction::Undirected);
        let (roots, times) = roots_of(&s, &picks);
        let mut sampler = uniform(k, 1, seed);
        let mut b = SampledBatch::default();
        sampler.sample(&g, &roots, &times, 0, 5, &mut b).unwrap();
        for r in 0..roots.len() {
            let all = brute(&s, Direction::Undirected, roots[r], times[r], 0);
            let valid = (0..k).filter(|&j| b.hops[0].mask[r * k + j]).count();
            prop_assert_eq!(valid, if all.is_empty() { 0 } else { k });
            for j in 0..valid {
                let e = slot(&b, 0, r * k + j);
                prop_assert!(all.contains(&e));
                prop_assert!(e.2 < times[r]);
                if j > 0 {
                    prop_assert!(slot(&b, 0, r * k + j - 1).2 <= e.2);
                }
            }
        }
        // Reproducible for the same key.
        let mut again = SampledBatch::default();
        sampler.sample(&g, &roots, &times, 0, 5, &mut again).unwrap();
        prop_assert_eq!(&again, &b);
    }

    #[test]
    fn appended_graph_samples_like_the_built_graph(
        s in random_stream(),
        cut in 0usize..300,
        picks in proptest::collection::vec((0usize..1000, -1.0f64..2.0), 1..40),
    ) {
        let cut = cut.min(s.len());
        let full = TemporalGraph::from_stream(&s, Direction::Undirected);
        let mut grown = TemporalGraph::from_events(&s, Direction::Undirected, |i| i < cut);
        for i in cut..s.len() {
            grown.insert(s.src()[i], s.dst()[i], s.time()[i], i as u32).unwrap();
        }
        let (roots, times) = roots_of(&s, &picks);
        let mut sampler = NeighborSampler::new(NeighborConfig { k: 4, layers: 2, ..Default::default() }).unwrap();
        let (mut a, mut b) = (SampledBatch::default(), SampledBatch::default());
        sampler.sample(&full, &roots, &times, 0, 0, &mut a).unwrap();
        sampler.sample(&grown, &roots, &times, 0, 0, &mut b).unwrap();
        prop_assert_eq!(&a, &b);
        grown.compact();
        sampler.sample(&grown, &roots, &times, 0, 0, &mut b).unwrap();
        prop_assert_eq!(&a, &b);
    }
}

#[test]
fn uniform_is_uniform_over_past_events() {
    // Node 0 has 20 events before t = 100 (and more after, which must never be drawn).
    let n = 40;
    let src = vec![0u32; n];
    let dst: Vec<u32> = (1..=n as u32).collect();
    let time: Vec<f64> = (0..n).map(|i| i as f64 * 5.0).collect();
    let s = EventStream::from_edges(src, dst, time, n + 1).unwrap();
    let g = TemporalGraph::from_stream(&s, Direction::Undirected);
    let mut sampler = uniform(10, 1, 11);
    let mut counts = [0usize; 40];
    let mut b = SampledBatch::default();
    for key in 0..2_000u64 {
        sampler.sample(&g, &[0], &[100.0], 0, key, &mut b).unwrap();
        for &e in &b.hops[0].eid {
            counts[e as usize] += 1;
        }
    }
    // 20,000 draws over 20 events: 1,000 each, σ ≈ 31.
    for (e, &c) in counts.iter().enumerate() {
        if e < 20 {
            assert!((850..=1150).contains(&c), "event {e}: {c}");
        } else {
            assert_eq!(c, 0, "event {e} is not before t = 100");
        }
    }
}

#[test]
fn thread_count_does_not_change_samples() {
    let s = mspipe_data::synthetic::generate(&mspipe_data::synthetic::SyntheticConfig {
        events: 20_000,
        nodes: 500,
        ..Default::default()
    })
    .unwrap();
    let g = TemporalGraph::from_stream(&s, Direction::Undirected);
    let roots: Vec<u32> = s.src()[10_000..12_000].to_vec();
    let times: Vec<f64> = s.time()[10_000..12_000].to_vec();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut sampler = uniform(10, 2, 1);
            let mut b = SampledBatch::default();
            sampler.sample(&g, &roots, &times, 0, 3, &mut b).unwrap();
            b
        })
    };
    assert_eq!(run(1), run(3));
}
