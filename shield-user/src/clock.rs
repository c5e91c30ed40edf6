//! The kernel's clock for BPF (`bpf_ktime_get_ns` is CLOCK_MONOTONIC), so TTLs written by the
//! agent and checked in the kernel use the same time line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds on CLOCK_MONOTONIC, as `bpf_ktime_get_ns` returns them.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The tick of the kernel's coarse monotonic clock (`bpf_ktime_get_coarse_ns`), e.g. 4 ms at
/// HZ=250; 10 ms (the coarsest HZ) if it cannot be read.
pub fn coarse_tick_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_getres writes one timespec through a valid pointer.
    let ok = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0;
    if !ok {
        return 10_000_000;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Monotonic expiry for a TTL from now; `None` = never.
pub fn expiry_after(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => {
            monotonic_ns().saturating_add(ttl.as_nanos().min(u64::MAX as u128) as u64).max(1)
        }
    }
}

/// Time left before a monotonic expiry; `None` = never expires.
pub fn remaining(expires_at_ns: u64) -> Option<Duration> {
    (expires_at_ns != 0).then(|| Duration::from_nanos(expires_at_ns.saturating_sub(monotonic_ns())))
}

/// Wall clock minus the monotonic clock, in nanoseconds: monotonic time + this = Unix time.
pub fn realtime_offset_ns() -> u64 {
    let wall =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    wall.saturating_sub(monotonic_ns())
}
