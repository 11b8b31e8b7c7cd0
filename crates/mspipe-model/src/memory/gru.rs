//! GRU memory updater (TGN), with `torch.nn.GRUCell`'s equations:
//! r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, tanh};

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
    /// `x`: `[N, input]`, `h`: `[N, hidden]` → `[N, hidden]`.
    pub fn forward(&self, x: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let d = h.dims()[1];
        let gi = self.input.forward(x);
        let gh = self.hidden.forward(h.clone());
        let part = |t: &Tensor<2>, i: usize| t.clone().narrow(1, i * d, d);
        let r = sigmoid(part(&gi, 0) + part(&gh, 0));
        let z = sigmoid(part(&gi, 1) + part(&gh, 1));
        let n = tanh(part(&gi, 2) + r * part(&gh, 2));
        (z.clone().neg() + 1.0) * n + z * h
    }
}
