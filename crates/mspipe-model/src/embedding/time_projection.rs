//! JODIE's embedding projection: h = s ⊙ (1 + w·Δt), the memory drifted by the time since the
//! node's last update.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

/// Configuration of a [`TimeProjection`].
#[derive(Config, Debug)]
pub struct TimeProjectionConfig {
    /// Memory width.
    pub dim: usize,
}

/// h = s ⊙ (1 + w·Δt + b), `w`, `b` learned from zero (so it starts as the identity).
#[derive(Module, Debug)]
pub struct TimeProjection {
    w: Linear,
}

impl TimeProjectionConfig {
    /// Builds the projection on `device`.
    pub fn init(&self, device: &Device) -> TimeProjection {
        TimeProjection {
            w: LinearConfig::new(1, self.dim)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }
}

impl TimeProjection {
    /// `memory`: `[R, dim]`, `dt`: `[R]` (already scaled) → `[R, dim]`.
    pub fn forward(&self, memory: Tensor<2>, dt: Tensor<1>) -> Tensor<2> {
        let drift = self.w.forward(dt.unsqueeze_dim(1));
        memory.clone() + memory * drift
    }
}
