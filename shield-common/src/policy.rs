//! Rate policies: the limits for one class of traffic (the default, or one set of API ports),
//! and how a destination port selects its policy.

use crate::gcra::Limit;

/// Policy slots in the `POLICIES` map.
pub const MAX_POLICIES: u32 = 16;
/// Slot of the default policy, used when no port policy matches.
pub const DEFAULT_POLICY_ID: u32 = 0;
/// Longest policy name, in bytes.
pub const POLICY_NAME_LEN: usize = 16;

pub const DEFAULT_V4_PREFIX: u8 = 32;
pub const DEFAULT_V6_PREFIX: u8 = 64;

/// Flag: the slot holds a policy.
pub const POLICY_ENABLED: u8 = 1 << 0;
/// Flag: monitor mode for this policy (limits count would-drops and pass).
pub const POLICY_MONITOR: u8 = 1 << 1;

/// Flag: charge this policy's buckets on the fine clock (`bpf_ktime_get_ns`). Without it the
/// program uses the coarse clock (a tick of 1-10 ms), which costs a fraction as much; the
/// agent sets it for policies whose bursts the coarse clock's lag would cut (see
/// [`needs_fine_clock`]).
pub const POLICY_FINE_CLOCK: u8 = 1 << 2;

/// The coarse clock lags by under one tick, which takes up to one tick's worth of tokens from
/// a burst; a policy keeps the coarse clock only while that is at most 1/this of every burst.
pub const COARSE_CLOCK_BURST_TICKS: u64 = 10;

/// Whether limits with these burst allowances need the fine clock, given the coarse clock's
/// tick. Disabled limits never do.
pub fn needs_fine_clock(limits: &[Limit], coarse_tick_ns: u64) -> bool {
    limits.iter().any(|l| {
        l.enabled() && l.tolerance_ns < coarse_tick_ns.saturating_mul(COARSE_CLOCK_BURST_TICKS)
    })
}

/// Slots in the `PORT_POLICY` map: one per TCP port, then one per UDP port.
pub const PORT_POLICY_SLOTS: u32 = 2 * 65_536;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// One rate policy as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Packets per second per source.
    pub packets: Limit,
    /// Bytes per second per source.
    pub bytes: Limit,
    /// TCP SYNs (new connections) per second per source.
    pub syn: Limit,
    /// Operator-facing name, NUL-padded UTF-8 (the kernel never reads it).
    pub name: [u8; POLICY_NAME_LEN],
    /// Sources are keyed by this IPv4 prefix length (1..=32).
    pub v4_prefix_len: u8,
    /// Sources are keyed by this IPv6 prefix length (1..=128).
    pub v6_prefix_len: u8,
    pub flags: u8,
    pub _reserved: [u8; 5],
}
const _: () = assert!(core::mem::size_of::<Policy>() == 120);

impl Policy {
    #[inline(always)]
    pub const fn enabled(&self) -> bool {
        self.flags & POLICY_ENABLED != 0
    }

    #[inline(always)]
    pub const fn monitor(&self) -> bool {
        self.flags & POLICY_MONITOR != 0
    }

    #[inline(always)]
    pub const fn fine_clock(&self) -> bool {
        self.flags & POLICY_FINE_CLOCK != 0
    }

    /// The name as a string (up to the first NUL).
    pub fn name_str(&self) -> &str {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(POLICY_NAME_LEN);
        core::str::from_utf8(self.name.get(..end).unwrap_or(&[])).unwrap_or("?")
    }
}

/// Slot in `PORT_POLICY` for a destination port, or `None` for protocols without ports.
#[inline(always)]
pub const fn port_policy_slot(l4_proto: u8, dst_port: u16) -> Option<u32> {
    match l4_proto {
        IPPROTO_TCP => Some(dst_port as u32),
        IPPROTO_UDP => Some(65_536 + dst_port as u32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_udp_slots_do_not_overlap() {
        assert_eq!(port_policy_slot(IPPROTO_TCP, 0), Some(0));
        assert_eq!(port_policy_slot(IPPROTO_TCP, 65_535), Some(65_535));
        assert_eq!(port_policy_slot(IPPROTO_UDP, 0), Some(65_536));
        assert_eq!(port_policy_slot(IPPROTO_UDP, 65_535), Some(PORT_POLICY_SLOTS - 1));
        assert_eq!(port_policy_slot(1, 80), None);
    }

    #[test]
    fn only_bursts_shorter_than_ten_ticks_need_the_fine_clock() {
        let tick = 4_000_000;
        // 1000/s with a burst of 40 is 40 ms of tokens: ten 4 ms ticks.
        let ok = Limit::new(1000, 40).unwrap();
        let short = Limit::new(1000, 39).unwrap();
        assert!(!needs_fine_clock(&[ok, Limit::OFF], tick));
        assert!(needs_fine_clock(&[ok, short], tick));
        assert!(!needs_fine_clock(&[Limit::OFF], tick));
    }

    #[test]
    fn name_stops_at_nul() {
        let mut p = Policy::default();
        p.name[..3].copy_from_slice(b"api");
        assert_eq!(p.name_str(), "api");
        p.name = [b'x'; POLICY_NAME_LEN];
        assert_eq!(p.name_str().len(), POLICY_NAME_LEN);
    }
}
