//! Helpers for shield's kernel and end-to-end tests: frame builders, the malformed corpus, a
//! harness around BPF_PROG_TEST_RUN, and network-namespace labs.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test helpers panic on failure")]

pub mod corpus;
pub mod frames;
pub mod kernel;
