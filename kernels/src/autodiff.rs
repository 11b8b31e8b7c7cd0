//! [`FusedBackend`] under autodiff, for any inner backend that implements it: each operation
//! records its inputs and calls the inner backend's backward pass.

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend};

use crate::backend::FusedBackend;

/// Registers the gradient `$g` with `$parent` when the parent is tracked, evaluating `$g` only
/// then. (Macros: the parents' node type is not nameable outside burn-autodiff.)
macro_rules! register_tracked {
    ($grads:expr, $parent:expr, $g:expr) => {
        if let Some(node) = $parent {
            $grads.register::<B>(node.id, $g);
        }
    };
}

/// Registers each gradient with its parent, for the parents that are tracked.
macro_rules! register {
    ($grads:expr, $parents:expr, [$($g:expr),*]) => {
        for (parent, g) in $parents.into_iter().zip([$($g),*]) {
            register_tracked!($grads, parent, g);
        }
    };
}
// Used outside this module by the flex route's own operations only.
#[cfg_attr(not(feature = "flex"), allow(unused_imports))]
pub(crate) use {register, register_tracked};

/// A unit struct `$name` (with the given doc) implementing burn's `Backward` for backends
/// `B: $bound`: the recorded state (typed `$ty`) and the parents are bound to the names given,
/// the output's gradient to `$grad`, and `$body` registers the gradients in `$grads`.
macro_rules! backward_with {
    (
        $(#[$doc:meta])*
        $name:ident<B: $bound:path>, $n:literal,
        |$grads:ident, $grad:ident, ($($input:ident: $ty:ident),+), $parents:pat_param| $body:block
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        struct $name;

        impl<B: $bound> burn::backend::autodiff::ops::Backward<B, $n> for $name {
            type State = ($($ty<B>),+);

            fn backward(
                self,
                ops: burn::backend::autodiff::ops::Ops<Self::State, $n>,
                $grads: &mut burn::backend::autodiff::grads::Gradients,
                _: &mut burn::backend::autodiff::checkpoint::base::Checkpointer,
            ) {
                let $grad = $grads.consume::<B>(&ops.node);
                let ($($input),+) = ops.state;
                let $parents = ops.parents;
                $body
            }
        }
    };
}
#[cfg_attr(not(feature = "flex"), allow(unused_imports))]
pub(crate) use backward_with;

/// A unit struct `$name` whose backward pass hands its recorded inputs (typed `$ty`) and the
/// output's gradient to `B::$op`, registering the `N` gradients it returns with the parents.
macro_rules! backward {
    ($name:ident, $n:literal: $op:ident($($input:ident: $ty:ident),+) -> ($($grad:ident),+)) => {
        backward_with!($name<B: FusedBackend>, $n, |grads, grad, ($($input: $ty),+), parents| {
            let ($($grad),+) = B::$op($($input),+, grad);
            register!(grads, parents, [$($grad),+]);
        });
    };
}

// Δt is data: gradients flow to `w` and `b` only.
backward!(TimeEncodingBackward, 2: time_encoding_backward(
    dt: FloatTensor, sine: FloatTensor
) -> (dw, db));
backward!(GruBackward, 3: gru_gates_backward(
    gi: FloatTensor, gh: FloatTensor, h: FloatTensor
) -> (dgi, dgh, dh));
backward!(GatheredAttentionBackward, 3: gathered_attention_backward(
    q: FloatTensor, a: FloatTensor, ia: IntTensor, b: FloatTensor, ib: IntTensor,
    keep: FloatTensor, scale: FloatTensor
) -> (dq, da, db));

/// An output with no gradient path.
pub(crate) fn constant<B: Backend, C: CheckpointStrategy>(
    t: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <Autodiff<B, C> as AutodiffBackend>::from_inner(t)
}

/// The output of an operation whose backward is `O`: recorded with `state` for the backward
/// pass when a parent is tracked.
pub(crate) fn finish<B: Backend, C: CheckpointStrategy, O: Backward<B, N>, const N: usize>(
    prep: OpsKind<O, B, O::State, C, N>,
    state: O::State,
    out: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match prep {
        OpsKind::Tracked(prep) => prep.finish(state, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

crate::backend::fused_backend! {
    impl[B: FusedBackend, C: CheckpointStrategy] for Autodiff<B, C>;
    // Δt is data: gradients flow to `w` and `b` only.
    time_encoding(dt, w, b) {
        let dt = dt.into_primitive();
        let prep = TimeEncodingBackward.prepare::<C>([w.node(), b.node()]);
        let prep = prep.compute_bound().stateful();
        let [w, b] = [w, b].map(|t| t.into_primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let (out, sine) = B::time_encoding_with_sine(dt.clone(), w, b);
                prep.finish((dt, sine), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::time_encoding(dt, w, b)),
        }
    }
    time_encoding_with_sine(dt, w, b) {
        let [dt, w, b] = [dt, w, b].map(|t| t.into_primitive());
        let (cos, sin) = B::time_encoding_with_sine(dt, w, b);
        (constant::<B, C>(cos), constant::<B, C>(sin))
    }
    time_encoding_backward(dt, sine, grad) {
        let [dt, sine, grad] = [dt, sine, grad].map(|t| t.into_primitive());
        let (dw, db) = B::time_encoding_backward(dt, sine, grad);
        (constant::<B, C>(dw), constant::<B, C>(db))
    }
    gru_gates(gi, gh, h) {
        let prep = GruBackward.prepare::<C>([gi.node(), gh.node(), h.node()]);
        let prep = prep.compute_bound().stateful();
        let [gi, gh, h] = [gi, gh, h].map(|t| t.into_primitive());
        let out = B::gru_gates(gi.clone(), gh.clone(), h.clone());
        finish(prep, (gi, gh, h), out)
    }
    gru_gates_backward(gi, gh, h, grad) {
        let [gi, gh, h, grad] = [gi, gh, h, grad].map(|t| t.into_primitive());
        let (dgi, dgh, dh) = B::gru_gates_backward(gi, gh, h, grad);
        let [dgi, dgh, dh] = [dgi, dgh, dh].map(constant::<B, C>);
        (dgi, dgh, dh)
    }
    gathered_attention(q, a, ia, b, ib, keep, scale) {
        let [keep, scale] = [keep, scale].map(|t| t.into_primitive());
        let prep = GatheredAttentionBackward.prepare::<C>([q.node(), a.node(), b.node()]);
        let prep = prep.compute_bound().stateful();
        let [q, a, b] = [q, a, b].map(|t| t.into_primitive());
        let inputs = (q, a, ia, b, ib, keep, scale);
        let (q, a, ia, b, ib, keep, scale) = inputs.clone();
        let out = B::gathered_attention(q, a, ia, b, ib, keep, scale);
        finish(prep, inputs, out)
    }
    gathered_attention_backward(q, a, ia, b, ib, keep, scale, grad) {
        let [q, a, b, keep, scale, grad] = [q, a, b, keep, scale, grad].map(|t| t.into_primitive());
        let (dq, da, db) = B::gathered_attention_backward(q, a, ia, b, ib, keep, scale, grad);
        let [dq, da, db] = [dq, da, db].map(constant::<B, C>);
        (dq, da, db)
    }
}
