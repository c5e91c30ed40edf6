//! The capabilities `shield run` needs, checked at start so a missing one is named rather
//! than discovered as an EPERM half-way through loading.
//!
//! Measured (tests/tests/e2e.rs): CAP_BPF to create maps and load the program, CAP_PERFMON
//! because the verifier refuses the program's packet-pointer subtraction (frame length)
//! without it, CAP_NET_ADMIN to attach to interfaces. CAP_SYS_ADMIN only to mount a missing
//! bpffs, and CAP_CHOWN only to hand the socket to a group the agent is not a member of.

use anyhow::bail;

/// (bit, name, why) of every capability the agent cannot run without.
const REQUIRED: [(u32, &str, &str); 3] = [
    (39, "CAP_BPF", "create maps and load the program"),
    (
        38,
        "CAP_PERFMON",
        "the verifier accepts the program's packet-pointer arithmetic only with it",
    ),
    (12, "CAP_NET_ADMIN", "attach XDP programs to interfaces"),
];

/// The effective capability set, from /proc/self/status.
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Refuse to start without the required capabilities, naming the missing ones.
pub fn check() -> anyhow::Result<()> {
    let Some(caps) = effective() else {
        bail!("cannot read this process's capabilities from /proc/self/status");
    };
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|(bit, _, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name, why)| format!("{name} ({why})"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "shield run lacks {}; run it as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (the systemd unit does, with AmbientCapabilities)",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_linux_capability_h() {
        let bits: Vec<u32> = REQUIRED.iter().map(|(b, _, _)| *b).collect();
        assert_eq!(bits, [39, 38, 12]);
    }

    #[test]
    fn reads_own_capabilities() {
        assert!(effective().is_some());
    }
}
