//! The PROXY protocol version 2 header: how a relayed connection tells the backend who the
//! client really is.
//!
//! Owns the header's bytes. It must not touch sockets; [`crate::forward`] writes the header
//! before the first byte of the client's data.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The twelve bytes every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Version 2, command PROXY (a relayed connection, not a health check of the proxy itself).
const VERSION_PROXY: u8 = 0x21;
/// Address family and transport: TCP over IPv4, TCP over IPv6.
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// The header for a connection from `client` accepted at `local`. When one side is IPv4 and
/// the other IPv6, both are written as IPv6 (the IPv4 one mapped), so the backend still learns
/// the client's address.
pub fn encode(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let mut header = SIGNATURE.to_vec();
    header.push(VERSION_PROXY);
    match (client.ip(), local.ip()) {
        (IpAddr::V4(c), IpAddr::V4(l)) => {
            header.push(TCP4);
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&c.octets());
            header.extend_from_slice(&l.octets());
        }
        (c, l) => {
            header.push(TCP6);
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&v6(c).octets());
            header.extend_from_slice(&v6(l).octets());
        }
    }
    header.extend_from_slice(&client.port().to_be_bytes());
    header.extend_from_slice(&local.port().to_be_bytes());
    header
}

fn v6(address: IpAddr) -> Ipv6Addr {
    match address {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Reads a header back: (client, local). For tests of backends and of [`encode`]; `None` when
/// the bytes are not a complete TCP header of version 2.
pub fn decode(bytes: &[u8]) -> Option<(SocketAddr, SocketAddr, usize)> {
    let rest = bytes.strip_prefix(&SIGNATURE)?;
    let (&[version, family, l0, l1], rest) = rest.split_first_chunk::<4>()?;
    if version != VERSION_PROXY {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let body = rest.get(..len)?;
    let (client, local, ports) = match family {
        TCP4 if len >= 12 => {
            let c: [u8; 4] = body[0..4].try_into().ok()?;
            let l: [u8; 4] = body[4..8].try_into().ok()?;
            (IpAddr::from(c), IpAddr::from(l), &body[8..12])
        }
        TCP6 if len >= 36 => {
            let c: [u8; 16] = body[0..16].try_into().ok()?;
            let l: [u8; 16] = body[16..32].try_into().ok()?;
            (IpAddr::from(c), IpAddr::from(l), &body[32..36])
        }
        _ => return None,
    };
    let client_port = u16::from_be_bytes([ports[0], ports[1]]);
    let local_port = u16::from_be_bytes([ports[2], ports[3]]);
    Some((
        SocketAddr::new(client, client_port),
        SocketAddr::new(local, local_port),
        SIGNATURE.len() + 4 + len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_header_has_the_layout_of_the_specification() {
        let client: SocketAddr = "198.51.100.200:40000".parse().unwrap();
        let local: SocketAddr = "198.51.100.10:25".parse().unwrap();
        let h = encode(client, local);
        assert_eq!(h.len(), 16 + 12);
        assert_eq!(&h[..12], &SIGNATURE);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(&h[14..16], &[0, 12]);
        assert_eq!(&h[16..20], &[198, 51, 100, 200]);
        assert_eq!(&h[20..24], &[198, 51, 100, 10]);
        assert_eq!(&h[24..26], &40000u16.to_be_bytes());
        assert_eq!(&h[26..28], &25u16.to_be_bytes());
        assert_eq!(decode(&h), Some((client, local, h.len())));
    }

    #[test]
    fn ipv6_and_mixed_families_round_trip() {
        let client: SocketAddr = "[2001:db8::200]:40000".parse().unwrap();
        let local: SocketAddr = "[2001:db8::10]:25".parse().unwrap();
        let h = encode(client, local);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(decode(&h), Some((client, local, h.len())));

        let v4: SocketAddr = "198.51.100.200:1".parse().unwrap();
        let (c, l, _) = decode(&encode(v4, local)).unwrap();
        assert_eq!(c.ip(), IpAddr::V6("::ffff:198.51.100.200".parse().unwrap()));
        assert_eq!(l, local);
    }

    #[test]
    fn truncated_or_foreign_bytes_are_not_a_header() {
        let h = encode(
            "198.51.100.200:1".parse().unwrap(),
            "198.51.100.10:25".parse().unwrap(),
        );
        assert_eq!(decode(&h[..h.len() - 1]), None);
        assert_eq!(
            decode(b"PROXY TCP4 198.51.100.200 198.51.100.10 1 25\r\n"),
            None
        );
    }
}
