//! Names, sizes and pin locations of the program's maps: the one place both sides read them.

/// Allowlist, IPv4: LPM trie keyed by address bytes, value [`crate::lists::ListEntry`].
pub const ALLOW_V4: &str = "ALLOW_V4";
pub const ALLOW_V6: &str = "ALLOW_V6";
pub const BLOCK_V4: &str = "BLOCK_V4";
pub const BLOCK_V6: &str = "BLOCK_V6";
/// Exact addresses (/32, /128) of each list: hash maps, O(1) however many there are. The LPM
/// tries above hold only shorter prefixes.
pub const ALLOW_V4_HOSTS: &str = "ALLOW_V4_HOSTS";
pub const ALLOW_V6_HOSTS: &str = "ALLOW_V6_HOSTS";
pub const BLOCK_V4_HOSTS: &str = "BLOCK_V4_HOSTS";
pub const BLOCK_V6_HOSTS: &str = "BLOCK_V6_HOSTS";
/// One flag per LPM trie (by [`Trie`]): non-zero when it may hold entries, so the program
/// skips the lookups of empty tries.
pub const TRIES_IN_USE: &str = "TRIES_IN_USE";

/// The list prefilter: per list, a bit per IPv4 /24 and hashed IPv6 /48 that may be covered
/// (see [`crate::prefilter`]).
pub const PREFILTER: &str = "PREFILTER";

/// The LPM tries, as indices of `TRIES_IN_USE`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trie {
    AllowV4 = 0,
    AllowV6 = 1,
    BlockV4 = 2,
    BlockV6 = 3,
}

impl Trie {
    pub const COUNT: u32 = 4;
}
/// Per-source bucket state: LRU hash, [`crate::source::SourceKey`] -> [`crate::source::SourceState`].
pub const BUCKETS: &str = "BUCKETS";
/// Rate policies by id; id 0 is the default policy.
pub const POLICIES: &str = "POLICIES";
/// Policy id for each (protocol, destination port).
pub const PORT_POLICY: &str = "PORT_POLICY";
/// Per-CPU counters by (reason, action).
pub const COUNTERS: &str = "COUNTERS";
/// One-entry runtime configuration.
pub const CONFIG: &str = "CONFIG";
/// Ring buffer of [`crate::events::Event`]s.
pub const EVENTS: &str = "EVENTS";
/// One entry: the shared TAT of the drop-sample budget.
pub const SAMPLER: &str = "SAMPLER";
/// Per-CPU health counters, by [`crate::events::Health`].
pub const HEALTH: &str = "HEALTH";

/// One entry: the shared TAT of the new-source admission budget.
pub const ADMISSION: &str = "ADMISSION";
/// Buckets of untracked sources, per aggregate prefix (LRU).
pub const AGGREGATES: &str = "AGGREGATES";
pub const AGGREGATES_CAPACITY: u32 = 65_536;

/// Bytes of the events ring buffer (a power of two, a multiple of the page size).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// The XDP program's function name.
pub const PROGRAM: &str = "shield";
/// A program in the same object that only passes: the benchmarks' floor.
pub const FLOOR_PROGRAM: &str = "floor";

pub const ALLOW_V4_CAPACITY: u32 = 65_536;
pub const ALLOW_V6_CAPACITY: u32 = 65_536;
pub const BLOCK_V4_CAPACITY: u32 = 1_048_576;
pub const BLOCK_V6_CAPACITY: u32 = 262_144;
pub const BUCKETS_CAPACITY: u32 = 262_144;

/// Version of the map layout. Pins live under `<pin root>/v<LAYOUT_VERSION>` so a build with a
/// different layout never adopts maps it cannot read.
pub const LAYOUT_VERSION: u32 = 7;

/// Default root for pins (a bpffs mount point).
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/shield";
