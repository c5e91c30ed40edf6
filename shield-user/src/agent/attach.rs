//! Attaching the program to interfaces: fresh attach with a pinned link, adoption of a link
//! pinned by an earlier agent (atomic program replacement), and detach on a clean stop.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use aya::programs::{
    Xdp, XdpMode,
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpLinkId},
};

/// How to attach: as clap parses it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Native (driver) mode, falling back to generic with a warning.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// A link this agent holds, pinned so protection outlives the process.
pub struct Attachment {
    pub interface: String,
    pub ifindex: u32,
    pub mode: &'static str,
    link: PinnedLink,
}

/// Index of a network interface, or a clear error.
pub fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c =
        CString::new(name).map_err(|_| anyhow!("interface name '{name}' contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!(
            "interface '{name}' does not exist in this network namespace (list them with `ip link`)"
        );
    }
    Ok(index)
}

/// Pin path of the link on `interface`.
pub fn link_pin(pin_dir: &Path, interface: &str) -> PathBuf {
    pin_dir.join(format!("link-{interface}"))
}

/// Attach `xdp` to `interface`. If an earlier agent left a pinned link there, replace its
/// program atomically (no window without protection); otherwise attach fresh and pin.
pub fn attach(
    xdp: &mut Xdp,
    interface: &str,
    mode: AttachMode,
    pin_dir: &Path,
) -> anyhow::Result<Attachment> {
    let ifindex = ifindex(interface)?;
    let pin = link_pin(pin_dir, interface);
    if pin.exists() {
        let pinned = PinnedLink::from_pin(&pin)
            .with_context(|| format!("opening the pinned link {}", pin.display()))?;
        let fd_link: FdLink = pinned.into();
        let xdp_link = XdpLink::try_from(fd_link).context("the pinned link is not an XDP link")?;
        let id = xdp.attach_to_link(xdp_link).with_context(|| {
            format!(
                "replacing the program on {interface} through the pinned link {}",
                pin.display()
            )
        })?;
        // The link is pinned already: keep a handle on the pin, then close the fd the program
        // took (the pin keeps the link alive throughout).
        let link = PinnedLink::from_pin(&pin)
            .with_context(|| format!("reopening the pinned link {}", pin.display()))?;
        drop(xdp.take_link(id).context("taking ownership of the XDP link")?);
        tracing::info!(interface, "adopted the pinned link; program replaced atomically");
        return Ok(Attachment { interface: interface.to_owned(), ifindex, mode: "adopted", link });
    }
    let (id, mode_name) = match mode {
        AttachMode::Native => (attach_mode(xdp, interface, XdpMode::Driver)?, "native"),
        AttachMode::Generic => (attach_mode(xdp, interface, XdpMode::Skb)?, "generic"),
        AttachMode::Auto => match attach_mode(xdp, interface, XdpMode::Driver) {
            Ok(id) => (id, "native"),
            Err(native_err) => {
                tracing::warn!(interface, error = %native_err, "native XDP failed; falling back to generic mode (slower)");
                (attach_mode(xdp, interface, XdpMode::Skb)?, "generic")
            }
        },
    };
    let link = pin_taken(xdp, id, &pin)?;
    tracing::info!(interface, ifindex, mode = mode_name, "attached");
    Ok(Attachment { interface: interface.to_owned(), ifindex, mode: mode_name, link })
}

fn attach_mode(xdp: &mut Xdp, interface: &str, mode: XdpMode) -> anyhow::Result<XdpLinkId> {
    xdp.attach(interface, mode).map_err(|e| {
        let busy = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| matches!(io.raw_os_error(), Some(libc::EBUSY) | Some(libc::EEXIST)));
        let text = format!("{e:#}");
        if busy || text.contains("busy") || text.contains("exists") {
            anyhow!("interface '{interface}' already has an XDP program attached (another shield agent, or another tool); stop it, or detach it with `ip link set dev {interface} xdp off`")
        } else {
            anyhow!("attaching to '{interface}' in {mode:?} mode failed: {text}")
        }
    })
}

fn pin_taken(xdp: &mut Xdp, id: XdpLinkId, pin: &Path) -> anyhow::Result<PinnedLink> {
    let link = xdp.take_link(id).context("taking ownership of the XDP link")?;
    let fd_link = FdLink::try_from(link).map_err(|e| {
        anyhow!("the XDP link is not a bpf_link ({e}); kernel 5.9 or later is needed")
    })?;
    fd_link.pin(pin).with_context(|| format!("pinning the link at {}", pin.display()))
}

impl Attachment {
    /// Clean stop: unpin and close the link, which detaches the program.
    pub fn detach(self) -> anyhow::Result<()> {
        let fd_link = self
            .link
            .unpin()
            .with_context(|| format!("unpinning the link on {}", self.interface))?;
        drop(fd_link);
        tracing::info!(interface = %self.interface, "detached");
        Ok(())
    }

    /// Stop but keep protecting (for an upgrade): the pin keeps the link alive.
    pub fn keep(self) {
        tracing::info!(interface = %self.interface, "left attached (pinned) for the next agent");
    }
}

/// Whether the pinned link at `pin` still holds its interface: a link detached behind the
/// agent's back (`bpftool link detach`) reports ifindex 0. `None` when the pin cannot be read.
pub fn link_attached(pin: &Path) -> Option<bool> {
    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    #[repr(C)]
    struct ObjGet {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // struct bpf_link_info: type, id, prog_id, then a union whose xdp member starts with
    // ifindex (8-byte aligned, offset 16). 64 bytes covers every member used here.
    let mut info = [0u8; 64];
    let path = CString::new(pin.as_os_str().as_encoded_bytes()).ok()?;
    let mut get =
        ObjGet { pathname: path.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, _pad: 0 };
    // SAFETY: BPF_OBJ_GET reads the attribute struct (valid, sized as passed) and the
    // NUL-terminated path it points to, which outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &mut get as *mut ObjGet, size_of::<ObjGet>())
    };
    if fd < 0 {
        return None;
    }
    let fd = fd as i32;
    let mut attr =
        InfoByFd { bpf_fd: fd as u32, info_len: info.len() as u32, info: info.as_mut_ptr() as u64 };
    // SAFETY: the kernel writes at most `info_len` bytes into `info`, which is that large;
    // `attr` is valid and sized as passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoByFd,
            size_of::<InfoByFd>(),
        )
    };
    // SAFETY: `fd` was returned to us by BPF_OBJ_GET and is closed once.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return None;
    }
    let ifindex = u32::from_ne_bytes([info[16], info[17], info[18], info[19]]);
    Some(ifindex != 0)
}
