//! Training through the MSPipe executor: with staleness 0 it is bit-identical to the sequential
//! loop; fixed staleness is reproducible and reads exactly K updates back; the adaptive planner
//! stays within its bound and still learns.

use mspipe::scheduler::Timeline;
use mspipe::train::config::ModelName;
use mspipe::train::metrics::average_precision;
use mspipe::train::session::Session;

mod common;
use common::{repeating_stream, small_session};

const EPOCHS: usize = 3;

fn session(mode: &str, seed: u64) -> Session {
    let stream = repeating_stream(4_000, 300, 220, 11);
    let overrides = [
        "train.batch_size=150".to_string(),
        format!("train.seed={seed}"),
        format!("pipeline.mode={mode:?}"),
    ];
    small_session(ModelName::Tgn, stream, (0.0, 0.2), &overrides)
}

/// Trains `EPOCHS` epochs through the executor, each in two stretches (as between mid-epoch
/// checkpoints); returns the losses, the timelines and the test scores' bits and AP.
fn pipelined(mode: &str, seed: u64) -> (Vec<f64>, Vec<Timeline>, Vec<u32>, f64) {
    let mut s = session(mode, seed);
    let executor = s.config.pipeline.executor();
    let n = s.train_batches();
    let (mut losses, mut timelines) = (Vec::new(), Vec::new());
    for epoch in 0..EPOCHS {
        s.reset_memory();
        for range in [0..7, 7..n] {
            let tl = s
                .train_pipelined(epoch, range, &executor, |l| losses.push(l))
                .expect("trains");
            timelines.push(tl);
        }
    }
    let (bits, ap) = test_scores(&mut s);
    (losses, timelines, bits, ap)
}

fn test_scores(s: &mut Session) -> (Vec<u32>, f64) {
    let test: Vec<usize> = s.split.test.clone().collect();
    let scores = s.evaluate(&test, 1).expect("evaluates");
    let bits = scores
        .pos
        .iter()
        .chain(&scores.neg)
        .map(|x| x.to_bits())
        .collect();
    (bits, average_precision(&scores.pos, &scores.neg))
}

/// One test: sessions seed burn's global (flex) parameter RNG, so they are built in turn.
#[test]
fn pipelined_training_keeps_its_staleness_contract() {
    // The sequential loop.
    let mut seq = session("off", 9);
    let mut seq_losses = Vec::new();
    for epoch in 0..EPOCHS {
        seq.reset_memory();
        for b in 0..seq.train_batches() {
            seq_losses.push(seq.train_batch(epoch, b).expect("finite"));
        }
    }
    let (seq_bits, _) = test_scores(&mut seq);

    // Off: sampling runs ahead, updates overlap the backward pass — and nothing changes.
    let (losses, timelines, bits, _) = pipelined("off", 9);
    let same = |a: &[f64], b: &[f64]| {
        a.iter()
            .map(|x| x.to_bits())
            .eq(b.iter().map(|x| x.to_bits()))
    };
    assert!(
        same(&losses, &seq_losses),
        "losses differ from the sequential loop"
    );
    assert_eq!(
        bits, seq_bits,
        "test scores differ from the sequential loop"
    );
    assert!(timelines.iter().all(|t| t.observed_staleness().1 == 0));

    // fixed:2 reads exactly two updates back (fewer at a stretch's start), reproducibly.
    let (a_losses, a_tl, a_bits, _) = pipelined("fixed:2", 9);
    let (b_losses, _, b_bits, _) = pipelined("fixed:2", 9);
    assert!(
        same(&a_losses, &b_losses) && a_bits == b_bits,
        "fixed staleness is reproducible"
    );
    assert!(
        !same(&a_losses, &seq_losses),
        "staleness changes what is read"
    );
    for tl in &a_tl {
        let observed: Vec<usize> = tl.iterations.iter().map(|it| it.observed).collect();
        let expected: Vec<usize> = (0..observed.len()).map(|i| i.min(2)).collect();
        assert_eq!(observed, expected);
    }

    // Adaptive: within k_max.
    let (_, tl, _, _) = pipelined("mspipe", 9);
    assert!(tl.iter().all(|t| {
        t.iterations
            .iter()
            .all(|it| it.observed <= it.staleness && it.staleness <= 4)
    }));

    // Both learn as well as the sequential loop. One run's test AP on this small stream moves by
    // ±0.05 with the seed (and with float rounding), so the means over three seeds are compared.
    let mean_ap = |mode: &str| (1..=3).map(|seed| pipelined(mode, seed).3).sum::<f64>() / 3.0;
    let (seq_ap, fixed_ap, adaptive_ap) = (mean_ap("off"), mean_ap("fixed:2"), mean_ap("mspipe"));
    eprintln!(
        "mean test AP: sequential {seq_ap:.4}, fixed:2 {fixed_ap:.4}, mspipe {adaptive_ap:.4}"
    );
    for (mode, ap) in [("fixed:2", fixed_ap), ("mspipe", adaptive_ap)] {
        assert!(
            ap > seq_ap - 0.05 && ap > 0.7,
            "{mode} mean AP {ap} vs sequential {seq_ap}"
        );
    }
}
