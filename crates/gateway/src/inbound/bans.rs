//! Auto-blocking in the manner of fail2ban.
//!
//! Failed authentications and firewall blocks are counted per client IP
//! in a sliding window; reaching the limit bans the IP. A repeat offender's
//! ban doubles each time (up to a cap). Bans, manual blocks of IPs or CIDR
//! blocks, and offence counts are persisted by the caller and restored
//! with their remaining time after a restart. Addresses on the ignore list
//! (the loopback admin) are never banned.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use ipnet::IpNet;

use super::config::parse_net;
use crate::admin::store::BanRow;

/// Failure histories kept at most; the oldest are dropped first. Bans are
/// not in this table, so a flood of addresses cannot evict a ban.
const MAX_TRACKED: usize = 100_000;

/// A ban as stored: an IP or CIDR block, why, since and until when
/// (`None`: until lifted by hand), and how many offences led to it.
pub type Ban = BanRow;

impl BanRow {
    /// Whether it holds at `now` (milliseconds since the epoch).
    pub fn active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Default)]
struct Table {
    /// Single addresses (including expired entries: they hold offence counts).
    exact: HashMap<IpAddr, Ban>,
    /// CIDR blocks (manual only).
    nets: Vec<(IpNet, Ban)>,
}

/// The ban list, in memory (the store keeps it), and the failures that lead to a ban.
pub struct Bans {
    table: RwLock<Table>,
    failures: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
    ignore: Vec<IpNet>,
    threshold: u32,
    window: Duration,
    base: Duration,
    cap: Duration,
}

impl Bans {
    /// A ban list banning after `threshold` failures within `window`, for
    /// `base` doubling per repeat up to `cap`, never banning `ignore`.
    pub fn new(
        ignore: Vec<IpNet>,
        threshold: u32,
        window: Duration,
        base: Duration,
        cap: Duration,
    ) -> Bans {
        Bans {
            table: RwLock::default(),
            failures: Mutex::default(),
            ignore,
            threshold: threshold.max(1),
            window,
            base,
            cap: cap.max(base),
        }
    }

    /// Whether `ip` is never banned.
    pub fn ignored(&self, ip: IpAddr) -> bool {
        super::client_ip::contains(&self.ignore, ip)
    }

    /// Replaces the table with the stored rows (startup, or after another
    /// process changed them). Rows that do not parse are skipped.
    pub fn load(&self, rows: &[BanRow]) {
        let mut t = Table::default();
        for r in rows {
            let Ok(net) = parse_net(&r.target) else {
                tracing::warn!(target = %r.target, "ignoring unreadable ban entry");
                continue;
            };
            let ban = r.clone();
            if net.prefix_len() == net.max_prefix_len() {
                t.exact.insert(net.addr(), ban);
            } else {
                t.nets.push((net, ban));
            }
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = t;
    }

    /// The active ban covering `ip`, if any. The hot path: one read lock,
    /// one hash lookup, and a scan of the (short, manual) CIDR list.
    pub fn banned(&self, ip: IpAddr, now: i64) -> Option<Ban> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = t.exact.get(&ip).filter(|b| b.active(now)) {
            return Some(b.clone());
        }
        t.nets
            .iter()
            .find(|(n, b)| n.contains(&ip) && b.active(now))
            .map(|(_, b)| b.clone())
    }

    /// Replays one failure recorded before a restart, at its own time
    /// `ts`: counted as it was then, but never a new ban (the one it led to,
    /// if any, was stored with it).
    pub fn restore_failure(&self, ip: IpAddr, ts: i64, now: i64) {
        let window = self.window.as_millis() as i64;
        if self.ignored(ip) || ts <= now - window {
            return;
        }
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if f.len() >= MAX_TRACKED && !f.contains_key(&ip) {
            return;
        }
        let q = f.entry(ip).or_default();
        q.push_back(ts);
        if q.len() >= self.threshold as usize {
            // Live, this failure banned the address and cleared its count.
            f.remove(&ip);
        }
    }

    /// Counts one failure; returns the new ban when this one crossed the
    /// threshold (the caller persists it and records the incident).
    pub fn record_failure(&self, ip: IpAddr, reason: &str, now: i64) -> Option<Ban> {
        if self.ignored(ip) || self.banned(ip, now).is_some() {
            return None;
        }
        let window = self.window.as_millis() as i64;
        let reached = {
            let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if f.len() >= MAX_TRACKED && !f.contains_key(&ip) {
                evict_oldest(&mut f);
            }
            let q = f.entry(ip).or_default();
            q.push_back(now);
            while q.front().is_some_and(|t| *t <= now - window) {
                q.pop_front();
            }
            let reached = q.len() >= self.threshold as usize;
            if reached {
                f.remove(&ip);
            }
            reached
        };
        if !reached {
            return None;
        }
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let offences = t.exact.get(&ip).map_or(0, |b| b.offences) + 1;
        let factor = 1u32
            .checked_shl(offences.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX);
        let duration = self.base.saturating_mul(factor).min(self.cap);
        let ban = Ban {
            target: ip.to_string(),
            reason: format!(
                "{} failures within {} s ({reason}); offence {offences}",
                self.threshold,
                self.window.as_secs()
            ),
            created_at: now,
            expires_at: Some(now + duration.as_millis() as i64),
            offences,
            manual: false,
        };
        t.exact.insert(ip, ban.clone());
        Some(ban)
    }

    /// A manual block of an IP or CIDR block; `for_` `None` means until lifted.
    pub fn block(
        &self,
        target: &str,
        reason: &str,
        for_: Option<Duration>,
        now: i64,
    ) -> Result<Ban, String> {
        let net = parse_net(target)?;
        if self
            .ignore
            .iter()
            .any(|i| i.contains(&net.addr()) || net.contains(&i.addr()))
        {
            return Err(format!(
                "{net} overlaps the ignore list (the local admin); refusing to lock it out"
            ));
        }
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let single = net.prefix_len() == net.max_prefix_len();
        let offences = if single {
            t.exact.get(&net.addr()).map_or(0, |b| b.offences)
        } else {
            0
        };
        let ban = Ban {
            target: if single {
                net.addr().to_string()
            } else {
                net.to_string()
            },
            reason: reason.to_string(),
            created_at: now,
            expires_at: for_.map(|d| now + d.as_millis() as i64),
            offences,
            manual: true,
        };
        if single {
            t.exact.insert(net.addr(), ban.clone());
        } else {
            t.nets.retain(|(n, _)| *n != net);
            t.nets.push((net, ban.clone()));
        }
        Ok(ban)
    }

    /// Lifts the ban on exactly this target; returns it if one was active.
    pub fn unblock(&self, target: &str, now: i64) -> Result<Option<Ban>, String> {
        let net = parse_net(target)?;
        let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
        let lifted = if net.prefix_len() == net.max_prefix_len() {
            t.exact
                .get_mut(&net.addr())
                .filter(|b| b.active(now))
                .map(|b| {
                    b.expires_at = Some(now);
                    b.manual = false;
                    b.clone()
                })
        } else {
            let before = t.nets.len();
            let found = t
                .nets
                .iter()
                .find(|(n, _)| *n == net)
                .map(|(_, b)| b.clone());
            t.nets.retain(|(n, _)| *n != net);
            found.filter(|_| t.nets.len() < before)
        };
        drop(t);
        if lifted.is_some() {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&net.addr());
        }
        Ok(lifted)
    }

    /// Active bans, for listing.
    pub fn active(&self, now: i64) -> Vec<Ban> {
        let t = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Ban> = t
            .exact
            .values()
            .chain(t.nets.iter().map(|(_, b)| b))
            .filter(|b| b.active(now))
            .cloned()
            .collect();
        v.sort_by_key(|b| b.created_at);
        v
    }
}

fn evict_oldest(f: &mut HashMap<IpAddr, VecDeque<i64>>) {
    if let Some(ip) = f
        .iter()
        .min_by_key(|(_, q)| q.back().copied().unwrap_or(0))
        .map(|(ip, _)| *ip)
    {
        f.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn bans() -> Bans {
        Bans::new(
            vec!["127.0.0.1/32".parse().unwrap()],
            5,
            Duration::from_secs(600),
            Duration::from_secs(1800),
            Duration::from_secs(7 * 24 * 3600),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn five_failures_in_the_window_ban_for_the_configured_time() {
        let b = bans();
        let x = ip("198.51.100.1");
        for i in 0..4 {
            assert!(b.record_failure(x, "bad key", i).is_none());
        }
        let ban = b.record_failure(x, "bad key", 4).expect("banned");
        assert_eq!(ban.expires_at, Some(4 + 30 * MIN));
        assert!(b.banned(x, 5).is_some());
        assert!(b.banned(x, 4 + 30 * MIN).is_none());
    }

    #[test]
    fn restored_failures_count_as_they_did_before_the_restart() {
        let b = bans();
        let x = ip("198.51.100.20");
        // Three recent failures, one too old to count.
        for ts in [-10 * MIN, MIN, 2 * MIN, 3 * MIN] {
            b.restore_failure(x, ts, 4 * MIN);
        }
        assert!(b.banned(x, 4 * MIN).is_none(), "replay bans no one");
        assert!(b.record_failure(x, "bad key", 4 * MIN).is_none());
        assert!(
            b.record_failure(x, "bad key", 4 * MIN + 1).is_some(),
            "the fifth failure in the window bans, restart or not"
        );
        // Failures that led to a ban before the restart start no count.
        let y = ip("198.51.100.21");
        for ts in 0..5 {
            b.restore_failure(y, ts, 10);
        }
        for ts in 11..15 {
            assert!(b.record_failure(y, "bad key", ts).is_none());
        }
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let b = bans();
        let x = ip("198.51.100.2");
        for i in 0..10 {
            assert!(b.record_failure(x, "bad key", i * 3 * MIN).is_none());
        }
    }

    #[test]
    fn repeat_offenders_escalate_and_survive_a_reload() {
        let b = bans();
        let x = ip("198.51.100.3");
        let mut now = 0;
        let mut durations = Vec::new();
        for _ in 0..3 {
            let mut ban = None;
            for _ in 0..5 {
                ban = b.record_failure(x, "bad key", now);
            }
            let ban = ban.unwrap();
            durations.push(ban.expires_at.unwrap() - now);
            // Persist and restore, as a restart would.
            let rows: Vec<BanRow> = b.active(now);
            let fresh = bans();
            fresh.load(&rows);
            assert!(fresh.banned(x, now + 1).is_some());
            now = ban.expires_at.unwrap();
        }
        assert_eq!(durations, [30 * MIN, 60 * MIN, 120 * MIN]);
    }

    #[test]
    fn the_ignore_list_is_never_banned_nor_blockable() {
        let b = bans();
        for i in 0..50 {
            assert!(b.record_failure(ip("127.0.0.1"), "bad key", i).is_none());
        }
        assert!(b.block("127.0.0.0/8", "oops", None, 0).is_err());
        assert!(b.block("127.0.0.1", "oops", None, 0).is_err());
    }

    #[test]
    fn manual_cidr_blocks_and_unblock() {
        let b = bans();
        b.block("203.0.113.0/24", "scanner net", None, 0).unwrap();
        assert!(b.banned(ip("203.0.113.77"), i64::MAX - 1).is_some());
        assert!(b.banned(ip("203.0.114.1"), 0).is_none());
        assert!(b.unblock("203.0.113.0/24", 1).unwrap().is_some());
        assert!(b.banned(ip("203.0.113.77"), 2).is_none());
        b.block("198.51.100.9", "manual", Some(Duration::from_secs(60)), 0)
            .unwrap();
        assert!(b.banned(ip("198.51.100.9"), 59_999).is_some());
        assert!(b.banned(ip("198.51.100.9"), 60_000).is_none());
        assert!(b.block("not-an-ip", "x", None, 0).is_err());
    }
}
