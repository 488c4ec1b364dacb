//! `hookline-ingest`: the front door providers call.
//!
//! A request is a pipeline: raw bytes -> verify the signature -> render the dedup and
//! resource keys -> one group-committed `INSERT … ON CONFLICT DO NOTHING` -> answer 202
//! (new) or 200 (duplicate), only after the commit. Publishing to RabbitMQ happens after
//! the answer, from the committed rows, with publisher confirms; the outbox relay
//! republishes anything committed but unconfirmed, so a broker outage loses nothing.

// Unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod admin;
mod batcher;
mod conn;
mod error;
mod limits;
mod outbox;
mod retention;
mod seen;
mod startup;
mod webhook;

pub use startup::Application;

// The binary's global allocator (src/main.rs): a package dependency, so the library sees
// it as well.
use mimalloc as _;
