//! The breaker's state: what the JSON file holds and what each state means.
//!
//! Circuit-breaker terms are easy to misread ("open" sounds permissive), so
//! every state carries a plain-words meaning that every printer shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The three breaker states, from most to least restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// All traffic blocked. The default, and what any doubt falls back to.
    Open,
    /// Only loopback clients (127.0.0.1, ::1), still with auth.
    HalfOpen,
    /// Traffic flows; auth is always required.
    Closed,
}

impl BreakerState {
    /// The name the state file, the nginx include and every printer use:
    /// `open`, `half-open`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::Closed => "closed",
        }
    }

    /// What the state does, in words a person reads correctly.
    pub fn meaning(self) -> &'static str {
        match self {
            BreakerState::Open => "all traffic blocked",
            BreakerState::HalfOpen => "only this machine (loopback) may connect, with a password",
            BreakerState::Closed => "traffic flows, password required",
        }
    }

    /// "OPEN — all traffic blocked", the form used wherever a state is printed.
    pub fn label(self) -> String {
        format!("{} — {}", self.as_str().to_uppercase(), self.meaning())
    }

    /// Whether clients get through at all (needs the allow token at the edge).
    pub fn admits_traffic(self) -> bool {
        self != BreakerState::Open
    }

    /// Whether a remote (non-loopback) client gets through.
    pub fn admits_remote(self) -> bool {
        self == BreakerState::Closed
    }

    /// The state [`as_str`](Self::as_str) names; `None` for anything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use moltguard_breaker::BreakerState;
    ///
    /// for s in [BreakerState::Open, BreakerState::HalfOpen, BreakerState::Closed] {
    ///     assert_eq!(BreakerState::parse(s.as_str()), Some(s));
    /// }
    /// assert_eq!(BreakerState::HalfOpen.as_str(), "half-open");
    /// assert_eq!(BreakerState::parse("OPEN"), None); // exact spelling only
    /// assert_eq!(BreakerState::parse("ajar"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(BreakerState::Open),
            "half-open" => Some(BreakerState::HalfOpen),
            "closed" => Some(BreakerState::Closed),
            _ => None,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the breaker is in its state. Stable identifiers: scripts, the nginx
/// 503 body and the audit log carry them, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// A person asked for this state.
    Manual,
    /// Written by `moltguard init`: a new setup starts blocked.
    Init,
    /// A closed or half-open lifetime (`--for`) ran out.
    TtlExpired,
    /// The state file was missing, unreadable, corrupt or of an unknown version.
    StateInvalid,
    /// A transition could not be applied and verified at the edge.
    ApplyFailed,
    /// htpasswd missing or empty: closing would expose the panel without auth.
    AuthMissing,
    /// A protected port listens on a non-loopback address.
    ExposurePublicBind,
    /// `nginx -t` fails on the effective configuration.
    NginxConfigInvalid,
    /// The nginx config contains a pattern that bypasses the breaker or auth.
    NginxBypass,
    /// nginx serves a different breaker generation than the state file.
    NginxDrift,
    /// A secret (API key, token, private key) was found where it can leak.
    SecretLeak,
    /// File permissions let other users tamper with moltguard or read secrets.
    PermissionsUnsafe,
    /// A guardian check could not complete; ambiguity means deny.
    CheckFailed,
    /// A transition was cut off (a crash, `kill -9`, power loss) before it
    /// committed; nobody can tell what the edge served, so it is OPEN.
    TransitionInterrupted,
}

impl ReasonCode {
    /// The stable identifier, as serialized: `TTL_EXPIRED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::Manual => "MANUAL",
            ReasonCode::Init => "INIT",
            ReasonCode::TtlExpired => "TTL_EXPIRED",
            ReasonCode::StateInvalid => "STATE_INVALID",
            ReasonCode::ApplyFailed => "APPLY_FAILED",
            ReasonCode::AuthMissing => "AUTH_MISSING",
            ReasonCode::ExposurePublicBind => "EXPOSURE_PUBLIC_BIND",
            ReasonCode::NginxConfigInvalid => "NGINX_CONFIG_INVALID",
            ReasonCode::NginxBypass => "NGINX_BYPASS",
            ReasonCode::NginxDrift => "NGINX_DRIFT",
            ReasonCode::SecretLeak => "SECRET_LEAK",
            ReasonCode::PermissionsUnsafe => "PERMISSIONS_UNSAFE",
            ReasonCode::CheckFailed => "CHECK_FAILED",
            ReasonCode::TransitionInterrupted => "TRANSITION_INTERRUPTED",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    /// A person, through a moltguard command.
    User,
    /// The guardian daemon, on a finding.
    Guardian,
    /// moltguard itself: a new setup, an expired lifetime, a repair.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Actor::User => "user",
            Actor::Guardian => "guardian",
            Actor::System => "system",
        })
    }
}

/// How the last attempt to apply a state at the edge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyOutcome {
    /// Rendered, tested, swapped, reloaded, and the new generation seen live.
    Applied,
    /// Rendered and tested, but nginx is not running: nothing is served.
    NginxNotRunning,
    /// A change toward traffic failed; the breaker fell back to OPEN.
    RolledBack,
    /// Going to OPEN: nginx could not load the new include, but its running
    /// config was seen to deny every request, so it was left running.
    NotReloaded,
    /// Going to OPEN could not be verified, so nginx was stopped.
    NginxStopped,
    /// Going to OPEN could not be verified and nginx could not be stopped either.
    Failed,
}

impl ApplyOutcome {
    /// The name the audit log records: `rolled-back`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyOutcome::Applied => "applied",
            ApplyOutcome::NginxNotRunning => "nginx-not-running",
            ApplyOutcome::RolledBack => "rolled-back",
            ApplyOutcome::NotReloaded => "not-reloaded",
            ApplyOutcome::NginxStopped => "nginx-stopped",
            ApplyOutcome::Failed => "failed",
        }
    }
}

/// The record of the last apply attempt, kept in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyRecord {
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// The state it applied.
    pub target: BreakerState,
    /// The generation it applied.
    pub generation: u64,
    /// How it ended.
    pub outcome: ApplyOutcome,
    /// What applying it reported.
    pub message: String,
}

/// The last audit line this state change wrote; lets `audit-log verify`
/// notice a log whose tail was cut off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash, hex.
    pub hash: String,
}

/// The state file's contents. The JSON file is the truth; the nginx include
/// is derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerRecord {
    /// The file's schema version; [`SCHEMA_VERSION`] is the only one read.
    pub schema_version: u32,
    /// The committed state.
    pub state: BreakerState,
    /// Why the breaker is in it.
    pub reason: ReasonCode,
    /// The reason in words (a person's `--reason`, a check's finding); may be empty.
    #[serde(default)]
    pub detail: String,
    /// Who made the change.
    pub actor: Actor,
    /// Increases by one with every state change; nginx echoes it back in the
    /// `X-Breaker-State` header so moltguard can see which config is live.
    pub generation: u64,
    /// When the change to this state was made.
    pub changed_at: DateTime<Utc>,
    /// When a closed or half-open state's lifetime (`--for`) ends; `None`: never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The last attempt to apply a state at the edge.
    #[serde(default)]
    pub last_apply: Option<ApplyRecord>,
    /// The audit entry this state was recorded in; the file is trusted only
    /// while the two agree ([`store::load`](crate::store::load)).
    #[serde(default)]
    pub audit_head: Option<AuditHead>,
    /// A transition under way (write-ahead): recorded before the edge is
    /// touched, cleared when the new state commits. While it is here every
    /// reader treats the breaker as OPEN, because the edge may already
    /// serve the target, or half of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// The transition a state file says is under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The state being applied.
    pub target: BreakerState,
    /// The generation it commits as, one above the committed record's.
    pub generation: u64,
    /// Why it was asked for.
    pub reason: ReasonCode,
    /// The reason in words; may be empty.
    #[serde(default)]
    pub detail: String,
    /// Who asked for it.
    pub actor: Actor,
    /// When the transition began.
    pub started_at: DateTime<Utc>,
}

impl BreakerRecord {
    /// The record a fresh setup starts with: blocked until a person closes it.
    pub fn initial(now: DateTime<Utc>) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            state: BreakerState::Open,
            reason: ReasonCode::Init,
            detail: "new setup: blocked until you add a user and close the breaker".into(),
            actor: Actor::System,
            generation: 1,
            changed_at: now,
            expires_at: None,
            last_apply: None,
            audit_head: None,
            pending: None,
        }
    }

    /// Whether a closed/half-open lifetime has run out at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.state.admits_traffic() && self.expires_at.is_some_and(|t| t <= now)
    }

    /// The state nginx enforces right now: an expired lifetime is OPEN even
    /// before anyone records the transition (the include enforces the expiry).
    pub fn effective_state(&self, now: DateTime<Utc>) -> BreakerState {
        if self.is_expired(now) {
            BreakerState::Open
        } else {
            self.state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_say_what_states_mean() {
        assert_eq!(BreakerState::Open.label(), "OPEN — all traffic blocked");
        assert!(BreakerState::Closed
            .label()
            .starts_with("CLOSED — traffic flows"));
    }

    #[test]
    fn reason_codes_serialize_as_stable_identifiers() {
        for code in [
            ReasonCode::Manual,
            ReasonCode::StateInvalid,
            ReasonCode::ExposurePublicBind,
            ReasonCode::AuthMissing,
            ReasonCode::TtlExpired,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn expiry_makes_effective_state_open() {
        let now = Utc::now();
        let mut r = BreakerRecord::initial(now);
        r.state = BreakerState::Closed;
        r.expires_at = Some(now - chrono::Duration::seconds(1));
        assert_eq!(r.effective_state(now), BreakerState::Open);
        r.expires_at = Some(now + chrono::Duration::seconds(60));
        assert_eq!(r.effective_state(now), BreakerState::Closed);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let mut v = serde_json::to_value(BreakerRecord::initial(Utc::now())).unwrap();
        v["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<BreakerRecord>(v).is_err());
    }
}
