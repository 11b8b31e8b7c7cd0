//! TGAT's functional time encoding φ(Δt) = cos(Δt·w + b).

use burn::module::Param;
use burn::prelude::*;

/// Configuration of a [`TimeEncoding`].
#[derive(Config, Debug)]
pub struct TimeEncodingConfig {
    /// Output width.
    pub dim: usize,
    /// Keep `w` and `b` at their initial values (TGL's "fixed" encoding).
    #[config(default = false)]
    pub frozen: bool,
    /// The longest Δt the initial frequencies resolve, in the caller's time unit: they run from 1
    /// down to `1 / span`, log-spaced. TGN's 1e9 suits Δt in seconds; a span far beyond the
    /// data's leaves many dimensions at cos(0) = 1 for every Δt, and the weights reading those
    /// identical inputs all move together, one learning rate each per step, like a bias
    /// multiplied by their number (the memory then drifts from epoch to epoch; measured in
    /// `benches/report/below-chance.md`).
    #[config(default = 1e9)]
    pub span: f64,
}

/// φ(Δt) = cos(Δt·w + b) with `w_i = span^(−i/(d−1))` initially (frequencies from 1 down to
/// `1 / span`, see [`TimeEncodingConfig::span`]) and `b = 0`.
#[derive(Module, Debug)]
pub struct TimeEncoding {
    w: Param<Tensor<1>>,
    b: Param<Tensor<1>>,
}

impl TimeEncodingConfig {
    /// Builds the encoding on `device`.
    ///
    /// # Panics
    /// If `span` is not at least 1 and finite.
    pub fn init(&self, device: &Device) -> TimeEncoding {
        assert!(
            self.span >= 1.0 && self.span.is_finite(),
            "time-encoding span {} must be at least 1 and finite",
            self.span
        );
        let d = self.dim;
        let w: Vec<f32> = (0..d)
            .map(|i| {
                let fraction = if d > 1 {
                    i as f64 / (d - 1) as f64
                } else {
                    0.0
                };
                self.span.powf(-fraction) as f32
            })
            .collect();
        let w = Tensor::from_floats(w.as_slice(), device);
        let b = Tensor::zeros([d], device);
        let param = |t| Param::from_tensor(t).set_require_grad(!self.frozen);
        TimeEncoding {
            w: param(w),
            b: param(b),
        }
    }
}

impl TimeEncoding {
    /// Encodes `dt` of any shape `[..]` into `[.., dim]` (fused where the backend has it, see
    /// [`mspipe_kernels::time_encoding`]; Δt gets no gradient).
    pub fn forward<const D: usize, const O: usize>(&self, dt: Tensor<D>) -> Tensor<O> {
        let mut shape = dt.dims().to_vec();
        let flat = dt.reshape([shape.iter().product::<usize>()]);
        let phi = mspipe_kernels::time_encoding(flat, self.w.val(), self.b.val());
        shape.push(self.dim());
        phi.reshape(Shape::from(shape))
    }

    /// Current frequencies and phases, for inspection and references.
    pub fn parameters(&self) -> (Tensor<1>, Tensor<1>) {
        (self.w.val(), self.b.val())
    }

    /// Output width.
    pub fn dim(&self) -> usize {
        self.w.val().dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::to_vec;

    fn frequencies(dim: usize, span: f64) -> Vec<f32> {
        let te = TimeEncodingConfig::new(dim)
            .with_span(span)
            .init(&Device::flex());
        to_vec(te.parameters().0)
    }

    /// Per dimension, max − min of cos(w·Δt) over Δt = 0, 1, …, `last` (b = 0 initially).
    fn spreads(w: &[f32], last: u32) -> Vec<f64> {
        w.iter()
            .map(|&w| {
                let v: Vec<f64> = (0..=last)
                    .map(|t| (f64::from(w) * f64::from(t)).cos())
                    .collect();
                v.iter().copied().fold(f64::MIN, f64::max)
                    - v.iter().copied().fold(f64::MAX, f64::min)
            })
            .collect()
    }

    #[test]
    fn frequencies_run_log_spaced_from_one_to_one_over_the_span() {
        // Hand-computed: 1e4^(−i/4) for i = 0..4.
        let w = frequencies(5, 1e4);
        for (got, want) in w.iter().zip([1.0, 0.1, 0.01, 1e-3, 1e-4]) {
            assert!((got / want - 1.0).abs() < 1e-6, "{w:?}");
        }
        // TGN's default: 1 down to 1e-9.
        let w = frequencies(10, 1e9);
        assert!((w[9] / 1e-9 - 1.0).abs() < 1e-6, "{w:?}");
        assert_eq!(frequencies(1, 50.0), vec![1.0]);
    }

    #[test]
    fn a_span_that_fits_the_data_leaves_no_dimension_constant() {
        // Δt of 14 yearly snapshots counted in years: 0..=13. With TGN's 1e9 span most
        // dimensions read cos(0) = 1 whatever Δt is; spanning the data, every one varies.
        let fitted = spreads(&frequencies(100, 13.0), 13);
        assert!(fitted.iter().all(|&s| s > 0.4), "{fitted:?}");
        let tgn = spreads(&frequencies(100, 1e9), 13);
        let constant = tgn.iter().filter(|&&s| s < 1e-2).count();
        assert!(constant > 70, "{constant} near-constant dimensions");
    }

    #[test]
    #[should_panic(expected = "must be at least 1")]
    fn a_span_below_one_is_refused() {
        frequencies(4, 0.5);
    }
}
