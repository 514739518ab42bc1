//! Deadlines computed once per request and passed down, so no combination of
//! retries and fallbacks can outlive the overall budget.

use std::time::Duration;
use tokio::time::Instant;

/// An absolute point in time by which something must finish.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Self {
            at: Instant::now() + d,
        }
    }
    /// The deadline at `at`.
    pub fn at(at: Instant) -> Self {
        Self { at }
    }
    /// When it is.
    pub fn instant(&self) -> Instant {
        self.at
    }
    /// What is left of it (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
    /// Whether it has passed.
    pub fn expired(&self) -> bool {
        self.remaining().is_zero()
    }
    /// The earlier of this deadline and `now + d`.
    pub fn cap(&self, d: Duration) -> Deadline {
        Self {
            at: self.at.min(Instant::now() + d),
        }
    }
    /// True when this deadline (and not the per-phase one) is the binding one.
    pub fn binds_before(&self, d: Duration) -> bool {
        self.remaining() < d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cap_never_extends() {
        let overall = Deadline::after(Duration::from_millis(100));
        let a = overall.cap(Duration::from_secs(10));
        assert!(a.remaining() <= Duration::from_millis(100));
        let b = overall.cap(Duration::from_millis(10));
        assert!(b.remaining() <= Duration::from_millis(10));
        assert!(overall.binds_before(Duration::from_secs(1)));
    }
}
