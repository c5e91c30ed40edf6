//! The shield XDP program: parse -> allowlist -> blocklist -> policy -> per-source buckets ->
//! verdict, every verdict counted by reason. Cheapest decisions first, one clock read at most.
#![no_std]
#![no_main]
// The bpf target's core has no atomic read-modify-write methods; the intrinsics lower to the
// BPF v3 atomic instructions.
#![feature(core_intrinsics)]
#![expect(internal_features, reason = "core::intrinsics atomics, see above")]

mod frame;
mod maps;

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_cxchg, atomic_xadd};

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_ns, macros::xdp, programs::XdpContext,
};
use shield_common::{
    config::RuntimeConfig,
    counters::{Action, Counter, Reason, counter_slot},
    gcra::{Limit, conform},
    lists::ListEntry,
    parse::{IpInfo, Parsed, parse},
    policy::{DEFAULT_POLICY_ID, Policy, port_policy_slot},
    source::{FAMILY_V4, SourceKey, SourceState},
};

use crate::{frame::XdpFrame, maps::*};

/// Compare-and-swap attempts on a contended bucket before the frame is counted as conforming.
const CAS_ATTEMPTS: u32 = 4;

#[xdp]
pub fn shield(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    let config = CONFIG.get(0).copied().unwrap_or_default();
    let (reason, mut action) = decide(&frame, &config);
    if action == Action::Drop && config.monitor() {
        action = Action::WouldDrop;
    }
    count(reason, action, frame.len_u64());
    match action {
        Action::Drop => xdp_action::XDP_DROP,
        Action::Pass | Action::WouldDrop => xdp_action::XDP_PASS,
    }
}

/// Why the frame gets its verdict, and the verdict before global monitor mode. Per-policy
/// monitor mode is applied here, where the policy is known.
#[inline(always)]
fn decide(frame: &XdpFrame, config: &RuntimeConfig) -> (Reason, Action) {
    let info = match parse(frame) {
        Ok(Parsed::Exempt) => return (Reason::Exempt, Action::Pass),
        Ok(Parsed::Ip(info)) => info,
        Err(malformed) => {
            let action = if config.drop_malformed() { Action::Drop } else { Action::Pass };
            return (malformed.reason(), action);
        }
    };
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if listed(&info, &ALLOW_V4, &ALLOW_V6, now) {
        return (Reason::Allowlisted, Action::Pass);
    }
    if listed(&info, &BLOCK_V4, &BLOCK_V6, now) {
        return (Reason::Blocklisted, Action::Drop);
    }
    let (policy_id, policy) = select_policy(&info);
    match charge_source(&info, policy_id, &policy, frame.len_u64(), now) {
        None => (Reason::Passed, Action::Pass),
        Some(reason) if policy.monitor() => (reason, Action::WouldDrop),
        Some(reason) => (reason, Action::Drop),
    }
}

/// Whether the source is covered by an entry of the list that is in force at `now`.
#[inline(always)]
fn listed(info: &IpInfo, v4: &ListV4, v6: &ListV6, now: u64) -> bool {
    let entry: Option<&ListEntry> = if info.family == FAMILY_V4 {
        v4.get(LpmKey::new(32, info.src_v4()))
    } else {
        v6.get(LpmKey::new(128, info.src))
    };
    entry.is_some_and(|e| e.active_at(now))
}

/// The policy for the frame's destination port, or the default policy.
#[inline(always)]
fn select_policy(info: &IpInfo) -> (u32, Policy) {
    let id = info
        .dst_port
        .and_then(|port| port_policy_slot(info.l4_proto, port))
        .and_then(|slot| PORT_POLICY.get(slot).copied())
        .unwrap_or(DEFAULT_POLICY_ID);
    if let Some(policy) = POLICIES.get(id).filter(|p| p.enabled()) {
        return (id, *policy);
    }
    let default = POLICIES.get(DEFAULT_POLICY_ID).copied().unwrap_or_default();
    (DEFAULT_POLICY_ID, default)
}

/// Charge the frame to its source's buckets. Returns the limit it exceeded, if any.
#[inline(always)]
fn charge_source(
    info: &IpInfo,
    policy_id: u32,
    policy: &Policy,
    len: u64,
    now: u64,
) -> Option<Reason> {
    let limit_syn = info.tcp_syn && policy.syn.enabled();
    if !policy.packets.enabled() && !policy.bytes.enabled() && !limit_syn {
        return None;
    }
    let key = if info.family == FAMILY_V4 {
        SourceKey::v4(info.src_v4(), policy.v4_prefix_len, policy_id as u8)
    } else {
        SourceKey::v6(info.src, policy.v6_prefix_len, policy_id as u8)
    };
    let state = match BUCKETS.get_ptr_mut(key) {
        Some(state) => state,
        None => {
            // A new source: its buckets start full. BPF_NOEXIST: if another CPU inserted it
            // first, use that entry.
            let fresh = SourceState { last_seen_ns: now, ..SourceState::default() };
            let _ = BUCKETS.insert(key, fresh, aya_ebpf::bindings::BPF_NOEXIST.into());
            BUCKETS.get_ptr_mut(key)?
        }
    };
    // SAFETY: `state` points into a BUCKETS value, valid for this program run; all shared fields
    // are accessed atomically (or are advisory, like last_seen_ns).
    let state = unsafe { &mut *state };
    state.last_seen_ns = now;
    atomic_add(&mut state.packets, 1);

    let exceeded = if limit_syn && !take(&mut state.syn_tat, &policy.syn, 1, now) {
        Some(Reason::RateLimitedSyn)
    } else if policy.packets.enabled() && !take(&mut state.packets_tat, &policy.packets, 1, now) {
        Some(Reason::RateLimitedPackets)
    } else if policy.bytes.enabled() && !take(&mut state.bytes_tat, &policy.bytes, len, now) {
        Some(Reason::RateLimitedBytes)
    } else {
        None
    };
    if exceeded.is_some() {
        atomic_add(&mut state.limited, 1);
    }
    exceeded
}

/// Take `amount` from a bucket shared by all CPUs. Returns whether it conformed.
#[inline(always)]
fn take(tat: &mut u64, limit: &Limit, amount: u64, now: u64) -> bool {
    let tat: *mut u64 = tat;
    let cost = limit.cost_ns(amount);
    // SAFETY: `tat` is an aligned u64 inside a map value; a torn read is impossible for an
    // aligned 64-bit load, and the CAS below rejects a stale value.
    let mut current = unsafe { core::ptr::read_volatile(tat) };
    for _ in 0..CAS_ATTEMPTS {
        let Some(next) = conform(current, now, cost, limit.tolerance_ns) else {
            return false;
        };
        // SAFETY: `tat` is valid and aligned (see above); every CPU updates it with this CAS.
        let (actual, swapped) =
            unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(tat, current, next) };
        if swapped {
            return true;
        }
        current = actual;
    }
    // Persistent contention on one source: let the frame through rather than spin.
    true
}

/// Add to a counter that several CPUs update.
#[inline(always)]
fn atomic_add(counter: &mut u64, value: u64) {
    // SAFETY: `counter` is an aligned u64 inside a map value.
    unsafe { atomic_xadd::<u64, u64, { Relaxed }>(counter, value) };
}

#[inline(always)]
fn count(reason: Reason, action: Action, len: u64) {
    if let Some(counter) = COUNTERS.get_ptr_mut(counter_slot(reason, action)) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while the program runs here.
        let counter: &mut Counter = unsafe { &mut *counter };
        counter.packets += 1;
        counter.bytes += len;
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
