//! The wgpu device the kernels run on here — Mesa's lavapipe (software Vulkan), as these machines
//! have no GPU — and how tests treat its absence.

use burn::prelude::*;
use burn::tensor::DeviceKind;

/// Set (to anything) to make a missing wgpu adapter fail the kernel tests instead of skipping
/// them; CI sets it.
pub const REQUIRE_RUNTIME: &str = "MSPIPE_REQUIRE_KERNEL_RUNTIME";

/// The default wgpu device, if an adapter exists. burn finds out lazily, by panicking on first
/// use, so the device is probed with a one-element round trip.
pub fn wgpu_device() -> Option<Device> {
    std::panic::catch_unwind(|| {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        Tensor::<1>::from_floats([1.0], &device).into_data();
        device
    })
    .ok()
}

/// For tests: the wgpu device, or `None` with the reason printed — unless [`REQUIRE_RUNTIME`] is
/// set, where a missing adapter panics.
pub fn test_device() -> Option<Device> {
    let device = wgpu_device();
    if device.is_none() {
        let why = "no wgpu adapter (install lavapipe: bash .ci/setup-vulkan.sh)";
        assert!(std::env::var_os(REQUIRE_RUNTIME).is_none(), "{why}");
        eprintln!("skipped: {why}");
    }
    device
}
