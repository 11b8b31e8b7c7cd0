//! # mspipe-train
//!
//! Training and evaluation of memory-based temporal GNNs end to end: configuration
//! ([`config`]), a run's state and its batch loops over [`mspipe_step`]'s stages, back to back
//! or pipelined by the scheduler ([`session::Session`]), the evaluation protocol and outputs
//! ([`run`]) with their records ([`record`]), metrics ([`metrics`]), and serving a trained run
//! on a live stream ([`serve`]). The `mspipe-train` binary is a thin command line over
//! [`run::train`], [`run::evaluate`] and [`serve::serve`].
//!
//! ```no_run
//! use mspipe_train::config::{resolve, ModelName};
//!
//! let config = resolve(ModelName::Tgn, None, &["train.epochs=1".into()]).expect("valid");
//! let summary = mspipe_train::run::train(&config, "runs/doc".as_ref(), mspipe_train::run::Existing::Replace).expect("trains");
//! println!("test AP {}", summary.test.ap);
//! ```

pub mod alloc;
pub mod classify;
pub mod config;
pub mod edgebank;
pub mod metrics;
pub mod plot;
pub mod pool;
pub mod record;
pub mod run;
pub mod serve;
pub mod session;
