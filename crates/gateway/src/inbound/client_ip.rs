//! Who is the client? The TCP peer, unless the peer is a trusted proxy
//! (nginx on loopback), in which case `X-Forwarded-For` is read from the
//! right: each trusted hop is skipped and the first untrusted one is the
//! client. Anything a client writes to the left of that is ignored, so it
//! cannot pick its own address to dodge a ban or borrow a trusted one.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// Stands for a client whose forwarded address could not be read: it gets
/// one shared bucket (rate limits and bans apply) instead of the proxy's
/// trusted address.
pub const UNIDENTIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is in one of `nets`.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// `::ffff:1.2.3.4` is 1.2.3.4 (dual-stack sockets report it that way).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The client's address: the peer, unless the peer is a `trusted` proxy;
/// then the rightmost `X-Forwarded-For` hop that is not one (the leftmost
/// when all are; an unreadable header or hop gives [`UNIDENTIFIED`]).
pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer.ip());
    if !contains(trusted, peer) {
        return peer;
    }
    // Hops, left to right, over every X-Forwarded-For header in order.
    let mut hops: Vec<&str> = Vec::new();
    for v in headers.get_all(X_FORWARDED_FOR) {
        match v.to_str() {
            Ok(s) => hops.extend(s.split(',').map(str::trim)),
            Err(_) => return UNIDENTIFIED,
        }
    }
    if hops.is_empty() {
        return peer;
    }
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if contains(trusted, ip) => continue,
            Some(ip) => return ip,
            None => return UNIDENTIFIED,
        }
    }
    // Every hop is trusted: the leftmost is the origin.
    hops.first()
        .and_then(|h| parse_hop(h))
        .unwrap_or(UNIDENTIFIED)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]:80`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted() -> Vec<IpNet> {
        vec!["127.0.0.1/32".parse().unwrap(), "::1/128".parse().unwrap()]
    }

    fn h(values: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in values {
            m.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_claim_an_address() {
        let peer: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        assert_eq!(
            resolve(peer, &h(&["127.0.0.1"]), &trusted()),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(peer, &h(&["8.8.8.8"]), &trusted()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins() {
        let nginx: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(resolve(nginx, &h(&[]), &trusted()), ip("127.0.0.1"));
        assert_eq!(
            resolve(nginx, &h(&["198.51.100.7"]), &trusted()),
            ip("198.51.100.7")
        );
        // The client wrote "1.1.1.1, 127.0.0.1"; the proxy appended the real one.
        assert_eq!(
            resolve(nginx, &h(&["1.1.1.1, 127.0.0.1, 198.51.100.7"]), &trusted()),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(
                nginx,
                &h(&["1.1.1.1", "198.51.100.7, 127.0.0.1"]),
                &trusted()
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve(nginx, &h(&["[2001:db8::1]:443"]), &trusted()),
            ip("2001:db8::1")
        );
        assert_eq!(
            resolve(nginx, &h(&["::ffff:198.51.100.7"]), &trusted()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_is_one_shared_unidentified_client_never_the_proxy() {
        let nginx: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(resolve(nginx, &h(&["unknown"]), &trusted()), UNIDENTIFIED);
        assert_eq!(
            resolve(nginx, &h(&["1.2.3.4, evil"]), &trusted()),
            UNIDENTIFIED
        );
        assert_eq!(
            resolve(nginx, &h(&["127.0.0.1"]), &trusted()),
            ip("127.0.0.1")
        );
    }
}
