//! Fused kernels against the same math in burn ops: batch 600 and 6,000 roots, memory dim 100,
//! k = 10 neighbours, 2 heads; attention (both forms) and the time encoding on both routes that run here (flex's
//! host loops, and the cubecl kernels on wgpu over lavapipe), the memory fetch and update on
//! wgpu. Each forward group also times a device copy of the bytes the fused kernel moves, so "GB/s"
//! of the two can be compared with what the memory system gives in the same run. Outputs stay
//! alive until the device sync: on wgpu burn runs `Fusion`, which skips work whose results are
//! dropped unread.
//!
//! `bash .ci/setup-vulkan.sh && cargo bench -p mspipe-kernels`

use burn::prelude::*;
use burn::tensor::Distribution;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mspipe_kernels::time_encoding as fused_time_encoding;
use mspipe_kernels::{Clock, DeviceMemory, GatheredAttention, Writes, cube, reference, runtime};

/// As training runs: glibc serves each multi-megabyte output with a fresh mmap (page faults and, on
/// free, TLB shootdowns that dominated the 6,000-root flex runs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DIM: usize = 100;
const SLOTS: usize = 10;
const HEADS: usize = 2;
const NODES: usize = 20_000;
/// TGN's mail: source memory ⊕ destination memory (no edge features).
const MAIL: usize = 2 * DIM;

fn device() -> Device {
    runtime::wgpu_device().expect("no wgpu adapter: run `bash .ci/setup-vulkan.sh` first")
}

/// The devices with a fused route: flex (host loops) and wgpu (cubecl kernels).
fn devices() -> [(&'static str, Device); 2] {
    [("flex", Device::flex()), ("wgpu", device())]
}

/// Runs `on(c, device name, device, backward)` on every fused route, forward alone then forward
/// + backward (on the device's autodiff form).
fn both_passes(c: &mut Criterion, on: fn(&mut Criterion, &str, Device, bool)) {
    for (name, device) in devices() {
        on(c, name, device.clone(), false);
        on(c, name, device.autodiff(), true);
    }
}

fn random<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

fn sync(device: &Device) {
    device.sync().expect("device sync");
}

/// A copy of `bytes` bytes (half read, half written) on `device`.
fn copy_of(bytes: usize, device: &Device) -> impl FnMut() {
    let x = random([bytes / 8], device);
    let device = device.clone();
    move || {
        let y = x.clone() + 0.0;
        sync(&device);
        drop(y);
    }
}

fn pass(backward: bool) -> &'static str {
    if backward {
        "forward_backward"
    } else {
        "forward"
    }
}

/// `x`, tracked for gradients when the pass includes the backward.
fn trainable<const D: usize>(x: &Tensor<D>, backward: bool) -> Tensor<D> {
    if backward {
        x.clone().require_grad()
    } else {
        x.clone()
    }
}

/// Runs the backward when asked, then waits for the device with every result still alive.
fn finish<const D: usize>(out: Tensor<D>, backward: bool, device: &Device) {
    let grads = backward.then(|| out.clone().sum().backward());
    sync(device);
    drop((out, grads));
}

/// Sets the group's throughput to `bytes` and times a device copy of as many bytes.
fn copy_baseline(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    roots: usize,
    bytes: usize,
    device: &Device,
) {
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function(BenchmarkId::new("copy", roots), |b| {
        b.iter(copy_of(bytes, device))
    });
}

/// Times `run(true)` (the fused route) and `run(false)` (the same math in burn ops).
fn fused_and_unfused<R: FnMut()>(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    roots: usize,
    run: impl Fn(bool) -> R,
) {
    group.bench_function(BenchmarkId::new("fused", roots), |b| b.iter(run(true)));
    group.bench_function(BenchmarkId::new("unfused", roots), |b| b.iter(run(false)));
}

/// Attention over gathered rows as TGN runs it: slot rows of a node part (`DIM`, from a table of
/// `roots / 2` rows) beside a Δt part (`DIM`, from `roots·k / 2` rows), forward alone (with the
/// copy baseline of the bytes it moves) and forward + backward.
fn gathered_attention(c: &mut Criterion) {
    both_passes(c, gathered_on);
}

fn gathered_on(c: &mut Criterion, name: &str, device: Device, backward: bool) {
    let mut group = c.benchmark_group(format!("gathered_attention_{}/{name}", pass(backward)));
    let width = 2 * DIM;
    for roots in [600usize, 6_000] {
        let slots = roots * SLOTS;
        let (rows_a, rows_b) = (roots / 2, slots / 2);
        let index = |rows: usize, step: usize| {
            let ids: Vec<i64> = (0..slots)
                .map(|i| ((i * step + i / 7) % rows) as i64)
                .collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [slots]), &device)
        };
        let (ia, ib) = (index(rows_a, 7), index(rows_b, 1));
        let q = random([HEADS, roots, width], &device);
        let (a, b) = (
            random([rows_a, DIM], &device),
            random([rows_b, DIM], &device),
        );
        let keep: Tensor<2> = Tensor::random([roots, SLOTS], Distribution::Bernoulli(0.8), &device);
        let scale: Tensor<3> = Tensor::ones([HEADS, roots, SLOTS], &device);
        let run = |fused: bool| {
            let (q, a, ia, b, ib, keep, scale, device) = (
                q.clone(),
                a.clone(),
                ia.clone(),
                b.clone(),
                ib.clone(),
                keep.clone(),
                scale.clone(),
                device.clone(),
            );
            move || {
                let (q, [a, b]) = (
                    trainable(&q, backward),
                    [&a, &b].map(|x| trainable(x, backward)),
                );
                let (ia, ib, keep, scale) = (ia.clone(), ib.clone(), keep.clone(), scale.clone());
                let input = GatheredAttention {
                    q,
                    a,
                    ia,
                    e: None,
                    b,
                    ib,
                    keep,
                    scale,
                };
                let out = if fused {
                    mspipe_kernels::gathered_attention(input)
                } else {
                    reference::gathered_attention(input)
                };
                finish(out, backward, &device);
            }
        };
        if !backward {
            // Slot rows and indices read, queries read and outputs written, mask read.
            let bytes = 4 * (slots * (width + 2) + 2 * roots * HEADS * width + slots);
            copy_baseline(&mut group, roots, bytes, &device);
        }
        fused_and_unfused(&mut group, roots, run);
    }
    group.finish();
}

/// φ(Δt) of `roots`·k distinct Δt (every slot its own), forward and backward for `w` and `b`.
fn time_encoding(c: &mut Criterion) {
    for (name, device) in devices() {
        let device = device.autodiff();
        let mut group = c.benchmark_group(format!("time_encoding_forward_backward/{name}"));
        for roots in [600usize, 6_000] {
            let dt: Tensor<1> =
                Tensor::random([roots * SLOTS], Distribution::Uniform(0.0, 1e6), &device);
            let (w, b) = (random([DIM], &device), random([DIM], &device));
            let run = |fused: bool| {
                let (dt, w, b, device) = (dt.clone(), w.clone(), b.clone(), device.clone());
                move || {
                    let (w, b) = (w.clone().require_grad(), b.clone().require_grad());
                    let phi = if fused {
                        fused_time_encoding(dt.clone(), w, b)
                    } else {
                        reference::time_encoding(dt.clone(), w, b)
                    };
                    finish(phi, true, &device);
                }
            };
            fused_and_unfused(&mut group, roots, run);
        }
        group.finish();
    }
}

fn store(device: &Device) -> DeviceMemory {
    DeviceMemory {
        memory: random([NODES, DIM], device),
        last_update: Tensor::random([NODES], Distribution::Uniform(0.0, 1e3), device),
        mail: random([NODES, 1, MAIL], device),
        mail_time: Tensor::random([NODES, 1], Distribution::Uniform(0.0, 1e3), device),
        mail_valid: Tensor::ones([NODES, 1], device),
    }
}

fn nodes(count: usize, device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = (0..count).map(|i| ((i * 7_919) % NODES) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [count]), device)
}

/// The memory fetch (with the copy baseline of the bytes it moves) and update on wgpu.
fn memory(c: &mut Criterion) {
    let device = device();
    let state = store(&device);
    let (w, b) = (random([DIM], &device), random([DIM], &device));
    let mut group = c.benchmark_group("memory_fetch");
    for batch in [600usize, 6_000] {
        let ids = nodes(batch, &device);
        let fetch = |fused: bool| {
            let (state, ids, w, b, device) = (
                state.clone(),
                ids.clone(),
                w.clone(),
                b.clone(),
                device.clone(),
            );
            move || {
                let encoding = Clock::SinceUpdate.encoding(w.clone(), b.clone(), batch);
                let out = if fused {
                    cube::fetch(&state, ids.clone(), encoding)
                } else {
                    reference::fetch(&state, ids.clone(), encoding)
                };
                sync(&device);
                drop(out);
            }
        };
        // Read memory, mail, times; write memory rows and the updater input.
        let bytes = 4 * batch * (2 * DIM + 2 * MAIL + DIM + 4);
        copy_baseline(&mut group, batch, bytes, &device);
        fused_and_unfused(&mut group, batch, fetch);
    }
    group.finish();
    let mut group = c.benchmark_group("memory_update");
    for batch in [600usize, 6_000] {
        let ids = nodes(batch, &device);
        let times: Tensor<1> = Tensor::random([batch], Distribution::Uniform(1e3, 2e3), &device);
        let rows = random([batch, DIM], &device);
        let mails = random([batch, MAIL], &device);
        let update = |fused: bool| {
            let (mut state, ids, times, rows, mails, device) = (
                store(&device),
                ids.clone(),
                times.clone(),
                rows.clone(),
                mails.clone(),
                device.clone(),
            );
            move || {
                let (n, t, r, m) = (ids.clone(), times.clone(), rows.clone(), mails.clone());
                let s =
                    std::mem::replace(&mut state, DeviceMemory::zeros(0, DIM, MAIL, 1, &device));
                state = if fused {
                    cube::update(s, Writes::events(n, t, r, m))
                } else {
                    reference::update(s, Writes::events(n, t, r, m))
                };
                sync(&device);
            }
        };
        fused_and_unfused(&mut group, batch, update);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(2));
    targets = gathered_attention, time_encoding, memory
}
criterion_main!(benches);
