//! Fused memory update, in place, one unit per batch event: the unit whose event is its node's
//! latest (largest time, ties by position) writes the memory row, the last-update time and shifts
//! the mailbox; every other unit of that node writes nothing. Work is proportional to the batch,
//! not to the number of nodes.

use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Store;
use super::launch::{floats, grid, indices, writable};

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
    count: usize,
    dim: usize,
    slots: usize,
    mail_dim: usize,
) {
    let p = ABSOLUTE_POS;
    if p >= count {
        terminate!();
    }
    let node = nodes[p];
    let t = times[p];
    let mut latest = true;
    for q in 0..count {
        if nodes[q] == node {
            let tq = times[q];
            if tq > t || (tq == t && q > p) {
                latest = false;
            }
        }
    }
    if !latest {
        terminate!();
    }
    let u = usize::cast_from(node);
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
    let (cubes, cube_dim) = grid(&client, count);
    // SAFETY: contiguous f32 buffers (`writable`) of the shapes read above; only the latest event
    // of each node writes, so no two units write the same row.
    unsafe {
        update_kernel::launch_unchecked::<f32>(
            &client,
            cubes,
            cube_dim,
            store.memory.clone().into_buffer_arg(),
            store.last_update.clone().into_buffer_arg(),
            store.mail.clone().into_buffer_arg(),
            store.mail_time.clone().into_buffer_arg(),
            store.mail_valid.clone().into_buffer_arg(),
            indices(nodes).into_buffer_arg(),
            floats(times).into_buffer_arg(),
            floats(rows).into_buffer_arg(),
            floats(mails).into_buffer_arg(),
            count,
            dim,
            slots,
            mail_dim,
        );
    }
    store
}
