//! [`NodeMemory`] as tensors on the model's device ([`DeviceStore`]): on a cubecl device the
//! fetch and the update run as fused kernels and no memory row crosses the bus.

use burn::prelude::*;
use mspipe_data::Features;
use mspipe_model::MemoryModel;
use mspipe_model::kernels::{DeviceMemory, Fetched, Writes};
use mspipe_model::memory::MemoryStore;
use mspipe_model::tensors::{floats, indices, to_vec};
use mspipe_sampler::SampledBatch;

use crate::memory::{ages_from, rows_read};
use crate::{Mailing, MemoryShape, NodeMemory, StaleFix, Updated, UpdatedRows, stale};

/// Node memory on a device, without autodiff (memories are stored detached). Its times are f32,
/// as TGL keeps them, measured from `origin`, the stream's first event time rounded down to a
/// value f32 holds: absolute timestamps — Unix seconds near 1.7·10⁹, where f32 steps by 128 s —
/// keep the resolution of the stream's span, and a node never updated (last update 0, i.e.
/// −origin here, exact) gets the Δt the host store gives it, both rounded once to f32.
///
/// Its fetch only keeps the state's handles (tensors are values: later writes do not change
/// what a fetch holds); the reads run in [`NodeMemory::update`], on compute's thread, which also
/// applies the writes in the pipeline ([`NodeMemory::WRITES_ON_COMPUTE`]).
#[derive(Debug, Clone)]
pub struct DeviceStore {
    state: DeviceMemory,
    origin: f64,
}

/// What a device fetch kept: the state as it was, and how to mitigate it.
#[derive(Debug)]
pub struct DeviceFetched {
    store: DeviceStore,
    fix: Option<StaleFix>,
}

/// `[U', d]` updated memories (the rows of [`Updated::memory`]) and `[U']` their times (from the
/// store's origin), without autodiff.
#[derive(Debug)]
pub struct DeviceRows {
    rows: Tensor<2>,
    time: Tensor<1>,
    origin: f64,
}

impl DeviceStore {
    /// Time `t` as the store holds it.
    pub fn time(&self, t: f64) -> f32 {
        (t - self.origin) as f32
    }
}

impl NodeMemory for DeviceStore {
    type Fetched = DeviceFetched;
    type Rows = DeviceRows;
    type Write = Writes;

    const WRITES_ON_COMPUTE: bool = true;

    fn empty(shape: MemoryShape, first_time: f64, device: &Device) -> Self {
        let origin = f64::from(f32_at_most(first_time));
        let host = MemoryStore::empty(shape, first_time, device);
        DeviceStore {
            state: host.to_device(&device.clone().inner(), origin),
            origin,
        }
    }

    fn shape(&self) -> MemoryShape {
        let [nodes, slots, mail_dim] = self.state.mail.dims();
        MemoryShape {
            nodes,
            dim: self.state.memory.dims()[1],
            mail_dim,
            slots,
        }
    }

    fn reset(&mut self) {
        let device = self.state.memory.device();
        self.restore(&MemoryStore::empty(self.shape(), self.origin, &device));
    }

    fn fetch(&self, _: &SampledBatch, _: UpdatedRows, fix: Option<StaleFix>) -> DeviceFetched {
        DeviceFetched {
            store: self.clone(),
            fix,
        }
    }

    fn update(
        model: &MemoryModel,
        fetched: DeviceFetched,
        batch: &SampledBatch,
        time_origin: f64,
        device: &Device,
    ) -> Updated<DeviceRows> {
        let DeviceFetched { store, fix } = fetched;
        let updated = rows_read(model, batch);
        // Mitigation blends rows with their neighbours' memories, so it reads every row.
        let read = if fix.is_some() {
            batch.unique_nodes.len()
        } else {
            updated
        };
        let nodes = indices(&batch.unique_nodes[..read], device);
        let now = || {
            let now: Vec<f32> = ages_from(batch, model.mail_clock())[..read]
                .iter()
                .map(|&t| store.time(t))
                .collect();
            floats(&now, [now.len()], device)
        };
        let mut fetched = model.fetch_memory(&on(&store.state, device), nodes, now);
        if let Some(fix) = fix {
            // The blend works on host rows: one round trip of the batch's rows, only in
            // iterations that missed updates.
            let mut rows = to_vec(fetched.memory.clone());
            let time = to_vec(fetched.time.clone());
            let mem_time: Vec<f64> = time.iter().map(|&t| f64::from(t) + store.origin).collect();
            let dim = store.shape().dim;
            if stale::mitigate(dim, batch, &mut rows, &mem_time, fix) > 0 {
                fetched.memory = floats(&rows, [batch.unique_nodes.len(), dim], device);
            }
            fetched = first_rows(fetched, updated);
        }
        let memory = model.update_fetched(&fetched);
        let root_times: Vec<f32> = batch.root_times.iter().map(|&t| store.time(t)).collect();
        let root_times = floats(&root_times, [batch.roots.len()], device);
        let root_rows = indices(&batch.root_index, device);
        // EmbedInput::drift on the device's times, which count from the store's origin.
        let start = store.time(time_origin);
        let t = root_times - start;
        let m = (fetched.time.clone().select(0, root_rows) - start).clamp_min(0.0);
        let drift = (t.clone() - m) / (t + 1.0);
        Updated {
            rows: DeviceRows {
                rows: memory.clone().detach().inner(),
                time: fetched.time.inner(),
                origin: store.origin,
            },
            root_dt: drift,
            memory,
        }
    }

    fn prepare_write(rows: DeviceRows, mailing: Mailing, edges: Option<&Features>) -> Writes {
        let DeviceRows { rows, time, origin } = rows;
        let device = rows.device();
        let select = |t: Tensor<2>, which: &[u32]| t.select(0, indices(which, &device));
        let mut mails = vec![
            select(rows.clone(), &mailing.me),
            select(rows.clone(), &mailing.other),
        ];
        if let Some(f) = edges {
            let e: Vec<f32> = mailing
                .event
                .iter()
                .flat_map(|&e| f.row(e))
                .copied()
                .collect();
            mails.push(floats(&e, [mailing.len(), f.dim()], &device));
        }
        let mail_times: Vec<f32> = mailing.time.iter().map(|&t| (t - origin) as f32).collect();
        let endpoints = indices(&mailing.rows, &device);
        Writes {
            nodes: indices(&mailing.nodes, &device),
            times: time.select(0, endpoints.clone()),
            rows: rows.select(0, endpoints),
            targets: indices(&mailing.target, &device),
            mail_times: floats(&mail_times, [mail_times.len()], &device),
            mails: Tensor::cat(mails, 1),
        }
    }

    fn apply(&mut self, writes: Writes) {
        // Taken out, the update holds the store's only handles and writes in place when nothing
        // else still reads them.
        let empty = DeviceMemory::zeros(0, 0, 0, 0, &writes.times.device());
        let state = std::mem::replace(&mut self.state, empty);
        self.state = mspipe_model::kernels::update(state, writes);
    }

    fn to_host(&self) -> MemoryStore {
        MemoryStore::from_device(&self.state, self.origin)
    }

    fn restore(&mut self, host: &MemoryStore) {
        self.state = host.to_device(&self.state.memory.device(), self.origin);
    }
}

/// The first `n` rows of what a fetch read.
fn first_rows(f: Fetched, n: usize) -> Fetched {
    Fetched {
        memory: f.memory.narrow(0, 0, n),
        time: f.time.narrow(0, 0, n),
        input: f.input.narrow(0, 0, n),
        keep: f.keep.narrow(0, 0, n),
    }
}

/// `state` usable beside tensors of `device`: with autodiff when `device` has it.
fn on(state: &DeviceMemory, device: &Device) -> DeviceMemory {
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
