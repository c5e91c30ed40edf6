//! `shield run`: the privileged agent. Loads and attaches the program, owns its maps, serves
//! the control API on a Unix socket, expires list entries, and detaches on a clean stop.

pub mod attach;
pub mod bpffs;
mod lock;
pub mod server;
pub mod shield;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::signal::unix::{SignalKind, signal};

use self::{attach::AttachMode, shield::Shield};
use crate::{
    api::{self, InterfaceStatus},
    program::{self, Loaded},
};

/// How often expired list entries are removed from the maps.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `shield run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Interface to protect (repeat for several).
    #[arg(long = "iface", short = 'i', required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: AttachMode,
    /// Control socket path.
    #[arg(long, default_value = api::DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,
    /// Where program links and maps are pinned (on a bpffs).
    #[arg(long, default_value = shield_common::maps::DEFAULT_PIN_ROOT, value_name = "DIR")]
    pub pin_root: PathBuf,
    /// On stop, leave the program attached (for an upgrade: the next agent adopts it).
    #[arg(long)]
    pub keep_attached: bool,
    /// Start in monitor mode: nothing is dropped, would-be drops are counted.
    #[arg(long)]
    pub monitor: bool,
}

/// Run the agent until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    require_root()?;
    for name in &args.interfaces {
        attach::ifindex(name)?;
    }
    let run_dir = args.socket.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating the runtime directory {}", run_dir.display()))?;
    let _lock = lock::AgentLock::acquire(&args.socket)?;

    bpffs::ensure_mounted(bpffs::mount_point_for(&args.pin_root))?;
    let pin_dir = program::pin_dir(&args.pin_root);
    std::fs::create_dir_all(&pin_dir)
        .with_context(|| format!("creating the pin directory {}", pin_dir.display()))?;
    let _pin_lock = lock::lock_pin_root(&args.pin_root)?;
    let loaded = Loaded::load(&pin_dir).context("loading the XDP program")?;
    let mut shield = Shield::new(loaded, pin_dir.display().to_string())?;
    if args.monitor {
        shield.global_set(&api::GlobalUpdate { monitor: Some(true), drop_malformed: None })?;
    }

    let mut attachments = Vec::new();
    for name in &args.interfaces {
        match attach::attach(shield.loaded.xdp()?, name, args.mode, &pin_dir) {
            Ok(a) => attachments.push(a),
            Err(e) => {
                // Leave nothing half-done: undo the interfaces already attached.
                for a in attachments {
                    let _ = a.detach();
                }
                return Err(e);
            }
        }
    }
    shield.interfaces = attachments
        .iter()
        .map(|a| InterfaceStatus {
            name: a.interface.clone(),
            ifindex: a.ifindex,
            mode: a.mode.to_owned(),
        })
        .collect();

    let shared = Arc::new(Mutex::new(shield));
    let listener = bind_socket(&args.socket)?;
    let app = server::router(shared.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let expiry = tokio::spawn(expire_loop(shared.clone()));
    tracing::info!(socket = %args.socket.display(), interfaces = ?args.interfaces, "shield is running");

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping"),
        _ = sigint.recv() => tracing::info!("SIGINT: stopping"),
        r = server => bail!("the control API stopped: {r:?}"),
    }
    expiry.abort();
    let _ = std::fs::remove_file(&args.socket);
    for a in attachments {
        if args.keep_attached {
            a.keep();
        } else {
            a.detach()?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "shield run needs root (it loads BPF programs and attaches them to interfaces: CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for bpffs); run it as root or from the systemd unit"
        );
    }
    Ok(())
}

/// Bind the control socket, mode 0660. The agent lock is held, so a socket file left behind
/// is stale and can be replaced.
fn bind_socket(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
    Ok(listener)
}

async fn expire_loop(shared: server::Shared) {
    let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tick.tick().await;
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut s) = shared.lock() {
                s.expire();
            }
        })
        .await;
    }
}
