//! Reads the kernel's events ring buffer and hands each event to the shield (which logs it,
//! keeps it for `shield events` and persists bans).

use aya::maps::{MapData, RingBuf};
use shield_common::events::Event;
use tokio::io::unix::AsyncFd;

use super::server::Shared;

pub async fn read(ring: RingBuf<MapData>, shield: Shared) {
    // SAFETY: the ring buffer owns its map fd and keeps it open for as long as the AsyncFd
    // (which owns the ring buffer) lives, and nothing else closes it.
    let registered =
        unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            tracing::error!(error = %e, "cannot poll the events ring buffer; no events will be reported");
            return;
        }
    };
    loop {
        let mut guard = match fd.readable_mut().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(error = %e, "polling the events ring buffer failed");
                return;
            }
        };
        let ring = guard.get_inner_mut();
        let mut batch = Vec::new();
        while let Some(item) = ring.next() {
            if item.len() >= size_of::<Event>() {
                // SAFETY: the item holds at least size_of::<Event>() bytes written by the kernel
                // as an Event (plain integers, any bit pattern valid); read_unaligned needs no
                // alignment.
                batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Event>()) });
            }
        }
        guard.clear_ready();
        if batch.is_empty() {
            continue;
        }
        if let Ok(mut s) = shield.lock() {
            for e in &batch {
                s.on_event(e);
            }
        }
    }
}
