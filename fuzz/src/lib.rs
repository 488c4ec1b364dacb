//! Hookline's fuzz properties, one module per libFuzzer target (`fuzz_targets/<name>.rs`
//! only calls `<name>::run`).
//!
//! Each `run` takes the raw fuzzer input, reads it in a small line-based text format
//! ([`input::Lines`]) so that the seed corpus can be written from the providers' vectors
//! and crash artifacts read as plain requests, and asserts properties beyond "does not
//! panic": a tampered signature is rejected, a decoder round-trips, rendering is
//! deterministic and names what is missing. A failed property panics, which libFuzzer
//! records as a crash.

pub mod config;
pub mod envelope;
pub mod form;
pub mod input;
pub mod sign;
pub mod template;
pub mod verify_raw;
pub mod verify_signed;

// The targets' entry points (fuzz_targets/*.rs) link libFuzzer through this dependency.
use libfuzzer_sys as _;
