//! The cubecl route: [`FusedBackend`](crate::backend::FusedBackend) for [`CubeBackend`] by `#[cube]` kernels, and the memory
//! operations, which only a device-resident store has, as a second extension ([`MemoryBackend`])
//! implemented for `CubeBackend` and, with the fetch's backward, for `Autodiff<CubeBackend>`.

mod autodiff;
mod fetch;
mod gathered;
mod gru;
mod launch;
mod time_encoding;
mod update;

use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, DispatchDevice, ExtensionType, backend_extension};
use burn::prelude::*;
use burn_cubecl::CubeBackend;

use crate::Writes as TensorWrites;
use crate::{DeviceMemory, Fetched, MailEncoding};

/// [`DeviceMemory`] on backend primitives.
#[derive(ExtensionType, Debug, Clone)]
#[extension_type(fusion)]
pub struct Store<B: Backend> {
    pub memory: FloatTensor<B>,
    pub last_update: FloatTensor<B>,
    pub mail: FloatTensor<B>,
    pub mail_time: FloatTensor<B>,
    pub mail_valid: FloatTensor<B>,
}

/// [`crate::Writes`] on backend primitives.
pub struct Writes<B: Backend> {
    pub nodes: IntTensor<B>,
    pub times: FloatTensor<B>,
    pub rows: FloatTensor<B>,
    pub targets: IntTensor<B>,
    pub mail_times: FloatTensor<B>,
    pub mails: FloatTensor<B>,
}

/// The memory fetch and update on backend primitives. Shapes as in the crate-level functions.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait MemoryBackend: Backend {
    /// The store, `nodes`, `w`, `b`, `clock`, `now` → (memory rows, memory times, updater input,
    /// keep).
    #[fusion(meta = fetched)]
    fn memory_fetch(
        #[extension_type] store: Store<Self>,
        nodes: IntTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        clock: FloatTensor<Self>,
        now: FloatTensor<Self>,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    );

    /// The store and the batch's memory writes (`nodes`, `times`, `rows`) and mails (`targets`,
    /// `mail_times`, `mails`) → the updated store.
    #[allow(clippy::too_many_arguments)]
    #[fusion(meta = |store, _nodes, _times, _rows, _targets, _mail_times, _mails| store.clone())]
    fn memory_update(
        #[extension_type] store: Store<Self>,
        nodes: IntTensor<Self>,
        times: FloatTensor<Self>,
        rows: FloatTensor<Self>,
        targets: IntTensor<Self>,
        mail_times: FloatTensor<Self>,
        mails: FloatTensor<Self>,
    ) -> Store<Self>;
}

/// `impl MemoryBackend` with the trait's signatures written once, here (as `fused_backend!` does
/// for the fused operations): the caller names each method's arguments and gives its body.
macro_rules! memory_backend {
    (
        impl[$($generics:tt)*] for $backend:ty;
        memory_fetch(
            $store:ident, $nodes:ident, $w:ident, $b:ident, $clock:ident, $now:ident
        ) $fetch:block
        memory_update(
            $store_:ident, $nodes_:ident, $times:ident, $rows:ident, $targets:ident,
            $mail_times:ident, $mails:ident
        ) $update:block
    ) => {
        impl<$($generics)*> $crate::cube::MemoryBackend for $backend {
            fn memory_fetch(
                $store: $crate::cube::Store<Self>,
                $nodes: burn::backend::tensor::IntTensor<Self>,
                $w: burn::backend::tensor::FloatTensor<Self>,
                $b: burn::backend::tensor::FloatTensor<Self>,
                $clock: burn::backend::tensor::FloatTensor<Self>,
                $now: burn::backend::tensor::FloatTensor<Self>,
            ) -> (
                burn::backend::tensor::FloatTensor<Self>,
                burn::backend::tensor::FloatTensor<Self>,
                burn::backend::tensor::FloatTensor<Self>,
                burn::backend::tensor::FloatTensor<Self>,
            ) $fetch

            fn memory_update(
                $store_: $crate::cube::Store<Self>,
                $nodes_: burn::backend::tensor::IntTensor<Self>,
                $times: burn::backend::tensor::FloatTensor<Self>,
                $rows: burn::backend::tensor::FloatTensor<Self>,
                $targets: burn::backend::tensor::IntTensor<Self>,
                $mail_times: burn::backend::tensor::FloatTensor<Self>,
                $mails: burn::backend::tensor::FloatTensor<Self>,
            ) -> $crate::cube::Store<Self> $update
        }
    };
}
use memory_backend;

/// Output specs of [`MemoryBackend::memory_fetch`] for its fusion registration: `[U, d]`, `[U]`,
/// `[U, M, mail_dim + T]`, `[U, M]`.
fn fetched(
    store: &StoreMetadata,
    nodes: &TensorSpec,
    w: &TensorSpec,
    _b: &TensorSpec,
    _clock: &TensorSpec,
    _now: &TensorSpec,
) -> (TensorSpec, TensorSpec, TensorSpec, TensorSpec) {
    let (count, dim) = (nodes.shape[0], store.memory.shape[1]);
    let (slots, mail_dim) = (store.mail.shape[1], store.mail.shape[2]);
    let dtype = store.memory.dtype;
    (
        TensorSpec::new(Shape::new([count, dim]), dtype),
        TensorSpec::new(Shape::new([count]), dtype),
        TensorSpec::new(Shape::new([count, slots, mail_dim + w.shape[0]]), dtype),
        TensorSpec::new(Shape::new([count, slots]), dtype),
    )
}

crate::backend::fused_backend! {
    impl[] for CubeBackend;
    time_encoding(dt, w, b) { time_encoding::forward(dt, w, b) }
    time_encoding_with_sine(dt, w, b) { time_encoding::forward_with_sine(dt, w, b) }
    time_encoding_backward(dt, sine, grad) { time_encoding::backward(dt, sine, grad) }
    gru_gates(gi, gh, h) { gru::forward(gi, gh, h) }
    gru_gates_backward(gi, gh, h, grad) { gru::backward(gi, gh, h, grad) }
    gathered_attention(q, a, ia, b, ib, keep, scale) {
        gathered::forward(q, a, ia, b, ib, [keep, scale])
    }
    gathered_attention_backward(q, a, ia, b, ib, keep, scale, grad) {
        gathered::backward(q, a, ia, b, ib, [keep, scale], grad)
    }
}

memory_backend! {
    impl[] for CubeBackend;
    memory_fetch(store, nodes, w, b, clock, now) { fetch::fetch(store, nodes, w, b, clock, now) }
    memory_update(store, nodes, times, rows, targets, mail_times, mails) {
        let writes = Writes { nodes, times, rows, targets, mail_times, mails };
        update::update(store, writes)
    }
}

/// Whether `device` is a cubecl device (directly or under autodiff), where the memory kernels run.
pub fn runs_on(device: &Device) -> bool {
    match device.as_dispatch() {
        DispatchDevice::Cube(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Cube(_)),
        // Unreachable when a cubecl runtime is the only backend compiled in (the CUDA check).
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

type Ext = burn::backend::Dispatch;

impl Store<Ext> {
    fn from_tensors(state: DeviceMemory) -> Self {
        Store {
            memory: state.memory.into_dispatch(),
            last_update: state.last_update.into_dispatch(),
            mail: state.mail.into_dispatch(),
            mail_time: state.mail_time.into_dispatch(),
            mail_valid: state.mail_valid.into_dispatch(),
        }
    }

    fn into_tensors(self) -> DeviceMemory {
        DeviceMemory {
            memory: Tensor::from_dispatch(self.memory),
            last_update: Tensor::from_dispatch(self.last_update),
            mail: Tensor::from_dispatch(self.mail),
            mail_time: Tensor::from_dispatch(self.mail_time),
            mail_valid: Tensor::from_dispatch(self.mail_valid),
        }
    }
}

/// Fused [`crate::fetch`].
pub fn fetch(state: &DeviceMemory, nodes: Tensor<1, Int>, encoding: MailEncoding) -> Fetched {
    let MailEncoding { w, b, clock, now } = encoding;
    let (memory, time, input, keep) = <Ext as MemoryBackend>::memory_fetch(
        Store::from_tensors(state.clone()),
        nodes.into_dispatch(),
        w.into_dispatch(),
        b.into_dispatch(),
        clock.into_dispatch(),
        now.into_dispatch(),
    );
    Fetched {
        memory: Tensor::from_dispatch(memory),
        time: Tensor::from_dispatch(time),
        input: Tensor::from_dispatch(input),
        keep: Tensor::from_dispatch(keep),
    }
}

/// Fused [`crate::update`].
///
/// The update is dispatched before this returns. A store is what other threads read next (the
/// pipeline's fetch and checkpoint), and burn-fusion 0.22.1 does not order a custom operation's
/// outputs for readers on other threads: read there before the writing thread's stream ran, they
/// held the old contents (found by `tests/threads.rs`; burn's own operations are ordered).
pub fn update(state: DeviceMemory, writes: TensorWrites) -> DeviceMemory {
    let device = writes.times.device();
    let out = <Ext as MemoryBackend>::memory_update(
        Store::from_tensors(state),
        writes.nodes.into_dispatch(),
        writes.times.into_dispatch(),
        writes.rows.into_dispatch(),
        writes.targets.into_dispatch(),
        writes.mail_times.into_dispatch(),
        writes.mails.into_dispatch(),
    )
    .into_tensors();
    if let Err(e) = device.flush() {
        panic!("dispatching the memory update failed: {e:?}");
    }
    out
}
