//! What the equivalence tests of both fused routes share: random inputs, masks, the shapes.
#![allow(dead_code)] // each test file uses its own part

use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use mspipe_kernels::GatheredAttention;

/// The same values on another device.
pub fn to<const D: usize>(t: &Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), device)
}

pub fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

/// `[N, K]` mask with about a quarter padded, and row 0 (if any) fully padded.
pub fn mask(n: usize, k: usize, device: &Device) -> Tensor<2> {
    let keep: Tensor<2> = Tensor::random([n, k], Distribution::Bernoulli(0.75), device);
    if n == 0 {
        return keep;
    }
    keep.slice_assign([0..1, 0..k], Tensor::zeros([1, k], device))
}

/// Gradients within 1e-5; absent on both sides only for an empty batch (`n` = 0).
pub fn assert_grads_close(got: Grads, want: Grads, n: usize) {
    let tol = Tolerance::<f32>::rel_abs(1e-5, 1e-5);
    for (got, want) in got.into_iter().zip(want) {
        match (got, want) {
            (Some(g), Some(w)) => g.assert_approx_eq::<f32>(&w, tol),
            (None, None) => assert_eq!(n, 0),
            (g, w) => panic!("gradient present {} vs {}", g.is_some(), w.is_some()),
        }
    }
}

/// A fused run's output and gradients (`got`) against the reference's (`want`): the output
/// within 1e-5 relative / 1e-6 absolute, the gradients as [`assert_grads_close`].
pub fn assert_run_close(got: (TensorData, Grads), want: (TensorData, Grads), n: usize) {
    got.0
        .assert_approx_eq::<f32>(&want.0, Tolerance::rel_abs(1e-5, 1e-6));
    assert_grads_close(got.1, want.1, n);
}

/// The gradients a case's run returns, one per differentiable input.
pub type Grads = [Option<TensorData>; 3];

/// Random GRU gate inputs for `n` rows of width `d` (pre-activations spread over ±4, so the
/// gates reach saturation), and the weights `r` of the loss Σ h' ⊙ r.
pub struct GruCase {
    pub gi: Tensor<2>,
    pub gh: Tensor<2>,
    pub h: Tensor<2>,
    pub r: Tensor<2>,
}

/// The (n, d) of the GRU tests: one element, a row shorter than a vector, several parallel blocks
/// with a ragged last one, and empty.
pub const GRU_SHAPES: [[usize; 2]; 4] = [[1, 1], [5, 3], [300, 100], [0, 4]];

impl GruCase {
    pub fn new([n, d]: [usize; 2], device: &Device) -> Self {
        let wide = |device| Tensor::random([n, 3 * d], Distribution::Uniform(-4.0, 4.0), device);
        GruCase {
            gi: wide(device),
            gh: wide(device),
            h: random([n, d], device),
            r: random([n, d], device),
        }
    }

    /// `h'` and the gradients of Σ h' ⊙ r for gi, gh, h on `device` (an autodiff device), through
    /// the crate's routed call (`fused`) or the burn-ops reference.
    pub fn run(&self, device: &Device, fused: bool) -> (TensorData, Grads) {
        let (gi, gh, h) = (
            to(&self.gi, device).require_grad(),
            to(&self.gh, device).require_grad(),
            to(&self.h, device).require_grad(),
        );
        let out = if fused {
            mspipe_kernels::gru_gates(gi.clone(), gh.clone(), h.clone())
        } else {
            mspipe_kernels::reference::gru_gates(gi.clone(), gh.clone(), h.clone())
        };
        let value = owned(out.to_data());
        let grads = (out * to(&self.r, device)).sum().backward();
        let grad = |t: &Tensor<2>| t.grad(&grads).map(|g| owned(g.into_data()));
        (value, [grad(&gi), grad(&gh), grad(&h)])
    }
}

/// `data` copied into memory of its own. A read-back from wgpu may hand out bytes that a later
/// read-back reuses, so a value kept across further device work is copied first.
pub fn owned(data: TensorData) -> TensorData {
    let shape = data.shape().clone();
    TensorData::new(data.iter::<f32>().collect::<Vec<_>>(), shape)
}

/// Random inputs of the attention over gathered rows, shaped
/// `[n, k, h, rows_a, ca, ce, rows_b, cb]`: `n` roots of `k` slots, `h` heads, slot rows of `ca`
/// columns from a table of `rows_a` rows, `ce` of the slot's own (none for 0), then `cb` columns
/// from one of `rows_b` rows (indices repeating rows, as slots repeat nodes and Δt), an
/// attention-dropout multiplier per head and slot (p = 0.2), and the weights `r` of the loss
/// Σ out ⊙ r.
pub struct GatheredCase {
    pub q: Tensor<3>,
    pub a: Tensor<2>,
    pub ia: Vec<i64>,
    pub e: Option<Tensor<2>>,
    pub b: Tensor<2>,
    pub ib: Vec<i64>,
    pub keep: Tensor<2>,
    pub scale: Tensor<3>,
    pub r: Tensor<3>,
}

/// Two heads over TGN-like slots with edge rows; k = 1 and H = 1 with one-row tables; more heads
/// than slots; roots not a multiple of the flex block (64), with own rows wider than a SIMD lane
/// group; table rows wider than an AVX-512 register with a remainder (37 and 21 columns); empty.
pub const GATHERED_SHAPES: [[usize; 8]; 6] = [
    [37, 10, 2, 11, 8, 6, 50, 5],
    [5, 1, 1, 1, 3, 0, 1, 2],
    [3, 4, 4, 2, 5, 0, 12, 7],
    [130, 7, 3, 40, 16, 11, 300, 9],
    [70, 6, 2, 30, 37, 3, 90, 21],
    [0, 3, 2, 4, 4, 0, 3, 2],
];

impl GatheredCase {
    pub fn new([n, k, h, rows_a, ca, ce, rows_b, cb]: [usize; 8], device: &Device) -> Self {
        let slots = n * k;
        GatheredCase {
            q: random([h, n, ca + ce + cb], device),
            a: random([rows_a, ca], device),
            ia: (0..slots)
                .map(|i| ((i * 7 + i / 3) % rows_a) as i64)
                .collect(),
            e: (ce > 0).then(|| random([slots, ce], device)),
            b: random([rows_b, cb], device),
            ib: (0..slots).map(|i| ((i * 5 + 1) % rows_b) as i64).collect(),
            keep: mask(n, k, device),
            scale: Tensor::random([h, n, k], Distribution::Bernoulli(0.8), device) / 0.8,
            r: random([h, n, ca + ce + cb], device),
        }
    }

    /// The output and the gradients of Σ out ⊙ r for q, a, b on `device` (an autodiff device),
    /// through the crate's routed call (`fused`) or the burn-ops reference. The own rows are
    /// data (not tracked).
    pub fn run(&self, device: &Device, fused: bool) -> (TensorData, Grads) {
        let ids =
            |v: &[i64]| Tensor::<1, Int>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let (q, a, b) = (
            to(&self.q, device).require_grad(),
            to(&self.a, device).require_grad(),
            to(&self.b, device).require_grad(),
        );
        let (ia, ib, keep) = (ids(&self.ia), ids(&self.ib), to(&self.keep, device));
        let scale = to(&self.scale, device);
        let attend = if fused {
            mspipe_kernels::gathered_attention
        } else {
            mspipe_kernels::reference::gathered_attention
        };
        let (qc, ac, bc) = (q.clone(), a.clone(), b.clone());
        let out = attend(GatheredAttention {
            q: qc,
            a: ac,
            ia,
            e: self.e.as_ref().map(|e| to(e, device)),
            b: bc,
            ib,
            keep,
            scale,
        });
        let value = owned(out.to_data());
        let grads = (out * to(&self.r, device)).sum().backward();
        let grad3 = q.grad(&grads).map(|g| owned(g.into_data()));
        let grad2 = |t: &Tensor<2>| t.grad(&grads).map(|g| owned(g.into_data()));
        (value, [grad3, grad2(&a), grad2(&b)])
    }
}

/// With `k` = 0 slots there is nothing to attend over: the fused call gives zeros (not the
/// kernel's unwritten output buffer) and zero gradients of the inputs' shapes.
pub fn assert_gathered_without_slots_is_zero(device: &Device) {
    let [n, h, rows_a, ca, rows_b, cb] = [4, 2, 3, 5, 6, 3];
    let case = GatheredCase {
        q: random([h, n, ca + cb], device),
        a: random([rows_a, ca], device),
        ia: Vec::new(),
        e: None,
        b: random([rows_b, cb], device),
        ib: Vec::new(),
        keep: Tensor::zeros([n, 0], device),
        scale: Tensor::ones([h, n, 0], device),
        r: random([h, n, ca + cb], device),
    };
    let (out, grads) = case.run(device, true);
    assert_eq!(out.shape().to_vec(), vec![h, n, ca + cb]);
    assert!(out.iter::<f32>().all(|x| x == 0.0), "{out:?}");
    for (g, size) in grads
        .iter()
        .zip([h * n * (ca + cb), rows_a * ca, rows_b * cb])
    {
        let g = g.as_ref().expect("a gradient");
        assert_eq!(g.num_elements(), size);
        assert!(g.iter::<f32>().all(|x| x == 0.0), "{g:?}");
    }
}
