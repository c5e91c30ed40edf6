//! Packet memory as a [`Frame`] for the shared parser, with the bounds checks the verifier
//! needs: every read is checked against `data_end`, and offsets are bounded first.
//!
//! `data_end` is re-read (volatile) for every check. Otherwise LLVM proves a check redundant
//! from an earlier length comparison (e.g. "the L4 header ends before the IP datagram, which
//! ends before the frame") and drops it; the verifier cannot follow that proof and rejects
//! the program.

use aya_ebpf::{bindings::xdp_md, programs::XdpContext};
use shield_common::parse::{Frame, MAX_PARSE_OFFSET};

pub struct XdpFrame {
    md: *const xdp_md,
    start: usize,
}

impl XdpFrame {
    #[inline(always)]
    pub fn new(ctx: &XdpContext) -> Self {
        XdpFrame { md: ctx.ctx, start: ctx.data() }
    }

    #[inline(always)]
    fn end(&self) -> usize {
        // SAFETY: `md` is the program's context pointer, valid for the whole run.
        unsafe { core::ptr::read_volatile(&(*self.md).data_end) as usize }
    }

    #[inline(always)]
    pub fn len_u64(&self) -> u64 {
        (self.end() - self.start) as u64
    }
}

impl Frame for XdpFrame {
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.end() - self.start
    }

    #[inline(always)]
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + N > self.end() {
            return None;
        }
        // SAFETY: [at, at + N) lies inside the packet (checked against data_end just above), and
        // [u8; N] has no alignment requirement.
        Some(unsafe { core::ptr::read_unaligned(at as *const [u8; N]) })
    }
}
