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
