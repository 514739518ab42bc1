//! Anomaly scoring, as in the OWASP Core Rule Set: each matching rule adds
//! its severity's points; the request is blocked once the total reaches the
//! threshold. A single critical rule blocks at the default threshold, while
//! weaker signals (warnings, notices) must add up.

use std::fmt;

/// Rule severity, worth the CRS anomaly points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// 2 points.
    Notice,
    /// 3 points.
    Warning,
    /// 4 points.
    Error,
    /// 5 points: blocks alone at the default threshold.
    Critical,
}

impl Severity {
    /// Anomaly points contributed by one matching rule.
    pub const fn points(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
        })
    }
}

/// Default inbound anomaly threshold (CRS default).
pub const DEFAULT_THRESHOLD: u32 = 5;
/// Default paranoia level.
pub const DEFAULT_PARANOIA: u8 = 1;
/// Paranoia level used by `SECURITY_STRICT_MODE`.
pub const STRICT_PARANOIA: u8 = 2;

/// Running total for one request; each rule counts once.
#[derive(Debug, Default, Clone)]
pub struct Score {
    total: u32,
    seen: Vec<u32>,
}

impl Score {
    /// Adds a rule's points unless it already scored on this request.
    /// Returns whether it was new.
    pub fn add(&mut self, rule_id: u32, severity: Severity) -> bool {
        if self.seen.contains(&rule_id) {
            return false;
        }
        self.seen.push(rule_id);
        self.total += severity.points();
        true
    }

    /// Total anomaly points.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Whether the total reaches `threshold`.
    pub fn blocks(&self, threshold: u32) -> bool {
        self.total >= threshold
    }
}
