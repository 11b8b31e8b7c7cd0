//! cos and sin of `f32` arguments as straight-line arithmetic — no table, no branch, no libm
//! call — so loops over them vectorise (libm's scalar `cosf`/`sinf` do not): the time encoding
//! evaluates one per distinct Δt and time dimension of every batch.
//!
//! The argument is reduced by π/2 in f64 (Cody–Waite, the high part of π/2 short enough that
//! `k·HI` is exact for |k| < 2³¹): Δt·w reaches 10⁹, where an f32 reduction would keep no
//! correct bit of the remainder. The remainder |r| ≤ π/4 then goes through Taylor polynomials
//! in f32 (truncation below 3·10⁻⁸; f32 lanes are half the cost of f64 ones, and the polynomials
//! are most of the work). Results are within 1e-7 of the exact values (under two f32 ulps) for
//! |x| < 3·10⁹, which covers Δt·w of any timestamps in seconds.

use std::f64::consts::FRAC_2_PI;

/// 1.5·2⁵²: adding and subtracting it rounds an f64 of magnitude < 2⁵¹ to an integer.
const ROUND: f64 = 6_755_399_441_055_744.0;
/// π/2 to 22 significant bits, and the rest.
const HALF_PI_HI: f64 = 1.570_796_489_715_576_2;
const HALF_PI_LO: f64 = -1.629_206_795_526_437e-7;

/// `x` = `k·π/2 + r` with |r| ≤ π/4: returns `r` and the quadrant `k mod 4` (as 0.0, 1.0, 2.0, 3.0).
#[inline(always)]
fn reduce(x: f32) -> (f64, f64) {
    let x = f64::from(x);
    let k = (x * FRAC_2_PI + ROUND) - ROUND;
    let r = (x - k * HALF_PI_HI) - k * HALF_PI_LO;
    // floor(k/4) for an integer k: k/4 − 0.375 rounds to it for each of the four fractions.
    let quadrant = k - 4.0 * ((k * 0.25 - 0.375 + ROUND) - ROUND);
    (r, quadrant)
}

/// `c[0] + r2·(c[1] + r2·(c[2] + r2·c[3]))`, innermost first (Horner).
#[inline(always)]
fn horner(r2: f32, c: [f32; 4]) -> f32 {
    c[..3].iter().rev().fold(c[3], |p, &ci| ci + r2 * p)
}

/// sin r = r − r³/3! + r⁵/5! − r⁷/7! + r⁹/9!.
#[inline(always)]
fn sin_poly(r: f32) -> f32 {
    let r2 = r * r;
    let p = horner(
        r2,
        [-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5_040.0, 1.0 / 362_880.0],
    );
    r + r * r2 * p
}

/// cos r = 1 − r²/2! + r⁴/4! − r⁶/6! + r⁸/8!.
#[inline(always)]
fn cos_poly(r: f32) -> f32 {
    let r2 = r * r;
    let p = horner(r2, [-0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40_320.0]);
    1.0 + r2 * p
}

/// cos(x).
#[inline(always)]
pub fn cos(x: f32) -> f32 {
    let (r, q) = reduce(x);
    cos_in_quadrant(r, q)
}

/// (cos x, sin x) from one reduction, sin(x) as cos(x − π/2): one quadrant back. The cosine is
/// the same bits as [`cos`].
#[inline(always)]
pub fn cos_sin(x: f32) -> (f32, f32) {
    let (r, q) = reduce(x);
    let back = if q == 0.0 { 3.0 } else { q - 1.0 };
    (cos_in_quadrant(r, q), cos_in_quadrant(r, back))
}

/// cos(qπ/2 + r) for quadrant `q` in 0, 1, 2, 3: cos r, −sin r, −cos r, sin r.
#[inline(always)]
fn cos_in_quadrant(r: f64, q: f64) -> f32 {
    let r = r as f32;
    let v = if q == 1.0 || q == 3.0 {
        sin_poly(r)
    } else {
        cos_poly(r)
    };
    if q == 1.0 || q == 2.0 { -v } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64's libm on a sweep from 0 to 3·10⁹ (both signs), the quadrant edges and a
    /// dense stretch near 0.
    #[test]
    fn within_1e7_of_libm() {
        let mut xs: Vec<f32> = (0..200_000)
            .map(|i| (i as f32 * 1e-4) - 10.0)
            .chain((0..54).map(|e| 1.5f32.powi(e)))
            .chain((0..100).map(|i| i as f32 * std::f32::consts::FRAC_PI_4))
            .chain([3.0e9, 2_718_281.8, 1.0e-30, 0.0, -0.0])
            .collect();
        xs.extend(xs.clone().iter().map(|x| -x));
        for x in xs {
            let (c, s) = (f64::from(x).cos(), f64::from(x).sin());
            let (cx, sx) = cos_sin(x);
            assert_eq!(
                cx.to_bits(),
                cos(x).to_bits(),
                "cos({x}) differs from cos_sin's"
            );
            assert!((f64::from(cx) - c).abs() < 1e-7, "cos({x}) = {cx} vs {c}");
            assert!((f64::from(sx) - s).abs() < 1e-7, "sin({x}) = {sx} vs {s}");
        }
    }
}
