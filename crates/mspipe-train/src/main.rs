//! `mspipe-train`: train (the default), evaluate or print the configuration of a memory-based
//! temporal GNN. With no arguments: TGN on the shipped Wikipedia edges.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use mspipe_train::config::{ModelName, resolve};
use mspipe_train::run::{EvalSplit, Existing};

/// The system allocator, huge pages on large tables (see [`mspipe_train::alloc`]).
#[global_allocator]
static ALLOCATOR: mspipe_train::alloc::Allocator = mspipe_train::alloc::Allocator;

#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: Common,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate (the default).
    Train(Common),
    /// Score the checkpoint of a run directory on a split.
    Eval(EvalArgs),
    /// Print the resolved configuration as TOML.
    Config(Common),
    /// Score, then ingest, events as they arrive, from a trained run's serving state.
    Serve(ServeArgs),
    /// Write a run's serving state again from its best model (training writes it when it ends).
    Export(ExportArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The run directory (its serving state `serve/` is read, and written by checkpoints).
    #[arg(long)]
    run: PathBuf,
    /// Events to read (default: standard input): `src,dst,t[,features…]` or JSON lines
    /// `{"src":…,"dst":…,"t":…}`, original node ids and time unit.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Events per micro-batch.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Score a partial micro-batch once no event has come for this long.
    #[arg(long, default_value_t = 50)]
    max_delay_ms: u64,
    /// Random negatives scored with each event (as evaluation draws them).
    #[arg(long, default_value_t = 0)]
    negatives: usize,
    /// List each event's K most likely destinations among every known one (0: none).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Rank only these destinations for --top-k: a file of original ids, one per line.
    #[arg(long, requires = "top_k")]
    candidates: Option<PathBuf>,
    /// What to do with an event older than the last ingested one.
    #[arg(long, value_enum, default_value = "skip")]
    late: mspipe_train::serve::Late,
    /// Write the state after every N ingested events and at the end (0: never).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Args)]
struct ExportArgs {
    /// The run directory.
    #[arg(long)]
    run: PathBuf,
    /// Replay memory through this split (`val`: serve the test split next).
    #[arg(long, value_enum, default_value = "test")]
    through: EvalSplit,
}

#[derive(Args)]
struct EvalArgs {
    /// The run directory (its config.toml and checkpoint/ are used).
    #[arg(long)]
    run: PathBuf,
    #[arg(long, value_enum, default_value = "test")]
    split: EvalSplit,
}

#[derive(Args, Clone)]
struct Common {
    /// A TOML config layered over the model's preset.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Shipped dataset name (wikipedia, collegemsg, mathoverflow, uslegis, bitcoin-alpha) or path.
    #[arg(long)]
    dataset: Option<String>,
    /// Force the file format (snap, dyglib, jodie, tgl, csv).
    #[arg(long)]
    format: Option<String>,
    /// Model preset.
    #[arg(long, value_enum, default_value = "tgn")]
    model: ModelName,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Data-parallel compute workers sharing one node memory (default 1).
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory (default: runs/<model>-<dataset>-seed<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace the run already in the run directory (otherwise training into it is refused).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// off (sequential semantics) | mspipe (adaptive staleness) | fixed:K.
    #[arg(long)]
    pipeline: Option<String>,
    /// Any config key: --set section.key=value (repeatable).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
}

impl Common {
    fn config(&self) -> Result<mspipe_train::config::Config> {
        let file = match (&self.resume, &self.config) {
            (Some(dir), _) => Some(dir.join("config.toml")),
            (None, file) => file.clone(),
        };
        let text = file
            .as_ref()
            .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())))
            .transpose()?;
        let mut sets = Vec::new();
        let mut flag = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                sets.push(format!("{key}={v}"));
            }
        };
        flag(
            "data.dataset",
            self.dataset.clone().map(|d| format!("{d:?}")),
        );
        flag("data.format", self.format.clone().map(|f| format!("{f:?}")));
        flag("train.epochs", self.epochs.map(|v| v.to_string()));
        flag("train.batch_size", self.batch_size.map(|v| v.to_string()));
        flag("train.lr", self.lr.map(|v| format!("{v:e}")));
        flag("train.threads", self.threads.map(|v| v.to_string()));
        flag("train.workers", self.workers.map(|v| v.to_string()));
        flag("train.seed", self.seed.map(|v| v.to_string()));
        flag(
            "pipeline.mode",
            self.pipeline.clone().map(|p| format!("{p:?}")),
        );
        sets.extend(self.overrides.iter().cloned());
        let model = if self.resume.is_some() {
            saved_model(text.as_deref()).unwrap_or(self.model)
        } else {
            self.model
        };
        resolve(model, text.as_deref(), &sets)
    }
}

/// The model named in a saved config, so `--resume` needs no `--model`.
fn saved_model(text: Option<&str>) -> Option<ModelName> {
    let table: toml::Table = toml::from_str(text?).ok()?;
    table.get("model")?.clone().try_into().ok()
}

/// A dataset name or path as a single directory-name component: `../x/wiki.csv.gz` → `wiki`.
fn dataset_label(dataset: &str) -> String {
    let name = Path::new(dataset)
        .file_name()
        .map_or(dataset.into(), |n| n.to_string_lossy());
    name.split('.').next().unwrap_or_default().to_string()
}

fn train(args: &Common) -> Result<()> {
    let config = args.config()?;
    mspipe_train::run::use_threads(config.train.threads)?;
    let out = match (&args.resume, &args.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => dir.clone(),
        (None, None) => PathBuf::from("runs").join(
            format!(
                "{:?}-{}-seed{}",
                config.model,
                dataset_label(&config.data.dataset),
                config.train.seed
            )
            .to_lowercase(),
        ),
    };
    let existing = match (args.resume.is_some(), args.force) {
        (true, _) => Existing::Resume,
        (false, true) => Existing::Replace,
        (false, false) => Existing::Refuse,
    };
    let summary = mspipe_train::run::train(&config, &out, existing)?;
    eprintln!(
        "test AP {:.4}  test AUC {:.4}  ({} epochs, best {}; run directory {})",
        summary.test.ap,
        summary.test.auc,
        summary.epochs,
        summary.best_epoch,
        out.display()
    );
    println!("{}", serde_json::to_value(&summary)?);
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    let config = mspipe_train::run::run_config(&args.run)?;
    let metrics = mspipe_train::run::evaluate(&config, &args.run, args.split)?;
    // Keys as in metrics.jsonl: `test_ap`, `val_auc_pooled`, …
    let serde_json::Value::Object(fields) = serde_json::to_value(metrics)? else {
        unreachable!("a struct serializes to an object")
    };
    let named: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .map(|(k, v)| (format!("{}_{k}", args.split.name()), v))
        .collect();
    println!("{}", serde_json::Value::Object(named));
    Ok(())
}

/// The node ids of `file`, one per line (blank lines skipped).
fn read_ids(file: &Path) -> Result<Vec<u64>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim().parse().with_context(|| {
                format!(
                    "{}, line {}: `{}` is not a node id",
                    file.display(),
                    i + 1,
                    l.trim()
                )
            })
        })
        .collect()
}

fn serve(args: &ServeArgs) -> Result<()> {
    mspipe_train::run::use_threads(args.threads)?;
    let mut server = mspipe_train::serve::Server::open(&args.run)?;
    if let Some(file) = &args.candidates {
        server.rank_among(&read_ids(file)?)?;
    }
    if server.served() > 0 {
        eprintln!(
            "resuming: {} events already served; send the ones after them",
            server.served()
        );
    }
    let input: Box<dyn std::io::BufRead + Send> = match &args.input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let options = mspipe_train::serve::ServeOptions {
        batch: args.batch.max(1),
        max_delay: std::time::Duration::from_millis(args.max_delay_ms),
        negatives: args.negatives,
        top_k: args.top_k,
        late: args.late,
        checkpoint_every: args.checkpoint_every,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let report = mspipe_train::serve::serve(
        &mut server,
        input,
        &mut out,
        &mut std::io::stderr(),
        &options,
    )?;
    eprintln!(
        "{} events scored and ingested in {} batches, {} lines skipped",
        report.scored, report.batches, report.skipped
    );
    Ok(())
}

fn main() -> ExitCode {
    mspipe_train::alloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match &cli.command {
        None => train(&cli.train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Eval(args)) => eval(args),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Export(args)) => mspipe_train::serve::export_run(&args.run, args.through),
        Some(Command::Config(args)) => args
            .config()
            .and_then(|c| Ok(toml::to_string(&c)?))
            .map(|text| print!("{text}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
