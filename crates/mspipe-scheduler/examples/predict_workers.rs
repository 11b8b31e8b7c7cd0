//! Predicts an epoch on 1, 2, 4 and 8 compute workers from one worker's per-batch stage times:
//! `off` (strict) and `mspipe` (adaptive staleness), by the discrete-event simulator.
//!
//! `cargo run -p mspipe-scheduler --example predict_workers -- BATCHES S F M C U HANDOVER`
//! with seconds per batch for sample, feature fetch, memory fetch, compute and update, and the
//! fraction of a compute step after which its memory update is handed over (the forward pass).
//! Without arguments: MSPipe's TGN/GDELT profile (seconds per epoch over 1,000 batches), updates
//! handed over at the end of compute.

use mspipe_scheduler::{Mode, StageTimes, Workers, simulate_workers};

const USAGE: &str = "expected BATCHES S F M C U HANDOVER (numbers), or nothing";

fn main() {
    let args: Result<Vec<f64>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let (batches, times, handover) = match args.as_deref() {
        Ok(&[n, s, f, m, c, u, h]) => (n as usize, StageTimes::new(s, f, m, c, u), h),
        Ok([]) => {
            let per_batch = |x: f64| x / 1000.0;
            let t = [107.8, 40.1, 55.9, 133.3, 29.5].map(per_batch);
            (1000, StageTimes::new(t[0], t[1], t[2], t[3], t[4]), 1.0)
        }
        _ => {
            eprintln!("predict_workers: {USAGE}");
            std::process::exit(2);
        }
    };
    let epoch = |count, mode| {
        let workers = Workers { count, handover };
        simulate_workers(times, batches, mode, workers)
    };
    let one = epoch(1, Mode::Off).makespan();
    println!("workers | mode | epoch (s) | vs 1 worker | compute busy | mean k");
    for count in [1, 2, 4, 8] {
        for mode in [Mode::Off, Mode::Adaptive { k_max: 4 }] {
            let tl = epoch(count, mode);
            println!(
                "{count} | {mode} | {:.3} | {:.2}x | {:.2} | {:.2}",
                tl.makespan(),
                one / tl.makespan(),
                tl.compute_utilisation(),
                tl.observed_staleness().0
            );
        }
    }
}
