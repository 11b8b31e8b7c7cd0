//! The fused operations as a burn backend extension ([`FusedBackend`]): implemented by `#[cube]`
//! kernels on cubecl backends (`cube`), by host loops on flex (`flex`), and under autodiff with
//! hand-written backward passes (`autodiff`). The crate root routes to it on those devices.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, DispatchDevice, backend_extension};
use burn::prelude::*;

/// Attention, the time encoding, the GRU gates and the gather-add of keys and values on backend
/// primitives. Shapes as in the crate-level functions.
#[backend_extension(Cube: cfg(feature = "cube"), Flex: cfg(feature = "flex"), Autodiff)]
pub trait FusedBackend: Backend {
    /// `[N, H, dh]`, `[N, K, H, dh]` ×2, `[N, K]` → `[N, H·dh]`.
    fn temporal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::temporal_attention`] for `q`, `k`, `v` given the output's.
    fn temporal_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `dt` `[n]`, `w`, `b` `[T]` → cos(Δt·w + b) `[n, T]`.
    fn time_encoding(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::time_encoding`] for `w` and `b` given the output's.
    fn time_encoding_backward(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `gi`, `gh` `[n, 3d]` (input and hidden products, gates `r | z | n`), `h` `[n, d]` → `h'`.
    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::gru_gates`] for `gi`, `gh` and `h` given the output's.
    fn gru_gates_backward(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `a` `[Ua, w]` rows `ia` `[n]` + `b` `[Ub, w]` rows `ib` `[n]` + `bias` `[w]` → `[n, w]`.
    fn gather_add(
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::gather_add`] for `a`, `b` (shaped like them) and `bias`.
    fn gather_add_backward(
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// Whether `device` (directly or under autodiff) has a [`FusedBackend`] implementation compiled
/// in.
pub fn runs_on(device: &Device) -> bool {
    fn direct(device: &DispatchDevice) -> bool {
        match device {
            #[cfg(feature = "cube")]
            DispatchDevice::Cube(_) => true,
            #[cfg(feature = "flex")]
            DispatchDevice::Flex(_) => true,
            DispatchDevice::Autodiff(inner) => direct(inner),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
    direct(device.as_dispatch())
}

type Ext = burn::backend::Dispatch;

/// Fused [`crate::attention`].
pub fn attention(q: Tensor<3>, k: Tensor<4>, v: Tensor<4>, keep: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Ext as FusedBackend>::temporal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        keep.into_dispatch(),
    ))
}

/// Fused [`crate::gru_gates`].
pub fn gru_gates(gi: Tensor<2>, gh: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(<Ext as FusedBackend>::gru_gates(
        gi.into_dispatch(),
        gh.into_dispatch(),
        h.into_dispatch(),
    ))
}

/// Fused [`crate::gather_add`].
pub fn gather_add(
    a: Tensor<2>,
    ia: Tensor<1, Int>,
    b: Tensor<2>,
    ib: Tensor<1, Int>,
    bias: Tensor<1>,
) -> Tensor<2> {
    Tensor::from_dispatch(<Ext as FusedBackend>::gather_add(
        a.into_dispatch(),
        ia.into_dispatch(),
        b.into_dispatch(),
        ib.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// Fused [`crate::time_encoding`].
pub fn time_encoding(dt: Tensor<1>, w: Tensor<1>, b: Tensor<1>) -> Tensor<2> {
    Tensor::from_dispatch(<Ext as FusedBackend>::time_encoding(
        dt.into_dispatch(),
        w.into_dispatch(),
        b.into_dispatch(),
    ))
}
