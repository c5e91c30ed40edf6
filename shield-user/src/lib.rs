//! The shield agent and CLI as a library: the binary in `main.rs` is a thin wrapper, and the
//! kernel and end-to-end tests reuse the loader and the API types.

pub mod agent;
pub mod api;
mod batch;
pub mod cli;
pub mod clock;
pub mod config;
pub mod import;
pub mod lists;
pub mod metrics;
pub mod policies;
pub mod prefilter;
pub mod program;
pub mod state;
pub mod stats;
