//! Hand-built frames for the kernel tests: valid frames of every protocol, and the pieces the
//! malformed corpus bends. Lab addresses only (198.18.0.0/15, 2001:db8::/32).

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_ARP: u16 = 0x0806;
pub const ETH_LLDP: u16 = 0x88cc;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

pub const DST_V4: [u8; 4] = [198, 19, 0, 1];
pub const DST_V6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// A lab IPv4 source: 198.18.a.b.
pub const fn v4(a: u8, b: u8) -> [u8; 4] {
    [198, 18, a, b]
}

/// A lab IPv6 source: 2001:db8:1:<net>::<host>.
pub const fn v6(net: u16, host: u16) -> [u8; 16] {
    let [n0, n1] = net.to_be_bytes();
    let [h0, h1] = host.to_be_bytes();
    [0x20, 0x01, 0x0d, 0xb8, 0, 1, n0, n1, 0, 0, 0, 0, 0, 0, h0, h1]
}

/// Ethernet header (lab MACs) + payload.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Insert VLAN tags (outermost first) after the MAC addresses of an Ethernet frame.
pub fn with_vlans(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
    // A tag is TPID + TCI; the ethertype after the last tag is the frame's own.
    let inner_type = [frame[12], frame[13]];
    let mut out = frame[..12].to_vec();
    for (i, tpid) in tpids.iter().enumerate() {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    out.extend_from_slice(&inner_type);
    out.extend_from_slice(&frame[14..]);
    out
}

/// An IPv4 header with options `options` (length a multiple of 4) in front of `payload`.
pub fn ipv4_packet(src: [u8; 4], proto: u8, options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
    let header_len = 20 + options.len();
    let total = (header_len + payload.len()) as u16;
    let mut h = vec![0x40 | (header_len / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&DST_V4);
    h.extend_from_slice(options);
    h.extend_from_slice(payload);
    h
}

/// An IPv6 header (next header `next`) in front of `payload` (extension headers included).
pub fn ipv6_packet(src: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&DST_V6);
    h.extend_from_slice(payload);
    h
}

/// A 20-byte TCP header to `dst_port` with `flags`.
pub fn tcp(dst_port: u16, flags: u8) -> Vec<u8> {
    let mut t = vec![0xc3, 0x50];
    t.extend_from_slice(&dst_port.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// A UDP header to `dst_port` with `payload`.
pub fn udp(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0xc3, 0x50];
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An ICMP / ICMPv6 header of `icmp_type` with a few bytes of body.
pub fn icmp(icmp_type: u8) -> Vec<u8> {
    vec![icmp_type, 0, 0, 0, 0, 1, 0, 1]
}

pub fn ipv4_tcp(src: [u8; 4], dst_port: u16, flags: u8) -> Vec<u8> {
    ethernet(ETH_IPV4, &ipv4_packet(src, 6, &[], 0, &tcp(dst_port, flags)))
}

pub fn ipv4_udp(src: [u8; 4], dst_port: u16, payload_len: usize) -> Vec<u8> {
    ethernet(ETH_IPV4, &ipv4_packet(src, 17, &[], 0, &udp(dst_port, &vec![0xab; payload_len])))
}

pub fn ipv4_icmp(src: [u8; 4]) -> Vec<u8> {
    ethernet(ETH_IPV4, &ipv4_packet(src, 1, &[], 0, &icmp(8)))
}

pub fn ipv6_tcp(src: [u8; 16], dst_port: u16, flags: u8) -> Vec<u8> {
    ethernet(ETH_IPV6, &ipv6_packet(src, 6, &tcp(dst_port, flags)))
}

pub fn ipv6_udp(src: [u8; 16], dst_port: u16, payload_len: usize) -> Vec<u8> {
    ethernet(ETH_IPV6, &ipv6_packet(src, 17, &udp(dst_port, &vec![0xab; payload_len])))
}

pub fn ipv6_icmp(src: [u8; 16], icmp_type: u8) -> Vec<u8> {
    ethernet(ETH_IPV6, &ipv6_packet(src, 58, &icmp(icmp_type)))
}

/// An IPv6 extension header of the 8-octet-unit kind (hop-by-hop, routing, destination
/// options): `next`, length field `len_units` (header is (len_units + 1) * 8 bytes).
pub fn ext_header(next: u8, len_units: u8) -> Vec<u8> {
    let mut h = vec![next, len_units];
    h.resize((len_units as usize + 1) * 8, 0);
    h
}

/// An IPv6 fragment header: `offset` in 8-byte units, more-fragments flag.
pub fn fragment_header(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut h = vec![next, 0];
    h.extend_from_slice(&field.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 7]);
    h
}

/// An AH header: length field `len` counts 4-byte units minus 2.
pub fn ah_header(next: u8, len: u8) -> Vec<u8> {
    let mut h = vec![next, len];
    h.resize((len as usize + 2) * 4, 0);
    h
}
