//! The tensors one batch feeds the model, built from host buffers laid out as the sampler and the
//! memory store produce them (the model crate depends on neither).

use burn::prelude::*;

use crate::tensors::{bools, floats, indices};

/// State of the batch's `U` unique nodes before the update.
#[derive(Debug, Clone)]
pub struct MemoryInput {
    /// `[U, d]`.
    pub memory: Tensor<2>,
    /// `[U, M, mail_dim]`, oldest first.
    pub mail: Tensor<3>,
    /// `[U, M]` mail time minus last update.
    pub mail_dt: Tensor<2>,
    /// `[U, M]`.
    pub mail_mask: Tensor<2, Bool>,
}

impl MemoryInput {
    /// From the row-major host buffers of [`crate::memory::Gathered`].
    pub fn from_host(
        g: &crate::memory::Gathered,
        dim: usize,
        slots: usize,
        device: &Device,
    ) -> Self {
        let u = g.last_update.len();
        let mail_dim = g.mail.len().checked_div(u * slots).unwrap_or(0);
        MemoryInput {
            memory: floats(&g.memory, [u, dim], device),
            mail: floats(&g.mail, [u, slots, mail_dim], device),
            mail_dt: floats(&g.mail_dt, [u, slots], device),
            mail_mask: bools(&g.mail_mask, [u, slots], device),
        }
    }
}

/// One hop of sampled neighbours: `k` slots for each of `n` roots of the hop.
#[derive(Debug, Clone)]
pub struct HopInput {
    /// `[n·k]` rows of the unique-node memory.
    pub index: Tensor<1, Int>,
    /// `[n, k]` root time minus event time.
    pub dt: Tensor<2>,
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
        let n = index.len() / k.max(1);
        HopInput {
            index: indices(index, device),
            dt: floats(dt, [n, k], device),
            edge: edge.map(|(e, d)| floats(e, [n, k, d], device)),
            mask: bools(mask, [n, k], device),
        }
    }
}

/// What the embedding needs besides the memories.
#[derive(Debug, Clone)]
pub struct EmbedInput {
    /// `[R]` rows of the unique-node memory for the roots.
    pub root_index: Tensor<1, Int>,
    /// `[R]` query time minus the root's last update (JODIE's projection), scaled.
    pub root_dt: Tensor<1>,
    /// Hop `l + 1` has `k` slots per slot of hop `l`.
    pub hops: Vec<HopInput>,
}
