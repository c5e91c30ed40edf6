//! The list prefilter's agent side: the bitmap memory-mapped from the kernel, bits set before
//! entries are written, and cleared only by a rebuild that kernel bans cannot race.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst},
};

use aya::maps::{Array, IterableMap as _, MapData};
use ipnet::IpNet;
use shield_common::prefilter::{
    BANS_DONE, BANS_STARTED, BITMAP_WORDS, BYPASS_BLOCK_V4, BYPASS_BLOCK_V6, ListBit, Slots, WORDS,
    position,
};

use crate::lists::ListKind;

/// The `PREFILTER` map, mapped into the agent's memory.
pub struct Prefilter {
    words: NonNull<AtomicU64>,
    /// Entries were removed since the last rebuild.
    stale: AtomicBool,
    /// Keeps the map (and its file descriptor) alive while mapped.
    _map: Array<MapData, u64>,
}

// SAFETY: the mapping is shared memory the agent touches only through atomics.
unsafe impl Send for Prefilter {}
// SAFETY: as above.
unsafe impl Sync for Prefilter {}

/// What a rebuild must know from before it read the entries.
#[must_use]
pub struct RebuildStart {
    bans_done: u64,
}

/// How a rebuild ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rebuild {
    /// Bits of removed entries cleared: this many words changed.
    Cleared(usize),
    /// A kernel ban was being written meanwhile; the cleared bits were put back.
    Raced,
}

const BYTES: usize = WORDS as usize * 8;

fn bit(list: ListKind) -> ListBit {
    match list {
        ListKind::Allow => ListBit::Allow,
        ListKind::Block => ListBit::Block,
    }
}

impl Prefilter {
    /// Map the kernel's bitmap (the map is created memory-mappable).
    pub fn map(map: Array<MapData, u64>) -> io::Result<Prefilter> {
        let fd = map.map().fd().as_fd().as_raw_fd();
        // SAFETY: a shared read-write mapping of a BPF array map of exactly BYTES bytes (the
        // kernel rounds it up to whole pages); nothing else in this process maps it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let words = NonNull::new(ptr.cast::<AtomicU64>()).ok_or_else(io::Error::last_os_error)?;
        // Stale until rebuilt: adopted pins may hold bits of entries removed while no agent ran.
        Ok(Prefilter { words, stale: AtomicBool::new(true), _map: map })
    }

    fn word(&self, index: u32) -> &AtomicU64 {
        assert!(index < WORDS, "prefilter word {index} out of range");
        // SAFETY: index is inside the mapping (checked above), which lives as long as self and
        // holds 8-byte-aligned u64 words that the kernel also updates atomically.
        unsafe { &*self.words.as_ptr().add(index as usize) }
    }

    /// Set the bits of every slot `net` overlaps in `list`'s bitmap. Call before writing the
    /// entry, so the program never skips a lookup that would find it.
    pub fn mark(&self, list: ListKind, net: IpNet) {
        let mut pending: Option<(u32, u64)> = None;
        for slot in slots(net) {
            let (word, b) = position(slot, bit(list));
            match &mut pending {
                Some((w, mask)) if *w == word => *mask |= 1 << b,
                _ => {
                    if let Some((w, mask)) = pending.take() {
                        self.word(w).fetch_or(mask, SeqCst);
                    }
                    pending = Some((word, 1 << b));
                }
            }
        }
        if let Some((w, mask)) = pending {
            self.word(w).fetch_or(mask, SeqCst);
        }
    }

    /// Whether every slot `net` overlaps has its bit set in `list`'s bitmap.
    pub fn covers(&self, list: ListKind, net: IpNet) -> bool {
        slots(net).all(|slot| {
            let (word, b) = position(slot, bit(list));
            self.word(word).load(SeqCst) & (1 << b) != 0
        })
    }

    /// Note that an entry was removed: its bits stay set until the next rebuild.
    pub fn note_removed(&self) {
        self.stale.store(true, SeqCst);
    }

    /// Whether entries were removed since the last rebuild.
    pub fn is_stale(&self) -> bool {
        self.stale.load(SeqCst)
    }

    /// Start a rebuild: call before reading the entries from the maps.
    pub fn begin_rebuild(&self) -> RebuildStart {
        self.stale.store(false, SeqCst);
        RebuildStart { bans_done: self.word(BANS_DONE).load(SeqCst) }
    }

    /// Set the bits every entry needs and clear the bits no entry needs any more: `entries`
    /// (read from the maps after [`Prefilter::begin_rebuild`]) give the bits wanted; the
    /// bypass flags are cleared, since the wanted bits now cover every ban. If the kernel
    /// wrote a ban meanwhile, its bit may have been cleared with the rest, so everything
    /// cleared is set again (and the next rebuild tries again).
    pub fn finish_rebuild(&self, start: RebuildStart, entries: &[(ListKind, IpNet)]) -> Rebuild {
        let mut wanted = vec![0u64; BITMAP_WORDS as usize];
        for &(list, net) in entries {
            for slot in slots(net) {
                let (word, b) = position(slot, bit(list));
                wanted[word as usize] |= 1 << b;
            }
        }
        let mut cleared = Vec::new();
        for (index, want) in wanted.iter().enumerate() {
            let word = self.word(index as u32);
            let current = word.load(SeqCst);
            // Bits the kernel could not set itself (wide bans, behind a bypass flag).
            if want & !current != 0 {
                word.fetch_or(*want, SeqCst);
            }
            let extra = current & !want;
            if extra != 0 {
                word.fetch_and(!extra, SeqCst);
                cleared.push((index as u32, extra));
            }
        }
        let bypass = [BYPASS_BLOCK_V4, BYPASS_BLOCK_V6].map(|w| (w, self.word(w).swap(0, SeqCst)));
        // Every ban started by now must have finished before the entries were read.
        if self.word(BANS_STARTED).load(SeqCst) != start.bans_done {
            for (index, bits) in cleared {
                self.word(index).fetch_or(bits, SeqCst);
            }
            for (w, v) in bypass {
                self.word(w).fetch_or(v, SeqCst);
            }
            self.stale.store(true, SeqCst);
            return Rebuild::Raced;
        }
        Rebuild::Cleared(cleared.len())
    }

    /// Whether the program consults the blocklist for every source of a family: (IPv4, IPv6).
    pub fn bypassed(&self) -> (bool, bool) {
        (self.word(BYPASS_BLOCK_V4).load(SeqCst) != 0, self.word(BYPASS_BLOCK_V6).load(SeqCst) != 0)
    }

    /// Slots with a bit set, per list: (allowlist, blocklist).
    pub fn slots_set(&self) -> (u64, u64) {
        (0..BITMAP_WORDS).fold((0, 0), |(a, b), i| {
            let w = self.word(i).load(SeqCst);
            (
                a + u64::from((w & ListBit::Allow.word_mask()).count_ones()),
                b + u64::from((w & ListBit::Block.word_mask()).count_ones()),
            )
        })
    }
}

impl Drop for Prefilter {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once.
        unsafe { libc::munmap(self.words.as_ptr().cast(), BYTES) };
    }
}

fn slots(net: IpNet) -> Slots {
    match net {
        IpNet::V4(n) => Slots::of_v4(n.network().octets(), n.prefix_len()),
        IpNet::V6(n) => Slots::of_v6(&n.network().octets(), n.prefix_len()),
    }
}
