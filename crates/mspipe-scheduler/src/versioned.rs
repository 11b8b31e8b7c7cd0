//! Node memory shared by the fetch and update stages, versioned by iteration.
//!
//! The memory is committed one iteration at a time, in order; every row carries the iteration
//! that last wrote it. A read for iteration `i` with staleness bound `k` blocks until the update
//! of `i − 1 − k` has committed — it can never see older memory — and reports how many updates it
//! actually missed. With `exact` reads (fixed staleness, including 0) the update of `i − k` also
//! waits until that read has happened, so the read sees exactly the first `i − k` updates and a
//! run is reproducible from its seed.

use std::sync::{Condvar, Mutex, MutexGuard, RwLock};

/// Stamp of a row no iteration has written.
pub const NEVER: u32 = u32::MAX;

/// What a read saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadVersion {
    /// The iteration that read.
    pub iteration: usize,
    /// Updates committed when it read: it sees iterations `0..committed`.
    pub committed: usize,
}

impl ReadVersion {
    /// How many earlier iterations' updates the read missed.
    pub fn staleness(&self) -> usize {
        self.iteration - self.committed
    }
}

#[derive(Debug)]
struct Clock {
    committed: usize,
    reads: usize,
    aborted: bool,
}

/// Raised when a wait is cut short because the pipeline is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

/// Memory `T` whose rows are written by iteration-ordered commits.
#[derive(Debug)]
pub struct Versioned<T> {
    data: RwLock<(T, Vec<u32>)>,
    clock: Mutex<Clock>,
    changed: Condvar,
    exact: bool,
}

impl<T> Versioned<T> {
    /// Wraps `data` with `rows` row stamps; `exact` holds each update until the read that must
    /// not see it has happened (see the module docs).
    pub fn new(data: T, rows: usize, exact: bool) -> Self {
        Versioned {
            data: RwLock::new((data, vec![NEVER; rows])),
            clock: Mutex::new(Clock {
                committed: 0,
                reads: 0,
                aborted: false,
            }),
            changed: Condvar::new(),
            exact,
        }
    }

    fn wait_until(&self, ready: impl Fn(&Clock) -> bool) -> Result<MutexGuard<'_, Clock>, Aborted> {
        let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        while !ready(&clock) && !clock.aborted {
            clock = self.changed.wait(clock).unwrap_or_else(|p| p.into_inner());
        }
        if clock.aborted {
            Err(Aborted)
        } else {
            Ok(clock)
        }
    }

    /// Reads for iteration `i` (reads come in iteration order) once at most `k` updates are
    /// missing; `f` gets the memory, the row stamps and the version it sees.
    pub fn read<R>(
        &self,
        i: usize,
        k: usize,
        f: impl FnOnce(&T, &[u32], ReadVersion) -> R,
    ) -> Result<R, Aborted> {
        let need = i.saturating_sub(k);
        let clock = self.wait_until(|c| c.committed >= need)?;
        // Hold the read lock before releasing the clock so no commit slips in between.
        let data = self.data.read().unwrap_or_else(|p| p.into_inner());
        let version = ReadVersion {
            iteration: i,
            committed: clock.committed.min(i),
        };
        drop(clock);
        let out = f(&data.0, &data.1, version);
        drop(data);
        let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        clock.reads = clock.reads.max(i + 1);
        drop(clock);
        self.changed.notify_all();
        Ok(out)
    }

    /// Commits the update of iteration `i`: waits for the commits before it (and, when exact, for
    /// the read of `i + hold`, the last read that must not see it), then runs `f`, which returns
    /// the rows it wrote.
    pub fn commit(
        &self,
        i: usize,
        hold: usize,
        f: impl FnOnce(&mut T) -> Vec<u32>,
    ) -> Result<(), Aborted> {
        let exact = self.exact;
        let clock = self.wait_until(|c| c.committed == i && (!exact || c.reads > i + hold))?;
        let mut data = self.data.write().unwrap_or_else(|p| p.into_inner());
        let rows = f(&mut data.0);
        for r in rows {
            data.1[r as usize] = i as u32;
        }
        drop(data);
        let mut clock = clock;
        clock.committed = i + 1;
        drop(clock);
        self.changed.notify_all();
        Ok(())
    }

    /// Wakes every waiter with [`Aborted`] (a stage failed).
    pub fn abort(&self) {
        self.clock.lock().unwrap_or_else(|p| p.into_inner()).aborted = true;
        self.changed.notify_all();
    }

    /// Updates committed so far.
    pub fn committed(&self) -> usize {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .committed
    }

    /// Takes the memory back.
    pub fn into_inner(self) -> T {
        self.data.into_inner().unwrap_or_else(|p| p.into_inner()).0
    }
}
