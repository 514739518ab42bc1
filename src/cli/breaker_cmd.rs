//! `moltguard breaker open|half-open|close|reapply`.

use super::output::{emit, relative, CliError, Exit};
use super::Ctx;
use crate::breaker::edge;
use crate::breaker::state::ApplyOutcome;
use crate::breaker::state::BreakerRecord;
use crate::breaker::{
    self, Actor, BreakerState, Conditional, ReasonCode, Report, Request, Settlement,
};
use crate::nginx::control::Nginx;
use chrono::Utc;
use clap::{Args, Subcommand};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(super) enum BreakerCmd {
    /// OPEN: block all traffic.
    Open(ChangeArgs),
    /// HALF-OPEN: only this machine (loopback) may connect, with a password.
    HalfOpen(TimedArgs),
    /// CLOSED: let traffic through, password required.
    Close(TimedArgs),
    /// Re-render and re-apply the current state (after drift or a hand edit).
    Reapply,
    /// Internal: the watcher a `--for` lifetime leaves behind; at TIME, if
    /// GENERATION is still the committed one, records the expiry and
    /// reloads nginx so that open connections end too.
    #[command(hide = true)]
    ExpireAt {
        generation: u64,
        #[arg(value_parser = parse_time)]
        at: chrono::DateTime<Utc>,
    },
}

fn parse_time(s: &str) -> Result<chrono::DateTime<Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub(super) struct ChangeArgs {
    /// Why, in your words (kept in the state file and the audit log).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct TimedArgs {
    /// Return to OPEN by itself after this long, e.g. 30m, 2h (nginx enforces it).
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    lifetime: Option<Duration>,
    /// Why, in your words (kept in the state file and the audit log).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 90s, 30m, 2h)"))
}

pub(super) fn run(ctx: &Ctx, cmd: BreakerCmd) -> Result<Exit, CliError> {
    if let BreakerCmd::ExpireAt { generation, at } = cmd {
        return super::expiry_watch::run(ctx, generation, at);
    }
    let cfg = ctx.config()?;
    let (target, reason, ttl) = match cmd {
        BreakerCmd::Open(a) => (BreakerState::Open, a.reason, None),
        BreakerCmd::HalfOpen(a) => (BreakerState::HalfOpen, a.reason, a.lifetime),
        BreakerCmd::Close(a) => (BreakerState::Closed, a.reason, a.lifetime),
        BreakerCmd::Reapply => {
            let report = breaker::reapply(&cfg, Actor::User)?;
            watch_expiry(ctx, &report);
            return Ok(print_report(ctx, &report));
        }
        BreakerCmd::ExpireAt { .. } => unreachable!("handled above"),
    };
    if reason
        .as_ref()
        .is_some_and(|r| r.len() > 500 || r.chars().any(char::is_control))
    {
        return Err(CliError::usage(
            "--reason must be one line of at most 500 characters",
            "shorten it",
        ));
    }
    // Asking for what is already in force, and served, changes nothing: no
    // new generation, no reload. A new lifetime or reason is a change.
    let asks_nothing_new = ttl.is_none() && reason.is_none();
    // Drift is settled (toward OPEN, under the same lock) and said first,
    // whatever happens next.
    let nginx = Nginx::from_config(&cfg);
    let mut unchanged = None;
    let done = breaker::transition_if(
        &cfg,
        Request {
            target,
            reason: ReasonCode::Manual,
            detail: reason.unwrap_or_default(),
            actor: Actor::User,
            ttl,
            keep_running_config: false,
        },
        |current| {
            let already = asks_nothing_new
                && current.state == target
                && current.expires_at.is_none()
                && edge::observe(&cfg, &nginx, current).live.is_exact();
            if already {
                unchanged = Some(current.clone());
            }
            !already
        },
    )?;
    match (done, unchanged) {
        (Conditional::Ran(report), _) => {
            watch_expiry(ctx, &report);
            Ok(print_report(ctx, &report))
        }
        (Conditional::NotNeeded { settled }, Some(current)) => {
            Ok(print_already(ctx, &current, &settled))
        }
        (Conditional::NotNeeded { .. }, None) => {
            unreachable!("transition_if skips only when the check said so")
        }
    }
}

/// `breaker half-open` twice: the second says so, and reloads nothing.
fn print_already(ctx: &Ctx, r: &BreakerRecord, settled: &[Settlement]) -> Exit {
    let value = serde_json::json!({
        "ok": true,
        "outcome": "unchanged",
        "message": format!("already {}; nothing reloaded", r.state.as_str()),
        "from": r.state,
        "to": r.state,
        "label": r.state.label(),
        "generation": r.generation,
        "expires_at": r.expires_at,
        "preliminary": settled,
    });
    emit(ctx.json, value, || {
        for p in settled {
            println!("note: {}", p.message);
        }
        println!(
            "breaker: already {} (generation {}); nothing reloaded",
            r.state.label(),
            r.generation
        );
    });
    Exit::Ok
}

/// A lifetime granted: leave the watcher that ends open connections at its
/// end (see `expiry_watch`). Failing to is a warning, not an error: nginx
/// still refuses every new request after the expiry.
fn watch_expiry(ctx: &Ctx, r: &Report) {
    let (Some(at), true) = (r.after.expires_at, r.after.state.admits_traffic()) else {
        return;
    };
    if let Err(e) = super::expiry_watch::spawn(ctx, r.after.generation, at) {
        eprintln!(
            "warning: no watcher for the lifetime's end ({e}): new requests are refused on time, open connections end at the next reload (the guardian does it)"
        );
    }
}

fn print_report(ctx: &Ctx, r: &Report) -> Exit {
    let applied = matches!(
        r.outcome,
        ApplyOutcome::Applied | ApplyOutcome::NginxNotRunning
    );
    let now = Utc::now();
    let value = serde_json::json!({
        "ok": applied && r.warnings.is_empty(),
        "outcome": r.outcome,
        "message": r.message,
        "from": r.before.state,
        "to": r.after.state,
        "label": r.after.state.label(),
        "generation": r.after.generation,
        "expires_at": r.after.expires_at,
        "served": r.served,
        "preliminary": r.preliminary,
        "warnings": r.warnings,
    });
    emit(ctx.json, value, || {
        for p in &r.preliminary {
            println!("note: {}", p.message);
        }
        if applied {
            println!(
                "breaker: {} (generation {})",
                r.after.state.label(),
                r.after.generation
            );
            if let Some(t) = r.after.expires_at {
                println!("returns to OPEN {} ({})", relative(t, now), t.to_rfc3339());
            }
            println!("{}", r.message);
            for w in &r.warnings {
                eprintln!("error: {w}");
            }
        } else {
            eprintln!(
                "error: the change to {} was not applied ({}): {}",
                last_target(r).to_uppercase(),
                r.outcome.as_str(),
                r.message
            );
            eprintln!(
                "breaker now: {} (generation {})",
                r.after.state.label(),
                r.after.generation
            );
            eprintln!("  what to do: fix the nginx problem above (`moltguard nginx test`, nginx's error log), then retry");
        }
    });
    match (applied, r.warnings.is_empty()) {
        (true, true) => Exit::Ok,
        (true, false) => Exit::Error,
        (false, _) => Exit::NotApplied,
    }
}

/// The state that was asked for (after a rollback, `after` is the old state).
fn last_target(r: &Report) -> &'static str {
    r.after
        .last_apply
        .as_ref()
        .map_or(r.after.state, |a| a.target)
        .as_str()
}
