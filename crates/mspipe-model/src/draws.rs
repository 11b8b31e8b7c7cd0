//! Where dropout's masks come from. By default, from the backend's generator (burn's `Dropout`);
//! inside [`with_step_draws`], from a generator of the step's own on the calling thread. The flex
//! CPU backend has one generator for the whole process, so concurrent training steps (data-parallel
//! workers on one device) would interleave their draws and no run could be reproduced; a step's own
//! generator, seeded by the step, makes each step's masks the same whichever thread runs it and
//! whatever runs beside it. It is the same kind of generator flex seeds (`StdRng`), drawn the same
//! way, so a step seeded `s` draws the masks flex's generator seeded `s` would.

use std::cell::RefCell;

use burn::nn::Dropout;
use burn::prelude::*;
use burn::tensor::Distribution;
use rand::SeedableRng;
use rand::rngs::StdRng;

thread_local! {
    static STEP: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Runs `f` with the model's dropout drawing on this thread from a generator seeded `seed`.
pub fn with_step_draws<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    /// Clears the generator however `f` ends, so no later step draws from it.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            STEP.with(|s| s.borrow_mut().take());
        }
    }
    STEP.with(|s| *s.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
    let _clear = Clear;
    f()
}

/// `layer` on `x`: burn's dropout, with the mask drawn from the step's generator inside
/// [`with_step_draws`].
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let active = layer.training.is_enabled() && x.device().is_autodiff() && layer.prob > 0.0;
    let keep = 1.0 - layer.prob;
    let mask = STEP.with(|s| {
        let mut s = s.borrow_mut();
        let rng = s.as_mut().filter(|_| active)?;
        Some(TensorData::random::<f32, _, _>(
            x.shape(),
            Distribution::Bernoulli(keep),
            rng,
        ))
    });
    match mask {
        Some(mask) => {
            let mask = Tensor::from_data(mask, &x.device());
            x * mask * (1.0 / keep)
        }
        None => layer.forward(x),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    /// Held by the crate's tests that draw from flex's one generator (parameter initialisation
    /// included), so that none draws between another's seeding and its draws.
    pub(crate) static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn masked(device: &Device) -> Vec<f32> {
        let layer = DropoutConfig::new(0.5).init();
        let x = Tensor::<2>::ones([8, 16], device);
        dropout(&layer, x).into_data().iter::<f32>().collect()
    }

    #[test]
    fn a_steps_generator_draws_what_flex_seeded_alike_draws() {
        let _draws = GENERATOR.lock();
        let device = Device::flex().autodiff();
        device.seed(42);
        let from_flex = masked(&device);
        let from_step = with_step_draws(42, || masked(&device));
        assert_eq!(from_step, from_flex);
        assert!(from_step.contains(&0.0) && from_step.contains(&2.0));
        // Another seed, other masks; the generator is gone after the step.
        assert_ne!(with_step_draws(7, || masked(&device)), from_step);
        assert!(STEP.with(|s| s.borrow().is_none()));
    }

    #[test]
    fn concurrent_steps_draw_their_own_masks() {
        let device = Device::flex().autodiff();
        let alone = with_step_draws(3, || masked(&device));
        let together: Vec<Vec<f32>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| with_step_draws(3, || masked(&device))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(together.iter().all(|m| *m == alone));
    }
}
