//! What every launcher needs: f32 contiguous inputs, contiguous outputs, an elementwise grid.

use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::{cast, into_contiguous};
use burn_cubecl::ops::numeric::{empty_device_contiguous_dtype, full_client};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, client::Client};

/// `t` as a contiguous f32 tensor (the kernels index raw row-major buffers).
pub fn floats(t: CubeTensor) -> CubeTensor {
    assert_eq!(
        t.dtype,
        DType::F32,
        "mspipe-kernels run in f32, got {:?}",
        t.dtype
    );
    into_contiguous(t)
}

/// `t` as contiguous i32 indices.
pub fn indices(t: CubeTensor) -> CubeTensor {
    into_contiguous(cast(t, DType::I32))
}

/// A new contiguous f32 tensor on `like`'s device; every element is written by the kernel. Debug
/// builds (the tests) fill it with NaN first, so an element a kernel fails to write is caught.
pub fn output(like: &CubeTensor, shape: impl Into<Shape>) -> CubeTensor {
    let shape = shape.into();
    if cfg!(debug_assertions) {
        let poisoned = full_client::<f32>(
            like.client.clone(),
            shape.clone(),
            like.device.clone(),
            f32::NAN,
        );
        if poisoned.is_contiguous() {
            return poisoned;
        }
    }
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// `t` itself when it may be written in place, else a copy: the functional result of an
/// in-place kernel.
pub fn writable(t: CubeTensor) -> CubeTensor {
    let t = floats(t);
    if t.can_mut() { t } else { t.copy() }
}

/// One unit per work item.
pub fn grid(client: &Client, units: usize) -> (CubeCount, CubeDim) {
    let dim = CubeDim::new(client, units);
    (calculate_cube_count_elemwise(client, units, dim), dim)
}

/// `kernel::launch_unchecked::<f32>` over `units` work items, one unit each, on `client`: the
/// buffer arguments (moved into the launch; pass `out.clone()` for an output the caller returns),
/// then the scalar ones. Nothing is launched for no units (a zero grid is not a valid launch), so
/// a kernel's outputs must then be empty or filled by the caller. The expansion is the unchecked
/// launch itself, so the call stands in the caller's `unsafe` block next to its SAFETY note.
macro_rules! launch {
    ($kernel:ident on $client:expr, $units:expr; [$($buffer:expr),* $(,)?] $(, $scalar:expr)* $(,)?) => {{
        let (client, units): (&cubecl::client::Client, usize) = (&$client, $units);
        if units > 0 {
            let (count, dim) = $crate::cube::launch::grid(client, units);
            $kernel::launch_unchecked::<f32>(
                client,
                count,
                dim,
                $($buffer.into_buffer_arg(),)*
                $($scalar,)*
            );
        }
    }};
}
pub(super) use launch;
