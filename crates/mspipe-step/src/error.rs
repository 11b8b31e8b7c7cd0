//! Errors of a training step.

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[allow(missing_docs)] // every field is named in its variant's message
pub enum StepError {
    /// The loss is NaN or infinite; the model was not stepped.
    #[error("loss became {loss} at epoch {epoch}, batch {b}: stopping (lower the learning rate?)")]
    NonFiniteLoss { loss: f64, epoch: usize, b: usize },
    /// Another worker's step failed while this one waited for the gradient exchange.
    #[error("stopped: another worker failed")]
    Aborted,
}
