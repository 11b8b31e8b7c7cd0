//! Training on rayon's pool. The training thread runs as one of the pool's workers: the backend's
//! parallel ops then split their work with `join` on the calling worker instead of queueing it
//! and putting the caller to sleep until done (two context switches per op, some hundreds per
//! step). And while it trains, the pool's other workers stay awake: an idle rayon worker sleeps
//! after a few dozen yields, and each of a step's hundreds of parallel ops then waits for it to be
//! woken (under a hypervisor an inter-processor interrupt and a VM exit) while the core it would
//! run on sits idle. Awake, each spins — taking the pool's work the moment it is queued and
//! yielding the core to any other thread that wants it — as OpenMP runtimes do for their block
//! time. The values computed are the same; only who waits, and how, changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` as one of the pool's workers, with the pool's other workers awake until it returns
/// (or panics). With a single worker `f` runs on the calling thread: the pipeline's stage
/// threads queue their parallel work (sampling) into the pool, and that worker would be the
/// training thread waiting for them.
pub fn train_on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 {
        return f();
    }
    rayon::scope(|_| {
        let stop = Arc::new(AtomicBool::new(false));
        let _stop = StopOnDrop(stop.clone());
        let trainer = rayon::current_thread_index();
        // One job per worker, each bound to its thread: the training thread's returns at once.
        rayon::spawn_broadcast(move |worker| {
            if Some(worker.index()) != trainer {
                stay_awake(&stop);
            }
        });
        f()
    })
}

/// Runs the pool's queued work as it comes, yielding the core while there is none, until `stop`.
fn stay_awake(stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::thread::yield_now();
        }
    }
}

/// Sets the flag when dropped, so the awake workers stop however training ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use super::train_on_pool;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool")
    }

    #[test]
    fn runs_on_a_worker_and_parallel_work_completes() {
        for threads in [1, 2, 3] {
            let (on_worker, sum) = pool(threads).install(|| {
                train_on_pool(|| {
                    let sum: u64 = (0..100_000u64).into_par_iter().map(|i| i * i).sum();
                    (rayon::current_thread_index().is_some(), sum)
                })
            });
            assert!(on_worker, "{threads} threads");
            assert_eq!(sum, (0..100_000u64).map(|i| i * i).sum::<u64>());
        }
    }

    #[test]
    fn a_panic_propagates_and_the_pool_trains_again() {
        let pool = pool(2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| train_on_pool(|| panic!("training failed")))
        }));
        assert!(caught.is_err());
        // The pool serves both workers and trains again afterwards.
        assert_eq!(pool.broadcast(|w| w.index()).len(), 2);
        assert_eq!(pool.install(|| train_on_pool(|| 7)), 7);
    }
}
