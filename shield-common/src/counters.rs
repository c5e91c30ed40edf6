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
    /// The source matched an automatic ban (a blocklist entry the program made itself).
    Banned = 11,
}

impl Reason {
    pub const COUNT: usize = 12;
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
        Reason::Banned,
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
            Reason::Banned => "banned",
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

/// Interfaces one agent can attach to; each gets its own program instance whose
/// `IFACE_SLOT` constant (set at load time) labels its counters.
pub const MAX_INTERFACES: u32 = 8;
/// Policy labels: one per policy slot, and one for frames that never reached a policy
/// (exempt, malformed, allowlisted, blocklisted).
pub const POLICY_LABELS: u32 = crate::policy::MAX_POLICIES + 1;
/// The policy label of frames that never reached a policy.
pub const POLICY_NONE: u32 = crate::policy::MAX_POLICIES;

const REASONS: u32 = Reason::COUNT as u32;
const ACTIONS: u32 = Action::COUNT as u32;

/// Number of slots in the `COUNTERS` map: one per (interface, policy label, reason, action).
pub const COUNTER_SLOTS: u32 = MAX_INTERFACES * POLICY_LABELS * REASONS * ACTIONS;

/// Slot of (interface, policy label, reason, action) in the `COUNTERS` map. Out-of-range
/// interface or policy values are folded into range, so the slot is always valid.
#[inline(always)]
pub const fn counter_slot(iface: u32, policy: u32, reason: Reason, action: Action) -> u32 {
    let iface = if iface < MAX_INTERFACES { iface } else { MAX_INTERFACES - 1 };
    let policy = if policy < POLICY_LABELS { policy } else { POLICY_NONE };
    ((iface * POLICY_LABELS + policy) * REASONS + reason as u32) * ACTIONS + action as u32
}

/// The labels of a slot: (interface, policy label, reason, action).
pub fn slot_labels(slot: u32) -> Option<(u32, u32, Reason, Action)> {
    if slot >= COUNTER_SLOTS {
        return None;
    }
    let action = Action::ALL[(slot % ACTIONS) as usize];
    let rest = slot / ACTIONS;
    let reason = Reason::ALL[(rest % REASONS) as usize];
    let rest = rest / REASONS;
    Some((rest / POLICY_LABELS, rest % POLICY_LABELS, reason, action))
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
    fn slots_are_dense_unique_and_invertible() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_INTERFACES {
            for p in 0..POLICY_LABELS {
                for r in Reason::ALL {
                    for a in Action::ALL {
                        let slot = counter_slot(i, p, r, a);
                        assert!(slot < COUNTER_SLOTS);
                        assert!(seen.insert(slot));
                        assert_eq!(slot_labels(slot), Some((i, p, r, a)));
                    }
                }
            }
        }
        assert_eq!(seen.len(), COUNTER_SLOTS as usize);
        assert_eq!(slot_labels(COUNTER_SLOTS), None);
    }

    #[test]
    fn out_of_range_labels_fold_into_range() {
        assert_eq!(
            counter_slot(99, 99, Reason::Passed, Action::Pass),
            counter_slot(MAX_INTERFACES - 1, POLICY_NONE, Reason::Passed, Action::Pass)
        );
    }

    #[test]
    fn reason_all_is_in_discriminant_order() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }
}
