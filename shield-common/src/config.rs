//! The runtime configuration the program reads from the one-entry `CONFIG` map, so settings
//! change without a reload.

use crate::gcra::Limit;

/// Flag: monitor mode for everything; drops are counted as would-drops and passed.
pub const CONFIG_MONITOR: u32 = 1 << 0;
/// Flag: drop malformed frames (default: pass them, counted).
pub const CONFIG_DROP_MALFORMED: u32 = 1 << 1;
/// Flag: ban sources that keep exceeding their limits.
pub const CONFIG_AUTOBAN: u32 = 1 << 2;

/// Longest escalation: the ban doubles at most this many times.
pub const MAX_BAN_DOUBLINGS: u64 = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub flags: u32,
    /// Frames over a limit within `autoban_window_ns` that get a source banned.
    pub autoban_threshold: u32,
    pub autoban_window_ns: u64,
    /// First ban; each repeat offence doubles it, up to `autoban_max_ban_ns`.
    pub autoban_ban_ns: u64,
    pub autoban_max_ban_ns: u64,
    /// Wall clock minus the monotonic clock, so the kernel can stamp bans with Unix time.
    pub realtime_offset_ns: u64,
    /// Budget for sampled drop events (events/s with burst); off = no samples.
    pub drop_samples: Limit,
    /// Budget for admitting new sources into per-source tracking (sources/s with burst); off =
    /// every new source is tracked. Beyond it, untracked sources share buckets per
    /// aggregate prefix, so a spoofed flood cannot churn the source map or pass as fresh
    /// sources.
    pub admission: Limit,
    pub aggregate_v4_prefix: u8,
    pub aggregate_v6_prefix: u8,
    pub _reserved: [u8; 6],
}
const _: () = assert!(core::mem::size_of::<RuntimeConfig>() == 112);

impl RuntimeConfig {
    #[inline(always)]
    pub const fn monitor(&self) -> bool {
        self.flags & CONFIG_MONITOR != 0
    }

    #[inline(always)]
    pub const fn drop_malformed(&self) -> bool {
        self.flags & CONFIG_DROP_MALFORMED != 0
    }

    #[inline(always)]
    pub const fn autoban(&self) -> bool {
        self.flags & CONFIG_AUTOBAN != 0 && self.autoban_threshold != 0
    }

    /// Length of the ban for a source's `offence`-th ban (1-based): doubling, capped.
    #[inline(always)]
    pub const fn ban_ns(&self, offence: u64) -> u64 {
        let doublings = if offence == 0 { 0 } else { offence - 1 };
        let doublings = if doublings > MAX_BAN_DOUBLINGS { MAX_BAN_DOUBLINGS } else { doublings };
        let base = self.autoban_ban_ns;
        // Shift only while it cannot overflow; the cap applies either way.
        if base != 0 && base.leading_zeros() as u64 <= doublings {
            return self.autoban_max_ban_ns;
        }
        let ban = base << doublings;
        if ban > self.autoban_max_ban_ns { self.autoban_max_ban_ns } else { ban }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg(base: u64, max: u64) -> RuntimeConfig {
        RuntimeConfig { autoban_ban_ns: base, autoban_max_ban_ns: max, ..Default::default() }
    }

    #[test]
    fn bans_double_up_to_the_cap() {
        let c = cfg(60, 1000);
        assert_eq!(c.ban_ns(1), 60);
        assert_eq!(c.ban_ns(2), 120);
        assert_eq!(c.ban_ns(3), 240);
        assert_eq!(c.ban_ns(5), 960);
        assert_eq!(c.ban_ns(6), 1000);
        assert_eq!(c.ban_ns(u64::MAX), 1000);
    }

    #[test]
    fn autoban_needs_flag_and_threshold() {
        let mut c = RuntimeConfig { flags: CONFIG_AUTOBAN, ..Default::default() };
        assert!(!c.autoban());
        c.autoban_threshold = 5;
        assert!(c.autoban());
    }

    proptest! {
        #[test]
        fn ban_is_monotonic_and_capped(base in 1u64..=u64::MAX / 2, max: u64, a in 0u64..100, b in 0u64..100) {
            let c = cfg(base, max);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.ban_ns(lo) <= c.ban_ns(hi) || c.ban_ns(hi) == max);
            prop_assert!(c.ban_ns(hi) <= max);
        }
    }
}
