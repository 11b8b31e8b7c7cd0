//! No future information leaks into a sample, on every shipped real dataset: for every event used
//! as a root at its own time, each sampled event is earlier than its root — strictly, or at the
//! same time in an earlier batch, never in the root's batch or after it — touches the node it was
//! sampled for, and the second hop precedes the first by the same rule.

use mspipe::data::{LoadOptions, load, registry};
use mspipe::sampler::{
    Direction, NeighborConfig, NeighborSampler, SampledBatch, Strategy, TemporalGraph,
};

#[test]
fn no_sample_sees_its_root_time_or_later() {
    let root_dir = registry::default_root();
    for d in registry::DATASETS {
        let s = load(&root_dir.join(d.file), &LoadOptions::default())
            .expect("loads")
            .stream;
        let g = TemporalGraph::from_stream(&s, Direction::Undirected);
        for strategy in [Strategy::Recent, Strategy::Uniform] {
            let config = NeighborConfig {
                k: 10,
                layers: 2,
                strategy,
                seed: 1,
            };
            let mut sampler = NeighborSampler::new(config).expect("config");
            let mut b = SampledBatch::default();
            let mut checked = 0usize;
            for start in (0..s.len()).step_by(600) {
                let batch = start..(start + 600).min(s.len());
                let roots: Vec<u32> = [&s.src()[batch.clone()], &s.dst()[batch.clone()]].concat();
                let times: Vec<f64> = [&s.time()[batch.clone()], &s.time()[batch.clone()]].concat();
                sampler
                    .sample(&g, &roots, &times, start as u32, start as u64, &mut b)
                    .expect("sample");
                let (h1, h2) = (&b.hops[0], &b.hops[1]);
                for sl in (0..h1.len()).filter(|&sl| h1.mask[sl]) {
                    let (root, t) = (roots[sl / 10], times[sl / 10]);
                    let e = h1.eid[sl] as usize;
                    let earlier = |ts: f64, t: f64, e: usize| ts < t || (ts == t && e < start);
                    assert!(
                        earlier(h1.ts[sl], t, e) && s.time()[e] == h1.ts[sl],
                        "{}: leak",
                        d.name
                    );
                    let (a, c) = (s.src()[e], s.dst()[e]);
                    assert!(
                        (a == root && c == h1.nbr[sl]) || (c == root && a == h1.nbr[sl]),
                        "{}: event {e} does not join {root} and {}",
                        d.name,
                        h1.nbr[sl]
                    );
                    for s2 in (sl * 10..sl * 10 + 10).filter(|&s2| h2.mask[s2]) {
                        let e2 = h2.eid[s2] as usize;
                        assert!(earlier(h2.ts[s2], h1.ts[sl], e2), "{}: hop-2 leak", d.name);
                    }
                    checked += 1;
                }
            }
            assert!(checked > s.len(), "{}: only {checked} samples", d.name);
        }
    }
}
