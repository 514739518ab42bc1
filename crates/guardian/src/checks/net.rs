//! Reading addresses the way nginx and agents write them, and telling
//! loopback from everything else.

use std::net::IpAddr;

/// The host part of an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Every address: `*`, or no address given (`listen 8080;`).
    Any,
    /// An address.
    Ip(IpAddr),
    /// A name; only `localhost` is known to be loopback.
    Name(String),
    /// `unix:/path`: not reachable over the network.
    Unix,
}

impl Host {
    /// Whether only this machine can reach it.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Unix => true,
            Host::Ip(ip) => is_loopback_ip(ip),
            Host::Name(n) => n.eq_ignore_ascii_case("localhost"),
            Host::Any => false,
        }
    }

    /// Whether a connection *to* it reaches this machine (0.0.0.0 and `::`
    /// connect to the local host).
    pub fn is_local_target(&self) -> bool {
        self.is_loopback() || matches!(self, Host::Ip(ip) if ip.is_unspecified())
    }
}

/// 127.0.0.0/8, ::1, and IPv4-mapped 127.x.
pub fn is_loopback_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn host_of(s: &str) -> Host {
    if s.is_empty() || s == "*" {
        return Host::Any;
    }
    match s.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Host::Ip(ip),
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(s.to_ascii_lowercase()),
    }
}

/// Splits `host:port`, `[v6]:port`, `port`, `host`, `unix:/p`.
/// `default_port` applies when no port is written.
pub fn split_host_port(s: &str, default_port: Option<u16>) -> (Host, Option<u16>) {
    if s.starts_with("unix:") {
        return (Host::Unix, None);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok(),
            None => default_port,
        };
        return (host_of(inside), port);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return (Host::Any, s.parse().ok());
    }
    match s.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address.
        Some((h, _)) if h.contains(':') => (host_of(s), default_port),
        Some((h, p)) => (host_of(h), p.parse().ok()),
        None => (host_of(s), default_port),
    }
}

/// The address of an nginx `listen` argument. A missing port is 80
/// (8000 when nginx runs unprivileged; the host part matters more).
pub fn parse_listen(arg: &str) -> (Host, Option<u16>) {
    split_host_port(arg, Some(80))
}

/// The address a `proxy_pass`-like target connects to: `http://h:p/x`,
/// `h:p` (stream), `unix:…`. Variables make it unknowable: `None`.
pub fn parse_pass_target(arg: &str) -> Option<(Host, Option<u16>, String)> {
    if arg.contains('$') {
        return None;
    }
    let (scheme, rest) = match arg.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), arg),
    };
    if rest.starts_with("unix:") {
        return Some((Host::Unix, None, rest.to_string()));
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let default = match scheme.as_str() {
        "https" | "grpcs" => Some(443),
        "http" | "grpc" => Some(80),
        _ => None,
    };
    let (h, p) = split_host_port(authority, default);
    Some((h, p, authority.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let lo = |s: &str| parse_listen(s).0.is_loopback();
        for s in [
            "127.0.0.1:8443",
            "127.1.2.3",
            "[::1]:80",
            "localhost:8080",
            "unix:/run/x.sock",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(lo(s), "{s}");
        }
        for s in [
            "8080",
            "*:8080",
            "[::]:8080",
            "0.0.0.0:80",
            "192.168.1.5:80",
            "example.com",
            "10.0.0.1",
            "::",
        ] {
            assert!(!lo(s), "{s}");
        }
        assert_eq!(parse_listen("8080").1, Some(8080));
        assert_eq!(parse_listen("[::1]").1, Some(80));
        assert_eq!(parse_listen("127.0.0.1").1, Some(80));
    }

    #[test]
    fn pass_targets() {
        let t = parse_pass_target("http://127.0.0.1:8787/x").unwrap();
        assert_eq!((t.0.is_local_target(), t.1), (true, Some(8787)));
        let t = parse_pass_target("https://localhost/").unwrap();
        assert_eq!(t.1, Some(443));
        let t = parse_pass_target("http://backend").unwrap();
        assert_eq!(
            (t.0, t.2.as_str()),
            (Host::Name("backend".into()), "backend")
        );
        assert_eq!(parse_pass_target("127.0.0.1:18789").unwrap().1, Some(18789));
        assert!(parse_pass_target("http://$up").is_none());
        assert!(parse_pass_target("http://0.0.0.0:1")
            .unwrap()
            .0
            .is_local_target());
    }
}
