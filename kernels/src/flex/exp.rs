//! exp, sigmoid and tanh of `f32` as straight-line arithmetic (no libm call), so loops over them
//! vectorise (libm's scalar `expm1f`/`tanhf` do not: they ran lane by lane in the GRU's gates).
//!
//! exp: `x = k·ln 2 + r` with |r| ≤ ln 2 / 2 (Cody–Waite), a degree-7 Taylor polynomial for e^r
//! (truncation below 1e-8) and 2^k built from the exponent bits. Relative error within a few f32
//! ulps; the argument is clamped to [−87, 88] (no overflow, no subnormals).
//!
//! k reaches the exponent bits without a float-to-int conversion: Rust's `as i32` saturates and
//! maps NaN to 0, which LLVM does not vectorise, so one such cast made every lane of a loop over
//! `exp` round-trip through scalar registers.

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
    let rounded = x * LOG2_E + ROUND;
    let k = rounded - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 / 720.0 + r * (1.0 / 5_040.0);
    let p = 1.0 / 120.0 + r * p;
    let p = 1.0 / 24.0 + r * p;
    let p = 1.0 / 6.0 + r * p;
    let p = 0.5 + r * p;
    let p = 1.0 + r * (1.0 + r * p);
    p * pow2(rounded)
}

/// 2^k for `rounded` = 1.5·2²³ + k, k an integer in [−126, 127]: that sum's bits are ROUND's
/// plus k (its mantissa counts in units of 1), so k + 127 is an integer subtraction away.
#[inline(always)]
fn pow2(rounded: f32) -> f32 {
    let biased = rounded
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    f32::from_bits(biased << 23)
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

    /// The exponent bits against the integer k they encode, over every k the clamp allows.
    #[test]
    fn pow2_is_two_to_the_k() {
        for k in -126..=127 {
            assert_eq!(pow2(ROUND + k as f32), 2f32.powi(k), "k = {k}");
        }
    }

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
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(1000.0).is_finite());
    }
}
