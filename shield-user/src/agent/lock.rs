//! One agent per control socket and per pin directory: exclusive `flock`s, released by the
//! kernel when the agent dies, so a crash never leaves a stale lock.

use std::{fs::File, io::Write as _, os::fd::AsRawFd as _, path::Path};

use anyhow::{Context as _, bail};

pub struct AgentLock {
    _file: File,
}

/// Lock the pin root (a directory on bpffs), so two agents never share one set of maps and
/// links even with different sockets.
pub fn lock_pin_root(pin_root: &Path) -> anyhow::Result<File> {
    let dir = File::open(pin_root)
        .with_context(|| format!("opening the pin directory {}", pin_root.display()))?;
    // SAFETY: the fd is valid for the lifetime of `dir`.
    let rc = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another shield agent is already using the pins in {}; stop it first (`systemctl stop shield` or kill it)",
            pin_root.display()
        );
    }
    Ok(dir)
}

impl AgentLock {
    pub fn acquire(socket: &Path) -> anyhow::Result<AgentLock> {
        let path = socket.with_extension("lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the agent lock {}", path.display()))?;
        // SAFETY: the fd is valid for the lifetime of `file`.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another shield agent is already running (pid {}, socket {}); stop it first (`systemctl stop shield` or kill it)",
                holder.trim(),
                socket.display()
            );
        }
        file.set_len(0)?;
        write!(file, "{}", std::process::id())?;
        Ok(AgentLock { _file: file })
    }
}
