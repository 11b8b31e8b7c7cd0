//! A run's serving state, in `RUN/serve/`: `state.json` ([`StateInfo`], with the format
//! version), `config.toml`, the best model `model.bpk`, the node memory `memory.bin` after every
//! event of `stream.bin` (the stream in the model's time unit, served events appended). Written
//! as one directory, atomically: a crash leaves the previous state or the new one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mspipe_data::{EventStream, LoadReport, cache};
use mspipe_step::NodeMemory;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ModelName};
use crate::run::{EvalSplit, GIT_REV, write_dir};
use crate::session::Session;

/// Version of the serving state's layout; a binary refuses any other.
pub const FORMAT: u32 = 1;
/// The state's directory inside a run directory.
pub const DIR: &str = "serve";
const INFO: &str = "state.json";
const STREAM: &str = "stream.bin";
/// `stream.bin` is a cache file of [`cache::write`]'s layout with this digest: it stands for no
/// source file.
const STREAM_DIGEST: [u8; 32] = *b"mspipe serving state stream v1\0\0";

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateInfo {
    /// [`FORMAT`] of the writer.
    pub format: u32,
    /// The model.
    pub model: ModelName,
    /// The writer's git revision.
    pub git_revision: String,
    /// What one unit of the model's time is in the stream file's unit: a served timestamp is
    /// divided by it, as training divided the stream's.
    pub time_unit: f64,
    /// The stream's first event time, in the model's unit (the model's time origin).
    pub time_origin: f64,
    /// Nodes the training stream had; later dense ids first appeared while serving.
    pub dataset_nodes: usize,
    /// Dense ids of served-in nodes that are users (two-sided streams only).
    pub new_users: Vec<u32>,
    /// Events ingested while serving since the export (a restarted client resends from here).
    pub served: usize,
    /// Destinations that negatives are drawn from (dense ids, sorted): evaluation's.
    pub candidates: Vec<u32>,
    /// Seed of the negatives (evaluation's).
    pub negative_seed: u64,
}

/// Just the version, read first so that an unknown layout gets a clear message.
#[derive(Deserialize)]
struct Version {
    format: u32,
}

/// The state directory of run `run`.
pub fn dir(run: &Path) -> PathBuf {
    run.join(DIR)
}

/// A state's parts in memory.
pub(crate) struct Saved<'a> {
    pub info: &'a StateInfo,
    pub config: &'a Config,
    pub stream: &'a EventStream,
    /// Writes `model.bpk` into the directory given.
    pub model: &'a dyn Fn(&Path) -> Result<()>,
    /// Writes `memory.bin` into the directory given.
    pub memory: &'a dyn Fn(&Path) -> Result<()>,
}

/// Writes the state `saved` as `dir`, atomically.
pub(crate) fn write(dir: &Path, saved: &Saved<'_>) -> Result<()> {
    write_dir(dir, |tmp| {
        (saved.model)(tmp)?;
        (saved.memory)(&tmp.join("memory.bin"))?;
        let report = LoadReport::default();
        cache::write(&tmp.join(STREAM), &STREAM_DIGEST, saved.stream, &report)?;
        std::fs::write(tmp.join("config.toml"), toml::to_string(saved.config)?)?;
        // Last: a directory with `state.json` is complete.
        std::fs::write(tmp.join(INFO), serde_json::to_string(saved.info)?)?;
        Ok(())
    })
}

/// Reads `dir`'s `state.json`, `config.toml` and `stream.bin` (after finishing a replacement a
/// crash interrupted); the model and memory files are the caller's to load.
///
/// # Errors
/// A missing or unreadable file, naming it; a state of another [`FORMAT`].
pub(crate) fn read(dir: &Path) -> Result<(StateInfo, Config, EventStream)> {
    finish_replacement(dir)?;
    let path = dir.join(INFO);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (a run directory holds a serving state once training has finished)",
            path.display()
        )
    })?;
    let version: Version =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if version.format != FORMAT {
        bail!(
            "{} is a serving state of format {}; this binary reads format {FORMAT} only \
             (export the run again with this binary: `mspipe-train export --run RUN`)",
            path.display(),
            version.format
        );
    }
    let info: StateInfo =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let file = dir.join("config.toml");
    let config_text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let config = crate::config::resolve(info.model, Some(&config_text), &[])
        .with_context(|| format!("reading {}", file.display()))?;
    let file = dir.join(STREAM);
    let (stream, _) = cache::read(&file, &STREAM_DIGEST)?
        .with_context(|| format!("{} is not a serving state's stream", file.display()))?;
    Ok((info, config, stream))
}

/// [`write_dir`] moves the old directory aside before renaming the new one into place; a crash
/// between the two renames leaves `dir.old` and a complete `dir.tmp`, which this renames.
fn finish_replacement(dir: &Path) -> Result<()> {
    let (tmp, old) = (dir.with_extension("tmp"), dir.with_extension("old"));
    if !dir.exists() && old.exists() && tmp.join(INFO).exists() {
        std::fs::rename(&tmp, dir)
            .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    }
    Ok(())
}

/// Writes the serving state of `session`'s model into run directory `run`: memory is rebuilt
/// from empty by replaying the training events, validation and — `through` test — the test
/// split, exactly as [`crate::run::evaluate`] replays them, and the state's stream ends where
/// the replay ended.
pub fn export<S: NodeMemory>(
    session: &mut Session<S>,
    run: &Path,
    through: EvalSplit,
) -> Result<()> {
    crate::run::replay_through(session, through)?;
    let end = match through {
        EvalSplit::Val => session.split.val.end,
        EvalSplit::Test => session.stream.len(),
    };
    let mut stream = session.stream.clone();
    stream.truncate(end);
    let info = StateInfo {
        format: FORMAT,
        model: session.config.model,
        git_revision: GIT_REV.into(),
        time_unit: session.time_unit,
        time_origin: stream.time().first().copied().unwrap_or(0.0),
        dataset_nodes: stream.num_nodes(),
        new_users: Vec::new(),
        served: 0,
        candidates: session.eval_candidates().to_vec(),
        negative_seed: crate::session::eval_negative_seed(&session.config),
    };
    let saved = Saved {
        info: &info,
        config: &session.config,
        stream: &stream,
        model: &|d| session.save_model(d),
        memory: &|p| session.save_memory(p),
    };
    write(&dir(run), &saved)
}

/// [`export`] for the run in directory `run`, from its best model (what `mspipe-train export`
/// does; training exports through the test split when it ends).
pub fn export_run(run: &Path, through: EvalSplit) -> Result<()> {
    crate::run::with_best_session(run, |session| export(session, run, through))
}
