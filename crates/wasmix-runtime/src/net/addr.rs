//! WASIX socket addresses as guests lay them out in memory.
//!
//! ```text
//! __wasi_addr_port_t (an address with a port; 110 bytes as C declares it)
//! ┌────┬───────────────────────────────────────────────────────────────────┐
//! │  0 │ tag      u8   address family: 0 unspec, 1 inet4, 2 inet6, 3 unix  │
//! │  1 │ padding  u8   0                                                   │
//! │  2 │ port     u16  (inet4 / inet6)                                     │
//! │  4 │ address  4 bytes (inet4) or 16 bytes (inet6), network order       │
//! │ 20 │ inet6 only: flow info (u16 high, u16 low), scope id (same), 8 B   │
//! │  2 │ unix: the path, 108 bytes, NUL-terminated                         │
//! └────┴───────────────────────────────────────────────────────────────────┘
//!
//! __wasi_addr_ip_t (an address alone, `resolve`'s entries; 18 bytes)
//!   tag u8, padding u8, then 4 (inet4) or 16 (inet6) address bytes, zero-filled
//! ```
//!
//! The port's byte order differs by direction, as in Wasmer, which every WASIX binary was
//! built against: a port the guest passes in (bind, connect, send_to) is read
//! little-endian — wasix-libc stores `ntohs(sin_port)` — and a port handed back (accept,
//! recv_from, the local and peer addresses) is written in network order, which older
//! wasix-libc copies into `sin_port` as it is (newer ones probe which order the runtime
//! uses). See the tests for the sources.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use wasmix_fs::Errno;

/// Address family tags (`__wasi_address_family_t`).
pub(crate) mod family {
    pub const UNSPEC: u8 = 0;
    pub const INET4: u8 = 1;
    pub const INET6: u8 = 2;
    pub const UNIX: u8 = 3;
}

/// Bytes of an `__wasi_addr_port_t` holding an IP address: tag, padding, port, 16 bytes.
pub(crate) const ADDR_PORT_IP: usize = 20;
/// Bytes an inet6 `__wasi_addr_port_t` has, with flow info and scope id.
pub(crate) const ADDR_PORT_IP6: usize = 28;
/// Bytes of an `__wasi_addr_port_t` holding a unix path.
pub(crate) const ADDR_PORT_UNIX: usize = 110;
/// Bytes of an `__wasi_addr_ip_t`.
pub(crate) const ADDR_IP: usize = 18;
/// Longest unix socket path, without its NUL.
pub(crate) const UNIX_PATH_MAX: usize = 107;

/// A socket address a guest named or is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SockAddr {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A unix socket's path (empty for an unnamed socket).
    Unix(Vec<u8>),
    /// No address (an unbound or unnamed socket).
    Unspec,
}

/// How many bytes a guest's `__wasi_addr_port_t` must have readable for its `tag`.
pub(crate) fn addr_port_len(tag: u8) -> usize {
    match tag {
        family::UNIX => ADDR_PORT_UNIX,
        _ => ADDR_PORT_IP,
    }
}

/// Decodes an `__wasi_addr_port_t` the guest passed in (`bytes` starts at its tag and holds
/// at least [`addr_port_len`] of it). An unknown family is EINVAL; so is a unix path with no
/// NUL.
pub(crate) fn decode_addr_port(bytes: &[u8]) -> Result<SockAddr, Errno> {
    let tag = *bytes.first().ok_or(Errno::Inval)?;
    if bytes.len() < addr_port_len(tag) {
        return Err(Errno::Fault);
    }
    match tag {
        family::INET4 => {
            let port = u16::from_le_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Ok(SockAddr::Ip(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        family::INET6 => {
            let port = u16::from_le_bytes([bytes[2], bytes[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[4..20]);
            Ok(SockAddr::Ip(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        family::UNIX => {
            let path = &bytes[2..2 + UNIX_PATH_MAX + 1];
            let end = path.iter().position(|&b| b == 0).ok_or(Errno::Inval)?;
            Ok(SockAddr::Unix(path[..end].to_vec()))
        }
        family::UNSPEC => Ok(SockAddr::Unspec),
        _ => Err(Errno::Inval),
    }
}

/// Encodes an address to hand back to the guest as an `__wasi_addr_port_t`.
pub(crate) fn encode_addr_port(addr: &SockAddr) -> Vec<u8> {
    match addr {
        SockAddr::Ip(SocketAddr::V4(a)) => {
            let mut out = vec![0u8; ADDR_PORT_IP];
            out[0] = family::INET4;
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..8].copy_from_slice(&a.ip().octets());
            out
        }
        SockAddr::Ip(SocketAddr::V6(a)) => {
            let mut out = vec![0u8; ADDR_PORT_IP6];
            out[0] = family::INET6;
            out[2..4].copy_from_slice(&a.port().to_be_bytes());
            out[4..20].copy_from_slice(&a.ip().octets());
            // flow info and scope id: each a u16 pair, the high half first.
            put_split_u32(&mut out[20..24], a.flowinfo());
            put_split_u32(&mut out[24..28], a.scope_id());
            out
        }
        SockAddr::Unix(path) => {
            let mut out = vec![0u8; ADDR_PORT_UNIX];
            out[0] = family::UNIX;
            let n = path.len().min(UNIX_PATH_MAX);
            out[2..2 + n].copy_from_slice(&path[..n]);
            out
        }
        SockAddr::Unspec => vec![0u8; ADDR_PORT_IP],
    }
}

fn put_split_u32(out: &mut [u8], v: u32) {
    out[0..2].copy_from_slice(&((v >> 16) as u16).to_le_bytes());
    out[2..4].copy_from_slice(&(v as u16).to_le_bytes());
}

/// Encodes an IP address as an `__wasi_addr_ip_t` (one of `resolve`'s entries).
pub(crate) fn encode_addr_ip(ip: IpAddr) -> [u8; ADDR_IP] {
    let mut out = [0u8; ADDR_IP];
    match ip {
        IpAddr::V4(v4) => {
            out[0] = family::INET4;
            out[2..6].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out[0] = family::INET6;
            out[2..18].copy_from_slice(&v6.octets());
        }
    }
    out
}

/// Decodes an `__wasi_addr_ip4_t` (4 bytes, network order).
pub(crate) fn decode_ip4(bytes: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(bytes)
}

/// Decodes the address of an `__wasi_addr_ip6_t` (its first 16 bytes, network order).
pub(crate) fn decode_ip6(bytes: [u8; 16]) -> Ipv6Addr {
    Ipv6Addr::from(bytes)
}

#[cfg(test)]
mod tests {
    //! The layouts and byte orders come from upstream, at these versions:
    //! - wasix-libc `libc-bottom-half/headers/public/wasi/api_wasix.h` @ 14e3b7efb57b
    //!   (`__wasi_addr_port_t`: tag, then the union at offset 2; `__wasi_addr_ip4_port_t`:
    //!   port at 0, address at 2; `__wasi_addr_ip6_t` with flow info and scope id after the
    //!   16 address bytes; `__wasi_addr_ip_t` 18 bytes).
    //! - Wasmer `lib/wasix/src/net/mod.rs` @ 020faf22de6530a8795e81669c1d39f340eaab78
    //!   (`read_ip_port`: `u16::from_ne_bytes(octs[0..2])`; `write_ip_port`:
    //!   `port.to_be_bytes()`), and the same pair in 2022's `lib/wasi/src/state/socket.rs`
    //!   @ 36db57cab7973c35054f18097e590a6ad5a4d249.
    //! - wasix-libc's `common/net.h` (`sockaddr_to_wasi`: `port = ntohs(sin_port)`;
    //!   `wasi_to_sockaddr` probing with a bind to `sin_port = 9000` and expecting 10275
    //!   back only if the runtime answers little-endian).
    use super::*;
    use std::net::SocketAddrV6;

    fn v4(a: [u8; 4], port: u16) -> SockAddr {
        SockAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
    }

    #[test]
    fn an_inet4_address_from_wasix_libc_reads_its_port_little_endian() {
        // What `sockaddr_to_wasi` builds for 127.0.0.1:8080: port = ntohs(sin_port) = 8080.
        let mut guest = [0u8; ADDR_PORT_UNIX];
        guest[0] = family::INET4;
        guest[2..4].copy_from_slice(&8080u16.to_le_bytes());
        guest[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(decode_addr_port(&guest), Ok(v4([127, 0, 0, 1], 8080)));
    }

    #[test]
    fn an_address_handed_back_has_its_port_in_network_order() {
        let out = encode_addr_port(&v4([10, 1, 2, 3], 8080));
        assert_eq!(out.len(), ADDR_PORT_IP);
        assert_eq!(out[..8], [family::INET4, 0, 0x1f, 0x90, 10, 1, 2, 3]);
        assert!(out[8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn wasix_libc_port_probe_sees_the_order_it_expects_from_wasmer() {
        // bind with sin_port = 9000 (raw): the guest passes ntohs(9000) = 10275.
        let mut guest = [0u8; ADDR_PORT_IP];
        guest[0] = family::INET4;
        guest[2..4].copy_from_slice(&9000u16.swap_bytes().to_le_bytes());
        let SockAddr::Ip(bound) = decode_addr_port(&guest).unwrap() else {
            panic!("not an IP address")
        };
        assert_eq!(bound.port(), 10275);
        // Read back as a little-endian u16 by the probe: 9000, not 10275, so the libc
        // copies the field into sin_port as it is — which is the right network order.
        let back = encode_addr_port(&SockAddr::Ip(bound));
        assert_eq!(u16::from_le_bytes([back[2], back[3]]), 9000);
        assert_eq!([back[2], back[3]], 10275u16.to_be_bytes());
    }

    #[test]
    fn inet6_addresses_carry_network_order_octets_and_the_scope_id() {
        let ip: Ipv6Addr = "fe80::1:2".parse().unwrap();
        let addr = SockAddr::Ip(SocketAddr::V6(SocketAddrV6::new(ip, 443, 0x0001_0002, 7)));
        let out = encode_addr_port(&addr);
        assert_eq!(out[0], family::INET6);
        assert_eq!(out[2..4], 443u16.to_be_bytes());
        assert_eq!(out[4..20], ip.octets());
        assert_eq!(out[20..24], [1, 0, 2, 0]);
        assert_eq!(out[24..28], [0, 0, 7, 0]);
        let mut guest = out.clone();
        guest[2..4].copy_from_slice(&443u16.to_le_bytes());
        guest.resize(ADDR_PORT_UNIX, 0);
        let SockAddr::Ip(back) = decode_addr_port(&guest).unwrap() else {
            panic!("not an IP address")
        };
        assert_eq!((back.ip(), back.port()), (IpAddr::V6(ip), 443));
    }

    #[test]
    fn unix_paths_need_their_nul_and_bad_families_are_einval() {
        let mut guest = [0u8; ADDR_PORT_UNIX];
        guest[0] = family::UNIX;
        guest[2..10].copy_from_slice(b"/tmp/s.k");
        assert_eq!(
            decode_addr_port(&guest),
            Ok(SockAddr::Unix(b"/tmp/s.k".to_vec()))
        );
        guest[2..].fill(b'a');
        assert_eq!(decode_addr_port(&guest), Err(Errno::Inval));
        guest[0] = 9;
        assert_eq!(decode_addr_port(&guest), Err(Errno::Inval));
        // Too short for its family: the caller read less than the tag needs.
        assert_eq!(decode_addr_port(&[family::UNIX, 0, 0]), Err(Errno::Fault));
    }

    #[test]
    fn resolve_entries_are_18_bytes_with_the_address_at_2() {
        let e = encode_addr_ip("192.168.0.9".parse().unwrap());
        assert_eq!(e[..6], [family::INET4, 0, 192, 168, 0, 9]);
        let e = encode_addr_ip("::1".parse().unwrap());
        assert_eq!(e[0], family::INET6);
        assert_eq!(e[17], 1);
    }
}
