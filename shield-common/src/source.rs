//! Per-source state: the key a source is counted under (its address masked to the policy's
//! prefix) and the bucket state the kernel keeps for it.

/// Address family tag in [`SourceKey::family`].
pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Key of the `BUCKETS` map: a source prefix under one policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SourceKey {
    /// The masked address; IPv4 uses the first four bytes, the rest stay zero.
    pub addr: [u8; 16],
    pub family: u8,
    pub prefix_len: u8,
    pub policy: u8,
    pub _reserved: u8,
}
const _: () = assert!(core::mem::size_of::<SourceKey>() == 20);

impl SourceKey {
    #[inline(always)]
    pub fn v4(addr: [u8; 4], prefix_len: u8, policy: u8) -> SourceKey {
        let masked = mask(addr, prefix_len);
        let mut key = SourceKey { family: FAMILY_V4, prefix_len, policy, ..Default::default() };
        let [a, b, c, d] = masked;
        key.addr[0] = a;
        key.addr[1] = b;
        key.addr[2] = c;
        key.addr[3] = d;
        key
    }

    #[inline(always)]
    pub fn v6(addr: [u8; 16], prefix_len: u8, policy: u8) -> SourceKey {
        SourceKey {
            addr: mask(addr, prefix_len),
            family: FAMILY_V6,
            prefix_len,
            policy,
            _reserved: 0,
        }
    }
}

/// Keep the first `prefix_len` bits of `addr`, zero the rest.
#[inline(always)]
pub fn mask<const N: usize>(addr: [u8; N], prefix_len: u8) -> [u8; N] {
    let mut out = addr;
    let mut remaining = prefix_len as u32;
    for byte in out.iter_mut() {
        if remaining >= 8 {
            remaining -= 8;
        } else {
            // remaining in 0..8: keep its top bits.
            let keep = (0xff00u32 >> remaining) as u8;
            *byte &= keep;
            remaining = 0;
        }
    }
    out
}

/// Value of the `BUCKETS` map. The kernel updates the TATs with compare-and-swap, so one source
/// arriving on several CPUs shares one budget.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceState {
    pub packets_tat: u64,
    pub bytes_tat: u64,
    pub syn_tat: u64,
    /// Monotonic time of the last frame seen.
    pub last_seen_ns: u64,
    /// Frames seen from this source (approximate under contention).
    pub packets: u64,
    /// Frames over a limit (approximate under contention).
    pub limited: u64,
    /// Start of the current auto-ban window.
    pub window_start_ns: u64,
    /// Frames over a limit in the current window.
    pub window_limited: u64,
    /// Auto-bans so far (escalation).
    pub offences: u64,
}
const _: () = assert!(core::mem::size_of::<SourceState>() == 72);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn v4_default_prefix_keeps_address() {
        let k = SourceKey::v4([198, 18, 0, 7], 32, 0);
        assert_eq!(&k.addr[..4], &[198, 18, 0, 7]);
        assert_eq!(&k.addr[4..], &[0; 12]);
        assert_eq!(k.family, FAMILY_V4);
    }

    #[test]
    fn v4_slash_24_groups_a_subnet() {
        assert_eq!(SourceKey::v4([198, 18, 5, 7], 24, 1), SourceKey::v4([198, 18, 5, 200], 24, 1));
        assert_ne!(SourceKey::v4([198, 18, 5, 7], 24, 1), SourceKey::v4([198, 18, 6, 7], 24, 1));
    }

    #[test]
    fn odd_prefixes_mask_inside_a_byte() {
        assert_eq!(mask([0xff; 4], 0), [0, 0, 0, 0]);
        assert_eq!(mask([0xff; 4], 1), [0x80, 0, 0, 0]);
        assert_eq!(mask([0xff; 4], 12), [0xff, 0xf0, 0, 0]);
        assert_eq!(mask([0xff; 4], 31), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(
            mask([0xff; 16], 64),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(mask([0xff; 16], 128), [0xff; 16]);
        assert_eq!(mask([0xff; 4], 200), [0xff; 4]);
    }

    #[test]
    fn v6_slash_64_groups_interface_ids() {
        let a: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0xde, 0xad, 0, 0, 0, 0, 0, 1];
        let mut b = a;
        b[15] = 0x99;
        b[8] = 0x11;
        assert_eq!(SourceKey::v6(a, 64, 0), SourceKey::v6(b, 64, 0));
        assert_ne!(SourceKey::v6(a, 128, 0), SourceKey::v6(b, 128, 0));
    }

    proptest! {
        #[test]
        fn mask_agrees_with_integer_masking(addr: u128, len in 0u8..=128) {
            let expected = if len == 0 { 0 } else { addr & (u128::MAX << (128 - len as u32)) };
            prop_assert_eq!(u128::from_be_bytes(mask(addr.to_be_bytes(), len)), expected);
        }
    }
}
