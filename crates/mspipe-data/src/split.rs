//! Train/validation/test splits: chronological by timestamp quantiles (TGN, DyGLib) or from TGL's
//! `ext_roll`, with TGN's inductive protocol that hides a seeded set of nodes from training so
//! validation and test can report scores on nodes the model has never seen.

use std::ops::Range;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{DataError, EventStream, Result};

/// Parameters of a split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitConfig {
    /// Share of the time range (as a timestamp quantile) held out for validation.
    pub val_fraction: f64,
    /// Share held out for test.
    pub test_fraction: f64,
    /// Nodes hidden from training, as a share of all nodes (TGN: 0.1); 0 disables the protocol.
    pub new_node_fraction: f64,
    /// Seed of the choice of hidden nodes.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            val_fraction: 0.15,
            test_fraction: 0.15,
            new_node_fraction: 0.1,
            seed: 0,
        }
    }
}

/// Event ranges of the three parts of a time-sorted stream and the node sets of the inductive
/// protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Events of the training period (some are masked out, see [`Split::is_train_event`]).
    pub train: Range<usize>,
    /// Validation events.
    pub val: Range<usize>,
    /// Test events.
    pub test: Range<usize>,
    hidden: Vec<bool>,
    new_node: Vec<bool>,
}

impl Split {
    /// TGN's split: the validation and test cuts are the `1 - val - test` and `1 - test` quantiles
    /// of the timestamps (NumPy's linear interpolation); events at a cut belong to the earlier part.
    pub fn chronological(stream: &EventStream, config: &SplitConfig) -> Result<Split> {
        let (v, t) = (config.val_fraction, config.test_fraction);
        if !(0.0..1.0).contains(&v) || !(0.0..1.0).contains(&t) || v + t >= 1.0 {
            return Err(DataError::Usage(format!(
                "split fractions val={v} test={t} must be in [0, 1) and sum below 1"
            )));
        }
        let times = stream.time();
        let val_cut = quantile(times, 1.0 - v - t);
        let test_cut = quantile(times, 1.0 - t);
        let train_end = times.partition_point(|&x| x <= val_cut);
        let val_end = times.partition_point(|&x| x <= test_cut);
        Ok(Self::with_ranges(stream, train_end, val_end, config))
    }

    /// TGL's split from the per-event `ext_roll` tags (0 train, 1 val, 2 test), which must be
    /// chronological: all 0s, then all 1s, then all 2s.
    pub fn from_ext_roll(stream: &EventStream, config: &SplitConfig) -> Result<Split> {
        let roll = stream
            .ext_roll()
            .ok_or_else(|| DataError::Usage("the stream has no ext_roll column".into()))?;
        if let Some(i) = roll.windows(2).position(|w| w[1] < w[0]) {
            return Err(DataError::Usage(format!(
                "ext_roll goes back from {} to {} at event {}: the split is not chronological",
                roll[i],
                roll[i + 1],
                i + 1
            )));
        }
        let train_end = roll.partition_point(|&r| r == 0);
        let val_end = roll.partition_point(|&r| r <= 1);
        Ok(Self::with_ranges(stream, train_end, val_end, config))
    }

    fn with_ranges(
        stream: &EventStream,
        train_end: usize,
        val_end: usize,
        config: &SplitConfig,
    ) -> Split {
        let n = stream.num_nodes();
        let (src, dst) = (stream.src(), stream.dst());
        let hidden = hidden_nodes(stream, train_end, config);
        let mut in_train = vec![false; n];
        for i in 0..train_end {
            let (s, d) = (src[i] as usize, dst[i] as usize);
            if !hidden[s] && !hidden[d] {
                in_train[s] = true;
                in_train[d] = true;
            }
        }
        let mut occurs = vec![false; n];
        for (&s, &d) in src.iter().zip(dst) {
            occurs[s as usize] = true;
            occurs[d as usize] = true;
        }
        let new_node = (0..n).map(|u| occurs[u] && !in_train[u]).collect();
        Split {
            train: 0..train_end,
            val: train_end..val_end,
            test: val_end..stream.len(),
            hidden,
            new_node,
        }
    }

    /// Whether event `i` is trained on: in the training period and touching no hidden node.
    pub fn is_train_event(&self, stream: &EventStream, i: usize) -> bool {
        self.train.contains(&i)
            && !self.hidden[stream.src()[i] as usize]
            && !self.hidden[stream.dst()[i] as usize]
    }

    /// Indices of the events trained on, in time order.
    pub fn train_events(&self, stream: &EventStream) -> Vec<usize> {
        self.train
            .clone()
            .filter(|&i| self.is_train_event(stream, i))
            .collect()
    }

    /// Whether node `u` was hidden from training by the inductive protocol.
    pub fn is_hidden(&self, u: u32) -> bool {
        self.hidden[u as usize]
    }

    /// Whether node `u` takes part in no training event (hidden, or first seen after training).
    pub fn is_new_node(&self, u: u32) -> bool {
        self.new_node[u as usize]
    }

    /// Whether event `i` touches a new node: the events of the inductive ("new node") metrics.
    pub fn involves_new_node(&self, stream: &EventStream, i: usize) -> bool {
        self.is_new_node(stream.src()[i]) || self.is_new_node(stream.dst()[i])
    }
}

/// TGN: among nodes that occur after the training period, hide `fraction × (all nodes that occur)`
/// chosen uniformly with the seed.
fn hidden_nodes(stream: &EventStream, train_end: usize, config: &SplitConfig) -> Vec<bool> {
    let n = stream.num_nodes();
    let mut hidden = vec![false; n];
    let mut later = vec![false; n];
    let mut occurs = vec![false; n];
    for (i, (&s, &d)) in stream.src().iter().zip(stream.dst()).enumerate() {
        occurs[s as usize] = true;
        occurs[d as usize] = true;
        if i >= train_end {
            later[s as usize] = true;
            later[d as usize] = true;
        }
    }
    let candidates: Vec<usize> = (0..n).filter(|&u| later[u]).collect();
    let total = occurs.iter().filter(|&&o| o).count();
    let k = ((config.new_node_fraction * total as f64) as usize).min(candidates.len());
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    for pick in rand::seq::index::sample(&mut rng, candidates.len(), k) {
        hidden[candidates[pick]] = true;
    }
    hidden
}

/// NumPy's default (`linear`) quantile of sorted values, including its two-sided lerp.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let (a, b, t) = (sorted[lo], sorted[hi], pos - lo as f64);
    if t >= 0.5 {
        b - (b - a) * (1.0 - t)
    } else {
        a + (b - a) * t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(src: &[u32], dst: &[u32], time: &[f64], nodes: usize) -> EventStream {
        EventStream::from_edges(src.to_vec(), dst.to_vec(), time.to_vec(), nodes).unwrap()
    }

    #[test]
    fn quantile_matches_numpy() {
        // Virtual index q·(n−1): 0.7 → 2.1 → 2 + 0.1·(10 − 2) = 2.8; 0.85 → 2.55 → 6.4.
        let v = [0.0, 1.0, 2.0, 10.0];
        assert!((quantile(&v, 0.7) - 2.8).abs() < 1e-12);
        assert!((quantile(&v, 0.85) - 6.4).abs() < 1e-12);
        assert_eq!(quantile(&v, 1.0), 10.0);
        assert_eq!(quantile(&v, 0.0), 0.0);
    }

    #[test]
    fn chronological_cuts_by_quantile_and_keeps_ties_together() {
        // 20 events at t = 0..19 with a tie: cuts at quantiles 0.7 (13.3) and 0.85 (16.15).
        let time: Vec<f64> = (0..20).map(|i| i as f64).collect();
        let src: Vec<u32> = (0..20).map(|i| i % 4).collect();
        let dst: Vec<u32> = (0..20).map(|i| 4 + i % 3).collect();
        let s = stream(&src, &dst, &time, 7);
        let cfg = SplitConfig {
            new_node_fraction: 0.0,
            ..Default::default()
        };
        let split = Split::chronological(&s, &cfg).unwrap();
        assert_eq!(
            (split.train, split.val, split.test),
            (0..14, 14..17, 17..20)
        );

        let tied: Vec<f64> = (0..20)
            .map(|i| if i == 14 { 13.0 } else { i as f64 })
            .collect();
        let mut tied_sorted = tied.clone();
        tied_sorted.sort_by(f64::total_cmp);
        let s = stream(&src, &dst, &tied_sorted, 7);
        let split = Split::chronological(&s, &cfg).unwrap();
        // quantile 0.7 of the tied times is 13.0 + 0.3 * 0 → both t = 13 events are in train.
        assert_eq!(split.train, 0..15);
    }

    #[test]
    fn inductive_protocol_hides_only_later_nodes_and_masks_their_events() {
        // Nodes 0..10; node 9 only appears in the last events.
        let mut src = vec![];
        let mut dst = vec![];
        for i in 0..100u32 {
            src.push(i % 9);
            dst.push(if i >= 90 { 9 } else { (i + 1) % 9 });
        }
        let time: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let s = stream(&src, &dst, &time, 10);
        let cfg = SplitConfig {
            new_node_fraction: 0.3,
            seed: 7,
            ..Default::default()
        };
        let split = Split::chronological(&s, &cfg).unwrap();
        let hidden: Vec<u32> = (0..10).filter(|&u| split.is_hidden(u)).collect();
        assert_eq!(hidden.len(), 3); // 30% of 10 nodes
        for &u in &hidden {
            assert!((split.train.end..100).any(|i| src[i] == u || dst[i] == u));
        }
        for i in split.train_events(&s) {
            assert!(!split.is_hidden(src[i]) && !split.is_hidden(dst[i]));
        }
        assert!(split.is_new_node(9));
        for &u in &hidden {
            assert!(split.is_new_node(u));
        }
        // Same seed, same nodes; another seed, (here) other nodes.
        assert_eq!(Split::chronological(&s, &cfg).unwrap(), split);
    }

    #[test]
    fn ext_roll_must_be_chronological() {
        let mut s = stream(&[0, 1, 0], &[1, 0, 1], &[0.0, 1.0, 2.0], 2);
        s.ext_roll = Some(vec![0, 2, 1]);
        assert!(Split::from_ext_roll(&s, &SplitConfig::default()).is_err());
        s.ext_roll = Some(vec![0, 1, 2]);
        let split = Split::from_ext_roll(&s, &SplitConfig::default()).unwrap();
        assert_eq!((split.train, split.val, split.test), (0..1, 1..2, 2..3));
    }
}
