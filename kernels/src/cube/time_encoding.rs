//! φ(Δt) = cos(Δt·w + b): forward one unit per output element (a tracked encoding also writes
//! sin(Δt·w + b) for its backward); backward one unit per (column, block of rows) writing that
//! block's partial column sums for `w` and `b`, which are then added over blocks in order
//! (deterministic: no atomics). Composed from burn ops this took four elementwise passes and two
//! reductions over `[n, T]` and was slower than autodiff's own backward.

use burn::backend::ops::FloatTensorOps;
use burn::tensor::Shape;
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::full_client;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{floats, launch, output};

/// Rows per partial column sum in the backward.
const BLOCK: usize = 64;

/// cos(Δt·w + b), or its sine where `sine`.
#[cube(launch_unchecked)]
fn encode_kernel<F: Float>(
    dt: &[F],
    w: &[F],
    b: &[F],
    out: &mut [F],
    units: usize,
    t: usize,
    #[comptime] sine: bool,
) {
    let i = ABSOLUTE_POS;
    if i >= units {
        terminate!();
    }
    let col = i % t;
    let x = dt[i / t] * w[col] + b[col];
    out[i] = if sine { F::sin(x) } else { F::cos(x) };
}

/// Unit `i` = (block `i / t`, column `i % t`): Σ over the block's rows of −sin(Δt·w + b)·g·Δt and
/// −sin(Δt·w + b)·g, the sines as the forward kept them.
#[cube(launch_unchecked)]
fn backward_kernel<F: Float>(
    dt: &[F],
    sine: &[F],
    grad: &[F],
    dw: &mut [F],
    db: &mut [F],
    units: usize,
    n: usize,
    t: usize,
    #[comptime] block: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= units {
        terminate!();
    }
    let col = i % t;
    let start = (i / t) * block;
    let mut end = start + block;
    if end > n {
        end = n;
    }
    let mut sw = F::new(0.0);
    let mut sb = F::new(0.0);
    for row in start..end {
        let x = dt[row];
        let d = -sine[row * t + col] * grad[row * t + col];
        sw += d * x;
        sb += d;
    }
    dw[i] = sw;
    db[i] = sb;
}

fn dims(dt: &CubeTensor, w: &CubeTensor) -> (usize, usize) {
    (dt.meta.shape()[0], w.meta.shape()[0])
}

/// `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`: the cosines, or the sines where `sine`.
fn encode(dt: &CubeTensor, w: &CubeTensor, b: &CubeTensor, sine: bool) -> CubeTensor {
    let (n, t) = dims(dt, w);
    let (dt, w, b) = (floats(dt.clone()), floats(w.clone()), floats(b.clone()));
    let out = output(&w, [n, t]);
    let (client, units) = (w.client.clone(), n * t);
    // SAFETY: contiguous f32 buffers of the shapes the indexing assumes; `units` guards every
    // access.
    unsafe {
        launch!(encode_kernel on client, units; [dt, w, b, out.clone()], units, t, sine);
    }
    out
}

/// `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`.
pub fn forward(dt: CubeTensor, w: CubeTensor, b: CubeTensor) -> CubeTensor {
    encode(&dt, &w, &b, false)
}

/// [`forward`] and sin(Δt·w + b), both `[n, T]`: two launches of one kernel, each reading the
/// small inputs and writing its own output.
pub fn forward_with_sine(dt: CubeTensor, w: CubeTensor, b: CubeTensor) -> (CubeTensor, CubeTensor) {
    (encode(&dt, &w, &b, false), encode(&dt, &w, &b, true))
}

/// Gradients for `w` and `b` from the kept sines: ∂/∂w = Σ −sin(Δt·w + b)·g·Δt,
/// ∂/∂b = Σ −sin(Δt·w + b)·g.
pub fn backward(dt: CubeTensor, sine: CubeTensor, grad: CubeTensor) -> (CubeTensor, CubeTensor) {
    let (n, t) = (dt.meta.shape()[0], sine.meta.shape()[1]);
    let (dt, sine, grad) = (floats(dt), floats(sine), floats(grad));
    let blocks = n.div_ceil(BLOCK);
    let units = blocks * t;
    if units == 0 {
        let zeros =
            || full_client::<f32>(sine.client.clone(), [t].into(), sine.device.clone(), 0.0);
        return (zeros(), zeros());
    }
    let dw = output(&sine, [blocks, t]);
    let db = output(&sine, [blocks, t]);
    let client = sine.client.clone();
    // SAFETY: as in `forward`; each unit writes only its own partial sums.
    unsafe {
        launch!(
            backward_kernel on client, units;
            [dt, sine, grad, dw.clone(), db.clone()],
            units, n, t, BLOCK
        );
    }
    let column_sum =
        |x| CubeBackend::float_reshape(CubeBackend::float_sum_dim(x, 0), Shape::new([t]));
    (column_sum(dw), column_sum(db))
}
