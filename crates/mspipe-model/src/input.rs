//! The tensors one batch feeds the model, built from host buffers laid out as the sampler and the
//! memory store produce them (the model crate depends on neither).

use burn::prelude::*;

use burn::tensor::TensorData;

use crate::tensors::{bool_data, float_data, floats, index_data, indices};

/// State of the batch's `U` unique nodes before the update.
#[derive(Debug, Clone)]
pub struct MemoryInput {
    /// `[U, d]`.
    pub memory: Tensor<2>,
    /// `[U, M, mail_dim]`, oldest first.
    pub mail: Tensor<3>,
    /// `[U, M]` each mail's Δt as the model's [`crate::MailClock`] reads it (0 for an empty
    /// slot).
    pub mail_dt: Tensor<2>,
    /// `[U, M]`.
    pub mail_mask: Tensor<2, Bool>,
}

impl MemoryInput {
    /// From the row-major host buffers of [`crate::memory::Gathered`], taken without a copy.
    pub fn from_host(
        g: crate::memory::Gathered,
        dim: usize,
        slots: usize,
        device: &Device,
    ) -> Self {
        let u = g.last_update.len();
        let mail_dim = g.mail.len().checked_div(u * slots).unwrap_or(0);
        MemoryInput {
            memory: Tensor::from_data(float_data(g.memory, [u, dim]), device),
            mail: Tensor::from_data(float_data(g.mail, [u, slots, mail_dim]), device),
            mail_dt: Tensor::from_data(float_data(g.mail_dt, [u, slots]), device),
            mail_mask: Tensor::from_data(bool_data(g.mail_mask, [u, slots]), device),
        }
    }
}

/// One hop of sampled neighbours: `k` slots for each of `n` roots of the hop.
#[derive(Debug, Clone)]
pub struct HopInput {
    /// `[n·k]` rows of the unique-node memory.
    pub index: Tensor<1, Int>,
    /// Root time minus event time of the `n·k` slots.
    pub dt: SlotTimes,
    /// `[n, k, edge]` edge features.
    pub edge: Option<Tensor<3>>,
    /// `[n, k]`.
    pub mask: Tensor<2, Bool>,
}

impl HopInput {
    /// From flat host slices of `n·k` slots (`edge`: `n·k·edge_dim` values).
    pub fn from_host(
        index: &[u32],
        dt: &[f32],
        mask: &[bool],
        edge: Option<(&[f32], usize)>,
        k: usize,
        device: &Device,
    ) -> Self {
        let edge = edge.map(|(e, d)| (e.to_vec(), d));
        HopInput::upload(HostHop::new(index, dt, mask.to_vec(), edge, k), device)
    }

    /// The hop's tensors on `device` from its host data.
    pub fn upload(host: HostHop, device: &Device) -> Self {
        HopInput {
            index: Tensor::from_data(host.index, device),
            dt: SlotTimes {
                values: Tensor::from_data(host.dt_values, device),
                index: Tensor::from_data(host.dt_index, device),
            },
            edge: host.edge.map(|e| Tensor::from_data(e, device)),
            mask: Tensor::from_data(host.mask, device),
        }
    }
}

/// A [`HopInput`] as host data: everything but the move to a device, so that a pipeline can
/// build it on another thread than the one that computes.
#[derive(Debug, Clone)]
pub struct HostHop {
    index: TensorData,
    dt_values: TensorData,
    dt_index: TensorData,
    edge: Option<TensorData>,
    mask: TensorData,
}

impl HostHop {
    /// From flat host buffers of `n·k` slots (`edge`: `n·k·edge_dim` values); the Δt reduced to
    /// their distinct values ([`SlotTimes`]).
    pub fn new(
        index: &[u32],
        dt: &[f32],
        mask: Vec<bool>,
        edge: Option<(Vec<f32>, usize)>,
        k: usize,
    ) -> Self {
        let n = index.len() / k.max(1);
        let (values, dt_index) = distinct(dt);
        let distinct = values.len();
        HostHop {
            index: index_data(index),
            dt_values: float_data(values, [distinct]),
            dt_index: index_data(&dt_index),
            edge: edge.map(|(e, d)| float_data(e, [n, k, d])),
            mask: bool_data(mask, [n, k]),
        }
    }
}

/// The Δt of a hop's slots as its distinct values and, per slot, which value it holds.
///
/// Slots repeat Δt often (a pair's repeated events sit in both endpoints' neighbourhoods at the
/// same root time, and every padding slot holds 0): on the shipped datasets about half the slots
/// hold a distinct value, so encoding only the distinct values, which the attention reads per slot
/// through `index`, halves the time encoding's work.
#[derive(Debug, Clone)]
pub struct SlotTimes {
    /// `[D]` distinct Δt.
    pub values: Tensor<1>,
    /// `[slots]` position of each slot's Δt in `values`.
    pub index: Tensor<1, Int>,
}

impl SlotTimes {
    /// From one Δt per slot (equal values are those with equal bits).
    pub fn from_host(dt: &[f32], device: &Device) -> Self {
        let (values, index) = distinct(dt);
        SlotTimes {
            values: floats(&values, [values.len()], device),
            index: indices(&index, device),
        }
    }
}

/// The distinct values of `x` in order of first occurrence, and each element's position among
/// them. First-occurrence order keeps the rows the slots read from the encoded table nearly in
/// slot order (cache-friendly), where sorted order would scatter them.
fn distinct(x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    // Bits above position: sorted, each run of equal bits starts at its first occurrence, and
    // an unstable sort of plain integers is several times faster than sorting positions by a
    // looked-up key.
    let mut order: Vec<u64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| (u64::from(v.to_bits()) << 32) | i as u64)
        .collect();
    order.sort_unstable();
    let mut first = vec![0u32; x.len()];
    for run in order.chunk_by(|a, b| a >> 32 == b >> 32) {
        for &i in run {
            first[i as u32 as usize] = run[0] as u32;
        }
    }
    let mut values: Vec<f32> = Vec::new();
    let mut index = vec![0u32; x.len()];
    for (i, &f) in first.iter().enumerate() {
        if f as usize == i {
            values.push(x[i]);
            index[i] = values.len() as u32 - 1;
        } else {
            index[i] = index[f as usize];
        }
    }
    (values, index)
}

#[cfg(test)]
mod tests {
    use super::distinct;

    #[test]
    fn distinct_values_index_every_element() {
        let x = [3.0, 0.0, 3.0, 1.5, 0.0, -0.0, 7.25];
        let (values, index) = distinct(&x);
        // -0.0 and 0.0 differ in bits and are kept apart; everything else appears once, in order
        // of first occurrence.
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&values), bits(&[3.0, 0.0, 1.5, -0.0, 7.25]));
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(values[index[i] as usize].to_bits(), v.to_bits());
        }
        assert!(distinct(&[]).0.is_empty());
    }

    #[test]
    fn distinct_matches_a_first_occurrence_scan() {
        // Many repeats among a few values, in a scrambled order (a multiplicative sequence).
        let x: Vec<f32> = (0..5_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as f32 * 0.5 - 30.0)
            .collect();
        let (values, index) = distinct(&x);
        let mut expect: Vec<u32> = Vec::new();
        for v in &x {
            if !expect.contains(&v.to_bits()) {
                expect.push(v.to_bits());
            }
        }
        assert_eq!(
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            expect
        );
        for (i, v) in x.iter().enumerate() {
            assert_eq!(values[index[i] as usize].to_bits(), v.to_bits());
        }
    }
}

/// What the embedding needs besides the memories.
#[derive(Debug, Clone)]
pub struct EmbedInput {
    /// `[R]` rows of the unique-node memory for the roots.
    pub root_index: Tensor<1, Int>,
    /// `[R]` JODIE's Δ (TGL's `(t − t_mem) / (t + 1)` with `t` counted from the stream's first
    /// event): the root's time `t` minus its memory's time `m`, over `t + 1`, with `m` no earlier
    /// than the stream's start (a node never updated has drifted for the whole stream, Δ → 1).
    pub root_dt: Tensor<1>,
    /// Hop `l + 1` has `k` slots per slot of hop `l`.
    pub hops: Vec<HopInput>,
}

impl EmbedInput {
    /// [`EmbedInput::root_dt`] of a root at `time` whose memory dates from `memory_time`, in a
    /// stream that began at `origin`.
    pub fn drift(time: f64, memory_time: f64, origin: f64) -> f64 {
        let t = time - origin;
        (t - (memory_time - origin).max(0.0)) / (t + 1.0)
    }
}
