//! The run configuration: TGL's sections (`sampling`, `memory`, `gnn`, `train`) plus `data` and
//! `pipeline`, read from TOML. Presets for TGN, JODIE and APAN are compiled in; a config file and
//! `--set section.key=value` overrides are layered on top, so every key can be set from the
//! command line.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use mspipe_data::Format;
use mspipe_model::memory::Combine;
use mspipe_model::{Delivery, EmbeddingKind, MailAges, MessageKind, UpdaterKind};
use mspipe_sampler::{NegativeStrategy, Strategy};
use mspipe_scheduler::Mode;
use mspipe_step::Embed;
use serde::{Deserialize, Serialize};

/// `[("section.key", config.section.key), …]`: each value beside the key a message names it by.
macro_rules! keyed {
    ($config:ident; $($section:ident . $key:ident),+ $(,)?) => {
        [$((concat!(stringify!($section), ".", stringify!($key)), $config.$section.$key)),+]
    };
}

/// Everything a run needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub model: ModelName,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub sampling: SamplingConfig,
    #[serde(default)]
    pub memory: MemoryConfig,
    #[serde(default)]
    pub gnn: GnnConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub pipeline: PipelineConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelName {
    Tgn,
    Jodie,
    Apan,
    /// The memorisation baseline: a pair scores 1 if it occurred before (nothing is trained).
    Edgebank,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// A shipped dataset name or a path.
    pub dataset: String,
    /// `auto` or one of snap, dyglib, jodie, tgl, csv.
    #[serde(with = "text")]
    pub format: FormatChoice,
    pub val_fraction: f64,
    pub test_fraction: f64,
    /// Share of nodes hidden from training (TGN's inductive protocol).
    pub new_node_fraction: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub strategy: Strategy,
    pub neighbors: usize,
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    pub updater: UpdaterKind,
    pub dim: usize,
    pub time_dim: usize,
    /// Keep the time encoding's frequencies at their initial values (GraphMixer's fixed
    /// encoding): no gradient flows through its cos, which makes a TGN step cheaper on CPU.
    pub time_fixed: bool,
    pub mailbox: usize,
    pub combine: Combine,
    pub message: MessageKind,
    pub delivery: Delivery,
    /// When APAN's updater measures its mails' ages: `root` (each root's time, TGL's) or `batch`
    /// (the batch's first event time).
    pub mail_ages: MailAges,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GnnConfig {
    pub embedding: EmbeddingKind,
    pub dim: usize,
    pub heads: usize,
    /// Dropout probability on the attention output and merge hidden units while training (TGL's
    /// `dropout`; off in evaluation).
    pub dropout: f64,
    /// Dropout probability on the attention weights while training (TGL's `att_dropout`; off in
    /// evaluation). 0 by default, see `mspipe_model::AttentionHeadsConfig::att_dropout`.
    pub att_dropout: f64,
    /// `per_event` (TGN's: every event's nodes at its time) or `per_node` (PyG's TGN: each node
    /// once per batch, at the batch's first event time).
    pub embed: Embed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub seed: u64,
    /// Stop after this many epochs without a better validation AP.
    pub patience: usize,
    /// Worker threads (0: all cores), shared out among the compute workers.
    pub threads: usize,
    /// Data-parallel compute workers (model replicas) over one shared node memory: batch `i`
    /// goes to worker `i mod workers`, and each group of `workers` batches makes one optimizer
    /// step with their gradients averaged. More than one makes `pipeline.mode` default to
    /// `mspipe`.
    pub workers: usize,
    /// How the learning rate grows with the workers (the averaged gradient of `workers` batches
    /// is one step).
    pub lr_scaling: LrScaling,
    /// Evaluation negatives.
    pub eval_negatives: NegativeStrategy,
    /// Negatives per positive for MRR (0: no MRR).
    pub mrr_negatives: usize,
    /// Also checkpoint every this many training batches inside an epoch (0: epoch ends only).
    pub checkpoint_every: usize,
    /// After training, score dynamic node classification when the stream has labels.
    pub node_classification: bool,
}

/// The learning rate of `workers` data-parallel workers, as a multiple of `train.lr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrScaling {
    /// × √workers (MSPipe's code).
    Sqrt,
    /// × workers (the linear scaling rule).
    Linear,
    /// × 1.
    None,
}

impl LrScaling {
    /// The factor for `workers` workers.
    pub fn factor(self, workers: usize) -> f64 {
        match self {
            LrScaling::Sqrt => (workers as f64).sqrt(),
            LrScaling::Linear => workers as f64,
            LrScaling::None => 1.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// `off` (sequential semantics, sampling still runs ahead), `mspipe` (staleness chosen per
    /// iteration, at most `k_max`) or `fixed:K`.
    #[serde(with = "text")]
    pub mode: Mode,
    /// Largest staleness `mspipe` may choose.
    pub k_max: usize,
    /// Blend stale memories with similar fresher ones (when a fetch missed updates).
    pub mitigation: bool,
    /// Weight of a stale node's own memory in the blend.
    pub lambda: f32,
    /// Similar nodes averaged per stale node.
    pub top: usize,
    /// Δt quantile of the batch above which a node also counts as stale.
    pub quantile: f64,
    /// Batches sampling and feature fetch may run ahead of the memory fetch.
    pub queue: usize,
}

impl PipelineConfig {
    /// The scheduler mode, with `k_max` for `mspipe`.
    pub fn scheduler_mode(&self) -> Mode {
        match self.mode {
            Mode::Adaptive { .. } => Mode::Adaptive { k_max: self.k_max },
            mode => mode,
        }
    }

    /// The executor for this configuration.
    pub fn executor(&self) -> mspipe_scheduler::Executor {
        let mut executor = mspipe_scheduler::Executor::new(self.scheduler_mode());
        executor.queue = self.queue;
        executor
    }
}

/// A data format, or `auto`: detect it from the file (or take the shipped dataset's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatChoice {
    #[default]
    Auto,
    Named(Format),
}

impl FormatChoice {
    /// The format to read with, given the shipped dataset's (if the name was one).
    pub fn or(self, named: Option<Format>) -> Option<Format> {
        match self {
            FormatChoice::Auto => named,
            FormatChoice::Named(f) => Some(f),
        }
    }
}

impl fmt::Display for FormatChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatChoice::Auto => f.write_str("auto"),
            FormatChoice::Named(format) => format.fmt(f),
        }
    }
}

impl FromStr for FormatChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(FormatChoice::Auto);
        }
        s.parse().map(FormatChoice::Named).map_err(|_| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
            format!(
                "unknown variant `{s}`, expected `auto` or one of {}",
                names.join(", ")
            )
        })
    }
}

/// Serde through a value's text (`Display` / `FromStr`), for choices that carry a value
/// (`fixed:K`) or an absent one (`auto`).
mod text {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: "wikipedia".into(),
            format: FormatChoice::Auto,
            val_fraction: 0.15,
            test_fraction: 0.15,
            new_node_fraction: 0.1,
        }
    }
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            strategy: Strategy::Recent,
            neighbors: 10,
            layers: 1,
        }
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            updater: UpdaterKind::Gru,
            dim: 100,
            time_dim: 100,
            time_fixed: false,
            mailbox: 1,
            combine: Combine::Last,
            message: MessageKind::Identity,
            delivery: Delivery::ToSelf,
            mail_ages: MailAges::Root,
        }
    }
}

impl Default for GnnConfig {
    fn default() -> Self {
        GnnConfig {
            embedding: EmbeddingKind::Attention,
            dim: 100,
            heads: 2,
            dropout: 0.1,
            att_dropout: 0.0,
            embed: Embed::PerEvent,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 4,
            batch_size: 600,
            lr: 1e-3,
            seed: 0,
            patience: 3,
            threads: 0,
            workers: 1,
            lr_scaling: LrScaling::Sqrt,
            eval_negatives: NegativeStrategy::Random,
            mrr_negatives: 0,
            checkpoint_every: 100,
            node_classification: true,
        }
    }
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            mode: Mode::Off,
            k_max: 4,
            mitigation: true,
            lambda: 0.9,
            top: 10,
            quantile: 0.99,
            queue: 2,
        }
    }
}

/// The compiled-in preset of `model`.
pub fn preset(model: ModelName) -> &'static str {
    match model {
        ModelName::Tgn => include_str!("../presets/tgn.toml"),
        ModelName::Jodie => include_str!("../presets/jodie.toml"),
        ModelName::Apan => include_str!("../presets/apan.toml"),
        ModelName::Edgebank => include_str!("../presets/edgebank.toml"),
    }
}

/// Preset of `model`, then the file (if any), then `key=value` overrides, in that order.
pub fn resolve(model: ModelName, file: Option<&str>, overrides: &[String]) -> Result<Config> {
    let mut value: toml::Table = toml::from_str(preset(model)).context("built-in preset")?;
    if let Some(text) = file {
        let table: toml::Table = toml::from_str(text)?;
        merge(&mut value, table);
    }
    value.insert("model".into(), toml::Value::String(model.name().into()));
    for item in overrides {
        set(&mut value, item)?;
    }
    default_mode_for_workers(&mut value);
    let config: Config = value.try_into().context("invalid configuration")?;
    config.validate()?;
    Ok(config)
}

/// Several workers and no mode chosen: `mspipe` (what asking for workers is for; `off` makes
/// them take turns).
fn default_mode_for_workers(value: &mut toml::Table) {
    let section = |name: &str| value.get(name).and_then(toml::Value::as_table);
    let workers = section("train").and_then(|t| t.get("workers")?.as_integer());
    let chosen = section("pipeline").is_some_and(|t| t.contains_key("mode"));
    if workers.is_some_and(|w| w > 1) && !chosen {
        let pipeline = value
            .entry("pipeline")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = pipeline {
            t.insert("mode".into(), toml::Value::String("mspipe".into()));
        }
    }
}

impl ModelName {
    /// The lowercase name configs and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            ModelName::Tgn => "tgn",
            ModelName::Jodie => "jodie",
            ModelName::Apan => "apan",
            ModelName::Edgebank => "edgebank",
        }
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Applies `section.key=value`; the value is parsed as TOML (numbers, booleans) or kept a string.
fn set(table: &mut toml::Table, item: &str) -> Result<()> {
    let Some((path, raw)) = item.split_once('=') else {
        bail!("override {item:?} is not section.key=value");
    };
    let Some((section, key)) = path.trim().split_once('.') else {
        bail!("override {item:?}: the key must be section.key (e.g. train.lr)");
    };
    let parsed: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.trim().into()),
    };
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(key.to_string(), parsed);
            Ok(())
        }
        _ => bail!("override {item:?}: {section} is not a section"),
    }
}

impl Config {
    /// Refuses values no run can use, naming the key (a choice outside its enum already fails
    /// to parse).
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.pipeline.lambda) {
            bail!(
                "pipeline.lambda = {}: must lie in [0, 1]",
                self.pipeline.lambda
            );
        }
        for (key, p) in keyed!(self; gnn.dropout, gnn.att_dropout) {
            if !(0.0..1.0).contains(&p) {
                bail!("{key} = {p}: must lie in [0, 1)");
            }
        }
        if !(0.0..=1.0).contains(&self.pipeline.quantile) {
            bail!(
                "pipeline.quantile = {}: must lie in [0, 1]",
                self.pipeline.quantile
            );
        }
        let positive = keyed!(self;
            sampling.neighbors, sampling.layers, memory.dim, memory.time_dim, memory.mailbox,
            gnn.dim, gnn.heads, train.epochs, train.batch_size, train.workers, pipeline.top,
            pipeline.queue);
        for (key, v) in positive {
            if v == 0 {
                bail!("{key} must be at least 1");
            }
        }
        if !self.gnn.dim.is_multiple_of(self.gnn.heads)
            || !self.memory.dim.is_multiple_of(self.gnn.heads)
        {
            bail!(
                "gnn.heads = {} must divide gnn.dim and memory.dim",
                self.gnn.heads
            );
        }
        if !(self.train.lr > 0.0 && self.train.lr.is_finite()) {
            bail!("train.lr = {} must be positive", self.train.lr);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_overrides_win() {
        for m in [
            ModelName::Tgn,
            ModelName::Jodie,
            ModelName::Apan,
            ModelName::Edgebank,
        ] {
            resolve(m, None, &[]).unwrap();
        }
        let file = "[train]\nepochs = 9\nlr = 0.5\n";
        let c = resolve(
            ModelName::Tgn,
            Some(file),
            &["train.lr=0.001".into(), "data.dataset=mathoverflow".into()],
        )
        .unwrap();
        assert_eq!((c.train.epochs, c.train.lr), (9, 0.001));
        assert_eq!(c.data.dataset, "mathoverflow");
        assert_eq!(c.memory.updater, UpdaterKind::Gru);
    }

    /// Every choice reads back what it wrote, and the names are the ones configs use.
    #[test]
    fn choices_round_trip_through_toml() {
        let mut c = resolve(ModelName::Apan, None, &["pipeline.mode=fixed:3".into()]).unwrap();
        c.data.format = FormatChoice::Named(Format::DyGLib);
        let text = toml::to_string(&c).unwrap();
        for line in [
            "format = \"dyglib\"",
            "mode = \"fixed:3\"",
            "delivery = \"neighbors\"",
            "updater = \"transformer\"",
            "embedding = \"identity\"",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), c);
    }

    #[test]
    fn several_workers_default_to_the_mspipe_mode_and_scale_the_learning_rate() {
        let c = resolve(ModelName::Tgn, None, &[]).unwrap();
        assert_eq!((c.train.workers, c.pipeline.mode), (1, Mode::Off));
        let c = resolve(ModelName::Tgn, None, &["train.workers=2".into()]).unwrap();
        assert_eq!(c.pipeline.mode, Mode::Adaptive { k_max: 4 });
        let sets = ["train.workers=2".into(), "pipeline.mode=off".into()];
        assert_eq!(
            resolve(ModelName::Tgn, None, &sets).unwrap().pipeline.mode,
            Mode::Off
        );
        let file = "[pipeline]\nmode = \"fixed:1\"\n";
        let c = resolve(ModelName::Tgn, Some(file), &["train.workers=4".into()]).unwrap();
        assert_eq!(c.pipeline.mode, Mode::Fixed(1));
        assert_eq!(c.train.lr_scaling.factor(4), 2.0);
        assert_eq!(LrScaling::Linear.factor(4), 4.0);
        assert_eq!(LrScaling::Sqrt.factor(1), 1.0);
        let e = resolve(ModelName::Tgn, None, &["train.workers=0".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("train.workers"), "{e:#}");
        let e = resolve(ModelName::Tgn, None, &["train.lr_scaling=cube".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("sqrt"), "{e:#}");
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let e = resolve(ModelName::Tgn, None, &["train.lrr=1".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("lrr"), "{e:#}");
        // A choice outside its enum fails to parse, naming the key and every allowed value.
        for (item, key, allowed) in [
            ("memory.updater=lstm", "updater", "`gru`, `rnn`"),
            ("memory.delivery=all", "delivery", "`self` or `neighbors`"),
            ("gnn.embedding=mlp", "embedding", "`time-projection`"),
            (
                "sampling.strategy=latest",
                "strategy",
                "`recent` or `uniform`",
            ),
            (
                "train.eval_negatives=hard",
                "eval_negatives",
                "`historical`",
            ),
            ("pipeline.mode=fixed", "mode", "off, mspipe or fixed:K"),
            ("data.format=parquet", "format", "`auto` or one of snap"),
        ] {
            let e = resolve(ModelName::Tgn, None, &[item.into()]).unwrap_err();
            let text = format!("{e:#}");
            assert!(
                text.contains(key) && text.contains(allowed),
                "{item}: {text}"
            );
        }
        let e = resolve(ModelName::Tgn, None, &["gnn.heads=3".into()]).unwrap_err();
        assert!(e.to_string().contains("gnn.heads"), "{e}");
        assert!(resolve(ModelName::Tgn, None, &["lr=1".into()]).is_err());
    }
}
