//! The optimizer training uses: Adam as burn computes it, one operation per parameter.

use burn::config::Config;
use burn::optim::{AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer};
use burn::prelude::*;
use mspipe_model::kernels::{AdamMoments, AdamScalars, adam_step};

/// [`Adam`]'s settings, with burn's `AdamConfig`'s defaults.
#[derive(Config, Debug)]
pub struct AdamConfig {
    /// β₁, the decay of the gradient's running mean.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// β₂, the decay of the squared gradient's running mean.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// ε, added to the root of the second moment.
    #[config(default = 1e-5)]
    pub epsilon: f32,
}

impl AdamConfig {
    /// A module optimizer stepping every parameter with [`Adam`].
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(Adam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
        })
    }
}

/// burn's Adam (no weight decay, no AMSGrad) with each parameter's update one operation
/// ([`mspipe_model::kernels::adam_step`]) instead of burn's thirteen, which ran one after another
/// on the training thread while the pool's other threads waited. The arithmetic and the state are
/// burn's: the same parameters to the bit, and checkpoints of either load into the other.
#[derive(Debug, Clone)]
pub struct Adam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl Optimizer for Adam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (time, moments) = match state {
            Some(AdamState { momentum: m }) => (
                m.time + 1,
                Some(AdamMoments {
                    first: m.moment_1,
                    second: m.moment_2,
                }),
            ),
            None => (1, None),
        };
        let steps = i32::try_from(time).expect("fewer than 2³¹ optimizer steps");
        let scalars = AdamScalars::new(self.beta_1, self.beta_2, self.epsilon, steps, lr);
        let (tensor, moments) = adam_step(tensor, grad, moments, scalars);
        let momentum = AdaptiveMomentumState::new(time, moments.first, moments.second);
        (tensor, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.momentum = state.momentum.to_device(device);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;

    /// Five steps of a small layer with this Adam and with burn's, from the same start and the
    /// same inputs: the same parameters to the bit after each; then this Adam carries on from a
    /// record of burn's state as burn's own does.
    #[test]
    fn steps_as_burns_adam_to_the_bit() {
        let device = Device::flex().autodiff();
        let start: Linear = LinearConfig::new(40, 30).init(&device);
        let mut ours = (start.clone(), AdamConfig::new().init());
        let mut burns = (start, burn::optim::AdamConfig::new().init());
        let step = |(model, optim): &mut (Linear, ModuleOptimizer), i: usize| {
            let x = Tensor::<2>::ones([3, 40], &device).mul_scalar(0.1 * i as f32);
            let loss = model.forward(x).powi_scalar(2).sum();
            let grads = GradientsParams::from_grads(loss.backward(), model);
            *model = optim.step(1e-2, model.clone(), grads);
        };
        let bits = |m: &Linear| -> Vec<u32> {
            let w = m.weight.val().into_data();
            w.iter::<f32>().map(f32::to_bits).collect()
        };
        for i in 1..=5 {
            step(&mut ours, i);
            step(&mut burns, i);
            assert_eq!(bits(&ours.0), bits(&burns.0), "step {i}");
        }
        let mut resumed = (
            burns.0.clone(),
            AdamConfig::new().init().load_record(burns.1.to_record()),
        );
        step(&mut resumed, 6);
        step(&mut burns, 6);
        assert_eq!(
            bits(&resumed.0),
            bits(&burns.0),
            "resumed from burn's state"
        );
    }
}
