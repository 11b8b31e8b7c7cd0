//! Adam's update of one parameter (what burn's `Adam` optimizer computes per parameter, without
//! weight decay or AMSGrad), as one operation on flex.

use burn::prelude::*;

use crate::reference;

/// The scalars of one Adam step, computed as burn's `Adam` computes them for step `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    /// β₁, the first moment's decay.
    pub beta_1: f32,
    /// β₂, the second moment's decay.
    pub beta_2: f32,
    /// √(1 − β₂ᵗ) / (1 − β₁ᵗ): both bias corrections, applied to the first moment.
    pub moment_scale: f32,
    /// ε·√(1 − β₂ᵗ), added to √v.
    pub epsilon: f32,
    /// The learning rate.
    pub lr: f32,
}

impl AdamScalars {
    /// The scalars of step `time` (1 for a parameter's first step) with decays `beta_1`,
    /// `beta_2`, `epsilon` and learning rate `lr`.
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32, time: i32, lr: f64) -> Self {
        let correction_2 = (1.0 - beta_2.powi(time)).sqrt();
        AdamScalars {
            beta_1,
            beta_2,
            moment_scale: correction_2 / (1.0 - beta_1.powi(time)),
            epsilon: epsilon * correction_2,
            // As burn scales a tensor by an `f64` learning rate.
            lr: lr as f32,
        }
    }
}

/// A parameter's first and second moments.
#[derive(Debug, Clone)]
pub struct AdamMoments<const D: usize> {
    /// m, the running mean of the gradient.
    pub first: Tensor<D>,
    /// v, the running mean of its square.
    pub second: Tensor<D>,
}

/// The parameter and its moments after one Adam step with gradient `grad` from `moments` (`None`
/// on the parameter's first step); see [`reference::adam_step`]. On flex one pass over the
/// elements, the same values to the bit.
///
/// # Shapes
/// `param`, `grad` and the moments share one shape.
pub fn adam_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<AdamMoments<D>>,
    scalars: AdamScalars,
) -> (Tensor<D>, AdamMoments<D>) {
    #[cfg(feature = "flex")]
    if crate::flex::adam::runs_on(&param.device()) {
        use crate::flex::adam::AdamBackend;
        use burn::backend::Dispatch;
        let (p, g) = (param.into_dispatch(), grad.into_dispatch());
        let (p, m, v) = match moments {
            Some(AdamMoments { first, second }) => {
                Dispatch::adam_step(p, g, first.into_dispatch(), second.into_dispatch(), scalars)
            }
            None => Dispatch::adam_first_step(p, g, scalars),
        };
        let first = Tensor::from_dispatch(m);
        let second = Tensor::from_dispatch(v);
        return (Tensor::from_dispatch(p), AdamMoments { first, second });
    }
    reference::adam_step(param, grad, moments, scalars)
}
