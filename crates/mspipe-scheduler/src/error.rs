//! Errors of the scheduler crate.

use crate::Stage;

/// An error a stage returned, boxed so any error type can cross the stage threads.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a pipeline did not complete.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // every field is named in its variant's message
pub enum SchedulerError {
    /// A `--pipeline` value that is not a mode.
    #[error("pipeline mode `{0}` is not one of off, mspipe or fixed:K")]
    Mode(String),
    /// A stage failed; the other stages were stopped.
    #[error("{} stage of iteration {iteration} failed: {source}", stage.name())]
    Stage {
        stage: Stage,
        iteration: usize,
        source: BoxError,
    },
    /// The compute step of an iteration returned without handing over its memory update.
    #[error("compute of iteration {0} finished without emitting its memory update")]
    NoUpdate(usize),
    /// A stage thread panicked.
    #[error("the {} stage thread panicked", .0.name())]
    Panicked(Stage),
    /// A compute worker's thread panicked.
    #[error("compute worker {0} panicked")]
    WorkerPanicked(usize),
}
