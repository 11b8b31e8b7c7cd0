//! What the workspace tests share: a small model (32-dim memory and embeddings, 16-dim time
//! encoding, 5 neighbours) on a stream split chronologically, with no new-node hold-out.

use mspipe::data::synthetic::{SyntheticConfig, generate};
use mspipe::data::{EventStream, Split, SplitConfig};
use mspipe::train::config::{ModelName, resolve};
use mspipe::train::session::Session;

/// A session of `model` on `stream` with `val` and `test` fractions; `overrides` (`key=value`)
/// set the rest (batch size, seed, learning rate, pipeline mode).
pub fn small_session(
    model: ModelName,
    stream: EventStream,
    (val, test): (f64, f64),
    overrides: &[String],
) -> Session {
    let split = Split::chronological(
        &stream,
        &SplitConfig {
            val_fraction: val,
            test_fraction: test,
            new_node_fraction: 0.0,
            seed: 0,
        },
    )
    .expect("split");
    let small = [
        "memory.dim=32",
        "memory.time_dim=16",
        "gnn.dim=32",
        "sampling.neighbors=5",
    ];
    let all: Vec<String> = small
        .iter()
        .map(|s| s.to_string())
        .chain(overrides.iter().cloned())
        .collect();
    let config = resolve(model, None, &all).expect("config");
    Session::new(config, stream, split).expect("session")
}

/// A synthetic user–item stream of `events` over `nodes` nodes (`users` of them users) where
/// 80% of a user's events repeat an earlier item: learnable by memory and attention alike.
#[allow(dead_code)] // not every test file uses it
pub fn repeating_stream(events: usize, nodes: usize, users: usize, seed: u64) -> EventStream {
    generate(&SyntheticConfig {
        events,
        nodes,
        users: Some(users),
        repeat_probability: 0.8,
        seed,
        ..Default::default()
    })
    .expect("generate")
}
