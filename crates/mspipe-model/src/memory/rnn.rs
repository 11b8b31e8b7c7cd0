//! Vanilla RNN memory updater (JODIE), `torch.nn.RNNCell` with tanh:
//! h' = tanh(W_ih x + b_ih + W_hh h + b_hh).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::linear;

/// Configuration of an [`RnnCell`].
#[derive(Config, Debug)]
pub struct RnnCellConfig {
    /// Input width.
    pub input: usize,
    /// Hidden (memory) width.
    pub hidden: usize,
}

/// An Elman RNN cell.
#[derive(Module, Debug)]
pub struct RnnCell {
    /// Input weights, `[input, hidden]`.
    pub input: Linear,
    /// Hidden weights, `[hidden, hidden]`.
    pub hidden: Linear,
}

impl RnnCellConfig {
    /// Builds the cell on `device`.
    pub fn init(&self, device: &Device) -> RnnCell {
        RnnCell {
            input: LinearConfig::new(self.input, self.hidden).init(device),
            hidden: LinearConfig::new(self.hidden, self.hidden).init(device),
        }
    }
}

impl RnnCell {
    /// The input `x = [a ‖ b]` in two parts (`[N, ca]`, `[N, cb]`, `ca + cb = input`; see
    /// [`linear::of_columns`]), `h`: `[N, hidden]` → `[N, hidden]`.
    pub fn forward(&self, a: Tensor<2>, b: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
        let (gi, gh) = (
            linear::of_columns(&self.input, a, b),
            linear::forward(&self.hidden, h),
        );
        mspipe_kernels::rnn_gates(gi, gh)
    }
}
