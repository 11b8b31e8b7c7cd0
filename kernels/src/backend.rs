//! The fused operations as a burn backend extension ([`FusedBackend`]): implemented by `#[cube]`
//! kernels on cubecl backends (`cube`), by host loops on flex (`flex`), and under autodiff with
//! hand-written backward passes (`autodiff`). The crate root routes to it on those devices.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, DispatchDevice, backend_extension};
use burn::prelude::*;

/// Attention over gathered slot rows, the time encoding and the GRU gates on backend primitives. Shapes as in the crate-level functions.
///
/// On a cubecl device burn's backend is `Fusion<CubeBackend>`: each method then registers as one
/// opaque fusion operation (`#[fusion(...)]` gives its outputs' shapes and types, see
/// `fusion_meta`) that runs the `CubeBackend` kernel when the stream executes.
#[backend_extension(
    Cube: cfg(feature = "cube"),
    Fusion: cfg(feature = "cube"),
    Flex: cfg(feature = "flex"),
    Autodiff
)]
pub trait FusedBackend: Backend {
    /// `dt` `[n]`, `w`, `b` `[T]` → cos(Δt·w + b) `[n, T]`.
    #[fusion(dtype = w, shape = fusion_meta::outer(dt, w))]
    fn time_encoding(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// [`FusedBackend::time_encoding`] and sin(Δt·w + b), both `[n, T]`: the forward of an
    /// encoding whose gradients are wanted, the sine kept for the backward.
    #[fusion(meta = |dt, w, _b| (fusion_meta::outer_of(dt, w), fusion_meta::outer_of(dt, w)))]
    fn time_encoding_with_sine(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Gradients of [`FusedBackend::time_encoding`] for `w` and `b` (`[T]` each) given the
    /// output's and the sine [`FusedBackend::time_encoding_with_sine`] kept.
    #[fusion(meta = |_dt, sine, _grad| (fusion_meta::columns(sine), fusion_meta::columns(sine)))]
    fn time_encoding_backward(
        dt: FloatTensor<Self>,
        sine: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `gi`, `gh` `[n, 3d]` (input and hidden products, gates `r | z | n`), `h` `[n, d]` → `h'`.
    #[fusion(dtype = h, shape = h)]
    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::gru_gates`] for `gi`, `gh` and `h` given the output's.
    #[fusion(meta = |gi, gh, h, _grad| (gi.clone(), gh.clone(), h.clone()))]
    fn gru_gates_backward(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `q` `[H, N, Ca + Cb]`, rows `ia`, `ib` `[N·K]` of `a` `[Ua, Ca]` and `b` `[Ub, Cb]`, `keep`
    /// `[N, K]`, `scale` `[H, N, K]` → `[H, N, Ca + Cb]`.
    #[fusion(dtype = q, shape = q)]
    fn gathered_attention(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Gradients of [`FusedBackend::gathered_attention`] for `q`, `a` and `b` given the output's.
    #[fusion(meta = |q, a, _ia, b, _ib, _keep, _scale, _grad| (q.clone(), a.clone(), b.clone()))]
    #[allow(clippy::too_many_arguments)] // the forward's seven inputs and the output's gradient
    fn gathered_attention_backward(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `impl FusedBackend` for a backend with the trait's signatures written once, here: the caller
/// names each method's arguments and gives its body, in the trait's order.
macro_rules! fused_backend {
    (
        impl[$($generics:tt)*] for $backend:ty;
        time_encoding($dt:ident, $w:ident, $b:ident) $time:block
        time_encoding_with_sine($dt__:ident, $w__:ident, $b__:ident) $time_sine:block
        time_encoding_backward($dt_:ident, $sine:ident, $grad_:ident) $time_backward:block
        gru_gates($gi:ident, $gh:ident, $h:ident) $gru:block
        gru_gates_backward($gi_:ident, $gh_:ident, $h_:ident, $grad__:ident) $gru_backward:block
        gathered_attention(
            $gq:ident, $ta:ident, $ia:ident, $tb:ident, $ib:ident, $gkeep:ident, $scale:ident
        ) $gathered:block
        gathered_attention_backward(
            $gq_:ident, $ta_:ident, $ia_:ident, $tb_:ident, $ib_:ident, $gkeep_:ident,
            $scale_:ident, $grad___:ident
        ) $gathered_backward:block
    ) => {
        type F<B> = burn::backend::tensor::FloatTensor<B>;
        type I<B> = burn::backend::tensor::IntTensor<B>;

        impl<$($generics)*> $crate::backend::FusedBackend for $backend {
            fn time_encoding($dt: F<Self>, $w: F<Self>, $b: F<Self>) -> F<Self> $time

            fn time_encoding_with_sine(
                $dt__: F<Self>, $w__: F<Self>, $b__: F<Self>,
            ) -> (F<Self>, F<Self>)
                $time_sine

            fn time_encoding_backward(
                $dt_: F<Self>, $sine: F<Self>, $grad_: F<Self>,
            ) -> (F<Self>, F<Self>)
                $time_backward

            fn gru_gates($gi: F<Self>, $gh: F<Self>, $h: F<Self>) -> F<Self> $gru

            fn gru_gates_backward(
                $gi_: F<Self>, $gh_: F<Self>, $h_: F<Self>, $grad__: F<Self>,
            ) -> (F<Self>, F<Self>, F<Self>)
                $gru_backward

            fn gathered_attention(
                $gq: F<Self>, $ta: F<Self>, $ia: I<Self>, $tb: F<Self>, $ib: I<Self>,
                $gkeep: F<Self>, $scale: F<Self>,
            ) -> F<Self>
                $gathered

            fn gathered_attention_backward(
                $gq_: F<Self>, $ta_: F<Self>, $ia_: I<Self>, $tb_: F<Self>, $ib_: I<Self>,
                $gkeep_: F<Self>, $scale_: F<Self>, $grad___: F<Self>,
            ) -> (F<Self>, F<Self>, F<Self>)
                $gathered_backward
        }
    };
}
pub(crate) use fused_backend;

/// Output shapes of the fused operations for their fusion registration, from the inputs' specs.
#[cfg(feature = "cube")]
mod fusion_meta {
    use burn::backend::fusion::custom::TensorSpec;
    use burn::tensor::Shape;

    /// `[n]`, `[T]` → `[n, T]`.
    pub fn outer(dt: &Shape, w: &Shape) -> Shape {
        Shape::new([dt[0], w[0]])
    }

    /// `[n]`, `[T]` → `[n, T]` of `w`'s type.
    pub fn outer_of(dt: &TensorSpec, w: &TensorSpec) -> TensorSpec {
        TensorSpec::new(outer(&dt.shape, &w.shape), w.dtype)
    }

    /// `[n, T]` → `[T]`.
    pub fn columns(x: &TensorSpec) -> TensorSpec {
        TensorSpec::new(Shape::new([x.shape[1]]), x.dtype)
    }
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
