//! `aya::Pod` for the map types, so the agent can read and write them.

use crate::{
    config::RuntimeConfig,
    counters::Counter,
    events::Event,
    lists::ListEntry,
    policy::Policy,
    source::{SourceKey, SourceState},
};

// SAFETY: every type below is `#[repr(C)]`, `Copy`, made only of integers and byte arrays, and
// has no implicit padding (each has a size assertion next to its definition), so every bit
// pattern is a valid value.
unsafe impl aya::Pod for RuntimeConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for Counter {}
// SAFETY: as above.
unsafe impl aya::Pod for ListEntry {}
// SAFETY: as above.
unsafe impl aya::Pod for Policy {}
// SAFETY: as above.
unsafe impl aya::Pod for SourceKey {}
// SAFETY: as above.
unsafe impl aya::Pod for SourceState {}
// SAFETY: as above.
unsafe impl aya::Pod for Event {}
