//! # mspipe-scheduler
//!
//! MSPipe's staleness-aware pipeline for memory-based TGNN training, independent of any model:
//! - [`plan`]: per iteration, the smallest staleness `k_i` that keeps compute busy, computed from
//!   profiled stage times ([`Profile`]), and the latest start of the memory fetch that allows it;
//!   [`Mode`] `off` (sequential semantics), `fixed:K`, `mspipe` (adaptive, capped at `k_max`).
//! - [`simulate`]: the same plan as a discrete-event simulation, giving a [`Timeline`].
//! - [`Executor`]: runs real [`Stages`] on threads with bounded queues over a [`Versioned`] memory
//!   that never lets a fetch read older than its bound and records what it saw.
//! - [`Mitigation`]: blends stale memories with similar fresher ones.
//! - [`Timeline::svg`]: a Gantt chart, one lane per stage.
//!
//! ```
//! use mspipe_scheduler::{Mode, Stage, StageTimes, simulate};
//!
//! // TGN on GDELT, 4 GPUs (MSPipe's profile, seconds per epoch).
//! let times = StageTimes::new(107.8, 40.1, 55.9, 133.3, 29.5);
//! let sequential = simulate(times, 100, Mode::Off);
//! let mspipe = simulate(times, 100, Mode::Adaptive { k_max: 4 });
//! assert!(mspipe.staleness()[1..].iter().all(|&k| k == 1));
//! let speedup = sequential.makespan() / mspipe.makespan();
//! assert!(speedup > 1.6, "{speedup}");
//! assert!(mspipe.compute_utilisation() > 0.98);
//! let svg = mspipe.svg(0..8);
//! assert!(svg.starts_with("<svg") && svg.contains("k=1"));
//! # let _ = Stage::Compute;
//! ```

mod error;
mod executor;
mod mitigation;
pub mod plan;
mod profile;
mod simulate;
mod stage;
mod timeline;
pub mod versioned;

pub use error::{BoxError, SchedulerError};
pub use executor::{Executor, Stages};
pub use mitigation::{Candidates, Mitigation, stale_rows};
pub use plan::Mode;
pub use profile::{Profile, StageTimes};
pub use simulate::simulate;
pub use stage::Stage;
pub use timeline::{Iteration, Timeline};
pub use versioned::{ReadVersion, Versioned};
