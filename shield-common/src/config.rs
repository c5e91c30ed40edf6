//! The runtime configuration the program reads from the one-entry `CONFIG` map, so settings
//! change without a reload.

/// Flag: monitor mode for everything; drops are counted as would-drops and passed.
pub const CONFIG_MONITOR: u32 = 1 << 0;
/// Flag: drop malformed frames (default: pass them, counted).
pub const CONFIG_DROP_MALFORMED: u32 = 1 << 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub flags: u32,
    pub _reserved: u32,
}
const _: () = assert!(core::mem::size_of::<RuntimeConfig>() == 8);

impl RuntimeConfig {
    #[inline(always)]
    pub const fn monitor(&self) -> bool {
        self.flags & CONFIG_MONITOR != 0
    }

    #[inline(always)]
    pub const fn drop_malformed(&self) -> bool {
        self.flags & CONFIG_DROP_MALFORMED != 0
    }
}
