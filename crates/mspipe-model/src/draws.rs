//! Where dropout's masks come from. Inside [`with_step_draws`] (every training step runs in one),
//! from a counter-based generator keyed by the step's seed: element `i` of the step's `c`-th mask
//! is SplitMix64's `i`-th output from a key mixed from (seed, c). A mask is thus drawn in parallel,
//! is the same whichever thread runs the step, whatever runs beside it and however many threads
//! draw it, and a resumed run draws it again from the step's seed. (Flex's own generator is one
//! per process and draws one element at a time, on one thread: concurrent steps would interleave
//! their draws, and a large mask would hold up the step.) Outside a step — a model used on its
//! own — burn's `Dropout`, on the backend's generator.

use std::cell::Cell;
use std::mem::MaybeUninit;

use burn::nn::Dropout;
use burn::prelude::*;
use rayon::prelude::*;

thread_local! {
    /// The running step's seed and how many masks it has drawn.
    static STEP: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Mask elements per rayon task: enough that scheduling costs little next to the hashing.
const CHUNK: usize = 1 << 14;

/// Runs `f` with the model's dropout drawing on this thread from a generator seeded `seed`.
pub fn with_step_draws<R>(seed: u64, f: impl FnOnce() -> R) -> R {
    /// Clears the generator however `f` ends, so no later step draws from it.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            STEP.with(|s| s.set(None));
        }
    }
    STEP.with(|s| s.set(Some((seed, 0))));
    let _clear = Clear;
    f()
}

/// `layer` on `x`: inside [`with_step_draws`], `x` times a mask of 0 and `1 / (1 − p)` from the
/// step's generator; elsewhere burn's dropout.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let active = layer.training.is_enabled() && x.device().is_autodiff() && layer.prob > 0.0;
    let key = STEP.with(|s| {
        let (seed, drawn) = s.get().filter(|_| active)?;
        s.set(Some((seed, drawn + 1)));
        Some(splitmix(seed ^ splitmix(drawn)))
    });
    match key {
        Some(key) => {
            let shape = x.shape();
            let mask = mask(key, shape.num_elements(), 1.0 - layer.prob);
            let mask = Tensor::from_data(TensorData::new(mask, shape), &x.device());
            x * mask
        }
        None => layer.forward(x),
    }
}

/// `n` multipliers: element `i` is `1 / keep` when the top 32 bits of the `i`-th SplitMix64
/// output from `key` fall below `keep · 2³²` (probability `keep`), else 0.
fn mask(key: u64, n: usize, keep: f64) -> Vec<f32> {
    let threshold = (keep * 4_294_967_296.0) as u64;
    let kept = (1.0 / keep) as f32;
    let mut out = Vec::with_capacity(n);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| drawn(key, (c * CHUNK) as u64, chunk, threshold, kept));
    // SAFETY: the chunks cover the first `n` elements and `drawn` writes each.
    unsafe { out.set_len(n) };
    out
}

/// Writes `chunk[j]` (mask element `first + j`): `kept` where its draw falls below `threshold`,
/// else 0 (every element, so the mask needs no zeroing pass first). Built for the CPU's vector
/// extensions too: with 64-bit lane products (AVX-512) the hashing runs several lanes at once,
/// and integer hashing gives the same draws on every path.
#[multiversion::multiversion(targets = "simd")]
fn drawn(key: u64, first: u64, chunk: &mut [MaybeUninit<f32>], threshold: u64, kept: f32) {
    for (j, m) in chunk.iter_mut().enumerate() {
        let state = key.wrapping_add((first + j as u64).wrapping_mul(GOLDEN));
        m.write(if splitmix(state) >> 32 < threshold {
            kept
        } else {
            0.0
        });
    }
}

/// SplitMix64's increment (2⁶⁴ / φ).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output for `state` (before its increment): Stafford's mix13 finaliser.
#[inline(always)]
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    /// Held by the crate's tests that draw from flex's one generator (parameter initialisation
    /// included), so that none draws between another's seeding and its draws.
    pub(crate) static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Two successive masks of a step seeded `seed` on `[64, 256]` ones, p = 0.25.
    fn masked(seed: u64, device: &Device) -> [Vec<f32>; 2] {
        let layer = DropoutConfig::new(0.25).init();
        with_step_draws(seed, || {
            [0, 1].map(|_| {
                let x = Tensor::<2>::ones([64, 256], device);
                dropout(&layer, x).into_data().iter::<f32>().collect()
            })
        })
    }

    #[test]
    fn masks_keep_each_element_with_probability_one_minus_p_scaled() {
        let device = Device::flex().autodiff();
        let [first, second] = masked(42, &device);
        for m in [&first, &second] {
            assert!(
                m.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75),
                "{:?}",
                &m[..8]
            );
            // 16,384 draws at 0.75: σ ≈ 55 kept.
            let kept = m.iter().filter(|&&v| v > 0.0).count();
            assert!((12_000..=12_576).contains(&kept), "{kept} of 16384 kept");
            // Mean of the multipliers ≈ 1: dropout keeps the expectation.
            let mean = m.iter().sum::<f32>() / m.len() as f32;
            assert!((mean - 1.0).abs() < 0.02, "{mean}");
        }
        // Successive draws of a step differ; the same seed draws them again, another seed not.
        assert_ne!(first, second);
        assert_eq!(masked(42, &device), [first.clone(), second]);
        assert_ne!(masked(7, &device)[0], first);
        assert!(
            STEP.with(|s| s.get().is_none()),
            "the generator outlives its step"
        );
    }

    #[test]
    fn masks_do_not_depend_on_threads_or_on_steps_beside_them() {
        let device = Device::flex().autodiff();
        let alone = masked(3, &device);
        let pooled = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            pool.install(|| masked(3, &device))
        };
        assert_eq!(pooled(1), alone);
        assert_eq!(pooled(3), alone);
        let together: Vec<[Vec<f32>; 2]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4).map(|_| s.spawn(|| masked(3, &device))).collect();
            hs.into_iter().map(|h| h.join().expect("step")).collect()
        });
        assert!(together.iter().all(|m| *m == alone));
    }

    /// The mask, drawn in parallel chunks on the CPU's vector path, is its definition element by
    /// element: SplitMix64's `i`-th output from the key against `keep · 2³²` — across chunk
    /// boundaries and a tail shorter than any vector.
    #[test]
    fn mask_is_splitmix_element_by_element() {
        let (key, keep, n) = (0x0123_4567_89ab_cdef_u64, 0.9, 3 * CHUNK + 13);
        let threshold = (keep * 4_294_967_296.0) as u64;
        let want: Vec<f32> = (0..n as u64)
            .map(|i| {
                let kept = splitmix(key.wrapping_add(i.wrapping_mul(GOLDEN))) >> 32 < threshold;
                if kept { (1.0 / keep) as f32 } else { 0.0 }
            })
            .collect();
        assert_eq!(mask(key, n, keep), want);
    }

    #[test]
    fn outside_a_step_or_in_evaluation_dropout_is_burns() {
        let device = Device::flex().autodiff();
        let x = Tensor::<2>::ones([4, 8], &device);
        // Evaluation (no autodiff): the identity, with or without a step.
        let layer = DropoutConfig::new(0.5).init();
        let eval = with_step_draws(1, || dropout(&layer, x.clone().inner()));
        assert_eq!(eval.into_data(), x.clone().inner().into_data());
        // p = 0 draws nothing, so the step's later masks do not move.
        let none = DropoutConfig::new(0.0).init();
        let [a, b] = with_step_draws(5, || {
            let _ = dropout(&none, x.clone());
            [0, 1].map(|_| dropout(&layer, x.clone()).into_data())
        });
        let [c, d] = with_step_draws(5, || [0, 1].map(|_| dropout(&layer, x.clone()).into_data()));
        assert_eq!((a, b), (c, d));
    }
}
