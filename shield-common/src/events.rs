//! Events from the kernel to the agent through the `EVENTS` ring buffer: every auto-ban and
//! rate-limited samples of drops. Also the health counters (events lost, failed map updates).

/// What happened.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A source was banned automatically.
    Ban = 1,
    /// A sampled dropped frame.
    Drop = 2,
}

impl EventKind {
    pub const fn from_u8(v: u8) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Ban),
            2 => Some(EventKind::Drop),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            EventKind::Ban => "ban",
            EventKind::Drop => "drop",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Monotonic time (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// For bans: its length.
    pub ban_ns: u64,
    /// For bans: the source's offences so far (this ban included).
    pub offences: u64,
    /// Source address (bans: masked to the policy prefix); IPv4 in the first four bytes.
    pub addr: [u8; 16],
    /// [`crate::counters::Reason`] of the drop (bans: the limit that triggered it).
    pub reason: u32,
    pub dst_port: u16,
    /// [`EventKind`] as u8.
    pub kind: u8,
    /// 4, 6, or 0 for frames that were not parsed as IP.
    pub family: u8,
    pub prefix_len: u8,
    pub policy: u8,
    pub l4_proto: u8,
    pub _reserved: u8,
}
const _: () = assert!(core::mem::size_of::<Event>() == 56);

/// Slots of the per-CPU `HEALTH` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Events that did not fit in the ring buffer.
    EventsLost = 0,
    /// Auto-bans that could not be written (blocklist full).
    BanWriteFailed = 1,
    /// New sources that could not be tracked (bucket map update failed).
    SourceWriteFailed = 2,
    /// Frames of sources beyond the admission budget, charged to their aggregate prefix.
    SourcesAggregated = 3,
}

impl Health {
    pub const COUNT: u32 = 4;
    pub const ALL: [Health; 4] = [
        Health::EventsLost,
        Health::BanWriteFailed,
        Health::SourceWriteFailed,
        Health::SourcesAggregated,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Health::EventsLost => "events_lost",
            Health::BanWriteFailed => "ban_write_failed",
            Health::SourceWriteFailed => "source_write_failed",
            Health::SourcesAggregated => "sources_aggregated",
        }
    }
}
