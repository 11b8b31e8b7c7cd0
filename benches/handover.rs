//! What it costs two cores to hand data to each other, against each keeping its own: one JSON line
//! per sample. Two threads take turns passing over a buffer that fits in one core's L2 (each pass
//! reads and writes all of it); "handed over" passes over the buffer the other thread wrote last,
//! "private" over the thread's own.
//!
//! A training step on one worker with several threads splits each op across the pool, so every op
//! hands its inputs from the core that wrote them to the cores that read them. Where the cores sit
//! in one cache domain the hand-over costs about what a private pass does; where they sit in two
//! (a VM whose host moves its vCPUs between core complexes) it costs several times more, and the
//! step's memory-bound ops slow with it. Sampled over time, this says which a host is, and when.
//!
//! `cargo bench --bench handover -- --samples 10 --every 5`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
struct Args {
    /// Samples to take.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// KiB per buffer (the default fits in the L2 of current x86 cores).
    #[arg(long, default_value_t = 512)]
    kib: usize,
    /// Passes per measurement, shared by the two threads.
    #[arg(long, default_value_t = 4000)]
    passes: usize,
    // `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One pass: read and write every element.
fn pass(buffer: *mut f32, len: usize) {
    // SAFETY: `buffer` is a live allocation of `len` floats that only the thread whose turn it is
    // touches (see `measure`).
    let xs = unsafe { std::slice::from_raw_parts_mut(buffer, len) };
    for x in xs {
        *x = *x * 0.5 + 1.0;
    }
}

/// Nanoseconds per KiB of one pass, the two threads taking turns: pass `p` is thread `p % 2`'s,
/// over buffer 0 when `handed_over`, else over the thread's own. The turn counter keeps the two
/// from touching a buffer at once.
fn measure(handed_over: bool, kib: usize, passes: usize) -> f64 {
    let len = kib * 1024 / size_of::<f32>();
    let mut buffers = [vec![1.0f32; len], vec![1.0f32; len]];
    // Addresses, not pointers, cross into the threads (raw pointers are not `Send`).
    let pointers = buffers.each_mut().map(|b| b.as_mut_ptr() as usize);
    let turn = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for thread in 0..2 {
            let turn = &turn;
            s.spawn(move || {
                let buffer = pointers[if handed_over { 0 } else { thread }] as *mut f32;
                for p in (thread..passes).step_by(2) {
                    // Spin, not sleep: a wake-up would cost more than the pass being measured.
                    while turn.load(Ordering::Acquire) != p {
                        std::hint::spin_loop();
                    }
                    pass(buffer, len);
                    turn.store(p + 1, Ordering::Release);
                }
            });
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(&buffers);
    seconds * 1e9 / (passes * kib) as f64
}

fn main() {
    let args = Args::parse();
    for sample in 0..args.samples {
        if sample > 0 {
            std::thread::sleep(Duration::from_secs_f64(args.every));
        }
        let private = measure(false, args.kib, args.passes);
        let handed_over = measure(true, args.kib, args.passes);
        println!(
            "{}",
            serde_json::json!({
                "sample": sample,
                "private_ns_per_kib": private,
                "handed_over_ns_per_kib": handed_over,
                "ratio": handed_over / private,
            })
        );
    }
}
