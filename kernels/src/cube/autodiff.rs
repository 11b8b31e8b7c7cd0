//! [`MemoryBackend`] under autodiff, for any inner backend that implements it (`CubeBackend`, or
//! `Fusion<CubeBackend>` when burn fuses): the fetch gets a backward for the time-encoding
//! parameters (its only gradient path), the update none (memories are stored detached).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, TensorMetadata};
use burn::tensor::{Shape, Slice};

use super::{MemoryBackend, Store};
use crate::backend::FusedBackend;

/// What the fetch's backward needs to recompute Δt: last-update times, mail times, validity,
/// node ids, `w`, `b`, the clock and `now`, and the mail width.
type FetchState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    IntTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    usize,
);

#[derive(Debug)]
struct FetchBackward;

impl<B: MemoryBackend + FusedBackend> Backward<B, 2> for FetchBackward {
    type State = FetchState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (last_update, mail_time, mail_valid, nodes, w, b, clock, now, mail_dim) = ops.state;
        let shape = grad.shape();
        let (count, slots, time_dim) = (shape[0], shape[1], shape[2] - mail_dim);
        if count == 0 {
            // Nothing fetched: zero gradients (and no burn op on an empty tensor).
            let [w_node, b_node] = ops.parents;
            for (node, like) in [(w_node, w), (b_node, b)] {
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::float_mul_scalar(like, 0.0.into()));
                }
            }
            return;
        }
        let all = Slice {
            start: 0,
            end: None,
            step: 1,
        };
        let time_part = Slice {
            start: mail_dim as isize,
            end: None,
            step: 1,
        };
        let g = B::float_slice(grad, &[all, all, time_part]);
        let g = B::float_reshape(g, Shape::new([count * slots, time_dim]));
        // Δt as in the forward (`reference::mail_dt`).
        let last = B::float_select(last_update, 0, nodes.clone());
        let last = B::float_reshape(last, Shape::new([count, 1]));
        let part = |i: isize| {
            let one = Slice {
                start: i,
                end: Some(i + 1),
                step: 1,
            };
            B::float_reshape(B::float_slice(clock.clone(), &[one]), Shape::new([1, 1]))
        };
        let (sign, from_last) = (part(0), part(1));
        let now = B::float_reshape(now, Shape::new([count, 1]));
        let from_now = B::float_add_scalar(B::float_neg(from_last.clone()), 1.0.into());
        let base = B::float_add(B::float_mul(last, from_last), B::float_mul(now, from_now));
        let dt = B::float_mul(
            B::float_mul(
                B::float_sub(B::float_select(mail_time, 0, nodes.clone()), base),
                sign,
            ),
            B::float_select(mail_valid, 0, nodes),
        );
        let dt = B::float_reshape(dt, Shape::new([count * slots]));
        let (_, sine) = B::time_encoding_with_sine(dt.clone(), w, b);
        let (dw, db) = B::time_encoding_backward(dt, sine, g);
        let [w_node, b_node] = ops.parents;
        for (node, g) in [(w_node, dw), (b_node, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// An output with no gradient path.
fn constant<B: MemoryBackend, C: CheckpointStrategy>(
    t: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <Autodiff<B, C> as AutodiffBackend>::from_inner(t)
}

super::memory_backend! {
    impl[B: MemoryBackend + FusedBackend, C: CheckpointStrategy] for Autodiff<B, C>;
    memory_fetch(store, nodes, w, b, clock, now) {
        let prep = FetchBackward.prepare::<C>([w.node(), b.node()]);
        let prep = prep.compute_bound().stateful();
        let store = inner(store);
        let mail_dim = store.mail.shape()[2];
        let (w, b) = (w.into_primitive(), b.into_primitive());
        let (clock, now) = (clock.into_primitive(), now.into_primitive());
        let state = (
            store.last_update.clone(),
            store.mail_time.clone(),
            store.mail_valid.clone(),
            nodes.clone(),
            w.clone(),
            b.clone(),
            clock.clone(),
            now.clone(),
            mail_dim,
        );
        let (out_memory, time, input, keep) = B::memory_fetch(store, nodes, w, b, clock, now);
        let input = match prep {
            OpsKind::Tracked(prep) => prep.finish(state, input),
            OpsKind::UnTracked(prep) => prep.finish(input),
        };
        let [out_memory, time, keep] = [out_memory, time, keep].map(constant::<B, C>);
        (out_memory, time, input, keep)
    }
    memory_update(store, nodes, times, rows, targets, mail_times, mails) {
        let [times, rows, mail_times, mails] =
            [times, rows, mail_times, mails].map(|t| t.into_primitive());
        let out = B::memory_update(inner(store), nodes, times, rows, targets, mail_times, mails);
        Store {
            memory: constant::<B, C>(out.memory),
            last_update: constant::<B, C>(out.last_update),
            mail: constant::<B, C>(out.mail),
            mail_time: constant::<B, C>(out.mail_time),
            mail_valid: constant::<B, C>(out.mail_valid),
        }
    }
}

/// The store's primitives without their autodiff wrappers (the store is never differentiated).
fn inner<B: MemoryBackend, C: CheckpointStrategy>(store: Store<Autodiff<B, C>>) -> Store<B> {
    Store {
        memory: store.memory.into_primitive(),
        last_update: store.last_update.into_primitive(),
        mail: store.mail.into_primitive(),
        mail_time: store.mail_time.into_primitive(),
        mail_valid: store.mail_valid.into_primitive(),
    }
}
