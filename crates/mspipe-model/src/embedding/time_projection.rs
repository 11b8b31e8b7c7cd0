//! JODIE's embedding projection as TGL and MSPipe build it (`JODIETimeEmbedding`):
//! h = s ⊙ (1 + w·Δ + b), the memory drifted by the time since the node's last update, with Δ
//! that time as a fraction of the time elapsed since the stream began (see
//! [`crate::EmbedInput::root_dt`]).

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;

use crate::linear;

/// Configuration of a [`TimeProjection`].
#[derive(Config, Debug)]
pub struct TimeProjectionConfig {
    /// Memory width.
    pub dim: usize,
}

/// h = s ⊙ (1 + w·Δ + b), `w` and `b` drawn from N(0, 1) (JODIE's `NormalLinear`: a standard
/// deviation of 1/√fan-in, and the fan-in is 1).
#[derive(Module, Debug)]
pub struct TimeProjection {
    /// `[1, dim]`.
    pub w: Linear,
}

impl TimeProjectionConfig {
    /// Builds the projection on `device`.
    pub fn init(&self, device: &Device) -> TimeProjection {
        TimeProjection {
            w: LinearConfig::new(1, self.dim)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 1.0,
                })
                .init(device),
        }
    }
}

impl TimeProjection {
    /// # Shapes
    /// - `memory`: `[R, dim]`, `dt`: `[R]` (the normalised Δ);
    /// - output: `[R, dim]`.
    pub fn forward(&self, memory: Tensor<2>, dt: Tensor<1>) -> Tensor<2> {
        let drift = linear::forward(&self.w, dt.unsqueeze_dim(1));
        memory.clone() + memory * drift
    }
}
