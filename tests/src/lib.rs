//! Helpers for shield's kernel and end-to-end tests: frame builders, the malformed corpus, a
//! harness around BPF_PROG_TEST_RUN, network-namespace labs and the real agent in them.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers panic on failure")]

pub mod agent;
pub mod bench;
pub mod corpus;
pub mod flood;
pub mod frames;
pub mod kernel;
pub mod lab;
pub mod prometheus;
