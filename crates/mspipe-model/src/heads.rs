//! The heads of an attention layer and the two dropouts around them, shared by the temporal
//! attention (TGN, TGAT) and the mailbox attention (APAN) and set once for a whole model.

use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

/// Heads and dropout of an attention layer (TGL's `att_head`, `dropout` and `att_dropout`).
#[derive(Config, Debug, PartialEq)]
pub struct AttentionHeadsConfig {
    /// Attention heads (must divide the layer's width).
    #[config(default = 2)]
    pub heads: usize,
    /// Dropout on the attention output and the layer's hidden units after it while training
    /// (TGL's `dropout`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Dropout on each head's attention weights while training (TGL's `att_dropout`, where
    /// TGN's `dropout` acts): a dropped neighbour still counts in the softmax's denominator. Off
    /// by default: TGN's 0.1 there dropped a stream of yearly snapshots, whose batches learn from
    /// neighbours at their own timestamp, below EdgeBank (`benches/report/below-chance.md`).
    #[config(default = 0.0)]
    pub att_dropout: f64,
}

impl AttentionHeadsConfig {
    /// Checks that the heads split a layer `width` wide evenly.
    ///
    /// # Panics
    /// If they do not.
    pub fn assert_divides(&self, width: usize) {
        assert!(
            self.heads > 0 && width.is_multiple_of(self.heads),
            "{} heads do not divide the width {width}",
            self.heads
        );
    }

    /// The output dropout and the attention-weight dropout.
    ///
    /// # Panics
    /// If a probability is not in `[0, 1)`.
    pub fn dropouts(&self) -> (Dropout, Dropout) {
        (
            DropoutConfig::new(self.dropout).init(),
            DropoutConfig::new(self.att_dropout).init(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_must_split_the_width_evenly() {
        let heads = AttentionHeadsConfig::new().with_heads(3);
        heads.assert_divides(6);
        let uneven = std::panic::catch_unwind(|| heads.assert_divides(8));
        assert!(uneven.is_err(), "3 heads cannot split 8 columns");
        let none = std::panic::catch_unwind(|| {
            AttentionHeadsConfig::new().with_heads(0).assert_divides(8)
        });
        assert!(none.is_err(), "no heads split nothing");
    }
}
