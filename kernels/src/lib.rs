//! # mspipe-kernels
//!
//! The hot spots of a memory-based temporal GNN as fused kernels: the **memory fetch** (gather
//! memories, mailboxes and times, encode Δt, build the updater's input), the **memory update**
//! (scatter memories and mails, latest event wins, mailbox FIFO), the **time encoding**
//! cos(Δt·w + b), the **GRU gates**, and **temporal attention over gathered rows** (scores, padding
//! mask, softmax and weighted sum per root and head, whose keys and values are the slots' node and
//! Δt rows, read straight from per-node and per-Δt tables, with the projections folded out of the
//! slots), each with its backward; and on flex burn's **linear layer** and batched product as
//! operations whose outputs are written once, **row selections** and the model's **per-row
//! choices** with parallel backward passes, and **Adam's update** of a parameter as one pass.
//!
//! One call per operation, in burn 0.22's device-dispatch idiom. All but the memory operations go
//! through the [`backend::FusedBackend`] extension (with hand-written backward passes under
//! autodiff): `#[cube]` kernels on a cubecl device (features `wgpu`, `cuda`; registered as custom
//! operations of burn's `Fusion`, which is what burn runs on cubecl devices by default), host loops
//! on flex (feature `flex`). The memory fetch and update work on a device-resident store
//! ([`DeviceMemory`], written through [`Writes`]) and run as kernels on cubecl devices
//! ([`cube::MemoryBackend`]); `mspipe-train` keeps node memory there on such devices. Everywhere
//! else the calls run the same math in ordinary burn ops ([`reference`](mod@reference)), which is also what the
//! fused paths are tested against.
//!
//! ```
//! use burn::prelude::*;
//! use mspipe_kernels::gru_gates;
//!
//! let device = Device::flex();
//! // One row of width 1: all gate pre-activations 0 → r = z = ½, n = tanh(0) = 0, so h' = h/2.
//! let zeros = Tensor::<2>::zeros([1, 3], &device);
//! let h = Tensor::<2>::from_floats([[4.0]], &device);
//! let out = gru_gates(zeros.clone(), zeros, h);
//! out.into_data().assert_approx_eq::<f32>(
//!     &TensorData::from([[2.0f32]]),
//!     burn::tensor::Tolerance::default(),
//! );
//! ```

use burn::prelude::*;

mod adam;
#[cfg(feature = "fused")]
mod autodiff;
#[cfg(feature = "fused")]
pub mod backend;
#[cfg(feature = "cube")]
// burn's `ExtensionType` derive (on `cube::Store`) generates a type whose fields carry no docs;
// `cube::Store` and `cube::Writes` mirror `DeviceMemory` and `Writes`, documented field by field.
#[allow(missing_docs)]
pub mod cube;
#[cfg(feature = "flex")]
mod flex;
pub mod reference;
#[cfg(feature = "wgpu")]
pub mod runtime;

pub use adam::{AdamMoments, AdamScalars, adam_step};

/// Node memory resident on a device: what [`fetch`] reads and [`update`] writes.
#[derive(Debug, Clone)]
pub struct DeviceMemory {
    /// `[N, d]` memories.
    pub memory: Tensor<2>,
    /// `[N]` last-update times.
    pub last_update: Tensor<1>,
    /// `[N, M, mail_dim]` mailboxes, oldest first.
    pub mail: Tensor<3>,
    /// `[N, M]` mail times.
    pub mail_time: Tensor<2>,
    /// `[N, M]` 1 where the slot holds a mail, else 0.
    pub mail_valid: Tensor<2>,
}

impl DeviceMemory {
    /// Zero state for `nodes` nodes: memories of width `dim`, `slots` mails of width `mail_dim`.
    pub fn zeros(nodes: usize, dim: usize, mail_dim: usize, slots: usize, device: &Device) -> Self {
        DeviceMemory {
            memory: Tensor::zeros([nodes, dim], device),
            last_update: Tensor::zeros([nodes], device),
            mail: Tensor::zeros([nodes, slots, mail_dim], device),
            mail_time: Tensor::zeros([nodes, slots], device),
            mail_valid: Tensor::zeros([nodes, slots], device),
        }
    }
}

/// What [`fetch`] returns for `U` nodes.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `[U, d]` memories.
    pub memory: Tensor<2>,
    /// `[U]` time of the memory the updater makes from this input: the newest mail's time, or the
    /// last update for a node without mail.
    pub time: Tensor<1>,
    /// `[U, M, mail_dim + T]`: each mail ⊕ cos(Δt·w + b), Δt by the fetch's [`Clock`] (0 for an
    /// empty slot).
    pub input: Tensor<3>,
    /// `[U, M]` 1 where the slot holds a mail.
    pub keep: Tensor<2>,
}

/// `$ext::$op` (by default `FusedBackend::$op`) of the arguments' dispatch primitives, as a
/// tensor.
#[cfg(feature = "fused")]
macro_rules! fused {
    ($op:ident($($arg:expr),*)) => {
        fused!(backend::FusedBackend, $op($($arg),*))
    };
    ($ext:path, $op:ident($($arg:expr),*)) => {
        Tensor::from_dispatch(<burn::backend::Dispatch as $ext>::$op($($arg.into_dispatch()),*))
    };
}

/// The GRU cell's gates from its two products: `gi`, `gh` `[n, 3d]`, `h` `[n, d]` → `h'`; see
/// [`reference::gru_gates`].
pub fn gru_gates(gi: Tensor<2>, gh: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "fused")]
    if backend::runs_on(&h.device()) {
        return fused!(gru_gates(gi, gh, h));
    }
    reference::gru_gates(gi, gh, h)
}

/// The Elman RNN cell's activation from its two products: `tanh(gi + gh)`. On flex one
/// operation, forward and backward, in parallel, with a vectorised tanh within 2e-7 of the exact
/// value (burn's runs libm's element by element on one thread).
///
/// # Shapes
/// - `gi`, `gh`: `[n, d]`; output: `[n, d]`.
pub fn rnn_gates(gi: Tensor<2>, gh: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&gi.device()) {
        return fused!(flex::RnnBackend, rnn_gates(gi, gh));
    }
    burn::tensor::activation::tanh(gi + gh)
}

/// Layer normalisation of rows: each row of `x` less its mean, over its deviation (`epsilon`
/// added to the biased variance), times `gamma` plus `beta`, as burn's
/// [`layer_norm`](burn::tensor::module::layer_norm). On flex one parallel operation forward and
/// one backward (burn composes it from nine elementwise operations under autodiff); the same
/// values to rounding.
///
/// # Shapes
/// - `x`: `[n, d]`, `gamma`, `beta`: `[d]`; output: `[n, d]`.
///
/// # Panics
/// If `d` is 0.
pub fn layer_norm(x: Tensor<2>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&x.device()) {
        use burn::backend::Dispatch;
        let [x, gamma, beta] = [
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
        ];
        return Tensor::from_dispatch(<Dispatch as flex::LayerNormBackend>::layer_norm_rows(
            x, gamma, beta, epsilon,
        ));
    }
    burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon)
}

/// burn's linear layer `x·w + b` ([`burn::tensor::module::linear`]). On flex one operation,
/// forward and backward, that writes each output once; the same values to the bit.
///
/// # Shapes
/// - `x`: `[n, in]`, `w`: `[in, out]`, `b`: `[out]`; output: `[n, out]`.
pub fn linear(x: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&x.device()) {
        return fused!(flex::LinearBackend, linear_forward(x, w, b));
    }
    burn::tensor::module::linear(x, w, Some(b))
}

/// [`linear`] on `a` and `b` side by side, `[a ‖ b]·w + bias`, the same values to the bit. On
/// flex one operation whose backward forms each input's gradient alone, and only for an input
/// that is tracked: an input that is data (a memory updater's stored mails, beside their learned
/// time encodings) costs no product.
///
/// # Shapes
/// - `a`: `[n, ca]`, `b`: `[n, cb]`, `w`: `[ca + cb, out]`, `bias`: `[out]`; output: `[n, out]`.
///
/// # Panics
/// If `a` and `b` have different row counts or `w` is not `ca + cb` rows.
pub fn linear_of_columns(a: Tensor<2>, b: Tensor<2>, w: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&a.device()) {
        return fused!(flex::LinearColumnsBackend, linear_of_columns(a, b, w, bias));
    }
    linear(concat_columns(a, b), w, bias)
}

/// burn's batched `lhs.matmul(rhs)`: on flex one operation, forward and backward, whose outputs
/// are written once (strided views read in place; `lhs`'s gradient laid out as `lhs` is, so the
/// views that made it need no copy to undo). Products like the attention's per-head ones run on
/// the GEMM burn calls, the same values to the bit; those whose output rows take few
/// multiply-adds through a thin side (at most 8,192, through at most 16: a node's mailbox by its
/// query) as plain loops, which a GEMM call's set-up would outweigh — within rounding of burn's
/// values, each row's bits the same whatever the other rows and the thread count.
///
/// # Shapes
/// - `lhs`: `[B, m, k]`, `rhs`: `[B, k, n]`; output: `[B, m, n]`.
pub fn batched_matmul(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<3> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&lhs.device()) {
        return batched_product(lhs, rhs, flex::BatchLayout::Stacked);
    }
    lhs.matmul(rhs)
}

/// [`batched_matmul`] with the batches' products side by side, as an attention layer
/// concatenates its heads: row `i` of the output is row `i` of every batch's product, batch after
/// batch. On flex the products are written there (no copy to concatenate them, none in the
/// backward to split the gradient).
///
/// # Shapes
/// - `lhs`: `[B, m, k]`, `rhs`: `[B, k, n]`; output: `[m, B·n]`.
pub fn batched_matmul_side_by_side(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<2> {
    let [batches, m, _] = lhs.dims();
    let n = rhs.dims()[2];
    #[cfg(feature = "flex")]
    let out = if flex::runs_on(&lhs.device()) {
        batched_product(lhs, rhs, flex::BatchLayout::SideBySide)
    } else {
        lhs.matmul(rhs)
    };
    #[cfg(not(feature = "flex"))]
    let out = lhs.matmul(rhs);
    out.swap_dims(0, 1).reshape([m, batches * n])
}

/// The flex batched product, `layout` as given.
#[cfg(feature = "flex")]
fn batched_product(lhs: Tensor<3>, rhs: Tensor<3>, layout: flex::BatchLayout) -> Tensor<3> {
    use burn::backend::Dispatch;
    let (lhs, rhs) = (lhs.into_dispatch(), rhs.into_dispatch());
    Tensor::from_dispatch(<Dispatch as flex::LinearBackend>::batched_product(
        lhs, rhs, layout,
    ))
}

/// burn's `Tensor::cat(vec![a, b], 1)`: the two inputs' columns side by side. On flex one
/// operation whose rows are copied in parallel; each input's gradient is its columns of the
/// output's, as with burn's `cat`.
///
/// # Shapes
/// - `a`: `[n, ca]`, `b`: `[n, cb]`; output: `[n, ca + cb]`.
///
/// # Panics
/// If the inputs have different row counts.
pub fn concat_columns(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&a.device()) {
        return fused!(flex::ColumnsBackend, concat_columns(a, b));
    }
    Tensor::cat(vec![a, b], 1)
}

/// burn's `table.select(0, index)`: rows `index` of `table`. On flex one operation that gathers
/// in parallel and whose backward sums each table row's gradient by ranges of rows in parallel,
/// in burn's order (the same values to the bit).
///
/// # Shapes
/// - `table`: `[U, d]`, `index`: `[n]`; output: `[n, d]`.
///
/// # Panics
/// If an index is not a row of `table`.
pub fn select_rows(table: Tensor<2>, index: Tensor<1, Int>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&table.device()) {
        return fused!(flex::SelectRowsBackend, select_rows(table, index));
    }
    table.select(0, index)
}

/// Row `i` of `a` where `keep[i]` ≠ 0, else row `i` of `b` (`a·keep + b·(1 − keep)` by rows):
/// on flex one operation, rows in parallel, forward and backward; the same values but for the
/// sign of a zero.
///
/// # Shapes
/// - `keep`: `[n]` of 0 and 1, `a`, `b`: `[n, d]`; output: `[n, d]`.
pub fn rows_where(keep: Tensor<1>, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&a.device()) {
        return fused!(flex::MaskedRowsBackend, rows_where(keep, a, b));
    }
    let keep: Tensor<2> = keep.unsqueeze_dim(1);
    a * keep.clone() + b * (keep.neg() + 1.0)
}

/// `bias` added to the rows of `x` where `keep[i]` ≠ 0 (`x + bias·keep`): on flex one operation,
/// rows in parallel, forward and backward; the same values but for the sign of a zero.
///
/// # Shapes
/// - `x`: `[n, d]`, `bias`: `[d]`, `keep`: `[n]` of 0 and 1; output: `[n, d]`.
pub fn add_bias_where(x: Tensor<2>, bias: Tensor<1>, keep: Tensor<1>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if flex::runs_on(&x.device()) {
        return fused!(flex::MaskedRowsBackend, add_bias_where(x, bias, keep));
    }
    x + bias.unsqueeze::<2>() * keep.unsqueeze_dim(1)
}

/// What [`gathered_attention`] attends over: per root `K` slots, slot `j` of root `i` being row
/// `ia[i·K + j]` of the table `a`, then the slot's own row `e[i·K + j]` if there are any, then
/// row `ib[i·K + j]` of the table `b` (in TGAT's layer, a neighbour's node row, the edge's
/// features and its Δt's encoding).
///
/// # Shapes
/// - `q`: `[H, N, Ca + Ce + Cb]`, heads outermost (as per-head products come)
/// - `a`: `[Ua, Ca]`, `ia`: `[N·K]`
/// - `e`: `[N·K, Ce]` (`Ce` = 0 without)
/// - `b`: `[Ub, Cb]`, `ib`: `[N·K]`
/// - `keep`: `[N, K]`, 1 for a real slot and 0 for padding
/// - `scale`: `[H, N, K]`, the weights' multipliers (attention dropout; ones without it)
#[derive(Debug, Clone)]
pub struct GatheredAttention {
    /// The queries.
    pub q: Tensor<3>,
    /// The first table.
    pub a: Tensor<2>,
    /// Each slot's row of `a`.
    pub ia: Tensor<1, Int>,
    /// The slots' own rows: data, no gradient flows to them.
    pub e: Option<Tensor<2>>,
    /// The second table.
    pub b: Tensor<2>,
    /// Each slot's row of `b`.
    pub ib: Tensor<1, Int>,
    /// Which slots are real.
    pub keep: Tensor<2>,
    /// What multiplies each head's weights after the softmax.
    pub scale: Tensor<3>,
}

/// Attention over the slots' rows, gathered from two tables beside the slots' own rows →
/// `[H, N, Ca + Ce + Cb]`; see [`reference::gathered_attention`]. No `[N·K, ·]` tensor is formed in
/// the forward pass on flex; the kernels of cubecl devices take two tables, so there the own rows
/// and `b`'s are put side by side first. No gradient flows to `scale` or `e`.
pub fn gathered_attention(input: GatheredAttention) -> Tensor<3> {
    // On flex one operation whatever the own rows (none: zero wide), whose backward keeps the
    // forward's softmax weights.
    #[cfg(feature = "flex")]
    if flex::runs_on(&input.q.device()) {
        let GatheredAttention {
            q,
            a,
            ia,
            e,
            b,
            ib,
            keep,
            scale,
        } = input;
        let e = e.unwrap_or_else(|| Tensor::zeros([ia.dims()[0], 0], &q.device()));
        return fused!(
            flex::SlotRowsBackend,
            slot_rows_attention(q, a, ia, e, b, ib, keep, scale)
        );
    }
    let x = input.own_rows_into_b();
    #[cfg(feature = "fused")]
    if backend::runs_on(&x.q.device()) {
        return fused!(gathered_attention(
            x.q, x.a, x.ia, x.b, x.ib, x.keep, x.scale
        ));
    }
    reference::gathered_attention(x)
}

impl GatheredAttention {
    /// The same attention with the own rows moved into `b`: `b` ← `[e ‖ b[ib]]`, one row per
    /// slot.
    pub fn own_rows_into_b(self) -> Self {
        let Some(e) = self.e else { return self };
        let slots = e.dims()[0] as i64;
        let ib = Tensor::arange(0..slots, &e.device());
        GatheredAttention {
            b: Tensor::cat(vec![e.detach(), self.b.select(0, self.ib)], 1),
            ib,
            e: None,
            ..self
        }
    }
}

/// TGAT's time encoding cos(Δt·w + b): `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`; see
/// [`reference::time_encoding`]. Gradients flow to `w` and `b` (Δt is data).
pub fn time_encoding(dt: Tensor<1>, w: Tensor<1>, b: Tensor<1>) -> Tensor<2> {
    #[cfg(feature = "fused")]
    if backend::runs_on(&w.device()) {
        return fused!(time_encoding(dt, w, b));
    }
    reference::time_encoding(dt, w, b)
}

/// Which Δt [`fetch`] encodes for each mail.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per fetch, moved into it: boxing buys nothing
pub enum Clock {
    /// Mail time minus the node's last update.
    SinceUpdate,
    /// Each fetched node's `now` (`[U]`, in the store's time) minus the mail time.
    Age {
        /// Per fetched node, the time its mails' ages are measured at.
        now: Tensor<1>,
    },
}

impl Clock {
    /// As the kernels read it for `count` fetched nodes: `[sign, from_last]` and `now` `[U]`,
    /// Δt = sign·(mail time − base) with base = from_last·last update + (1 − from_last)·now.
    /// Multiplying by 1 and adding 0 are exact, so [`Clock::SinceUpdate`] computes the plain
    /// difference bit for bit.
    pub fn tensors(self, count: usize, device: &Device) -> (Tensor<1>, Tensor<1>) {
        match self {
            Clock::SinceUpdate => (
                Tensor::from_floats([1.0, 1.0], device),
                Tensor::zeros([count], device),
            ),
            Clock::Age { now } => (Tensor::from_floats([-1.0, 0.0], device), now),
        }
    }

    /// The [`MailEncoding`] of `count` fetched nodes with time encoding parameters `w`, `b`.
    pub fn encoding(self, w: Tensor<1>, b: Tensor<1>, count: usize) -> MailEncoding {
        let (clock, now) = self.tensors(count, &w.device());
        MailEncoding { w, b, clock, now }
    }
}

/// How [`fetch`] encodes each mail's Δt: cos(Δt·w + b), Δt by a [`Clock`] as the kernels read it
/// (see [`Clock::encoding`]).
#[derive(Debug, Clone)]
pub struct MailEncoding {
    /// `[T]` the time encoding's frequencies.
    pub w: Tensor<1>,
    /// `[T]` the time encoding's phases.
    pub b: Tensor<1>,
    /// `[2]` the clock's `[sign, from_last]` (see [`Clock::tensors`]).
    pub clock: Tensor<1>,
    /// `[U]` each fetched node's present time (read only where `from_last` is 0).
    pub now: Tensor<1>,
}

/// Gathers `nodes`' state and builds the updater input, with time encoding parameters `w`, `b`
/// (`[T]`) over the mails' Δt by `clock`; see [`reference::fetch`]. Gradients flow to `w` and `b`.
pub fn fetch(
    state: &DeviceMemory,
    nodes: Tensor<1, Int>,
    w: Tensor<1>,
    b: Tensor<1>,
    clock: Clock,
) -> Fetched {
    let encoding = clock.encoding(w, b, nodes.dims()[0]);
    #[cfg(feature = "cube")]
    if cube::runs_on(&encoding.w.device()) {
        return cube::fetch(state, nodes, encoding);
    }
    reference::fetch(state, nodes, encoding)
}

/// What a batch writes into [`DeviceMemory`]: memory rows, and mails. Memories and mails go to
/// separate node lists because a model may deliver mails to nodes whose memory it did not update
/// (APAN mails its endpoints' neighbours).
#[derive(Debug, Clone)]
pub struct Writes {
    /// `[B]` nodes whose memory is replaced.
    pub nodes: Tensor<1, Int>,
    /// `[B]` times of those memories (the new last-update times).
    pub times: Tensor<1>,
    /// `[B, d]` the memories.
    pub rows: Tensor<2>,
    /// `[T]` receivers of the mails.
    pub targets: Tensor<1, Int>,
    /// `[T]` mail times.
    pub mail_times: Tensor<1>,
    /// `[T, mail_dim]` the mails.
    pub mails: Tensor<2>,
}

impl Writes {
    /// One mail per memory write, at the memory's time: each event both updates its node and
    /// leaves it a mail.
    pub fn events(
        nodes: Tensor<1, Int>,
        times: Tensor<1>,
        rows: Tensor<2>,
        mails: Tensor<2>,
    ) -> Self {
        Writes {
            targets: nodes.clone(),
            mail_times: times.clone(),
            nodes,
            times,
            rows,
            mails,
        }
    }
}

/// Applies a batch's [`Writes`]; see [`reference::update`]. Not differentiable (memories are
/// stored detached).
pub fn update(state: DeviceMemory, writes: Writes) -> DeviceMemory {
    #[cfg(feature = "cube")]
    if cube::runs_on(&writes.times.device()) {
        return cube::update(state, writes);
    }
    reference::update(state, writes)
}

/// Whether [`fetch`] and [`update`] run as kernels on `device` (a cubecl device), so that node
/// memory is best kept there as a [`DeviceMemory`]; elsewhere they run in burn ops.
pub fn memory_kernels_run_on(device: &Device) -> bool {
    #[cfg(feature = "cube")]
    if cube::runs_on(device) {
        return true;
    }
    let _ = device;
    false
}
