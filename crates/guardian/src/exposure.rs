//! Exposure: is anything on a protected port reachable from beyond this machine?
//!
//! Two independent views, because each can miss what the other sees:
//! the kernel's list of listening sockets (netstat2: netlink on Linux,
//! libproc on macOS), and an active self-probe that connects to every
//! non-loopback address of this machine on every protected port.

use super::finding::Finding;
use crate::breaker::ReasonCode;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A port the guardian protects, and what normally listens there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedPort {
    /// The port.
    pub port: u16,
    /// What listens there when all is well (`agent control`, `moltgate`, ...).
    pub role: String,
}

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListeningSocket {
    /// The address it is bound to.
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
    /// The processes holding it, where known.
    pub pids: Vec<u32>,
}

/// The kernel's view, and whether it is known to be complete.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SocketScan {
    /// Every listening TCP socket seen.
    pub sockets: Vec<ListeningSocket>,
    /// Why the list may miss sockets (e.g. other users' on macOS without root).
    pub incomplete: Option<String>,
}

/// Loopback: 127.0.0.0/8, ::1, and IPv4-mapped 127.x.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// A word on what kind of address it is, for the finding.
fn describe(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(a) if a.is_unspecified() => "every IPv4 address (0.0.0.0)",
        IpAddr::V6(a) if a.is_unspecified() => "every address (::)",
        IpAddr::V4(a) if a.octets()[0] == 100 && (a.octets()[1] & 0xc0) == 64 => {
            "a CGNAT/Tailscale address"
        }
        IpAddr::V4(a) if a.is_private() => "a LAN address",
        IpAddr::V4(a) if a.is_link_local() => "a link-local address",
        _ => "a non-loopback address",
    }
}

/// Lists listening TCP sockets.
#[cfg(any(
    target_os = "linux",
    all(target_os = "macos", feature = "macos-native")
))]
pub fn listening_sockets() -> Result<SocketScan, String> {
    use netstat2::{AddressFamilyFlags, ProtocolFlags, ProtocolSocketInfo, TcpState};
    let infos = netstat2::get_sockets_info(
        AddressFamilyFlags::IPV4 | AddressFamilyFlags::IPV6,
        ProtocolFlags::TCP,
    )
    .map_err(|e| format!("cannot list sockets: {e}"))?;
    let sockets = infos
        .into_iter()
        .filter_map(|i| match i.protocol_socket_info {
            ProtocolSocketInfo::Tcp(t) if t.state == TcpState::Listen => Some(ListeningSocket {
                addr: t.local_addr,
                port: t.local_port,
                pids: i.associated_pids,
            }),
            _ => None,
        })
        .collect();
    let incomplete = if cfg!(target_os = "macos") && !crate::exec::running_as_root() {
        Some("on macOS, sockets of other users' processes are invisible unless the guardian runs as root (install it as a LaunchDaemon)".into())
    } else {
        None
    };
    Ok(SocketScan {
        sockets,
        incomplete,
    })
}

/// Without netstat2 (a macOS build without `macos-native`) there is no way
/// to list sockets: say so, so the caller fails closed.
#[cfg(not(any(
    target_os = "linux",
    all(target_os = "macos", feature = "macos-native")
)))]
pub fn listening_sockets() -> Result<SocketScan, String> {
    Err("this build cannot list sockets (built without the macos-native feature)".into())
}

/// Findings from the kernel's socket list.
pub fn check_sockets(
    scan: &SocketScan,
    protected: &[ProtectedPort],
    names: &dyn Fn(u32) -> Option<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in &scan.sockets {
        let Some(p) = protected.iter().find(|p| p.port == s.port) else {
            continue;
        };
        if is_loopback(s.addr) {
            continue;
        }
        let who = if s.pids.is_empty() {
            "a process moltguard cannot see (run the guardian as root to name it)".to_string()
        } else {
            s.pids
                .iter()
                .map(|pid| match names(*pid) {
                    Some(n) => format!("pid {pid} ({n})"),
                    None => format!("pid {pid}"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let addr = SocketAddr::new(s.addr, s.port);
        out.push(
            Finding::critical(
                "EXPOSURE_PUBLIC_BIND",
                ReasonCode::ExposurePublicBind,
                format!("the {} port {} listens on {} ({addr}), held by {who}", p.role, s.port, describe(s.addr)),
                format!("make it listen on 127.0.0.1:{} only (for the agent: gateway.bind = \"loopback\"), then close the breaker again", s.port),
            )
            .at(addr.to_string()),
        );
    }
    if let Some(why) = &scan.incomplete {
        out.push(Finding::critical(
            "EXPOSURE_SCAN_INCOMPLETE",
            ReasonCode::CheckFailed,
            format!("the socket scan may be incomplete: {why}"),
            "run the guardian as root: `sudo moltguard install`",
        ));
    }
    out
}

/// This machine's non-loopback addresses.
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                // Link-local IPv6 needs a scope id to connect to; skip it.
                sa.as_sockaddr_in6()
                    .map(|v6| IpAddr::V6(v6.ip()))
                    .filter(|ip| match ip {
                        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) != 0xfe80,
                        _ => true,
                    })
            }
        })
        .filter(|ip| !is_loopback(*ip) && !ip.is_unspecified())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Connects to every protected port on every non-loopback address of this
/// machine. Whatever accepts is reachable by anyone who can route here.
pub fn self_probe(
    addresses: &[IpAddr],
    protected: &[ProtectedPort],
    timeout: Duration,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for ip in addresses {
        for p in protected {
            let addr = SocketAddr::new(*ip, p.port);
            if TcpStream::connect_timeout(&addr, timeout).is_ok() {
                out.push(
                    Finding::critical(
                        "EXPOSURE_REACHABLE",
                        ReasonCode::ExposurePublicBind,
                        format!(
                            "the {} port {} accepts connections on {addr} ({})",
                            p.role,
                            p.port,
                            describe(*ip)
                        ),
                        format!("bind whatever listens on port {} to 127.0.0.1 only", p.port),
                    )
                    .at(addr.to_string()),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rules() {
        for ip in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "::",
            "192.168.1.2",
            "100.64.0.1",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "fe80::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
        assert_eq!(
            describe("100.100.1.1".parse().unwrap()),
            "a CGNAT/Tailscale address"
        );
    }

    #[test]
    fn public_bind_on_a_protected_port_is_critical_and_named() {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let scan = listening_sockets().unwrap();
        assert!(
            scan.sockets
                .iter()
                .any(|s| s.port == port && s.addr.is_unspecified()),
            "netstat2 must see our socket"
        );
        let protected = [ProtectedPort {
            port,
            role: "agent control".into(),
        }];
        let f = check_sockets(&scan, &protected, &|_| Some("testproc".into()));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].id, "EXPOSURE_PUBLIC_BIND");
        assert!(
            f[0].what.contains("testproc") || f[0].what.contains("cannot see"),
            "{}",
            f[0].what
        );
    }

    #[test]
    fn loopback_bind_is_fine() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let scan = listening_sockets().unwrap();
        let protected = [ProtectedPort {
            port,
            role: "edge".into(),
        }];
        assert!(check_sockets(&scan, &protected, &|_| None).is_empty());
    }

    /// Tests stay on loopback: 127.0.0.2 stands in for "another address of
    /// this machine" (a wildcard listener accepts there, a 127.0.0.1 one does not).
    #[test]
    fn self_probe_finds_a_wildcard_listener() {
        let stand_in: IpAddr = "127.0.0.2".parse().unwrap();
        let wildcard = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = wildcard.local_addr().unwrap().port();
        let f = self_probe(
            &[stand_in],
            &[ProtectedPort {
                port,
                role: "upstream".into(),
            }],
            Duration::from_millis(300),
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].id, "EXPOSURE_REACHABLE");
        let local_only = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = local_only.local_addr().unwrap().port();
        assert!(self_probe(
            &[stand_in],
            &[ProtectedPort {
                port,
                role: "edge".into()
            }],
            Duration::from_millis(300)
        )
        .is_empty());
    }
}
