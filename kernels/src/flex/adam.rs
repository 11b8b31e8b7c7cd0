//! One Adam update of a parameter as one pass over its elements ([`AdamBackend`]). burn's `Adam`
//! runs the same arithmetic as thirteen tensor operations, each a pass with an output of its own:
//! on a step's few dozen small parameters that is hundreds of operations on the training thread
//! alone, while the pool's other threads wait. Each element here is computed by the same
//! operations in the same order, so the results are burn's to the bit.

use std::mem::MaybeUninit;

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DispatchDevice, Flex, TensorMetadata, backend_extension};
use burn::prelude::Device;
use burn::tensor::TensorData;
use burn_flex::FlexTensor;
use multiversion::multiversion;
use rayon::prelude::*;

use super::floats;
use crate::AdamScalars;

/// One element's three outputs: parameter, first and second moment.
type Outputs<'a> = (
    (&'a mut MaybeUninit<f32>, &'a mut MaybeUninit<f32>),
    &'a mut MaybeUninit<f32>,
);

/// Elements per parallel task.
const BLOCK: usize = 1 << 14;

/// Adam's update of a parameter on backend primitives, every tensor of the parameter's shape.
#[backend_extension(Flex)]
pub trait AdamBackend: Backend {
    /// The parameter and its first and second moments after a step with gradient `grad` from the
    /// moments `m`, `v`.
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scalars: AdamScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`AdamBackend::adam_step`] of a parameter's first step, whose moments start from the
    /// gradient alone.
    fn adam_first_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scalars: AdamScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Whether `device` is flex itself (the optimizer steps the parameters' inner tensors).
pub fn runs_on(device: &Device) -> bool {
    matches!(device.as_dispatch(), DispatchDevice::Flex(_))
}

impl AdamBackend for Flex {
    fn adam_step(
        param: FlexTensor,
        grad: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        scalars: AdamScalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (m, v) = (floats(&m), floats(&v));
        step(&param, &grad, Some((&m, &v)), scalars)
    }

    fn adam_first_step(
        param: FlexTensor,
        grad: FlexTensor,
        scalars: AdamScalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        step(&param, &grad, None, scalars)
    }
}

/// The updated parameter and moments, blocks of elements in parallel.
///
/// # Panics
/// If the gradient or a moment has another element count than the parameter.
fn step(
    param: &FlexTensor,
    grad: &FlexTensor,
    moments: Option<(&[f32], &[f32])>,
    s: AdamScalars,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (p, g) = (floats(param), floats(grad));
    let len = p.len();
    assert!(
        g.len() == len && moments.is_none_or(|(m, v)| m.len() == len && v.len() == len),
        "adam: gradient or moments of another size than the parameter"
    );
    let mut out: [Vec<f32>; 3] = std::array::from_fn(|_| Vec::with_capacity(len));
    let [p_out, m_out, v_out] = out.each_mut().map(|o| &mut o.spare_capacity_mut()[..len]);
    p_out
        .par_chunks_mut(BLOCK)
        .zip(m_out.par_chunks_mut(BLOCK))
        .zip(v_out.par_chunks_mut(BLOCK))
        .enumerate()
        .with_max_len(1)
        .for_each(|(i, ((p_out, m_out), v_out))| {
            let at = i * BLOCK..i * BLOCK + p_out.len();
            let prev = moments.map(|(m, v)| (&m[at.clone()], &v[at.clone()]));
            block(&p[at.clone()], &g[at], prev, s, [p_out, m_out, v_out]);
        });
    let shape = param.shape();
    out.map(|mut values| {
        // SAFETY: `block` wrote all `len` elements of each (the chunks cover them).
        unsafe { values.set_len(len) };
        FlexTensor::from_data(TensorData::new(values, shape.clone()))
    })
    .into()
}

/// burn's `Adam` (no weight decay, no AMSGrad) element by element: m ← β₁·m + (1 − β₁)·g,
/// v ← β₂·v + (1 − β₂)·g², p ← p − lr·(m·c) / (√v + ε′) with c and ε′ the bias corrections
/// [`AdamScalars`] holds; on the first step m and v start from the terms in g alone.
#[multiversion(targets = "simd")]
fn block(
    p: &[f32],
    g: &[f32],
    prev: Option<(&[f32], &[f32])>,
    s: AdamScalars,
    [p_out, m_out, v_out]: [&mut [MaybeUninit<f32>]; 3],
) {
    let (f1, f2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let outputs = p_out.iter_mut().zip(m_out.iter_mut()).zip(v_out.iter_mut());
    let inputs = outputs.zip(p.iter().zip(g));
    let write = |((p_out, m_out), v_out): Outputs<'_>, p: f32, m: f32, v: f32| {
        let update = (m * s.moment_scale) / (v.sqrt() + s.epsilon);
        p_out.write(p - update * s.lr);
        m_out.write(m);
        v_out.write(v);
    };
    match prev {
        Some((m, v)) => {
            for ((out, (&p, &g)), (&m, &v)) in inputs.zip(m.iter().zip(v)) {
                write(out, p, m * s.beta_1 + g * f1, v * s.beta_2 + (g * g) * f2);
            }
        }
        None => {
            for (out, (&p, &g)) in inputs {
                write(out, p, g * f1, (g * g) * f2);
            }
        }
    }
}
