//! The list prefilter: for each list, one bit per IPv4 /24 and per hashed IPv6 /48 saying
//! whether the list may hold an entry overlapping it, so the program skips the list lookups
//! for sources no entry can cover (most traffic). Bits may be set needlessly (a false
//! positive costs the lookups it would have made anyway); a covered source's bit is never
//! clear.
//!
//! Layout of the `PREFILTER` array (u64 words): the bitmap, 32 slots per word and two bits
//! per slot (bit 2k: allowlist, bit 2k+1: blocklist), then the control words below.

/// Slots of IPv4: one per /24.
pub const V4_SLOT_PREFIX: u8 = 24;
pub const V4_SLOTS: u32 = 1 << V4_SLOT_PREFIX;
/// Slots of IPv6: /48 prefixes hashed into 2^20 slots.
pub const V6_SLOT_PREFIX: u8 = 48;
const V6_SLOT_BITS: u32 = 20;
pub const V6_SLOTS: u32 = 1 << V6_SLOT_BITS;
pub const SLOTS_PER_WORD: u32 = 32;
/// Words of the bitmap.
pub const BITMAP_WORDS: u32 = (V4_SLOTS + V6_SLOTS) / SLOTS_PER_WORD;
/// Control word: non-zero while the blocklist bits of a family cannot be trusted (the kernel
/// banned a prefix wider than a slot; the agent's next rebuild covers it and clears this).
pub const BYPASS_BLOCK_V4: u32 = BITMAP_WORDS;
pub const BYPASS_BLOCK_V6: u32 = BITMAP_WORDS + 1;
/// Control words: bans the kernel started and finished writing (entry, then bits), so the
/// agent can tell whether a ban raced its rebuild.
pub const BANS_STARTED: u32 = BITMAP_WORDS + 2;
pub const BANS_DONE: u32 = BITMAP_WORDS + 3;
/// Entries of the `PREFILTER` array.
pub const WORDS: u32 = BITMAP_WORDS + 4;

/// A list's bit within a slot's pair.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListBit {
    Allow = 0,
    Block = 1,
}

impl ListBit {
    /// This list's bit in every slot of a word.
    pub const fn word_mask(self) -> u64 {
        match self {
            ListBit::Allow => 0x5555_5555_5555_5555,
            ListBit::Block => 0xaaaa_aaaa_aaaa_aaaa,
        }
    }
}

/// The slot of an IPv4 source.
#[inline(always)]
pub fn slot_v4(addr: [u8; 4]) -> u32 {
    u32::from_be_bytes(addr) >> (32 - V4_SLOT_PREFIX as u32)
}

/// The slot of an IPv6 source: its /48, hashed.
#[inline(always)]
pub fn slot_v6(addr: &[u8; 16]) -> u32 {
    let [a, b, c, d, e, f, ..] = *addr;
    hash48(u64::from_be_bytes([0, 0, a, b, c, d, e, f]))
}

#[inline(always)]
fn hash48(prefix: u64) -> u32 {
    V4_SLOTS + (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - V6_SLOT_BITS)) as u32
}

/// Where a slot's bit for a list lives: (word index, bit index).
#[inline(always)]
pub fn position(slot: u32, list: ListBit) -> (u32, u32) {
    (slot / SLOTS_PER_WORD, (slot % SLOTS_PER_WORD) * 2 + list as u32)
}

/// Which lists may cover a source, from its word of the bitmap: (allowlist, blocklist).
#[inline(always)]
pub fn lists_in(word: u64, slot: u32) -> (bool, bool) {
    let pair = word >> ((slot % SLOTS_PER_WORD) * 2);
    (pair & 1 != 0, pair & 2 != 0)
}

/// The slots an entry overlaps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slots {
    /// Consecutive slots (IPv4; or every IPv6 slot for a prefix wider than 2^20 /48s).
    Range(core::ops::Range<u32>),
    /// The hashed slots of `count` consecutive /48s starting at `first` (an IPv6 prefix
    /// between /28 and /48).
    Hashed { first: u64, count: u64 },
}

impl Slots {
    pub fn of_v4(addr: [u8; 4], prefix_len: u8) -> Slots {
        let first = slot_v4(crate::source::mask(addr, prefix_len.min(V4_SLOT_PREFIX)));
        let count = 1u32 << (V4_SLOT_PREFIX - prefix_len.min(V4_SLOT_PREFIX));
        Slots::Range(first..first + count)
    }

    pub fn of_v6(addr: &[u8; 16], prefix_len: u8) -> Slots {
        if prefix_len >= V6_SLOT_PREFIX {
            let slot = slot_v6(addr);
            return Slots::Range(slot..slot + 1);
        }
        let wider_by = u32::from(V6_SLOT_PREFIX - prefix_len);
        if wider_by >= V6_SLOT_BITS {
            return Slots::Range(V4_SLOTS..V4_SLOTS + V6_SLOTS);
        }
        let [a, b, c, d, e, f, ..] = crate::source::mask(*addr, prefix_len);
        Slots::Hashed { first: u64::from_be_bytes([0, 0, a, b, c, d, e, f]), count: 1 << wider_by }
    }
}

impl Iterator for Slots {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Slots::Range(r) => r.next(),
            Slots::Hashed { first, count } => {
                if *count == 0 {
                    return None;
                }
                *count -= 1;
                let slot = hash48(*first);
                *first += 1;
                Some(slot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(slots: Slots, slot: u32) -> bool {
        slots.into_iter().any(|s| s == slot)
    }

    #[test]
    fn ipv4_slots_are_slash_24s() {
        assert_eq!(slot_v4([198, 18, 3, 7]), slot_v4([198, 18, 3, 200]));
        assert_ne!(slot_v4([198, 18, 3, 7]), slot_v4([198, 18, 4, 7]));
        assert_eq!(Slots::of_v4([198, 18, 3, 7], 32).count(), 1);
        assert_eq!(Slots::of_v4([198, 18, 3, 0], 25).count(), 1);
        assert_eq!(Slots::of_v4([198, 18, 0, 0], 16).count(), 256);
        assert_eq!(Slots::of_v4([0, 0, 0, 0], 0).count(), V4_SLOTS as usize);
    }

    #[test]
    fn an_entry_covers_the_slot_of_every_address_inside_it() {
        for (net, len, inside) in [
            ([198, 18, 3, 7], 32, [198, 18, 3, 7]),
            ([198, 18, 0, 0], 15, [198, 19, 200, 1]),
            ([10, 0, 0, 0], 8, [10, 255, 255, 255]),
        ] {
            assert!(covers(Slots::of_v4(net, len), slot_v4(inside)), "{net:?}/{len}");
        }
        let base = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // (prefix length, a byte past the prefix that differs inside it)
        for (len, byte) in [
            (128, None),
            (64, Some(9)),
            (48, Some(7)),
            (40, Some(5)),
            (32, Some(5)),
            (28, Some(4)),
            (16, Some(3)),
            (0, Some(0)),
        ] {
            let mut inside = base;
            if let Some(i) = byte {
                inside[i] ^= 0x01;
            }
            assert!(covers(Slots::of_v6(&base, len), slot_v6(&inside)), "/{len}");
        }
        assert_eq!(Slots::of_v6(&base, 48).count(), 1);
        assert_eq!(Slots::of_v6(&base, 40).count(), 256);
    }

    #[test]
    fn slots_stay_inside_the_bitmap() {
        let addr = [0xff; 16];
        assert!(Slots::of_v6(&addr, 30).all(|s| (V4_SLOTS..V4_SLOTS + V6_SLOTS).contains(&s)));
        assert!(slot_v4([255; 4]) < V4_SLOTS);
        let (word, bit) = position(V4_SLOTS + V6_SLOTS - 1, ListBit::Block);
        assert_eq!((word, bit), (BITMAP_WORDS - 1, 63));
    }

    #[test]
    fn a_word_reports_each_list_of_a_slot() {
        let (_, allow_bit) = position(37, ListBit::Allow);
        let (_, block_bit) = position(37, ListBit::Block);
        assert_eq!(lists_in(1 << allow_bit, 37), (true, false));
        assert_eq!(lists_in(1 << block_bit, 37), (false, true));
        assert_eq!(lists_in(1 << block_bit, 38), (false, false));
        assert_eq!(ListBit::Block.word_mask() & (1 << block_bit), 1 << block_bit);
    }
}
