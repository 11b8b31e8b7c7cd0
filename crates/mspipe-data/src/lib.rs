//! # mspipe-data
//!
//! Temporal interaction streams for memory-based temporal GNNs: an [`EventStream`] of time-sorted
//! events `(src, dst, t)` over dense node ids with optional edge/node features and labels; readers
//! and writers for the formats of the field ([`Format`]); chronological and TGL splits with TGN's
//! inductive protocol ([`Split`]); a seeded [`synthetic`] generator; and a binary cache that makes
//! a second load of a parsed dataset fast ([`load`]).
//!
//! It has no deep-learning dependency: the sampler and model crates build on it.
//!
//! ```
//! use mspipe_data::{format, synthetic, Split, SplitConfig, Format, ReadOptions};
//!
//! # fn main() -> Result<(), mspipe_data::DataError> {
//! // Generate a small stream, write it as a SNAP edge list, read it back.
//! let stream = synthetic::generate(&synthetic::SyntheticConfig {
//!     events: 1_000,
//!     nodes: 50,
//!     ..Default::default()
//! })?;
//! let dir = std::env::temp_dir().join("mspipe-data-doc");
//! std::fs::create_dir_all(&dir).expect("temp dir");
//! let path = dir.join("edges.txt");
//! format::write(&stream, Format::Snap, &path)?;
//! let (again, report) = format::read(&path, &ReadOptions::default())?;
//! assert_eq!(again.src(), stream.src());
//! assert_eq!(report.inversions, 0);
//!
//! // TGN's 70/15/15 chronological split.
//! let split = Split::chronological(&again, &SplitConfig::default())?;
//! assert_eq!(split.test.end, again.len());
//! # Ok(())
//! # }
//! ```

mod builder;
pub mod cache;
mod error;
mod event_stream;
mod features;
pub mod format;
mod load;
mod node_ids;
pub mod npy;
pub mod registry;
mod split;
pub mod synthetic;

pub use builder::{LoadReport, TimeOrder};
pub use error::{DataError, Problem, Result};
pub use event_stream::{ColumnsError, EventStream};
pub use features::Features;
pub use format::{ColumnNames, Format, ReadOptions};
pub use load::{LoadOptions, Loaded, default_cache_dir, load};
pub use node_ids::NodeIds;
pub use split::{Split, SplitConfig, quantile};
