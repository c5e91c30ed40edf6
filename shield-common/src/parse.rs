//! The frame parser, shared by the kernel and the host: Ethernet, up to two VLAN tags, IPv4
//! (options, fragments), IPv6 (a bounded extension chain, fragments), TCP, UDP, ICMP, ICMPv6.
//!
//! It reads through [`Frame`], which the XDP program implements over packet memory with the
//! bounds checks the verifier needs, and the host implements over a byte slice.

use crate::{
    counters::Reason,
    policy::{IPPROTO_TCP, IPPROTO_UDP},
    source::{FAMILY_V4, FAMILY_V6},
};

/// Bytes a frame exposes to the parser.
pub trait Frame {
    /// Total length of the frame in bytes.
    fn frame_len(&self) -> usize;

    /// `N` bytes at `offset`, or `None` when they are not all inside the frame or past
    /// [`MAX_PARSE_OFFSET`].
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Frame for [u8] {
    fn frame_len(&self) -> usize {
        self.len()
    }

    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let bytes = self.get(offset..offset.checked_add(N)?)?;
        bytes.try_into().ok()
    }
}

/// The parser never reads a header that starts past this offset; deeper headers are malformed.
pub const MAX_PARSE_OFFSET: usize = 1024;
/// VLAN tags the parser follows (802.1Q and 802.1ad); a third is malformed.
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers the parser follows before giving up (malformed).
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

pub const ETH_HLEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;
const IPV6_NONXT: u8 = 59;

/// The facts about an IP frame that the decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Source address; IPv4 in the first four bytes.
    pub src: [u8; 16],
    /// The upper-layer protocol (after IPv6 extension headers).
    pub l4_proto: u8,
    /// Destination port for TCP and UDP; `None` for other protocols and for non-first fragments.
    pub dst_port: Option<u16>,
    /// A TCP SYN without ACK: a new connection attempt.
    pub tcp_syn: bool,
}

impl IpInfo {
    pub fn src_v4(&self) -> [u8; 4] {
        let [a, b, c, d, ..] = self.src;
        [a, b, c, d]
    }
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Never checked: non-IP frames and IPv6 neighbour discovery.
    Exempt,
    Ip(IpInfo),
}

/// A malformed frame, classed by the header that was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Ethernet,
    Ipv4,
    Ipv6,
    L4,
}

impl Malformed {
    pub const fn reason(self) -> Reason {
        match self {
            Malformed::Ethernet => Reason::MalformedEthernet,
            Malformed::Ipv4 => Reason::MalformedIpv4,
            Malformed::Ipv6 => Reason::MalformedIpv6,
            Malformed::L4 => Reason::MalformedL4,
        }
    }
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Parse a frame.
#[inline(always)]
pub fn parse<F: Frame + ?Sized>(frame: &F) -> Result<Parsed, Malformed> {
    let eth: [u8; ETH_HLEN] = frame.read(0).ok_or(Malformed::Ethernet)?;
    let [.., t0, t1] = eth;
    let mut ethertype = be16([t0, t1]);
    let mut offset = ETH_HLEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        let [_, _, t0, t1]: [u8; 4] = frame.read(offset).ok_or(Malformed::Ethernet)?;
        ethertype = be16([t0, t1]);
        offset += 4;
    }
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(frame, offset),
        ETHERTYPE_IPV6 => parse_ipv6(frame, offset),
        ETHERTYPE_VLAN | ETHERTYPE_QINQ => Err(Malformed::Ethernet),
        _ => Ok(Parsed::Exempt),
    }
}

#[inline(always)]
fn parse_ipv4<F: Frame + ?Sized>(frame: &F, offset: usize) -> Result<Parsed, Malformed> {
    let h: [u8; 20] = frame.read(offset).ok_or(Malformed::Ipv4)?;
    let [vihl, _, tl0, tl1, _, _, fo0, fo1, _, proto, _, _, s0, s1, s2, s3, ..] = h;
    if vihl >> 4 != 4 {
        return Err(Malformed::Ipv4);
    }
    let header_len = ((vihl & 0x0f) as usize) * 4;
    if header_len < 20 {
        return Err(Malformed::Ipv4);
    }
    let total_len = be16([tl0, tl1]) as usize;
    // Ethernet padding may follow the datagram, so the frame may be longer, never shorter.
    if total_len < header_len || offset + total_len > frame.frame_len() {
        return Err(Malformed::Ipv4);
    }
    let mut info = IpInfo {
        family: FAMILY_V4,
        src: [s0, s1, s2, s3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        l4_proto: proto,
        dst_port: None,
        tcp_syn: false,
    };
    let fragment_offset = be16([fo0, fo1]) & 0x1fff;
    if fragment_offset != 0 {
        // A later fragment carries no L4 header: whatever is there is payload.
        return Ok(Parsed::Ip(info));
    }
    parse_l4(frame, offset + header_len, offset + total_len, &mut info)?;
    Ok(Parsed::Ip(info))
}

#[inline(always)]
fn parse_ipv6<F: Frame + ?Sized>(frame: &F, offset: usize) -> Result<Parsed, Malformed> {
    let h: [u8; 40] = frame.read(offset).ok_or(Malformed::Ipv6)?;
    if h[0] >> 4 != 6 {
        return Err(Malformed::Ipv6);
    }
    let payload_len = be16([h[4], h[5]]) as usize;
    let end = offset + 40 + payload_len;
    if end > frame.frame_len() {
        return Err(Malformed::Ipv6);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    let mut info =
        IpInfo { family: FAMILY_V6, src, l4_proto: h[6], dst_port: None, tcp_syn: false };
    let mut cursor = offset + 40;
    // One pass per extension header, plus one for the upper-layer header.
    for _ in 0..=MAX_IPV6_EXT_HEADERS {
        let header_len = match info.l4_proto {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                let [next, len]: [u8; 2] = frame.read(cursor).ok_or(Malformed::Ipv6)?;
                info.l4_proto = next;
                (len as usize + 1) * 8
            }
            // AH counts its length in 4-byte units, minus 2.
            IPV6_AH => {
                let [next, len]: [u8; 2] = frame.read(cursor).ok_or(Malformed::Ipv6)?;
                info.l4_proto = next;
                (len as usize + 2) * 4
            }
            IPV6_FRAGMENT => {
                let [next, _, fo0, fo1, ..]: [u8; 8] = frame.read(cursor).ok_or(Malformed::Ipv6)?;
                info.l4_proto = next;
                if be16([fo0, fo1]) >> 3 != 0 {
                    // A later fragment: no L4 header follows.
                    return Ok(Parsed::Ip(info));
                }
                8
            }
            IPV6_NONXT => return Ok(Parsed::Ip(info)),
            _ => {
                parse_l4(frame, cursor, end, &mut info)?;
                return Ok(check_neighbour_discovery(frame, cursor, info));
            }
        };
        cursor += header_len;
        if cursor > end {
            return Err(Malformed::Ipv6);
        }
    }
    // Still inside the extension chain after the bound: refuse to guess.
    Err(Malformed::Ipv6)
}

/// ICMPv6 router/neighbour solicitation and advertisement and redirect (types 133..=137) keep
/// the link working; they are never limited.
#[inline(always)]
fn check_neighbour_discovery<F: Frame + ?Sized>(frame: &F, l4: usize, info: IpInfo) -> Parsed {
    if info.l4_proto == IPPROTO_ICMPV6
        && let Some([icmp_type, _code]) = frame.read::<2>(l4)
        && (133..=137).contains(&icmp_type)
    {
        return Parsed::Exempt;
    }
    Parsed::Ip(info)
}

/// Parse the L4 header at `offset`, which must end by `end` (the end of the IP datagram).
#[inline(always)]
fn parse_l4<F: Frame + ?Sized>(
    frame: &F,
    offset: usize,
    end: usize,
    info: &mut IpInfo,
) -> Result<(), Malformed> {
    match info.l4_proto {
        IPPROTO_TCP => {
            let t: [u8; 20] = frame.read(offset).ok_or(Malformed::L4)?;
            let data_offset = (t[12] >> 4) as usize * 4;
            if data_offset < 20 || offset + data_offset > end {
                return Err(Malformed::L4);
            }
            let flags = t[13];
            info.dst_port = Some(be16([t[2], t[3]]));
            info.tcp_syn = flags & 0x02 != 0 && flags & 0x10 == 0;
        }
        IPPROTO_UDP => {
            let u: [u8; 8] = frame.read(offset).ok_or(Malformed::L4)?;
            let udp_len = be16([u[4], u[5]]) as usize;
            if udp_len < 8 || offset + udp_len > end {
                return Err(Malformed::L4);
            }
            info.dst_port = Some(be16([u[2], u[3]]));
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 if offset + 4 > end || frame.read::<4>(offset).is_none() => {
            return Err(Malformed::L4);
        }
        _ => {}
    }
    if offset > end {
        return Err(Malformed::L4);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
