//! Per-provider circuit breaker: after `failure_threshold` consecutive
//! failures the provider is skipped for `cooldown`, then one probe request is
//! let through; success closes the breaker, failure re-opens it.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use super::config::BreakerConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
    /// Gauge value for `/metrics`: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
}

#[derive(Debug)]
pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Why a request may not use the provider right now.
#[derive(Debug, Clone, Copy)]
pub struct Rejected {
    pub retry_in: Duration,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                open_until: None,
                probe_started: None,
            }),
        }
    }

    /// Current state, moving Open -> HalfOpen once the cool-down has passed.
    pub fn state(&self) -> BreakerState {
        let mut g = self.inner.lock().unwrap();
        Self::advance(&mut g);
        g.state
    }

    fn advance(g: &mut Inner) {
        if g.state == BreakerState::Open && g.open_until.is_some_and(|t| Instant::now() >= t) {
            g.state = BreakerState::HalfOpen;
            g.probe_started = None;
        }
    }

    /// Ask to send a request. In half-open state only one probe at a time
    /// (a probe abandoned by a disconnected client expires after the cool-down).
    pub fn try_acquire(&self) -> Result<(), Rejected> {
        let mut g = self.inner.lock().unwrap();
        Self::advance(&mut g);
        let now = Instant::now();
        match g.state {
            BreakerState::Closed => Ok(()),
            BreakerState::Open => Err(Rejected {
                retry_in: g.open_until.map(|t| t - now).unwrap_or_default(),
            }),
            BreakerState::HalfOpen => match g.probe_started {
                Some(t) if now.duration_since(t) < self.cfg.cooldown => Err(Rejected {
                    retry_in: self.cfg.cooldown - now.duration_since(t),
                }),
                _ => {
                    g.probe_started = Some(now);
                    Ok(())
                }
            },
        }
    }

    pub fn record_success(&self) {
        let mut g = self.inner.lock().unwrap();
        g.state = BreakerState::Closed;
        g.consecutive_failures = 0;
        g.open_until = None;
        g.probe_started = None;
    }

    pub fn record_failure(&self) {
        let mut g = self.inner.lock().unwrap();
        g.consecutive_failures = g.consecutive_failures.saturating_add(1);
        let trip = g.state == BreakerState::HalfOpen
            || g.consecutive_failures >= self.cfg.failure_threshold;
        if trip {
            g.state = BreakerState::Open;
            g.open_until = Some(Instant::now() + self.cfg.cooldown);
            g.probe_started = None;
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.inner.lock().unwrap().consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_probes_and_recovers() {
        let b = Breaker::new(BreakerConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(5),
        });
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_err());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire().is_ok());
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        b.record_failure();
        assert_eq!(b.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.try_acquire().is_ok());
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_ok());
    }
}
