//! The frame parser shared by the XDP program and the host: any bytes, no panic, and what it
//! reports stays inside the frame; the source's prefilter slot is inside the bitmap and is
//! one of the slots set for any entry covering the source (prefix lengths picked by the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shield_common::{
    parse::{Parsed, parse},
    prefilter::{self, Slots, slot_v4, slot_v6},
    source::mask,
};

fuzz_target!(|frame: &[u8]| {
    match parse(frame) {
        Ok(Parsed::Ip(info)) => {
            assert!(info.family == 4 || info.family == 6);
            // A destination port is only read from TCP or UDP.
            if info.dst_port.is_some() {
                assert!(info.l4_proto == 6 || info.l4_proto == 17);
            }
            // A SYN is only reported for TCP.
            assert!(!info.tcp_syn || info.l4_proto == 6);
            // Prefix lengths whose slot sets stay small enough to walk per input.
            let pick = frame.len() % 4;
            let (slot, mut covering) = if info.family == 4 {
                let len = [32, 24, 20, 16][pick];
                (slot_v4(info.src_v4()), Slots::of_v4(mask(info.src_v4(), len), len))
            } else {
                let len = [128, 64, 48, 40][pick];
                (slot_v6(&info.src), Slots::of_v6(&mask(info.src, len), len))
            };
            assert!(slot / prefilter::SLOTS_PER_WORD < prefilter::BITMAP_WORDS);
            assert!(covering.any(|s| s == slot));
        }
        Ok(Parsed::Exempt) | Err(_) => {}
    }
});
