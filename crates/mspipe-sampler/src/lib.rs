//! # mspipe-sampler
//!
//! The temporal graph and samplers of memory-based TGNN training, with no deep-learning
//! dependency:
//! - [`TemporalGraph`]: T-CSR (per node, incident events sorted by time) built from an
//!   [`mspipe_data::EventStream`] in O(E), with append-only streaming insertion; a query at time
//!   `t` for a batch starting at event `i` sees events before `t`, and those at `t` before `i`
//!   (earlier batches), never the batch itself or later.
//! - [`NeighborSampler`]: `recent` or `uniform` multi-hop sampling into flat, reused buffers
//!   ([`SampledBatch`]) ready to become tensors, parallel over roots with rayon.
//! - [`NegativeSampler`]: DyGLib's `random`, `historical` and `inductive` negative edges, fixed by
//!   seed and batch so evaluation negatives are the same in every epoch and run.
//!
//! ```
//! use mspipe_data::synthetic::{generate, SyntheticConfig};
//! use mspipe_sampler::{Direction, NeighborConfig, NeighborSampler, SampledBatch, TemporalGraph};
//!
//! let stream = generate(&SyntheticConfig { events: 5_000, nodes: 200, ..Default::default() })
//!     .expect("valid config");
//! let graph = TemporalGraph::from_stream(&stream, Direction::Undirected);
//! let mut sampler = NeighborSampler::new(NeighborConfig { k: 10, layers: 2, ..Default::default() })
//!     .expect("valid config");
//!
//! // Roots: the endpoints of events 4000..4600, at their event times.
//! let batch = 4_000..4_600;
//! let roots: Vec<u32> = stream.src()[batch.clone()].iter().chain(&stream.dst()[batch.clone()]).copied().collect();
//! let times: Vec<f64> = [&stream.time()[batch.clone()], &stream.time()[batch]].concat();
//! let mut out = SampledBatch::default();
//! sampler.sample(&graph, &roots, &times, 4_000, 0, &mut out).expect("roots are graph nodes");
//!
//! assert_eq!(out.hops[0].len(), 1_200 * 10);
//! assert_eq!(out.hops[1].len(), 1_200 * 100);
//! let hop = &out.hops[0];
//! for (s, &ts) in hop.ts.iter().enumerate() {
//!     // Earlier, or at the root's time in an earlier batch: never the batch itself or later.
//!     let earlier = ts < times[s / 10] || (ts == times[s / 10] && hop.eid[s] < 4_000);
//!     assert!(!hop.mask[s] || earlier, "no future event is sampled");
//! }
//! ```

mod batch;
mod error;
mod graph;
mod negative;
mod neighbor;
mod unique;

pub use batch::{Hop, SampledBatch};
pub use error::SamplerError;
pub use graph::{Before, Direction, Incident, TemporalGraph};
pub use negative::{NegativeSampler, NegativeStrategy, Negatives};
pub use neighbor::{NeighborConfig, NeighborSampler, Strategy};
