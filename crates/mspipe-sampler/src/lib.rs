#![doc = include_str!("../README.md")]

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
