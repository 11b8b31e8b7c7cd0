//! The allocator settings training wants. A step allocates and frees tensors of up to megabytes,
//! the same sizes step after step. glibc's defaults hand each large block a fresh `mmap` and give
//! freed memory back to the OS (a page fault per 4 KiB on each use, every step); other
//! allocators keep the memory but spread a repeating pattern of sizes over ever new pages for
//! several epochs. [`keep_freed_memory`] makes glibc serve every block a step asks for from one
//! heap that keeps what is freed: the next step's blocks are carved from memory the process has
//! already touched, and the heap stays the size of one step's live set. [`Allocator`] asks for
//! transparent huge pages on the blocks too large for that heap — the node tables, read at random
//! rows, where 4 KiB pages would cost a TLB miss per row. A binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: mspipe_train::alloc::Allocator = mspipe_train::alloc::Allocator;
//! // and first thing in main:
//! mspipe_train::alloc::keep_freed_memory();
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks below this come from the heap; larger ones (tables made once) are mapped on their own.
/// glibc's upper bound for the threshold.
#[cfg(target_os = "linux")]
const MMAP_THRESHOLD: usize = 32 << 20;
/// The heap grows by at least this much beyond a request, in a few large steps.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: i32 = 64 << 20;

/// Serve large blocks from the heap (not from mappings of their own), never give the heap's free
/// top back to the OS, and keep one heap for all threads (per-thread heaps each keep freed
/// memory the others cannot reuse). Where the C library is not glibc, its defaults stay.
///
/// # Panics
/// If glibc refuses a setting.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (param, value) in [
        (libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as i32),
        (libc::M_TRIM_THRESHOLD, i32::MAX),
        (libc::M_TOP_PAD, TOP_PAD),
        (libc::M_ARENA_MAX, 1),
    ] {
        // SAFETY: mallopt only stores the setting; all four are valid parameters and values.
        let set = unsafe { libc::mallopt(param, value) };
        assert_eq!(set, 1, "glibc refused mallopt({param}, {value})");
    }
}

/// The system allocator, asking for transparent huge pages on blocks of at least
/// 32 MiB, the blocks glibc maps on their own (on Linux; elsewhere exactly the system allocator).
pub struct Allocator;

impl Allocator {
    /// Advises huge pages for the whole pages of a block just (re)allocated, when it is large.
    fn huge_pages(block: *mut u8, size: usize) {
        #[cfg(target_os = "linux")]
        if size >= MMAP_THRESHOLD && !block.is_null() {
            const PAGE: usize = 4096;
            let start = (block as usize).next_multiple_of(PAGE);
            let end = (block as usize + size) / PAGE * PAGE;
            // SAFETY: the range lies within the block; advice changes no contents. Failure
            // (THP unavailable) leaves ordinary pages, so its result is not checked.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (block, size);
    }
}

// SAFETY: every call is the system allocator's; the advice only changes page sizes.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc(layout) };
        Self::huge_pages(block, layout.size());
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.alloc_zeroed(layout) };
        Self::huge_pages(block, layout.size());
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let block = unsafe { System.realloc(block, layout, new_size) };
        Self::huge_pages(block, new_size);
        block
    }
}
