//! Software prefetch of rows read at random. The attention's slots read node and Δt rows by index:
//! the hardware prefetcher cannot guess the next row, so without a hint each slot's first load
//! waits on memory (the forward's hottest instruction was that load).

/// Bytes per cache line on every x86-64 and AArch64 CPU in use.
const LINE: usize = 64;

/// Starts loading `row` into the first-level cache; a hint only (no fault, no effect on results).
#[inline(always)]
pub fn prefetch(row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let bytes = std::mem::size_of_val(row);
        let start = row.as_ptr().cast::<i8>();
        // Every LINE bytes from the start, and the last byte (its line when the row is not aligned).
        let offsets = (0..bytes).step_by(LINE).chain(bytes.checked_sub(1));
        for offset in offsets {
            // SAFETY: `offset` < the row's length in bytes: the address is inside `row`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.add(offset)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}
