//! Several compute workers over one node memory: the replicas stay bit-identical, `off` mode
//! equals the sequential loop that applies the averaged gradient of each group of N batches, and
//! a fixed-staleness run is reproducible (dropout included: the workers share flex's one random
//! generator).

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use mspipe::model::MemoryModel;
use mspipe::train::config::ModelName;
use mspipe::train::session::Session;

mod common;
use common::{repeating_stream, small_session};

/// Stretches of the epoch's 16 batches (as between mid-epoch checkpoints): the first two end
/// inside a group of two; the last holds three whole groups.
const STRETCHES: [std::ops::Range<usize>; 3] = [0..7, 7..10, 10..16];

fn session(model: ModelName, workers: usize, mode: &str) -> Session {
    let stream = repeating_stream(3_000, 200, 150, 5);
    let overrides = [
        "train.batch_size=150".to_string(),
        "train.seed=3".to_string(),
        format!("train.workers={workers}"),
        format!("pipeline.mode={mode:?}"),
    ];
    small_session(model, stream, (0.0, 0.2), &overrides)
}

/// Every parameter of `model`, flattened in visiting order.
fn params(model: &MemoryModel) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut c = Collect(Vec::new());
    model.visit(&mut c);
    c.0
}

/// Two epochs in the stretches above, pipelined or sequential; the losses.
fn train(s: &mut Session, pipelined: bool) -> Vec<f64> {
    let executor = s.config.pipeline.executor();
    assert_eq!(s.train_batches(), 16);
    let mut losses = Vec::new();
    for epoch in 0..2 {
        s.reset_memory();
        for range in STRETCHES {
            let on_loss = |l| losses.push(l);
            if pipelined {
                s.train_pipelined(epoch, range, &executor, on_loss)
            } else {
                s.train_sequential(epoch, range, on_loss)
            }
            .expect("trains");
        }
    }
    losses
}

fn max_gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn test_scores(s: &mut Session) -> Vec<f32> {
    let test: Vec<usize> = s.split.test.clone().collect();
    let scores = s.evaluate(&test, 1).expect("evaluates");
    scores.pos.into_iter().chain(scores.neg).collect()
}

/// One test: sessions seed burn's global (flex) random generator, so they are built in turn.
/// Every model: their memories update differently (TGN's and JODIE's recurrent cells on the last
/// mail, APAN's attention over a mailbox of several).
#[test]
fn workers_share_one_memory_and_stay_identical() {
    for model in [ModelName::Tgn, ModelName::Jodie, ModelName::Apan] {
        check(model);
    }
}

fn check(model: ModelName) {
    let session = |workers, mode| session(model, workers, mode);
    // The reference: each group of two batches fetched in turn, one step on the mean loss.
    let mut seq = session(2, "off");
    let seq_losses = train(&mut seq, false);
    let seq_params = params(&seq.model);
    let seq_scores = test_scores(&mut seq);

    // Two workers, strict (k = 0): the same reads and the same parameters (each worker
    // differentiates on its own one-thread pool, the reference on the shared pool: equal to float
    // rounding).
    let mut par = session(2, "off");
    let par_losses = train(&mut par, true);
    assert_eq!(par_losses.len(), seq_losses.len());
    for (i, (a, b)) in par_losses.iter().zip(&seq_losses).enumerate() {
        assert!(
            (a - b).abs() < 1e-4 * b.abs().max(1.0),
            "{model:?} loss {i}: {a} vs {b}"
        );
    }
    let par_params = params(&par.model);
    let gap = max_gap(&par_params, &seq_params);
    assert!(gap < 1e-4, "{model:?} parameters differ by {gap}");
    assert!(
        params(&session(2, "off").model) != par_params,
        "{model:?}: training moved them"
    );
    let replicas: Vec<_> = par.replicas().map(params).collect();
    assert_eq!(replicas.len(), 1);
    assert!(
        replicas.iter().all(|r| r
            .iter()
            .map(|x| x.to_bits())
            .eq(par_params.iter().map(|x| x.to_bits()))),
        "{model:?}: every replica's parameters are bit-identical to worker 0's"
    );
    let gap = max_gap(&test_scores(&mut par), &seq_scores);
    assert!(
        gap < 1e-3,
        "{model:?} test scores (memory and parameters) differ by {gap}"
    );

    // Reading one update back lets the workers compute side by side; the run is reproducible
    // to the bit (exact reads; dropout drawn per batch from its own seed).
    let mut a = session(2, "fixed:1");
    let mut b = session(2, "fixed:1");
    let (la, lb) = (train(&mut a, true), train(&mut b, true));
    assert!(
        la.iter()
            .map(|x| x.to_bits())
            .eq(lb.iter().map(|x| x.to_bits()))
    );
    assert_eq!(params(&a.model), params(&b.model));
    assert!(a.replicas().all(|r| params(r) == params(&a.model)));
}
