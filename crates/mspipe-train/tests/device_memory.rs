//! Node memory on a cubecl device (wgpu over lavapipe here): training whose memory fetch and
//! update run as fused kernels over a device-resident store gives the losses, scores and final
//! memory that training over the host store on flex gives, from the same initial parameters —
//! sequentially and pipelined with staleness mitigation, for TGN, JODIE and APAN (mails to
//! neighbours, mailbox of 10).
//!
//! The comparisons run with the time encoding fixed: learned, its low frequencies get gradients
//! that are sums cancelling to nearly zero, whose sign the two backends' summation orders decide,
//! and Adam moves a parameter by about the learning rate whatever its gradient's size — times Δt
//! of thousands of seconds, a visible difference in the encodings (measured: memories 1e-2 apart
//! after two epochs, 2e-7 with the encoding fixed). The learned case is checked on its own: the
//! fused fetch's backward trains the encoding, within Adam's per-step bound of flex's.

use burn::module::Module;
use burn::prelude::*;
use mspipe_data::synthetic::{SyntheticConfig, generate};
use mspipe_data::{EventStream, Split, SplitConfig};
use mspipe_model::kernels::runtime::test_device;
use mspipe_model::tensors::to_vec;
use mspipe_step::{DeviceStore, NodeMemory};
use mspipe_train::config::{ModelName, resolve};
use mspipe_train::session::Session;

/// A small stream with whole-second times from near 0 (as Wikipedia's): f32 holds every time and
/// Δt exactly. (With Unix seconds a node's first Δt, since time 0, is ~1.7·10⁹ and rounded to f32
/// on both routes, and the encoding of such a Δt depends on each device's cos far outside ±π.)
fn stream() -> EventStream {
    let s = generate(&SyntheticConfig {
        events: 500,
        nodes: 90,
        users: Some(60),
        repeat_probability: 0.7,
        seed: 5,
        ..Default::default()
    })
    .expect("generate");
    let time = s.time().iter().map(|t| t.round()).collect();
    EventStream::from_edges(s.src().to_vec(), s.dst().to_vec(), time, s.num_nodes())
        .expect("valid stream")
}

fn session<S: NodeMemory>(
    model: ModelName,
    mode: &str,
    learned_time: bool,
    device: Device,
) -> Session<S> {
    let stream = stream();
    let split = Split::chronological(
        &stream,
        &SplitConfig {
            val_fraction: 0.0,
            test_fraction: 0.2,
            new_node_fraction: 0.0,
            seed: 0,
        },
    )
    .expect("split");
    let overrides: Vec<String> = [
        "memory.dim=16",
        "memory.time_dim=8",
        "gnn.dim=16",
        "sampling.neighbors=4",
        "train.batch_size=80",
        "train.seed=3",
        // Each device draws its own dropout masks: compare the deterministic model.
        "gnn.dropout=0",
        "gnn.att_dropout=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("pipeline.mode={mode:?}"),
        format!("memory.time_fixed={}", !learned_time),
    ])
    .collect();
    let config = resolve(model, None, &overrides).expect("config");
    Session::on_device(config, stream, split, device).expect("session")
}

/// Losses of two epochs, then test logits (the evaluation writes memory too).
fn train<S: NodeMemory>(s: &mut Session<S>) -> (Vec<f64>, Vec<f32>) {
    let executor = s.config.pipeline.executor();
    let mut losses = Vec::new();
    for epoch in 0..2 {
        s.reset_memory();
        let n = s.train_batches();
        s.train_pipelined(epoch, 0..n, &executor, |l| losses.push(l))
            .expect("trains");
    }
    let test: Vec<usize> = s.split.test.clone().collect();
    let scores = s.evaluate(&test, 1).expect("evaluates");
    (losses, scores.pos.into_iter().chain(scores.neg).collect())
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        // Measured: within 2e-7 (the backends sum in different orders).
        let tol = 2e-5 * (1.0 + w.abs());
        assert!((g - w).abs() <= tol, "{what}[{i}]: device {g} vs host {w}");
    }
}

/// A session of `model` on flex over host memory and one on `gpu` over device memory, with the
/// same initial parameters.
fn pair(
    model: ModelName,
    mode: &str,
    learned_time: bool,
    gpu: &Device,
) -> (Session, Session<DeviceStore>) {
    let host = session(model, mode, learned_time, Device::flex());
    let mut device = session(model, mode, learned_time, gpu.clone());
    device.model = host.model.clone().fork(&device.device().clone());
    (host, device)
}

#[test]
fn device_memory_trains_as_host_memory_does() {
    let Some(gpu) = test_device() else { return };
    for (model, mode) in [
        (ModelName::Tgn, "off"),
        (ModelName::Jodie, "fixed:2"),
        (ModelName::Apan, "fixed:1"),
    ] {
        let (mut host, mut device) = pair(model, mode, false, &gpu);
        let (want_losses, want_logits) = train(&mut host);
        let (got_losses, got_logits) = train(&mut device);
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let name = format!("{model:?} ({mode})");
        close(
            &format!("{name} losses"),
            &f32s(&got_losses),
            &f32s(&want_losses),
        );
        close(&format!("{name} test logits"), &got_logits, &want_logits);
        let (got, want) = (device.memory().to_host(), host.memory().to_host());
        for u in 0..want.num_nodes() as u32 {
            let what = format!("{name} memory of node {u}");
            close(&what, got.memory(u), want.memory(u));
            assert_eq!(
                got.last_update(u),
                want.last_update(u),
                "{what}: last update"
            );
        }
        // A checkpoint of device memory restores on the host, value for value.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("memory.bin");
        device.save_memory(&path).expect("saves");
        host.load_memory(&path).expect("loads");
        assert_eq!(
            host.memory().to_host(),
            got,
            "{name}: checkpoint round trip"
        );
    }
}

/// With the time encoding learned, the fused fetch's backward is what trains it on the device.
#[test]
fn the_fused_fetch_trains_the_time_encoding() {
    let Some(gpu) = test_device() else { return };
    let (mut host, mut device) = pair(ModelName::Tgn, "off", true, &gpu);
    let values = |model: &mspipe_model::MemoryModel| {
        let (w, b) = model.time_encoding().parameters();
        [to_vec(w), to_vec(b)].concat()
    };
    let initial = values(&device.model);
    let (want_losses, _) = train(&mut host);
    let (got_losses, _) = train(&mut device);
    let (want, got) = (values(&host.model), values(&device.model));
    let steps = got_losses.len() as f32;
    // Adam moves a parameter by at most about lr per step (bias-corrected, β's defaults).
    let bound = 2.0 * host.config.train.lr as f32 * steps;
    let moved = got
        .iter()
        .zip(&initial)
        .map(|(g, i)| (g - i).abs())
        .fold(0.0, f32::max);
    assert!(
        moved > 0.1 * bound,
        "the encoding did not train on the device: moved {moved}"
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= bound,
            "parameter {i}: device {g} vs host {w}"
        );
    }
    for (g, w) in got_losses.iter().zip(&want_losses) {
        assert!(
            (g - w).abs() < 1e-3,
            "losses {got_losses:?} vs {want_losses:?}"
        );
    }
}

/// Host memory with the model on another device (how several devices share one store): the
/// fetch uploads the gathered rows, the update reads them back; training matches flex's.
#[test]
fn host_memory_trains_a_model_on_a_cubecl_device() {
    let Some(gpu) = test_device() else { return };
    let mut host: Session = session(ModelName::Tgn, "fixed:1", false, Device::flex());
    let mut remote: Session = session(ModelName::Tgn, "fixed:1", false, gpu.clone());
    remote.model = host.model.clone().fork(&remote.device().clone());
    let (want_losses, want_logits) = train(&mut host);
    let (got_losses, got_logits) = train(&mut remote);
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    close("losses", &f32s(&got_losses), &f32s(&want_losses));
    close("test logits", &got_logits, &want_logits);
    let (got, want) = (remote.memory(), host.memory());
    for u in 0..want.num_nodes() as u32 {
        close(
            &format!("memory of node {u}"),
            got.memory(u),
            want.memory(u),
        );
    }
}
