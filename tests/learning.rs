//! Each model learns a learnable temporal rule: on a generated user–item stream where users keep
//! returning to a favourite item, the training loss falls and the test AP (events scored after
//! training, with memory carried forward) rises well above chance, on average over three seeds (one
//! seed's outcome can swing by more than the margins; `benches/report/apan-jodie.md`).
//! Runs the trainer's own batch loop ([`mspipe::train::session::Session`]).

use mspipe::train::config::ModelName;
use mspipe::train::metrics::average_precision;

mod common;
use common::{repeating_stream, small_session};

const EPOCHS: usize = 15;

const SEEDS: [u64; 3] = [1, 2, 3];

/// (mean loss of the first 5 batches, mean loss of the last epoch, test AP).
fn learns(model: ModelName, seed: u64) -> (f64, f64, f64) {
    let stream = repeating_stream(6_000, 400, 300, 5);
    // Without dropout: the training loss then measures what the model learned, not the masks'
    // noise (APAN's dropout on its stored memory keeps its training loss high at the same test AP;
    // benches/report/apan-jodie.md).
    let overrides = [
        "train.batch_size=200".to_string(),
        "train.lr=0.001".to_string(),
        format!("train.seed={seed}"),
        "gnn.dropout=0".to_string(),
    ];
    let mut session = small_session(model, stream, (0.0, 0.2), &overrides);
    let (mut first, mut last) = (0.0, 0.0);
    for epoch in 0..EPOCHS {
        session.reset_memory();
        let losses: Vec<f64> = (0..session.train_batches())
            .map(|b| session.train_batch(epoch, b).expect("finite loss"))
            .collect();
        if epoch == 0 {
            first = losses[..5].iter().sum::<f64>() / 5.0;
        }
        last = losses.iter().sum::<f64>() / losses.len() as f64;
    }
    let test: Vec<usize> = session.split.test.clone().collect();
    let scores = session.evaluate(&test, 1).expect("evaluates");
    (first, last, average_precision(&scores.pos, &scores.neg))
}

/// One test, models in turn: burn seeds its parameter RNG per device (globally on flex), so
/// parallel tests would race for it.
#[test]
fn every_model_learns() {
    let presets = [
        (ModelName::Tgn, 0.80),
        (ModelName::Jodie, 0.65),
        (ModelName::Apan, 0.62),
    ];
    for (model, min_ap) in presets {
        let runs: Vec<(f64, f64, f64)> = SEEDS.iter().map(|&seed| learns(model, seed)).collect();
        let mean = |f: fn(&(f64, f64, f64)) -> f64| runs.iter().map(f).sum::<f64>() / 3.0;
        let (ratio, ap) = (mean(|r| r.1 / r.0), mean(|r| r.2));
        eprintln!("{model:?}: (first loss, last loss, test AP) per seed {runs:.4?}");
        assert!(ratio < 0.92, "{model:?}: mean loss ratio {ratio}");
        assert!(ap > min_ap, "{model:?}: mean test AP {ap}");
    }
}
