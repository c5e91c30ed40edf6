//! The shield XDP program: parse -> allowlist -> blocklist -> policy -> per-source buckets ->
//! verdict, every verdict counted by reason. Cheapest decisions first, one clock read at most.
//! Sources that keep exceeding their limits are banned here, and bans and sampled drops are
//! reported to the agent through a ring buffer.
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
    bindings::{BPF_NOEXIST, xdp_action},
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::xdp,
    programs::XdpContext,
};
use shield_common::{
    config::RuntimeConfig,
    counters::{Action, Counter, POLICY_NONE, Reason, counter_slot},
    events::{Event, EventKind, Health},
    gcra::{Limit, conform},
    lists::{ListEntry, Origin},
    maps::Trie,
    parse::{IpInfo, Parsed, parse},
    policy::{DEFAULT_POLICY_ID, Policy, port_policy_slot},
    prefilter::{self, ListBit, lists_in, slot_v4, slot_v6},
    source::{FAMILY_V4, SourceKey, SourceState},
};

use crate::{frame::XdpFrame, maps::*};

/// Compare-and-swap attempts on a contended bucket before the frame is counted as conforming.
const CAS_ATTEMPTS: u32 = 4;

/// The interface label of this program instance's counters. The agent loads one instance per
/// interface and sets this at load time (`EbpfLoader::override_global`), so labelling costs
/// nothing per packet.
#[unsafe(no_mangle)]
static IFACE_SLOT: u32 = 0;

/// What the program decided for one frame.
struct Decision {
    reason: Reason,
    action: Action,
    /// The parsed IP facts, when the frame was IP.
    info: Option<IpInfo>,
    /// The policy slot the frame was charged to, or POLICY_NONE.
    policy: u32,
    now: u64,
}

#[xdp]
pub fn shield(ctx: XdpContext) -> u32 {
    let frame = XdpFrame::new(&ctx);
    // An array map always holds its entries; this only satisfies the type.
    let Some(config) = CONFIG.get(0) else {
        return xdp_action::XDP_PASS;
    };
    let mut d = decide(&frame, config);
    if d.action == Action::Drop && config.monitor() {
        d.action = Action::WouldDrop;
    }
    // SAFETY: a plain read of a load-time constant.
    let iface = unsafe { core::ptr::read_volatile(&IFACE_SLOT) };
    count(counter_slot(iface, d.policy, d.reason, d.action), frame.len_u64());
    match d.action {
        Action::Drop => {
            sample_drop(&d, config);
            xdp_action::XDP_DROP
        }
        Action::Pass | Action::WouldDrop => xdp_action::XDP_PASS,
    }
}

/// Why the frame gets its verdict, and the verdict before global monitor mode. Per-policy
/// monitor mode is applied here, where the policy is known.
#[inline(always)]
fn decide(frame: &XdpFrame, config: &RuntimeConfig) -> Decision {
    let info = match parse(frame) {
        Ok(Parsed::Exempt) => {
            return Decision {
                reason: Reason::Exempt,
                action: Action::Pass,
                info: None,
                policy: POLICY_NONE,
                now: 0,
            };
        }
        Ok(Parsed::Ip(info)) => info,
        Err(malformed) => {
            let action = if config.drop_malformed() { Action::Drop } else { Action::Pass };
            return Decision {
                reason: malformed.reason(),
                action,
                info: None,
                policy: POLICY_NONE,
                now: 0,
            };
        }
    };
    let now = coarse_ns();
    let verdict =
        |reason, action| Decision { reason, action, info: Some(info), policy: POLICY_NONE, now };
    let (maybe_allowed, maybe_blocked) = may_be_listed(&info);
    if maybe_allowed && listed(&info, &allow_list(), now).is_some() {
        return verdict(Reason::Allowlisted, Action::Pass);
    }
    if maybe_blocked && let Some(origin) = listed(&info, &block_list(), now) {
        let reason =
            if origin == Origin::Auto as u32 { Reason::Banned } else { Reason::Blocklisted };
        return verdict(reason, Action::Drop);
    }
    let Some((policy_id, policy)) = select_policy(&info) else {
        return verdict(Reason::Passed, Action::Pass);
    };
    let now = if policy.fine_clock() { fine_ns() } else { now };
    let (reason, action) =
        match charge_source(&info, policy_id, policy, frame.len_u64(), now, config) {
            None => (Reason::Passed, Action::Pass),
            Some(reason) if policy.monitor() => (reason, Action::WouldDrop),
            Some(reason) => (reason, Action::Drop),
        };
    Decision { reason, action, info: Some(info), policy: policy_id, now }
}

/// Which lists may hold an entry covering the source, from the prefilter: (allowlist,
/// blocklist). A clear bit is a guarantee; a set bit sends the frame to the lookups.
#[inline(always)]
fn may_be_listed(info: &IpInfo) -> (bool, bool) {
    let (slot, bypass) = if info.family == FAMILY_V4 {
        (slot_v4(info.src_v4()), prefilter::BYPASS_BLOCK_V4)
    } else {
        (slot_v6(&info.src), prefilter::BYPASS_BLOCK_V6)
    };
    let Some(word) = PREFILTER.get(slot / prefilter::SLOTS_PER_WORD) else {
        return (true, true);
    };
    let (allow, block) = lists_in(*word, slot);
    (allow, block || PREFILTER.get(bypass).is_none_or(|b| *b != 0))
}

/// The coarse monotonic clock (one tick, 1-10 ms, behind at most): list expiries and the
/// buckets of policies whose bursts span many ticks. It costs a fraction of the fine clock.
#[inline(always)]
fn coarse_ns() -> u64 {
    // SAFETY: bpf_ktime_get_coarse_ns has no preconditions.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// The fine monotonic clock: the buckets of policies with short bursts (POLICY_FINE_CLOCK).
#[inline(always)]
fn fine_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns has no preconditions.
    unsafe { bpf_ktime_get_ns() }
}

/// The maps of one list: exact addresses in hash maps, shorter prefixes in LPM tries.
struct List {
    hosts_v4: &'static HostsV4,
    hosts_v6: &'static HostsV6,
    trie_v4: &'static ListV4,
    trie_v6: &'static ListV6,
    in_use_v4: Trie,
    in_use_v6: Trie,
}

// Built where used (not statics): a map reference stored in a data section would not be
// relocated by the loader; inlined, these become direct map references in the code.
#[inline(always)]
fn allow_list() -> List {
    List {
        hosts_v4: &ALLOW_V4_HOSTS,
        hosts_v6: &ALLOW_V6_HOSTS,
        trie_v4: &ALLOW_V4,
        trie_v6: &ALLOW_V6,
        in_use_v4: Trie::AllowV4,
        in_use_v6: Trie::AllowV6,
    }
}

#[inline(always)]
fn block_list() -> List {
    List {
        hosts_v4: &BLOCK_V4_HOSTS,
        hosts_v6: &BLOCK_V6_HOSTS,
        trie_v4: &BLOCK_V4,
        trie_v6: &BLOCK_V6,
        in_use_v4: Trie::BlockV4,
        in_use_v6: Trie::BlockV6,
    }
}

/// Whether an LPM trie may hold entries (an empty trie's lookup is skipped).
#[inline(always)]
fn trie_in_use(trie: Trie) -> bool {
    TRIES_IN_USE.get(trie as u32).is_some_and(|v| *v != 0)
}

/// The origin of an entry of the list that covers the source and is in force at `now`: its
/// exact address first (a hash lookup), then, if the trie holds anything, the prefixes.
#[inline(always)]
fn listed(info: &IpInfo, list: &List, now: u64) -> Option<u32> {
    let active = |e: Option<*const ListEntry>| {
        // SAFETY: a pointer from a map lookup, valid for this program run.
        e.map(|e| unsafe { &*e }).filter(|e| e.active_at(now)).map(|e| e.origin)
    };
    if info.family == FAMILY_V4 {
        let addr = info.src_v4();
        active(list.hosts_v4.get_ptr(addr)).or_else(|| {
            if !trie_in_use(list.in_use_v4) {
                return None;
            }
            list.trie_v4.get(LpmKey::new(32, addr)).filter(|e| e.active_at(now)).map(|e| e.origin)
        })
    } else {
        active(list.hosts_v6.get_ptr(info.src)).or_else(|| {
            if !trie_in_use(list.in_use_v6) {
                return None;
            }
            list.trie_v6
                .get(LpmKey::new(128, info.src))
                .filter(|e| e.active_at(now))
                .map(|e| e.origin)
        })
    }
}

/// The policy for the frame's destination port, or the default policy.
#[inline(always)]
fn select_policy(info: &IpInfo) -> Option<(u32, &'static Policy)> {
    let id = info
        .dst_port
        .and_then(|port| port_policy_slot(info.l4_proto, port))
        .and_then(|slot| PORT_POLICY.get(slot).copied())
        .unwrap_or(DEFAULT_POLICY_ID);
    if let Some(policy) = POLICIES.get(id).filter(|p| p.enabled()) {
        return Some((id, policy));
    }
    POLICIES.get(DEFAULT_POLICY_ID).map(|p| (DEFAULT_POLICY_ID, p))
}

/// Charge the frame to its source's buckets. Returns the limit it exceeded, if any.
#[inline(always)]
fn charge_source(
    info: &IpInfo,
    policy_id: u32,
    policy: &Policy,
    len: u64,
    now: u64,
    config: &RuntimeConfig,
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
    let mut key = key;
    let mut tracked = true;
    let state = match BUCKETS.get_ptr_mut(key) {
        Some(state) => state,
        None if admitted(config, now) => {
            // A new source: its buckets start full. BPF_NOEXIST: if another CPU inserted it
            // first, use that entry.
            if let Some(fresh) = fresh_state(now) {
                let _ = BUCKETS.insert(key, fresh, BPF_NOEXIST.into());
            }
            match BUCKETS.get_ptr_mut(key) {
                Some(state) => state,
                None => {
                    health(Health::SourceWriteFailed);
                    return None;
                }
            }
        }
        None => {
            // Beyond the admission budget (a flood of new, likely spoofed, sources): share the
            // buckets of the aggregate prefix rather than take a fresh, full bucket each.
            health(Health::SourcesAggregated);
            tracked = false;
            key = if info.family == FAMILY_V4 {
                SourceKey::v4(info.src_v4(), config.aggregate_v4_prefix, policy_id as u8)
            } else {
                SourceKey::v6(info.src, config.aggregate_v6_prefix, policy_id as u8)
            };
            match AGGREGATES.get_ptr_mut(key) {
                Some(state) => state,
                None => {
                    if let Some(fresh) = fresh_state(now) {
                        let _ = AGGREGATES.insert(key, fresh, BPF_NOEXIST.into());
                    }
                    AGGREGATES.get_ptr_mut(key)?
                }
            }
        }
    };
    // SAFETY: `state` points into a BUCKETS or AGGREGATES value, valid for this program run;
    // all shared fields are accessed atomically (or are advisory, like last_seen_ns).
    let state = unsafe { &mut *state };
    state.last_seen_ns = now;
    state.packets = state.packets.wrapping_add(1);

    let exceeded = if limit_syn && !take(&mut state.syn_tat, &policy.syn, 1, now) {
        Some(Reason::RateLimitedSyn)
    } else if policy.packets.enabled() && !take(&mut state.packets_tat, &policy.packets, 1, now) {
        Some(Reason::RateLimitedPackets)
    } else if policy.bytes.enabled() && !take(&mut state.bytes_tat, &policy.bytes, len, now) {
        Some(Reason::RateLimitedBytes)
    } else {
        None
    };
    if let Some(reason) = exceeded {
        atomic_add(&mut state.limited, 1);
        // Bans are for tracked sources: an aggregate prefix holds untracked, likely spoofed
        // ones, and banning it would shut out whoever else lives there.
        if tracked && config.autoban() && !config.monitor() && !policy.monitor() {
            count_offence(state, &key, reason, info, now, config);
        }
    }
    exceeded
}

/// A new source's state (full buckets), built in this CPU's scratch value: at 72 bytes it
/// does not fit the BPF stack next to the rest.
#[inline(always)]
fn fresh_state(now: u64) -> Option<&'static SourceState> {
    let fresh = NEW_SOURCE.get_ptr_mut(0)?;
    // SAFETY: this CPU's value of a per-CPU map that only this code uses. XDP does not nest
    // on a CPU; were it preempted (PREEMPT_RT), the other writer could only store another
    // fresh state, the same up to its timestamp.
    let fresh = unsafe { &mut *fresh };
    *fresh = SourceState { last_seen_ns: now, window_start_ns: now, ..SourceState::default() };
    Some(fresh)
}

/// Whether a new source may take a bucket of its own: always when admission is unlimited,
/// otherwise within the admission budget shared by all CPUs.
#[inline(always)]
fn admitted(config: &RuntimeConfig, now: u64) -> bool {
    if !config.admission.enabled() {
        return true;
    }
    match ADMISSION.get_ptr_mut(0) {
        // SAFETY: a pointer into the ADMISSION value, valid for this program run.
        Some(tat) => take(unsafe { &mut *tat }, &config.admission, 1, now),
        None => true,
    }
}

/// Count a frame over a limit in the source's auto-ban window; at the threshold, ban it.
#[inline(always)]
fn count_offence(
    state: &mut SourceState,
    key: &SourceKey,
    reason: Reason,
    info: &IpInfo,
    now: u64,
    config: &RuntimeConfig,
) {
    if now.saturating_sub(state.window_start_ns) > config.autoban_window_ns {
        // A new window. Racy across CPUs, which at worst restarts a window twice.
        state.window_start_ns = now;
        state.window_limited = 0;
    }
    // Exactly one CPU sees the count reach the threshold, so a source is banned once.
    let Some(before) = fetch_add(&mut state.window_limited, 1) else {
        return;
    };
    if before + 1 != config.autoban_threshold as u64 {
        return;
    }
    let offences = fetch_add(&mut state.offences, 1).unwrap_or(0) + 1;
    // The next offence after this ban starts counting afresh.
    state.window_start_ns = now;
    state.window_limited = 0;
    let ban_ns = config.ban_ns(offences);
    // The agent's prefilter rebuild checks these two counters to tell whether a ban raced it.
    bump_prefilter(prefilter::BANS_STARTED);
    let entry = ListEntry {
        expires_at_ns: now.saturating_add(ban_ns),
        created_at_unix: now.saturating_add(config.realtime_offset_ns) / 1_000_000_000,
        origin: Origin::Auto as u32,
        _reserved: 0,
    };
    let written = if key.family == FAMILY_V4 {
        let [a, b, c, d, ..] = key.addr;
        if key.prefix_len >= 32 {
            BLOCK_V4_HOSTS.insert([a, b, c, d], entry, 0)
        } else {
            mark_in_use(Trie::BlockV4);
            BLOCK_V4.insert(LpmKey::new(key.prefix_len as u32, [a, b, c, d]), entry, 0)
        }
    } else if key.prefix_len >= 128 {
        BLOCK_V6_HOSTS.insert(key.addr, entry, 0)
    } else {
        mark_in_use(Trie::BlockV6);
        BLOCK_V6.insert(LpmKey::new(key.prefix_len as u32, key.addr), entry, 0)
    };
    if written.is_ok() {
        mark_banned(key);
    }
    bump_prefilter(prefilter::BANS_DONE);
    if written.is_err() {
        health(Health::BanWriteFailed);
        return;
    }
    emit(|e| {
        e.ts_ns = now;
        e.ban_ns = ban_ns;
        e.offences = offences;
        e.addr = key.addr;
        e.reason = reason as u32;
        e.dst_port = info.dst_port.unwrap_or(0);
        e.kind = EventKind::Ban as u8;
        e.family = key.family;
        e.prefix_len = key.prefix_len;
        e.policy = key.policy;
        e.l4_proto = info.l4_proto;
    });
}

/// Set the blocklist bit of a banned source's prefilter slot, after its entry is written. A
/// ban wider than a slot, or a bit that contention keeps from being set, makes the program
/// bypass the family's blocklist bits until the agent's next rebuild covers the ban.
#[inline(always)]
fn mark_banned(key: &SourceKey) {
    let (slot, bypass) = if key.family == FAMILY_V4 {
        let [a, b, c, d, ..] = key.addr;
        let fits = key.prefix_len >= prefilter::V4_SLOT_PREFIX;
        (fits.then(|| slot_v4([a, b, c, d])), prefilter::BYPASS_BLOCK_V4)
    } else {
        let fits = key.prefix_len >= prefilter::V6_SLOT_PREFIX;
        (fits.then(|| slot_v6(&key.addr)), prefilter::BYPASS_BLOCK_V6)
    };
    let set = slot.is_some_and(|slot| {
        let (word, bit) = prefilter::position(slot, ListBit::Block);
        PREFILTER.get_ptr_mut(word).is_some_and(|w| {
            // SAFETY: a pointer into the PREFILTER value, valid for this program run.
            fetch_or(unsafe { &mut *w }, 1 << bit)
        })
    });
    if !set && let Some(flag) = PREFILTER.get_ptr_mut(bypass) {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(flag, 1) };
    }
}

#[inline(always)]
fn bump_prefilter(word: u32) {
    if let Some(n) = PREFILTER.get_ptr_mut(word) {
        // SAFETY: a pointer into the PREFILTER value, valid for this program run.
        atomic_add(unsafe { &mut *n }, 1);
    }
}

/// Mark a trie as holding entries (the agent clears the mark only when it finds it empty).
#[inline(always)]
fn mark_in_use(trie: Trie) {
    if let Some(flag) = TRIES_IN_USE.get_ptr_mut(trie as u32) {
        // SAFETY: a pointer into the array map's value, valid for this program run.
        unsafe { *flag = 1 };
    }
}

/// Report a dropped frame, within the sampling budget shared by all CPUs.
#[inline(always)]
fn sample_drop(d: &Decision, config: &RuntimeConfig) {
    if !config.drop_samples.enabled() {
        return;
    }
    let Some(tat) = SAMPLER.get_ptr_mut(0) else {
        return;
    };
    let now = if d.now != 0 {
        d.now
    } else {
        // Only malformed drops get here without a clock read.
        coarse_ns()
    };
    // SAFETY: `tat` points into the SAMPLER value, valid for this program run.
    if !take(unsafe { &mut *tat }, &config.drop_samples, 1, now) {
        return;
    }
    emit(|e| {
        e.ts_ns = now;
        e.reason = d.reason as u32;
        e.kind = EventKind::Drop as u8;
        if let Some(info) = &d.info {
            e.addr = info.src;
            e.family = info.family;
            e.prefix_len = if info.family == FAMILY_V4 { 32 } else { 128 };
            e.dst_port = info.dst_port.unwrap_or(0);
            e.l4_proto = info.l4_proto;
        }
    });
}

/// Reserve an event in the ring buffer, fill it in place (events are too large for the BPF
/// stack budget next to the parser's), submit it; count it as lost when the buffer is full.
#[inline(always)]
fn emit(fill: impl FnOnce(&mut Event)) {
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        health(Health::EventsLost);
        return;
    };
    // SAFETY: the reserved memory is ours until submit; zeroing makes every field initialised
    // (Event is plain integers) before `fill` writes the ones it knows.
    let event = unsafe {
        let ptr = entry.as_mut_ptr();
        core::ptr::write_bytes(ptr, 0, 1);
        &mut *ptr
    };
    fill(event);
    entry.submit(0);
}

#[inline(always)]
fn health(slot: Health) {
    if let Some(n) = HEALTH.get_ptr_mut(slot as u32) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while the program runs here.
        unsafe { *n += 1 };
    }
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
    // SAFETY: `counter` is an aligned u64 inside a map value. The result is unused, so this is
    // the plain atomic add that every BPF CPU version has.
    unsafe { atomic_xadd::<u64, u64, { Relaxed }>(counter, value) };
}

/// Set bits of a word that several CPUs and the agent update. Returns false under persistent
/// contention (nothing set then).
#[inline(always)]
fn fetch_or(word: &mut u64, bits: u64) -> bool {
    let word: *mut u64 = word;
    // SAFETY: `word` is an aligned u64 inside a map value.
    let mut current = unsafe { core::ptr::read_volatile(word) };
    for _ in 0..CAS_ATTEMPTS {
        if current & bits == bits {
            return true;
        }
        // SAFETY: as above; every writer updates it atomically.
        let (actual, swapped) =
            unsafe { atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(word, current, current | bits) };
        if swapped {
            return true;
        }
        current = actual;
    }
    false
}

/// Add to a counter that several CPUs update and return the value before, or `None` under
/// persistent contention (nothing added then). A compare-and-swap loop, because rustc hands
/// bpf-linker `--cpu generic`, where LLVM refuses a fetching add.
#[inline(always)]
fn fetch_add(counter: &mut u64, value: u64) -> Option<u64> {
    let counter: *mut u64 = counter;
    // SAFETY: `counter` is an aligned u64 inside a map value.
    let mut current = unsafe { core::ptr::read_volatile(counter) };
    for _ in 0..CAS_ATTEMPTS {
        // SAFETY: as above; every CPU updates it atomically.
        let (actual, swapped) = unsafe {
            atomic_cxchg::<u64, { Relaxed }, { Relaxed }>(
                counter,
                current,
                current.wrapping_add(value),
            )
        };
        if swapped {
            return Some(current);
        }
        current = actual;
    }
    None
}

#[inline(always)]
fn count(slot: u32, len: u64) {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value of this CPU; nothing else writes it while the program runs here.
        let counter: &mut Counter = unsafe { &mut *counter };
        counter.packets += 1;
        counter.bytes += len;
    }
}

/// The benchmark floor: what an XDP program costs that does nothing but pass. Never attached
/// by the agent; `cargo xtask bench` measures shield's paths against it.
#[xdp]
pub fn floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
