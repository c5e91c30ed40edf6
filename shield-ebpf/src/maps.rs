//! The program's maps. All are pinned by name, so the agent can adopt them after a restart.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use shield_common::{
    config::RuntimeConfig,
    counters::{COUNTER_SLOTS, Counter},
    events::Health,
    lists::ListEntry,
    maps::{
        AGGREGATES_CAPACITY, ALLOW_V4_CAPACITY, ALLOW_V6_CAPACITY, BLOCK_V4_CAPACITY,
        BLOCK_V6_CAPACITY, BUCKETS_CAPACITY, EVENTS_BYTES, Trie,
    },
    policy::{MAX_POLICIES, PORT_POLICY_SLOTS, Policy},
    prefilter,
    source::{SourceKey, SourceState},
};

pub type LpmKey<K> = Key<K>;
pub type ListV4 = LpmTrie<[u8; 4], ListEntry>;
pub type ListV6 = LpmTrie<[u8; 16], ListEntry>;
pub type HostsV4 = HashMap<[u8; 4], ListEntry>;
pub type HostsV6 = HashMap<[u8; 16], ListEntry>;

#[map]
pub static ALLOW_V4: ListV4 = LpmTrie::pinned(ALLOW_V4_CAPACITY, 0);
#[map]
pub static ALLOW_V6: ListV6 = LpmTrie::pinned(ALLOW_V6_CAPACITY, 0);
#[map]
pub static BLOCK_V4: ListV4 = LpmTrie::pinned(BLOCK_V4_CAPACITY, 0);
#[map]
pub static BLOCK_V6: ListV6 = LpmTrie::pinned(BLOCK_V6_CAPACITY, 0);
// Exact addresses; allocated on insert (1M preallocated entries would cost memory up front).
#[map]
pub static ALLOW_V4_HOSTS: HostsV4 = HashMap::pinned(ALLOW_V4_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
pub static ALLOW_V6_HOSTS: HostsV6 = HashMap::pinned(ALLOW_V6_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
pub static BLOCK_V4_HOSTS: HostsV4 = HashMap::pinned(BLOCK_V4_CAPACITY, BPF_F_NO_PREALLOC);
#[map]
pub static BLOCK_V6_HOSTS: HostsV6 = HashMap::pinned(BLOCK_V6_CAPACITY, BPF_F_NO_PREALLOC);
// Memory-mapped by the agent, which sets and clears bits with atomic operations.
#[map]
pub static PREFILTER: Array<u64> = Array::pinned(prefilter::WORDS, BPF_F_MMAPABLE);
#[map]
pub static TRIES_IN_USE: Array<u32> = Array::pinned(Trie::COUNT, 0);
#[map]
pub static BUCKETS: LruHashMap<SourceKey, SourceState> = LruHashMap::pinned(BUCKETS_CAPACITY, 0);
#[map]
pub static POLICIES: Array<Policy> = Array::pinned(MAX_POLICIES, 0);
#[map]
pub static PORT_POLICY: Array<u32> = Array::pinned(PORT_POLICY_SLOTS, 0);
#[map]
pub static COUNTERS: PerCpuArray<Counter> = PerCpuArray::pinned(COUNTER_SLOTS, 0);
#[map]
pub static CONFIG: Array<RuntimeConfig> = Array::pinned(1, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::pinned(EVENTS_BYTES, 0);
#[map]
pub static SAMPLER: Array<u64> = Array::pinned(1, 0);
#[map]
pub static ADMISSION: Array<u64> = Array::pinned(1, 0);
#[map]
pub static AGGREGATES: LruHashMap<SourceKey, SourceState> =
    LruHashMap::pinned(AGGREGATES_CAPACITY, 0);
/// Per-CPU scratch space for a new source's state (too large for the BPF stack). Not pinned:
/// it holds nothing between runs.
#[map]
pub static NEW_SOURCE: PerCpuArray<SourceState> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static HEALTH: PerCpuArray<u64> = PerCpuArray::pinned(Health::COUNT, 0);
