//! Dynamic node classification: on a user–item stream where an event is labelled 1 exactly when
//! its user is one of the busy ones (a fifth of the users making half of the events, on their own
//! items), the decoder on frozen source embeddings separates the labels well above chance — the
//! memory and the time encoding carry how active a node is; streams without labels report nothing.

use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{EventStream, NodeIds};
use mspipe::train::classify::node_classification;
use mspipe::train::config::ModelName;
use mspipe::train::session::Session;

mod common;
use common::small_session;

const USERS: u32 = 300;
const BUSY: u32 = 60;
const ITEMS: u32 = 100;

/// splitmix64: a fixed, dependency-free stream of pseudo-random numbers for the test data.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Half of the events come from the `BUSY` users (on the first fifth of the items), half from the
/// others (on the rest); label = the source is busy.
fn busy_and_quiet(events: usize) -> (Vec<u32>, Vec<u32>, Vec<f64>, Vec<f32>) {
    let mut rng = 7u64;
    let (mut src, mut dst, mut time, mut label) = (vec![], vec![], vec![], vec![]);
    let busy_items = ITEMS / 5;
    for e in 0..events {
        let busy = next(&mut rng).is_multiple_of(2);
        let r = next(&mut rng);
        let (user, item) = if busy {
            (r as u32 % BUSY, USERS + (r >> 32) as u32 % busy_items)
        } else {
            let quiet = (r as u32) % (USERS - BUSY);
            (
                BUSY + quiet,
                USERS + busy_items + (r >> 32) as u32 % (ITEMS - busy_items),
            )
        };
        src.push(user);
        dst.push(item);
        time.push(e as f64);
        label.push(f32::from(u8::from(busy)));
    }
    (src, dst, time, label)
}

fn session(stream: EventStream) -> Session {
    let overrides = [
        "train.batch_size=200".to_string(),
        "train.seed=4".to_string(),
    ];
    small_session(ModelName::Tgn, stream, (0.15, 0.15), &overrides)
}

/// One test: sessions seed burn's global (flex) parameter RNG, so they are built in turn.
#[test]
fn decoder_learns_labels_carried_by_the_memory() {
    let (src, dst, time, label) = busy_and_quiet(6_000);
    let positives = label.iter().filter(|&&y| y > 0.5).count();
    let labelled = EventStream::from_columns(
        src,
        dst,
        time,
        Some(label),
        None,
        None,
        None,
        NodeIds::identity((USERS + ITEMS) as usize),
        true,
    )
    .expect("columns");

    let mut s = session(labelled);
    for epoch in 0..3 {
        s.reset_memory();
        for b in 0..s.train_batches() {
            s.train_batch(epoch, b).expect("finite");
        }
    }
    let report = node_classification(&mut s)
        .expect("runs")
        .expect("labels present");
    let auc = report.node_test_auc;
    assert!(auc > 0.7, "node classification test AUC {auc}: {report:?}");
    assert_eq!(report.node_positive_labels, positives);

    let unlabelled = generate(&SyntheticConfig {
        events: 1_000,
        nodes: 100,
        label_rate: 0.0,
        ..Default::default()
    })
    .expect("generate");
    let plain = EventStream::from_columns(
        unlabelled.src().to_vec(),
        unlabelled.dst().to_vec(),
        unlabelled.time().to_vec(),
        None,
        None,
        None,
        None,
        NodeIds::identity(unlabelled.num_nodes()),
        false,
    )
    .expect("columns");
    assert!(
        node_classification(&mut session(plain))
            .expect("runs")
            .is_none()
    );
}
