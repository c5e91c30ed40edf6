//! The program's maps. All are pinned by name, so the agent can adopt them after a restart.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
};
use shield_common::{
    config::RuntimeConfig,
    counters::{COUNTER_SLOTS, Counter},
    events::Health,
    lists::ListEntry,
    maps::{
        ALLOW_V4_CAPACITY, ALLOW_V6_CAPACITY, BLOCK_V4_CAPACITY, BLOCK_V6_CAPACITY,
        BUCKETS_CAPACITY, EVENTS_BYTES,
    },
    policy::{MAX_POLICIES, PORT_POLICY_SLOTS, Policy},
    source::{SourceKey, SourceState},
};

pub type LpmKey<K> = Key<K>;
pub type ListV4 = LpmTrie<[u8; 4], ListEntry>;
pub type ListV6 = LpmTrie<[u8; 16], ListEntry>;

#[map]
pub static ALLOW_V4: ListV4 = LpmTrie::pinned(ALLOW_V4_CAPACITY, 0);
#[map]
pub static ALLOW_V6: ListV6 = LpmTrie::pinned(ALLOW_V6_CAPACITY, 0);
#[map]
pub static BLOCK_V4: ListV4 = LpmTrie::pinned(BLOCK_V4_CAPACITY, 0);
#[map]
pub static BLOCK_V6: ListV6 = LpmTrie::pinned(BLOCK_V6_CAPACITY, 0);
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
pub static HEALTH: PerCpuArray<u64> = PerCpuArray::pinned(Health::COUNT, 0);
