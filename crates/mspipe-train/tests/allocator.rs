//! The allocator settings of `mspipe_train::alloc`, in a process of their own: the fault counts
//! would include other tests' allocations in the library's test binary.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

use std::alloc::{GlobalAlloc, Layout};

use mspipe_train::alloc::{Allocator, keep_freed_memory};

/// Minor page faults of the calling thread so far (other tests run beside this one).
fn thread_faults() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage
    };
    usage.ru_minflt
}

/// A step's pattern of large blocks, repeated: once the first round has touched its memory,
/// later rounds fault (almost) no pages, however the sizes vary within the pattern.
#[test]
fn repeated_large_blocks_reuse_touched_memory() {
    keep_freed_memory();
    let round = |scale: usize| {
        let blocks: Vec<Vec<u8>> = [3 << 20, 700 << 10, 5 << 20, 1 << 20]
            .iter()
            .map(|&size| vec![1u8; size + scale * 4096])
            .collect();
        blocks
            .iter()
            .map(|b| usize::from(b[b.len() / 2]))
            .sum::<usize>()
    };
    assert_eq!(round(3), 4);
    let before = thread_faults();
    for i in 0..20 {
        assert_eq!(round(i % 4), 4);
    }
    // 20 rounds of ~10 MB from fresh mappings would fault ~50,000 pages.
    let faults = thread_faults() - before;
    assert!(faults < 100, "{faults} page faults in 20 rounds");
}

/// The `VmFlags` of the mapping holding `address` (from `/proc/self/smaps`).
fn vm_flags(address: usize) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("Linux has smaps");
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((start, end)) = range.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            inside = (start..end).contains(&address);
        } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
            return flags.to_string();
        }
    }
    panic!("no mapping holds {address:#x}");
}

/// A table too large for the heap is mapped with the huge-page advice (`hg`), whatever the
/// system's default for transparent huge pages.
#[test]
fn large_tables_are_advised_huge_pages() {
    let layout = Layout::from_size_align((32 << 20) + 12_345, 8).expect("valid");
    // SAFETY: allocated, inspected, freed with the same layout.
    unsafe {
        let block = Allocator.alloc_zeroed(layout);
        assert!(!block.is_null());
        let flags = vm_flags(block as usize + layout.size() / 2);
        Allocator.dealloc(block, layout);
        assert!(
            flags.split_whitespace().any(|f| f == "hg"),
            "VmFlags:{flags}"
        );
    }
}
