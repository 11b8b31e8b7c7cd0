//! The memory-based TGNN: memory updater, embedding, link decoder, with TGL's presets for TGN,
//! JODIE and APAN.

use burn::nn::{LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, relu};
use mspipe_kernels::{Clock, DeviceMemory, Fetched, select_rows};

use crate::embedding::{NeighborRows, Neighbors, TemporalAttention, TemporalAttentionConfig};
use crate::embedding::{TimeProjection, TimeProjectionConfig};
use crate::input::{EmbedInput, MemoryInput};
use crate::linear;
use crate::memory::{
    Combine, GruCellConfig, MailboxAttentionConfig, Mails, MemoryUpdater, RnnCellConfig,
};
use crate::{
    AttentionHeadsConfig, LinkPredictor, LinkPredictorConfig, TimeEncoding, TimeEncodingConfig,
};

/// Which memory updater (`gru`, `rnn` or `transformer` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum UpdaterKind {
    /// A GRU cell (TGN).
    Gru,
    /// A vanilla RNN cell (JODIE).
    Rnn,
    /// Attention over the mailbox (APAN).
    Transformer,
}

/// Which embedding module (`attention`, `identity` or `time-projection` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum EmbeddingKind {
    /// `layers` of temporal graph attention over sampled neighbours.
    Attention,
    /// The memory itself.
    Identity,
    /// JODIE's h = s ⊙ (1 + w·Δt).
    TimeProjection,
}

/// Which message function turns a raw mail (self memory ⊕ other memory ⊕ edge) into the
/// updater's input (`identity` or `mlp` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum MessageKind {
    /// The raw mail itself.
    Identity,
    /// One linear layer and ReLU, to `memory_dim`.
    Mlp,
}

/// Who receives the mails of an event (`self` or `neighbors` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum Delivery {
    /// Its two endpoints (TGN, JODIE).
    #[serde(rename = "self")]
    ToSelf,
    /// Its endpoints and their sampled neighbours (APAN).
    #[serde(rename = "neighbors")]
    ToNeighbors,
}

/// What Δt the updater's time encoding sees for each mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailClock {
    /// The mail's time minus the node's last update: the gap between a node's consecutive
    /// events (TGN's and JODIE's messages).
    SinceUpdate,
    /// How old each mail is (APAN's mailbox), measured when [`MailAges`] says.
    Age(MailAges),
}

/// When APAN's mail ages are measured (`root` or `batch` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum MailAges {
    /// At each root's own time, each root's memory updated on its own: TGL's per-root updater.
    Root,
    /// At the batch's first event time, one updated memory per node of the batch
    /// (`benches/report/apan-jodie.md` measures both).
    Batch,
}

/// A memory-based TGNN.
#[derive(Config, Debug)]
pub struct MemoryModelConfig {
    /// Edge-feature width (0: none).
    pub edge_dim: usize,
    /// Node memory width.
    #[config(default = 100)]
    pub memory_dim: usize,
    /// Time-encoding width.
    #[config(default = 100)]
    pub time_dim: usize,
    /// Embedding width of the attention layers.
    #[config(default = 100)]
    pub embed_dim: usize,
    /// How a node's memory is updated from its mails.
    pub updater: UpdaterKind,
    /// How the roots are embedded from their memories.
    pub embedding: EmbeddingKind,
    /// How a raw mail becomes the updater's input.
    #[config(default = "MessageKind::Identity")]
    pub message: MessageKind,
    /// How a recurrent updater reduces the mailbox.
    #[config(default = "Combine::Last")]
    pub combine: Combine,
    /// Who receives an event's mails.
    #[config(default = "Delivery::ToSelf")]
    pub delivery: Delivery,
    /// Mails kept per node.
    #[config(default = 1)]
    pub mailbox: usize,
    /// Attention layers (= sampling hops).
    #[config(default = 1)]
    pub layers: usize,
    /// Heads and dropout of the attention layers (the embedding's and APAN's updater's).
    #[config(default = "AttentionHeadsConfig::new()")]
    pub attention: AttentionHeadsConfig,
    /// Neighbours sampled per hop.
    #[config(default = 10)]
    pub neighbors: usize,
    /// When an attention updater (APAN) measures its mails' ages.
    #[config(default = "MailAges::Root")]
    pub mail_ages: MailAges,
    /// Keep the time encoding's frequencies fixed.
    #[config(default = false)]
    pub frozen_time: bool,
    /// The longest Δt the time encoding's initial frequencies resolve
    /// ([`TimeEncodingConfig::span`]), in the unit Δt is given in.
    #[config(default = 1e9)]
    pub time_span: f64,
}

impl MemoryModelConfig {
    /// TGN as TGL configures it: GRU, mailbox 1, one attention layer, 10 neighbours, 2 heads.
    pub fn tgn(edge_dim: usize) -> Self {
        Self::new(edge_dim, UpdaterKind::Gru, EmbeddingKind::Attention)
    }

    /// JODIE: RNN updater and the time projection embedding.
    pub fn jodie(edge_dim: usize) -> Self {
        Self::new(edge_dim, UpdaterKind::Rnn, EmbeddingKind::TimeProjection)
    }

    /// APAN: attention over a mailbox of 10, mails delivered to neighbours, memory as embedding.
    pub fn apan(edge_dim: usize) -> Self {
        Self::new(edge_dim, UpdaterKind::Transformer, EmbeddingKind::Identity)
            .with_mailbox(10)
            .with_delivery(Delivery::ToNeighbors)
    }

    /// Width of a raw mail: self memory ⊕ other memory ⊕ edge features.
    pub fn mail_dim(&self) -> usize {
        2 * self.memory_dim + self.edge_dim
    }

    /// What Δt the updater's time encoding sees: mail ages for attention over the mailbox
    /// (APAN), the gap since the last update for the recurrent updaters.
    pub fn mail_clock(&self) -> MailClock {
        match self.updater {
            UpdaterKind::Transformer => MailClock::Age(self.mail_ages),
            UpdaterKind::Gru | UpdaterKind::Rnn => MailClock::SinceUpdate,
        }
    }

    /// Width of the embeddings the decoder sees.
    pub fn output_dim(&self) -> usize {
        match self.embedding {
            EmbeddingKind::Attention => self.embed_dim,
            _ => self.memory_dim,
        }
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> MemoryModel {
        let d = self.memory_dim;
        let msg_dim = match self.message {
            MessageKind::Identity => self.mail_dim(),
            MessageKind::Mlp => d,
        };
        let updater_in = msg_dim + self.time_dim;
        let updater = match self.updater {
            UpdaterKind::Gru => MemoryUpdater::Gru(GruCellConfig::new(updater_in, d).init(device)),
            UpdaterKind::Rnn => MemoryUpdater::Rnn(RnnCellConfig::new(updater_in, d).init(device)),
            UpdaterKind::Transformer => MemoryUpdater::Transformer(
                MailboxAttentionConfig::new(updater_in, d)
                    .with_attention(self.attention.clone())
                    .init(device),
            ),
        };
        let layers = match self.embedding {
            EmbeddingKind::Attention => (0..self.layers)
                .map(|l| {
                    let input = if l == 0 { d } else { self.embed_dim };
                    TemporalAttentionConfig::new(
                        input,
                        self.edge_dim,
                        self.time_dim,
                        self.embed_dim,
                    )
                    .with_attention(self.attention.clone())
                    .init(device)
                })
                .collect(),
            _ => Vec::new(),
        };
        MemoryModel {
            time: TimeEncodingConfig::new(self.time_dim)
                .with_frozen(self.frozen_time)
                .with_span(self.time_span)
                .init(device),
            message: (self.message == MessageKind::Mlp)
                .then(|| LinearConfig::new(self.mail_dim(), d).init(device)),
            updater,
            layers,
            norm: (self.embedding != EmbeddingKind::Attention)
                .then(|| crate::norm::init(d, device)),
            projection: (self.embedding == EmbeddingKind::TimeProjection)
                .then(|| TimeProjectionConfig::new(d).init(device)),
            link: LinkPredictorConfig::new(self.output_dim()).init(device),
            combine: self.combine,
            clock: self.mail_clock(),
        }
    }
}

/// A memory-based TGNN (see [`MemoryModelConfig`]).
#[derive(Module, Debug)]
pub struct MemoryModel {
    time: TimeEncoding,
    message: Option<Linear>,
    updater: MemoryUpdater,
    layers: Vec<TemporalAttention>,
    /// TGL's `IdentityNormLayer`: the memory embeddings (JODIE, APAN) are layer-normalised.
    norm: Option<LayerNorm>,
    projection: Option<TimeProjection>,
    link: LinkPredictor,
    #[module(skip)]
    combine: Combine,
    #[module(skip)]
    clock: MailClock,
}

impl MemoryModel {
    /// The updated `[U, d]` memories of the batch's unique nodes (differentiable: the updater
    /// learns through the loss of the embeddings computed from them).
    pub fn update_memory(&self, input: MemoryInput) -> Tensor<2> {
        let mails = self.mails(input.mail, self.time.forward(input.mail_dt));
        self.updater
            .forward(input.memory, mails, input.mail_mask, self.combine)
    }

    /// Reads `nodes`' memories and mailboxes from a device-resident store and encodes their mail
    /// times with this model's time encoding and [`MemoryModel::mail_clock`] (ages at each
    /// node's `now()` `[U]`, in the store's time; called only when the clock measures ages), in
    /// one fused pass where the device has the kernel (see [`mspipe_kernels::fetch`]);
    /// [`MemoryModel::update_fetched`] continues from it.
    pub fn fetch_memory(
        &self,
        state: &DeviceMemory,
        nodes: Tensor<1, Int>,
        now: impl FnOnce() -> Tensor<1>,
    ) -> Fetched {
        let (w, b) = self.time.parameters();
        let clock = match self.clock {
            MailClock::SinceUpdate => Clock::SinceUpdate,
            MailClock::Age(_) => Clock::Age { now: now() },
        };
        mspipe_kernels::fetch(state, nodes, w, b, clock)
    }

    /// [`MemoryModel::update_memory`] from what [`MemoryModel::fetch_memory`] read.
    pub fn update_fetched(&self, fetched: &Fetched) -> Tensor<2> {
        // The fetch wrote mail ⊕ φ(Δt) side by side.
        let [_, _, width] = fetched.input.dims();
        let mail_dim = width - self.time.dim();
        let mails = match &self.message {
            None => Mails::side_by_side(fetched.input.clone(), mail_dim),
            Some(_) => {
                let part = |from, len| fetched.input.clone().narrow(2, from, len);
                self.mails(part(0, mail_dim), part(mail_dim, self.time.dim()))
            }
        };
        let mask = fetched.keep.clone().greater_elem(0.5);
        self.updater
            .forward(fetched.memory.clone(), mails, mask, self.combine)
    }

    /// The updater's input: the message made from each raw mail, beside its time encoding.
    fn mails(&self, mail: Tensor<3>, time: Tensor<3>) -> Mails {
        let mail = match &self.message {
            Some(mlp) => relu(linear::rows(mlp, mail)),
            None => mail,
        };
        Mails::new(mail, time)
    }

    /// Embeddings of the roots from the updated memories.
    ///
    /// # Shapes
    /// - `memory`: `[U, d]`, the batch's unique nodes (what [`MemoryModel::update_memory`] gives);
    /// - `input.root_index`, `input.root_dt`: `[R]`; one [`crate::HopInput`] per attention layer;
    /// - output: `[R, out]` ([`MemoryModelConfig::output_dim`]).
    ///
    /// # Panics
    /// If the model has attention layers and `input.hops` holds fewer hops than layers (TGN needs
    /// the sampled neighbourhood, JODIE and APAN need none).
    pub fn embed(&self, memory: Tensor<2>, input: &EmbedInput) -> Tensor<2> {
        if let Some(norm) = &self.norm {
            let roots = select_rows(memory.clone(), input.root_index.clone());
            let roots = crate::norm::forward(norm, roots);
            return match &self.projection {
                Some(p) => p.forward(roots, input.root_dt.clone()),
                None => roots,
            };
        }
        // reps[j]: representations of level j (0 = roots, j = slots of hop j) at the current
        // layer. At layer 0 every level is rows of the memory table, so the first layer
        // projects the table and gathers (see `NeighborRows::Gather`).
        let levels = self.layers.len();
        assert!(
            input.hops.len() >= levels,
            "{levels} attention layer(s) need as many sampled hops, got {}",
            input.hops.len()
        );
        let indices =
            std::iter::once(&input.root_index).chain(input.hops[..levels].iter().map(|h| &h.index));
        let mut reps: Vec<NeighborRows> = indices
            .map(|index| NeighborRows::Gather {
                table: memory.clone(),
                index: index.clone(),
            })
            .collect();
        for (l, layer) in self.layers.iter().enumerate() {
            let next: Vec<NeighborRows> = (0..levels - l)
                .map(|j| {
                    let hop = &input.hops[j];
                    let nbr = Neighbors {
                        h: reps[j + 1].clone(),
                        dt: hop.dt.clone(),
                        edge: hop.edge.clone(),
                        mask: hop.mask.clone(),
                    };
                    let out = layer.forward(reps[j].clone(), nbr, &self.time);
                    NeighborRows::Dense(out.unsqueeze())
                })
                .collect();
            reps = next;
        }
        rows(reps.swap_remove(0))
    }
    /// What Δt the updater's time encoding expects in [`MemoryInput::mail_dt`] (and
    /// [`MemoryModel::fetch_memory`] computes).
    pub fn mail_clock(&self) -> MailClock {
        self.clock
    }

    /// JODIE's time projection, if the embedding is one.
    pub fn projection(&self) -> Option<&TimeProjection> {
        self.projection.as_ref()
    }

    /// The attention layers (empty unless the embedding is attention).
    pub fn layers(&self) -> &[TemporalAttention] {
        &self.layers
    }

    /// The time encoding shared by the updater and the attention layers.
    pub fn time_encoding(&self) -> &TimeEncoding {
        &self.time
    }

    /// Link logits for the pairs (`src[i]`, `dst[i]`) of embedding rows.
    pub fn score(&self, h: Tensor<2>, src: Tensor<1, Int>, dst: Tensor<1, Int>) -> Tensor<1> {
        self.link
            .forward(select_rows(h.clone(), src), select_rows(h, dst))
    }

    /// Logits `[B, C]` of every pair of `[B, dim]` sources and `[C, dim]` destinations
    /// (ranking candidates; see [`LinkPredictor::all_pairs`](crate::decoder::LinkPredictor::all_pairs)).
    pub fn score_all(&self, h_src: Tensor<2>, h_dst: Tensor<2>) -> Tensor<2> {
        self.link.all_pairs(h_src, h_dst)
    }

    /// Binary cross-entropy of positive logits (label 1) and negative logits (label 0), each
    /// averaged over its own count (TGL's loss).
    pub fn loss(pos: Tensor<1>, neg: Tensor<1>) -> Tensor<1> {
        log_sigmoid(pos).mean().neg() - log_sigmoid(neg.neg()).mean()
    }
}

/// The representations as `[n, width]` rows.
fn rows(r: NeighborRows) -> Tensor<2> {
    match r {
        NeighborRows::Dense(t) => {
            let [a, b, c] = t.dims();
            t.reshape([a * b, c])
        }
        NeighborRows::Gather { table, index } => select_rows(table, index),
    }
}
