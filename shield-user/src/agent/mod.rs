//! `shield run`: the privileged agent. Loads and attaches the program, owns its maps and the
//! durable state, applies the configuration (and reloads it on SIGHUP), reads the kernel's
//! events, serves the control API on a Unix socket, and detaches on a clean stop.

pub mod attach;
pub mod bpffs;
mod events;
mod lock;
mod notify;
mod privileges;
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
    config::{Config, DEFAULT_CONFIG_PATH},
    program::{self, Loaded},
};

/// How often expired list entries are removed and auto-bans are written to the state file.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(1);

/// Arguments of `shield run`. Options given here win over the configuration file.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (built-in defaults when the default path does not exist).
    #[arg(long, short = 'c', default_value = DEFAULT_CONFIG_PATH, value_name = "FILE")]
    pub config: PathBuf,
    /// Interface to protect (repeat for several); replaces `agent.interfaces`.
    #[arg(long = "iface", short = 'i', value_name = "IFACE")]
    pub interfaces: Vec<String>,
    /// XDP attach mode [default: auto].
    #[arg(long, value_enum)]
    pub mode: Option<AttachMode>,
    /// Where program links and maps are pinned (on a bpffs) [default: /sys/fs/bpf/shield].
    #[arg(long, value_name = "DIR")]
    pub pin_root: Option<PathBuf>,
    /// Where the durable state lives [default: /var/lib/shield].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// On stop, leave the program attached (for an upgrade: the next agent adopts it).
    #[arg(long)]
    pub keep_attached: bool,
    /// Start in monitor mode: nothing is dropped, would-be drops are counted.
    #[arg(long)]
    pub monitor: bool,
    /// Metrics listener address ("" switches metrics off) [default: 127.0.0.1:9477].
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
}

/// Run the agent until SIGINT or SIGTERM. `socket`: the global `--socket`, if given.
pub async fn run(args: RunArgs, socket: Option<PathBuf>) -> anyhow::Result<()> {
    privileges::check()?;
    let checked = Config::load_or_default(&args.config)?;
    let agent = &checked.file.agent;
    let interfaces =
        if args.interfaces.is_empty() { agent.interfaces.clone() } else { args.interfaces.clone() };
    if interfaces.is_empty() {
        bail!(
            "no interface to protect: pass --iface IFACE or set agent.interfaces in {}",
            args.config.display()
        );
    }
    for name in &interfaces {
        attach::ifindex(name)?;
    }
    let socket = socket.unwrap_or_else(|| PathBuf::from(&agent.socket));
    let pin_root = args.pin_root.clone().unwrap_or_else(|| PathBuf::from(&agent.pin_root));
    let state_dir = args.state_dir.clone().unwrap_or_else(|| PathBuf::from(&agent.state_dir));
    let mode = args.mode.unwrap_or(agent.mode);
    let keep_attached = args.keep_attached || agent.keep_attached;
    let agent_socket_group = agent.socket_group.clone();
    if !agent_socket_group.is_empty() {
        group_id(&agent_socket_group)?;
    }
    let metrics_listen =
        args.metrics_listen.clone().unwrap_or_else(|| checked.file.metrics.listen.clone());
    let metrics_addr: Option<std::net::SocketAddr> =
        if metrics_listen.is_empty() {
            None
        } else {
            Some(metrics_listen.parse().with_context(|| {
                format!("--metrics-listen {metrics_listen:?}: use ADDRESS:PORT")
            })?)
        };

    let run_dir = socket.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating the runtime directory {}", run_dir.display()))?;
    let _lock = lock::AgentLock::acquire(&socket)?;

    bpffs::ensure_mounted(bpffs::mount_point_for(&pin_root))?;
    let pin_dir = program::pin_dir(&pin_root);
    std::fs::create_dir_all(&pin_dir)
        .with_context(|| format!("creating the pin directory {}", pin_dir.display()))?;
    let _pin_lock = lock::lock_pin_root(&pin_root)?;
    let loaded = Loaded::load(&pin_dir).context("loading the XDP program")?;
    let global = api::GlobalUpdate { monitor: args.monitor.then_some(true), drop_malformed: None };
    let mut shield = Shield::new(
        loaded,
        pin_dir.display().to_string(),
        checked,
        args.config.clone(),
        state_dir,
        global,
    )?;
    let events =
        shield.loaded.maps.events.take().context("the events ring buffer was already taken")?;

    let mut attachments = Vec::new();
    for (slot, name) in interfaces.iter().enumerate() {
        let attached = (|| {
            if slot > 0 {
                shield.loaded.add_instance()?;
            }
            attach::attach(shield.loaded.xdp(slot as u32)?, name, mode, &pin_dir)
        })();
        match attached {
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
        .enumerate()
        .map(|(slot, a)| InterfaceStatus {
            name: a.interface.clone(),
            ifindex: a.ifindex,
            mode: a.mode.to_owned(),
            slot: slot as u32,
        })
        .collect();

    let shared = Arc::new(Mutex::new(shield));
    let listener = bind_socket(&socket, &agent_socket_group)?;
    let app = server::router(shared.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let housekeeping = tokio::spawn(housekeeping(shared.clone(), pin_dir.clone()));
    let reader = tokio::spawn(events::read(events, shared.clone()));
    let metrics = match metrics_addr {
        // Bind now, so a taken port is an error at start rather than a silent absence.
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics listener {addr} (metrics.listen)"))?;
            Some(tokio::spawn(crate::metrics::serve(listener, shared.clone())))
        }
        None => None,
    };
    tracing::info!(socket = %socket.display(), interfaces = ?interfaces, "shield is running");
    notify::notify(&format!("READY=1\nSTATUS=protecting {}", interfaces.join(", ")));

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut server = server;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration");
                notify::notify("RELOADING=1");
                let shared = shared.clone();
                // Errors are logged and counted by reload itself.
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(mut s) = shared.lock() {
                        let _ = s.reload();
                    }
                })
                .await;
                notify::notify("READY=1");
            }
            r = &mut server => bail!("the control API stopped: {r:?}"),
        }
    }
    notify::notify("STOPPING=1");
    housekeeping.abort();
    reader.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Ok(mut s) = shared.lock() {
        s.flush();
    }
    let _ = std::fs::remove_file(&socket);
    for a in attachments {
        if keep_attached {
            a.keep();
        } else {
            a.detach()?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Bind the control socket, mode 0660, owned by `group` when given (its members may use the
/// CLI). The agent lock is held, so a socket file left behind is stale and can be replaced.
fn bind_socket(path: &std::path::Path, group: &str) -> anyhow::Result<tokio::net::UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
    if !group.is_empty() {
        let gid = group_id(group)?;
        std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| {
            format!(
                "giving the socket {} to group '{group}' (the agent needs CAP_CHOWN, or to be a member of '{group}')",
                path.display()
            )
        })?;
    }
    Ok(listener)
}

/// Ticks between counts of the source map (counting walks the whole map).
const SOURCE_COUNT_TICKS: u64 = 5;

/// Every second: expiries and state writes (under the lock, cheap); every few seconds: count
/// the tracked sources through a handle of its own on the pinned map, outside the lock (a full
/// map takes a while to walk, and scrapes and CLI calls must not wait for it).
async fn housekeeping(shared: server::Shared, pin_dir: PathBuf) {
    let watchdog = notify::watchdog_interval();
    // A round each second, or more often when the watchdog needs petting more often.
    let period = watchdog.map_or(HOUSEKEEPING_INTERVAL, |w| {
        w.clamp(Duration::from_millis(50), HOUSEKEEPING_INTERVAL)
    });
    let mut tick = tokio::time::interval(period);
    let buckets = open_buckets(&pin_dir);
    let buckets = Arc::new(Mutex::new(buckets));
    let mut n = 0u64;
    let mut last_pet = std::time::Instant::now();
    loop {
        tick.tick().await;
        let shared = shared.clone();
        let buckets = buckets.clone();
        let count_sources = n.is_multiple_of(
            SOURCE_COUNT_TICKS
                * (HOUSEKEEPING_INTERVAL.as_millis() / period.as_millis().max(1)) as u64,
        );
        n += 1;
        let round = tokio::task::spawn_blocking(move || {
            let healthy = match shared.lock() {
                Ok(mut s) => {
                    s.expire();
                    true
                }
                Err(_) => false,
            };
            if count_sources
                && let Ok(guard) = buckets.lock()
                && let Some(map) = guard.as_ref()
            {
                let tracked = map.keys().count();
                if let Ok(mut s) = shared.lock() {
                    s.sources_tracked = tracked;
                }
            }
            healthy
        })
        .await;
        // Petted only after a housekeeping round got the lock and finished: a stuck agent
        // stops petting, and systemd restarts it.
        if let Some(every) = watchdog
            && matches!(round, Ok(true))
            && last_pet.elapsed() >= every
        {
            notify::notify("WATCHDOG=1");
            last_pet = std::time::Instant::now();
        }
    }
}

type Buckets = aya::maps::HashMap<
    aya::maps::MapData,
    shield_common::source::SourceKey,
    shield_common::source::SourceState,
>;

fn open_buckets(pin_dir: &std::path::Path) -> Option<Buckets> {
    let path = pin_dir.join(shield_common::maps::BUCKETS);
    let data = aya::maps::MapData::from_pin(&path)
        .map_err(|e| tracing::warn!(error = %e, "cannot open the pinned source map; shield_sources_tracked stays 0"))
        .ok()?;
    Buckets::try_from(aya::maps::Map::LruHashMap(data)).ok()
}

/// The id of a group, or an error saying how to create it.
fn group_id(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| anyhow::anyhow!("group name {name:?} contains a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated string; getgrnam returns null or a pointer to a
    // static entry that we read at once.
    let entry = unsafe { libc::getgrnam(c.as_ptr()) };
    if entry.is_null() {
        bail!(
            "agent.socket_group: group '{name}' does not exist; create it (groupadd {name}) or leave socket_group empty"
        );
    }
    // SAFETY: non-null, points to a valid group entry (see above).
    Ok(unsafe { (*entry).gr_gid })
}
