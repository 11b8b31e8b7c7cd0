#![doc = include_str!("../README.md")]

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
