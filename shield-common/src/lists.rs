//! Allowlist and blocklist entries: the LPM trie value, with expiry and origin.

/// Who created a list entry.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Added by an operator through the CLI or control API.
    Manual = 0,
    /// Added from the configuration file.
    Config = 1,
    /// Added by the agent's automatic banning.
    Auto = 2,
    /// Added by a list import.
    Import = 3,
}

impl Origin {
    pub const fn from_u32(v: u32) -> Option<Origin> {
        match v {
            0 => Some(Origin::Manual),
            1 => Some(Origin::Config),
            2 => Some(Origin::Auto),
            3 => Some(Origin::Import),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Origin::Manual => "manual",
            Origin::Config => "config",
            Origin::Auto => "auto",
            Origin::Import => "import",
        }
    }
}

/// Value of an allowlist or blocklist entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListEntry {
    /// Expiry on CLOCK_MONOTONIC, 0 = never. The program checks it against the coarse clock, so
    /// an entry lapses up to one tick (1-10 ms) late.
    pub expires_at_ns: u64,
    /// Wall-clock creation time, seconds since the Unix epoch (for operators only).
    pub created_at_unix: u64,
    /// [`Origin`] as u32.
    pub origin: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<ListEntry>() == 24);

impl ListEntry {
    /// Whether the entry is in force at monotonic time `now_ns`.
    #[inline(always)]
    pub const fn active_at(&self, now_ns: u64) -> bool {
        self.expires_at_ns == 0 || now_ns < self.expires_at_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_expiry_never_expires() {
        let e = ListEntry::default();
        assert!(e.active_at(0));
        assert!(e.active_at(u64::MAX));
    }

    #[test]
    fn expiry_is_exclusive() {
        let e = ListEntry { expires_at_ns: 100, ..Default::default() };
        assert!(e.active_at(99));
        assert!(!e.active_at(100));
        assert!(!e.active_at(101));
    }
}
