//! The flex route (host loops) against the burn-ops reference on the same device: the GRU gates
//! and the gathered attention, forward and gradients, on the shapes of the kernel tests, the time encoding forward and its
//! gradients for `w`, `b` across the range of Δt a dataset in seconds produces, several
//! parallel blocks, and empty inputs; Adam's update to the bit, and its first step by hand.
#![cfg(feature = "flex")]

mod common;

use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use common::{GATHERED_SHAPES, GRU_SHAPES, GatheredCase, GruCase};
use common::{assert_gathered_without_slots_is_zero, assert_run_close};
use mspipe_kernels::{AdamMoments, AdamScalars, adam_step};
use mspipe_kernels::{GatheredAttention, backend, gathered_attention, reference, time_encoding};

#[test]
fn flex_has_the_fused_route() {
    assert!(backend::runs_on(&Device::flex()));
    assert!(backend::runs_on(&Device::flex().autodiff()));
}

/// Δt from 0 to 3·10⁶ s (a month), a few exact multiples of π/2 and negatives; `w` as TGN
/// initialises it (1 down to 1e-9) plus noise, so phases reach 10⁶ rad.
fn time_case(n: usize, t: usize, device: &Device) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let special: Vec<f32> = [0.0, -5.0, std::f32::consts::FRAC_PI_2, 1.0e-3]
        .into_iter()
        .take(n)
        .collect();
    let rest = Tensor::random(
        [n - special.len()],
        Distribution::Uniform(0.0, 3.0e6),
        device,
    );
    let dt = Tensor::cat(vec![Tensor::from_floats(&special[..], device), rest], 0);
    let w: Vec<f32> = (0..t)
        .map(|i| 10f32.powf(-9.0 * i as f32 / t.max(2) as f32) * (1.0 + 0.01 * i as f32))
        .collect();
    let b = Tensor::random([t], Distribution::Uniform(-1.0, 1.0), device);
    (dt, Tensor::from_floats(&w[..], device), b)
}

#[test]
fn time_encoding_matches_reference() {
    let device = Device::flex();
    for (n, t) in [(1, 1), (37, 7), (1_000, 100), (0, 5)] {
        let (dt, w, b) = time_case(n, t, &device);
        let fused = time_encoding(dt.clone(), w.clone(), b.clone());
        assert_eq!(fused.dims(), [n, t]);
        // Both sides round the same f32 phase; the cosines differ by a few ulps at most.
        fused.into_data().assert_approx_eq::<f32>(
            &reference::time_encoding(dt, w, b).into_data(),
            Tolerance::absolute(1e-6),
        );
    }
}

/// ∂/∂w_j = Σ_i −sin(Δt_i·w_j + b_j)·g_ij·Δt_i and ∂/∂b_j = Σ_i −sin(…)·g_ij in f64, each with
/// Σ_i |term|: the scale that bounds the rounding error of an f32 sum in any order.
fn exact_grads(dt: &[f32], w: &[f32], b: &[f32], g: &[f32]) -> [Vec<(f64, f64)>; 2] {
    let t = w.len();
    let (mut dw, mut db) = (vec![(0.0, 0.0); t], vec![(0.0, 0.0); t]);
    for (i, &x) in dt.iter().enumerate() {
        for j in 0..t {
            let phase = x * w[j] + b[j]; // rounded to f32, as both implementations do
            let d = -f64::from(phase).sin() * f64::from(g[i * t + j]);
            for (acc, term) in [(&mut dw[j], d * f64::from(x)), (&mut db[j], d)] {
                acc.0 += term;
                acc.1 += term.abs();
            }
        }
    }
    [dw, db]
}

/// The fused gradients and the reference's, each within 1e-4 of Σ|term| of the exact sums (Δt up
/// to 3·10⁶ makes ∂/∂w a sum of large terms that can cancel, so a plain relative bound on the
/// result would be meaningless).
#[test]
fn time_encoding_gradients_match_exact_sums() {
    let device = Device::flex().autodiff();
    for (n, t) in [(1, 1), (37, 7), (1_000, 100), (0, 5)] {
        let (dt, w, b) = time_case(n, t, &device);
        let g = Tensor::<2>::random([n, t], Distribution::Uniform(-1.0, 1.0), &device);
        let values = |x: Tensor<1>| x.into_data().try_to_vec::<f32>().expect("f32");
        let exact = exact_grads(
            &values(dt.clone()),
            &values(w.clone()),
            &values(b.clone()),
            &g.clone().into_data().try_to_vec::<f32>().expect("f32"),
        );
        for fused in [true, false] {
            let (w, b) = (w.clone().require_grad(), b.clone().require_grad());
            let phi = if fused {
                time_encoding(dt.clone(), w.clone(), b.clone())
            } else {
                reference::time_encoding(dt.clone(), w.clone(), b.clone())
            };
            if n == 0 && !fused {
                continue; // flex's own backward trips on empty tensors
            }
            let grads = (phi * g.clone()).sum().backward();
            for (param, exact) in [(&w, &exact[0]), (&b, &exact[1])] {
                let got = values(param.grad(&grads).expect("a gradient"));
                assert_eq!(got.len(), t);
                for (j, (&got, &(sum, scale))) in got.iter().zip(exact).enumerate() {
                    let err = (f64::from(got) - sum).abs();
                    assert!(
                        err <= 1e-4 * scale + 1e-6,
                        "fused {fused}, n {n}, column {j}: {got} vs {sum} (Σ|term| {scale})"
                    );
                }
            }
        }
    }
}

/// A tracked encoding (whose forward also keeps the sine for its backward) has the untracked
/// one's values to the bit: training and evaluation encode alike.
#[test]
fn tracked_encoding_matches_untracked_to_the_bit() {
    let device = Device::flex().autodiff();
    let (dt, w, b) = time_case(1_000, 100, &device);
    let bits = |x: Tensor<2>| -> Vec<u32> {
        let values = x.into_data().try_to_vec::<f32>().expect("f32");
        values.iter().map(|v| v.to_bits()).collect()
    };
    let plain = bits(time_encoding(dt.clone(), w.clone(), b.clone()));
    let tracked = bits(time_encoding(dt, w.require_grad(), b.require_grad()));
    assert_eq!(plain, tracked);
}

/// The fixed encoding: untracked parameters get no gradient and no backward runs.
#[test]
fn untracked_parameters_get_no_gradient() {
    let device = Device::flex().autodiff();
    let (dt, w, b) = time_case(10, 4, &device);
    let x = Tensor::<1>::ones([4], &device).require_grad();
    let phi = time_encoding(dt, w.clone(), b.clone()) * x.clone().unsqueeze();
    let grads = phi.sum().backward();
    assert!(w.grad(&grads).is_none() && b.grad(&grads).is_none());
    assert!(x.grad(&grads).is_some());
}

#[test]
fn gru_gates_match_reference() {
    let device = Device::flex().autodiff();
    for shape in GRU_SHAPES {
        let case = GruCase::new(shape, &device);
        let (out, grads) = case.run(&device, true);
        assert_eq!(out.shape().to_vec(), shape.to_vec());
        if shape[0] == 0 {
            assert!(grads.iter().flatten().all(|g| g.num_elements() == 0));
            continue;
        }
        assert_run_close((out, grads), case.run(&device, false), shape[0]);
    }
}

#[test]
fn gathered_attention_matches_reference() {
    let device = Device::flex().autodiff();
    for shape in GATHERED_SHAPES {
        let case = GatheredCase::new(shape, &device);
        let (out, grads) = case.run(&device, true);
        let [n, _, h, rows_a, ca, ce, rows_b, cb] = shape;
        assert_eq!(out.shape().to_vec(), vec![h, n, ca + ce + cb]);
        if n == 0 {
            // Nothing attended: zero gradients of the inputs' shapes.
            let sizes = [0, rows_a * ca, rows_b * cb]; // q is [h, 0, c]
            for (g, size) in grads.iter().zip(sizes) {
                let g = g.as_ref().expect("a gradient");
                assert!(g.num_elements() == size && g.iter::<f32>().all(|x| x == 0.0));
            }
            continue;
        }
        assert_run_close((out, grads), case.run(&device, false), n);
    }
}

/// The output and every gradient are the same bits on one thread as on three: roots go to tasks in
/// fixed blocks and each table row sums its slots in slot order, whichever task owns it.
#[test]
fn gathered_attention_same_bits_on_any_thread_count() {
    let device = Device::flex().autodiff();
    let case = GatheredCase::new([150, 10, 2, 60, 37, 3, 400, 21], &device);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        let (out, grads) = pool.install(|| case.run(&device, true));
        let grads = grads.map(|g| {
            g.expect("a gradient")
                .iter::<f32>()
                .map(f32::to_bits)
                .collect::<Vec<_>>()
        });
        (
            out.iter::<f32>().map(f32::to_bits).collect::<Vec<_>>(),
            grads,
        )
    };
    assert_eq!(on(1), on(3));
}

/// Slots whose rows are all their own (both tables zero wide), over two blocks of roots: the
/// output and the query's gradient as the reference's; the tables' gradients, if any, empty.
#[test]
fn gathered_attention_of_own_rows_only_matches_reference() {
    let device = Device::flex().autodiff();
    let case = GatheredCase::new([70, 3, 2, 4, 0, 5, 3, 0], &device);
    let ((out, [dq, da, db]), (want, [want_dq, ..])) =
        (case.run(&device, true), case.run(&device, false));
    let [dq, want_dq] = [dq, want_dq].map(|g| g.expect("a query gradient"));
    out.assert_approx_eq::<f32>(&want, Tolerance::rel_abs(1e-5, 1e-6));
    dq.assert_approx_eq::<f32>(&want_dq, Tolerance::rel_abs(1e-5, 1e-5));
    for g in [da, db].into_iter().flatten() {
        assert_eq!(g.num_elements(), 0);
    }
}

#[test]
fn gathered_attention_without_slots_is_zero() {
    assert_gathered_without_slots_is_zero(&Device::flex().autodiff());
}

/// Attention dropout by hand: one root, two real slots with equal scores (q = 0), one head, so the
/// softmax gives ½ each. Dropping slot 1 and scaling slot 0 by 1/(1 − ½) = 2 leaves x₀ (½·2·x₀):
/// the dropped slot stays in the denominator, as `torch.nn.Dropout` on the weights does. Slot 0's
/// row gets the output's whole gradient (weight 1), slot 1's none.
#[test]
fn gathered_attention_scale_is_dropout_on_the_weights() {
    let device = Device::flex().autodiff();
    let q: Tensor<3> = Tensor::zeros([1, 1, 2], &device).require_grad();
    let a: Tensor<2> = Tensor::from_floats([[1.0, 2.0], [3.0, 5.0]], &device).require_grad();
    let (ia, ib) = (
        Tensor::<1, Int>::from_ints([0, 1], &device),
        Tensor::<1, Int>::from_ints([0, 0], &device),
    );
    let b: Tensor<2> = Tensor::zeros([1, 0], &device);
    let keep: Tensor<2> = Tensor::ones([1, 2], &device);
    let scale: Tensor<3> = Tensor::from_floats([[[2.0, 0.0]]], &device);
    let out = gathered_attention(GatheredAttention {
        q,
        a: a.clone(),
        ia,
        e: None,
        b,
        ib,
        keep,
        scale,
    });
    out.to_data()
        .assert_eq(&TensorData::from([[[1.0f32, 2.0]]]), false);
    let grads = out.sum().backward();
    a.grad(&grads)
        .expect("a gradient")
        .into_data()
        .assert_eq(&TensorData::from([[1.0f32, 1.0], [0.0, 0.0]]), false);
}

/// Padded slots' rows are never read: two roots of three slots, the padded ones pointing at table
/// rows only they use; those rows holding NaN give the same bits in the output and every gradient
/// as holding zeros, and the rows get no gradient.
#[test]
fn gathered_attention_never_reads_padded_rows() {
    let device = Device::flex().autodiff();
    let run = |fill: f32| {
        let q: Tensor<3> = common::random([2, 2, 5], &device).require_grad();
        // Random rows, the last (the padded slots' alone) set to `fill`.
        let table = |shape: [usize; 2]| {
            let mut x: Vec<f32> = common::random(shape, &device).into_data().iter().collect();
            x[(shape[0] - 1) * shape[1]..].fill(fill);
            Tensor::<2>::from_data(TensorData::new(x, shape), &device).require_grad()
        };
        let (a, b) = (table([3, 3]), table([4, 2]));
        let out = gathered_attention(GatheredAttention {
            q: q.clone(),
            a: a.clone(),
            ia: Tensor::from_ints([0, 1, 2, 1, 2, 2], &device),
            e: None,
            b: b.clone(),
            ib: Tensor::from_ints([0, 1, 3, 2, 3, 3], &device),
            keep: Tensor::from_floats([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], &device),
            scale: Tensor::ones([2, 2, 3], &device),
        });
        let grads = (out.clone() * out.clone().detach()).sum().backward();
        let grad = |x: &Tensor<2>| bits(&x.grad(&grads).expect("a gradient"));
        let dq = bits(&q.grad(&grads).expect("a gradient"));
        (bits(&out), dq, grad(&a), grad(&b))
    };
    let seeded = |fill: f32| {
        device.seed(11);
        run(fill)
    };
    let (clean, poisoned) = (seeded(0.0), seeded(f32::NAN));
    assert_eq!(clean, poisoned);
    assert!(clean.2[6..].iter().chain(&clean.3[6..]).all(|&g| g == 0));
}

fn bits<const D: usize>(t: &Tensor<D>) -> Vec<u32> {
    t.to_data().iter::<f32>().map(f32::to_bits).collect()
}

/// Four steps of a parameter that spans several parallel blocks and of a small one, from the
/// first step on: parameter and both moments the reference's to the bit after every step.
#[test]
fn adam_step_matches_reference_to_the_bit() {
    let device = Device::flex();
    for shape in [[300, 100], [1, 7]] {
        let mut fused = (common::random(shape, &device), None::<AdamMoments<2>>);
        let mut plain = fused.clone();
        for time in 1..=4 {
            // Gradients of mixed scale, some exactly zero.
            let grad = common::random(shape, &device).powi_scalar(3) * (0.1 * time as f32);
            let s = AdamScalars::new(0.9, 0.999, 1e-5, time, 1e-3);
            let (p, m) = adam_step(fused.0, grad.clone(), fused.1, s);
            fused = (p, Some(m));
            let (p, m) = reference::adam_step(plain.0, grad, plain.1, s);
            plain = (p, Some(m));
            let (Some(f), Some(r)) = (&fused.1, &plain.1) else {
                unreachable!("both hold moments after a step")
            };
            assert_eq!(bits(&fused.0), bits(&plain.0), "parameter, step {time}");
            assert_eq!(bits(&f.first), bits(&r.first), "first moment, step {time}");
            assert_eq!(
                bits(&f.second),
                bits(&r.second),
                "second moment, step {time}"
            );
        }
    }
}

/// p = 1, g = 0.5, lr = 0.1: m = 0.05, v = 2.5e-4, and the bias-corrected step is
/// lr·m̂/(√v̂ + ε) = 0.1·0.5/(0.5 + 1e-5) → p ≈ 0.90000200.
#[test]
fn adam_first_step_by_hand() {
    let device = Device::flex();
    let s = AdamScalars::new(0.9, 0.999, 1e-5, 1, 0.1);
    let (p, m) = adam_step(
        Tensor::<1>::from_floats([1.0], &device),
        Tensor::from_floats([0.5], &device),
        None,
        s,
    );
    let tol = Tolerance::absolute(1e-6);
    p.into_data()
        .assert_approx_eq::<f32>(&TensorData::from([1.0 - 0.05 / 0.50001]), tol);
    m.first
        .into_data()
        .assert_approx_eq::<f32>(&TensorData::from([0.05]), tol);
    m.second
        .into_data()
        .assert_approx_eq::<f32>(&TensorData::from([2.5e-4]), tol);
}

#[test]
fn select_rows_by_hand() {
    let device = Device::flex().autodiff();
    let table = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], &device);
    let table = table.require_grad();
    let index = Tensor::<1, Int>::from_ints([2, 0, 2], &device);
    let out = mspipe_kernels::select_rows(table.clone(), index);
    let expected = TensorData::from([[5.0f32, 6.0], [1.0, 2.0], [5.0, 6.0]]);
    assert_eq!(out.to_data(), expected);
    // Output gradient rows 1, 10, 100: row 2 of the table gets 1 + 100, row 0 gets 10, row 1
    // nothing.
    let g = Tensor::<2>::from_floats([[1.0, 1.0], [10.0, 10.0], [100.0, 100.0]], &device);
    let grads = (out * g).sum().backward();
    let dt = table.grad(&grads).expect("tracked");
    assert_eq!(
        dt.into_data(),
        TensorData::from([[10.0f32, 10.0], [0.0, 0.0], [101.0, 101.0]])
    );
}

/// A table row's gradient is its gradient rows added to zero: a single −0 arrives as +0, as
/// through burn's `select`, and rows no index picks are zero.
#[test]
fn select_rows_gradient_adds_to_zero() {
    let grad_bits = |ours: bool| {
        let device = Device::flex().autodiff();
        let table = Tensor::<2>::zeros([3, 2], &device).require_grad();
        let index = Tensor::<1, Int>::from_ints([0, 0, 2], &device);
        let out = if ours {
            mspipe_kernels::select_rows(table.clone(), index)
        } else {
            table.clone().select(0, index)
        };
        let g = Tensor::<2>::from_floats([[-0.0, 1.0], [-0.0, 2.0], [-0.0, -0.0]], &device);
        let grads = (out * g).sum().backward();
        bits(&table.grad(&grads).expect("tracked"))
    };
    let zero = 0.0f32.to_bits();
    let three = 3.0f32.to_bits();
    assert_eq!(grad_bits(true), vec![zero, three, zero, zero, zero, zero]);
    assert_eq!(grad_bits(true), grad_bits(false));
}

/// Two selections from one table (as the link decoder's sources and destinations), by
/// `select` and by burn's own: the outputs and the table's gradient.
fn two_selections(
    select: fn(Tensor<2>, Tensor<1, Int>) -> Tensor<2>,
    [rows, d, n]: [usize; 3],
) -> [Vec<u32>; 3] {
    let device = Device::flex().autodiff();
    // Fixed values (the backend's generator is shared by the tests running beside this one).
    let wave = |len: usize, phase: f32| -> Vec<f32> {
        (0..len).map(|i| (i as f32 * 0.37 + phase).sin()).collect()
    };
    let table = Tensor::<2>::from_data(TensorData::new(wave(rows * d, 0.0), [rows, d]), &device);
    let table = table.require_grad();
    let index = |seed: u64| {
        let picks: Vec<i64> = (0..n as u64)
            .map(|i| ((i * 2_654_435_761 + seed) % rows.max(1) as u64) as i64)
            .collect();
        Tensor::<1, Int>::from_ints(&picks[..], &device)
    };
    let (a, b) = (
        select(table.clone(), index(1)),
        select(table.clone(), index(7)),
    );
    let g = Tensor::<2>::from_data(TensorData::new(wave(n * d, 1.0), [n, d]), &device);
    let grads = (a.clone() * g.clone() + b.clone() * g.neg())
        .sum()
        .backward();
    [
        bits(&a),
        bits(&b),
        bits(&table.grad(&grads).expect("tracked")),
    ]
}

#[test]
fn select_rows_same_bits_as_burns_select() {
    let burns = |t: Tensor<2>, i: Tensor<1, Int>| t.select(0, i);
    // The last two split across the pool, forward and backward; indices repeat.
    for shape in [[3, 2, 5], [4, 1, 0], [1507, 100, 1200], [700, 100, 3000]] {
        let ours = two_selections(mspipe_kernels::select_rows, shape);
        assert_eq!(ours, two_selections(burns, shape), "{shape:?}");
    }
}

/// The table's gradient when the selection is the right part of a concatenation, as a layer's
/// root rows beside its neighbours' sums: the output's gradient arrives as a range of a wider
/// gradient's columns. Same bits as burn's `select` and `cat`.
#[test]
fn select_rows_gradient_through_a_concatenation() {
    let table_grad = |ours: bool, [rows, d, n]: [usize; 3]| {
        let device = Device::flex().autodiff();
        let values = |len: usize, phase: f32| -> Vec<f32> {
            (0..len).map(|i| (i as f32 * 0.61 + phase).cos()).collect()
        };
        let table =
            Tensor::<2>::from_data(TensorData::new(values(rows * d, 0.0), [rows, d]), &device)
                .require_grad();
        let picks: Vec<i64> = (0..n as i64).map(|i| (i * 7 + 3) % rows as i64).collect();
        let index = Tensor::<1, Int>::from_ints(&picks[..], &device);
        let left = Tensor::<2>::from_data(TensorData::new(values(n * 3, 2.0), [n, 3]), &device);
        let both = if ours {
            let picked = mspipe_kernels::select_rows(table.clone(), index);
            mspipe_kernels::concat_columns(left, picked)
        } else {
            Tensor::cat(vec![left, table.clone().select(0, index)], 1)
        };
        let g = Tensor::<2>::from_data(
            TensorData::new(values(n * (d + 3), 1.0), [n, d + 3]),
            &device,
        );
        let grads = (both * g).sum().backward();
        bits(&table.grad(&grads).expect("tracked"))
    };
    // The last splits across the pool.
    for shape in [[5, 2, 9], [1507, 100, 1800]] {
        assert_eq!(
            table_grad(true, shape),
            table_grad(false, shape),
            "{shape:?}"
        );
    }
}

#[test]
#[should_panic(expected = "select_rows: row 3 of a table of 3")]
fn select_rows_out_of_range_panics() {
    let device = Device::flex();
    let table = Tensor::<2>::zeros([3, 2], &device);
    mspipe_kernels::select_rows(table, Tensor::from_ints([0, 3], &device));
}

/// Fixed values for the masked-row tests.
fn wave<const D: usize>(shape: [usize; D], phase: f32, device: &Device) -> Tensor<D> {
    let n = shape.iter().product::<usize>();
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.61 + phase).sin()).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Every third row kept, as 0/1 floats.
fn every_third(n: usize, device: &Device) -> Tensor<1> {
    let v: Vec<f32> = (0..n).map(|i| f32::from(i % 3 == 0)).collect();
    Tensor::from_floats(&v[..], device)
}

/// Values equal (a zero's sign aside: `==` on f32).
fn same_values<const D: usize>(a: Tensor<D>, b: Tensor<D>) {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_data(), b.to_data());
    let (a, b) = (a.iter::<f32>(), b.iter::<f32>());
    for (i, (x, y)) in a.zip(b).enumerate() {
        assert!(x == y, "element {i}: {x} ≠ {y}");
    }
}

#[test]
fn rows_where_matches_the_blend_it_replaces() {
    let device = Device::flex().autodiff();
    for [n, d] in [[5, 3], [0, 4], [1507, 100]] {
        let keep = every_third(n, &device);
        let a = wave([n, d], 0.0, &device).require_grad();
        let b = wave([n, d], 2.0, &device).require_grad();
        let g = wave([n, d], 1.0, &device);
        let run = |out: Tensor<2>| {
            let grads = (out.clone() * g.clone()).sum().backward();
            let (da, db) = (a.grad(&grads), b.grad(&grads));
            (out, da.expect("tracked"), db.expect("tracked"))
        };
        let ours = run(mspipe_kernels::rows_where(
            keep.clone(),
            a.clone(),
            b.clone(),
        ));
        let k: Tensor<2> = keep.clone().unsqueeze_dim(1);
        let blend = run(a.clone() * k.clone() + b.clone() * (k.neg() + 1.0));
        same_values(ours.0, blend.0);
        same_values(ours.1, blend.1);
        same_values(ours.2, blend.2);
    }
}

#[test]
fn rows_where_by_hand() {
    let device = Device::flex();
    let keep = Tensor::<1>::from_floats([1.0, 0.0], &device);
    let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
    let b = Tensor::<2>::from_floats([[5.0, 6.0], [7.0, 8.0]], &device);
    let out = mspipe_kernels::rows_where(keep, a, b);
    assert_eq!(
        out.into_data(),
        TensorData::from([[1.0f32, 2.0], [7.0, 8.0]])
    );
}

#[test]
fn add_bias_where_matches_the_product_it_replaces() {
    let device = Device::flex().autodiff();
    for [n, d] in [[5, 3], [0, 4], [1790, 100]] {
        let keep = every_third(n, &device);
        let x = wave([n, d], 0.0, &device).require_grad();
        let bias = wave([d], 3.0, &device).require_grad();
        let g = wave([n, d], 1.0, &device);
        let run = |out: Tensor<2>| {
            let grads = (out.clone() * g.clone()).sum().backward();
            let (dx, db) = (x.grad(&grads), bias.grad(&grads));
            (out, dx.expect("tracked"), db.expect("tracked"))
        };
        let ours = run(mspipe_kernels::add_bias_where(
            x.clone(),
            bias.clone(),
            keep.clone(),
        ));
        let k: Tensor<2> = keep.clone().unsqueeze_dim(1);
        let product = run(x.clone() + bias.clone().unsqueeze::<2>() * k);
        same_values(ours.0, product.0);
        same_values(ours.1, product.1);
        same_values(ours.2, product.2);
    }
}

#[test]
fn add_bias_where_by_hand() {
    let device = Device::flex().autodiff();
    let keep = Tensor::<1>::from_floats([0.0, 1.0, 1.0], &device);
    let x = Tensor::<2>::from_floats([[1.0], [2.0], [3.0]], &device);
    let bias = Tensor::<1>::from_floats([10.0], &device).require_grad();
    let out = mspipe_kernels::add_bias_where(x, bias.clone(), keep);
    assert_eq!(out.to_data(), TensorData::from([[1.0f32], [12.0], [13.0]]));
    // ∂/∂bias of Σ out·[1, 2, 4]: the kept rows' 2 + 4.
    let g = Tensor::<2>::from_floats([[1.0], [2.0], [4.0]], &out.device());
    let grads = (out * g).sum().backward();
    let db = bias.grad(&grads).expect("tracked");
    assert_eq!(db.into_data(), TensorData::from([6.0f32]));
}

#[test]
fn rnn_gates_match_tanh_of_the_sum() {
    let device = Device::flex().autodiff();
    for [n, d] in [[3, 2], [0, 5], [1507, 100]] {
        let gi = (wave([n, d], 0.0, &device) * 4.0).require_grad();
        let gh = wave([n, d], 2.0, &device).require_grad();
        let g = wave([n, d], 1.0, &device);
        let out = mspipe_kernels::rnn_gates(gi.clone(), gh.clone());
        let grads = (out.clone() * g.clone()).sum().backward();
        let [a, b, y, g] =
            [&gi, &gh, &out, &g].map(|t| t.to_data().try_to_vec::<f32>().expect("f32"));
        let (dgi, dgh) = (
            gi.grad(&grads).expect("tracked"),
            gh.grad(&grads).expect("tracked"),
        );
        let [dgi, dgh] = [dgi, dgh].map(|t| t.to_data().try_to_vec::<f32>().expect("f32"));
        for i in 0..a.len() {
            let exact = f64::from(a[i] + b[i]).tanh();
            assert!(
                (f64::from(y[i]) - exact).abs() < 4e-7,
                "{i}: {} vs {exact}",
                y[i]
            );
            // ∂/∂gi = ∂/∂gh = g·(1 − h'²), of the output as computed.
            let want = g[i] * (1.0 - y[i] * y[i]);
            assert_eq!((dgi[i], dgh[i]), (want, want), "{i}");
        }
    }
}

#[test]
fn concat_columns_same_bits_as_burns_cat() {
    let device = Device::flex().autodiff();
    for [n, ca, cb] in [[3, 2, 1], [0, 2, 2], [4, 0, 3], [15_070, 200, 100]] {
        let a = wave([n, ca], 0.0, &device).require_grad();
        let b = wave([n, cb], 2.0, &device).require_grad();
        let g = wave([n, ca + cb], 1.0, &device);
        let run = |out: Tensor<2>| {
            let grads = (out.clone() * g.clone()).sum().backward();
            // burn's `cat` leaves a zero-wide input out (no gradient); ours gives it an empty one.
            let grad = |t: &Tensor<2>| t.grad(&grads).map(|g| bits(&g)).unwrap_or_default();
            (bits(&out), grad(&a), grad(&b))
        };
        let ours = run(mspipe_kernels::concat_columns(a.clone(), b.clone()));
        assert_eq!(
            ours,
            run(Tensor::cat(vec![a.clone(), b.clone()], 1)),
            "{n}×{ca}+{cb}"
        );
    }
}

#[test]
#[should_panic(expected = "concat_columns: 2 rows beside 3")]
fn concat_columns_of_different_rows_panics() {
    let device = Device::flex();
    let (a, b) = (
        Tensor::<2>::zeros([2, 1], &device),
        Tensor::<2>::zeros([3, 1], &device),
    );
    mspipe_kernels::concat_columns(a, b);
}

/// Values within `tol` of each other, relative to the larger magnitude (and 1).
fn close_values<const D: usize>(a: Tensor<D>, b: Tensor<D>, tol: f32, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let (a, b) = (a.to_data(), b.to_data());
    for (i, (x, y)) in a.iter::<f32>().zip(b.iter::<f32>()).enumerate() {
        let scale = 1f32.max(x.abs()).max(y.abs());
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}, element {i}: {x} vs {y}"
        );
    }
}

#[test]
fn layer_norm_matches_burns() {
    let device = Device::flex().autodiff();
    for [n, d] in [[5, 3], [0, 4], [1, 1], [1800, 100], [33, 172]] {
        // Row 0 constant (a new node's zero memory), row 1 nearly so (tiny values, far below ε:
        // a row near a large constant would test f32's cancellation, not the operation).
        let mut v: Vec<f32> = (wave([n, d], 0.3, &device) * 4.0 + 1.5)
            .into_data()
            .iter::<f32>()
            .collect();
        for (i, x) in v.iter_mut().enumerate().take(2 * d) {
            *x = if i < d { 0.0 } else { 1e-4 * (i as f32).sin() };
        }
        let x = Tensor::<2>::from_data(TensorData::new(v, [n, d]), &device).require_grad();
        let gamma = wave([d], 1.0, &device).require_grad();
        let beta = wave([d], 2.0, &device).require_grad();
        let g = wave([n, d], 0.7, &device);
        let run = |out: Tensor<2>| {
            let grads = (out.clone() * g.clone()).sum().backward();
            let grad = |t: &Tensor<2>| t.grad(&grads).expect("tracked");
            let grad1 = |t: &Tensor<1>| t.grad(&grads).expect("tracked");
            (out, grad(&x), grad1(&gamma), grad1(&beta))
        };
        let ours = run(mspipe_kernels::layer_norm(
            x.clone(),
            gamma.clone(),
            beta.clone(),
            1e-5,
        ));
        let burns = run(burn::tensor::module::layer_norm(
            x.clone(),
            gamma.clone(),
            Some(beta.clone()),
            1e-5,
        ));
        let what = |t: &str| format!("[{n}, {d}] {t}");
        close_values(ours.0, burns.0, 1e-5, &what("output"));
        close_values(ours.1, burns.1, 1e-4, &what("dx"));
        close_values(ours.2, burns.2, 1e-4, &what("dgamma"));
        close_values(ours.3, burns.3, 1e-5, &what("dbeta"));
    }
}

#[test]
fn layer_norm_by_hand() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_floats([[1.0, 2.0, 3.0]], &device).require_grad();
    let gamma = Tensor::<1>::from_floats([1.0, 1.0, 2.0], &device).require_grad();
    let beta = Tensor::<1>::from_floats([0.0, 1.0, 0.0], &device).require_grad();
    let out = mspipe_kernels::layer_norm(x.clone(), gamma.clone(), beta.clone(), 0.0);
    // Mean 2, variance 2/3: x̂ = (−s, 0, s) with s = √1.5, the reciprocal deviation.
    let s = 1.5f32.sqrt();
    let grads = out.clone().sum().backward();
    let values = |t: Tensor<2>| t.into_data().iter::<f32>().collect::<Vec<_>>();
    let values1 = |t: Tensor<1>| t.into_data().iter::<f32>().collect::<Vec<_>>();
    let near = |got: Vec<f32>, want: [f32; 3]| {
        let ok = got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6);
        assert!(ok, "{got:?} vs {want:?}");
    };
    near(values(out), [-s, 1.0, 2.0 * s]);
    // ∂beta = 1 per column; ∂gamma = x̂; with ĝ = gamma = (1, 1, 2): mean ĝ = 4/3,
    // mean ĝ·x̂ = s/3, ∂x = s·(ĝ − 4/3 − x̂·s/3) = (s/6, −s/3, s/6).
    near(values1(beta.grad(&grads).expect("tracked")), [1.0; 3]);
    near(values1(gamma.grad(&grads).expect("tracked")), [-s, 0.0, s]);
    near(
        values(x.grad(&grads).expect("tracked")),
        [s / 6.0, -s / 3.0, s / 6.0],
    );
}
