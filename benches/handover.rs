//! What it costs two cores to hand data to each other, against each keeping its own, sampled over
//! time: one JSON line per sample (see `suite/placement.rs`, which the suite probes around its
//! timed runs with). Says which placement a host has given the cores, and when it changes.
//!
//! `cargo bench --bench handover -- --samples 10 --every 5`

use std::time::Duration;

use clap::Parser;

#[path = "suite/placement.rs"]
#[allow(dead_code)] // the suite's side of the module (a run between probes) is not used here
mod placement;

use placement::HandOver;

#[derive(Parser, Debug)]
struct Args {
    /// Samples to take.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 1.0)]
    every: f64,
    /// KiB per buffer.
    #[arg(long, default_value_t = placement::KIB)]
    kib: usize,
    /// Passes per measurement, shared by the two threads.
    #[arg(long, default_value_t = placement::PASSES)]
    passes: usize,
    // `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    for sample in 0..args.samples {
        if sample > 0 {
            std::thread::sleep(Duration::from_secs_f64(args.every));
        }
        let probe = HandOver::measure(args.kib, args.passes);
        println!(
            "{}",
            serde_json::json!({
                "sample": sample,
                "private_ns_per_kib": probe.private_ns_per_kib,
                "handed_over_ns_per_kib": probe.handed_over_ns_per_kib,
                "ratio": probe.ratio(),
            })
        );
    }
}
