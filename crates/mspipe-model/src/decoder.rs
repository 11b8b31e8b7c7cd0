//! Decoders on node embeddings.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::linear;

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
        let h = relu(linear::forward(&self.src, h_src) + linear::forward(&self.dst, h_dst));
        linear::forward(&self.out, h).squeeze_dim(1)
    }

    /// `[B, dim]` × `[C, dim]` → `[B, C]` logits of every pair: each side goes through its
    /// linear map once (not once per pair), then the pairs' hidden rows are made a block of
    /// sources at a time, so memory stays at `PAIR_BLOCK` (2¹⁶) rows of `dim`.
    pub fn all_pairs(&self, h_src: Tensor<2>, h_dst: Tensor<2>) -> Tensor<2> {
        let a = linear::forward(&self.src, h_src);
        let b = linear::forward(&self.dst, h_dst);
        let ([n, dim], c) = (a.dims(), b.dims()[0]);
        let b = b.reshape([1, c, dim]);
        let block = (PAIR_BLOCK / c.max(1)).max(1);
        let rows: Vec<Tensor<2>> = (0..n)
            .step_by(block)
            .map(|s| {
                let e = (s + block).min(n);
                let h = relu(a.clone().slice(s..e).reshape([e - s, 1, dim]) + b.clone());
                linear::rows(&self.out, h).reshape([e - s, c])
            })
            .collect();
        Tensor::cat(rows, 0)
    }
}

/// Pair rows [`LinkPredictor::all_pairs`] makes at once.
const PAIR_BLOCK: usize = 1 << 16;

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
        linear::forward(&self.out, relu(linear::forward(&self.hidden, h))).squeeze_dim(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::to_vec;

    #[test]
    fn all_pairs_scores_every_pair_as_forward_does() {
        let _draws = crate::draws::tests::GENERATOR.lock();
        let device = Device::flex();
        let link = LinkPredictorConfig::new(6).init(&device);
        // Inputs of both signs, so that the ReLU cuts some pairs' units and not others'.
        let rows = |n: usize, phase: f32| {
            let v: Vec<f32> = (0..n * 6).map(|i| (i as f32 * 0.7 + phase).sin()).collect();
            Tensor::<1>::from_floats(v.as_slice(), &device).reshape([n, 6])
        };
        let (src, dst) = (rows(3, 0.0), rows(4, 1.3));
        let all = to_vec(link.all_pairs(src.clone(), dst.clone()).reshape([12]));
        for i in 0..3 {
            for j in 0..4 {
                let one = link.forward(src.clone().slice(i..i + 1), dst.clone().slice(j..j + 1));
                let want = to_vec(one)[0];
                assert!((all[i * 4 + j] - want).abs() < 1e-5, "({i}, {j})");
            }
        }
    }
}
