#![doc = include_str!("../README.md")]

mod adam;
pub mod batch;
mod device;
mod error;
mod gradient_mean;
mod host;
mod mailing;
mod memory;
mod shared;
pub mod stages;
mod stale;
mod trainer;

pub use adam::{Adam, AdamConfig};
pub use batch::{
    Embed, Fetched, Forward, Inference, Prepared, RootRows, SampleContext, Sampled, Scored, Update,
    Write,
};
pub use device::{DeviceFetched, DeviceRows, DeviceStore};
pub use error::StepError;
pub use gradient_mean::GradientMean;
pub use host::{HostFetched, HostRows, HostWrite};
pub use mailing::Mailing;
pub use memory::{MemoryShape, NodeMemory, Updated, UpdatedRows};
pub use mspipe_model::memory::MemoryStore;
pub use stages::{TrainStages, batch_events};
pub use stale::StaleFix;
pub use trainer::{Handover, Replica, StepConfig, Trainer};
