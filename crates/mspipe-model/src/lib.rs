//! # mspipe-model
//!
//! burn modules of memory-based temporal graph networks and the TGN, JODIE and APAN models built
//! from them, written in burn 0.22's device-dispatch idiom (like `burn-nn`: modules hold
//! `Tensor<D>` and pick their backend from the [`Device`](burn::tensor::Device) they are built on,
//! so the same model runs on flex, wgpu or CUDA).
//!
//! Training semantics are TGL's: gather the batch's node memories and mailboxes
//! ([`memory::MemoryStore`]), update them with the (learned) updater
//! ([`MemoryModel::update_memory`]), embed the roots from the updated memories
//! ([`MemoryModel::embed`]), score links ([`MemoryModel::score`], [`MemoryModel::loss`]), then
//! write the detached memories and the batch's mails back to the store. Where node memory lives on
//! the device ([`mspipe_kernels::DeviceMemory`]), [`MemoryModel::fetch_memory`] reads it in one
//! fused pass and [`MemoryModel::update_fetched`] continues from there.
//!
//! ```
//! use burn::prelude::*;
//! use mspipe_model::{memory::MemoryStore, tensors, EmbedInput, MemoryInput, MemoryModelConfig};
//!
//! let device = Device::flex();
//! let config = MemoryModelConfig::jodie(0).with_memory_dim(8).with_time_dim(4);
//! let model = config.init(&device);
//! let store = MemoryStore::new(5, 8, config.mail_dim(), config.mailbox);
//!
//! // Nodes 1 and 3 interact: gather, update, embed, score.
//! let mut gathered = Default::default();
//! store.gather(&[1, 3], &mut gathered);
//! let memory = model.update_memory(MemoryInput::from_host(&gathered, 8, 1, &device));
//! let input = EmbedInput {
//!     root_index: tensors::indices(&[0, 1], &device),
//!     root_dt: tensors::floats(&[0.0, 0.0], [2], &device),
//!     hops: vec![],
//! };
//! let h = model.embed(memory, &input);
//! let logit = model.score(h, tensors::indices(&[0], &device), tensors::indices(&[1], &device));
//! assert_eq!(logit.dims(), [1]);
//! ```

pub mod attention;
mod decoder;
pub mod embedding;
mod input;
pub mod memory;
mod model;
pub mod tensors;
mod time_encoding;

pub use decoder::{LinkPredictor, LinkPredictorConfig, NodeClassifier, NodeClassifierConfig};
pub use input::{EmbedInput, HopInput, MemoryInput, SlotTimes};
pub use model::{
    Delivery, EmbeddingKind, MemoryModel, MemoryModelConfig, MessageKind, UpdaterKind,
};
/// The fused kernels the model runs on (device node memory, attention, GRU, time encoding), so a
/// user of the model needs no second dependency to reach them.
pub use mspipe_kernels as kernels;
pub use time_encoding::{TimeEncoding, TimeEncodingConfig};
