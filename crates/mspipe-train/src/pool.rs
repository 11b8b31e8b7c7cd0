//! Training on rayon's pool. The training thread runs as one of the pool's workers: the backend's
//! parallel ops then split their work with `join` on the calling worker instead of queueing it
//! and putting the caller to sleep until done (two context switches per op, some hundreds per
//! step). And while it trains, the pool's other workers stay awake: an idle rayon worker sleeps
//! after a few dozen yields, and each of a step's hundreds of parallel ops then waits for it to be
//! woken (under a hypervisor an inter-processor interrupt and a VM exit) while the core it would
//! run on sits idle. Awake, each spins — taking the pool's work the moment it is queued and
//! yielding the core to any other thread that wants it — as OpenMP runtimes do for their block
//! time. The values computed are the same; only who waits, and how, changes.
//!
//! The awake workers count the time they spend running the pool's work ([`busy_seconds`]): the
//! rest of their time is the second core lost to the training thread's single-threaded stretches
//! and to the joins of split ops, which bounds how much a second thread can speed training up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Nanoseconds the awake workers have spent running the pool's work, summed over them.
static BUSY_NANOS: AtomicU64 = AtomicU64::new(0);
/// Workers the running [`train_on_pool`]s keep awake.
static AWAKE: AtomicUsize = AtomicUsize::new(0);

/// Seconds the pool's awake workers (all but the training thread, while [`train_on_pool`] runs)
/// have spent running the pool's work so far, summed over them: divided by a stretch's wall time
/// and [`awake_workers`], the share of their time the training kept them busy.
pub fn busy_seconds() -> f64 {
    BUSY_NANOS.load(Ordering::Relaxed) as f64 * 1e-9
}

/// How many workers [`train_on_pool`] keeps awake now (0 outside it, and with one thread; summed
/// over pools when several train at once).
pub fn awake_workers() -> usize {
    AWAKE.load(Ordering::Relaxed)
}

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
        let awake = rayon::current_num_threads() - 1;
        AWAKE.fetch_add(awake, Ordering::Relaxed);
        let _stop = StopOnDrop(stop.clone(), awake);
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
        let start = Instant::now();
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            BUSY_NANOS.fetch_add(nanos, Ordering::Relaxed);
        } else {
            std::thread::yield_now();
        }
    }
}

/// Sets the flag when dropped, so the awake workers (this many) stop however training ends.
struct StopOnDrop(Arc<AtomicBool>, usize);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        AWAKE.fetch_sub(self.1, Ordering::Relaxed);
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use rayon::prelude::*;

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{awake_workers, busy_seconds, train_on_pool};

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
    fn work_an_awake_worker_runs_counts_as_busy() {
        let nap = Duration::from_millis(30);
        let (awake, busy) = pool(2).install(|| {
            train_on_pool(|| {
                let before = busy_seconds();
                let started = AtomicBool::new(false);
                // The caller runs the first closure and waits in it until the second has
                // started: the awake worker took it, and sleeps in it.
                rayon::join(
                    || {
                        while !started.load(Ordering::Acquire) {
                            std::hint::spin_loop();
                        }
                    },
                    || {
                        started.store(true, Ordering::Release);
                        std::thread::sleep(nap);
                    },
                );
                (awake_workers(), busy_seconds() - before)
            })
        });
        // Other tests may train on pools of their own meanwhile: both counts only add up.
        assert!(awake >= 1);
        assert!(busy >= nap.as_secs_f64(), "busy {busy} s");
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
