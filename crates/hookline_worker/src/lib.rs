//! `hookline-worker`: turns stored events into resource status changes, exactly once.
//!
//! A loop over one step, [`process`]: for each message from the work queue, one
//! PostgreSQL transaction locks the event (a redelivery finds it final and stops there),
//! locks its resource (serialising every change to one resource across all workers),
//! asks the source's lifecycle what the reported status does, logs the transition and
//! marks the event processed. The message is acknowledged only after that commit.
//!
//! Failures are sorted where they happen: an event that can never be processed (unknown
//! source or status, missing key) is marked `failed` and not retried; a transient failure
//! (database down, deadlock, a panic) goes back through a delay queue with jitter, and to
//! the dead-letter queue once `[worker] max_attempts` is spent. A message is acknowledged
//! only once its successor (retry or dead letter) is confirmed by the broker, so none is
//! lost; messages that are not Hookline envelopes at all go to the dead-letter queue as
//! they came and are counted (`outcome="poison"`): they name no event to retry.

mod admin;
mod batch;
mod consume;
mod process;
mod schedule;
mod startup;

pub use batch::{Processor, process_batch};
pub use process::{Deps, Outcome, ProcessError, Transition, process};
pub use schedule::{NextStep, RetryPolicy};
pub use startup::Worker;
