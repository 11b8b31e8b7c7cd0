//! Multi-hop temporal neighbour sampling: for each root `(node, t)`, `k` of the node's events
//! before `t` — strictly earlier, or at `t` itself in an earlier batch (index below the batch's
//! first event, see [`TemporalGraph::before`]) — either the most recent ones or drawn uniformly;
//! hop `l + 1` samples around hop `l`'s neighbours at their event times.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::unique::UniqueNodes;
use crate::{Hop, SampledBatch, SamplerError, TemporalGraph};

/// How the `k` events of a root are chosen (`recent` or `uniform` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The `k` latest events before the root's time (TGN's and TGL's default).
    #[default]
    Recent,
    /// `k` events drawn uniformly with replacement from those before the root's time, then put in
    /// time order (TGAT's sampler); seeded per batch, hop and root, so thread count does not matter.
    Uniform,
}

/// Configuration of a [`NeighborSampler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Neighbours per root per hop.
    pub k: usize,
    /// Number of hops (one per attention layer).
    pub layers: usize,
    /// Recent or uniform.
    pub strategy: Strategy,
    /// Seed of uniform sampling.
    pub seed: u64,
}

impl Default for NeighborConfig {
    fn default() -> Self {
        NeighborConfig {
            k: 10,
            layers: 1,
            strategy: Strategy::Recent,
            seed: 0,
        }
    }
}

/// Samples batches into reused buffers: in the steady state a batch allocates nothing.
#[derive(Debug, Clone)]
pub struct NeighborSampler {
    config: NeighborConfig,
    unique: UniqueNodes,
}

/// Roots per rayon task: large enough that scheduling costs little next to the sampling.
const ROOTS_PER_TASK: usize = 128;

impl NeighborSampler {
    /// A sampler; `k` and `layers` must be at least 1.
    pub fn new(config: NeighborConfig) -> Result<Self, SamplerError> {
        if config.k == 0 || config.layers == 0 {
            return Err(SamplerError::Config(format!(
                "k and layers must be at least 1, got k={} layers={}",
                config.k, config.layers
            )));
        }
        Ok(NeighborSampler {
            config,
            unique: UniqueNodes::default(),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &NeighborConfig {
        &self.config
    }

    /// Samples around `roots` at `times` into `out`; `first_event` is the stream index of the
    /// batch's first event (events at a root's own time count only below it). `batch_key` (e.g.
    /// the batch's first event index, plus the epoch) makes uniform draws reproducible for that
    /// batch.
    pub fn sample(
        &mut self,
        graph: &TemporalGraph,
        roots: &[u32],
        times: &[f64],
        first_event: u32,
        batch_key: u64,
        out: &mut SampledBatch,
    ) -> Result<(), SamplerError> {
        if roots.len() != times.len() {
            return Err(SamplerError::RootTimes {
                roots: roots.len(),
                times: times.len(),
            });
        }
        let n = graph.num_nodes();
        if let Some(&node) = roots.iter().find(|&&u| u as usize >= n) {
            return Err(SamplerError::UnknownNode { node, num_nodes: n });
        }
        let k = self.config.k;
        out.k = k;
        out.roots.clear();
        out.roots.extend_from_slice(roots);
        out.root_times.clear();
        out.root_times.extend_from_slice(times);
        out.hops.resize_with(self.config.layers, Hop::default);
        let key = (batch_key, first_event);
        for layer in 0..self.config.layers {
            let (done, rest) = out.hops.split_at_mut(layer);
            let hop = &mut rest[0];
            match done.last() {
                None => self.sample_hop(graph, roots, times, None, key, layer, hop),
                Some(prev) => {
                    let valid = Some(&prev.mask[..]);
                    self.sample_hop(graph, &prev.nbr, &prev.ts, valid, key, layer, hop)
                }
            }
        }
        self.index_nodes(n, out);
        Ok(())
    }

    /// One hop; `(batch_key, first_event)` as in [`NeighborSampler::sample`].
    #[allow(clippy::too_many_arguments)]
    fn sample_hop(
        &self,
        graph: &TemporalGraph,
        roots: &[u32],
        times: &[f64],
        valid: Option<&[bool]>,
        (batch_key, first_event): (u64, u32),
        layer: usize,
        hop: &mut Hop,
    ) {
        let k = self.config.k;
        hop.reset(roots.len() * k);
        let rng = (self.config.strategy == Strategy::Uniform).then(|| {
            let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
            rng.set_stream(batch_key);
            rng
        });
        hop.nbr
            .par_chunks_mut(k)
            .zip(hop.eid.par_chunks_mut(k))
            .zip(hop.ts.par_chunks_mut(k))
            .zip(hop.dt.par_chunks_mut(k))
            .zip(hop.mask.par_chunks_mut(k))
            .enumerate()
            .with_min_len(ROOTS_PER_TASK)
            .for_each(|(r, ((((nbr, eid), ts), dt), mask))| {
                if valid.is_some_and(|v| !v[r]) {
                    return;
                }
                let (t, events) = (times[r], graph.before(roots[r], times[r], first_event));
                let mut put = |slot: usize, j: usize| {
                    let e = events.get(j);
                    nbr[slot] = e.nbr;
                    eid[slot] = e.eid;
                    ts[slot] = e.ts;
                    dt[slot] = (t - e.ts) as f32;
                    mask[slot] = true;
                };
                let c = events.len();
                match &rng {
                    None => {
                        for (slot, j) in (c.saturating_sub(k)..c).enumerate() {
                            put(slot, j);
                        }
                    }
                    Some(base) if c > 0 => {
                        let mut rng = base.clone();
                        rng.set_word_pos(((layer as u128) << 44 | r as u128) << 20);
                        let mut picks = [0usize; 64];
                        let mut heap;
                        let picks: &mut [usize] = if k <= picks.len() {
                            &mut picks[..k]
                        } else {
                            heap = vec![0usize; k];
                            &mut heap
                        };
                        for p in picks.iter_mut() {
                            *p = rng.random_range(0..c);
                        }
                        picks.sort_unstable();
                        for (slot, &j) in picks.iter().enumerate() {
                            put(slot, j);
                        }
                    }
                    Some(_) => {}
                }
            });
    }

    /// Fills `unique_nodes`, `root_index` and every hop's `index`.
    fn index_nodes(&mut self, num_nodes: usize, out: &mut SampledBatch) {
        let unique = &mut out.unique_nodes;
        self.unique.begin(num_nodes, unique);
        out.root_index.clear();
        for &u in &out.roots {
            out.root_index.push(self.unique.index(u, unique));
        }
        for hop in &mut out.hops {
            for s in 0..hop.len() {
                if hop.mask[s] {
                    hop.index[s] = self.unique.index(hop.nbr[s], unique);
                }
            }
        }
    }
}
