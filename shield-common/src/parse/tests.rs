//! Parser edge cases that only the host can reach (frames shorter than an Ethernet header); the
//! full malformed corpus runs against both this parser and the kernel in `shield-tests`.

use super::*;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

#[test]
fn frames_shorter_than_ethernet_are_malformed() {
    for len in 0..ETH_HLEN {
        let f = vec![0u8; len];
        assert_eq!(parse(f.as_slice()), Err(Malformed::Ethernet), "len {len}");
    }
}

#[test]
fn bare_ethernet_of_unknown_type_is_exempt() {
    assert_eq!(parse(eth(0x88cc).as_slice()), Ok(Parsed::Exempt));
}

#[test]
fn ipv4_ethertype_with_nothing_after_is_malformed() {
    assert_eq!(parse(eth(ETHERTYPE_IPV4).as_slice()), Err(Malformed::Ipv4));
}

#[test]
fn reads_past_the_bound_fail() {
    let big = vec![0u8; 4096];
    assert!(big.as_slice().read::<4>(MAX_PARSE_OFFSET).is_some());
    assert!(big.as_slice().read::<4>(MAX_PARSE_OFFSET + 1).is_none());
    assert!(big.as_slice().read::<4>(usize::MAX).is_none());
}
