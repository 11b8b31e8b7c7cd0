//! GRU memory updater (TGN), with `torch.nn.GRUCell`'s equations:
//! r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::linear;

/// Configuration of a [`GruCell`].
#[derive(Config, Debug)]
pub struct GruCellConfig {
    /// Input width.
    pub input: usize,
    /// Hidden (memory) width.
    pub hidden: usize,
}

/// A GRU cell; the three gates' weights are stacked `[r | z | n]` along the output dimension.
#[derive(Module, Debug)]
pub struct GruCell {
    /// Input weights, `[input, 3·hidden]`.
    pub input: Linear,
    /// Hidden weights, `[hidden, 3·hidden]`.
    pub hidden: Linear,
}

impl GruCellConfig {
    /// Builds the cell on `device`.
    pub fn init(&self, device: &Device) -> GruCell {
        GruCell {
            input: LinearConfig::new(self.input, 3 * self.hidden).init(device),
            hidden: LinearConfig::new(self.hidden, 3 * self.hidden).init(device),
        }
    }
}

impl GruCell {
    /// The input `x = [a ‖ b]` in two parts (`[N, ca]`, `[N, cb]`, `ca + cb = input`; see
    /// [`linear::of_columns`]), `h`: `[N, hidden]` → `[N, hidden]`. The two products are GEMMs;
    /// the gates are one fused pass where the backend has it ([`mspipe_kernels::gru_gates`]).
    pub fn forward(&self, a: Tensor<2>, b: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let gi = linear::of_columns(&self.input, a, b);
        let gh = linear::forward(&self.hidden, h.clone());
        mspipe_kernels::gru_gates(gi, gh, h)
    }
}
