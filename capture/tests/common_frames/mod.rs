//! Hand-built frames for transport tests: every header written byte by byte, so the tests
//! depend on no packet builder's idea of the formats.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};

use callvault_capture::time::Timestamp;
use callvault_capture::transport::decode::{Datagram, Transport};
use callvault_capture::transport::ingress::IngressSink;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;

/// Ethernet II with optional VLAN tags.
pub fn eth(ethertype: u16, vlans: &[u16], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for v in vlans {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (checksum left 0: callvault does not verify it) + payload.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], protocol: u8, id: u16, frag: Option<(u32, bool)>, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let (offset, more) = frag.unwrap_or((0, false));
    let flags_frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    let mut b = vec![0x45, 0];
    b.extend_from_slice(&total.to_be_bytes());
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&flags_frag.to_be_bytes());
    b.extend_from_slice(&[64, protocol, 0, 0]);
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    b.extend_from_slice(payload);
    b
}

/// IPv6 header + optional fragment header + payload.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, frag: Option<(u32, u32, bool)>, payload: &[u8]) -> Vec<u8> {
    let ext = if frag.is_some() { 8 } else { 0 };
    let mut b = vec![0x60, 0, 0, 0];
    b.extend_from_slice(&((payload.len() + ext) as u16).to_be_bytes());
    b.push(if frag.is_some() { 44 } else { next });
    b.push(64);
    b.extend_from_slice(&src);
    b.extend_from_slice(&dst);
    if let Some((id, offset, more)) = frag {
        b.extend_from_slice(&[next, 0]);
        b.extend_from_slice(&(((offset / 8) as u16) << 3 | u16::from(more)).to_be_bytes());
        b.extend_from_slice(&id.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&src_port.to_be_bytes());
    b.extend_from_slice(&dst_port.to_be_bytes());
    b.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(payload);
    b
}

pub fn tcp(src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&src_port.to_be_bytes());
    b.extend_from_slice(&dst_port.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ack.to_be_bytes());
    b.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    b.extend_from_slice(payload);
    b
}

/// GRE version 0 with optional key and sequence number.
pub fn gre(protocol: u16, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let flags: u16 = if key.is_some() { 0x2000 } else { 0 } | if seq.is_some() { 0x1000 } else { 0 };
    let mut b = flags.to_be_bytes().to_vec();
    b.extend_from_slice(&protocol.to_be_bytes());
    for v in [key, seq].into_iter().flatten() {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

/// A SIP request of `len`-byte body (plus headers), for reassembly tests.
pub fn sip_request(call_id: &str, body_len: usize) -> Vec<u8> {
    let body: String = (0..body_len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    format!(
        "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nCall-ID: {call_id}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A delivered datagram: (src, dst, payload, vlan, depth, reassembled).
pub type Udp = (SocketAddr, SocketAddr, Vec<u8>, Option<u16>, u8, bool);

/// Collects everything an ingress delivers.
#[derive(Debug, Default)]
pub struct Collect {
    /// Datagrams.
    pub udp: Vec<Udp>,
    /// (src, dst, message)
    pub sip: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
}

impl IngressSink for Collect {
    fn udp(&mut self, d: &Datagram<'_>) {
        self.udp.push((d.src, d.dst, d.payload.to_vec(), d.vlan, d.depth, d.reassembled));
    }
    fn sip_stream(
        &mut self,
        _time: Timestamp,
        src: SocketAddr,
        dst: SocketAddr,
        _transport: Transport,
        message: &[u8],
    ) {
        self.sip.push((src, dst, message.to_vec()));
    }
}

pub fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(ip), port)
}
