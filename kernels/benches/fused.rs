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
use mspipe_kernels::{DeviceMemory, Writes, cube, reference, runtime};
use mspipe_kernels::{attention as fused_attention, time_encoding as fused_time_encoding};

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

fn attention(c: &mut Criterion) {
    for (name, device) in devices() {
        attention_on(c, name, device);
    }
}

fn attention_on(c: &mut Criterion, name: &str, device: Device) {
    let mut group = c.benchmark_group(format!("attention/{name}"));
    for roots in [600usize, 6_000] {
        let dh = DIM / HEADS;
        let q = random([roots, HEADS, dh], &device);
        let k = random([roots, SLOTS, HEADS, dh], &device);
        let v = random([roots, SLOTS, HEADS, dh], &device);
        let keep: Tensor<2> = Tensor::random([roots, SLOTS], Distribution::Bernoulli(0.8), &device);
        let bytes = 4 * (2 * roots * SLOTS * DIM + roots * DIM + roots * SLOTS + roots * DIM);
        group.throughput(Throughput::Bytes(bytes as u64));
        let run = |fused: bool| {
            let (q, k, v, keep, device) = (
                q.clone(),
                k.clone(),
                v.clone(),
                keep.clone(),
                device.clone(),
            );
            move || {
                let out = if fused {
                    fused_attention(q.clone(), k.clone(), v.clone(), keep.clone())
                } else {
                    reference::attention(q.clone(), k.clone(), v.clone(), keep.clone())
                };
                sync(&device);
                drop(out);
            }
        };
        group.bench_function(BenchmarkId::new("fused", roots), |b| b.iter(run(true)));
        group.bench_function(BenchmarkId::new("unfused", roots), |b| b.iter(run(false)));
        group.bench_function(BenchmarkId::new("copy", roots), |b| {
            b.iter(copy_of(bytes, &device))
        });
    }
    group.finish();
}

fn attention_backward(c: &mut Criterion) {
    for (name, device) in devices() {
        attention_backward_on(c, name, device.autodiff());
    }
}

fn attention_backward_on(c: &mut Criterion, name: &str, device: Device) {
    let mut group = c.benchmark_group(format!("attention_forward_backward/{name}"));
    for roots in [600usize, 6_000] {
        let dh = DIM / HEADS;
        let q = random([roots, HEADS, dh], &device);
        let k = random([roots, SLOTS, HEADS, dh], &device);
        let v = random([roots, SLOTS, HEADS, dh], &device);
        let keep: Tensor<2> = Tensor::random([roots, SLOTS], Distribution::Bernoulli(0.8), &device);
        let run = |fused: bool| {
            let (q, k, v, keep, device) = (
                q.clone(),
                k.clone(),
                v.clone(),
                keep.clone(),
                device.clone(),
            );
            move || {
                let (q, k, v) = (
                    q.clone().require_grad(),
                    k.clone().require_grad(),
                    v.clone().require_grad(),
                );
                let out = if fused {
                    fused_attention(q, k, v, keep.clone())
                } else {
                    reference::attention(q, k, v, keep.clone())
                };
                let grads = out.sum().backward();
                sync(&device);
                drop(grads);
            }
        };
        group.bench_function(BenchmarkId::new("fused", roots), |b| b.iter(run(true)));
        group.bench_function(BenchmarkId::new("unfused", roots), |b| b.iter(run(false)));
    }
    group.finish();
}

/// Attention over gathered rows as TGN runs it: slot rows of a node part (`DIM`, from a table of
/// `roots / 2` rows) beside a Δt part (`DIM`, from `roots·k / 2` rows), forward alone (with the
/// copy baseline of the bytes it moves) and forward + backward.
fn gathered_attention(c: &mut Criterion) {
    for (name, device) in devices() {
        gathered_on(c, name, device.clone(), false);
        gathered_on(c, name, device.autodiff(), true);
    }
}

fn gathered_on(c: &mut Criterion, name: &str, device: Device, backward: bool) {
    let pass = if backward {
        "forward_backward"
    } else {
        "forward"
    };
    let mut group = c.benchmark_group(format!("gathered_attention_{pass}/{name}"));
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
                let (q, a, b) = if backward {
                    (
                        q.clone().require_grad(),
                        a.clone().require_grad(),
                        b.clone().require_grad(),
                    )
                } else {
                    (q.clone(), a.clone(), b.clone())
                };
                let (ia, ib, keep, scale) = (ia.clone(), ib.clone(), keep.clone(), scale.clone());
                let out = if fused {
                    mspipe_kernels::gathered_attention(q, a, ia, b, ib, keep, scale)
                } else {
                    reference::gathered_attention(q, a, ia, b, ib, keep, scale)
                };
                let grads = backward.then(|| out.clone().sum().backward());
                sync(&device);
                drop((out, grads));
            }
        };
        if !backward {
            // Slot rows and indices read, queries read and outputs written, mask read.
            let bytes = 4 * (slots * (width + 2) + 2 * roots * HEADS * width + slots);
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function(BenchmarkId::new("copy", roots), |b| {
                b.iter(copy_of(bytes, &device))
            });
        }
        group.bench_function(BenchmarkId::new("fused", roots), |b| b.iter(run(true)));
        group.bench_function(BenchmarkId::new("unfused", roots), |b| b.iter(run(false)));
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
                    let grads = phi.sum().backward();
                    sync(&device);
                    drop(grads);
                }
            };
            group.bench_function(BenchmarkId::new("fused", roots), |b| b.iter(run(true)));
            group.bench_function(BenchmarkId::new("unfused", roots), |b| b.iter(run(false)));
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

fn memory(c: &mut Criterion) {
    let device = device();
    let state = store(&device);
    let (w, b) = (random([DIM], &device), random([DIM], &device));
    let mut group = c.benchmark_group("memory");
    for batch in [600usize, 6_000] {
        let ids = nodes(batch, &device);
        // Read memory, mail, times; write memory rows and the updater input.
        let bytes = 4 * batch * (2 * DIM + 2 * MAIL + DIM + 4);
        group.throughput(Throughput::Bytes(bytes as u64));
        let fetch = |fused: bool| {
            let (state, ids, w, b, device) = (
                state.clone(),
                ids.clone(),
                w.clone(),
                b.clone(),
                device.clone(),
            );
            move || {
                let out = if fused {
                    cube::fetch(&state, ids.clone(), w.clone(), b.clone())
                } else {
                    reference::fetch(&state, ids.clone(), w.clone(), b.clone())
                };
                sync(&device);
                drop(out);
            }
        };
        group.bench_function(BenchmarkId::new("fetch_fused", batch), |b| {
            b.iter(fetch(true))
        });
        group.bench_function(BenchmarkId::new("fetch_unfused", batch), |b| {
            b.iter(fetch(false))
        });
        group.bench_function(BenchmarkId::new("fetch_copy", batch), |b| {
            b.iter(copy_of(bytes, &device))
        });

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
        group.bench_function(BenchmarkId::new("update_fused", batch), |b| {
            b.iter(update(true))
        });
        group.bench_function(BenchmarkId::new("update_unfused", batch), |b| {
            b.iter(update(false))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(2));
    targets = attention, attention_backward, gathered_attention, time_encoding, memory
}
criterion_main!(benches);
