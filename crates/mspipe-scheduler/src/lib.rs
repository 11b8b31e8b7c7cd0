#![doc = include_str!("../README.md")]

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
pub use executor::{Emit, Executor, Stages};
pub use mitigation::{Candidates, Mitigation, stale_rows};
pub use plan::Mode;
pub use profile::{Profile, StageTimes};
pub use simulate::{Workers, simulate, simulate_on_cores, simulate_workers};
pub use stage::Stage;
pub use timeline::{Iteration, Timeline};
pub use versioned::{ReadVersion, Versioned};
