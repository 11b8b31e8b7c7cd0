//! EdgeBank (Poursafaei et al., NeurIPS 2022) with unlimited memory: a pair scores 1 if it
//! occurred before, else 0. No training; scored on the same split, batches and negatives as the
//! learned models, so every run can be compared with the memorisation baseline in one command
//! (as DyGLib and TGB do).

use mspipe_data::EventStream;
use mspipe_sampler::{NegativeSampler, Negatives};
use rustc_hash::FxHashSet;

use crate::session::{EVAL_KEY, Scores};

/// The pairs `(src, dst)` seen so far, as stored (directed, as DyGLib's EdgeBank keys them).
#[derive(Debug, Clone, Default)]
pub struct EdgeBank {
    seen: FxHashSet<(u32, u32)>,
}

impl EdgeBank {
    /// Remembers the pairs of `events`.
    pub fn insert(&mut self, stream: &EventStream, events: &[usize]) {
        self.seen
            .extend(events.iter().map(|&i| (stream.src()[i], stream.dst()[i])));
    }

    /// 1 if `(src, dst)` was seen, else 0.
    pub fn score(&self, src: u32, dst: u32) -> f32 {
        if self.seen.contains(&(src, dst)) {
            1.0
        } else {
            0.0
        }
    }

    /// Scores `events` batch by batch against `per_positive` negatives each, drawn exactly as the
    /// learned models' evaluation draws them, remembering each batch after scoring it.
    pub fn evaluate(
        &mut self,
        stream: &EventStream,
        negatives: &NegativeSampler,
        events: &[usize],
        batch_size: usize,
        per_positive: usize,
        new_node: impl Fn(usize) -> bool,
    ) -> Scores {
        let mut scores = Scores::default();
        let mut neg = Negatives::default();
        for batch in events.chunks(batch_size) {
            negatives.sample(stream, batch, per_positive, EVAL_KEY, &mut neg);
            let pair = |&i: &usize| self.score(stream.src()[i], stream.dst()[i]);
            scores.pos.extend(batch.iter().map(pair));
            let negs = neg.src.iter().zip(&neg.dst);
            scores.neg.extend(negs.map(|(&s, &d)| self.score(s, d)));
            scores.new_node.extend(batch.iter().map(|&i| new_node(i)));
            scores.batch_len.push(batch.len());
            self.insert(stream, batch);
        }
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mspipe_sampler::NegativeStrategy;

    #[test]
    fn scores_only_pairs_seen_in_earlier_batches() {
        // Events: (0,3) (1,4) | (0,3) (2,4) | (1,4) (4,1).
        let src = vec![0, 1, 0, 2, 1, 4];
        let dst = vec![3, 4, 3, 4, 4, 1];
        let s = EventStream::from_edges(src, dst, (0..6).map(f64::from).collect(), 5).unwrap();
        let negatives = NegativeSampler::new(NegativeStrategy::Random, &s, |_| true, 0);
        let mut bank = EdgeBank::default();
        let scores = bank.evaluate(&s, &negatives, &[0, 1, 2, 3, 4, 5], 2, 1, |_| false);
        // Batch 1 has no history; (0,3) repeats in batch 2; (1,4) in batch 3; (4,1) is the
        // reverse of a seen pair, not the pair itself.
        assert_eq!(scores.pos, vec![0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(scores.batch_len, vec![2, 2, 2]);
        // A negative scores 1 exactly when its pair was seen before its batch.
        let mut seen = FxHashSet::default();
        for (b, chunk) in [0usize, 1, 2, 3, 4, 5].chunks(2).enumerate() {
            let mut neg = Negatives::default();
            negatives.sample(&s, chunk, 1, EVAL_KEY, &mut neg);
            for j in 0..chunk.len() {
                let want = seen.contains(&(neg.src[j], neg.dst[j]));
                assert_eq!(scores.neg[2 * b + j] == 1.0, want);
            }
            seen.extend(chunk.iter().map(|&i| (s.src()[i], s.dst()[i])));
        }
    }
}
