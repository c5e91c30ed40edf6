//! The control API's paths and JSON bodies: one definition shared by the agent (server) and
//! the CLI (client). HTTP/JSON over a Unix socket; paths are versioned.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::{
    lists::{ListKind, ListedNet},
    policies::{PolicySpec, PortSpec},
    stats::CounterRow,
};

pub const DEFAULT_SOCKET: &str = "/run/shield/shield.sock";

pub const STATUS: &str = "/v1/status";
pub const STATS: &str = "/v1/stats";
pub const POLICIES: &str = "/v1/policies";
pub const GLOBAL: &str = "/v1/global";
pub const RELOAD: &str = "/v1/reload";
pub const EVENTS: &str = "/v1/events";
pub const TOP: &str = "/v1/top";
pub const BLOCK_IMPORT: &str = "/v1/lists/block/import";

/// Path of one list.
pub fn list_path(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Allow => "/v1/lists/allow",
        ListKind::Block => "/v1/lists/block",
    }
}

/// Every error the API returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `POST /v1/lists/{kind}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListAdd {
    /// Address or CIDR, as the operator typed it.
    pub net: String,
    /// Time to live in seconds; none for a permanent entry.
    pub ttl_secs: Option<u64>,
    /// Block even when the range covers allowlisted addresses.
    #[serde(default)]
    pub force: bool,
    /// Why, for the operators who read the list later.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `DELETE /v1/lists/{kind}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListDelete {
    pub net: String,
}

/// `GET /v1/lists/{kind}`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListEntries {
    pub kind: ListKind,
    pub entries: Vec<ListedNet>,
}

/// `POST /v1/lists/block/import`: all or nothing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Import {
    pub nets: Vec<String>,
    pub ttl_secs: Option<u64>,
    /// Replace the previously imported set (entries not in this list are removed, after the
    /// new ones are in place).
    #[serde(default)]
    pub replace: bool,
    /// Check and report, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Import even ranges that cover allowlisted addresses.
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an import did (or, with dry_run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportResult {
    pub dry_run: bool,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    /// Entries in the blocklist after the import.
    pub total: usize,
}

/// `PUT /v1/policies/{name}`: only the fields given change; a new policy starts from the
/// built-in default's values.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PolicyUpdate {
    pub ports: Option<Vec<PortSpec>>,
    pub packets_rate: Option<u64>,
    pub packets_burst: Option<u64>,
    pub bytes_rate: Option<u64>,
    pub bytes_burst: Option<u64>,
    pub syn_rate: Option<u64>,
    pub syn_burst: Option<u64>,
    pub v4_prefix: Option<u8>,
    pub v6_prefix: Option<u8>,
    pub monitor: Option<bool>,
}

/// `GET /v1/policies`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Policies {
    pub policies: Vec<PolicySpec>,
}

/// `GET|PUT /v1/global`: settings for all traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Global {
    /// Monitor mode for everything: would-be drops pass and are counted.
    pub monitor: bool,
    /// Drop malformed frames (default: pass them, counted).
    pub drop_malformed: bool,
}

/// `PUT /v1/global`: only the fields given change (until the next reload).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct GlobalUpdate {
    pub monitor: Option<bool>,
    pub drop_malformed: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    pub ifindex: u32,
    /// native, generic, or adopted (a link pinned by an earlier agent, mode unchanged).
    pub mode: String,
    /// The interface's program instance (and counter label).
    pub slot: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    pub entries: usize,
    pub capacity: u32,
}

/// The outcome of the last reload.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReloadStatus {
    pub succeeded: u64,
    pub failed: u64,
    pub last_ok: Option<bool>,
    pub last_unix: Option<u64>,
    pub last_error: Option<String>,
}

/// `GET /v1/status`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub program_id: Option<u32>,
    pub pin_dir: String,
    pub config: String,
    pub state_dir: String,
    pub interfaces: Vec<InterfaceStatus>,
    pub global: Global,
    pub autoban: bool,
    pub policies: usize,
    pub maps: Vec<MapFill>,
    /// Health counters from the kernel (events lost, failed map writes).
    pub health: Vec<(String, u64)>,
    pub reload: ReloadStatus,
}

/// `GET /v1/stats`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub counters: Vec<CounterRow>,
}

/// One event, as `shield events` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub time_unix: u64,
    /// ban or drop.
    pub kind: String,
    pub reason: String,
    /// The source (bans: the banned prefix).
    pub source: Option<IpNet>,
    pub policy: Option<String>,
    pub l4_proto: u8,
    pub dst_port: u16,
    pub ban_secs: Option<u64>,
    pub offences: Option<u64>,
}

/// `GET /v1/events`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Events {
    pub events: Vec<EventRecord>,
}

/// One source in `shield top`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopSource {
    pub source: IpNet,
    pub policy: String,
    pub packets_per_sec: f64,
    pub limited_per_sec: f64,
    pub packets: u64,
    pub limited: u64,
    pub offences: u64,
}

/// `GET /v1/top`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Top {
    pub interval_ms: u64,
    pub tracked: usize,
    pub sources: Vec<TopSource>,
}
