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
}

/// φ(Δt) = cos(Δt·w + b) with `w_i = 10^(−9·i/(d−1))` initially (frequencies from 1 down to 1e-9,
/// so both seconds and months are resolved) and `b = 0`.
#[derive(Module, Debug)]
pub struct TimeEncoding {
    w: Param<Tensor<1>>,
    b: Param<Tensor<1>>,
}

impl TimeEncodingConfig {
    /// Builds the encoding on `device`.
    pub fn init(&self, device: &Device) -> TimeEncoding {
        let d = self.dim;
        let w: Vec<f32> = (0..d)
            .map(|i| {
                let exponent = if d > 1 {
                    9.0 * i as f64 / (d - 1) as f64
                } else {
                    0.0
                };
                (1.0 / 10f64.powf(exponent)) as f32
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
