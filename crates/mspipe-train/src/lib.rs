//! # mspipe-train
//!
//! Training and evaluation of memory-based temporal GNNs end to end: configuration
//! ([`config`]), node memory on the host or on the device ([`memory`]), a batch as MSPipe's five
//! stages ([`batch`]), run back to back or pipelined by the scheduler ([`pipeline`],
//! [`session::Session`]), the evaluation protocol and outputs ([`run`]) with their records
//! ([`record`]), and metrics ([`metrics`]). The `mspipe-train` binary is a thin command line over
//! [`run::train`].
//!
//! ```no_run
//! use mspipe_train::config::{resolve, ModelName};
//!
//! let config = resolve(ModelName::Tgn, None, &["train.epochs=1".into()]).expect("valid");
//! let summary = mspipe_train::run::train(&config, "runs/doc".as_ref(), mspipe_train::run::Existing::Replace).expect("trains");
//! println!("test AP {}", summary.test.ap);
//! ```

pub mod alloc;
pub mod batch;
pub mod classify;
pub mod config;
pub mod edgebank;
pub mod memory;
pub mod metrics;
pub mod pipeline;
pub mod plot;
pub mod record;
pub mod run;
pub mod session;
