//! The systemd notification protocol (sd_notify): READY=1 once the program is attached and the
//! state restored, STATUS lines, and WATCHDOG=1 from the housekeeping loop, so a stuck agent is
//! restarted. A no-op when not started by systemd (no NOTIFY_SOCKET).

use std::{os::unix::net::UnixDatagram, time::Duration};

/// Send one notification; errors are ignored (systemd may have gone away).
pub fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        // An abstract socket address: a leading NUL instead of '@'.
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr))
    } else {
        socket.send_to(message.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// How often to pet the watchdog: half of WATCHDOG_USEC, if systemd set one for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID").ok().and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
