//! The GRU cell's gates, one unit per (row, hidden unit): the three gates' pre-activations are read
//! once, and the backward recomputes the gates rather than storing them.

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{floats, launch, output};

#[cube]
fn sigmoid<F: Float>(x: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-x))
}

/// tanh(x) = 2·σ(2x) − 1.
#[cube]
fn tanh<F: Float>(x: F) -> F {
    F::new(2.0) * sigmoid::<F>(F::new(2.0) * x) - F::new(1.0)
}

#[cube(launch_unchecked)]
fn forward_kernel<F: Float>(gi: &[F], gh: &[F], h: &[F], out: &mut [F], units: usize, d: usize) {
    let i = ABSOLUTE_POS;
    if i >= units {
        terminate!();
    }
    let row = i / d;
    let base = row * 3 * d + i % d;
    let r = sigmoid::<F>(gi[base] + gh[base]);
    let z = sigmoid::<F>(gi[base + d] + gh[base + d]);
    let n = tanh::<F>(gi[base + 2 * d] + r * gh[base + 2 * d]);
    out[i] = (F::new(1.0) - z) * n + z * h[i];
}

#[cube(launch_unchecked)]
fn backward_kernel<F: Float>(
    gi: &[F],
    gh: &[F],
    h: &[F],
    grad: &[F],
    dgi: &mut [F],
    dgh: &mut [F],
    dh: &mut [F],
    units: usize,
    d: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= units {
        terminate!();
    }
    let row = i / d;
    let base = row * 3 * d + i % d;
    let one = F::new(1.0);
    let r = sigmoid::<F>(gi[base] + gh[base]);
    let z = sigmoid::<F>(gi[base + d] + gh[base + d]);
    let hn = gh[base + 2 * d];
    let n = tanh::<F>(gi[base + 2 * d] + r * hn);
    let g = grad[i];
    // h' = (1 − z)·n + z·h.
    let dn = g * (one - z) * (one - n * n);
    let dz = g * (h[i] - n) * z * (one - z);
    let dr = dn * hn * r * (one - r);
    dh[i] = g * z;
    dgi[base] = dr;
    dgh[base] = dr;
    dgi[base + d] = dz;
    dgh[base + d] = dz;
    dgi[base + 2 * d] = dn;
    dgh[base + 2 * d] = dn * r;
}

fn dims(h: &CubeTensor) -> [usize; 2] {
    let s = h.meta.shape();
    [s[0], s[1]]
}

/// `gi`, `gh` `[n, 3d]`, `h` `[n, d]` → `[n, d]`.
pub fn forward(gi: CubeTensor, gh: CubeTensor, h: CubeTensor) -> CubeTensor {
    let [n, d] = dims(&h);
    let (gi, gh, h) = (floats(gi), floats(gh), floats(h));
    let out = output(&h, [n, d]);
    let (client, units) = (h.client.clone(), n * d);
    // SAFETY: contiguous f32 buffers of the shapes the indexing assumes; `units` guards every
    // access.
    unsafe {
        launch!(forward_kernel on client, units; [gi, gh, h, out.clone()], units, d);
    }
    out
}

/// Gradients for `gi`, `gh` and `h` given the output's.
pub fn backward(
    gi: CubeTensor,
    gh: CubeTensor,
    h: CubeTensor,
    grad: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [n, d] = dims(&h);
    let (gi, gh, h, grad) = (floats(gi), floats(gh), floats(h), floats(grad));
    let dgi = output(&h, [n, 3 * d]);
    let dgh = output(&h, [n, 3 * d]);
    let dh = output(&h, [n, d]);
    let (client, units) = (h.client.clone(), n * d);
    // SAFETY: as in `forward`; each unit writes only its own element and its three gate slots.
    unsafe {
        launch!(
            backward_kernel on client, units;
            [gi, gh, h, grad, dgi.clone(), dgh.clone(), dh.clone()],
            units, d
        );
    }
    (dgi, dgh, dh)
}
