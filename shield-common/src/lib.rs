//! Types and pure decision logic shared by the shield XDP program and its agent.
//!
//! Everything here is `no_std` so the kernel program can use it; the host runs the same code in
//! unit tests, which is how the arithmetic and the parser are tested at their edges.
#![cfg_attr(not(test), no_std)]

pub mod config;
pub mod counters;
pub mod events;
pub mod gcra;
pub mod lists;
pub mod maps;
pub mod parse;
pub mod policy;
pub mod prefilter;
pub mod source;

#[cfg(feature = "user")]
mod pod;
