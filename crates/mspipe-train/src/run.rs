//! A training run: load and split the data, train epoch by epoch, score validation then test
//! after each epoch (memory carried forward), keep the best epoch by validation AP with early
//! stopping, and write the run directory.
//!
//! Checkpoints hold the model, the optimizer state, the per-epoch history and, when taken inside
//! an epoch, the node memory with mailboxes and the epoch's progress. Every sampler and negative
//! draw is keyed by (seed, epoch, batch) rather than drawn from a running generator, so that is
//! the whole state: a resumed run continues bit-identically.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use mspipe_data::{
    EventStream, Format, LoadOptions, ReadOptions, Split, SplitConfig, default_cache_dir, load,
    registry,
};
use serde::{Deserialize, Serialize};

use mspipe_model::kernels::memory_kernels_run_on;
use mspipe_scheduler::{Stage, Timeline};
use mspipe_step::{DeviceStore, MemoryStore, NodeMemory};

use crate::config::{Config, ModelName};
use crate::edgebank::EdgeBank;
use crate::metrics::{average_precision, mrr, per_batch_mean, roc_auc};
use crate::record::{
    EpochRecord, PipelineStats, RunPipeline, SplitMetrics, Summary, TrainingStats,
};
use crate::session::{Scores, Session, base_device, eval_negatives};

/// The git revision the binary was built from.
pub const GIT_REV: &str = env!("MSPIPE_GIT_REV");

/// The dataset file for `name`: a path or a shipped dataset (found from the working directory,
/// `$MSPIPE_DATASETS`, or the checkout the binary was built in; see `registry::default_root`).
pub fn dataset_path(name: &str) -> Result<(PathBuf, Option<Format>)> {
    let root = registry::default_root();
    Ok(registry::resolve(name, &root)?)
}

/// Loads and splits the configured dataset.
pub fn data(config: &Config) -> Result<(mspipe_data::EventStream, Split)> {
    let (path, named_format) = dataset_path(&config.data.dataset)?;
    let format = config.data.format.or(named_format);
    let options = LoadOptions {
        read: ReadOptions {
            format,
            ..Default::default()
        },
        cache_dir: Some(default_cache_dir()),
    };
    let stream = load(&path, &options)
        .with_context(|| format!("loading {}", path.display()))?
        .stream;
    let split_config = SplitConfig {
        val_fraction: config.data.val_fraction,
        test_fraction: config.data.test_fraction,
        new_node_fraction: config.data.new_node_fraction,
        seed: config.train.seed,
    };
    let split = if stream.ext_roll().is_some() {
        Split::from_ext_roll(&stream, &split_config)?
    } else {
        Split::chronological(&stream, &split_config)?
    };
    scorable(&stream, &split).with_context(|| format!("{}", path.display()))?;
    Ok((stream, split))
}

/// Refuses a stream whose metrics would mean nothing: an empty training, validation or test
/// split, or fewer than two destinations (every negative would be a true link's destination).
fn scorable(stream: &EventStream, split: &Split) -> Result<()> {
    let events = stream.len();
    for (name, len) in [
        ("training", split.train_events(stream).len()),
        ("validation", split.val.len()),
        ("test", split.test.len()),
    ] {
        if len == 0 {
            anyhow::bail!(
                "the {name} split is empty ({events} events): too small a stream for \
                 data.val_fraction / data.test_fraction"
            );
        }
    }
    let mut dst = stream.dst().to_vec();
    dst.sort_unstable();
    dst.dedup();
    if dst.len() < 2 {
        anyhow::bail!(
            "{} distinct destination(s) in {events} events: no negative can differ from a true \
             link, so AP would be meaningless",
            dst.len()
        );
    }
    Ok(())
}

/// A split's metrics: AP and AUC as the mean over evaluation batches (as TGN, TGL and MSPipe
/// report them) and over all events pooled; the pooled AP/AUC of the events that involve a node
/// hidden from training (scored inside the same pass); MRR when there are several negatives per
/// positive.
fn metrics(s: &Scores) -> SplitMetrics {
    let k = s.neg.len() / s.pos.len().max(1);
    let first_neg: Vec<f32> = s.neg.iter().step_by(k.max(1)).copied().collect();
    let (np, nn): (Vec<f32>, Vec<f32>) = (0..s.pos.len())
        .filter(|&i| s.new_node[i])
        .map(|i| (s.pos[i], first_neg[i]))
        .unzip();
    let batches = |metric| per_batch_mean(&s.pos, &first_neg, &s.batch_len, metric);
    SplitMetrics {
        ap: batches(average_precision),
        auc: batches(roc_auc),
        ap_pooled: average_precision(&s.pos, &first_neg),
        auc_pooled: roc_auc(&s.pos, &first_neg),
        ap_new_node_events: average_precision(&np, &nn),
        auc_new_node_events: roc_auc(&np, &nn),
        mrr: (k > 1).then(|| mrr(&s.pos, &s.neg)),
    }
}

/// Minor page faults of the process so far (Linux `/proc/self/stat`, field 10; 0 elsewhere).
pub fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The process's peak resident set so far (Linux `VmHWM`; 0 where unavailable).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Writes `text` to `path` through a temporary file beside it, renamed into place: a reader (or a
/// crash half-way) sees the old file or the new one, never part of one. Errors name the path.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// Whether `out` already holds a run (its config, metrics or checkpoint).
fn holds_a_run(out: &Path) -> bool {
    ["config.toml", "metrics.jsonl", "checkpoint", "summary.json"]
        .iter()
        .any(|f| out.join(f).exists())
}

/// How far an interrupted epoch got.
#[derive(Debug, Default, Serialize, Deserialize)]
struct EpochProgress {
    epoch: usize,
    next_batch: usize,
    losses: Vec<f64>,
    /// Seconds spent in training batches (checkpoint writes excluded).
    train_seconds: f64,
    /// Updates each batch's memory fetch missed.
    staleness: Vec<usize>,
    /// Busy seconds per stage (S, F, M, C, U).
    stage_seconds: [f64; 5],
    /// Compute seconds before the updates were handed over.
    #[serde(default)]
    forward_seconds: f64,
    /// Minor page faults during the training batches.
    #[serde(default)]
    minor_faults: u64,
    /// Seconds the pool's awake workers ran its work during the training batches, and the
    /// seconds they were awake (wall time × their count).
    #[serde(default)]
    pool_seconds: PoolSeconds,
}

/// Busy and awake seconds of the pool's awake workers ([`crate::pool`]) over some stretches.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct PoolSeconds {
    busy: f64,
    awake: f64,
}

impl PoolSeconds {
    /// The pool's state now, to measure a stretch from.
    fn mark() -> (Instant, f64) {
        (Instant::now(), crate::pool::busy_seconds())
    }

    /// Adds the stretch since `mark`.
    fn add(&mut self, (start, busy): (Instant, f64)) {
        self.busy += crate::pool::busy_seconds() - busy;
        self.awake += start.elapsed().as_secs_f64() * crate::pool::awake_workers() as f64;
    }

    /// The share of their awake time the workers were busy (none when none was awake).
    fn busy_share(&self) -> Option<f64> {
        (self.awake > 0.0).then(|| (self.busy / self.awake).min(1.0))
    }
}

impl EpochProgress {
    /// Adds a stretch of the pipeline.
    fn add(&mut self, timeline: &Timeline) {
        self.staleness
            .extend(timeline.iterations.iter().map(|it| it.observed));
        for s in Stage::ALL {
            self.stage_seconds[s.index()] += timeline.busy(s);
        }
        self.forward_seconds += timeline.before_handover();
    }

    /// The epoch's staleness and per-stage busy seconds.
    fn pipeline_stats(&self) -> PipelineStats {
        let n = self.staleness.len().max(1) as f64;
        PipelineStats {
            mean_staleness: self.staleness.iter().sum::<usize>() as f64 / n,
            max_staleness: self.staleness.iter().copied().max().unwrap_or(0),
            stage_seconds: Stage::ALL
                .iter()
                .map(|&s| (s.name().to_string(), self.stage_seconds[s.index()]))
                .collect(),
            forward_seconds: self.forward_seconds,
            minor_faults_per_batch: self.minor_faults as f64 / n,
            pool_busy_share: self.pool_seconds.busy_share(),
        }
    }
}

const PROGRESS: &str = "progress.json";
/// Iterations drawn in the run directory's `gantt.svg` (past the pipeline's warm-up).
const GANTT_WINDOW: std::ops::Range<usize> = 10..26;
const MEMORY: &str = "memory.bin";
/// Directory of the model of the best epoch by validation AP.
const BEST: &str = "best";

/// Saves model + optimizer + history (+ node memory and progress inside an epoch) into
/// `out/checkpoint`, replacing the previous one only once the new one is complete.
fn checkpoint<S: NodeMemory>(
    session: &Session<S>,
    out: &Path,
    history: &[EpochRecord],
    progress: Option<&EpochProgress>,
) -> Result<()> {
    write_dir(&out.join("checkpoint"), |tmp| {
        session.save(tmp)?;
        std::fs::write(tmp.join("history.json"), serde_json::to_string(history)?)?;
        if let Some(p) = progress {
            session.save_memory(&tmp.join(MEMORY))?;
            std::fs::write(tmp.join(PROGRESS), serde_json::to_string(p)?)?;
        }
        Ok(())
    })
}

/// Fills a fresh temporary directory with `fill`, then puts it in place of `dir`: a crash leaves
/// either the old directory or the new one, never a mix.
pub(crate) fn write_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    fill(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    let old = dir.with_extension("old");
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Restores the checkpoint in `out` into `session`: the history, and the interrupted epoch's
/// progress if it was taken inside one.
fn restore<S: NodeMemory>(
    session: &mut Session<S>,
    out: &Path,
) -> Result<(Vec<EpochRecord>, Option<EpochProgress>)> {
    let dir = out.join("checkpoint");
    let context = || format!("resuming from {}", dir.display());
    session.load(&dir).with_context(context)?;
    let history = serde_json::from_str(&std::fs::read_to_string(dir.join("history.json"))?)
        .with_context(context)?;
    let progress_file = dir.join(PROGRESS);
    if !progress_file.exists() {
        return Ok((history, None));
    }
    session
        .load_memory(&dir.join(MEMORY))
        .with_context(context)?;
    let progress =
        serde_json::from_str(&std::fs::read_to_string(&progress_file)?).with_context(context)?;
    Ok((history, Some(progress)))
}

fn progress(len: usize, label: String) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label);
    bar
}

/// Sizes the worker pool training runs on (burn's CPU backend and the samplers share rayon's
/// global pool); 0 keeps one thread per core. Call once, before any training.
pub fn use_threads(threads: usize) -> Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting the thread count")?;
    }
    Ok(())
}

/// What to do with a run directory that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse to train into it (the default: an earlier run is never replaced by accident).
    Refuse,
    /// Continue it from its checkpoint.
    Resume,
    /// Replace it.
    Replace,
}

/// Trains with `config`, writing the run directory `out`; with [`Existing::Resume`], continues
/// from the checkpoint in `out`. Returns the summary (also written to `out/summary.json`).
///
/// # Errors
/// Besides data and I/O errors (each naming its path): `out` already holds a run and `existing`
/// is [`Existing::Refuse`].
///
/// Training runs as one of rayon's workers, with a single compute worker (`train.workers` = 1)
/// the pool's others kept awake ([`crate::pool::train_on_pool`]); with several, each compute
/// worker has a pool of its own and the global pool only samples.
pub fn train(config: &Config, out: &Path, existing: Existing) -> Result<Summary> {
    if existing == Existing::Refuse && holds_a_run(out) {
        anyhow::bail!(
            "{} already holds a run: pass --resume to continue it, --force to replace it, or \
             choose another --out",
            out.display()
        );
    }
    let resume = existing == Existing::Resume;
    if config.train.workers > 1 && rayon::current_num_threads() > 1 {
        return rayon::scope(|_| run_training(config, out, resume));
    }
    crate::pool::train_on_pool(|| run_training(config, out, resume))
}

fn run_training(config: &Config, out: &Path, resume: bool) -> Result<Summary> {
    // Load first: a bad dataset must not leave a half-made run directory behind.
    let (stream, split) = data(config)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("config.toml"), &toml::to_string(config)?)?;
    let meta = RunMeta {
        seed: config.train.seed,
        git_revision: GIT_REV.into(),
        command: std::env::args().collect(),
        threads: rayon::current_num_threads(),
    };
    write_atomic(&out.join("run.json"), &serde_json::to_string_pretty(&meta)?)?;
    if config.model == ModelName::Edgebank {
        return run_edgebank(config, &stream, &split, out);
    }
    let device = base_device();
    // Several workers share one host store; a device store belongs to one device.
    if memory_kernels_run_on(&device) && config.train.workers == 1 {
        let session = Session::<DeviceStore>::on_device(config.clone(), stream, split, device)?;
        train_session(session, config, out, resume)
    } else {
        train_session(
            Session::new(config.clone(), stream, split)?,
            config,
            out,
            resume,
        )
    }
}

/// The epochs of a run of `session` (resumed from `out` if `resume`), their records, the summary.
fn train_session<S: NodeMemory>(
    mut session: Session<S>,
    config: &Config,
    out: &Path,
    resume: bool,
) -> Result<Summary> {
    let (mut history, mut interrupted) = if resume {
        restore(&mut session, out)?
    } else {
        (Vec::new(), None)
    };
    let mrr_k = config.train.mrr_negatives.max(1);
    let executor = config.pipeline.executor();
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&metrics_path)
        .with_context(|| format!("opening {}", metrics_path.display()))?;
    for record in &history {
        writeln!(metrics_file, "{}", line(record)?)?;
    }
    let epochs_bar = progress(config.train.epochs, "epochs".into());
    epochs_bar.set_position(history.len() as u64);
    for epoch in history.len()..config.train.epochs {
        if stop_early(&history, config.train.patience) {
            break;
        }
        let mut p = interrupted.take().unwrap_or_else(|| {
            session.reset_memory();
            EpochProgress {
                epoch,
                ..Default::default()
            }
        });
        let batches = session.train_batches();
        let bar = progress(batches, format!("epoch {}", epoch + 1));
        bar.set_position(p.next_batch as u64);
        let start = Instant::now();
        // The pipeline runs in stretches between mid-epoch checkpoints (it drains at each).
        let every = match config.train.checkpoint_every {
            0 => batches,
            n => n,
        };
        while p.next_batch < batches {
            let end = ((p.next_batch / every + 1) * every).min(batches);
            let (stretch_start, faults) = (Instant::now(), minor_faults());
            let pool = PoolSeconds::mark();
            let losses = &mut p.losses;
            let stretch = session.train_pipelined(epoch, p.next_batch..end, &executor, |loss| {
                losses.push(loss);
                bar.inc(1);
            })?;
            p.train_seconds += stretch_start.elapsed().as_secs_f64();
            p.minor_faults += minor_faults().saturating_sub(faults);
            p.pool_seconds.add(pool);
            p.next_batch = end;
            if p.staleness.is_empty() {
                write_atomic(&out.join("gantt.svg"), &stretch.svg(GANTT_WINDOW))?;
            }
            p.add(&stretch);
            if end < batches {
                checkpoint(&session, out, &history, Some(&p))?;
            }
        }
        bar.finish_and_clear();
        let train_seconds = p.train_seconds;
        let pipeline = p.pipeline_stats();
        let losses = p.losses;
        let val_events: Vec<usize> = session.split.val.clone().collect();
        let test_events: Vec<usize> = session.split.test.clone().collect();
        let val = session.evaluate(&val_events, mrr_k)?;
        let test = session.evaluate(&test_events, mrr_k)?;
        let record = EpochRecord {
            epoch: epoch + 1,
            training: Some(TrainingStats {
                loss: losses.iter().sum::<f64>() / losses.len() as f64,
                train_seconds,
                train_events_per_sec: session.train_events().len() as f64 / train_seconds,
                seconds: start.elapsed().as_secs_f64(),
                pipeline,
            }),
            val: metrics(&val),
            test: metrics(&test),
        };
        writeln!(metrics_file, "{}", line(&record)?)?;
        history.push(record);
        // The best model first: a checkpoint that counts this epoch always has its best model.
        if best_epoch(&history) + 1 == history.len() {
            write_dir(&out.join(BEST), |tmp| session.save_model(tmp))?;
        }
        checkpoint(&session, out, &history, None)?;
        crate::plot::write(out, &history)?;
        epochs_bar.inc(1);
    }
    epochs_bar.finish_and_clear();
    let mut summary = summarize(config, &history, Some(session.time_unit));
    // Node classification freezes the link model of the epoch the summary reports (runs made
    // before best models were kept have none: they keep the last epoch's).
    let best = out.join(BEST);
    if best.exists() {
        session.load_model(&best)?;
    }
    crate::serve::export(&mut session, out, EvalSplit::Test)?;
    if config.train.node_classification {
        summary.node_classification = crate::classify::node_classification(&mut session)?;
    }
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_string_pretty(&serde_json::to_value(&summary)?)?,
    )?;
    Ok(summary)
}

/// Validation and test scores of EdgeBank: it remembers the training events, then scores each
/// split batch by batch (remembering each batch after it), as the learned models are evaluated.
fn edgebank_scores(config: &Config, stream: &EventStream, split: &Split) -> (Scores, Scores) {
    let negatives = eval_negatives(config, stream, split);
    let mut bank = EdgeBank::default();
    bank.insert(stream, &split.train_events(stream));
    let (size, k) = (config.train.batch_size, config.train.mrr_negatives.max(1));
    let mut score = |events: std::ops::Range<usize>| {
        let events: Vec<usize> = events.collect();
        let new_node = |i| split.involves_new_node(stream, i);
        bank.evaluate(stream, &negatives, &events, size, k, new_node)
    };
    let val = score(split.val.clone());
    (val, score(split.test.clone()))
}

/// EdgeBank's run directory: one metrics line and the summary (no model, nothing trained).
fn run_edgebank(
    config: &Config,
    stream: &EventStream,
    split: &Split,
    out: &Path,
) -> Result<Summary> {
    let (val, test) = edgebank_scores(config, stream, split);
    let record = EpochRecord {
        epoch: 1,
        training: None,
        val: metrics(&val),
        test: metrics(&test),
    };
    write_atomic(&out.join("metrics.jsonl"), &format!("{}\n", line(&record)?))?;
    let summary = summarize(config, &[record], None);
    write_atomic(
        &out.join("summary.json"),
        &serde_json::to_string_pretty(&serde_json::to_value(&summary)?)?,
    )?;
    Ok(summary)
}

/// A split scored after training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSplit {
    Val,
    Test,
}

impl EvalSplit {
    /// The prefix of its metrics (`val_ap`, `test_ap`, …).
    pub fn name(self) -> &'static str {
        match self {
            EvalSplit::Val => "val",
            EvalSplit::Test => "test",
        }
    }
}

/// Scores the best epoch's model of run `out` (the one its summary reports) on `split`: memory is
/// rebuilt by replaying the training events (and validation, for test) without training, then
/// the split is scored as during training.
pub fn evaluate(config: &Config, out: &Path, split: EvalSplit) -> Result<SplitMetrics> {
    if config.model == ModelName::Edgebank {
        let (stream, data_split) = data(config)?;
        let (val, test) = edgebank_scores(config, &stream, &data_split);
        return Ok(match split {
            EvalSplit::Val => metrics(&val),
            EvalSplit::Test => metrics(&test),
        });
    }
    // Several workers share one host store; a device store belongs to one device.
    let scores = if memory_kernels_run_on(&base_device()) && config.train.workers == 1 {
        evaluate_session(best_session::<DeviceStore>(config, out)?, split)?
    } else {
        evaluate_session(best_session::<MemoryStore>(config, out)?, split)?
    };
    Ok(metrics(&scores))
}

/// The scores behind [`evaluate`] (a learned model's run, on host node memory): one logit per
/// event of `split` and its negatives'.
pub fn evaluate_scores(config: &Config, out: &Path, split: EvalSplit) -> Result<Scores> {
    evaluate_session(best_session::<MemoryStore>(config, out)?, split)
}

/// A session of `config` over its data on [`base_device`], with node memory in an `S` and the
/// best model of run `out` loaded.
fn best_session<S: NodeMemory>(config: &Config, out: &Path) -> Result<Session<S>> {
    if config.model == ModelName::Edgebank {
        anyhow::bail!("EdgeBank has no model to load");
    }
    let (stream, data_split) = data(config)?;
    let mut session = Session::on_device(config.clone(), stream, data_split, base_device())?;
    let dir = out.join(BEST);
    session
        .load_model(&dir)
        .with_context(|| format!("loading the best model in {}", dir.display()))?;
    Ok(session)
}

/// Runs `f` on the session of run `run` (its `config.toml`, its data, its best model).
pub fn with_best_session<T>(run: &Path, f: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
    let config = run_config(run)?;
    f(&mut best_session(&config, run)?)
}

/// The configuration run `run` was trained with (its `config.toml`).
pub fn run_config(run: &Path) -> Result<Config> {
    let file = run.join("config.toml");
    let context = || format!("reading {}", file.display());
    let text = std::fs::read_to_string(&file).with_context(context)?;
    let table: toml::Table = toml::from_str(&text).with_context(context)?;
    let model: ModelName = table
        .get("model")
        .with_context(|| format!("{} names no model", file.display()))?
        .clone()
        .try_into()
        .with_context(context)?;
    crate::config::resolve(model, Some(&text), &[]).with_context(context)
}

/// The scores of [`evaluate`] with `session` (best model loaded).
fn evaluate_session<S: NodeMemory>(mut session: Session<S>, split: EvalSplit) -> Result<Scores> {
    replay_through(&mut session, split)
}

/// Rebuilds `session`'s memory from empty as evaluation does — the training events, then
/// validation, then (`through` test) the test split, each scored as it is replayed — and returns
/// the scores of the last split replayed.
pub(crate) fn replay_through<S: NodeMemory>(
    session: &mut Session<S>,
    through: EvalSplit,
) -> Result<Scores> {
    let k = session.config.train.mrr_negatives.max(1);
    let train: Vec<usize> = session.train_events().to_vec();
    let val: Vec<usize> = session.split.val.clone().collect();
    let test: Vec<usize> = session.split.test.clone().collect();
    session.reset_memory();
    session.evaluate(&train, 1)?;
    let val = session.evaluate(&val, k)?;
    Ok(match through {
        EvalSplit::Val => val,
        EvalSplit::Test => session.evaluate(&test, k)?,
    })
}

/// Whether the last `patience` epochs brought no better validation AP than the one before them.
fn stop_early(history: &[EpochRecord], patience: usize) -> bool {
    if patience == 0 || history.len() <= patience {
        return false;
    }
    let best = best_epoch(history);
    history.len() - 1 - best >= patience
}

/// The epoch (0-based) with the highest validation AP, the earliest on ties; an undefined AP
/// never wins.
fn best_epoch(history: &[EpochRecord]) -> usize {
    let ap = |r: &EpochRecord| {
        let ap = r.val.ap;
        if ap.is_nan() { f64::NEG_INFINITY } else { ap }
    };
    (0..history.len())
        .max_by(|&a, &b| ap(&history[a]).total_cmp(&ap(&history[b])).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// A record as its `metrics.jsonl` line: through `serde_json::Value`, whose keys are sorted, so
/// the line reads as it always has.
fn line(record: &EpochRecord) -> Result<String> {
    Ok(serde_json::to_value(record)?.to_string())
}

/// `run.json`: what reproduces the run.
#[derive(Debug, Serialize)]
struct RunMeta {
    seed: u64,
    git_revision: String,
    command: Vec<String>,
    /// Threads the run computed on (`train.threads` resolved): the GEMM blocks a product by the
    /// rows each thread takes, so the last bits can differ at another count.
    threads: usize,
}

/// The summary of a run: its best epoch's metrics, speed and pipeline statistics; `time_unit` is
/// what one unit of the model's time was in the stream's unit (none for EdgeBank, which has no
/// notion of time).
///
/// # Panics
/// If `history` is empty (a run always records at least one epoch).
fn summarize(config: &Config, history: &[EpochRecord], time_unit: Option<f64>) -> Summary {
    let best = best_epoch(history);
    let trained = || history.iter().filter_map(|h| h.training.as_ref());
    let train_seconds: f64 = trained().map(|t| t.train_seconds).sum();
    let events: f64 = trained()
        .map(|t| t.train_events_per_sec * t.train_seconds)
        .sum();
    let epochs = history.len().max(1) as f64;
    let mean_staleness = trained().map(|t| t.pipeline.mean_staleness).sum::<f64>() / epochs;
    let max_staleness = trained()
        .map(|t| t.pipeline.max_staleness)
        .max()
        .unwrap_or(0);
    Summary {
        model: config.model,
        dataset: config.data.dataset.clone(),
        backend: crate::session::BACKEND.into(),
        seed: config.train.seed,
        git_revision: GIT_REV.into(),
        time_unit,
        epochs: history.len(),
        best_epoch: best + 1,
        val: history[best].val,
        test: history[best].test,
        train_events_per_sec: if train_seconds > 0.0 {
            events / train_seconds
        } else {
            0.0
        },
        train_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        pipeline: RunPipeline {
            mode: config.pipeline.mode.to_string(),
            mean_staleness,
            max_staleness,
        },
        node_classification: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(val_ap: &[f64]) -> Vec<EpochRecord> {
        let split = |ap| SplitMetrics {
            ap,
            auc: 0.5,
            ap_pooled: ap,
            auc_pooled: 0.5,
            ap_new_node_events: f64::NAN,
            auc_new_node_events: f64::NAN,
            mrr: None,
        };
        (0..val_ap.len())
            .map(|e| EpochRecord {
                epoch: e + 1,
                training: None,
                val: split(val_ap[e]),
                test: split(0.5),
            })
            .collect()
    }

    #[test]
    fn touching_fresh_memory_counts_page_faults() {
        let before = minor_faults();
        assert!(before > 0, "a running process has faulted pages in");
        let pages = std::hint::black_box(vec![1u8; 64 << 20]);
        assert!(minor_faults() > before);
        drop(pages);
    }

    #[test]
    fn the_best_epoch_has_the_highest_validation_ap_and_ties_go_to_the_earliest() {
        assert_eq!(best_epoch(&history(&[0.5, 0.7, 0.6])), 1);
        assert_eq!(best_epoch(&history(&[0.7, 0.6, 0.7])), 0);
        assert_eq!(best_epoch(&history(&[0.5])), 0);
        // An undefined AP never wins.
        assert_eq!(best_epoch(&history(&[0.5, 0.6, f64::NAN])), 1);
    }

    #[test]
    fn training_stops_after_patience_epochs_without_a_better_validation_ap() {
        let h = history(&[0.5, 0.7, 0.6, 0.65]);
        assert!(stop_early(&h, 2), "two epochs since the best");
        assert!(!stop_early(&h[..3], 2), "one epoch since the best");
        assert!(!stop_early(&h, 0), "patience 0 never stops");
        assert!(
            !stop_early(&history(&[0.5, 0.6, 0.7, 0.8]), 1),
            "still improving"
        );
        assert!(!stop_early(&h[..2], 2), "fewer epochs than the patience");
    }
}
