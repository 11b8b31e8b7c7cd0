//! The gathered attention on flex's tensors, and its form whose slots carry rows of their own
//! ([`SlotRowsBackend`]): in TGAT's layer each slot's edge features sit between the neighbour's
//! node row and its Δt's encoding. Read in place, they need no `[N·K, ·]` concatenation (with the
//! encodings gathered into it) in the forward pass, and as data they get no gradient in the
//! backward, where a concatenation's gradient would be written in full to keep the encodings'
//! part. Training on flex runs every gathered attention through this form (slots without rows of
//! their own have them zero wide), because its backward keeps the forward's softmax weights.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn_flex::FlexTensor;

use super::{floats, gathered, rows, tensor};
use crate::autodiff::finish;

/// [`FusedBackend::gathered_attention`](crate::backend::FusedBackend::gathered_attention) whose
/// slots also have rows of their own, `e` `[N·K, Ce]`, between `a`'s and `b`'s columns: queries
/// and outputs are `[H, N, Ca + Ce + Cb]` (`Ce` may be 0). `e` is data: no gradient flows to
/// it. (The backward is flex's own, behind the autodiff implementation.)
#[backend_extension(Flex, Autodiff)]
pub trait SlotRowsBackend: Backend {
    /// The attention → `[H, N, Ca + Ce + Cb]`.
    #[allow(clippy::too_many_arguments)] // the two-table form's seven inputs and `e`
    fn slot_rows_attention(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        e: FloatTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// A table and each slot's row in it.
type Table<'a> = (&'a FlexTensor, &'a FlexTensor);

/// The attention's output from `[q, keep, scale]`, the tables and the slots' own rows if any,
/// and its softmax weights (`[n, h, k]`, for [`backward`]).
pub(super) fn forward(
    [q, keep, scale]: [&FlexTensor; 3],
    a: Table<'_>,
    e: Option<&FlexTensor>,
    b: Table<'_>,
) -> (FlexTensor, FlexTensor) {
    let d = dims(q, a.0, e, b.0, keep);
    let slots = slot_rows(a, e, b);
    let (out, weights) = gathered::forward(&floats(q), &slots, &floats(keep), &floats(scale), d);
    (
        tensor(out, [d.h, d.n, q.shape()[2]]),
        tensor(weights, [d.n, d.h, d.k]),
    )
}

/// The gradients of `q` and the two tables, from `[q, keep, scale, grad]`, the inputs as
/// [`forward`] takes them and the forward's softmax weights (taken again when not kept).
pub(super) fn backward(
    [q, keep, scale, grad]: [&FlexTensor; 4],
    a: Table<'_>,
    e: Option<&FlexTensor>,
    b: Table<'_>,
    weights: Option<&FlexTensor>,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let weights = match weights {
        Some(w) => w.clone(),
        None => forward([q, keep, scale], a, e, b).1,
    };
    let d = dims(q, a.0, e, b.0, keep);
    let tables = [a.0.shape()[0], b.0.shape()[0]];
    let slots = slot_rows(a, e, b);
    let [q_values, keep, scale, grad, weights] = [q, keep, scale, grad, &weights].map(floats);
    let (dq, da, db) = gathered::backward(
        &q_values,
        &slots,
        [&keep, &scale, &weights],
        &grad,
        d,
        tables,
    );
    (
        tensor(dq, [d.h, d.n, q.shape()[2]]),
        tensor(da, [tables[0], d.ca]),
        tensor(db, [tables[1], d.cb]),
    )
}

/// The tables, each slot's rows in them and the slots' own rows, as host slices.
fn slot_rows<'a>(
    (a, ia): Table<'a>,
    e: Option<&'a FlexTensor>,
    (b, ib): Table<'a>,
) -> gathered::Rows<'a> {
    gathered::Rows {
        a: floats(a),
        ia: rows(ia),
        e: e.map_or(Default::default(), floats),
        b: floats(b),
        ib: rows(ib),
    }
}

/// Shapes of a gathered attention from `q` `[h, n, c]`, the tables, the own rows and `keep`
/// `[n, k]`.
///
/// # Panics
/// If the widths do not add up to the query's, or the own rows are not one per slot.
fn dims(
    q: &FlexTensor,
    a: &FlexTensor,
    e: Option<&FlexTensor>,
    b: &FlexTensor,
    keep: &FlexTensor,
) -> gathered::Dims {
    let (q, keep) = (q.shape(), keep.shape());
    let d = gathered::Dims {
        n: q[1],
        k: keep[1],
        h: q[0],
        ca: a.shape()[1],
        ce: e.map_or(0, |e| e.shape()[1]),
        cb: b.shape()[1],
    };
    assert_eq!(
        q[2],
        d.ca + d.ce + d.cb,
        "query width ≠ the rows' widths together"
    );
    if let Some(e) = e {
        assert_eq!(e.shape()[0], d.n * d.k, "own rows ≠ one per slot");
    }
    d
}

impl SlotRowsBackend for Flex {
    fn slot_rows_attention(
        q: FlexTensor,
        a: FlexTensor,
        ia: FlexTensor,
        e: FlexTensor,
        b: FlexTensor,
        ib: FlexTensor,
        keep: FlexTensor,
        scale: FlexTensor,
    ) -> FlexTensor {
        forward([&q, &keep, &scale], (&a, &ia), Some(&e), (&b, &ib)).0
    }
}

/// The attention with own rows under autodiff on flex: gradients for the query and the two
/// tables, from the host loops directly (only flex implements the operation).
#[derive(Debug)]
struct SlotRowsBackward;

impl Backward<Flex, 3> for SlotRowsBackward {
    /// `q`, `a`, `ia`, `e`, `b`, `ib`, `keep`, `scale`, and the forward's softmax weights.
    type State = [FlexTensor; 9];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [q, a, ia, e, b, ib, keep, scale, weights] = &ops.state;
        let (dq, da, db) = backward(
            [q, keep, scale, &grad],
            (a, ia),
            Some(e),
            (b, ib),
            Some(weights),
        );
        for (parent, g) in ops.parents.into_iter().zip([dq, da, db]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, g);
            }
        }
    }
}

impl<C: CheckpointStrategy> SlotRowsBackend for Autodiff<Flex, C> {
    fn slot_rows_attention(
        q: FloatTensor<Self>,
        a: FloatTensor<Self>,
        ia: IntTensor<Self>,
        e: FloatTensor<Self>,
        b: FloatTensor<Self>,
        ib: IntTensor<Self>,
        keep: FloatTensor<Self>,
        scale: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let prep = SlotRowsBackward.prepare::<C>([q.node(), a.node(), b.node()]);
        let [q, a, e, b, keep, scale] = [q, a, e, b, keep, scale].map(|t| t.into_primitive());
        let (out, weights) = forward([&q, &keep, &scale], (&a, &ia), Some(&e), (&b, &ib));
        finish(
            prep.compute_bound().stateful(),
            [q, a, ia, e, b, ib, keep, scale, weights],
            out,
        )
    }
}
