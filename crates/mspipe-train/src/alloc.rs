//! The allocator training wants. Training allocates and frees tensors of megabytes every step;
//! glibc serves those with fresh mmaps (a page fault per 4 KiB on each use, every step).
//! mimalloc keeps the memory mapped between steps. A binary opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: mspipe_train::alloc::MiMalloc = mspipe_train::alloc::MiMalloc;
//! // and first thing in main:
//! mspipe_train::alloc::keep_freed_pages();
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (the Rust bindings do not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed pages back to the OS: the next step needs the same amount again, and
/// re-faulting them is a page fault per 4 KiB of it.
pub fn keep_freed_pages() {
    // SAFETY: mi_option_set only stores an integer option; any value is valid for this option.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
