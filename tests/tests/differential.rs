//! Differential test of the packet path: 10^5 random and mutated frames (valid frames of every
//! protocol, the malformed corpus, and random corruptions of both) go through the kernel
//! program (BPF_PROG_TEST_RUN) and through a host model of the same decision. Every verdict
//! must agree, and at the end every counter (interface, policy, reason, action; packets and
//! bytes). Valid frames are also parsed with etherparse, an independent parser: source
//! address and destination port must match shield's reading.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and their helpers panic on failure"
)]

use std::net::IpAddr;

use ipnet::IpNet;
use shield_common::{
    config::CONFIG_DROP_MALFORMED,
    counters::{Action, COUNTER_SLOTS, POLICY_NONE, Reason, counter_slot},
    parse::{Parsed, parse},
    policy::{IPPROTO_TCP, IPPROTO_UDP, port_policy_slot},
    source::FAMILY_V4,
};
use shield_tests::{
    corpus,
    frames::*,
    kernel::{Kernel, XDP_DROP, XDP_PASS},
};
use shield_user::{
    lists::ListKind,
    policies::{PolicySpec, RateSpec},
    stats::read_counters,
};

const FRAMES: usize = 100_000;

/// xorshift64*: a small, seedable generator (the seed is printed on failure).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ALLOW: [&str; 2] = ["198.18.7.7/32", "2001:db8:1:7::1/128"];
const BLOCK: [&str; 2] = ["198.18.2.0/24", "2001:db8:1:2::/64"];

/// The host model: shield's decision for `frame` under this test's configuration (drop
/// malformed; limits so high they never bite; tcp/443 -> policy 1, udp/53 -> policy 2).
fn model(frame: &[u8]) -> (u32, Reason, Action) {
    let info = match parse(frame) {
        Err(m) => return (POLICY_NONE, m.reason(), Action::Drop),
        Ok(Parsed::Exempt) => return (POLICY_NONE, Reason::Exempt, Action::Pass),
        Ok(Parsed::Ip(info)) => info,
    };
    let addr: IpAddr =
        if info.family == FAMILY_V4 { IpAddr::from(info.src_v4()) } else { IpAddr::from(info.src) };
    let covered = |list: &[&str]| list.iter().any(|n| n.parse::<IpNet>().unwrap().contains(&addr));
    if covered(&ALLOW) {
        return (POLICY_NONE, Reason::Allowlisted, Action::Pass);
    }
    if covered(&BLOCK) {
        return (POLICY_NONE, Reason::Blocklisted, Action::Drop);
    }
    let policy = match (info.l4_proto, info.dst_port) {
        (IPPROTO_TCP, Some(443)) => 1,
        (IPPROTO_UDP, Some(53)) => 2,
        _ => 0,
    };
    (policy, Reason::Passed, Action::Pass)
}

fn v4_source(r: &mut Rng) -> [u8; 4] {
    *r.pick(&[v4(2, 9), v4(7, 7), v4(1, 1), v4(1, 200), v4(7, 8)])
}

fn v6_source(r: &mut Rng) -> [u8; 16] {
    *r.pick(&[v6(2, 9), v6(7, 1), v6(1, 1), v6(7, 2)])
}

/// A valid frame of a random protocol, with random VLAN tags and IPv6 extension headers.
fn valid_frame(r: &mut Rng) -> Vec<u8> {
    let random_port = r.next() as u16;
    let port = *r.pick(&[443u16, 53, 80, 8080, 22, random_port]);
    let flags = *r.pick(&[TCP_SYN, TCP_ACK, TCP_SYN | TCP_ACK, 0x18]);
    let frame = match r.below(9) {
        0 => ipv4_tcp(v4_source(r), port, flags),
        1 => ipv4_udp(v4_source(r), port, r.below(64)),
        2 => ipv4_icmp(v4_source(r)),
        3 => ipv6_tcp(v6_source(r), port, flags),
        4 => ipv6_udp(v6_source(r), port, r.below(64)),
        5 => ipv6_icmp(v6_source(r), *r.pick(&[128u8, 129, 133, 135, 136, 1])),
        6 => {
            // IPv6 with a random extension chain.
            let mut chain = Vec::new();
            let mut next = if r.below(2) == 0 { 6 } else { 17 };
            let l4 = if next == 6 { tcp(port, flags) } else { udp(port, &[0; 4]) };
            for _ in 0..r.below(4) {
                let h = match r.below(4) {
                    0 => (0u8, ext_header(next, r.below(3) as u8)),
                    1 => (43, ext_header(next, r.below(3) as u8)),
                    2 => (60, ext_header(next, r.below(3) as u8)),
                    _ => (51, ah_header(next, 4)),
                };
                let mut h_bytes = h.1;
                h_bytes.extend_from_slice(&chain);
                chain = h_bytes;
                next = h.0;
            }
            chain.extend_from_slice(&l4);
            ethernet(ETH_IPV6, &ipv6_packet(v6_source(r), next, &chain))
        }
        7 => {
            // IPv4 fragments, first or later.
            let frag = if r.below(2) == 0 { 0x2000 } else { 0x2000 | (1 + r.below(100)) as u16 };
            ethernet(ETH_IPV4, &ipv4_packet(v4_source(r), 6, &[], frag, &tcp(port, flags)))
        }
        _ => ethernet(*r.pick(&[ETH_ARP, ETH_LLDP, 0x9000]), &[0u8; 46]),
    };
    match r.below(5) {
        0 => with_vlans(&frame, &[TPID_8021Q]),
        1 => with_vlans(&frame, &[TPID_8021AD, TPID_8021Q]),
        _ => frame,
    }
}

/// Random corruptions: flipped bytes, boundary values, truncation, extension.
fn mutate(r: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + r.below(4) {
        match r.below(5) {
            0 if !f.is_empty() => {
                let i = r.below(f.len());
                f[i] ^= 1 << r.below(8);
            }
            1 if !f.is_empty() => {
                let i = r.below(f.len());
                f[i] = *r.pick(&[0x00, 0xff, 0x45, 0x4f, 0x60, 0x81, 0x2c, 0x3b, 0x11, 0x06]);
            }
            2 => {
                let keep = 14 + r.below(f.len().saturating_sub(14).max(1));
                f.truncate(keep);
            }
            3 => {
                for _ in 0..r.below(32) {
                    f.push(r.next() as u8);
                }
            }
            _ => {
                // A length field: IPv4 total length, IPv6 payload length, UDP length, TCP offset.
                let i = *r.pick(&[16usize, 17, 18, 19, 38, 39, 46, 47]);
                if i < f.len() {
                    f[i] = r.next() as u8;
                }
            }
        }
    }
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
    f.resize(f.len().max(14), 0);
    f
}

#[test]
fn kernel_agrees_with_the_host_model_on_random_and_mutated_frames() {
    let seed = std::env::var("SHIELD_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001u64);
    let mut r = Rng(seed);
    let mut k = Kernel::load();
    let never = RateSpec { rate: 1_000_000_000, burst: 1_000_000_000 };
    let policy = |name: &str| {
        PolicySpec {
            name: name.into(),
            packets: never,
            syn: never,
            ..PolicySpec::builtin_default()
        }
        .to_kernel()
        .unwrap()
    };
    k.set_policy(0, &policy("default"));
    k.set_policy(1, &policy("api"));
    k.set_policy(2, &policy("dns"));
    k.set_port_policy(port_policy_slot(IPPROTO_TCP, 443).unwrap(), 1);
    k.set_port_policy(port_policy_slot(IPPROTO_UDP, 53).unwrap(), 2);
    for n in ALLOW {
        k.add(ListKind::Allow, n, None);
    }
    for n in BLOCK {
        k.add(ListKind::Block, n, None);
    }
    k.set_config(CONFIG_DROP_MALFORMED);

    let corpus: Vec<Vec<u8>> =
        corpus::cases().into_iter().map(|c| c.frame).filter(|f| f.len() >= 14).collect();
    let mut expected_packets = vec![0u64; COUNTER_SLOTS as usize];
    let mut expected_bytes = vec![0u64; COUNTER_SLOTS as usize];
    let mut cross_checked = 0;
    for i in 0..FRAMES {
        let base = if r.below(4) == 0 { r.pick(&corpus).clone() } else { valid_frame(&mut r) };
        let mutated = r.below(2) == 0;
        let frame = if mutated { mutate(&mut r, base) } else { base };
        let (policy, reason, action) = model(&frame);
        let verdict = k.run(&frame);
        let want = if action == Action::Drop { XDP_DROP } else { XDP_PASS };
        assert_eq!(
            verdict,
            want,
            "frame {i} (seed {seed:#x}): kernel {verdict}, model {reason:?}/{action:?}\n{}",
            hex(&frame)
        );
        let slot = counter_slot(0, policy, reason, action) as usize;
        expected_packets[slot] += 1;
        expected_bytes[slot] += frame.len() as u64;
        if !mutated {
            cross_checked += cross_check_with_etherparse(&frame);
        }
    }
    let got = read_counters(&k.loaded.maps);
    for slot in 0..COUNTER_SLOTS as usize {
        assert_eq!(
            (got[slot].packets, got[slot].bytes),
            (expected_packets[slot], expected_bytes[slot]),
            "counter slot {slot} ({:?}) disagrees with the model (seed {seed:#x})",
            shield_common::counters::slot_labels(slot as u32)
        );
    }
    assert!(
        cross_checked > FRAMES / 4,
        "only {cross_checked} frames cross-checked with etherparse"
    );
}

/// Where etherparse reads a valid IP frame, shield must read the same source and port.
/// Returns 1 when the frame was cross-checked.
fn cross_check_with_etherparse(frame: &[u8]) -> usize {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let Ok(sliced) = SlicedPacket::from_ethernet(frame) else { return 0 };
    let Some(net) = sliced.net else { return 0 };
    let Ok(Parsed::Ip(info)) = parse(frame) else {
        // Exempt (neighbour discovery) frames are IP to etherparse; nothing to compare.
        return 0;
    };
    let their_src: [u8; 16] = match &net {
        NetSlice::Ipv4(v4) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&v4.header().source());
            a
        }
        NetSlice::Ipv6(v6) => v6.header().source(),
    };
    assert_eq!(info.src, their_src, "source differs from etherparse's on {}", hex(frame));
    let their_port = match &sliced.transport {
        Some(TransportSlice::Tcp(t)) => Some(t.destination_port()),
        Some(TransportSlice::Udp(u)) => Some(u.destination_port()),
        _ => None,
    };
    if their_port.is_some() {
        assert_eq!(
            info.dst_port,
            their_port,
            "destination port differs from etherparse's on {}",
            hex(frame)
        );
    }
    1
}

fn hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}
