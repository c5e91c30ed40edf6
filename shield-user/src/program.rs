//! The embedded XDP program and its maps: load it (adopting pinned maps), and typed handles on
//! every map.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, MapInfo, MapType, PerCpuArray, RingBuf},
    programs::Xdp,
};
use shield_common::{
    config::RuntimeConfig,
    counters::{Counter, MAX_INTERFACES},
    lists::ListEntry,
    maps::{self, LAYOUT_VERSION},
    policy::Policy,
    source::{SourceKey, SourceState},
};
use thiserror::Error;

/// The program's load-time constant naming its interface slot.
const IFACE_SLOT: &str = "IFACE_SLOT";

/// The compiled XDP program, built by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shield"));

pub type ListV4 = LpmTrie<MapData, [u8; 4], ListEntry>;
pub type ListV6 = LpmTrie<MapData, [u8; 16], ListEntry>;
pub type HostsV4 = HashMap<MapData, [u8; 4], ListEntry>;
pub type HostsV6 = HashMap<MapData, [u8; 16], ListEntry>;

#[derive(Debug, Error)]
pub enum ProgramError {
    #[error(
        "the pinned map {path} does not match this build ({what}: pinned {pinned}, expected {expected}). It was made by another shield build with the same layout version; stop every agent, remove {dir} (blocks and policies are restored from the state file and the configuration), and start again"
    )]
    LayoutMismatch {
        path: String,
        dir: String,
        what: &'static str,
        pinned: String,
        expected: String,
    },
    #[error("loading the XDP program failed (pins in {pin_dir}): {source}")]
    Load {
        pin_dir: PathBuf,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("the program object has no map {0}")]
    MissingMap(&'static str),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
    #[error("the program object has no program {0}")]
    MissingProgram(&'static str),
    #[error("mapping the list prefilter into memory failed: {0}")]
    Prefilter(#[source] std::io::Error),
    #[error("shield protects at most {max} interfaces per agent")]
    TooManyInterfaces { max: u32 },
    #[error("loading the XDP program into the kernel failed: {0}")]
    Verify(#[source] Box<aya::programs::ProgramError>),
}

/// The directory pins of this build's map layout live in, under `pin_root`.
pub fn pin_dir(pin_root: &Path) -> PathBuf {
    pin_root.join(format!("v{LAYOUT_VERSION}"))
}

/// What this build expects of each pinned map: (name, type, key size, value size, entries).
fn expected_layout() -> [(&'static str, MapType, u32, u32, u32); 20] {
    use shield_common::{
        counters::COUNTER_SLOTS,
        events::Health,
        policy::{MAX_POLICIES, PORT_POLICY_SLOTS},
    };
    let entry = size_of::<ListEntry>() as u32;
    [
        (maps::ALLOW_V4, MapType::LpmTrie, 8, entry, maps::ALLOW_V4_CAPACITY),
        (maps::ALLOW_V6, MapType::LpmTrie, 20, entry, maps::ALLOW_V6_CAPACITY),
        (maps::BLOCK_V4, MapType::LpmTrie, 8, entry, maps::BLOCK_V4_CAPACITY),
        (maps::BLOCK_V6, MapType::LpmTrie, 20, entry, maps::BLOCK_V6_CAPACITY),
        (maps::ALLOW_V4_HOSTS, MapType::Hash, 4, entry, maps::ALLOW_V4_CAPACITY),
        (maps::ALLOW_V6_HOSTS, MapType::Hash, 16, entry, maps::ALLOW_V6_CAPACITY),
        (maps::BLOCK_V4_HOSTS, MapType::Hash, 4, entry, maps::BLOCK_V4_CAPACITY),
        (maps::BLOCK_V6_HOSTS, MapType::Hash, 16, entry, maps::BLOCK_V6_CAPACITY),
        (maps::TRIES_IN_USE, MapType::Array, 4, 4, maps::Trie::COUNT),
        (maps::PREFILTER, MapType::Array, 4, 8, shield_common::prefilter::WORDS),
        (
            maps::BUCKETS,
            MapType::LruHash,
            size_of::<SourceKey>() as u32,
            size_of::<SourceState>() as u32,
            maps::BUCKETS_CAPACITY,
        ),
        (maps::POLICIES, MapType::Array, 4, size_of::<Policy>() as u32, MAX_POLICIES),
        (maps::PORT_POLICY, MapType::Array, 4, 4, PORT_POLICY_SLOTS),
        (maps::COUNTERS, MapType::PerCpuArray, 4, size_of::<Counter>() as u32, COUNTER_SLOTS),
        (maps::CONFIG, MapType::Array, 4, size_of::<RuntimeConfig>() as u32, 1),
        (maps::EVENTS, MapType::RingBuf, 0, 0, maps::EVENTS_BYTES),
        (maps::SAMPLER, MapType::Array, 4, 8, 1),
        (maps::ADMISSION, MapType::Array, 4, 8, 1),
        (
            maps::AGGREGATES,
            MapType::LruHash,
            size_of::<SourceKey>() as u32,
            size_of::<SourceState>() as u32,
            maps::AGGREGATES_CAPACITY,
        ),
        (maps::HEALTH, MapType::PerCpuArray, 4, 8, Health::COUNT),
    ]
}

/// Refuse pinned maps whose layout this build cannot read, rather than silently reuse them.
pub fn check_pinned_layout(pin_dir: &Path) -> Result<(), ProgramError> {
    for (name, map_type, key, value, entries) in expected_layout() {
        let path = pin_dir.join(name);
        if !path.exists() {
            continue;
        }
        let mismatch = |what, pinned: String, expected: String| ProgramError::LayoutMismatch {
            path: path.display().to_string(),
            dir: pin_dir.display().to_string(),
            what,
            pinned,
            expected,
        };
        let info = MapInfo::from_pin(&path)
            .map_err(|e| mismatch("readable", e.to_string(), "a BPF map".into()))?;
        let pinned_type =
            info.map_type().map(|t| format!("{t:?}")).unwrap_or_else(|e| e.to_string());
        if pinned_type != format!("{map_type:?}") {
            return Err(mismatch("type", pinned_type, format!("{map_type:?}")));
        }
        for (what, got, want) in [
            ("key size", info.key_size(), key),
            ("value size", info.value_size(), value),
            ("capacity", info.max_entries(), entries),
        ] {
            if got != want {
                return Err(mismatch(what, got.to_string(), want.to_string()));
            }
        }
    }
    Ok(())
}

/// Every map of the program, typed.
pub struct Maps {
    pub allow_v4: ListV4,
    pub allow_v6: ListV6,
    pub block_v4: ListV4,
    pub block_v6: ListV6,
    pub allow_v4_hosts: HostsV4,
    pub allow_v6_hosts: HostsV6,
    pub block_v4_hosts: HostsV4,
    pub block_v6_hosts: HostsV6,
    pub tries_in_use: Array<MapData, u32>,
    pub prefilter: crate::prefilter::Prefilter,
    pub buckets: HashMap<MapData, SourceKey, SourceState>,
    pub policies: Array<MapData, Policy>,
    pub port_policy: Array<MapData, u32>,
    pub counters: PerCpuArray<MapData, Counter>,
    pub config: Array<MapData, RuntimeConfig>,
    pub health: PerCpuArray<MapData, u64>,
    /// Taken by the agent's event reader; `None` after that.
    pub events: Option<RingBuf<MapData>>,
}

impl Maps {
    /// Clear the prefilter bits of removed entries, keeping those of every list key in the
    /// maps. Returns the outcome and how many entries were read.
    pub fn rebuild_prefilter(&mut self) -> (crate::prefilter::Rebuild, usize) {
        use crate::lists::ListKind;
        let start = self.prefilter.begin_rebuild();
        let mut nets = Vec::new();
        for kind in [ListKind::Allow, ListKind::Block] {
            nets.extend(self.list(kind).nets().into_iter().map(|n| (kind, n)));
        }
        (self.prefilter.finish_rebuild(start, &nets), nets.len())
    }

    /// The maps of one list, for reading and writing it.
    pub fn list(&mut self, kind: crate::lists::ListKind) -> crate::lists::List<'_> {
        use maps::Trie;

        use crate::lists::{List, ListKind};
        match kind {
            ListKind::Allow => List {
                kind,
                v4: &mut self.allow_v4,
                v6: &mut self.allow_v6,
                hosts_v4: &mut self.allow_v4_hosts,
                hosts_v6: &mut self.allow_v6_hosts,
                tries_in_use: &mut self.tries_in_use,
                prefilter: &self.prefilter,
                tries: (Trie::AllowV4, Trie::AllowV6),
                v4_capacity: maps::ALLOW_V4_CAPACITY,
                v6_capacity: maps::ALLOW_V6_CAPACITY,
            },
            ListKind::Block => List {
                kind,
                v4: &mut self.block_v4,
                v6: &mut self.block_v6,
                hosts_v4: &mut self.block_v4_hosts,
                hosts_v6: &mut self.block_v6_hosts,
                tries_in_use: &mut self.tries_in_use,
                prefilter: &self.prefilter,
                tries: (Trie::BlockV4, Trie::BlockV6),
                v4_capacity: maps::BLOCK_V4_CAPACITY,
                v6_capacity: maps::BLOCK_V6_CAPACITY,
            },
        }
    }
}

/// The loaded program with its maps: one program instance per interface (instance `i`
/// labels its counters with interface slot `i`), all sharing the pinned maps.
pub struct Loaded {
    pub instances: Vec<Ebpf>,
    pub maps: Maps,
    pin_dir: PathBuf,
}

impl Loaded {
    /// Load the program, pinning its maps in `pin_dir` (or adopting the maps already pinned
    /// there), and load the XDP program into the kernel (verifier included).
    pub fn load(pin_dir: &Path) -> Result<Loaded, ProgramError> {
        check_pinned_layout(pin_dir)?;
        let mut ebpf = load_instance(pin_dir, 0)?;
        let maps = Maps {
            allow_v4: take(&mut ebpf, maps::ALLOW_V4)?,
            allow_v6: take(&mut ebpf, maps::ALLOW_V6)?,
            block_v4: take(&mut ebpf, maps::BLOCK_V4)?,
            block_v6: take(&mut ebpf, maps::BLOCK_V6)?,
            allow_v4_hosts: take(&mut ebpf, maps::ALLOW_V4_HOSTS)?,
            allow_v6_hosts: take(&mut ebpf, maps::ALLOW_V6_HOSTS)?,
            block_v4_hosts: take(&mut ebpf, maps::BLOCK_V4_HOSTS)?,
            block_v6_hosts: take(&mut ebpf, maps::BLOCK_V6_HOSTS)?,
            tries_in_use: take(&mut ebpf, maps::TRIES_IN_USE)?,
            prefilter: crate::prefilter::Prefilter::map(take(&mut ebpf, maps::PREFILTER)?)
                .map_err(ProgramError::Prefilter)?,
            buckets: take(&mut ebpf, maps::BUCKETS)?,
            policies: take(&mut ebpf, maps::POLICIES)?,
            port_policy: take(&mut ebpf, maps::PORT_POLICY)?,
            counters: take(&mut ebpf, maps::COUNTERS)?,
            config: take(&mut ebpf, maps::CONFIG)?,
            health: take(&mut ebpf, maps::HEALTH)?,
            events: Some(take(&mut ebpf, maps::EVENTS)?),
        };
        xdp_of(&mut ebpf)?.load().map_err(|e| ProgramError::Verify(Box::new(e)))?;
        Ok(Loaded { instances: vec![ebpf], maps, pin_dir: pin_dir.to_owned() })
    }

    /// Load one more program instance (for one more interface) over the same pinned maps;
    /// returns its interface slot.
    pub fn add_instance(&mut self) -> Result<u32, ProgramError> {
        let slot = self.instances.len() as u32;
        if slot >= MAX_INTERFACES {
            return Err(ProgramError::TooManyInterfaces { max: MAX_INTERFACES });
        }
        let mut ebpf = load_instance(&self.pin_dir, slot)?;
        xdp_of(&mut ebpf)?.load().map_err(|e| ProgramError::Verify(Box::new(e)))?;
        self.instances.push(ebpf);
        Ok(slot)
    }

    /// The program instance of interface slot `slot`.
    pub fn xdp(&mut self, slot: u32) -> Result<&mut Xdp, ProgramError> {
        let ebpf = self
            .instances
            .get_mut(slot as usize)
            .ok_or(ProgramError::MissingProgram(maps::PROGRAM))?;
        xdp_of(ebpf)
    }
}

fn load_instance(pin_dir: &Path, iface_slot: u32) -> Result<Ebpf, ProgramError> {
    EbpfLoader::new()
        .default_map_pin_directory(pin_dir)
        .override_global(IFACE_SLOT, &iface_slot, true)
        .load(OBJECT)
        .map_err(|e| ProgramError::Load { pin_dir: pin_dir.to_owned(), source: Box::new(e) })
}

fn xdp_of(ebpf: &mut Ebpf) -> Result<&mut Xdp, ProgramError> {
    ebpf.program_mut(maps::PROGRAM)
        .and_then(|p| p.try_into().ok())
        .ok_or(ProgramError::MissingProgram(maps::PROGRAM))
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProgramError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProgramError::MissingMap(name))?;
    T::try_from(map).map_err(|e| ProgramError::Map { name, source: Box::new(e) })
}
