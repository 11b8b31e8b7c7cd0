//! [`FusedBackend`] under autodiff, for any inner backend that implements it: each operation
//! records its inputs and calls the inner backend's backward pass.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend};

use crate::backend::FusedBackend;

/// Registers each gradient with its parent, for the parents that are tracked. (A macro: the
/// parents' node type is not nameable outside burn-autodiff.)
macro_rules! register {
    ($grads:expr, $parents:expr, [$($g:expr),*]) => {
        for (parent, g) in $parents.into_iter().zip([$($g),*]) {
            if let Some(node) = parent {
                $grads.register::<B>(node.id, g);
            }
        }
    };
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: FusedBackend> Backward<B, 3> for AttentionBackward {
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, keep) = ops.state;
        let (dq, dk, dv) = B::temporal_attention_backward(q, k, v, keep, grad);
        register!(grads, ops.parents, [dq, dk, dv]);
    }
}

#[derive(Debug)]
struct TimeEncodingBackward;

impl<B: FusedBackend> Backward<B, 2> for TimeEncodingBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (dt, w, b) = ops.state;
        let (dw, db) = B::time_encoding_backward(dt, w, b, grad);
        register!(grads, ops.parents, [dw, db]);
    }
}

#[derive(Debug)]
struct GruBackward;

impl<B: FusedBackend> Backward<B, 3> for GruBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (gi, gh, h) = ops.state;
        let (dgi, dgh, dh) = B::gru_gates_backward(gi, gh, h, grad);
        register!(grads, ops.parents, [dgi, dgh, dh]);
    }
}

#[derive(Debug)]
struct GatheredAttentionBackward;

impl<B: FusedBackend> Backward<B, 3> for GatheredAttentionBackward {
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        IntTensor<B>,
        FloatTensor<B>,
        IntTensor<B>,
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, a, ia, b, ib, keep, scale) = ops.state;
        let (dq, da, db) = B::gathered_attention_backward(q, a, ia, b, ib, keep, scale, grad);
        register!(grads, ops.parents, [dq, da, db]);
    }
}

/// An output with no gradient path.
fn constant<B: FusedBackend, C: CheckpointStrategy>(
    t: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <Autodiff<B, C> as AutodiffBackend>::from_inner(t)
}

impl<B: FusedBackend, C: CheckpointStrategy> FusedBackend for Autodiff<B, C> {
    fn temporal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let keep = keep.into_primitive();
        let prep = AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful();
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        let out = B::temporal_attention(q.clone(), k.clone(), v.clone(), keep.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, keep), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn temporal_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dq, dk, dv) = B::temporal_attention_backward(
            q.into_primitive(),
            k.into_primitive(),
            v.into_primitive(),
            keep.into_primitive(),
            grad.into_primitive(),
        );
        (
            constant::<B, C>(dq),
            constant::<B, C>(dk),
            constant::<B, C>(dv),
        )
    }

    /// Δt is data: gradients flow to `w` and `b` only.
    fn time_encoding(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let dt = dt.into_primitive();
        let prep = TimeEncodingBackward
            .prepare::<C>([w.node(), b.node()])
            .compute_bound()
            .stateful();
        let (w, b) = (w.into_primitive(), b.into_primitive());
        let out = B::time_encoding(dt.clone(), w.clone(), b.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish((dt, w, b), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn time_encoding_backward(
        dt: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dw, db) = B::time_encoding_backward(
            dt.into_primitive(),
            w.into_primitive(),
            b.into_primitive(),
            grad.into_primitive(),
        );
        (constant::<B, C>(dw), constant::<B, C>(db))
    }

    fn gru_gates(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = GruBackward
            .prepare::<C>([gi.node(), gh.node(), h.node()])
            .compute_bound()
            .stateful();
        let (gi, gh, h) = (gi.into_primitive(), gh.into_primitive(), h.into_primitive());
        let out = B::gru_gates(gi.clone(), gh.clone(), h.clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish((gi, gh, h), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn gru_gates_backward(
        gi: FloatTensor<Self>,
        gh: FloatTensor<Self>,
        h: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dgi, dgh, dh) = B::gru_gates_backward(
            gi.into_primitive(),
            gh.into_primitive(),
            h.into_primitive(),
            grad.into_primitive(),
        );
        (
            constant::<B, C>(dgi),
            constant::<B, C>(dgh),
            constant::<B, C>(dh),
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
        let (keep, scale) = (keep.into_primitive(), scale.into_primitive());
        let prep = GatheredAttentionBackward
            .prepare::<C>([q.node(), a.node(), b.node()])
            .compute_bound()
            .stateful();
        let (q, a, b) = (q.into_primitive(), a.into_primitive(), b.into_primitive());
        let out = B::gathered_attention(
            q.clone(),
            a.clone(),
            ia.clone(),
            b.clone(),
            ib.clone(),
            keep.clone(),
            scale.clone(),
        );
        match prep {
            OpsKind::Tracked(prep) => prep.finish((q, a, ia, b, ib, keep, scale), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
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
        let (dq, da, db) = B::gathered_attention_backward(
            q.into_primitive(),
            a.into_primitive(),
            ia,
            b.into_primitive(),
            ib,
            keep.into_primitive(),
            scale.into_primitive(),
            grad.into_primitive(),
        );
        (
            constant::<B, C>(dq),
            constant::<B, C>(da),
            constant::<B, C>(db),
        )
    }
}
