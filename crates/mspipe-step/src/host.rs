//! [`NodeMemory`] on host buffers ([`MemoryStore`]): the fetch gathers rows on the fetch stage's
//! thread, compute uploads them to the model's device, the update writes host rows back. Any
//! device can train over it, and several devices over one store.

use std::io::{self, Read, Write};

use burn::prelude::*;
use mspipe_data::Features;
use mspipe_model::memory::{Gathered, MemoryStore};
use mspipe_model::tensors::{floats, to_vec};
use mspipe_model::{EmbedInput, MailClock, MemoryInput, MemoryModel};
use mspipe_sampler::SampledBatch;

use crate::memory::{ages_from, rows_read};
use crate::{Mailing, MemoryShape, NodeMemory, StaleFix, Updated, UpdatedRows, stale};

/// What a host fetch read: the gathered rows and, per unique node, the time of the memory the
/// updater produces (newest mail, or last update).
#[derive(Debug)]
pub struct HostFetched {
    gathered: Gathered,
    mem_time: Vec<f64>,
    dim: usize,
    slots: usize,
}

/// `[U', d]` updated rows (those of [`Updated::memory`], detached), and their times. The rows stay
/// a tensor until the write is prepared, usually by the update stage: the compute stage does not
/// copy them out, and once the step's graph has let go of them they leave the tensor uncopied.
#[derive(Debug)]
pub struct HostRows {
    rows: Tensor<2>,
    mem_time: Vec<f64>,
}

/// A batch's write to a host store.
#[derive(Debug)]
pub struct HostWrite {
    nodes: Vec<u32>,
    node_rows: Vec<f32>,
    node_times: Vec<f64>,
    targets: Vec<u32>,
    mails: Vec<f32>,
    mail_times: Vec<f64>,
}

impl NodeMemory for MemoryStore {
    type Fetched = HostFetched;
    type Rows = HostRows;
    type Write = HostWrite;

    fn empty(shape: MemoryShape, _first_time: f64, _device: &Device) -> Self {
        MemoryStore::new(shape.nodes, shape.dim, shape.mail_dim, shape.slots)
    }

    fn shape(&self) -> MemoryShape {
        MemoryShape {
            nodes: self.num_nodes(),
            dim: self.dim(),
            mail_dim: self.mail_dim(),
            slots: self.slots(),
        }
    }

    fn reset(&mut self) {
        MemoryStore::reset(self);
    }

    fn fetch(
        &self,
        batch: &SampledBatch,
        updated: UpdatedRows,
        fix: Option<StaleFix>,
    ) -> HostFetched {
        let mut gathered = Gathered::default();
        let nodes = &batch.unique_nodes;
        self.gather_rows(nodes, updated.count(batch), &mut gathered);
        let mem_time: Vec<f64> = nodes.iter().map(|&u| self.memory_time(u)).collect();
        if let Some(fix) = fix {
            stale::mitigate(self.dim(), batch, &mut gathered.memory, &mem_time, fix);
        }
        HostFetched {
            gathered,
            mem_time,
            dim: self.dim(),
            slots: self.slots(),
        }
    }

    fn update(
        model: &MemoryModel,
        fetched: HostFetched,
        batch: &SampledBatch,
        time_origin: f64,
        device: &Device,
    ) -> Updated<HostRows> {
        let HostFetched {
            mut gathered,
            mut mem_time,
            dim,
            slots,
        } = fetched;
        let rows = rows_read(model, batch);
        gathered.truncate(rows, dim, slots);
        mem_time.truncate(rows);
        if let clock @ MailClock::Age(_) = model.mail_clock() {
            gathered.to_ages(&ages_from(batch, clock)[..rows], slots);
        }
        let memory = model.update_memory(MemoryInput::from_host(gathered, dim, slots, device));
        let root_dt: Vec<f32> = batch
            .root_index
            .iter()
            .zip(&batch.root_times)
            .map(|(&u, &t)| EmbedInput::drift(t, mem_time[u as usize], time_origin) as f32)
            .collect();
        Updated {
            root_dt: floats(&root_dt, [batch.roots.len()], device),
            rows: HostRows {
                rows: memory.clone().detach(),
                mem_time,
            },
            memory,
        }
    }

    fn prepare_write(rows: HostRows, mailing: Mailing, edges: Option<&Features>) -> HostWrite {
        let HostRows { rows, mem_time } = rows;
        let rows = to_vec(rows);
        let d = rows.len() / mem_time.len().max(1);
        let row = |u: u32| &rows[u as usize * d..(u as usize + 1) * d];
        let mail_dim = 2 * d + edges.map_or(0, Features::dim);
        let mut mails = Vec::with_capacity(mailing.len() * mail_dim);
        for j in 0..mailing.len() {
            mails.extend_from_slice(row(mailing.me[j]));
            mails.extend_from_slice(row(mailing.other[j]));
            if let Some(f) = edges {
                mails.extend_from_slice(f.row(mailing.event[j]));
            }
        }
        HostWrite {
            node_rows: mailing.rows.iter().flat_map(|&u| row(u)).copied().collect(),
            node_times: mailing.rows.iter().map(|&u| mem_time[u as usize]).collect(),
            nodes: mailing.nodes,
            targets: mailing.target,
            mails,
            mail_times: mailing.time,
        }
    }

    fn apply(&mut self, w: HostWrite) {
        self.write_memory(&w.nodes, &w.node_rows, &w.node_times);
        self.push_mails(&w.targets, &w.mails, &w.mail_times);
    }

    fn to_host(&self) -> MemoryStore {
        self.clone()
    }

    fn restore(&mut self, host: &MemoryStore) {
        self.clone_from(host);
    }

    fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        MemoryStore::write_to(self, w)
    }

    fn read_from(&mut self, r: &mut impl Read) -> io::Result<()> {
        MemoryStore::read_from(self, r)
    }
}
