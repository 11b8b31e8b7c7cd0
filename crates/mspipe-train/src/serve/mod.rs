//! Streaming inference from a trained run: the run's serving state ([`state`]: best model, node
//! memory after the whole stream, the stream itself, written atomically and versioned), a
//! [`Server`] that scores each micro-batch of new events *before* ingesting it — exactly the
//! evaluation replay of training — and the line protocol of `mspipe-train serve` ([`serve`]).

mod input;
mod server;
pub mod state;
mod stream;

pub use input::{NewEvent, parse_line};
pub use server::{EventScore, Server};
pub use state::{FORMAT, export, export_run};
pub use stream::{Late, ServeOptions, ServeReport, serve};
