//! Negative edges for link prediction, as DyGLib defines them:
//! - `random`: the positive's source with a destination drawn uniformly from the stream's
//!   destination nodes (for user–item graphs, items only); training draws only from the
//!   destinations of training events ([`NegativeSampler::for_training`], TGN's
//!   `train_rand_sampler`), so nodes that first appear later never leak into training;
//! - `historical`: half of the negatives are edges seen before the batch but not in it (hard
//!   negatives: "did this old pair interact again now?"), the rest random;
//! - `inductive`: half are edges seen before the batch that never occur in training, the rest random.
//!
//! Draws are keyed by `(seed, key, first event of the batch)`, not by call order, so evaluation
//! scores every epoch and every run on the same negatives.

use mspipe_data::EventStream;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustc_hash::FxHashSet;

/// Which negatives (`random`, `historical` or `inductive` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NegativeStrategy {
    /// Any destination, uniformly.
    #[default]
    Random,
    /// Edges that occurred before the batch, as DyGLib draws them.
    Historical,
    /// Edges never seen in training, as DyGLib draws them.
    Inductive,
}

/// `per_positive` negative edges for each positive of a batch, row-major `[positives × K]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Negatives {
    /// Source of each negative edge.
    pub src: Vec<u32>,
    /// Destination of each negative edge.
    pub dst: Vec<u32>,
    /// Negatives per positive (K).
    pub per_positive: usize,
}

/// Unique edges in order of first occurrence, with the event index of that occurrence.
#[derive(Debug, Clone, Default)]
struct EdgeHistory {
    edges: Vec<(u32, u32)>,
    first_at: Vec<usize>,
}

impl EdgeHistory {
    /// Edges first seen strictly before event `b`.
    fn before(&self, b: usize) -> &[(u32, u32)] {
        &self.edges[..self.first_at.partition_point(|&i| i < b)]
    }
}

/// Draws negatives for batches of a stream.
#[derive(Debug, Clone)]
pub struct NegativeSampler {
    strategy: NegativeStrategy,
    seed: u64,
    candidates: Vec<u32>,
    history: EdgeHistory,
}

impl NegativeSampler {
    /// A sampler over `stream`; `is_train(i)` tells which events are training events (what
    /// `inductive` must avoid).
    pub fn new(
        strategy: NegativeStrategy,
        stream: &EventStream,
        is_train: impl Fn(usize) -> bool,
        seed: u64,
    ) -> Self {
        let history = match strategy {
            NegativeStrategy::Random => EdgeHistory::default(),
            NegativeStrategy::Historical => first_occurrences(stream),
            NegativeStrategy::Inductive => {
                let trained: FxHashSet<(u32, u32)> = (0..stream.len())
                    .filter(|&i| is_train(i))
                    .map(|i| (stream.src()[i], stream.dst()[i]))
                    .collect();
                let all = first_occurrences(stream);
                let keep: Vec<usize> = (0..all.edges.len())
                    .filter(|&j| !trained.contains(&all.edges[j]))
                    .collect();
                EdgeHistory {
                    edges: keep.iter().map(|&j| all.edges[j]).collect(),
                    first_at: keep.iter().map(|&j| all.first_at[j]).collect(),
                }
            }
        };
        NegativeSampler {
            strategy,
            seed,
            candidates: stream.destination_nodes(),
            history,
        }
    }

    /// Random negatives for training: destinations drawn only from those of the training events
    /// `is_train(i)` (TGN's `train_rand_sampler`, MSPipe's `DstRandEdgeSampler` over the training
    /// events), never a node the training period has not seen.
    pub fn for_training(stream: &EventStream, is_train: impl Fn(usize) -> bool, seed: u64) -> Self {
        Self::random(stream.destination_nodes_of(is_train), seed)
    }

    /// Random negatives over `candidates` (sorted destination nodes), drawn as [`Self::new`]'s
    /// with the same `seed`: what a server that holds only the candidate list draws.
    pub fn random(candidates: Vec<u32>, seed: u64) -> Self {
        NegativeSampler {
            strategy: NegativeStrategy::Random,
            seed,
            candidates,
            history: EdgeHistory::default(),
        }
    }

    /// Adds `node` to the destinations random negatives are drawn from (a destination that first
    /// appears in a stream being served). Later draws range over the longer list, so they differ
    /// from what the same keys drew before.
    pub fn add_candidate(&mut self, node: u32) {
        self.candidates.push(node);
    }

    /// The destinations random negatives are drawn from.
    pub fn candidates(&self) -> &[u32] {
        &self.candidates
    }

    /// Negatives for the events `batch` (indices into `stream`, in time order; training batches
    /// skip masked events): `per_positive` for each. `key` separates draws that must differ
    /// (training epochs) from those that must repeat (evaluation: pass the same key every time).
    pub fn sample(
        &self,
        stream: &EventStream,
        batch: &[usize],
        per_positive: usize,
        key: u64,
        out: &mut Negatives,
    ) {
        let first = batch.first().copied().unwrap_or(0);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(key);
        rng.set_word_pos((first as u128) << 24);
        let slots = batch.len() * per_positive;
        out.per_positive = per_positive;
        out.src.clear();
        out.dst.clear();
        for s in 0..slots {
            let positive = batch[s / per_positive.max(1)];
            out.src.push(stream.src()[positive]);
            let d = self.candidates[rng.random_range(0..self.candidates.len())];
            out.dst.push(d);
        }
        if self.strategy == NegativeStrategy::Random || slots == 0 {
            return;
        }
        let in_batch: FxHashSet<(u32, u32)> = batch
            .iter()
            .map(|&i| (stream.src()[i], stream.dst()[i]))
            .collect();
        let past = self.history.before(first);
        let picks = distinct_outside(past, &in_batch, slots / 2, &mut rng);
        // Odd slots take the historical edges, so every positive's K negatives mix both kinds.
        for (n, &(s, d)) in picks.iter().enumerate() {
            out.src[2 * n + 1] = s;
            out.dst[2 * n + 1] = d;
        }
    }
}

fn first_occurrences(stream: &EventStream) -> EdgeHistory {
    let mut seen: FxHashSet<(u32, u32)> = FxHashSet::default();
    let mut h = EdgeHistory::default();
    for i in 0..stream.len() {
        let e = (stream.src()[i], stream.dst()[i]);
        if seen.insert(e) {
            h.edges.push(e);
            h.first_at.push(i);
        }
    }
    h
}

/// Up to `want` distinct edges of `pool` that are not in `exclude`, uniformly without replacement.
fn distinct_outside(
    pool: &[(u32, u32)],
    exclude: &FxHashSet<(u32, u32)>,
    want: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<(u32, u32)> {
    if pool.len() > 4 * (want + exclude.len()) {
        // Large pool: rejection sampling touches O(want) entries.
        let mut taken = FxHashSet::default();
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            let e = pool[rng.random_range(0..pool.len())];
            if !exclude.contains(&e) && taken.insert(e) {
                out.push(e);
            }
        }
        return out;
    }
    let allowed: Vec<(u32, u32)> = pool
        .iter()
        .copied()
        .filter(|e| !exclude.contains(e))
        .collect();
    let n = want.min(allowed.len());
    rand::seq::index::sample(rng, allowed.len(), n)
        .into_iter()
        .map(|i| allowed[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspipe_data::synthetic::{SyntheticConfig, generate};

    fn range(r: std::ops::Range<usize>) -> Vec<usize> {
        r.collect()
    }

    fn stream() -> EventStream {
        generate(&SyntheticConfig {
            events: 4_000,
            nodes: 300,
            users: Some(200),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn random_negatives_keep_the_source_and_draw_items_only() {
        let s = stream();
        let sampler = NegativeSampler::new(NegativeStrategy::Random, &s, |_| true, 3);
        let mut out = Negatives::default();
        sampler.sample(&s, &range(1_000..1_200), 5, 0, &mut out);
        assert_eq!(out.dst.len(), 1_000);
        let users = s.node_ids().users().unwrap() as u32;
        for (j, (&a, &b)) in out.src.iter().zip(&out.dst).enumerate() {
            assert_eq!(a, s.src()[1_000 + j / 5]);
            assert!(b >= users, "destinations are items");
        }
        // A server holding only the candidate list draws the same negatives.
        let mut served = NegativeSampler::random(sampler.candidates().to_vec(), 3);
        let mut again = Negatives::default();
        served.sample(&s, &range(1_000..1_200), 5, 0, &mut again);
        assert_eq!(again, out);
        served.add_candidate(7);
        assert_eq!(served.candidates().last(), Some(&7));
    }

    #[test]
    fn training_negatives_never_name_a_node_first_seen_after_training() {
        // Node 9 is a destination only in the last event (the test period); node 8 only in a
        // training event that `is_train` masks (a hidden node's).
        let src = vec![0, 1, 2, 0, 1, 2, 0];
        let dst = vec![5, 6, 7, 8, 5, 6, 9];
        let time = (0..7).map(f64::from).collect();
        let s = EventStream::from_edges(src, dst, time, 10).unwrap();
        let is_train = |i: usize| i < 5 && i != 3;
        let sampler = NegativeSampler::for_training(&s, is_train, 1);
        let mut drawn = FxHashSet::default();
        let mut out = Negatives::default();
        for key in 0..200 {
            sampler.sample(&s, &[0, 1, 2, 4], 5, key, &mut out);
            drawn.extend(out.dst.iter().copied());
        }
        assert_eq!(drawn, FxHashSet::from_iter([5, 6, 7]));
        // Evaluation's sampler draws from every destination of the stream.
        let eval = NegativeSampler::new(NegativeStrategy::Random, &s, is_train, 1);
        let mut all = FxHashSet::default();
        for key in 0..200 {
            eval.sample(&s, &[5, 6], 5, key, &mut out);
            all.extend(out.dst.iter().copied());
        }
        assert_eq!(all, FxHashSet::from_iter([5, 6, 7, 8, 9]));
    }

    #[test]
    fn same_key_same_negatives_other_key_other_negatives() {
        let s = stream();
        let sampler = NegativeSampler::new(NegativeStrategy::Historical, &s, |_| true, 3);
        let (mut a, mut b, mut c) = Default::default();
        sampler.sample(&s, &range(2_000..2_300), 1, 7, &mut a);
        sampler.sample(&s, &range(0..600), 1, 7, &mut b); // another batch in between changes nothing
        sampler.sample(&s, &range(2_000..2_300), 1, 7, &mut b);
        sampler.sample(&s, &range(2_000..2_300), 1, 8, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn historical_negatives_are_past_edges_outside_the_batch() {
        let s = stream();
        let sampler = NegativeSampler::new(NegativeStrategy::Historical, &s, |_| true, 3);
        let batch = 3_000..3_200;
        let mut out = Negatives::default();
        sampler.sample(&s, &range(batch.clone()), 2, 0, &mut out);
        let past: FxHashSet<(u32, u32)> =
            (0..batch.start).map(|i| (s.src()[i], s.dst()[i])).collect();
        let now: FxHashSet<(u32, u32)> = batch.map(|i| (s.src()[i], s.dst()[i])).collect();
        let mut historical = FxHashSet::default();
        for j in (1..out.dst.len()).step_by(2) {
            let e = (out.src[j], out.dst[j]);
            assert!(past.contains(&e) && !now.contains(&e), "slot {j}: {e:?}");
            assert!(historical.insert(e), "historical negatives are distinct");
        }
        assert_eq!(historical.len(), 200);
    }

    #[test]
    fn inductive_negatives_never_occur_in_training() {
        let s = stream();
        let train_end = 2_500;
        let sampler = NegativeSampler::new(NegativeStrategy::Inductive, &s, |i| i < train_end, 3);
        let mut out = Negatives::default();
        sampler.sample(&s, &range(3_500..3_600), 1, 0, &mut out);
        let trained: FxHashSet<(u32, u32)> =
            (0..train_end).map(|i| (s.src()[i], s.dst()[i])).collect();
        let past: FxHashSet<(u32, u32)> = (0..3_500).map(|i| (s.src()[i], s.dst()[i])).collect();
        let mut count = 0;
        for j in (1..out.dst.len()).step_by(2) {
            let e = (out.src[j], out.dst[j]);
            if past.contains(&e) && !trained.contains(&e) {
                count += 1;
            }
        }
        assert_eq!(
            count, 50,
            "every odd slot holds an unseen-in-training past edge"
        );
    }
}
