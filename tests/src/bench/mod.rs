//! `cargo xtask bench`: cost per packet against the floor and xdp-filter, behaviour under a
//! flood against no protection and nftables, and control-plane costs, all measured in one run
//! and written to bench/report.md, bench/report.json and SVG plots.

pub mod control;
pub mod cost;
pub mod flood;
pub mod report;

use std::time::Duration;

/// How much to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub quick: bool,
    /// BPF_PROG_TEST_RUN repeat count per measurement.
    pub repeat: u32,
    /// Measurements per path (the median is reported).
    pub runs: usize,
    /// Map sizes to measure at.
    pub sizes: &'static [usize],
    /// Length of each flood.
    pub flood: Duration,
    /// Blocklist entries for the control-plane load test.
    pub load_entries: usize,
}

impl Plan {
    pub const FULL: Plan = Plan {
        quick: false,
        repeat: 2_000_000,
        runs: 5,
        sizes: &[1, 10_000, 1_000_000],
        flood: Duration::from_secs(8),
        load_entries: 1_000_000,
    };
    pub const QUICK: Plan = Plan {
        quick: true,
        repeat: 100_000,
        runs: 3,
        sizes: &[1, 10_000],
        flood: Duration::from_secs(2),
        load_entries: 20_000,
    };
}

/// The median of some measurements.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}
