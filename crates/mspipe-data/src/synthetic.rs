//! Seeded synthetic event streams with the shape of real interaction data: power-law (Zipf) node
//! activity, bursty inter-event times, repeated interactions (each source has a favourite
//! destination it returns to, which is what makes link prediction learnable), optional bipartite
//! layout, edge and node features.
//!
//! Events are generated in fixed-size chunks, each with its own RNG derived from the seed and the
//! chunk index, so the output is the same for any thread count and the columns are written in
//! place: 100M events are held once.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use rayon::prelude::*;

use crate::event_stream::sides_disjoint;
use crate::{DataError, EventStream, Features, NodeIds, Result};

const CHUNK: usize = 1 << 16;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Number of events.
    pub events: usize,
    /// Number of node ids drawn from (nodes that take part in no event are dropped).
    pub nodes: usize,
    /// `Some(u)`: a user–item graph, sources among the first `u` ids, destinations among the rest.
    pub users: Option<usize>,
    /// Zipf exponent of node activity (larger: a few nodes take most events).
    pub zipf_exponent: f64,
    /// Probability that an event goes to the source's favourite destination.
    pub repeat_probability: f64,
    /// Probability that an inter-event gap is a short, in-burst gap (a tenth of the mean).
    pub burst_probability: f64,
    /// Mean time between consecutive events.
    pub mean_gap: f64,
    /// Edge-feature width (0: none).
    pub edge_feat_dim: usize,
    /// Node-feature width (0: none).
    pub node_feat_dim: usize,
    /// Probability that an event carries label 1.
    pub label_rate: f64,
    /// `Some(n)`: snapshot timestamps, the shape of yearly data stored in seconds — the generated
    /// span is cut into `n` equal periods and every event of period `k` is stamped
    /// `k × 31,536,000`.
    pub snapshots: Option<usize>,
    /// Seed of everything above.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            events: 100_000,
            nodes: 1_000,
            users: None,
            zipf_exponent: 1.1,
            repeat_probability: 0.5,
            burst_probability: 0.8,
            mean_gap: 10.0,
            edge_feat_dim: 0,
            node_feat_dim: 0,
            label_rate: 0.002,
            snapshots: None,
            seed: 0,
        }
    }
}

/// Generates the stream `config` describes.
pub fn generate(config: &SyntheticConfig) -> Result<EventStream> {
    validate(config)?;
    let (src_side, dst_side) = sides(config);
    let src_zipf = Sampler::new(src_side.clone(), config, 1)?;
    let dst_zipf = Sampler::new(dst_side.clone(), config, 2)?;
    let n = config.events;
    let mut src = vec![0u32; n];
    let mut dst = vec![0u32; n];
    let mut time = vec![0f64; n];
    let mut label = vec![0f32; n];
    src.par_chunks_mut(CHUNK)
        .zip(dst.par_chunks_mut(CHUNK))
        .zip(time.par_chunks_mut(CHUNK))
        .zip(label.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (((s, d), t), l))| {
            let mut rng = chunk_rng(config.seed, 3, c);
            for k in 0..s.len() {
                s[k] = src_zipf.draw(&mut rng);
                d[k] = if rng.random_bool(config.repeat_probability) {
                    favourite(s[k], &dst_side, config.seed)
                } else {
                    dst_zipf.draw(&mut rng)
                };
                if s[k] == d[k] {
                    d[k] = dst_zipf.draw(&mut rng);
                }
                t[k] = gap(&mut rng, config);
                l[k] = f32::from(u8::from(rng.random_bool(config.label_rate)));
            }
        });
    prefix_sum(&mut time);
    if let Some(n) = config.snapshots {
        to_snapshots(&mut time, n);
    }
    let edge_feat = random_features(n, config.edge_feat_dim, config.seed, 4);
    let node_feat = random_features(config.nodes, config.node_feat_dim, config.seed, 5);
    Ok(compact(src, dst, time, label, edge_feat, node_feat, config))
}

/// One year in seconds: the spacing of snapshot timestamps.
const YEAR: f64 = 31_536_000.0;

/// Replaces non-decreasing `time` by the start of its period among `n` equal periods of the
/// span, in years counted in seconds.
fn to_snapshots(time: &mut [f64], n: usize) {
    let (first, last) = (time[0], time[time.len() - 1]);
    let span = (last - first).max(f64::MIN_POSITIVE);
    for t in time.iter_mut() {
        let period = (((*t - first) / span) * n as f64)
            .floor()
            .min(n as f64 - 1.0);
        *t = period * YEAR;
    }
}

fn validate(c: &SyntheticConfig) -> Result<()> {
    let prob = |p: f64| (0.0..=1.0).contains(&p);
    let users_ok = c.users.is_none_or(|u| u >= 1 && u < c.nodes);
    let snapshots_ok = c.snapshots.is_none_or(|n| n >= 1);
    if c.events == 0 || c.nodes < 2 || !users_ok || !snapshots_ok || c.nodes > u32::MAX as usize {
        return Err(DataError::Usage(format!(
            "synthetic stream needs events > 0, 2 <= nodes < 2^32, 1 <= users < nodes and at least one snapshot: {c:?}"
        )));
    }
    let probs = [c.repeat_probability, c.burst_probability, c.label_rate];
    if !probs.into_iter().all(prob) || c.zipf_exponent <= 0.0 || c.mean_gap <= 0.0 {
        return Err(DataError::Usage(format!(
            "probabilities must be in [0, 1], zipf_exponent and mean_gap positive: {c:?}"
        )));
    }
    Ok(())
}

fn sides(c: &SyntheticConfig) -> (std::ops::Range<u32>, std::ops::Range<u32>) {
    let n = c.nodes as u32;
    match c.users {
        Some(u) => (0..u as u32, u as u32..n),
        None => (0..n, 0..n),
    }
}

/// Independent RNG for chunk `chunk` of the stream with tag `tag` (events, features...).
fn chunk_rng(seed: u64, tag: u64, chunk: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(tag);
    rng.set_word_pos(chunk as u128 * (1 << 40));
    rng
}

/// Zipf-distributed draws over a side, rank `r` mapped to a node by a seeded permutation so the
/// busiest nodes are scattered over the id range.
struct Sampler {
    zipf: Zipf<f64>,
    by_rank: Vec<u32>,
}

impl Sampler {
    fn new(side: std::ops::Range<u32>, c: &SyntheticConfig, tag: u64) -> Result<Self> {
        let zipf = Zipf::new(side.len() as f64, c.zipf_exponent)
            .map_err(|e| DataError::Usage(format!("zipf: {e}")))?;
        let mut by_rank: Vec<u32> = side.collect();
        let mut rng = chunk_rng(c.seed, 100 + tag, 0);
        for i in (1..by_rank.len()).rev() {
            by_rank.swap(i, rng.random_range(0..=i));
        }
        Ok(Sampler { zipf, by_rank })
    }

    fn draw(&self, rng: &mut impl Rng) -> u32 {
        let rank = self.zipf.sample(rng) as usize - 1;
        self.by_rank[rank.min(self.by_rank.len() - 1)]
    }
}

/// A source's favourite destination: a fixed hash of the source into the destination side.
fn favourite(src: u32, dst_side: &std::ops::Range<u32>, seed: u64) -> u32 {
    let mut h = (src as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    dst_side.start + (h % dst_side.len() as u64) as u32
}

fn gap(rng: &mut impl Rng, c: &SyntheticConfig) -> f64 {
    let short = 0.1 * c.mean_gap;
    let p = c.burst_probability;
    let long = if p < 1.0 {
        (c.mean_gap - p * short) / (1.0 - p)
    } else {
        short
    };
    let mean = if rng.random_bool(p) { short } else { long };
    let u: f64 = rng.random();
    -mean * (1.0 - u).ln()
}

fn prefix_sum(time: &mut [f64]) {
    let mut acc = 0.0;
    for t in time {
        acc += *t;
        *t = acc;
    }
}

fn random_features(rows: usize, dim: usize, seed: u64, tag: u64) -> Option<Features> {
    if dim == 0 {
        return None;
    }
    let mut data = vec![0f32; rows * dim];
    data.par_chunks_mut(CHUNK * dim)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut rng = chunk_rng(seed, tag, c);
            for v in chunk {
                *v = rng.random_range(-1.0f32..1.0);
            }
        });
    Features::new(data, dim)
}

/// Drops nodes that take part in no event, keeping id order (users stay before items).
fn compact(
    mut src: Vec<u32>,
    mut dst: Vec<u32>,
    time: Vec<f64>,
    label: Vec<f32>,
    edge_feat: Option<Features>,
    node_feat: Option<Features>,
    c: &SyntheticConfig,
) -> EventStream {
    let mut occurs = vec![false; c.nodes];
    for (&s, &d) in src.iter().zip(&dst) {
        occurs[s as usize] = true;
        occurs[d as usize] = true;
    }
    let kept: Vec<usize> = (0..c.nodes).filter(|&u| occurs[u]).collect();
    let mut new_id = vec![u32::MAX; c.nodes];
    for (new, &old) in kept.iter().enumerate() {
        new_id[old] = new as u32;
    }
    src.par_iter_mut().for_each(|s| *s = new_id[*s as usize]);
    dst.par_iter_mut().for_each(|d| *d = new_id[*d as usize]);
    let users = c.users.map(|u| kept.partition_point(|&k| k < u));
    let node_feat = node_feat.map(|f| f.gather(kept.iter().copied()));
    let bipartite = users.is_some() || sides_disjoint(&src, &dst, kept.len());
    let ids = NodeIds::new((0..kept.len() as u64).collect(), users);
    EventStream {
        src,
        dst,
        time,
        label: Some(label),
        ext_roll: None,
        edge_feat,
        node_feat,
        ids,
        bipartite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(seed: u64) -> SyntheticConfig {
        SyntheticConfig {
            events: 200_000,
            nodes: 5_000,
            edge_feat_dim: 3,
            node_feat_dim: 2,
            seed,
            ..Default::default()
        }
    }

    #[test]
    fn snapshot_streams_have_n_yearly_timestamps_in_seconds() {
        let s = generate(&SyntheticConfig {
            snapshots: Some(14),
            ..small(2)
        })
        .unwrap();
        let mut distinct: Vec<f64> = s.time().to_vec();
        distinct.dedup();
        let want: Vec<f64> = (0..14).map(|k| k as f64 * YEAR).collect();
        assert_eq!(distinct, want);
        assert_eq!(s.time_resolution(0..s.len()), YEAR);
        // Otherwise the same stream: snapshots only re-time it.
        let plain = generate(&small(2)).unwrap();
        assert_eq!((s.src(), s.dst()), (plain.src(), plain.dst()));
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a = generate(&small(1)).unwrap();
        assert_eq!(a, generate(&small(1)).unwrap());
        assert_ne!(a.src(), generate(&small(2)).unwrap().src());
    }

    #[test]
    fn stream_is_sorted_compact_and_heavy_tailed() {
        let s = generate(&small(3)).unwrap();
        assert_eq!(s.len(), 200_000);
        assert!(s.time().windows(2).all(|w| w[0] <= w[1]));
        let mut degree = vec![0usize; s.num_nodes()];
        for (&a, &b) in s.src().iter().zip(s.dst()) {
            degree[a as usize] += 1;
            degree[b as usize] += 1;
            assert_ne!(a, b);
        }
        assert!(degree.iter().all(|&d| d > 0), "every kept node takes part");
        degree.sort_unstable_by(|a, b| b.cmp(a));
        let top1pct: usize = degree[..s.num_nodes() / 100].iter().sum();
        assert!(
            top1pct * 5 > 2 * s.len(),
            "top 1% of nodes hold > 20% of endpoints"
        );
        let mean_gap = s.time()[s.len() - 1] / s.len() as f64;
        assert!((mean_gap - 10.0).abs() < 0.5, "mean gap {mean_gap}");
        assert_eq!(s.edge_features().unwrap().rows(), s.len());
        assert_eq!(s.node_features().unwrap().rows(), s.num_nodes());
    }

    #[test]
    fn gaps_are_bursty() {
        // Coefficient of variation of exponential gaps is 1; the mixture's is larger.
        let s = generate(&small(4)).unwrap();
        let gaps: Vec<f64> = s.time().windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(var.sqrt() / mean > 1.5);
    }

    #[test]
    fn bipartite_streams_keep_users_first() {
        let cfg = SyntheticConfig {
            users: Some(800),
            ..small(5)
        };
        let s = generate(&cfg).unwrap();
        let users = s.node_ids().users().unwrap() as u32;
        assert!(s.is_bipartite());
        assert!(s.src().iter().all(|&u| u < users));
        assert!(s.dst().iter().all(|&i| i >= users));
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = SyntheticConfig {
            repeat_probability: 1.5,
            ..Default::default()
        };
        assert!(generate(&bad).is_err());
        let bad = SyntheticConfig {
            users: Some(1_000),
            ..Default::default()
        };
        assert!(generate(&bad).is_err());
    }
}
