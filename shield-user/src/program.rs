//! The embedded XDP program and its maps: load it (adopting pinned maps), and typed handles on
//! every map.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray},
    programs::Xdp,
};
use shield_common::{
    config::RuntimeConfig,
    counters::Counter,
    lists::ListEntry,
    maps::{self, LAYOUT_VERSION},
    policy::Policy,
    source::{SourceKey, SourceState},
};
use thiserror::Error;

/// The compiled XDP program, built by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shield"));

pub type ListV4 = LpmTrie<MapData, [u8; 4], ListEntry>;
pub type ListV6 = LpmTrie<MapData, [u8; 16], ListEntry>;

#[derive(Debug, Error)]
pub enum ProgramError {
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
    #[error("loading the XDP program into the kernel failed: {0}")]
    Verify(#[source] Box<aya::programs::ProgramError>),
}

/// The directory pins of this build's map layout live in, under `pin_root`.
pub fn pin_dir(pin_root: &Path) -> PathBuf {
    pin_root.join(format!("v{LAYOUT_VERSION}"))
}

/// Every map of the program, typed.
pub struct Maps {
    pub allow_v4: ListV4,
    pub allow_v6: ListV6,
    pub block_v4: ListV4,
    pub block_v6: ListV6,
    pub buckets: HashMap<MapData, SourceKey, SourceState>,
    pub policies: Array<MapData, Policy>,
    pub port_policy: Array<MapData, u32>,
    pub counters: PerCpuArray<MapData, Counter>,
    pub config: Array<MapData, RuntimeConfig>,
}

/// The loaded program with its maps.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub maps: Maps,
}

impl Loaded {
    /// Load the program, pinning its maps in `pin_dir` (or adopting the maps already pinned
    /// there), and load the XDP program into the kernel (verifier included).
    pub fn load(pin_dir: &Path) -> Result<Loaded, ProgramError> {
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_dir)
            .load(OBJECT)
            .map_err(|e| ProgramError::Load { pin_dir: pin_dir.to_owned(), source: Box::new(e) })?;
        let maps = Maps {
            allow_v4: take(&mut ebpf, maps::ALLOW_V4)?,
            allow_v6: take(&mut ebpf, maps::ALLOW_V6)?,
            block_v4: take(&mut ebpf, maps::BLOCK_V4)?,
            block_v6: take(&mut ebpf, maps::BLOCK_V6)?,
            buckets: take(&mut ebpf, maps::BUCKETS)?,
            policies: take(&mut ebpf, maps::POLICIES)?,
            port_policy: take(&mut ebpf, maps::PORT_POLICY)?,
            counters: take(&mut ebpf, maps::COUNTERS)?,
            config: take(&mut ebpf, maps::CONFIG)?,
        };
        let mut loaded = Loaded { ebpf, maps };
        loaded.xdp()?.load().map_err(|e| ProgramError::Verify(Box::new(e)))?;
        Ok(loaded)
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp, ProgramError> {
        self.ebpf
            .program_mut(maps::PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or(ProgramError::MissingProgram(maps::PROGRAM))
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProgramError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProgramError::MissingMap(name))?;
    T::try_from(map).map_err(|e| ProgramError::Map { name, source: Box::new(e) })
}
