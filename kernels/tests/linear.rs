//! The linear layer on flex (`mspipe_kernels::linear`) against burn's own on the same device:
//! forward and every gradient the same to the bit (the same GEMM calls, split by output rows), on a hand-worked case,
//! on shapes large enough to split across threads, and with only some inputs tracked; a layer
//! with one output (dot products) and batches of small products (plain loops) within rounding.
#![cfg(feature = "flex")]

use burn::prelude::*;
use burn::tensor::module::linear as burn_linear;
use mspipe_kernels::linear;

/// A tensor of `shape` with values in (−scale, scale) from a generator of this test's own (the
/// backend's is one per process, and the tests run side by side).
fn filled<const D: usize>(shape: [usize; D], seed: u64, scale: f32, device: &Device) -> Tensor<D> {
    let n = shape.iter().product::<usize>();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn bits<const D: usize>(t: Tensor<D>) -> Vec<u32> {
    values(t).into_iter().map(f32::to_bits).collect()
}

#[test]
fn hand_worked_layer_and_gradients() {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_floats([[1.0, 2.0]], &device).require_grad();
    let w = Tensor::<2>::from_floats([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]], &device).require_grad();
    let b = Tensor::<1>::from_floats([0.5, -1.0, 0.0], &device).require_grad();
    let y = linear(x.clone(), w.clone(), b.clone());
    assert_eq!(values(y.clone()), [1.5, 1.0, 8.0]);
    // With ∂L/∂y = 1: ∂x = rows of w summed, ∂w = x per column, ∂b = 1.
    let grads = y.sum().backward();
    assert_eq!(values(x.grad(&grads).expect("tracked")), [3.0, 4.0]);
    let dw = values(w.grad(&grads).expect("tracked"));
    assert_eq!(dw, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    assert_eq!(values(b.grad(&grads).expect("tracked")), [1.0, 1.0, 1.0]);
}

/// Forward and the gradients of whichever of `x`, `w`, `b` are tracked, for `linear` and for
/// burn's, under the same output gradient.
fn run(
    layer: fn(Tensor<2>, Tensor<2>, Tensor<1>) -> Tensor<2>,
    [n, input, out]: [usize; 3],
    tracked: [bool; 3],
    seed: u64,
) -> Vec<Vec<u32>> {
    let device = Device::flex().autodiff();
    let track = |t: Tensor<2>, on: bool| if on { t.require_grad() } else { t };
    let x = track(filled([n, input], seed, 1.0, &device), tracked[0]);
    let w = track(filled([input, out], seed + 1, 0.1, &device), tracked[1]);
    let b = filled([out], seed + 2, 1.0, &device);
    let b = if tracked[2] { b.require_grad() } else { b };
    let g = filled([n, out], seed + 3, 1.0, &device);
    let y = layer(x.clone(), w.clone(), b.clone());
    let grads = (y.clone() * g).sum().backward();
    let mut all = vec![bits(y)];
    all.extend(x.grad(&grads).map(bits));
    all.extend(w.grad(&grads).map(bits));
    all.extend(b.grad(&grads).map(bits));
    all
}

fn burns(x: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
    burn_linear(x, w, Some(b))
}

#[test]
fn same_bits_as_burns_linear() {
    // The last two split across rayon's pool (m·k·n above flex's threshold), as the model's do.
    for (seed, shape) in [
        [7, 5, 3],
        [1, 1, 1],
        [0, 4, 3],
        [257, 100, 300],
        [1507, 300, 300],
    ]
    .into_iter()
    .enumerate()
    {
        let ours = run(linear, shape, [true; 3], seed as u64);
        assert_eq!(ours.len(), 4, "{shape:?}: output and three gradients");
        assert_eq!(ours, run(burns, shape, [true; 3], seed as u64), "{shape:?}");
    }
}

/// A layer with one output (the link predictor's last) runs as dot products, not the GEMM: its
/// output and gradients within f32 rounding of burn's, whose GEMM adds in another order.
#[test]
fn one_output_column_within_rounding_of_burns() {
    for (seed, shape) in [[1200, 100, 1], [3, 17, 1], [40, 1, 1]]
        .into_iter()
        .enumerate()
    {
        let ours = run(linear, shape, [true; 3], seed as u64);
        let theirs = run(burns, shape, [true; 3], seed as u64);
        let [n, input, _] = shape;
        assert_eq!(
            ours.iter().map(Vec::len).collect::<Vec<_>>(),
            [n, n * input, input, 1]
        );
        for (which, (ours, theirs)) in ["y", "dx", "dw", "db"].iter().zip(ours.iter().zip(&theirs))
        {
            for (o, t) in ours.iter().zip(theirs) {
                let (o, t) = (f32::from_bits(*o), f32::from_bits(*t));
                // Sums of up to 1,200 terms of magnitude ≤ 1: a few ulps of the sum's scale.
                assert!(
                    (o - t).abs() <= 1e-5 * t.abs().max(1.0),
                    "{shape:?} {which}: {o} vs {t}"
                );
            }
        }
    }
}

#[test]
fn only_tracked_inputs_get_gradients() {
    for tracked in [
        [false, true, true],
        [true, false, false],
        [false, false, true],
    ] {
        let ours = run(linear, [33, 20, 10], tracked, 7);
        let count = tracked.iter().filter(|&&t| t).count();
        assert_eq!(ours.len(), 1 + count, "{tracked:?}");
        assert_eq!(ours, run(burns, [33, 20, 10], tracked, 7), "{tracked:?}");
    }
}

/// `[a ‖ b]·w + bias` by `linear_of_columns` and by burn's layer on burn's concatenation: the
/// output and the gradients of whichever of `a` and `b` are tracked (`w` and `bias` always are).
fn run_columns(ours: bool, [n, ca, cb, out]: [usize; 4], tracked: [bool; 2]) -> Vec<Vec<u32>> {
    let device = Device::flex().autodiff();
    let track = |t: Tensor<2>, on: bool| if on { t.require_grad() } else { t };
    let a = track(filled([n, ca], 31, 1.0, &device), tracked[0]);
    let b = track(filled([n, cb], 32, 1.0, &device), tracked[1]);
    let w = filled([ca + cb, out], 33, 0.1, &device).require_grad();
    let bias = filled([out], 34, 1.0, &device).require_grad();
    let g = filled([n, out], 35, 1.0, &device);
    let y = match ours {
        true => mspipe_kernels::linear_of_columns(a.clone(), b.clone(), w.clone(), bias.clone()),
        false => burn_linear(
            Tensor::cat(vec![a.clone(), b.clone()], 1),
            w.clone(),
            Some(bias.clone()),
        ),
    };
    let grads = (y.clone() * g).sum().backward();
    let mut all = vec![bits(y)];
    all.extend(a.grad(&grads).map(bits));
    all.extend(b.grad(&grads).map(bits));
    all.push(bits(w.grad(&grads).expect("tracked")));
    all.push(bits(bias.grad(&grads).expect("tracked")));
    all
}

#[test]
fn linear_of_columns_same_bits_as_the_concatenation() {
    // The last is TGN's updater on the streams without edge features (stored mails beside 100
    // time encodings), split across the pool.
    for shape in [[3, 2, 1, 4], [1507, 200, 100, 300]] {
        for tracked in [[false, true], [true, true], [true, false], [false, false]] {
            let ours = run_columns(true, shape, tracked);
            let count = tracked.iter().filter(|&&t| t).count();
            assert_eq!(ours.len(), 3 + count, "{shape:?} {tracked:?}");
            assert_eq!(
                ours,
                run_columns(false, shape, tracked),
                "{shape:?} {tracked:?}"
            );
        }
    }
    // An empty part (burn's `cat` leaves an empty input out, so it is compared untracked).
    for (shape, tracked) in [([5, 0, 3, 2], [false, true]), ([4, 3, 0, 2], [true, false])] {
        let ours = run_columns(true, shape, tracked);
        assert_eq!(ours, run_columns(false, shape, tracked), "{shape:?}");
    }
}

#[test]
fn linear_of_columns_by_hand() {
    let device = Device::flex().autodiff();
    // [1 ‖ 2 3]·[[1, 0], [0, 1], [1, 1]] + [0, 1] = [1 + 3, 2 + 3 + 1] = [4, 6]; with ∂L/∂y = 1
    // each column of the tracked part gets its row of w summed: [0 + 1, 1 + 1] = [1, 2].
    let a = Tensor::<2>::from_floats([[1.0]], &device);
    let b = Tensor::<2>::from_floats([[2.0, 3.0]], &device).require_grad();
    let w = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], &device);
    let bias = Tensor::<1>::from_floats([0.0, 1.0], &device);
    let y = mspipe_kernels::linear_of_columns(a.clone(), b.clone(), w, bias);
    assert_eq!(values(y.clone()), [4.0, 6.0]);
    let grads = y.sum().backward();
    assert_eq!(values(b.grad(&grads).expect("tracked")), [1.0, 2.0]);
    assert!(a.grad(&grads).is_none(), "data gets no gradient");
}

#[test]
fn evaluation_without_autodiff_matches() {
    let device = Device::flex();
    let x = filled([600, 100], 1, 1.0, &device);
    let w = filled([100, 200], 2, 0.1, &device);
    let b = filled([200], 3, 1.0, &device);
    let ours = linear(x.clone(), w.clone(), b.clone());
    assert_eq!(bits(ours), bits(burn_linear(x, w, Some(b))));
}

/// `[B, m, k] · [B, k, n]` by `product` and burn's `matmul`: the output and both gradients, the
/// operands made as transposed views (as the attention's per-head weights are).
fn run_batched(
    product: fn(Tensor<3>, Tensor<3>) -> Tensor<3>,
    [b, m, k, n]: [usize; 4],
) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    let lhs = filled([b, k, m], 11, 1.0, &device).require_grad();
    let rhs = filled([b, n, k], 12, 0.1, &device).require_grad();
    let g = filled([b, m, n], 13, 1.0, &device);
    let y = product(lhs.clone().swap_dims(1, 2), rhs.clone().swap_dims(1, 2));
    let grads = (y.clone() * g).sum().backward();
    let (dl, dr) = (
        lhs.grad(&grads).expect("tracked"),
        rhs.grad(&grads).expect("tracked"),
    );
    vec![values(y), values(dl), values(dr)]
}

/// Each of `ours` against `theirs` (the same outputs and gradients, of batches `[B, m, k, n]`):
/// to the bit when `gemm` (no product, forward or backward, has a side of 16 or fewer besides its
/// rows: they all run on the GEMM burn calls), else within the rounding of sums of products of
/// values below 1.
fn assert_matches(ours: &[Vec<f32>], theirs: &[Vec<f32>], [_, m, k, n]: [usize; 4], gemm: bool) {
    let what = format!("{:?}", [m, k, n]);
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let depth = m.max(k).max(n).max(1) as f32;
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.len(), t.len(), "{what}");
        for (x, y) in o.iter().zip(t) {
            match gemm {
                true => assert_eq!(x.to_bits(), y.to_bits(), "{what}: {x} against {y}"),
                false => assert!(
                    (x - y).abs() <= 4.0 * f32::EPSILON * depth * (1.0 + y.abs()),
                    "{what}: {x} against {y}"
                ),
            }
        }
    }
}

/// Shapes `[B, m, k, n]` whose every product (forward and backward, of either test) is the GEMM's:
/// one split across the pool, one not.
const GEMM_SHAPES: [[usize; 4]; 2] = [[2, 1790, 50, 200], [2, 100, 90, 100]];

/// `shapes` marked as the GEMM's (`true`) or not.
fn cases(small: &[[usize; 4]]) -> Vec<([usize; 4], bool)> {
    let gemm = GEMM_SHAPES.iter().map(|&s| (s, true));
    gemm.chain(small.iter().map(|&s| (s, false))).collect()
}

#[test]
fn batched_product_matches_burns_matmul() {
    let matmul = |a: Tensor<3>, b: Tensor<3>| a.matmul(b);
    // Plain loops: APAN's per-node shapes (a mailbox of 10 mails of 47 values, 2 heads), an
    // empty product, an empty output.
    let small = [
        [1, 3, 2, 4],
        [3, 10, 47, 2],
        [3, 2, 10, 47],
        [2, 0, 3, 2],
        [2, 3, 0, 2],
    ];
    for (shape, gemm) in cases(&small) {
        let ours = run_batched(mspipe_kernels::batched_matmul, shape);
        assert_matches(&ours, &run_batched(matmul, shape), shape, gemm);
    }
}

#[test]
fn batched_product_hand_worked() {
    let device = Device::flex();
    // Batch 0: [1 2]·[[1],[1]] = 3; batch 1: [3 4]·[[2],[−1]] = 2.
    let a = Tensor::<3>::from_floats([[[1.0, 2.0]], [[3.0, 4.0]]], &device);
    let b = Tensor::<3>::from_floats([[[1.0], [1.0]], [[2.0], [-1.0]]], &device);
    assert_eq!(values(mspipe_kernels::batched_matmul(a, b)), [3.0, 2.0]);
}

/// The attention's two per-head products: the query `[m, B·k]` split into heads (a view), times
/// per-head weights, and per-head rows times weights with the heads' outputs side by side. Ours
/// (`product`, the side-by-side one in `side_by_side`) against burn's `matmul` and the views
/// that concatenate: the output and every gradient, to the bit.
fn run_heads(
    product: fn(Tensor<3>, Tensor<3>) -> Tensor<3>,
    side_by_side: fn(Tensor<3>, Tensor<3>) -> Tensor<2>,
    [b, m, k, n]: [usize; 4],
) -> Vec<Vec<f32>> {
    let device = Device::flex().autodiff();
    let query = filled([m, b * k], 21, 1.0, &device).require_grad();
    let w1 = filled([b, k, n], 22, 0.1, &device).require_grad();
    let w2 = filled([b, n, k], 23, 0.1, &device).require_grad();
    let g = filled([m, b * k], 24, 1.0, &device);
    let heads = query.clone().reshape([m, b, k]).swap_dims(0, 1);
    let y = side_by_side(product(heads, w1.clone()), w2.clone());
    let grads = (y.clone() * g).sum().backward();
    let (dq, dw1, dw2) = (query.grad(&grads), w1.grad(&grads), w2.grad(&grads));
    let tracked = "tracked";
    vec![
        values(y),
        values(dq.expect(tracked)),
        values(dw1.expect(tracked)),
        values(dw2.expect(tracked)),
    ]
}

#[test]
fn heads_side_by_side_match_burns() {
    let concat = |a: Tensor<3>, w: Tensor<3>| {
        let [b, m, _] = a.dims();
        let n = w.dims()[2];
        a.matmul(w).swap_dims(0, 1).reshape([m, b * n])
    };
    let matmul = |a: Tensor<3>, b: Tensor<3>| a.matmul(b);
    // The GEMM's (one split across the pool, as the model's are) and plain loops.
    for (shape, gemm) in cases(&[[1, 3, 2, 4], [2, 5, 3, 4], [3, 0, 2, 2]]) {
        let ours = run_heads(
            mspipe_kernels::batched_matmul,
            mspipe_kernels::batched_matmul_side_by_side,
            shape,
        );
        assert_matches(&ours, &run_heads(matmul, concat, shape), shape, gemm);
    }
}

#[test]
fn side_by_side_hand_worked() {
    let device = Device::flex();
    // Two rows, two heads: head 0 doubles, head 1 negates; row i of the output is
    // [2·x_i(head 0), −x_i(head 1)].
    let x = Tensor::<3>::from_floats([[[1.0], [2.0]], [[3.0], [4.0]]], &device);
    let w = Tensor::<3>::from_floats([[[2.0]], [[-1.0]]], &device);
    let y = mspipe_kernels::batched_matmul_side_by_side(x, w);
    assert_eq!(y.dims(), [2, 2]);
    assert_eq!(values(y), [2.0, -3.0, 4.0, -4.0]);
}
