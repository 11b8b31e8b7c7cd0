//! Node embeddings computed from (updated) memories.

mod attention;
mod time_projection;

pub use attention::{NeighborRows, Neighbors, TemporalAttention, TemporalAttentionConfig};
pub use time_projection::{TimeProjection, TimeProjectionConfig};
