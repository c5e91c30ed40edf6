//! Why a verdict was reached (`Reason`), what was done (`Action`), and the counter slot for each
//! pair. One enum names the kernel counter, the metric label and the CLI column.

/// Why the program reached its verdict for a frame.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// IP traffic that passed every check.
    Passed = 0,
    /// Frames that are never checked: non-IP (ARP, LLDP, ...) and IPv6 neighbour discovery.
    Exempt = 1,
    /// The source matched the allowlist.
    Allowlisted = 2,
    /// The source matched the blocklist.
    Blocklisted = 3,
    /// The source exceeded its packets/s budget.
    RateLimitedPackets = 4,
    /// The source exceeded its bytes/s budget.
    RateLimitedBytes = 5,
    /// The source exceeded its TCP SYN (new connections/s) budget.
    RateLimitedSyn = 6,
    /// Ethernet or VLAN header truncated, or more VLAN tags than the parser follows.
    MalformedEthernet = 7,
    /// IPv4 header invalid: truncated, wrong version, IHL < 5, lying total length.
    MalformedIpv4 = 8,
    /// IPv6 header or extension chain invalid or longer than the parser follows.
    MalformedIpv6 = 9,
    /// TCP, UDP or ICMP header truncated or with a lying length field.
    MalformedL4 = 10,
}

impl Reason {
    pub const COUNT: usize = 11;
    pub const ALL: [Reason; Self::COUNT] = [
        Reason::Passed,
        Reason::Exempt,
        Reason::Allowlisted,
        Reason::Blocklisted,
        Reason::RateLimitedPackets,
        Reason::RateLimitedBytes,
        Reason::RateLimitedSyn,
        Reason::MalformedEthernet,
        Reason::MalformedIpv4,
        Reason::MalformedIpv6,
        Reason::MalformedL4,
    ];

    /// The stable name used as metric label, CLI column and JSON field.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::Passed => "passed",
            Reason::Exempt => "exempt",
            Reason::Allowlisted => "allowlisted",
            Reason::Blocklisted => "blocklisted",
            Reason::RateLimitedPackets => "rate_limited_packets",
            Reason::RateLimitedBytes => "rate_limited_bytes",
            Reason::RateLimitedSyn => "rate_limited_syn",
            Reason::MalformedEthernet => "malformed_ethernet",
            Reason::MalformedIpv4 => "malformed_ipv4",
            Reason::MalformedIpv6 => "malformed_ipv6",
            Reason::MalformedL4 => "malformed_l4",
        }
    }

    pub const fn is_malformed(self) -> bool {
        matches!(
            self,
            Reason::MalformedEthernet
                | Reason::MalformedIpv4
                | Reason::MalformedIpv6
                | Reason::MalformedL4
        )
    }
}

/// What the program did with a frame.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Pass = 0,
    Drop = 1,
    /// Monitor mode: the frame would have been dropped, and was passed.
    WouldDrop = 2,
}

impl Action {
    pub const COUNT: usize = 3;
    pub const ALL: [Action; Self::COUNT] = [Action::Pass, Action::Drop, Action::WouldDrop];

    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::WouldDrop => "would_drop",
        }
    }
}

/// Number of slots in the `COUNTERS` map: one per (reason, action).
pub const COUNTER_SLOTS: u32 = (Reason::COUNT * Action::COUNT) as u32;

/// Slot of (reason, action) in the `COUNTERS` map.
#[inline(always)]
pub const fn counter_slot(reason: Reason, action: Action) -> u32 {
    reason as u32 * Action::COUNT as u32 + action as u32
}

/// One counter slot: frames and their bytes (whole frame, Ethernet header included).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<Counter>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            for a in Action::ALL {
                let slot = counter_slot(r, a);
                assert!(slot < COUNTER_SLOTS);
                assert!(seen.insert(slot));
            }
        }
        assert_eq!(seen.len(), COUNTER_SLOTS as usize);
    }

    #[test]
    fn reason_all_is_in_discriminant_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
