//! mspipe: memory-based temporal GNN training with the MSPipe pipeline. This facade re-exports
//! the workspace crates under short names.

pub use mspipe_data as data;
pub use mspipe_model as model;
pub use mspipe_sampler as sampler;
pub use mspipe_scheduler as scheduler;
pub use mspipe_step as step;
pub use mspipe_train as train;
