//! Node embeddings computed from (updated) memories.

mod attention;
mod time_projection;

pub use attention::{Neighbors, TemporalAttention, TemporalAttentionConfig};
pub use time_projection::{TimeProjection, TimeProjectionConfig};
