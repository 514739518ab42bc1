//! Provider latency history for the dashboard: once a minute, each
//! provider's samples of the past minute are summarised (count, errors,
//! p50, p95, max) into one row of the security database, kept as long as
//! incidents are.
//!
//! Samples come from the provider's recent-attempts ring (512 entries), so
//! beyond ~8 requests a second per provider a minute's row summarises the
//! latest 512 attempts rather than all of them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::security::store::LatencyRow;
use super::Gateway;

/// One row per provider that was used in `[from, to)`.
pub fn summarise(gw: &Gateway, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<LatencyRow> {
    let minute = from.timestamp_millis() / 60_000 * 60_000;
    let mut rows = Vec::new();
    for p in &gw.providers {
        let mut ms: Vec<u64> = Vec::new();
        let mut errors = 0u32;
        {
            let s = p.stats.lock().unwrap_or_else(|e| e.into_inner());
            for x in s.history.iter().filter(|x| x.at >= from && x.at < to) {
                ms.push(x.ms);
                if !x.ok {
                    errors += 1;
                }
            }
        }
        if ms.is_empty() {
            continue;
        }
        ms.sort_unstable();
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize] as u32;
        rows.push(LatencyRow {
            provider: p.name().to_string(),
            minute,
            count: ms.len() as u32,
            errors,
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: *ms.last().expect("non-empty") as u32,
        });
    }
    rows
}

/// Runs on the caller's runtime until the gateway is dropped.
pub fn spawn(gw: &Arc<Gateway>) {
    let weak = Arc::downgrade(gw);
    tokio::spawn(async move {
        let mut from = Utc::now();
        loop {
            // Wake at the next minute boundary.
            let now = Utc::now();
            let next = (now.timestamp_millis() / 60_000 + 1) * 60_000;
            tokio::time::sleep(Duration::from_millis(
                (next - now.timestamp_millis()).max(1) as u64,
            ))
            .await;
            let Some(gw) = weak.upgrade() else { return };
            let to = Utc::now();
            let rows = summarise(&gw, from, to);
            from = to;
            if !rows.is_empty() {
                let g = gw.clone();
                let _ = tokio::task::spawn_blocking(move || g.security.record_latency(&rows)).await;
            }
        }
    });
}
