//! The control API's paths and JSON bodies: one definition shared by the agent (server) and
//! the CLI (client). HTTP/JSON over a Unix socket; paths are versioned.

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

/// `PUT /v1/global`: only the fields given change.
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
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    pub entries: usize,
    pub capacity: u32,
}

/// `GET /v1/status`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub program_id: Option<u32>,
    pub pin_dir: String,
    pub interfaces: Vec<InterfaceStatus>,
    pub global: Global,
    pub policies: usize,
    pub maps: Vec<MapFill>,
}

/// `GET /v1/stats`
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stats {
    pub counters: Vec<CounterRow>,
}
