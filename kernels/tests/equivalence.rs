//! Every kernel against the burn-ops reference on random inputs: duplicate node ids, padded
//! slots, fully padded rows, K = 1, H = 1 and H > 1, empty batches, sizes that are no multiple of
//! a cube. Forward outputs and gradients within 1e-5 (relative, f32). Kernel outputs are allocated
//! poisoned (NaN) in debug builds, so an element a kernel fails to write shows up here.
//!
//! The kernels run on wgpu — lavapipe on these machines (`.ci/setup-vulkan.sh`). Without an
//! adapter the tests print why and pass, unless `MSPIPE_REQUIRE_KERNEL_RUNTIME` is set (CI), where
//! they fail.
#![cfg(feature = "wgpu")]

mod common;

use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use common::{
    GATHERED_SHAPES, GRU_SHAPES, GatheredCase, GruCase, assert_gathered_without_slots_is_zero,
    assert_run_close, random, to,
};
use mspipe_kernels::runtime::test_device;
use mspipe_kernels::{Clock, DeviceMemory, Writes, fetch, reference, update};

/// The GRU gates kernel and its backward on wgpu against autodiff of the reference on flex.
#[test]
fn gru_gates_match_reference() {
    let Some(gpu) = test_device() else { return };
    let (gpu, cpu) = (gpu.autodiff(), Device::flex().autodiff());
    for shape in GRU_SHAPES {
        let case = GruCase::new(shape, &gpu);
        let got = case.run(&gpu, true);
        assert_eq!(got.0.shape().to_vec(), shape.to_vec());
        if shape[0] == 0 {
            continue; // flex's own backward trips on empty tensors
        }
        assert_run_close(got, case.run(&cpu, false), shape[0]);
    }
}

/// The attention over gathered rows on wgpu (the kernels, then the backend's scatter) against
/// the reference on flex.
#[test]
fn gathered_attention_matches_reference() {
    let Some(gpu) = test_device() else { return };
    let (gpu, cpu) = (gpu.autodiff(), Device::flex().autodiff());
    for shape in GATHERED_SHAPES.into_iter().filter(|s| s[0] > 0) {
        let case = GatheredCase::new(shape, &gpu);
        assert_run_close(case.run(&gpu, true), case.run(&cpu, false), shape[0]);
    }
}

/// The time-encoding kernels on wgpu against autodiff of the reference on flex: Δt up to 100 and
/// `w` from 1 down to 10⁻⁹ (TGN's initialisation), so phases stay where f32 cos/sin of any
/// implementation agree; rows not a multiple of the backward's block of 64.
#[test]
fn time_encoding_matches_reference() {
    let Some(gpu) = test_device() else { return };
    let (gpu, cpu) = (gpu.autodiff(), Device::flex().autodiff());
    for (n, t) in [(1, 1), (37, 7), (130, 3), (1_000, 100), (0, 5)] {
        let dt: Tensor<1> = Tensor::random([n], Distribution::Uniform(0.0, 100.0), &gpu);
        let w: Vec<f32> = (0..t)
            .map(|i| 10f32.powf(-9.0 * i as f32 / t.max(2) as f32))
            .collect();
        let w = Tensor::<1>::from_floats(&w[..], &gpu);
        let b = random([t], &gpu);
        let g = random([n, t], &gpu);
        let run = |device: &Device, fused: bool| {
            let (w, b) = (to(&w, device).require_grad(), to(&b, device).require_grad());
            let dt = to(&dt, device);
            let phi = if fused {
                mspipe_kernels::time_encoding(dt, w.clone(), b.clone())
            } else {
                reference::time_encoding(dt, w.clone(), b.clone())
            };
            let out = common::owned(phi.to_data());
            let grads = (phi * to(&g, device)).sum().backward();
            let grad =
                |x: &Tensor<1>| common::owned(x.grad(&grads).expect("a gradient").into_data());
            (out, grad(&w), grad(&b))
        };
        let (out, dw, db) = run(&gpu, true);
        assert_eq!(out.shape().to_vec(), vec![n, t]);
        if n == 0 {
            // flex's own backward trips on empty tensors: the fused gradients must be zero.
            for g in [dw, db] {
                assert!(g.iter::<f32>().all(|x| x == 0.0), "{g:?}");
            }
            continue;
        }
        let (want_out, want_dw, want_db) = run(&cpu, false);
        out.assert_approx_eq::<f32>(&want_out, Tolerance::rel_abs(1e-5, 1e-5));
        // Column sums over n rows of terms up to 100: an f32 sum's rounding scales with n.
        let tol = Tolerance::rel_abs(1e-4, 1e-6 * n as f32 * 100.0);
        dw.assert_approx_eq::<f32>(&want_dw, tol);
        db.assert_approx_eq::<f32>(&want_db, Tolerance::rel_abs(1e-4, 1e-6 * n as f32));
    }
}

/// A store of `nodes` nodes with random memories, times, mails and validity.
fn store(nodes: usize, dim: usize, mail_dim: usize, slots: usize, device: &Device) -> DeviceMemory {
    DeviceMemory {
        memory: random([nodes, dim], device),
        last_update: Tensor::random([nodes], Distribution::Uniform(0.0, 50.0), device),
        mail: random([nodes, slots, mail_dim], device),
        mail_time: Tensor::random([nodes, slots], Distribution::Uniform(0.0, 100.0), device),
        mail_valid: Tensor::random([nodes, slots], Distribution::Bernoulli(0.6), device),
    }
}

/// The same store on another device.
fn store_on(s: &DeviceMemory, device: &Device) -> DeviceMemory {
    DeviceMemory {
        memory: to(&s.memory, device),
        last_update: to(&s.last_update, device),
        mail: to(&s.mail, device),
        mail_time: to(&s.mail_time, device),
        mail_valid: to(&s.mail_valid, device),
    }
}

/// Every buffer of a store, for comparison.
fn contents(s: DeviceMemory) -> [TensorData; 5] {
    [
        s.memory.into_data(),
        s.last_update.into_data(),
        s.mail.into_data(),
        s.mail_time.into_data(),
        s.mail_valid.into_data(),
    ]
}

fn ids(values: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

#[test]
fn fetch_matches_reference_with_gradients_for_the_time_encoding() {
    let Some(gpu) = test_device() else { return };
    let gpu = gpu.autodiff();
    let cpu = Device::flex().autodiff();
    let cases = [
        (1usize, vec![3i64, 0, 3, 7, 1]),
        (3, vec![2, 2, 9, 0, 5, 5, 5]),
        (2, vec![]),
    ];
    // Each case with both clocks; ages at a different `now` per fetched node.
    for ((slots, nodes), age) in cases
        .into_iter()
        .flat_map(|c| [false, true].map(|age| (c.clone(), age)))
    {
        let s = store(10, 6, 5, slots, &gpu);
        let w = random([4], &gpu);
        let b = random([4], &gpu);
        let run = |device: &Device, fused: bool| {
            let s = store_on(&s, device);
            let (w, b) = (to(&w, device).require_grad(), to(&b, device).require_grad());
            let clock = match age {
                false => Clock::SinceUpdate,
                true => Clock::Age {
                    now: Tensor::from_floats(
                        (0..nodes.len())
                            .map(|i| 0.5 * i as f32)
                            .collect::<Vec<_>>()
                            .as_slice(),
                        device,
                    ),
                },
            };
            let nodes = ids(&nodes, device);
            let out = if fused {
                fetch(&s, nodes, w.clone(), b.clone(), clock)
            } else {
                let encoding = clock.encoding(w.clone(), b.clone(), nodes.dims()[0]);
                reference::fetch(&s, nodes, encoding)
            };
            let weights: Tensor<3> = Tensor::from_data(
                TensorData::new(
                    (0..out.input.shape().num_elements())
                        .map(|i| (i % 7) as f32 - 3.0)
                        .collect::<Vec<_>>(),
                    out.input.shape(),
                ),
                device,
            );
            let grads = (out.input.clone() * weights).sum().backward();
            let g = |t: &Tensor<1>| t.grad(&grads).map(|g| g.into_data());
            (
                out.memory.inner().into_data(),
                out.input.inner().into_data(),
                out.keep.inner().into_data(),
                g(&w),
                g(&b),
                out.time.inner().into_data(),
            )
        };
        let got = run(&gpu, true);
        let (gw, gb) = (
            got.3.expect("w has a gradient"),
            got.4.expect("b has a gradient"),
        );
        if nodes.is_empty() {
            // Empty outputs, zero gradients (flex's backward trips on empty tensors, so no
            // reference run here).
            assert_eq!(got.1.shape().to_vec(), vec![0, slots, 5 + 4]);
            let zeros = TensorData::from([0.0f32; 4]);
            gw.assert_eq(&zeros, false);
            gb.assert_eq(&zeros, false);
            continue;
        }
        let want = run(&cpu, false);
        let tol = Tolerance::<f32>::rel_abs(1e-5, 1e-5);
        got.0.assert_approx_eq::<f32>(&want.0, tol);
        got.1.assert_approx_eq::<f32>(&want.1, tol);
        got.2.assert_approx_eq::<f32>(&want.2, tol);
        got.5.assert_eq(&want.5, true);
        // The memory's time by hand: the newest mail's, else the last update.
        let host = |t: &Tensor<2>| t.to_data().try_to_vec::<f32>().expect("f32");
        let (last, mail_time, valid) = (
            s.last_update.to_data().try_to_vec::<f32>().expect("f32"),
            host(&s.mail_time),
            host(&s.mail_valid),
        );
        let by_hand: Vec<f32> = nodes
            .iter()
            .map(|&u| {
                let newest = u as usize * slots + slots - 1;
                if valid[newest] > 0.0 {
                    mail_time[newest]
                } else {
                    last[u as usize]
                }
            })
            .collect();
        assert_eq!(got.5.try_to_vec::<f32>().expect("f32"), by_hand);
        // Δt·w sums over every slot: a looser bound for the accumulated gradient.
        let loose = Tolerance::<f32>::rel_abs(1e-4, 1e-4);
        gw.assert_approx_eq::<f32>(&want.3.expect("reference w gradient"), loose);
        gb.assert_approx_eq::<f32>(&want.4.expect("reference b gradient"), loose);
    }
}

#[test]
fn update_matches_reference_latest_event_wins() {
    let Some(gpu) = test_device() else { return };
    let cpu = Device::flex();
    // Node 4 three times (times 5, 9, 9: the later 9 wins), node 1 twice (times 7, 2: 7 wins).
    let nodes = [4i64, 1, 4, 0, 1, 4, 8];
    let times = [5.0f32, 7.0, 9.0, 1.0, 2.0, 9.0, 3.0];
    for slots in [1usize, 3] {
        let s = store(9, 6, 5, slots, &gpu);
        let rows = random([nodes.len(), 6], &gpu);
        let mails = random([nodes.len(), 5], &gpu);
        let run = |device: &Device, fused: bool| {
            let s = store_on(&s, device);
            let args = (
                ids(&nodes, device),
                Tensor::<1>::from_floats(times, device),
                to(&rows, device),
                to(&mails, device),
            );
            let out = if fused {
                update(s, Writes::events(args.0, args.1, args.2, args.3))
            } else {
                reference::update(s, Writes::events(args.0, args.1, args.2, args.3))
            };
            contents(out)
        };
        let got = run(&gpu, true);
        let want = run(&cpu, false);
        for (g, w) in got.iter().zip(&want) {
            g.assert_eq(w, true);
        }
        // Spot checks against the rule itself: node 4 took row 5 (the later of the two t = 9).
        let memory: Vec<f32> = got[0].try_to_vec::<f32>().expect("f32");
        let row5: Vec<f32> = rows
            .clone()
            .narrow(0, 5, 1)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(&memory[4 * 6..5 * 6], &row5[..]);
        let last: Vec<f32> = got[1].try_to_vec::<f32>().expect("f32");
        assert_eq!((last[1], last[4], last[8]), (7.0, 9.0, 3.0));
        let valid: Vec<f32> = got[4].try_to_vec::<f32>().expect("f32");
        assert_eq!(valid[4 * slots + slots - 1], 1.0);
    }
    // An empty batch leaves the store as it was.
    let s = store(4, 3, 2, 2, &gpu);
    let before = s.memory.to_data();
    let out = update(
        s,
        Writes::events(
            ids(&[], &gpu),
            Tensor::zeros([0], &gpu),
            Tensor::zeros([0, 3], &gpu),
            Tensor::zeros([0, 2], &gpu),
        ),
    );
    out.memory.into_data().assert_eq(&before, true);
}

/// The deterministic winner rule of the reference, by hand.
#[test]
fn winners_by_hand() {
    let cpu = Device::flex();
    let w = reference::winners(
        ids(&[4, 1, 4, 0, 1, 4], &cpu),
        Tensor::from_floats([5.0, 7.0, 9.0, 1.0, 2.0, 9.0], &cpu),
    );
    w.into_data()
        .assert_eq(&TensorData::from([0.0f32, 1.0, 0.0, 1.0, 0.0, 1.0]), false);
}

/// Memory writes and mails to different nodes at different times (APAN mails its endpoints'
/// neighbours; a memory's time is that of the mail it consumed, not the event's).
#[test]
fn update_writes_memories_and_mails_separately() {
    let Some(gpu) = test_device() else { return };
    let cpu = Device::flex();
    // Memories: node 2 twice (times 4, 4: the later position wins), node 5 once.
    let (nodes, times) = ([2i64, 5, 2], [4.0f32, 1.0, 4.0]);
    // Mails: node 2 (time 6), node 7 twice (times 8, 3: 8 wins), node 0 once; no memory for 7, 0.
    let (targets, mail_times) = ([7i64, 2, 7, 0], [8.0f32, 6.0, 3.0, 9.0]);
    let slots = 2;
    let s = store(9, 3, 4, slots, &gpu);
    let rows = random([nodes.len(), 3], &gpu);
    let mails = random([targets.len(), 4], &gpu);
    let run = |device: &Device, fused: bool| {
        let writes = Writes {
            nodes: ids(&nodes, device),
            times: Tensor::from_floats(times, device),
            rows: to(&rows, device),
            targets: ids(&targets, device),
            mail_times: Tensor::from_floats(mail_times, device),
            mails: to(&mails, device),
        };
        let s = store_on(&s, device);
        let out = if fused {
            update(s, writes)
        } else {
            reference::update(s, writes)
        };
        contents(out)
    };
    let got = run(&gpu, true);
    for (g, w) in got.iter().zip(&run(&cpu, false)) {
        g.assert_eq(w, true);
    }
    let vec = |d: &TensorData| d.try_to_vec::<f32>().expect("f32");
    let before = |t: &Tensor<2>| vec(&t.to_data());
    let (memory, last, mail_time, valid) = (vec(&got[0]), vec(&got[1]), vec(&got[3]), vec(&got[4]));
    // Memory rows and times: node 2 from row 2, node 5 from row 1; node 7 untouched.
    let rows_host = before(&rows);
    assert_eq!(&memory[2 * 3..3 * 3], &rows_host[2 * 3..3 * 3]);
    assert_eq!(&memory[5 * 3..6 * 3], &rows_host[3..2 * 3]);
    assert_eq!(&memory[7 * 3..8 * 3], &before(&s.memory)[7 * 3..8 * 3]);
    let last_before = s.last_update.to_data().try_to_vec::<f32>().expect("f32");
    assert_eq!((last[2], last[5], last[7]), (4.0, 1.0, last_before[7]));
    // Mailboxes: the newest slot holds the winning mail's time; the old newest moved forward.
    let (old_time, old_valid) = (before(&s.mail_time), before(&s.mail_valid));
    for (node, time) in [(2usize, 6.0), (7, 8.0), (0, 9.0)] {
        assert_eq!(mail_time[node * slots + 1], time, "node {node}");
        assert_eq!(valid[node * slots + 1], 1.0);
        assert_eq!(mail_time[node * slots], old_time[node * slots + 1]);
        assert_eq!(valid[node * slots], old_valid[node * slots + 1]);
    }
    // Node 5 got a memory but no mail: its mailbox is as it was.
    assert_eq!(
        &mail_time[5 * slots..6 * slots],
        &old_time[5 * slots..6 * slots]
    );
}

/// Large random batches with many repeated nodes and tied times (integers 0..10, some negative
/// zero), sizes that are no multiple of a cube.
#[test]
fn update_matches_reference_on_random_batches() {
    let Some(gpu) = test_device() else { return };
    let cpu = Device::flex();
    for (batch, slots) in [(301usize, 2usize), (1_000, 1)] {
        let s = store(40, 6, 5, slots, &gpu);
        let nodes: Vec<i64> = (0..batch).map(|i| ((i * 7 + i / 3) % 40) as i64).collect();
        let times: Vec<f32> = (0..batch)
            .map(|i| match (i * 13) % 11 {
                10 => -0.0,
                t => t as f32,
            })
            .collect();
        let rows = random([batch, 6], &gpu);
        let mails = random([batch, 5], &gpu);
        let run = |device: &Device, fused: bool| {
            let s = store_on(&s, device);
            let (n, t) = (
                ids(&nodes, device),
                Tensor::<1>::from_floats(&times[..], device),
            );
            let (r, m) = (to(&rows, device), to(&mails, device));
            let out = if fused {
                update(s, Writes::events(n, t, r, m))
            } else {
                reference::update(s, Writes::events(n, t, r, m))
            };
            contents(out)
        };
        let got = run(&gpu, true);
        let want = run(&cpu, false);
        for (g, w) in got.iter().zip(&want) {
            g.assert_eq(w, false);
        }
    }
}

/// No slots on wgpu: zeros (the kernels' outputs are NaN-poisoned in test builds, so an unwritten
/// buffer would show).
#[test]
fn gathered_attention_without_slots_is_zero() {
    let Some(gpu) = test_device() else { return };
    assert_gathered_without_slots_is_zero(&gpu.autodiff());
}
