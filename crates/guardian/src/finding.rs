//! What a check reports: a stable id, a severity, what was found, and the fix.

use crate::breaker::ReasonCode;
use serde::Serialize;

/// How bad a finding is. Any critical finding opens the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do now.
    Info,
    /// Should be fixed; the breaker stays as it is.
    Warning,
    /// Opens the breaker.
    Critical,
}

/// One problem found by a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier of the rule that fired, e.g. `NGINX_LISTEN_PUBLIC`.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The breaker reason code a critical finding opens the breaker with.
    pub reason: ReasonCode,
    /// What was found, with enough detail to locate it. Never a secret.
    pub what: String,
    /// What the user should do about it.
    pub fix: String,
    /// Where: `file:line`, `pid 123 (node)`, an address.
    pub location: Option<String>,
}

impl Finding {
    /// A finding that opens the breaker.
    pub fn critical(
        id: &'static str,
        reason: ReasonCode,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(id, Severity::Critical, reason, what.into(), fix.into())
    }

    /// A finding to fix that does not open the breaker.
    pub fn warning(
        id: &'static str,
        reason: ReasonCode,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(id, Severity::Warning, reason, what.into(), fix.into())
    }

    /// A finding for information.
    pub fn info(
        id: &'static str,
        reason: ReasonCode,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(id, Severity::Info, reason, what.into(), fix.into())
    }

    fn new(
        id: &'static str,
        severity: Severity,
        reason: ReasonCode,
        what: String,
        fix: String,
    ) -> Self {
        Self {
            id,
            severity,
            reason,
            what,
            fix,
            location: None,
        }
    }

    /// The finding, placed at `location`.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }
}
