//! Asking the running edge which breaker generation it really serves.
//!
//! `nginx -s reload` exits 0 even when the new config never loads (a port
//! in use, say), so every transition ends by reading the `X-Breaker-State`
//! header over a fresh connection until the new generation shows up.

use crate::breaker::state::BreakerState;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// What the edge answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Served {
    /// The state its `X-Breaker-State` header names.
    pub state: BreakerState,
    /// The generation the header names.
    pub generation: u64,
    /// The HTTP status of the answer.
    pub http_status: u16,
}

/// Why the edge's answer could not be read back as the state it should serve.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The new generation answers only some of the time (old workers linger).
    #[error("the edge answered with generation {want} only now and then for {waited_ms} ms (old nginx workers still answering)")]
    Unsteady {
        /// The generation that should answer.
        want: u64,
        /// How long it was waited for.
        waited_ms: u128,
    },
    /// Nothing listens on the address.
    #[error("nothing answers on {0}")]
    Unreachable(SocketAddr),
    /// Something answered, but not as moltguard's edge does.
    #[error("{addr} answered HTTP {status} without a valid X-Breaker-State header (is this moltguard's edge?)")]
    NoHeader {
        /// Where it was asked.
        addr: SocketAddr,
        /// The HTTP status it gave.
        status: u16,
    },
    /// An older generation still answers after the wait.
    #[error("the edge still serves generation {seen} ({state}) {waited_ms} ms after the reload, not generation {want}; \
             nginx did not load the new config (see nginx's error log)")]
    Stale {
        /// The generation that should answer.
        want: u64,
        /// The generation that does.
        seen: u64,
        /// The state that generation names.
        state: BreakerState,
        /// How long it was waited for.
        waited_ms: u128,
    },
}

/// The loopback address to probe an edge listening on `listen`.
pub fn probe_address(listen: IpAddr, port: u16) -> SocketAddr {
    let ip = match listen {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// One client for the process: a blocking client owns a runtime thread, too
/// costly to build per probe. No idle pooling, so every probe is a fresh
/// connection (an old keep-alive one could reach an old worker).
fn client() -> Option<&'static reqwest::blocking::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::blocking::Client>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()
}

/// One request on a new connection.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<Served, ProbeError> {
    let client = client().ok_or(ProbeError::Unreachable(addr))?;
    let resp = client
        .get(format!("http://{addr}/"))
        .timeout(timeout)
        .header("Connection", "close")
        .header("User-Agent", "moltguard-verify")
        .send()
        .map_err(|_| ProbeError::Unreachable(addr))?;
    let status = resp.status().as_u16();
    let header = resp
        .headers()
        .get("x-breaker-state")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_header);
    match header {
        Some((state, generation)) => Ok(Served {
            state,
            generation,
            http_status: status,
        }),
        None => Err(ProbeError::NoHeader { addr, status }),
    }
}

/// How many fresh connections in a row must see the new generation.
///
/// On a reload nginx's master starts the new workers, sleeps 100 ms, and
/// only then tells the old ones to quit: for that window both accept new
/// connections. So one answer from a new worker does not yet mean every new
/// connection gets the new config; several in a row over a longer span do.
const CONSECUTIVE: u32 = 5;
const STABLE_FOR: Duration = Duration::from_millis(250);

/// Polls until the edge serves `want` on several consecutive fresh
/// connections spanning `STABLE_FOR`, or `timeout` passes.
pub fn wait_for_generation(
    addr: SocketAddr,
    want: u64,
    timeout: Duration,
) -> Result<Served, ProbeError> {
    let start = Instant::now();
    let mut streak: Option<(u32, Instant)> = None;
    let mut last_err;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match probe(
            addr,
            left.clamp(Duration::from_millis(100), Duration::from_secs(2)),
        ) {
            Ok(s) if s.generation == want => {
                let (n, since) = streak.map_or((1, Instant::now()), |(n, t)| (n + 1, t));
                if n >= CONSECUTIVE && since.elapsed() >= STABLE_FOR {
                    return Ok(s);
                }
                streak = Some((n, since));
                last_err = ProbeError::Unsteady {
                    want,
                    waited_ms: start.elapsed().as_millis(),
                };
            }
            Ok(s) => {
                streak = None;
                last_err = ProbeError::Stale {
                    want,
                    seen: s.generation,
                    state: s.state,
                    waited_ms: start.elapsed().as_millis(),
                };
            }
            // An edge without the header is a config without the breaker
            // include: no point waiting, it will not fix itself.
            Err(e @ ProbeError::NoHeader { .. }) => return Err(e),
            Err(e) => {
                streak = None;
                last_err = e;
            }
        }
        if start.elapsed() >= timeout {
            return Err(last_err);
        }
        std::thread::sleep(Duration::from_millis(if streak.is_some() {
            30
        } else {
            50
        }));
    }
}

/// Parses `closed; generation=7`.
pub fn parse_header(v: &str) -> Option<(BreakerState, u64)> {
    let (state, rest) = v.split_once(';')?;
    let generation = rest.trim().strip_prefix("generation=")?.parse().ok()?;
    Some((BreakerState::parse(state.trim())?, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_garbage() {
        assert_eq!(
            parse_header("half-open; generation=12"),
            Some((BreakerState::HalfOpen, 12))
        );
        for bad in [
            "",
            "open",
            "open;",
            "open; generation=",
            "ajar; generation=1",
            "open; gen=1",
        ] {
            assert_eq!(parse_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unspecified_listen_is_probed_on_loopback() {
        assert_eq!(
            probe_address("0.0.0.0".parse().unwrap(), 80),
            "127.0.0.1:80".parse().unwrap()
        );
        assert_eq!(
            probe_address("::".parse().unwrap(), 80),
            "[::1]:80".parse().unwrap()
        );
    }

    #[test]
    fn closed_port_is_unreachable() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(matches!(
            probe(addr, Duration::from_millis(500)),
            Err(ProbeError::Unreachable(_))
        ));
    }
}
