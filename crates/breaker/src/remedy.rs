//! What a person should do about the breaker's state: the state in force,
//! why in words, and the exact commands that change it. The dashboard's
//! banner shows this; every command here is one the CLI accepts as written.
//!
//! The gateway cannot change the breaker itself (it has no right to touch
//! nginx), so the dashboard hands the person a command to copy.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::state::{BreakerRecord, BreakerState, ReasonCode};

/// The breaker as a person should read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remedy {
    /// The state nginx enforces now (an expired lifetime or a transition
    /// under way is OPEN).
    pub state: BreakerState,
    /// One sentence: what the state does to traffic.
    pub headline: String,
    /// Why it is in this state, in words (the reason code is kept apart).
    pub why: String,
    /// The stored reason code, shown once.
    pub reason: ReasonCode,
    /// The record's detail, without a leading copy of the reason code.
    pub detail: String,
    /// Something to do by hand before the commands (fix a finding), if any.
    pub first: Option<String>,
    /// The commands, in order; the last one is the state change.
    pub commands: Vec<Step>,
}

/// One command of a remedy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// What it does, in a few words.
    pub does: String,
    /// The command line, ready to paste.
    pub run: String,
}

/// What the reason code means, in words.
pub fn why(reason: ReasonCode) -> &'static str {
    match reason {
        ReasonCode::Manual => "a person set this state",
        ReasonCode::Init => "a new setup starts blocked until you let traffic through on purpose",
        ReasonCode::TtlExpired => "the time given with --for ran out",
        ReasonCode::StateInvalid => {
            "the breaker's state file is missing, damaged or was edited by hand"
        }
        ReasonCode::ApplyFailed => "the last change could not be applied and verified at nginx",
        ReasonCode::AuthMissing => "no password is set up, so opening would expose the panel",
        ReasonCode::ExposurePublicBind => {
            "a protected port listens on an address other machines reach"
        }
        ReasonCode::NginxConfigInvalid => "nginx's configuration does not pass `nginx -t`",
        ReasonCode::NginxBypass => {
            "the nginx configuration has a way around the breaker or the password"
        }
        ReasonCode::NginxDrift => "nginx serves another breaker state than the one on record",
        ReasonCode::SecretLeak => "a secret was found where it can leak",
        ReasonCode::PermissionsUnsafe => {
            "file permissions let other users tamper with moltguard or read secrets"
        }
        ReasonCode::CheckFailed => "a guardian check could not finish, and doubt means blocked",
        ReasonCode::TransitionInterrupted => {
            "a change was cut off before it finished, so nobody can tell what nginx served"
        }
    }
}

/// The `moltguard` command line for the setup whose state lives in
/// `state_dir`: a home layout (`HOME/state`) is named with `--home`; the
/// system layout needs root.
pub fn command_prefix(state_dir: &Path) -> String {
    if state_dir.file_name().is_some_and(|n| n == "state") {
        if let Some(home) = state_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            return format!("moltguard --home {}", quote(&home.to_string_lossy()));
        }
    }
    if state_dir.ends_with("var/lib/moltguard") {
        return "sudo moltguard".into();
    }
    format!(
        "moltguard --state-dir {}",
        quote(&state_dir.to_string_lossy())
    )
}

/// The guardian's advice for the finding that opened the breaker: the
/// guardian writes `FINDING_ID: what` as the detail, and its status file
/// lists each finding's `(id, fix)`.
pub fn finding_fix<'a>(
    detail: &str,
    findings: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<&'a str> {
    let id = detail.split(':').next().unwrap_or_default().trim();
    findings
        .into_iter()
        .find(|(f, _)| *f == id)
        .map(|(_, fix)| fix)
}

/// A path as one shell word.
pub fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.to_string())
}

/// What is known besides the record, to make the steps right.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The guardian's advice for the finding that opened the breaker.
    pub finding_fix: Option<&'a str>,
    /// No password user exists yet: closing would be refused until one does.
    pub auth_missing: bool,
}

/// What `rec` means at `now`, and the commands (each starting with
/// `prefix`, see [`command_prefix`]) that change it.
pub fn remedy(rec: &BreakerRecord, now: DateTime<Utc>, prefix: &str, known: Known<'_>) -> Remedy {
    let interrupted = rec.pending.is_some();
    let expired = rec.is_expired(now);
    let state = if interrupted {
        BreakerState::Open
    } else {
        rec.effective_state(now)
    };
    let reason = rec.reason;
    let why = if interrupted {
        why(ReasonCode::TransitionInterrupted).to_string()
    } else if expired {
        format!(
            "the time given to {} with --for ran out",
            rec.state.as_str().to_uppercase()
        )
    } else {
        why(reason).to_string()
    };
    let step = |does: &str, args: &str| Step {
        does: does.into(),
        run: format!("{prefix} {args}"),
    };
    let close = step(
        "let traffic through again (with the password), for 30 minutes",
        "breaker close --for 30m",
    );
    let (headline, first, commands) = match state {
        BreakerState::Open => {
            // A finding is fixed by hand first; a failed or cut-off change
            // is looked at first; a missing user is added before closing.
            let from_finding = !interrupted
                && !expired
                && matches!(
                    reason,
                    ReasonCode::ExposurePublicBind
                        | ReasonCode::NginxConfigInvalid
                        | ReasonCode::NginxBypass
                        | ReasonCode::SecretLeak
                        | ReasonCode::PermissionsUnsafe
                        | ReasonCode::CheckFailed
                );
            let look_first = interrupted
                || matches!(
                    reason,
                    ReasonCode::ApplyFailed
                        | ReasonCode::NginxDrift
                        | ReasonCode::StateInvalid
                        | ReasonCode::TransitionInterrupted
                );
            let mut commands = Vec::new();
            let first = from_finding.then(|| match known.finding_fix {
                Some(f) => format!("Fix what the guardian found: {f}"),
                None => "Fix what the guardian found (its findings are listed below)".into(),
            });
            if from_finding {
                commands.push(step("check that nothing is left to fix", "audit"));
            } else if look_first {
                commands.push(step("see what nginx serves and why", "status"));
            }
            if known.auth_missing || reason == ReasonCode::AuthMissing {
                commands.push(step(
                    "add a user for the password prompt",
                    "auth add-user NAME",
                ));
            }
            commands.push(close);
            ("All traffic to the agent is blocked.", first, commands)
        }
        BreakerState::HalfOpen => (
            "Only this machine may connect (with the password); every other client is blocked.",
            None,
            vec![close, step("block everything now", "breaker open")],
        ),
        BreakerState::Closed => (
            "Traffic flows; every request needs the password.",
            None,
            vec![step("block everything now", "breaker open")],
        ),
    };
    Remedy {
        state,
        headline: headline.into(),
        why,
        reason,
        detail: without_code(&rec.detail, reason).to_string(),
        first,
        commands,
    }
}

/// `EXPOSURE_PUBLIC_BIND: port 8080 …` → `port 8080 …`: the code is shown
/// on its own already.
fn without_code(detail: &str, reason: ReasonCode) -> &str {
    let d = detail.trim();
    d.strip_prefix(reason.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
        .map(str::trim_start)
        .unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Actor;

    fn rec(state: BreakerState, reason: ReasonCode, detail: &str) -> BreakerRecord {
        let mut r = BreakerRecord::initial(Utc::now());
        r.state = state;
        r.reason = reason;
        r.detail = detail.into();
        r.actor = Actor::Guardian;
        r
    }

    fn runs(r: &Remedy) -> Vec<&str> {
        r.commands.iter().map(|s| s.run.as_str()).collect()
    }

    #[test]
    fn open_for_a_finding_says_fix_it_then_audit_then_close() {
        let r = remedy(
            &rec(
                BreakerState::Open,
                ReasonCode::ExposurePublicBind,
                "NGINX_LISTEN_PUBLIC: nginx listens on 0.0.0.0:8080",
            ),
            Utc::now(),
            "moltguard",
            Known {
                finding_fix: Some("listen on 127.0.0.1 only"),
                ..Known::default()
            },
        );
        assert_eq!(r.state, BreakerState::Open);
        assert_eq!(r.headline, "All traffic to the agent is blocked.");
        assert_eq!(
            r.first.as_deref(),
            Some("Fix what the guardian found: listen on 127.0.0.1 only")
        );
        assert_eq!(
            runs(&r),
            ["moltguard audit", "moltguard breaker close --for 30m"]
        );
        // The finding's own id stays: it is not the reason code.
        assert_eq!(
            r.detail,
            "NGINX_LISTEN_PUBLIC: nginx listens on 0.0.0.0:8080"
        );
    }

    #[test]
    fn the_reason_code_is_not_repeated_in_the_detail() {
        let r = remedy(
            &rec(
                BreakerState::Open,
                ReasonCode::SecretLeak,
                "SECRET_LEAK: a Groq key in ~/.bash_history",
            ),
            Utc::now(),
            "moltguard",
            Known::default(),
        );
        assert_eq!(r.detail, "a Groq key in ~/.bash_history");
        assert_eq!(without_code("MANUAL", ReasonCode::Manual), "MANUAL");
        assert_eq!(
            without_code("MANUALLY done", ReasonCode::Manual),
            "MANUALLY done"
        );
        assert_eq!(
            without_code("maintenance", ReasonCode::Manual),
            "maintenance"
        );
    }

    #[test]
    fn missing_auth_adds_a_user_before_closing() {
        let r = remedy(
            &rec(BreakerState::Open, ReasonCode::AuthMissing, ""),
            Utc::now(),
            "sudo moltguard",
            Known::default(),
        );
        assert_eq!(
            runs(&r),
            [
                "sudo moltguard auth add-user NAME",
                "sudo moltguard breaker close --for 30m"
            ]
        );
        assert!(r.first.is_none());
    }

    #[test]
    fn a_new_setup_without_a_user_adds_one_first() {
        let m = remedy(
            &rec(BreakerState::Open, ReasonCode::Init, "new setup"),
            Utc::now(),
            "moltguard",
            Known {
                auth_missing: true,
                ..Known::default()
            },
        );
        assert_eq!(
            runs(&m),
            [
                "moltguard auth add-user NAME",
                "moltguard breaker close --for 30m"
            ]
        );
    }

    #[test]
    fn an_expired_lifetime_is_open_and_just_needs_closing_again() {
        let mut r = rec(BreakerState::Closed, ReasonCode::Manual, "demo");
        r.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        let m = remedy(&r, Utc::now(), "moltguard", Known::default());
        assert_eq!(m.state, BreakerState::Open);
        assert_eq!(m.why, "the time given to CLOSED with --for ran out");
        assert_eq!(runs(&m), ["moltguard breaker close --for 30m"]);
    }

    #[test]
    fn a_transition_under_way_is_open_and_points_at_status() {
        let mut r = rec(BreakerState::Closed, ReasonCode::Manual, "");
        r.pending = Some(crate::state::Pending {
            target: BreakerState::Closed,
            generation: 3,
            reason: ReasonCode::Manual,
            detail: String::new(),
            actor: Actor::User,
            started_at: Utc::now(),
        });
        let m = remedy(&r, Utc::now(), "moltguard", Known::default());
        assert_eq!(m.state, BreakerState::Open);
        assert_eq!(
            runs(&m),
            ["moltguard status", "moltguard breaker close --for 30m"]
        );
    }

    #[test]
    fn closed_and_half_open_offer_the_way_back_to_open() {
        let c = remedy(
            &rec(BreakerState::Closed, ReasonCode::Manual, ""),
            Utc::now(),
            "moltguard",
            Known::default(),
        );
        assert_eq!(runs(&c), ["moltguard breaker open"]);
        let h = remedy(
            &rec(BreakerState::HalfOpen, ReasonCode::Manual, ""),
            Utc::now(),
            "moltguard",
            Known::default(),
        );
        assert_eq!(h.commands.len(), 2);
        assert!(h.headline.starts_with("Only this machine"));
    }

    #[test]
    fn the_fix_is_the_finding_named_in_the_detail() {
        let findings = [
            ("PERMISSIONS_STATE_DIR", "chmod 700"),
            ("NGINX_LISTEN_PUBLIC", "bind 127.0.0.1"),
        ];
        assert_eq!(
            finding_fix("NGINX_LISTEN_PUBLIC: nginx listens on 0.0.0.0", findings),
            Some("bind 127.0.0.1")
        );
        assert_eq!(finding_fix("a person closed it", findings), None);
    }

    #[test]
    fn the_prefix_names_the_setup() {
        assert_eq!(
            command_prefix(Path::new("/home/ann/.moltguard/state")),
            "moltguard --home /home/ann/.moltguard"
        );
        assert_eq!(
            command_prefix(Path::new("/Users/ann/My Agent/state")),
            "moltguard --home '/Users/ann/My Agent'"
        );
        assert_eq!(
            command_prefix(Path::new("/var/lib/moltguard")),
            "sudo moltguard"
        );
        assert_eq!(
            command_prefix(Path::new("/opt/homebrew/var/lib/moltguard")),
            "sudo moltguard"
        );
        assert_eq!(
            command_prefix(Path::new("/srv/m")),
            "moltguard --state-dir /srv/m"
        );
    }

    #[test]
    fn every_reason_has_words() {
        for r in [
            ReasonCode::Manual,
            ReasonCode::Init,
            ReasonCode::TtlExpired,
            ReasonCode::StateInvalid,
            ReasonCode::ApplyFailed,
            ReasonCode::AuthMissing,
            ReasonCode::ExposurePublicBind,
            ReasonCode::NginxConfigInvalid,
            ReasonCode::NginxBypass,
            ReasonCode::NginxDrift,
            ReasonCode::SecretLeak,
            ReasonCode::PermissionsUnsafe,
            ReasonCode::CheckFailed,
            ReasonCode::TransitionInterrupted,
        ] {
            assert!(!why(r).is_empty() && !why(r).contains(r.as_str()), "{r}");
        }
    }
}
