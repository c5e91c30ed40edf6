//! The malformed-frame corpus of testing.md, plus the frames that must pass unchecked, each
//! with what the parser must make of it. Run against the host parser and the kernel program.

use shield_common::counters::Reason;

use crate::frames::*;

/// What a corpus frame must be classified as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Malformed, counted under this reason.
    Malformed(Reason),
    /// Exempt from every check (non-IP, neighbour discovery).
    Exempt,
    /// Valid IP; `Some(port)` when the destination port must be read, `None` when it must not.
    Ip(Option<u16>),
}

pub struct Case {
    pub name: &'static str,
    pub frame: Vec<u8>,
    pub expect: Expect,
}

fn case(name: &'static str, frame: Vec<u8>, expect: Expect) -> Case {
    Case { name, frame, expect }
}

/// Set the IHL nibble of the IPv4 header of an untagged frame.
fn with_ihl(mut f: Vec<u8>, ihl: u8) -> Vec<u8> {
    f[14] = 0x40 | ihl;
    f
}

fn with_total_len(mut f: Vec<u8>, total: u16) -> Vec<u8> {
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f
}

/// Every corpus case. Frames shorter than 14 bytes are host-only (the kernel refuses them).
pub fn cases() -> Vec<Case> {
    use Expect::*;
    let src = v4(1, 1);
    let src6 = v6(1, 1);
    let mal = |r| Malformed(r);
    let tcp_frame = ipv4_tcp(src, 443, TCP_SYN);
    let mut cases = vec![
        // Valid frames of every protocol, as a control.
        case("ipv4 tcp syn", tcp_frame.clone(), Ip(Some(443))),
        case("ipv4 udp", ipv4_udp(src, 53, 10), Ip(Some(53))),
        case("ipv4 icmp echo", ipv4_icmp(src), Ip(None)),
        case("ipv6 tcp", ipv6_tcp(src6, 443, TCP_ACK), Ip(Some(443))),
        case("ipv6 udp", ipv6_udp(src6, 53, 10), Ip(Some(53))),
        case("ipv6 icmpv6 echo", ipv6_icmp(src6, 128), Ip(None)),
        case(
            "ipv4 with options",
            ethernet(
                ETH_IPV4,
                &ipv4_packet(src, 6, &[1, 1, 1, 0, 7, 3, 4, 0], 0, &tcp(80, TCP_SYN)),
            ),
            Ip(Some(80)),
        ),
        // Frames ending inside each header.
        case("ethernet only, ipv4 type", ethernet(ETH_IPV4, &[]), mal(Reason::MalformedIpv4)),
        case(
            "ethernet + 19 bytes of ipv4",
            ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0, &[])[..19]),
            mal(Reason::MalformedIpv4),
        ),
        case(
            "ipv4 + 7 bytes of udp",
            ethernet(ETH_IPV4, &ipv4_packet(src, 17, &[], 0, &[0; 7])),
            mal(Reason::MalformedL4),
        ),
        case(
            "ipv4 + 19 bytes of tcp",
            ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0, &tcp(80, TCP_SYN)[..19])),
            mal(Reason::MalformedL4),
        ),
        case(
            "ipv4 + 3 bytes of icmp",
            ethernet(ETH_IPV4, &ipv4_packet(src, 1, &[], 0, &[8, 0, 0])),
            mal(Reason::MalformedL4),
        ),
        case(
            "ipv6 + 39 bytes",
            ethernet(ETH_IPV6, &ipv6_packet(src6, 6, &[])[..39]),
            mal(Reason::MalformedIpv6),
        ),
        case(
            "ipv6 + 19 bytes of tcp",
            ethernet(ETH_IPV6, &ipv6_packet(src6, 6, &tcp(80, TCP_SYN)[..19])),
            mal(Reason::MalformedL4),
        ),
        // IPv4 header fields.
        case(
            "ipv4 version 6 under 0x0800",
            {
                let mut f = tcp_frame.clone();
                f[14] = 0x65;
                f
            },
            mal(Reason::MalformedIpv4),
        ),
        case(
            "ipv4 ihl 15, short frame",
            with_ihl(tcp_frame.clone(), 15),
            mal(Reason::MalformedIpv4),
        ),
        case(
            "ipv4 total length below header",
            with_total_len(tcp_frame.clone(), 19),
            mal(Reason::MalformedIpv4),
        ),
        case(
            "ipv4 total length past frame",
            with_total_len(tcp_frame.clone(), 1000),
            mal(Reason::MalformedIpv4),
        ),
        case(
            "ipv4 with ethernet padding",
            {
                let mut f = ipv4_tcp(src, 443, TCP_SYN);
                f.extend_from_slice(&[0; 6]);
                f
            },
            Ip(Some(443)),
        ),
        // Fragments: ports only from the first.
        case(
            "ipv4 first fragment",
            ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0x2000, &tcp(443, TCP_SYN))),
            Ip(Some(443)),
        ),
        case(
            "ipv4 later fragment, tcp-like payload",
            ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0x2000 | 185, &tcp(443, TCP_SYN))),
            Ip(None),
        ),
        case(
            "ipv4 later fragment, 3 bytes",
            ethernet(ETH_IPV4, &ipv4_packet(src, 17, &[], 3, &[1, 2, 3])),
            Ip(None),
        ),
        case(
            "ipv6 first fragment",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 44, &[fragment_header(6, 0, true), tcp(443, TCP_SYN)].concat()),
            ),
            Ip(Some(443)),
        ),
        case(
            "ipv6 later fragment",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 44, &[fragment_header(6, 100, false), vec![1, 2, 3]].concat()),
            ),
            Ip(None),
        ),
        // IPv6 extension chains.
        case(
            "ipv6 hop-by-hop",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 0, &[ext_header(6, 0), tcp(8080, TCP_SYN)].concat()),
            ),
            Ip(Some(8080)),
        ),
        case(
            "ipv6 routing",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 43, &[ext_header(17, 2), udp(53, &[0; 4])].concat()),
            ),
            Ip(Some(53)),
        ),
        case(
            "ipv6 destination options",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 60, &[ext_header(6, 1), tcp(22, TCP_SYN)].concat()),
            ),
            Ip(Some(22)),
        ),
        case(
            "ipv6 ah",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(src6, 51, &[ah_header(6, 4), tcp(443, TCP_SYN)].concat()),
            ),
            Ip(Some(443)),
        ),
        case(
            "ipv6 hop-by-hop + dstopts + routing + fragment",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(
                    src6,
                    0,
                    &[
                        ext_header(60, 0),
                        ext_header(43, 0),
                        ext_header(44, 0),
                        fragment_header(6, 0, false),
                        tcp(443, TCP_SYN),
                    ]
                    .concat(),
                ),
            ),
            Ip(Some(443)),
        ),
        case(
            "ipv6 chain longer than the bound",
            ethernet(
                ETH_IPV6,
                &ipv6_packet(
                    src6,
                    60,
                    &[vec![ext_header(60, 0); 8].concat(), ext_header(6, 0), tcp(443, TCP_SYN)]
                        .concat(),
                ),
            ),
            mal(Reason::MalformedIpv6),
        ),
        case(
            "ipv6 extension length past the end",
            ethernet(ETH_IPV6, &ipv6_packet(src6, 60, &[6, 200, 0, 0, 0, 0, 0, 0])),
            mal(Reason::MalformedIpv6),
        ),
        case(
            "ipv6 payload length past frame",
            {
                let mut f = ipv6_tcp(src6, 443, TCP_SYN);
                f[18..20].copy_from_slice(&900u16.to_be_bytes());
                f
            },
            mal(Reason::MalformedIpv6),
        ),
        case(
            "ipv6 version 4 under 0x86dd",
            {
                let mut f = ipv6_tcp(src6, 443, TCP_SYN);
                f[14] = 0x40;
                f
            },
            mal(Reason::MalformedIpv6),
        ),
        case("ipv6 no next header", ethernet(ETH_IPV6, &ipv6_packet(src6, 59, &[])), Ip(None)),
        // VLAN tags.
        case("one vlan tag", with_vlans(&tcp_frame, &[TPID_8021Q]), Ip(Some(443))),
        case(
            "two vlan tags (802.1ad + 802.1q)",
            with_vlans(&tcp_frame, &[TPID_8021AD, TPID_8021Q]),
            Ip(Some(443)),
        ),
        case(
            "three vlan tags",
            with_vlans(&tcp_frame, &[TPID_8021AD, TPID_8021Q, TPID_8021Q]),
            mal(Reason::MalformedEthernet),
        ),
        case(
            "vlan tag cut short",
            with_vlans(&tcp_frame, &[TPID_8021Q])[..16].to_vec(),
            mal(Reason::MalformedEthernet),
        ),
        case("vlan-tagged ipv6", with_vlans(&ipv6_udp(src6, 53, 4), &[TPID_8021Q]), Ip(Some(53))),
        // L4 length fields.
        case(
            "tcp data offset < 5",
            {
                let mut t = tcp(443, TCP_SYN);
                t[12] = 0x40;
                ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0, &t))
            },
            mal(Reason::MalformedL4),
        ),
        case(
            "tcp data offset past the end",
            {
                let mut t = tcp(443, TCP_SYN);
                t[12] = 0xf0;
                ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0, &t))
            },
            mal(Reason::MalformedL4),
        ),
        case(
            "udp length larger than datagram",
            {
                let mut u = udp(53, &[0; 4]);
                u[4..6].copy_from_slice(&400u16.to_be_bytes());
                ethernet(ETH_IPV4, &ipv4_packet(src, 17, &[], 0, &u))
            },
            mal(Reason::MalformedL4),
        ),
        case(
            "udp length below 8",
            {
                let mut u = udp(53, &[0; 4]);
                u[4..6].copy_from_slice(&7u16.to_be_bytes());
                ethernet(ETH_IPV4, &ipv4_packet(src, 17, &[], 0, &u))
            },
            mal(Reason::MalformedL4),
        ),
        // Never checked.
        case(
            "arp",
            ethernet(
                ETH_ARP,
                &[
                    0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 1, 1, 0, 0, 0, 0, 0, 0, 198,
                    19, 0, 1,
                ],
            ),
            Exempt,
        ),
        case("lldp", ethernet(ETH_LLDP, &[2, 7, 4, 2, 0, 0, 0, 0, 1]), Exempt),
        case("ipv6 neighbour solicitation", ipv6_icmp(src6, 135), Exempt),
        case("ipv6 router advertisement", ipv6_icmp(src6, 134), Exempt),
        case("unknown ethertype", ethernet(0x9000, &[0; 46]), Exempt),
    ];
    for ihl in 0..5u8 {
        cases.push(case(
            ["ipv4 ihl 0", "ipv4 ihl 1", "ipv4 ihl 2", "ipv4 ihl 3", "ipv4 ihl 4"][ihl as usize],
            with_ihl(tcp_frame.clone(), ihl),
            mal(Reason::MalformedIpv4),
        ));
    }
    cases
}
