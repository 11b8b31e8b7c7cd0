//! The line protocol of `mspipe-train serve`: events in (one per line, [`super::parse_line`]),
//! one JSON line out per event, scored before it is ingested; micro-batches of
//! [`ServeOptions::batch`] events, flushed early when no line has come for
//! [`ServeOptions::max_delay`]. A bad line is reported on the diagnostics stream with its number
//! and skipped; the server keeps going.

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use super::input::{NewEvent, parse_line};
use super::server::{Server, on_pool};

/// What to do with an event older than the last ingested one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Late {
    /// Report it and go on.
    #[default]
    Skip,
    /// Report it and stop (after ingesting, and checkpointing, everything before it).
    Error,
}

/// How [`serve`] batches, scores and checkpoints.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Events per micro-batch.
    pub batch: usize,
    /// A micro-batch is scored once no line has come for this long after its first event.
    pub max_delay: Duration,
    /// Random negatives scored with each event.
    pub negatives: usize,
    /// Most likely destinations listed per event (0: none).
    pub top_k: usize,
    /// Late-event policy.
    pub late: Late,
    /// Write the state after every this many ingested events, and at the end (0: never: the
    /// state on disk stays as it was).
    pub checkpoint_every: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            batch: 200,
            max_delay: Duration::from_millis(50),
            negatives: 0,
            top_k: 0,
            late: Late::Skip,
            checkpoint_every: 0,
        }
    }
}

/// What a [`serve`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServeReport {
    /// Events scored and ingested.
    pub scored: usize,
    /// Lines skipped (malformed, late, wrong width).
    pub skipped: usize,
    /// Micro-batches.
    pub batches: usize,
}

/// One output line.
#[derive(Serialize)]
struct ScoreLine<'a> {
    line: usize,
    src: u64,
    dst: u64,
    t: f64,
    /// Link probability.
    p: f32,
    logit: f32,
    #[serde(skip_serializing_if = "<[f32]>::is_empty")]
    neg: &'a [f32],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    new_src: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    new_dst: bool,
    /// `[destination, p]`, most likely first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    top: Vec<(u64, f32)>,
}

/// Serves `input` with `server`: see the module documentation. Scores go to `output` as each
/// micro-batch is done; what is wrong with a line goes to `diagnostics`.
///
/// # Errors
/// A late event with [`Late::Error`], or an I/O error (of the output or the state).
pub fn serve(
    server: &mut Server,
    input: impl BufRead + Send + 'static,
    output: &mut (impl Write + Send),
    diagnostics: &mut (impl Write + Send),
    options: &ServeOptions,
) -> Result<ServeReport> {
    let lines = read_lines(input);
    on_pool(move || serve_lines(server, lines, output, diagnostics, options))
}

/// [`serve`] on the calling thread, from `lines`.
fn serve_lines<D: Write>(
    server: &mut Server,
    lines: Lines,
    output: &mut impl Write,
    diagnostics: &mut D,
    options: &ServeOptions,
) -> Result<ServeReport> {
    let mut report = ServeReport::default();
    let mut pending: Vec<(usize, NewEvent)> = Vec::with_capacity(options.batch);
    let mut since_checkpoint = 0;
    let mut first_at = Instant::now();
    let mut last_t = server.last_time();
    let mut flush = |pending: &mut Vec<(usize, NewEvent)>,
                     server: &mut Server,
                     diagnostics: &mut D|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let events: Vec<NewEvent> = pending.iter().map(|(_, e)| e.clone()).collect();
        let scores = server.score_ranked(&events, options.negatives, options.top_k)?;
        since_checkpoint += pending.len();
        // Durable before it is answered: a batch that completes a checkpoint stretch is written
        // into the state before its scores go out.
        if options.checkpoint_every > 0 && since_checkpoint >= options.checkpoint_every {
            checkpoint(server, diagnostics)?;
            since_checkpoint = 0;
        }
        for ((line, e), s) in pending.iter().zip(&scores) {
            let out = ScoreLine {
                line: *line,
                src: e.src,
                dst: e.dst,
                t: e.t,
                p: sigmoid(s.logit),
                logit: s.logit,
                neg: &s.negatives,
                new_src: s.new_src,
                new_dst: s.new_dst,
                top: s.top.iter().map(|&(d, l)| (d, sigmoid(l))).collect(),
            };
            serde_json::to_writer(&mut *output, &out)?;
            output.write_all(b"\n")?;
        }
        output.flush()?;
        report.scored += pending.len();
        report.batches += 1;
        pending.clear();
        Ok(())
    };
    loop {
        let next = if pending.is_empty() {
            lines.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            let wait = options.max_delay.saturating_sub(first_at.elapsed());
            lines.recv_timeout(wait)
        };
        let (number, text) = match next {
            Ok((number, Ok(text))) => (number, text),
            Ok((number, Err(e))) => bail!("reading line {number} of the input: {e}"),
            Err(RecvTimeoutError::Timeout) => {
                flush(&mut pending, server, diagnostics)?;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let event = match parse_line(&text) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(why) => {
                report.skipped += 1;
                writeln!(diagnostics, "line {number}: {why}; skipped")?;
                continue;
            }
        };
        if let Err(why) = late(&event, server.model_time(event.t), last_t) {
            report.skipped += 1;
            if options.late == Late::Error {
                flush(&mut pending, server, diagnostics)?;
                if options.checkpoint_every > 0 {
                    checkpoint(server, diagnostics)?;
                }
                bail!("line {number}: {why}");
            }
            writeln!(diagnostics, "line {number}: {why}; skipped")?;
            continue;
        }
        if let Err(why) = server.check_features(&event) {
            report.skipped += 1;
            writeln!(diagnostics, "line {number}: {why}; skipped")?;
            continue;
        }
        last_t = Some(server.model_time(event.t));
        if pending.is_empty() {
            first_at = Instant::now();
        }
        pending.push((number, event));
        if pending.len() >= options.batch {
            flush(&mut pending, server, diagnostics)?;
        }
    }
    flush(&mut pending, server, diagnostics)?;
    if options.checkpoint_every > 0 && since_checkpoint > 0 {
        checkpoint(server, diagnostics)?;
    }
    Ok(report)
}

/// Writes `server`'s state and says so on `diagnostics` (what a restarted client resends after).
fn checkpoint(server: &Server, diagnostics: &mut impl Write) -> Result<()> {
    server.checkpoint()?;
    writeln!(
        diagnostics,
        "checkpoint: {} events served since the export",
        server.served()
    )?;
    Ok(())
}

fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

/// Refuses `event` (at `t` in the model's unit) if older than `last` (the last accepted event's
/// time, same unit).
fn late(event: &NewEvent, t: f64, last: Option<f64>) -> std::result::Result<(), String> {
    match last {
        Some(last) if t < last => Err(format!(
            "event at t = {} is older than the last accepted event",
            event.t
        )),
        _ => Ok(()),
    }
}

/// The lines of `input`, numbered from 1, read on a thread of their own (so that a batch can be
/// flushed while the next line has not come). Bytes that are not UTF-8 are replaced (the line is
/// then reported as malformed); an I/O error ends the lines.
fn read_lines(mut input: impl BufRead + Send + 'static) -> Lines {
    let (tx, rx) = mpsc::sync_channel(4096);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        for number in 1.. {
            buf.clear();
            let line = match input.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => Ok(String::from_utf8_lossy(&buf).into_owned()),
                Err(e) => Err(e),
            };
            let failed = line.is_err();
            if tx.send((number, line)).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Numbered lines of the input, as [`read_lines`] sends them.
type Lines = mpsc::Receiver<(usize, std::io::Result<String>)>;
