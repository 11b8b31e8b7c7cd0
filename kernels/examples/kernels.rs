//! The fused attention over gathered rows, called directly: on flex (the host loops) and, where a
//! wgpu adapter exists, on wgpu (the cubecl kernels), each against the burn-ops reference.
//!
//! `cargo run -p mspipe-kernels --example kernels`

use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use mspipe_kernels::{GatheredAttention, gathered_attention, reference, runtime};

const HEADS: usize = 2;
const ROOTS: usize = 64;
const SLOTS: usize = 10;

/// Two heads over 64 roots of 10 slots; each slot's row is 8 node columns (rows of a table of 20
/// nodes) beside 4 Δt-encoding columns (rows of 30 distinct Δt), as TGAT's layer gathers them.
/// Root `r` has `r % 10 + 1` real slots, the rest is padding. Seeded: the same inputs every call.
fn attend(device: &Device, fused: bool) -> Tensor<3> {
    device.seed(7);
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::random([HEADS, ROOTS, 12], normal, device);
    let (a, b) = (
        Tensor::random([20, 8], normal, device),
        Tensor::random([30, 4], normal, device),
    );
    let rows =
        |n: i64| Tensor::<1, Int>::arange(0..(ROOTS * SLOTS) as i64, device).remainder_scalar(n);
    let keep: Vec<f32> = (0..ROOTS * SLOTS)
        .map(|s| f32::from(u8::from(s % SLOTS <= (s / SLOTS) % SLOTS)))
        .collect();
    let keep = Tensor::from_data(TensorData::new(keep, [ROOTS, SLOTS]), device);
    // No attention dropout: every weight multiplied by one.
    let scale = Tensor::ones([HEADS, ROOTS, SLOTS], device);
    let call = if fused {
        gathered_attention
    } else {
        reference::gathered_attention
    };
    call(GatheredAttention {
        q,
        a,
        ia: rows(20),
        e: None,
        b,
        ib: rows(30),
        keep,
        scale,
    })
}

fn main() {
    let mut devices = vec![("flex", Device::flex())];
    match runtime::wgpu_device() {
        Some(gpu) => devices.push(("wgpu", gpu)),
        None => println!("wgpu: no adapter (bash .ci/setup-vulkan.sh installs lavapipe)"),
    }
    for (name, device) in devices {
        let fused = attend(&device, true);
        let want = attend(&device, false);
        fused
            .to_data()
            .assert_approx_eq::<f32>(&want.to_data(), Tolerance::rel_abs(1e-5, 1e-6));
        println!(
            "{name}: fused gathered attention {:?} matches the reference",
            fused.dims()
        );
    }
}
