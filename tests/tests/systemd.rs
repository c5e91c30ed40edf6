//! The systemd unit: `systemd-analyze verify` is clean, and the agent speaks the notification
//! protocol the unit relies on (READY=1 after attach and restore, WATCHDOG=1 while healthy,
//! RELOADING=1 / READY=1 around a reload, STOPPING=1).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::{
    os::unix::net::UnixDatagram,
    time::{Duration, Instant},
};

use shield_tests::{
    agent::{Agent, shield_bin},
    lab::Lab,
};

#[test]
fn unit_file_verifies_clean() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/systemd/shield.service"
    ))
    .unwrap();
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=/usr/local/bin/shield reload",
        "SystemCallFilter=@system-service bpf",
        "ReadWritePaths=/sys/fs/bpf",
        "CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_NET_ADMIN",
    ] {
        assert!(unit.contains(needle), "the unit lacks {needle}");
    }
    // Verify with the executable paths pointing at the binary built here.
    let dir = std::env::temp_dir().join(format!("shield-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shield.service");
    std::fs::write(&file, unit.replace("/usr/local/bin/shield", shield_bin().to_str().unwrap()))
        .unwrap();
    let out =
        std::process::Command::new("systemd-analyze").arg("verify").arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn next(socket: &UnixDatagram, until: Instant) -> Option<String> {
    let mut buf = [0u8; 512];
    socket
        .set_read_timeout(Some(
            until.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
        ))
        .unwrap();
    socket.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Messages until one contains `needle` (or the deadline passes).
fn wait_for(socket: &UnixDatagram, needle: &str, within: Duration) -> Vec<String> {
    let until = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(m) = next(socket, until) {
        let done = m.contains(needle);
        seen.push(m);
        if done {
            break;
        }
    }
    seen
}

#[test]
fn agent_notifies_readiness_pets_the_watchdog_and_reports_reloads() {
    let lab = Lab::new(&[]);
    let dir = Agent::dir_for(&lab);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shield.toml"), "").unwrap();
    let notify_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&notify_path).unwrap();
    let env_socket = format!("NOTIFY_SOCKET={}", notify_path.display());
    let started = Instant::now();
    let mut agent = Agent::start_wrapped(
        &lab,
        &dir.join("shield.sock"),
        &Agent::pin_root_for(&lab),
        &["env", &env_socket, "WATCHDOG_USEC=1000000"],
        &[],
    );
    let ready = wait_for(&socket, "READY=1", Duration::from_secs(10));
    assert!(
        ready.last().is_some_and(|m| m.contains("READY=1") && m.contains("STATUS=protecting")),
        "{ready:?}"
    );
    // By READY, the program is attached: the interface has it.
    let link = lab.run_in(&lab.server_ns, &["ip", "link", "show", &lab.server_if]);
    assert!(String::from_utf8_lossy(&link.stdout).contains("xdp"));
    // The watchdog is petted about every WATCHDOG_USEC / 2 while the agent is healthy.
    let pets = wait_for(&socket, "never", Duration::from_millis(2600))
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(
        (3..=8).contains(&pets),
        "{pets} watchdog notifications in 2.6 s with WATCHDOG_USEC=1s"
    );
    agent.signal(libc::SIGHUP);
    let reload = wait_for(&socket, "READY=1", Duration::from_secs(5));
    assert!(reload.iter().any(|m| m.contains("RELOADING=1")), "{reload:?}");
    assert!(reload.last().is_some_and(|m| m.contains("READY=1")), "{reload:?}");
    agent.stop();
    let stop = wait_for(&socket, "STOPPING=1", Duration::from_secs(5));
    assert!(stop.last().is_some_and(|m| m.contains("STOPPING=1")), "{stop:?}");
    eprintln!("ready after {:?}", started.elapsed());
}
