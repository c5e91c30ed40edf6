//! Make sure a BPF filesystem is mounted where pins go, as bpftool and xdp-tools do.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

use anyhow::{Context as _, bail};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether `path` is on a bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `statfs` is plain data; zeroed is a valid value that the call overwrites.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a valid, writable statfs.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mount a bpffs at `mount_point` (normally /sys/fs/bpf) unless one is there already.
pub fn ensure_mounted(mount_point: &Path) -> anyhow::Result<()> {
    if is_bpffs(mount_point) {
        return Ok(());
    }
    std::fs::create_dir_all(mount_point)
        .with_context(|| format!("creating the bpffs mount point {}", mount_point.display()))?;
    let target = CString::new(mount_point.as_os_str().as_bytes())?;
    let source = CString::new("bpf")?;
    let options = CString::new("mode=0700")?;
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target.as_ptr(), source.as_ptr(), 0, options.as_ptr().cast())
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        bail!(
            "no BPF filesystem at {} and mounting one failed: {err}; mount it with `mount -t bpf bpf {}` or run shield as root",
            mount_point.display(),
            mount_point.display()
        );
    }
    Ok(())
}

/// The bpffs mount point that holds `pin_root` (its parent, /sys/fs/bpf by default).
pub fn mount_point_for(pin_root: &Path) -> &Path {
    pin_root.parent().unwrap_or(pin_root)
}
