//! The frame parser shared by the XDP program and the host: any bytes, no panic, and what it
//! reports stays inside the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shield_common::parse::{Parsed, parse};

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
        }
        Ok(Parsed::Exempt) | Err(_) => {}
    }
});
