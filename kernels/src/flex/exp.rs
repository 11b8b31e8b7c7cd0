//! exp, sigmoid and tanh of `f32` as straight-line arithmetic (no libm call), so loops over them
//! vectorise: libm's scalar `expm1f`/`tanhf` were 7% of a TGN step on flex, in the GRU's gates.
//!
//! exp: `x = k·ln 2 + r` with |r| ≤ ln 2 / 2 (Cody–Waite), a degree-7 Taylor polynomial for e^r
//! (truncation below 1e-8) and 2^k built from the exponent bits. Relative error within a few f32
//! ulps; the argument is clamped to [−87, 88] (no overflow, no subnormals).

use std::f32::consts::LOG2_E;

/// 1.5·2²³: adding and subtracting it rounds an f32 of magnitude < 2²² to an integer.
const ROUND: f32 = 12_582_912.0;
/// ln 2 to 12 significant bits, and the rest.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^x.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2_E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let p = 1.0 / 120.0 + r * p;
    let p = 1.0 / 24.0 + r * p;
    let p = 1.0 / 6.0 + r * p;
    let p = 0.5 + r * p;
    let p = 1.0 + r * (1.0 + r * p);
    p * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// 1 / (1 + e^−x).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x) = 2·σ(2x) − 1, within 2e-7 absolute.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    2.0 * sigmoid(2.0 * x) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_libm() {
        for i in -200_000..=200_000 {
            let x = i as f32 * 5e-4; // −100 … 100
            let e = f64::from(x).exp();
            if (-87.0..=88.0).contains(&x) {
                let rel = (f64::from(exp(x)) - e).abs() / e;
                assert!(rel < 5e-7, "exp({x}) = {} vs {e}", exp(x));
            }
            let s = 1.0 / (1.0 + (-f64::from(x)).exp());
            assert!((f64::from(sigmoid(x)) - s).abs() < 2e-7, "sigmoid({x})");
            let t = f64::from(x).tanh();
            assert!(
                (f64::from(tanh(x)) - t).abs() < 4e-7,
                "tanh({x}) {} vs {t}",
                tanh(x)
            );
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }
}
