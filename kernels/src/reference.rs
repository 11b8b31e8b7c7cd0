//! The math of every kernel in ordinary burn tensor ops: what runs on backends without a cubecl
//! runtime (flex, ndarray, …), and the reference the kernels are tested against. Autodiff comes
//! for free here, so the kernels' hand-written backward is checked against it too.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{sigmoid, softmax, tanh};

use crate::{
    AdamMoments, AdamScalars, DeviceMemory, Fetched, GatheredAttention, MailEncoding, Writes,
};

/// Attention whose keys and values are the slots' own rows (see [`GatheredAttention`]): per head
/// `h` the output is Σ_j softmax_j(q_h·x_j)·x_j over the real slots `x_j`, `[H, N, Ca + Ce + Cb]`;
/// padded slots get exactly zero weight and a root without a real slot gives zeros; no scaling
/// of the scores. Each head's weights are multiplied by `scale` after the softmax — attention dropout's mask ÷ (1 − p), where padded
/// and dropped slots both stay in the softmax's denominator (as `torch.nn.Dropout` on the weights
/// does); ones for plain attention.
///
/// This is TGAT's attention with its projections taken out of the slots: q·(x·W_k) = (q·W_kᵀ)·x
/// and Σ_j α_j·x_j·W_v = (Σ_j α_j·x_j)·W_v, so the caller folds W_k into the query and applies
/// W_v to the output, once per root instead of once per slot.
pub fn gathered_attention(input: GatheredAttention) -> Tensor<3> {
    let input = input.own_rows_into_b();
    let [_, n, width] = input.q.dims();
    let k = input.keep.dims()[1];
    let (a, b) = (input.a.select(0, input.ia), input.b.select(0, input.ib));
    let x: Tensor<3> = Tensor::cat(vec![a, b], 1).reshape([n, k, width]);
    let q = input.q.swap_dims(0, 1); // [N, H, C]
    let scores: Tensor<3> = (q.unsqueeze_dim::<4>(1) * x.clone().unsqueeze_dim(2))
        .sum_dim(3)
        .squeeze_dim(3); // [N, K, H]
    let keep: Tensor<3> = input.keep.unsqueeze_dim(2);
    let scores = scores * keep.clone() + (keep.clone().neg() + 1.0) * -1e9;
    let weights = softmax(scores, 1) * keep * input.scale.permute([1, 2, 0]);
    let out: Tensor<3> = (weights.unsqueeze_dim::<4>(3) * x.unsqueeze_dim(2))
        .sum_dim(1)
        .squeeze_dim(1);
    out.swap_dims(0, 1)
}

/// TGAT's time encoding cos(Δt·w + b): `dt` `[n]`, `w`, `b` `[T]` → `[n, T]`.
pub fn time_encoding(dt: Tensor<1>, w: Tensor<1>, b: Tensor<1>) -> Tensor<2> {
    let dt: Tensor<2> = dt.unsqueeze_dim(1);
    (dt * w.unsqueeze() + b.unsqueeze()).cos()
}

/// One Adam step of a parameter, burn's `Adam` tensor operations in burn's order:
/// m ← β₁·m + (1 − β₁)·g and v ← β₂·v + (1 − β₂)·g² (on the first step the terms in g alone),
/// then p ← p − lr·(m·c) / (√v + ε′) with c and ε′ the bias corrections of [`AdamScalars`].
pub fn adam_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<AdamMoments<D>>,
    s: AdamScalars,
) -> (Tensor<D>, AdamMoments<D>) {
    let first = grad.clone().mul_scalar(1.0 - s.beta_1);
    let second = grad.square().mul_scalar(1.0 - s.beta_2);
    let (first, second) = match moments {
        Some(m) => (
            m.first.mul_scalar(s.beta_1).add(first),
            m.second.mul_scalar(s.beta_2).add(second),
        ),
        None => (first, second),
    };
    let update = first
        .clone()
        .mul_scalar(s.moment_scale)
        .div(second.clone().sqrt().add_scalar(s.epsilon));
    (
        param - update.mul_scalar(s.lr),
        AdamMoments { first, second },
    )
}

/// The GRU cell's gates (`torch.nn.GRUCell`): `gi`, `gh` `[n, 3d]` are the input's and the hidden
/// state's products, gates stacked `r | z | n`; `h` `[n, d]` → `h' = (1 − z)·n + z·h` with
/// r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r·gh_n).
pub fn gru_gates(gi: Tensor<2>, gh: Tensor<2>, h: Tensor<2>) -> Tensor<2> {
    let d = h.dims()[1];
    let part = |t: &Tensor<2>, i: usize| t.clone().narrow(1, i * d, d);
    let r = sigmoid(part(&gi, 0) + part(&gh, 0));
    let z = sigmoid(part(&gi, 1) + part(&gh, 1));
    let n = tanh(part(&gi, 2) + r * part(&gh, 2));
    (z.clone().neg() + 1.0) * n + z * h
}

/// Gathers the state of `nodes` and builds the memory updater's input (see [`Fetched`]), each
/// mail's Δt encoded by `encoding`.
pub fn fetch(state: &DeviceMemory, nodes: Tensor<1, Int>, encoding: MailEncoding) -> Fetched {
    let MailEncoding { w, b, clock, now } = encoding;
    let time_dim = w.dims()[0];
    let last: Tensor<2> = state
        .last_update
        .clone()
        .select(0, nodes.clone())
        .unsqueeze_dim(1);
    let valid = state.mail_valid.clone().select(0, nodes.clone());
    let mail_time = state.mail_time.clone().select(0, nodes.clone());
    let dt = mail_dt(
        mail_time,
        last.clone(),
        valid.clone(),
        clock,
        now.unsqueeze_dim(1),
    );
    let phase: Tensor<3> =
        dt.unsqueeze_dim::<3>(2) * w.reshape([1, 1, time_dim]) + b.reshape([1, 1, time_dim]);
    let mail = state.mail.clone().select(0, nodes.clone());
    // The newest mail sits in the last slot; v·t_mail + (1 − v)·t_last is exact for v ∈ {0, 1}.
    let slots = valid.dims()[1];
    let newest = valid.clone().narrow(1, slots - 1, 1);
    let newest_time = state
        .mail_time
        .clone()
        .select(0, nodes.clone())
        .narrow(1, slots - 1, 1);
    let time = newest_time * newest.clone() + last * (newest.neg() + 1.0);
    Fetched {
        memory: state.memory.clone().select(0, nodes),
        time: time.squeeze_dim(1),
        input: Tensor::cat(vec![mail, phase.cos()], 2),
        keep: valid,
    }
}

/// Applies a batch's [`Writes`]. Per node, the memory write with the latest time (ties by the later
/// position) replaces its memory row and last-update time; per target, the latest mail (same
/// rule) is appended to its mailbox, which shifts one slot towards the front. Every blend below is
/// exact (a row is multiplied by exactly 0 or 1 and added to exactly 0), so the result equals a
/// scatter bit for bit.
pub fn update(state: DeviceMemory, writes: Writes) -> DeviceMemory {
    let Writes {
        nodes,
        times,
        rows,
        targets,
        mail_times,
        mails,
    } = writes;
    let device = times.device();
    let [n, slots, mail_dim] = state.mail.dims();
    // Per node: 1 where its winner writes, and what the winners scatter.
    let scatter = |nodes: &Tensor<1, Int>, winner: &Tensor<1>, rows: Tensor<2>| -> Tensor<2> {
        let width = rows.dims()[1];
        Tensor::zeros([n, width], &device).select_assign(
            0,
            nodes.clone(),
            rows * winner.clone().unsqueeze_dim(1),
            IndexingUpdateOp::Add,
        )
    };
    let kept = |nodes: &Tensor<1, Int>, winner: &Tensor<1>| -> (Tensor<2>, Tensor<2>) {
        let touched = scatter(nodes, winner, Tensor::ones([winner.dims()[0], 1], &device));
        (touched.clone().neg() + 1.0, touched)
    };

    let winner = winners(nodes.clone(), times.clone());
    let (old, _) = kept(&nodes, &winner);
    let memory = state.memory * old.clone() + scatter(&nodes, &winner, rows);
    let last_update: Tensor<2> =
        state.last_update.unsqueeze_dim(1) * old + scatter(&nodes, &winner, times.unsqueeze_dim(1));

    let batch = targets.dims()[0];
    let winner = winners(targets.clone(), mail_times.clone());
    let (old, touched) = kept(&targets, &winner);
    let last_slot = |rows: Tensor<2>| -> Tensor<2> {
        // [T, w] → [T, M·w] with the rows in the last slot.
        let width = rows.dims()[1];
        if slots == 1 {
            return rows;
        }
        Tensor::cat(
            vec![Tensor::zeros([batch, (slots - 1) * width], &device), rows],
            1,
        )
    };
    let shift = |t: Tensor<2>, width: usize| -> Tensor<2> {
        // Slot s takes slot s + 1; the last slot empties.
        if slots == 1 {
            return Tensor::zeros([n, width], &device);
        }
        Tensor::cat(
            vec![
                t.narrow(1, width, (slots - 1) * width),
                Tensor::zeros([n, width], &device),
            ],
            1,
        )
    };
    let fifo = |t: Tensor<2>, width: usize, new: Tensor<2>| -> Tensor<2> {
        t.clone() * old.clone()
            + shift(t, width) * touched.clone()
            + scatter(&targets, &winner, last_slot(new))
    };
    let mail = fifo(state.mail.reshape([n, slots * mail_dim]), mail_dim, mails);
    DeviceMemory {
        memory,
        last_update: last_update.reshape([n]),
        mail: mail.reshape([n, slots, mail_dim]),
        mail_time: fifo(state.mail_time, 1, mail_times.unsqueeze_dim(1)),
        mail_valid: fifo(state.mail_valid, 1, Tensor::ones([batch, 1], &device)),
    }
}

/// `[B]` 1 where position `p` is its node's latest event in the batch (largest time, ties by the
/// later position), else 0.
pub fn winners(nodes: Tensor<1, Int>, times: Tensor<1>) -> Tensor<1> {
    let batch = nodes.dims()[0];
    let device = times.device();
    let same = nodes
        .clone()
        .unsqueeze_dim::<2>(1)
        .equal(nodes.unsqueeze_dim(0)); // [p, q]
    let t_p: Tensor<2> = times.clone().unsqueeze_dim(1);
    let t_q: Tensor<2> = times.unsqueeze_dim(0);
    let pos: Tensor<1, Int> = Tensor::arange(0..batch as i64, &device);
    let after = pos
        .clone()
        .unsqueeze_dim::<2>(0)
        .greater(pos.unsqueeze_dim(1)); // q > p
    let later = t_q
        .clone()
        .greater(t_p.clone())
        .bool_or(t_q.equal(t_p).bool_and(after));
    let beaten: Tensor<1, Bool> = same.bool_and(later).any_dim(1).reshape([batch]);
    beaten.bool_not().float()
}

/// Δt of each mail by [`crate::Clock::tensors`]' `clock` `[2]` and `now` (here `[U, 1]`):
/// `mail_time`, `valid` `[U, M]`, `last` `[U, 1]` → `[U, M]`, 0 where the slot is empty.
pub fn mail_dt(
    mail_time: Tensor<2>,
    last: Tensor<2>,
    valid: Tensor<2>,
    clock: Tensor<1>,
    now: Tensor<2>,
) -> Tensor<2> {
    let part = |i: usize| -> Tensor<2> { clock.clone().narrow(0, i, 1).unsqueeze() };
    let (sign, from_last) = (part(0), part(1));
    let base = last * from_last.clone() + now * (from_last.neg() + 1.0);
    (mail_time - base) * sign * valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;

    #[test]
    fn mail_dt_by_clock_by_hand() {
        let device = Device::flex();
        // One node, last update 2, mails at 3 and 5, the first slot empty.
        let mail_time = Tensor::<2>::from_floats([[9.0, 3.0, 5.0]], &device);
        let last = Tensor::<2>::from_floats([[2.0]], &device);
        let valid = Tensor::<2>::from_floats([[0.0, 1.0, 1.0]], &device);
        let dt = |clock: Clock| {
            let (clock, now) = clock.tensors(1, &device);
            let t = mail_dt(
                mail_time.clone(),
                last.clone(),
                valid.clone(),
                clock,
                now.unsqueeze_dim(1),
            );
            t.into_data().try_to_vec::<f32>().expect("f32")
        };
        assert_eq!(dt(Clock::SinceUpdate), [0.0, 1.0, 3.0]);
        let now = Tensor::from_floats([7.0], &device);
        assert_eq!(dt(Clock::Age { now }), [0.0, 4.0, 2.0]);
    }
}
