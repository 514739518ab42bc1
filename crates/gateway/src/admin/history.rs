//! Provider history for the dashboard: once a minute, each provider's
//! samples of the past minute are summarised (count, errors, p50, p95, max,
//! and the tokens it reported) into one row of the security database, kept
//! as long as incidents are.
//!
//! Samples come from the provider's recent-attempts ring (512 entries), so
//! beyond ~8 requests a second per provider a minute's row summarises the
//! latest 512 attempts rather than all of them. Tokens come from the token
//! counters (`moltgate_tokens_total`), so they are exact.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::store::LatencyRow;
use crate::Gateway;

/// Tokens per provider, `(input, output)`.
pub type Tokens = HashMap<String, (u64, u64)>;

/// The growth of the token counters between two looks.
#[derive(Debug, Default)]
pub struct TokenMeter {
    last: Tokens,
}

impl TokenMeter {
    /// A meter whose first reading counts from `totals`.
    pub fn starting_at(totals: Tokens) -> TokenMeter {
        TokenMeter { last: totals }
    }

    /// What each provider added since the last call; providers that added
    /// nothing are left out.
    pub fn take(&mut self, totals: Tokens) -> Tokens {
        let grown = totals
            .iter()
            .filter_map(|(p, &(i, o))| {
                let (li, lo) = self.last.get(p).copied().unwrap_or_default();
                let d = (i.saturating_sub(li), o.saturating_sub(lo));
                (d != (0, 0)).then(|| (p.clone(), d))
            })
            .collect();
        self.last = totals;
        grown
    }
}

/// One row per provider that was used in `[from, to)` or reported tokens
/// in it (a stream's usage can arrive in the minute after its attempt).
pub fn summarise(
    gw: &Gateway,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tokens: &Tokens,
) -> Vec<LatencyRow> {
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
        let (input_tokens, output_tokens) = tokens.get(p.name()).copied().unwrap_or_default();
        if ms.is_empty() && input_tokens == 0 && output_tokens == 0 {
            continue;
        }
        ms.sort_unstable();
        let at = |q: f64| {
            if ms.is_empty() {
                0
            } else {
                ms[((ms.len() - 1) as f64 * q).round() as usize] as u32
            }
        };
        rows.push(LatencyRow {
            provider: p.name().to_string(),
            minute,
            count: ms.len() as u32,
            errors,
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: ms.last().copied().unwrap_or(0) as u32,
            input_tokens,
            output_tokens,
        });
    }
    rows
}

/// Runs on the caller's runtime until the gateway is dropped.
pub fn spawn(gw: &Arc<Gateway>) {
    let weak = Arc::downgrade(gw);
    let mut meter = TokenMeter::starting_at(gw.metrics.tokens_by_provider());
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
            let tokens = meter.take(gw.metrics.tokens_by_provider());
            let rows = summarise(&gw, from, to, &tokens);
            from = to;
            if !rows.is_empty() {
                let g = gw.clone();
                let _ = tokio::task::spawn_blocking(move || g.security.record_latency(&rows)).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_gives_growth_per_provider_and_forgets_none() {
        let t = |v: &[(&str, u64, u64)]| -> Tokens {
            v.iter().map(|&(p, i, o)| (p.to_string(), (i, o))).collect()
        };
        let mut m = TokenMeter::starting_at(t(&[("groq", 100, 10)]));
        assert_eq!(m.take(t(&[("groq", 100, 10)])), Tokens::new());
        assert_eq!(
            m.take(t(&[("groq", 150, 30), ("ollama", 7, 0)])),
            t(&[("groq", 50, 20), ("ollama", 7, 0)])
        );
        // A counter never shrinks; if it seems to (a reset), nothing is made up.
        assert_eq!(
            m.take(t(&[("groq", 10, 0), ("ollama", 7, 0)])),
            Tokens::new()
        );
        assert_eq!(m.take(t(&[("groq", 12, 0)])), t(&[("groq", 2, 0)]));
    }
}
