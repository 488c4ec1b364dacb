//! Unit tests across schemes: the providers' vectors, a contract every scheme must meet
//! (tampering, windows, rotation, missing headers, odd bodies), config validation and
//! presets. Each scheme's quirks are tested in `schemes`.

mod config;
mod contract;
mod presets;
mod schemes;
mod support;
mod vectors;
