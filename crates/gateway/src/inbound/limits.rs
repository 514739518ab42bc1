//! Rate limits (GCRA, via governor) and concurrency caps.
//!
//! * per client IP on the API, per key or session, and failed-login
//!   attempts per IP per hour, each answering 429 with `Retry-After`;
//! * WebSocket connections per IP and connections in total.
//!
//! IPv6 clients are limited per /64, the block one subscriber gets, so
//! rotating addresses inside it does not reset the limit. Memory follows
//! the recently active clients: idle entries are dropped every minute by
//! [`Limits::housekeeping`]. Bans live elsewhere and are never evicted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::config::SecurityConfig;

/// How long to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// When a request would pass again.
    pub retry_after: Duration,
}

/// Every rate limit and cap of the gateway, in memory.
pub struct Limits {
    api: DefaultKeyedRateLimiter<IpAddr>,
    login: DefaultKeyedRateLimiter<IpAddr>,
    principals: RwLock<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    key_default: Option<NonZeroU32>,
    ws: Mutex<HashMap<IpAddr, u32>>,
    ws_per_ip: u32,
    max_tracked: usize,
    clock: DefaultClock,
    /// The open connections, counted against their caps.
    pub connections: Arc<Connections>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("max(1)"))
}

/// The limiter key for an address: itself for IPv4, its /64 for IPv6.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Limits {
    /// The limits `cfg` sets.
    pub fn new(cfg: &SecurityConfig) -> Limits {
        let login = Quota::with_period(Duration::from_secs(3600) / cfg.login_per_hour.max(1))
            .expect("non-zero period")
            .allow_burst(NonZeroU32::new(cfg.login_per_hour.max(1)).expect("max(1)"));
        Limits {
            api: RateLimiter::keyed(per_minute(cfg.api_per_minute)),
            login: RateLimiter::keyed(login),
            principals: RwLock::default(),
            key_default: NonZeroU32::new(cfg.key_per_minute),
            ws: Mutex::default(),
            ws_per_ip: cfg.ws_per_ip,
            max_tracked: cfg.max_tracked_clients,
            clock: DefaultClock::default(),
            connections: Arc::new(Connections::new(
                cfg.max_connections,
                cfg.max_connections_per_ip,
            )),
        }
    }

    fn verdict(
        &self,
        r: Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
    ) -> Result<(), Limited> {
        r.map_err(|nu| Limited {
            retry_after: nu.wait_time_from(self.clock.now()),
        })
    }

    /// Counts a request from `ip` against the per-address limit.
    pub fn check_api(&self, ip: IpAddr) -> Result<(), Limited> {
        self.verdict(self.api.check_key(&bucket(ip)))
    }

    /// One login attempt (successful or not) from `ip`.
    pub fn check_login(&self, ip: IpAddr) -> Result<(), Limited> {
        self.verdict(self.login.check_key(&bucket(ip)))
    }

    /// Per key (`key:<id>`) or session (`session`); `own` is the key's own
    /// per-minute limit, overriding the default. 0 = unlimited.
    pub fn check_principal(&self, id: &str, own: Option<u32>) -> Result<(), Limited> {
        let quota = match own {
            Some(0) => return Ok(()),
            Some(n) => NonZeroU32::new(n),
            None => self.key_default,
        };
        let Some(q) = quota else { return Ok(()) };
        let existing = self
            .principals
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        let limiter = match existing {
            Some(l) => l,
            None => {
                let mut map = self.principals.write().unwrap_or_else(|e| e.into_inner());
                if map.len() >= 10_000 {
                    map.clear();
                }
                map.entry(id.to_string())
                    .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_minute(q))))
                    .clone()
            }
        };
        self.verdict(limiter.check())
    }

    /// Takes a WebSocket slot for `ip`; the guard gives it back.
    pub fn ws_slot(self: &Arc<Self>, ip: IpAddr) -> Option<WsSlot> {
        let key = bucket(ip);
        let mut m = self.ws.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= self.ws_per_ip {
            return None;
        }
        *n += 1;
        Some(WsSlot {
            limits: self.clone(),
            ip: key,
        })
    }

    /// Drops limiter entries that carry no state any more (a client idle
    /// for a full period), so memory follows the clients of the last
    /// minute (hour, for logins), not of all time.
    pub fn housekeeping(&self) {
        for l in [&self.api, &self.login] {
            l.retain_recent();
            l.shrink_to_fit();
            if l.len() > self.max_tracked {
                tracing::warn!(
                    clients = l.len(),
                    "rate limiter is tracking an unusual number of clients (a distributed flood?)"
                );
            }
        }
    }
}

/// One WebSocket counted against its address's cap; dropping it frees the slot.
pub struct WsSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        let mut m = self.limits.ws.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Open connections, across every serving thread.
pub struct Connections {
    open: AtomicUsize,
    max: usize,
    max_per_ip: usize,
    registry: Mutex<Registry>,
    next_id: AtomicUsize,
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<u64, ConnEntry>,
    /// Open connections per address (trusted proxies not counted).
    per_ip: HashMap<std::net::IpAddr, usize>,
}

/// A connection over the per-address cap.
#[derive(Debug)]
pub struct OverAddressCap;

/// One open connection, as `security.gateway.connections` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnEntry {
    /// Its id, in order of acceptance.
    pub id: u64,
    /// The peer's address and port.
    pub peer: String,
    /// When it was accepted (milliseconds since the epoch).
    pub opened_at: i64,
}

impl Connections {
    fn new(max: usize, max_per_ip: usize) -> Connections {
        Connections {
            open: AtomicUsize::new(0),
            max,
            max_per_ip,
            registry: Mutex::default(),
            next_id: AtomicUsize::new(1),
        }
    }

    /// Counts a new connection; the guard uncounts it when dropped.
    pub fn open(self: &Arc<Self>, peer: std::net::SocketAddr) -> ConnGuard {
        self.try_open(peer, true)
            .expect("an exempt peer is never over its cap")
    }

    /// Counts a new connection unless its address already holds
    /// `max_per_ip` (`exempt`: a trusted proxy, never capped per address).
    pub fn try_open(
        self: &Arc<Self>,
        peer: std::net::SocketAddr,
        exempt: bool,
    ) -> Result<ConnGuard, OverAddressCap> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        {
            let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            if !exempt {
                let n = reg.per_ip.entry(peer.ip()).or_insert(0);
                if *n >= self.max_per_ip {
                    return Err(OverAddressCap);
                }
                *n += 1;
            }
            reg.by_id.insert(
                id,
                ConnEntry {
                    id,
                    peer: peer.to_string(),
                    opened_at: crate::admin::store::now_ms(),
                },
            );
        }
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        Ok(ConnGuard {
            conns: self.clone(),
            id,
            capped_ip: (!exempt).then(|| peer.ip()),
            over_limit: n > self.max,
        })
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The cap on open connections.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The open connections, oldest first.
    pub fn list(&self) -> Vec<ConnEntry> {
        let mut v: Vec<ConnEntry> = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .values()
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }
}

/// One counted connection; dropping it uncounts it.
pub struct ConnGuard {
    conns: Arc<Connections>,
    id: u64,
    /// The address counted against the per-address cap, if any.
    capped_ip: Option<std::net::IpAddr>,
    /// Opened while the gateway was full: it may only ask for `/health`.
    pub over_limit: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.conns.open.fetch_sub(1, Ordering::AcqRel);
        let mut reg = self
            .conns
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        reg.by_id.remove(&self.id);
        if let Some(ip) = self.capped_ip {
            if let Some(n) = reg.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    reg.per_ip.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SecurityConfig {
        SecurityConfig {
            api_per_minute: 3,
            login_per_hour: 2,
            ws_per_ip: 2,
            max_connections: 2,
            key_per_minute: 2,
            ..SecurityConfig::default()
        }
    }

    #[test]
    fn connections_per_address_are_capped_except_for_trusted_proxies() {
        let l = Limits::new(&SecurityConfig {
            max_connections_per_ip: 2,
            ..cfg()
        });
        let a: std::net::SocketAddr = "198.51.100.1:1000".parse().unwrap();
        let b: std::net::SocketAddr = "198.51.100.2:1000".parse().unwrap();
        let a1 = l.connections.try_open(a, false).unwrap();
        let _a2 = l.connections.try_open(a, false).unwrap();
        assert!(l.connections.try_open(a, false).is_err());
        let _b1 = l.connections.try_open(b, false).unwrap();
        // A refused one was never counted; a closed one frees its place.
        assert_eq!(l.connections.count(), 3);
        drop(a1);
        let _a3 = l.connections.try_open(a, false).unwrap();
        // The proxy (nginx on loopback) carries everyone: never capped.
        let p: std::net::SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let held: Vec<_> = (0..5)
            .map(|_| l.connections.try_open(p, true).unwrap())
            .collect();
        assert_eq!(held.len(), 5);
        assert!(
            held.iter().all(|g| g.over_limit),
            "the global cap still counts them"
        );
    }

    #[test]
    fn api_limit_is_per_ip_and_says_when_to_retry() {
        let l = Limits::new(&cfg());
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        for _ in 0..3 {
            l.check_api(a).unwrap();
        }
        let e = l.check_api(a).unwrap_err();
        assert!(
            e.retry_after > Duration::from_secs(5) && e.retry_after <= Duration::from_secs(20),
            "{e:?}"
        );
        l.check_api(b).unwrap();
    }

    #[test]
    fn ipv6_rotation_inside_a_64_shares_one_bucket() {
        let l = Limits::new(&cfg());
        for i in 0..3 {
            l.check_api(format!("2001:db8::{i}").parse().unwrap())
                .unwrap();
        }
        assert!(l.check_api("2001:db8::ffff".parse().unwrap()).is_err());
        l.check_api("2001:db8:0:1::1".parse().unwrap()).unwrap();
    }

    #[test]
    fn logins_per_hour_and_keys_own_limits() {
        let l = Limits::new(&cfg());
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        l.check_login(a).unwrap();
        l.check_login(a).unwrap();
        let e = l.check_login(a).unwrap_err();
        assert!(e.retry_after > Duration::from_secs(60 * 20), "{e:?}");
        l.check_principal("key:a", None).unwrap();
        l.check_principal("key:a", None).unwrap();
        assert!(l.check_principal("key:a", None).is_err());
        for _ in 0..100 {
            l.check_principal("key:b", Some(0)).unwrap();
        }
        l.check_principal("key:c", Some(1)).unwrap();
        assert!(l.check_principal("key:c", Some(1)).is_err());
    }

    #[test]
    fn ws_slots_and_connections_are_counted_and_returned() {
        let l = Arc::new(Limits::new(&cfg()));
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let s1 = l.ws_slot(a).unwrap();
        let _s2 = l.ws_slot(a).unwrap();
        assert!(l.ws_slot(a).is_none());
        drop(s1);
        assert!(l.ws_slot(a).is_some());

        let peer = "127.0.0.1:1".parse().unwrap();
        let c1 = l.connections.open(peer);
        let c2 = l.connections.open(peer);
        let c3 = l.connections.open(peer);
        assert!(!c1.over_limit && !c2.over_limit && c3.over_limit);
        assert_eq!(l.connections.list().len(), 3);
        drop((c1, c2, c3));
        assert_eq!(l.connections.count(), 0);
        assert!(l.connections.list().is_empty());
    }
}
