//! The CPU route: [`FusedBackend`] for burn's pure-Rust `Flex` backend, as host loops over the
//! tensors' buffers (roots and rows in parallel on rayon's pool, inner loops compiled for
//! AVX-512, AVX2/FMA or SVE where the CPU has them, picked at run time). Same math as the cubecl
//! kernels and the burn-ops reference.

mod attention;
mod exp;
mod gathered;
mod gru;
mod time_encoding;
mod trig;

use std::borrow::Cow;
use std::mem::MaybeUninit;

use burn::backend::Flex;
use burn::backend::TensorMetadata;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::tensor::{DType, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use crate::backend::FusedBackend;
use attention::Dims;

/// The values of `t` in row-major order, borrowed when already contiguous.
fn floats(t: &FlexTensor) -> Cow<'_, [f32]> {
    assert_eq!(
        t.dtype(),
        DType::F32,
        "mspipe-kernels run in f32, got {:?}",
        t.dtype()
    );
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

/// Row indices as `usize` (a negative one becomes out of range and panics where it is used).
fn rows(t: &FlexTensor) -> Vec<usize> {
    let data = t.clone().into_data();
    data.iter::<i64>().map(|i| i as usize).collect()
}

/// `len` floats written by `fill`, which is handed disjoint chunks of `chunk` floats (the last
/// may be shorter) with their index, in parallel. The buffer is not zeroed first: the outputs
/// built this way are overwritten whole, and zeroing them was a pass over megabytes per call.
///
/// # Safety
/// `fill` must write every element of each chunk it is handed.
unsafe fn par_filled(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, c)| fill(i, c));
    // SAFETY: the chunks cover the first `len` elements and `fill` wrote each (the contract).
    unsafe { out.set_len(len) };
    out
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `[n, k, h, dh]` of a key tensor.
fn dims(k: &FlexTensor) -> Dims {
    let s = k.shape();
    Dims {
        n: s[0],
        k: s[1],
        h: s[2],
        dh: s[3],
    }
}

impl FusedBackend for Flex {
    fn temporal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let d = dims(&k);
        let out = attention::forward(&floats(&q), &floats(&k), &floats(&v), &floats(&keep), d);
        tensor(out, [d.n, d.h * d.dh])
    }

    fn temporal_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let d = dims(&k);
        let (dq, dk, dv) = attention::backward(
            &floats(&q),
            &floats(&k),
            &floats(&v),
            &floats(&keep),
            &floats(&grad),
            d,
        );
        let slots = [d.n, d.k, d.h, d.dh];
        (
            tensor(dq, [d.n, d.h, d.dh]),
            tensor(dk, slots),
            tensor(dv, slots),
        )
    }

    fn time_encoding(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let (n, t) = (dt.shape()[0], w.shape()[0]);
        let out = time_encoding::forward(&floats(&dt), &floats(&w), &floats(&b));
        tensor(out, [n, t])
    }

    fn time_encoding_backward(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let t = w.shape()[0];
        let (dw, db) =
            time_encoding::backward(&floats(&dt), &floats(&w), &floats(&b), &floats(&grad));
        (tensor(dw, [t]), tensor(db, [t]))
    }

    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let shape = h.shape();
        let out = gru::forward(&floats(&gi), &floats(&gh), &floats(&h), shape[1]);
        tensor(out, [shape[0], shape[1]])
    }

    fn gru_gates_backward(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [n, d] = [h.shape()[0], h.shape()[1]];
        let (dgi, dgh, dh) =
            gru::backward(&floats(&gi), &floats(&gh), &floats(&h), &floats(&grad), d);
        (
            tensor(dgi, [n, 3 * d]),
            tensor(dgh, [n, 3 * d]),
            tensor(dh, [n, d]),
        )
    }

    fn gathered_attention(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let d = gathered_dims(&q, &a, &b, &keep);
        let slots = slot_rows(&a, &ia, &b, &ib);
        let out = gathered::forward(&floats(&q), &slots, &floats(&keep), &floats(&scale), d);
        tensor(out, [d.h, d.n, d.ca + d.cb])
    }

    fn gathered_attention_backward(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let d = gathered_dims(&q, &a, &b, &keep);
        let tables = [a.shape()[0], b.shape()[0]];
        let slots = slot_rows(&a, &ia, &b, &ib);
        let (q, keep, scale, grad) = (floats(&q), floats(&keep), floats(&scale), floats(&grad));
        let (dq, da, db) = gathered::backward(&q, &slots, &keep, &scale, &grad, d, tables);
        (
            tensor(dq, [d.h, d.n, d.ca + d.cb]),
            tensor(da, [tables[0], d.ca]),
            tensor(db, [tables[1], d.cb]),
        )
    }
}

/// The tables `a`, `b` and each slot's rows `ia`, `ib` in them, as host slices.
fn slot_rows<'a>(
    a: &'a FlexTensor,
    ia: &FlexTensor,
    b: &'a FlexTensor,
    ib: &FlexTensor,
) -> gathered::Rows<'a> {
    gathered::Rows {
        a: floats(a),
        ia: rows(ia),
        b: floats(b),
        ib: rows(ib),
    }
}

/// Shapes of a gathered attention from `q` `[h, n, c]`, the tables and `keep` `[n, k]`.
fn gathered_dims(
    q: &FlexTensor,
    a: &FlexTensor,
    b: &FlexTensor,
    keep: &FlexTensor,
) -> gathered::Dims {
    let (q, keep) = (q.shape(), keep.shape());
    let d = gathered::Dims {
        n: q[1],
        k: keep[1],
        h: q[0],
        ca: a.shape()[1],
        cb: b.shape()[1],
    };
    assert_eq!(
        q[2],
        d.ca + d.cb,
        "query width ≠ the tables' widths together"
    );
    d
}
