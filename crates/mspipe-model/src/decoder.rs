//! Decoders on node embeddings.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Configuration of a [`LinkPredictor`].
#[derive(Config, Debug)]
pub struct LinkPredictorConfig {
    /// Embedding width.
    pub dim: usize,
}

/// logit(src, dst) = w·relu(W_s h_src + W_d h_dst) + b (TGL's edge predictor).
#[derive(Module, Debug)]
pub struct LinkPredictor {
    src: Linear,
    dst: Linear,
    out: Linear,
}

impl LinkPredictorConfig {
    /// Builds the decoder on `device`.
    pub fn init(&self, device: &Device) -> LinkPredictor {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        LinkPredictor {
            src: lin(self.dim, self.dim),
            dst: lin(self.dim, self.dim),
            out: lin(self.dim, 1),
        }
    }
}

impl LinkPredictor {
    /// `[P, dim]` × `[P, dim]` → `[P]` logits.
    pub fn forward(&self, h_src: Tensor<2>, h_dst: Tensor<2>) -> Tensor<1> {
        let h = relu(self.src.forward(h_src) + self.dst.forward(h_dst));
        self.out.forward(h).squeeze_dim(1)
    }
}

/// Configuration of a [`NodeClassifier`].
#[derive(Config, Debug)]
pub struct NodeClassifierConfig {
    /// Embedding width.
    pub dim: usize,
    /// Hidden width.
    #[config(default = 80)]
    pub hidden: usize,
}

/// Dynamic node classification head: logit = MLP(h) (TGN's decoder for state-change labels).
#[derive(Module, Debug)]
pub struct NodeClassifier {
    hidden: Linear,
    out: Linear,
}

impl NodeClassifierConfig {
    /// Builds the head on `device`.
    pub fn init(&self, device: &Device) -> NodeClassifier {
        NodeClassifier {
            hidden: LinearConfig::new(self.dim, self.hidden).init(device),
            out: LinearConfig::new(self.hidden, 1).init(device),
        }
    }
}

impl NodeClassifier {
    /// `[N, dim]` → `[N]` logits.
    pub fn forward(&self, h: Tensor<2>) -> Tensor<1> {
        self.out
            .forward(relu(self.hidden.forward(h)))
            .squeeze_dim(1)
    }
}
