//! Serving a trained run: the test split streamed through the server from the state after
//! validation scores exactly as `eval --split test`; a server killed mid-stream restarts from its
//! checkpoint and goes on as if never stopped; bad input is reported and skipped, the state intact.

use std::io::{BufRead, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use burn::prelude::Device;
use mspipe_data::synthetic::{SyntheticConfig, generate};
use mspipe_data::{EventStream, Format, format};
use mspipe_train::run::{EvalSplit, data, evaluate_scores, run_config};
use mspipe_train::serve::{Late, NewEvent, ServeOptions, Server, export_run, serve};

const BATCH: usize = 100;

/// A user–item stream with edge features (as Wikipedia's), trained for one epoch into `run`.
fn trained_run(dir: &Path) -> PathBuf {
    let stream = generate(&SyntheticConfig {
        events: 6_000,
        nodes: 400,
        users: Some(300),
        edge_feat_dim: 4,
        repeat_probability: 0.7,
        seed: 5,
        ..Default::default()
    })
    .expect("generate");
    let data = dir.join("events.csv");
    format::write(&stream, Format::Jodie, &data).expect("write");
    let run = dir.join("run");
    let status = Command::new(env!("CARGO_BIN_EXE_mspipe-train"))
        .args([
            "--format",
            "jodie",
            "--epochs",
            "1",
            "--seed",
            "3",
            "--dataset",
        ])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .args(["--set", "memory.dim=16", "--set", "memory.time_dim=8"])
        .args(["--set", "gnn.dim=16", "--set", "sampling.neighbors=5"])
        .args(["--set", &format!("train.batch_size={BATCH}")])
        .args(["--set", "train.node_classification=false"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("train");
    assert!(status.success());
    run
}

/// Events `range` of the run's stream as a client sends them (original ids and time unit).
fn client_events(run: &Path, range: std::ops::Range<usize>) -> Vec<NewEvent> {
    let (stream, _) = data(&run_config(run).expect("config")).expect("data");
    range.map(|i| as_client(&stream, i, 0.0, 0)).collect()
}

/// Event `i` of `stream`, shifted by `dt` in time and `di` in item id.
fn as_client(stream: &EventStream, i: usize, dt: f64, di: u64) -> NewEvent {
    let ids = stream.node_ids();
    NewEvent {
        src: ids.original(stream.src()[i]),
        dst: ids.original(stream.dst()[i]) + di,
        t: stream.time()[i] + dt,
        features: stream.edge_features().map(|f| f.row(i).to_vec()),
    }
}

fn csv(e: &NewEvent) -> String {
    let mut line = format!("{},{},{}", e.src, e.dst, e.t);
    for x in e.features.iter().flatten() {
        line += &format!(",{x}");
    }
    line
}

#[test]
fn the_test_split_served_after_validation_scores_as_eval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let config = run_config(&run).expect("config");
    let reference = evaluate_scores(&config, &run, EvalSplit::Test).expect("eval");
    export_run(&run, EvalSplit::Val).expect("export through validation");
    let (_, split) = data(&config).expect("data");
    let events = client_events(&run, split.test.clone());
    let k = config.train.mrr_negatives.max(1);
    let mut server = Server::open(&run).expect("open");
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for batch in events.chunks(BATCH) {
        for s in server.score(batch, k).expect("score") {
            pos.push(s.logit);
            neg.extend(s.negatives);
        }
    }
    assert_eq!(pos.len(), reference.pos.len());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&pos),
        bits(&reference.pos),
        "positive logits to the bit"
    );
    assert_eq!(
        bits(&neg),
        bits(&reference.neg),
        "negatives: the same draws, to the bit"
    );
}

/// `mspipe-train serve` on `run`, fed on stdin.
fn server(run: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mspipe-train"));
    c.args(["serve", "--max-delay-ms", "60000", "--batch", "100"])
        .args(["--checkpoint-every", "200", "--run"])
        .arg(run)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// All of `lines` through `mspipe-train serve` on `run`: its output lines.
fn serve_all(run: &Path, lines: &[String]) -> Vec<String> {
    let out = server(run)
        .spawn()
        .and_then(|mut c| {
            let mut stdin = c.stdin.take().expect("stdin");
            stdin.write_all(lines.join("\n").as_bytes())?;
            drop(stdin);
            c.wait_with_output()
        })
        .expect("server");
    assert!(out.status.success());
    out.stdout.lines().map(|l| l.expect("utf-8")).collect()
}

/// Score lines without their line numbers.
fn scores(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v.as_object_mut().expect("object").remove("line");
            v
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Events after the stream's end: its last 700 events again, one stream-span later, a tenth of
/// them to items never seen.
fn future_events(run: &Path) -> Vec<String> {
    let (stream, _) = data(&run_config(run).expect("config")).expect("data");
    let n = stream.len();
    let span = stream.time()[n - 1] - stream.time()[0] + 1.0;
    (n - 700..n)
        .map(|i| as_client(&stream, i, span, if i % 10 == 0 { 1_000_000 } else { 0 }))
        .map(|e| csv(&e))
        .collect()
}

#[test]
fn a_server_killed_mid_stream_restarts_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let lines = future_events(&run);
    let whole = dir.path().join("whole");
    copy_dir(&run, &whole);

    let reference = serve_all(&whole, &lines);
    assert_eq!(reference.len(), lines.len());
    assert!(
        reference.iter().any(|l| l.contains("\"new_dst\":true")),
        "new items scored"
    );

    // 500 lines in, all 500 scored (checkpoints after 200 and 400), then kill -9.
    let mut child = server(&run).spawn().expect("server");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all((lines[..500].join("\n") + "\n").as_bytes())
        .expect("feed");
    stdin.flush().expect("flush");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    for _ in 0..500 {
        let mut l = String::new();
        stdout.read_line(&mut l).expect("a score line");
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    drop(stdin);

    let served = Server::open(&run).expect("reopen").served();
    assert_eq!(served, 400, "the last checkpoint");
    let after = serve_all(&run, &lines[served..]);
    assert_eq!(scores(&after), scores(&reference[served..]));
}

fn serve_text(
    server: &mut Server,
    text: String,
    late: Late,
) -> (anyhow::Result<Vec<String>>, String) {
    let options = ServeOptions {
        batch: 50,
        max_delay: Duration::from_secs(60),
        late,
        ..Default::default()
    };
    let (mut out, mut diag) = (Vec::new(), Vec::new());
    let result = serve(
        server,
        Cursor::new(text.into_bytes()),
        &mut out,
        &mut diag,
        &options,
    );
    let lines = out.lines().map(|l| l.expect("utf-8")).collect();
    (
        result.map(|_| lines),
        String::from_utf8(diag).expect("utf-8"),
    )
}

#[test]
fn bad_lines_are_reported_and_skipped_and_the_state_stays_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let good = future_events(&run)[..120].to_vec();
    let (clean, diag) = serve_text(
        &mut Server::open(&run).expect("open"),
        good.join("\n"),
        Late::Skip,
    );
    let clean = clean.expect("serves");
    assert!(diag.is_empty(), "{diag}");

    let mut bad = good.clone();
    let old = client_events(&run, 0..1).remove(0);
    bad.insert(90, csv(&old)); // late: before the state's last event
    bad.insert(60, format!("1,2,{}x", "7".repeat(10 << 20))); // a 10 MB line
    bad.insert(30, "1,2,1e300,0.5".into()); // features of the wrong width
    bad.insert(10, "not,an,event".into());
    bad.insert(5, String::new());
    let (scored, diag) = serve_text(
        &mut Server::open(&run).expect("open"),
        bad.join("\n"),
        Late::Skip,
    );
    let scored = scored.expect("serves past bad lines");
    assert_eq!(
        scores(&scored),
        scores(&clean),
        "the same scores as without the bad lines"
    );
    let said: Vec<&str> = diag.lines().collect();
    assert_eq!(said.len(), 4, "{diag}");
    assert!(
        said[0].starts_with("line 12: `src` is not a node id"),
        "{}",
        said[0]
    );
    assert!(
        said[1].starts_with("line 33: 1 features, the stream's events have 4"),
        "{}",
        said[1]
    );
    assert!(
        said[2].starts_with("line 64: `t` is not a number") && said[2].len() < 200,
        "{}",
        said[2]
    );
    assert!(
        said[3].starts_with("line 95: event at t = ") && said[3].contains("older"),
        "{}",
        said[3]
    );

    let (result, _) = serve_text(
        &mut Server::open(&run).expect("open"),
        bad.join("\n"),
        Late::Error,
    );
    let err = result.expect_err("a late event stops the server with --late error");
    assert!(err.to_string().starts_with("line 95: "), "{err}");

    let (empty, diag) = serve_text(
        &mut Server::open(&run).expect("open"),
        String::new(),
        Late::Skip,
    );
    assert!(empty.expect("an empty input is no error").is_empty() && diag.is_empty());
}

#[test]
fn unknown_nodes_are_new_and_a_state_of_another_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let mut server = Server::open(&run).expect("open");
    let last = client_events(&run, 0..1).remove(0);
    let t = server.last_time().expect("events") * 1e6; // well after, whatever the unit
    let new = |src, dst| NewEvent {
        src,
        dst,
        t,
        features: last.features.clone(),
    };
    let first = server.score(&[new(9_999_999, last.dst)], 0).expect("score");
    assert!(first[0].new_src && !first[0].new_dst);
    let again = server
        .score(&[new(9_999_999, 8_888_888)], 0)
        .expect("score");
    assert!(!again[0].new_src && again[0].new_dst, "known once ingested");
    assert!(first[0].logit.is_finite() && again[0].logit.is_finite());
    server.checkpoint().expect("checkpoint");
    let reopened = Server::open(&run).expect("reopen");
    assert_eq!(reopened.served(), 2);
    let third = Server::open(&run)
        .expect("open")
        .score(&[new(9_999_999, 8_888_888)], 0)
        .expect("score");
    assert!(
        !third[0].new_src && !third[0].new_dst,
        "new nodes kept by the checkpoint, on their side"
    );

    let info = run.join("serve").join("state.json");
    let text = std::fs::read_to_string(&info).expect("state");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let candidates = v["candidates"].as_array().expect("candidates").len();
    let exported = data(&run_config(&run).expect("config"))
        .expect("data")
        .0
        .destination_nodes()
        .len();
    assert_eq!(
        candidates,
        exported + 1,
        "the new destination is a candidate"
    );
    v["format"] = 99.into();
    std::fs::write(&info, v.to_string()).expect("write");
    let err = Server::open(&run).err().expect("refused").to_string();
    assert!(
        err.contains("format 99") && err.contains("format 1"),
        "{err}"
    );
}

#[test]
fn a_state_serves_on_another_device_than_the_one_that_wrote_it() {
    let Some(wgpu) = mspipe_model::kernels::runtime::test_device() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let events: Vec<NewEvent> = future_events(&run)[..300]
        .iter()
        .map(|l| {
            mspipe_train::serve::parse_line(l)
                .expect("valid")
                .expect("event")
        })
        .collect();
    let serve_on = |device: Device| {
        let mut server = Server::open_on(&run, device).expect("open");
        let mut logits = Vec::new();
        for batch in events.chunks(BATCH) {
            let scored = server.score(batch, 2).expect("score");
            logits.extend(
                scored
                    .into_iter()
                    .flat_map(|s| [s.logit, s.negatives[0], s.negatives[1]]),
            );
        }
        logits
    };
    // Trained and exported on flex, served on wgpu.
    let flex = serve_on(Device::flex());
    let on_wgpu = serve_on(wgpu.clone());
    let far = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    };
    assert!(
        far(&flex, &on_wgpu) < 1e-5,
        "flex → wgpu: {}",
        far(&flex, &on_wgpu)
    );
    // And back: a state whose memory was replayed on wgpu (device-resident store, fused
    // kernels) scores the same on flex as on wgpu.
    let config = run_config(&run).expect("config");
    let (stream, split) = data(&config).expect("data");
    let mut session = mspipe_train::session::Session::<mspipe_step::DeviceStore>::on_device(
        config,
        stream,
        split,
        wgpu.clone(),
    )
    .expect("session");
    session.load_model(&run.join("best")).expect("best model");
    mspipe_train::serve::export(&mut session, &run, EvalSplit::Test).expect("export on wgpu");
    let back = serve_on(Device::flex());
    let there = serve_on(wgpu);
    assert!(
        far(&back, &there) < 1e-5,
        "wgpu → flex: {}",
        far(&back, &there)
    );
    // Memory replayed through 6,000 events on either device drifts by f32 rounding only.
    assert!(far(&flex, &back) < 1e-3, "{}", far(&flex, &back));
}

#[test]
fn the_best_ranked_destination_scores_as_that_event_would() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let lines = future_events(&run);
    let event = mspipe_train::serve::parse_line(&lines[1])
        .expect("valid")
        .expect("event");
    let ranked = Server::open(&run)
        .expect("open")
        .score_ranked(std::slice::from_ref(&event), 0, 5)
        .expect("rank")
        .remove(0);
    assert_eq!(ranked.top.len(), 5);
    // Among chosen candidates only: those candidates alone, in the same order, the same logits.
    let chosen: Vec<u64> = ranked.top[2..].iter().map(|&(d, _)| d).collect();
    let mut server = Server::open(&run).expect("open");
    server.rank_among(&chosen).expect("known destinations");
    let among = server
        .score_ranked(std::slice::from_ref(&event), 0, 5)
        .expect("rank")
        .remove(0);
    assert_eq!(among.top.len(), 3);
    for (a, b) in among.top.iter().zip(&ranked.top[2..]) {
        assert!(a.0 == b.0 && (a.1 - b.1).abs() < 1e-5, "{a:?} vs {b:?}");
    }
    let err = Server::open(&run)
        .expect("open")
        .rank_among(&[u64::MAX])
        .unwrap_err();
    assert!(err.to_string().contains("is no node"), "{err}");
    assert!(
        ranked.top.windows(2).all(|w| w[0].1 >= w[1].1),
        "best first"
    );
    // A one-event batch: the candidates are embedded at the event's own time, so the best
    // candidate's logit is what the event to it scores from the same state.
    for &(dst, logit) in &ranked.top[..2] {
        let direct = Server::open(&run)
            .expect("open")
            .score(
                &[NewEvent {
                    dst,
                    ..event.clone()
                }],
                0,
            )
            .expect("score")
            .remove(0);
        assert!(
            (direct.logit - logit).abs() < 1e-5,
            "{} vs {logit}",
            direct.logit
        );
    }
}

#[test]
fn each_checkpoint_is_reported_with_the_events_it_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = trained_run(dir.path());
    let lines = future_events(&run)[..120].to_vec();
    let options = ServeOptions {
        batch: 50,
        max_delay: Duration::from_secs(60),
        checkpoint_every: 50,
        ..Default::default()
    };
    let (mut out, mut diag) = (Vec::new(), Vec::new());
    let mut server = Server::open(&run).expect("open");
    let input = Cursor::new(lines.join("\n").into_bytes());
    serve(&mut server, input, &mut out, &mut diag, &options).expect("serves");
    let said = String::from_utf8(diag).expect("utf-8");
    let counts: Vec<&str> = said.lines().collect();
    assert_eq!(
        counts,
        [
            "checkpoint: 50 events served since the export",
            "checkpoint: 100 events served since the export",
            "checkpoint: 120 events served since the export",
        ]
    );
    assert_eq!(Server::open(&run).expect("reopen").served(), 120);
}
