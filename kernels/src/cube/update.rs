//! Fused memory update, in place, one unit per memory write and one per mail. The write that is its
//! node's latest (largest time, ties by the later position) replaces the memory row and the
//! last-update time; the mail that is its target's latest shifts the mailbox and takes its last
//! slot; every other entry of that node writes nothing. The winner is found with two
//! atomic-max passes over per-node scratch words — first the largest time (as order-preserving
//! bits), then the largest position among events at that time — so the work is proportional to
//! the batch (plus zeroing one word per node), not to its square.

use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{floats, indices, launch, writable};
use super::{Store, Writes};

/// `t`'s bits, mapped so that unsigned order is float order (−0 counted as +0).
#[cube]
fn time_key<F: Float>(t: F) -> u32 {
    let bits = u32::reinterpret(t + F::new(0.0));
    if bits >= 0x8000_0000u32 {
        !bits
    } else {
        bits | 0x8000_0000u32
    }
}

/// The node of this unit's entry of `nodes`; a unit past the `count` entries stops here.
#[cube]
fn entry_node(nodes: &[i32], count: usize) -> usize {
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    usize::cast_from(nodes[ABSOLUTE_POS])
}

/// [`entry_node`], for the entry that is its node's latest (pass 2's winner) only: every other
/// unit stops here.
#[cube]
fn winning_node(nodes: &[i32], latest_position: &[u32], count: usize) -> usize {
    let u = entry_node(nodes, count);
    if latest_position[u] != u32::cast_from(ABSOLUTE_POS) + 1 {
        terminate!();
    }
    u
}

/// Pass 1: per node, the largest time key of its events.
#[cube(launch_unchecked)]
fn latest_time_kernel<F: Float>(
    nodes: &[i32],
    times: &[F],
    latest_time: &mut [Atomic<u32>],
    count: usize,
) {
    let u = entry_node(nodes, count);
    latest_time[u].fetch_max(time_key::<F>(times[ABSOLUTE_POS]));
}

/// Pass 2: per node, 1 + the largest position among its events at the latest time.
#[cube(launch_unchecked)]
fn latest_position_kernel<F: Float>(
    nodes: &[i32],
    times: &[F],
    latest_time: &[u32],
    latest_position: &mut [Atomic<u32>],
    count: usize,
) {
    let u = entry_node(nodes, count);
    if time_key::<F>(times[ABSOLUTE_POS]) == latest_time[u] {
        latest_position[u].fetch_max(u32::cast_from(ABSOLUTE_POS) + 1);
    }
}

/// Each node's winning memory write replaces its row and last-update time.
#[cube(launch_unchecked)]
fn write_memory_kernel<F: Float>(
    memory: &mut [F],
    last_update: &mut [F],
    nodes: &[i32],
    times: &[F],
    rows: &[F],
    latest_position: &[u32],
    count: usize,
    dim: usize,
) {
    let p = ABSOLUTE_POS;
    let u = winning_node(nodes, latest_position, count);
    for e in 0..dim {
        memory[u * dim + e] = rows[p * dim + e];
    }
    last_update[u] = times[p];
}

/// Each target's winning mail shifts its mailbox one slot to the front and takes the last slot.
#[cube(launch_unchecked)]
fn push_mail_kernel<F: Float>(
    mail: &mut [F],
    mail_time: &mut [F],
    mail_valid: &mut [F],
    targets: &[i32],
    times: &[F],
    mails: &[F],
    latest_position: &[u32],
    count: usize,
    slots: usize,
    mail_dim: usize,
) {
    let p = ABSOLUTE_POS;
    let u = winning_node(targets, latest_position, count);
    let base = u * slots;
    for s in 1..slots {
        for e in 0..mail_dim {
            mail[(base + s - 1) * mail_dim + e] = mail[(base + s) * mail_dim + e];
        }
        mail_time[base + s - 1] = mail_time[base + s];
        mail_valid[base + s - 1] = mail_valid[base + s];
    }
    let last = base + slots - 1;
    for e in 0..mail_dim {
        mail[last * mail_dim + e] = mails[p * mail_dim + e];
    }
    mail_time[last] = times[p];
    mail_valid[last] = F::new(1.0);
}

/// Per node of the store, 1 + the position of its latest entry in `nodes` (0 for none): the
/// two atomic-max passes.
fn latest(
    nodes: CubeTensor,
    times: CubeTensor,
    store_rows: usize,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (client, device) = (nodes.client.clone(), nodes.device.clone());
    let scratch = || {
        zeros_client(
            client.clone(),
            device.clone(),
            [store_rows].into(),
            DType::U32,
        )
    };
    let (latest_time, latest_position) = (scratch(), scratch());
    let (nodes, times) = (indices(nodes), floats(times));
    let count = nodes.meta.shape()[0];
    // SAFETY: contiguous buffers of `count` entries and fresh scratch of one word per store row;
    // node ids index rows of the store (the caller's contract).
    unsafe {
        launch!(
            latest_time_kernel on client, count;
            [nodes.clone(), times.clone(), latest_time.clone()],
            count
        );
        launch!(
            latest_position_kernel on client, count;
            [nodes.clone(), times.clone(), latest_time, latest_position.clone()],
            count
        );
    }
    (nodes, times, latest_position)
}

/// The store and a batch's memory writes (`nodes` `[B]`, `times` `[B]`, `rows` `[B, d]`) and mails
/// (`targets` `[T]`, `mail_times` `[T]`, `mails` `[T, mail_dim]`) → the updated store.
pub fn update(store: Store<CubeBackend>, writes: Writes<CubeBackend>) -> Store<CubeBackend> {
    let store: Store<CubeBackend> = Store {
        memory: writable(store.memory),
        last_update: writable(store.last_update),
        mail: writable(store.mail),
        mail_time: writable(store.mail_time),
        mail_valid: writable(store.mail_valid),
    };
    let (slots, mail_dim) = {
        let s = store.mail.meta.shape();
        (s[1], s[2])
    };
    let dim = store.memory.meta.shape()[1];
    let rows_in_store = store.last_update.meta.shape()[0];
    let client = store.memory.client.clone();
    let (nodes, times, winners) = latest(writes.nodes, writes.times, rows_in_store);
    let count = nodes.meta.shape()[0];
    // SAFETY: contiguous buffers (`writable`, `floats`, `indices`) of the shapes read above;
    // only each node's winner writes its row, so no two units write the same row.
    unsafe {
        launch!(
            write_memory_kernel on client, count;
            [
                store.memory.clone(), store.last_update.clone(), nodes, times,
                floats(writes.rows), winners,
            ],
            count, dim
        );
    }
    let (targets, times, winners) = latest(writes.targets, writes.mail_times, rows_in_store);
    let count = targets.meta.shape()[0];
    // SAFETY: as above; only each target's winner touches its mailbox.
    unsafe {
        launch!(
            push_mail_kernel on client, count;
            [
                store.mail.clone(), store.mail_time.clone(), store.mail_valid.clone(), targets,
                times, floats(writes.mails), winners,
            ],
            count, slots, mail_dim
        );
    }
    store
}
