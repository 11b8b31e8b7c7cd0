//! Fused memory fetch, one unit per fetched node: its memory row and the time of the memory the
//! updater will make, and per mailbox slot the mail and cos(Δt·w + b) written straight into the
//! updater's input — no gathered intermediates.

use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::Store;
use super::launch::{floats, indices, launch, output};
use burn_cubecl::CubeBackend;

#[cube(launch_unchecked)]
fn fetch_kernel<F: Float>(
    memory: &[F],
    last_update: &[F],
    mail: &[F],
    mail_time: &[F],
    mail_valid: &[F],
    nodes: &[i32],
    w: &[F],
    b: &[F],
    clock: &[F],
    now: &[F],
    out_memory: &mut [F],
    out_time: &mut [F],
    out_input: &mut [F],
    out_keep: &mut [F],
    count: usize,
    dim: usize,
    slots: usize,
    mail_dim: usize,
    time_dim: usize,
) {
    let i = ABSOLUTE_POS;
    if i >= count {
        terminate!();
    }
    let u = usize::cast_from(nodes[i]);
    for e in 0..dim {
        out_memory[i * dim + e] = memory[u * dim + e];
    }
    let last = last_update[u];
    // Δt = sign·(mail time − base), base = from_last·last + (1 − from_last)·now
    // (`Clock::tensors`).
    let (sign, from_last) = (clock[0], clock[1]);
    let base = last * from_last + now[i] * (F::new(1.0) - from_last);
    let newest = u * slots + slots - 1;
    if mail_valid[newest] > F::new(0.0) {
        out_time[i] = mail_time[newest];
    } else {
        out_time[i] = last;
    }
    let width = mail_dim + time_dim;
    for s in 0..slots {
        let src = u * slots + s;
        let dst = i * slots + s;
        let valid = mail_valid[src];
        out_keep[dst] = valid;
        let dt = (mail_time[src] - base) * sign * valid;
        for e in 0..mail_dim {
            out_input[dst * width + e] = mail[src * mail_dim + e];
        }
        for t in 0..time_dim {
            out_input[dst * width + mail_dim + t] = F::cos(dt * w[t] + b[t]);
        }
    }
}

/// The store, `nodes` `[U]`, `w`, `b` `[T]`, `clock` `[2]`, `now` `[U]` → (`[U, d]`, `[U]`,
/// `[U, M, mail_dim + T]`, `[U, M]`).
pub fn fetch(
    store: Store<CubeBackend>,
    nodes: CubeTensor,
    w: CubeTensor,
    b: CubeTensor,
    clock: CubeTensor,
    now: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor, CubeTensor) {
    let Store {
        memory,
        last_update,
        mail,
        mail_time,
        mail_valid,
    } = store;
    let [_, slots, mail_dim] = {
        let s = mail.meta.shape();
        [s[0], s[1], s[2]]
    };
    let dim = memory.meta.shape()[1];
    let time_dim = w.meta.shape()[0];
    let count = nodes.meta.shape()[0];
    let nodes = indices(nodes);
    let memory = floats(memory);
    let out_memory = output(&memory, [count, dim]);
    let out_time = output(&memory, [count]);
    let out_input = output(&memory, [count, slots, mail_dim + time_dim]);
    let out_keep = output(&memory, [count, slots]);
    let client = memory.client.clone();
    // SAFETY: contiguous f32 buffers of the shapes read above; node ids index rows of the store
    // (the caller's contract, as for any gather).
    unsafe {
        launch!(
            fetch_kernel on client, count;
            [
                memory, floats(last_update), floats(mail), floats(mail_time), floats(mail_valid),
                nodes, floats(w), floats(b), floats(clock), floats(now),
                out_memory.clone(), out_time.clone(), out_input.clone(), out_keep.clone(),
            ],
            count, dim, slots, mail_dim, time_dim
        );
    }
    (out_memory, out_time, out_input, out_keep)
}
