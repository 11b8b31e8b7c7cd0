//! Node memory where the model's device reads it best: host buffers ([`MemoryStore`]) on flex,
//! whose tensors live in host memory anyway, and device tensors ([`DeviceMemory`]) on cubecl
//! devices, where the memory fetch and update run as fused kernels and no memory row crosses the
//! bus. The pipeline versions either the same way: a read takes what the store holds at that
//! moment, a commit replaces it; with a device store, all device work stays on compute's thread
//! (see [`crate::pipeline`]).

use std::io::{Read, Write};

use burn::prelude::*;
use mspipe_model::kernels::{DeviceMemory, memory_kernels_run_on};
use mspipe_model::memory::MemoryStore;

/// Node memory, mailboxes and times of every node, on the host or on the device.
#[derive(Debug)]
// burn tensors are large handles; each value moves a few times per batch, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum NodeMemory {
    Host(MemoryStore),
    Device(DeviceStore),
}

/// Node memory on the device, without autodiff (memories are stored detached). Its times are
/// f32, as TGL keeps them, measured from `origin`, the stream's first event time rounded down to
/// a value f32 holds: absolute timestamps — Unix seconds near 1.7·10⁹, where f32 steps by 128 s —
/// keep the resolution of the stream's span, and a node never updated (last update 0, i.e.
/// −origin here, exact) gets the Δt the host store gives it, both rounded once to f32.
#[derive(Debug, Clone)]
pub struct DeviceStore {
    pub state: DeviceMemory,
    pub origin: f64,
}

impl DeviceStore {
    /// Zero memory for the `(nodes, dim, mail_dim, slots)` of `shape` on `device`, for a stream
    /// whose first event is at `first`.
    fn new(shape: (usize, usize, usize, usize), first: f64, device: &Device) -> Self {
        let origin = f64::from(f32_at_most(first));
        let (nodes, dim, mail_dim, slots) = shape;
        let host = MemoryStore::new(nodes, dim, mail_dim, slots);
        DeviceStore {
            state: host.to_device(device, origin),
            origin,
        }
    }

    /// Back to zero memory, same shape, device and origin.
    fn reset(&mut self) {
        let [nodes, slots, mail_dim] = self.state.mail.dims();
        let dim = self.state.memory.dims()[1];
        let host = MemoryStore::new(nodes, dim, mail_dim, slots);
        self.state = host.to_device(&self.state.memory.device(), self.origin);
    }

    /// Time `t` as the store holds it.
    pub fn time(&self, t: f64) -> f32 {
        (t - self.origin) as f32
    }
}

impl NodeMemory {
    /// Zero memory for the `(nodes, dim, mail_dim, slots)` of `shape`, placed for `device`, for a
    /// stream whose first event is at `first`.
    pub fn new(shape: (usize, usize, usize, usize), first: f64, device: &Device) -> Self {
        if memory_kernels_run_on(device) {
            NodeMemory::Device(DeviceStore::new(shape, first, &device.clone().inner()))
        } else {
            let (nodes, dim, mail_dim, slots) = shape;
            NodeMemory::Host(MemoryStore::new(nodes, dim, mail_dim, slots))
        }
    }

    /// Back to zero memory (epoch start).
    pub fn reset(&mut self) {
        match self {
            NodeMemory::Host(store) => store.reset(),
            NodeMemory::Device(store) => store.reset(),
        }
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        match self {
            NodeMemory::Host(store) => store.num_nodes(),
            NodeMemory::Device(store) => store.state.last_update.dims()[0],
        }
    }

    /// Memory width and mailbox slots.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            NodeMemory::Host(store) => (store.dim(), store.slots()),
            NodeMemory::Device(DeviceStore { state, .. }) => {
                (state.memory.dims()[1], state.mail.dims()[1])
            }
        }
    }

    /// A host copy of the state (a device store is read back).
    pub fn to_host(&self) -> MemoryStore {
        match self {
            NodeMemory::Host(store) => store.clone(),
            NodeMemory::Device(store) => MemoryStore::from_device(&store.state, store.origin),
        }
    }

    /// Writes the state in [`MemoryStore`]'s format (a device store is read back first), so a
    /// checkpoint resumes on either kind of device.
    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        match self {
            NodeMemory::Host(store) => store.write_to(w),
            NodeMemory::Device(_) => self.to_host().write_to(w),
        }
    }

    /// Restores what [`NodeMemory::write_to`] wrote; the shape must match.
    pub fn read_from(&mut self, r: &mut impl Read) -> std::io::Result<()> {
        match self {
            NodeMemory::Host(store) => store.read_from(r),
            NodeMemory::Device(store) => {
                let mut host = MemoryStore::from_device(&store.state, store.origin);
                host.read_from(r)?;
                store.state = host.to_device(&store.state.memory.device(), store.origin);
                Ok(())
            }
        }
    }
}

/// `state` usable beside tensors of `device`: with autodiff when `device` has it.
pub fn on(state: &DeviceMemory, device: &Device) -> DeviceMemory {
    DeviceMemory {
        memory: like(state.memory.clone(), device),
        last_update: like(state.last_update.clone(), device),
        mail: like(state.mail.clone(), device),
        mail_time: like(state.mail_time.clone(), device),
        mail_valid: like(state.mail_valid.clone(), device),
    }
}

/// `t` (without autodiff) usable beside tensors of `device`.
fn like<const D: usize>(t: Tensor<D>, device: &Device) -> Tensor<D> {
    if device.is_autodiff() {
        t.autodiff()
    } else {
        t
    }
}

/// The largest f32 value at most `t`.
fn f32_at_most(t: f64) -> f32 {
    let r = t as f32;
    if f64::from(r) > t { r.next_down() } else { r }
}
