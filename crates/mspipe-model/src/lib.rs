#![doc = include_str!("../README.md")]

mod decoder;
pub mod draws;
pub mod embedding;
mod heads;
mod input;
pub mod linear;
pub mod memory;
mod model;
pub mod norm;
pub mod tensors;
mod time_encoding;

pub use decoder::{LinkPredictor, LinkPredictorConfig, NodeClassifier, NodeClassifierConfig};
pub use heads::AttentionHeadsConfig;
pub use input::{EmbedInput, HopInput, HostHop, MemoryInput, SlotTimes};
pub use model::{
    Delivery, EmbeddingKind, MailAges, MailClock, MemoryModel, MemoryModelConfig, MessageKind,
    UpdaterKind,
};
/// The fused kernels the model runs on (device node memory, attention, GRU, time encoding), so a
/// user of the model needs no second dependency to reach them.
pub use mspipe_kernels as kernels;
pub use time_encoding::{TimeEncoding, TimeEncodingConfig};
