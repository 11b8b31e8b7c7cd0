//! Fused memory update, in place, one unit per batch event. The event that is its node's latest
//! (largest time, ties by the later position) writes the memory row and the last-update time and
//! shifts the mailbox; every other event of that node writes nothing. The winner is found with two
//! atomic-max passes over per-node scratch words — first the largest time (as order-preserving
//! bits), then the largest position among events at that time — so the work is proportional to
//! the batch (plus zeroing one word per node), not to its square.

use burn::tensor::DType;
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::zeros_client;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Store;
use super::launch::{floats, grid, indices, writable};

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

/// Pass 1: per node, the largest time key of its events.
#[cube(launch_unchecked)]
fn latest_time_kernel<F: Float>(
    nodes: &[i32],
    times: &[F],
    latest_time: &mut [Atomic<u32>],
    count: usize,
) {
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    let u = usize::cast_from(nodes[ABSOLUTE_POS]);
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
    if ABSOLUTE_POS >= count {
        terminate!();
    }
    let u = usize::cast_from(nodes[ABSOLUTE_POS]);
    if time_key::<F>(times[ABSOLUTE_POS]) == latest_time[u] {
        latest_position[u].fetch_max(u32::cast_from(ABSOLUTE_POS) + 1);
    }
}

#[cube(launch_unchecked)]
fn update_kernel<F: Float>(
    memory: &mut [F],
    last_update: &mut [F],
    mail: &mut [F],
    mail_time: &mut [F],
    mail_valid: &mut [F],
    nodes: &[i32],
    times: &[F],
    rows: &[F],
    mails: &[F],
    latest_position: &[u32],
    count: usize,
    dim: usize,
    slots: usize,
    mail_dim: usize,
) {
    let p = ABSOLUTE_POS;
    if p >= count {
        terminate!();
    }
    let u = usize::cast_from(nodes[p]);
    if latest_position[u] != u32::cast_from(p) + 1 {
        terminate!();
    }
    let t = times[p];
    for e in 0..dim {
        memory[u * dim + e] = rows[p * dim + e];
    }
    last_update[u] = t;
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
    mail_time[last] = t;
    mail_valid[last] = F::new(1.0);
}

/// The store and the batch's `nodes` `[B]`, `times` `[B]`, `rows` `[B, d]`, `mails`
/// `[B, mail_dim]` → the updated store.
pub fn update(
    store: Store<CubeBackend>,
    nodes: CubeTensor,
    times: CubeTensor,
    rows: CubeTensor,
    mails: CubeTensor,
) -> Store<CubeBackend> {
    let Store {
        memory,
        last_update,
        mail,
        mail_time,
        mail_valid,
    } = store;
    let (slots, mail_dim) = {
        let s = mail.meta.shape();
        (s[1], s[2])
    };
    let dim = memory.meta.shape()[1];
    let count = nodes.meta.shape()[0];
    let store = Store {
        memory: writable(memory),
        last_update: writable(last_update),
        mail: writable(mail),
        mail_time: writable(mail_time),
        mail_valid: writable(mail_valid),
    };
    if count == 0 {
        return store;
    }
    let client = store.memory.client.clone();
    let device = store.memory.device.clone();
    let nodes_count = store.last_update.meta.shape()[0];
    let scratch = || {
        zeros_client(
            client.clone(),
            device.clone(),
            [nodes_count].into(),
            DType::U32,
        )
    };
    let (latest_time, latest_position) = (scratch(), scratch());
    let (nodes, times) = (indices(nodes), floats(times));
    let (cubes, cube_dim) = grid(&client, count);
    // SAFETY: contiguous buffers (`writable`, `floats`, `indices`, fresh scratch) of the shapes
    // read above; node ids index rows of the store (the caller's contract, as for any scatter);
    // only each node's latest event writes its row, so no two units write the same row.
    unsafe {
        latest_time_kernel::launch_unchecked::<f32>(
            &client,
            cubes.clone(),
            cube_dim,
            nodes.clone().into_buffer_arg(),
            times.clone().into_buffer_arg(),
            latest_time.clone().into_buffer_arg(),
            count,
        );
        latest_position_kernel::launch_unchecked::<f32>(
            &client,
            cubes.clone(),
            cube_dim,
            nodes.clone().into_buffer_arg(),
            times.clone().into_buffer_arg(),
            latest_time.into_buffer_arg(),
            latest_position.clone().into_buffer_arg(),
            count,
        );
        update_kernel::launch_unchecked::<f32>(
            &client,
            cubes,
            cube_dim,
            store.memory.clone().into_buffer_arg(),
            store.last_update.clone().into_buffer_arg(),
            store.mail.clone().into_buffer_arg(),
            store.mail_time.clone().into_buffer_arg(),
            store.mail_valid.clone().into_buffer_arg(),
            nodes.into_buffer_arg(),
            times.into_buffer_arg(),
            floats(rows).into_buffer_arg(),
            floats(mails).into_buffer_arg(),
            latest_position.into_buffer_arg(),
            count,
            dim,
            slots,
            mail_dim,
        );
    }
    store
}
