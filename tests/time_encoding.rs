//! `memory.time_fixed`: the time encoding keeps its initial frequencies and phases through
//! training when fixed, and learns them otherwise.

use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::model::tensors::to_vec;
use mspipe::train::config::ModelName;

mod common;
use common::small_session;

/// A time encoding's frequencies `w` and phases `b`.
type WB = (Vec<f32>, Vec<f32>);

/// The time encoding's (w, b) before and after three training batches.
fn trained_time_encoding(fixed: bool) -> (WB, WB) {
    let stream = generate(&SyntheticConfig {
        events: 2_000,
        nodes: 200,
        seed: 3,
        ..Default::default()
    })
    .expect("generate");
    let overrides = [
        "train.batch_size=200".to_string(),
        format!("memory.time_fixed={fixed}"),
    ];
    let mut session = small_session(ModelName::Tgn, stream, (0.1, 0.1), &overrides);
    let params = |s: &mspipe::train::session::Session| {
        let (w, b) = s.model.time_encoding().parameters();
        (to_vec(w), to_vec(b))
    };
    let before = params(&session);
    for b in 0..3 {
        session.train_batch(0, b).expect("trains");
    }
    (before, params(&session))
}

#[test]
fn fixed_time_encoding_stays_and_learned_one_moves() {
    let (before, after) = trained_time_encoding(true);
    assert_eq!(before, after, "a fixed encoding must not change");
    let (before, after) = trained_time_encoding(false);
    assert_ne!(before.0, after.0, "learned frequencies must move");
    assert_ne!(before.1, after.1, "learned phases must move");
}

/// The session's encoding starts with frequencies from one per time unit down to one per training
/// period (at least a decade), on a continuous stream and on one of a few yearly snapshots.
#[test]
fn initial_frequencies_span_the_training_period() {
    for (snapshots, floor) in [(None, false), (Some(6), true)] {
        let stream = generate(&SyntheticConfig {
            events: 2_000,
            nodes: 200,
            seed: 3,
            snapshots,
            ..Default::default()
        })
        .expect("generate");
        let overrides = ["train.batch_size=200".to_string()];
        let session = small_session(ModelName::Tgn, stream, (0.1, 0.1), &overrides);
        let span = session.stream.time_span(session.split.train.clone());
        assert_eq!(span < 10.0, floor, "training span {span} time units");
        let w = to_vec(session.model.time_encoding().parameters().0);
        let lowest = f64::from(*w.last().expect("a frequency"));
        assert_eq!(w[0], 1.0);
        assert!(
            (lowest * span.max(10.0) - 1.0).abs() < 1e-5,
            "lowest frequency {lowest} for a span of {span}"
        );
    }
}
