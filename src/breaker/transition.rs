//! A breaker transition as one transaction:
//! render → `nginx -t` on the candidate → atomic swap → `nginx -t` on the
//! whole config → reload → verify the new generation is live.
//!
//! Failure handling follows one rule: end in the more restrictive place.
//! A failed move toward traffic (close, half-open) puts the previous include
//! back. A failed move to OPEN cannot be put back (the previous state let
//! traffic through), so nginx is stopped instead. Going to OPEN removes the
//! allow token first, which denies every request at once, before any reload.

use super::audit::{self, NewEntry};
use super::state::{
    Actor, ApplyOutcome, ApplyRecord, BreakerRecord, BreakerState, ReasonCode, SCHEMA_VERSION,
};
use super::store::{self, StateProblem};
use crate::auth::htpasswd;
use crate::config::Config;
use crate::fsutil::{self, ExclusiveLock};
use crate::nginx::control::{self, Nginx, NginxError};
use crate::nginx::{probe, render};
use chrono::Utc;
use std::fs;
use std::io;
use std::time::Duration;

/// The longest lifetime `--for` accepts: a "moment" is not a month.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: BreakerState,
    pub reason: ReasonCode,
    pub detail: String,
    pub actor: Actor,
    pub ttl: Option<Duration>,
    /// The nginx config on disk is known to be unsafe (a bypass, a public
    /// listen, a failing test): going to OPEN must not reload it. Removing
    /// the allow token already makes the running config deny everything.
    pub keep_running_config: bool,
}

/// What happened, for printing and exit codes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub before: BreakerRecord,
    pub after: BreakerRecord,
    pub outcome: ApplyOutcome,
    pub message: String,
    pub served: Option<probe::Served>,
    /// Transitions done first to record the truth: a repaired state file,
    /// an expired lifetime.
    pub preliminary: Vec<Settlement>,
}

/// A transition `settle` made to record what was already true.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settlement {
    pub kind: SettlementKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettlementKind {
    /// The state file could not be trusted and was replaced by OPEN.
    RepairedState,
    /// A `--for` lifetime ran out and the OPEN state was recorded.
    RecordedExpiry,
}

#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    #[error("{why}")]
    Refused { why: String, hint: String },
    #[error("cannot use the state directory {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Unsafe(#[from] render::UnsafePath),
    #[error(transparent)]
    Nginx(#[from] NginxError),
}

impl BreakerError {
    fn io(path: &std::path::Path, source: io::Error) -> Self {
        BreakerError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Performs a transition under the breaker lock.
pub fn transition(config: &Config, req: Request) -> Result<Report, BreakerError> {
    if let Some(ttl) = req.ttl {
        if req.target == BreakerState::Open {
            return Err(BreakerError::Refused {
                why: "OPEN needs no lifetime: it lasts until you close the breaker".into(),
                hint: "drop --for".into(),
            });
        }
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(BreakerError::Refused {
                why: format!(
                    "--for must be between 1s and {}",
                    humantime::format_duration(MAX_TTL)
                ),
                hint: "for longer, close without --for and open the breaker yourself".into(),
            });
        }
    }
    let mut session = Session::begin(config)?;
    let mut preliminary = session.settle()?;
    let report = session.apply(req)?;
    preliminary.extend(report.preliminary);
    Ok(Report {
        preliminary,
        ..report
    })
}

/// Like [`transition`], but only if `still_needed` holds for the record
/// found under the lock: the guardian's findings were made without the lock,
/// and a person's transition may have finished since. Returns `None` when
/// nothing needed doing.
pub fn transition_if(
    config: &Config,
    req: Request,
    still_needed: impl FnOnce(&BreakerRecord) -> bool,
) -> Result<Option<Report>, BreakerError> {
    let mut session = Session::begin(config)?;
    let mut preliminary = session.settle()?;
    if !still_needed(&session.current) {
        return Ok(None);
    }
    let report = session.apply(req)?;
    preliminary.extend(report.preliminary);
    Ok(Some(Report {
        preliminary,
        ..report
    }))
}

/// Records what is already true before anyone acts: repairs an invalid
/// state file and records an expired lifetime. Both only move toward OPEN.
/// Returns what was done, in words.
pub fn settle(config: &Config) -> Result<Vec<Settlement>, BreakerError> {
    Session::begin(config)?.settle()
}

/// Re-renders and re-applies the current state with a new generation
/// (after a drift, a hand edit, or a manual nginx restart).
pub fn reapply(config: &Config, actor: Actor) -> Result<Report, BreakerError> {
    let mut session = Session::begin(config)?;
    let mut preliminary = session.settle()?;
    let cur = session.current.clone();
    let ttl = cur
        .expires_at
        .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::from_secs(1)));
    let report = session.apply(Request {
        target: cur.state,
        reason: cur.reason,
        detail: cur.detail,
        actor,
        ttl,
        keep_running_config: false,
    })?;
    preliminary.extend(report.preliminary);
    Ok(Report {
        preliminary,
        ..report
    })
}

/// Everything one locked transaction needs.
struct Session<'a> {
    config: &'a Config,
    _lock: ExclusiveLock,
    current: BreakerRecord,
    problem: Option<StateProblem>,
}

impl<'a> Session<'a> {
    fn begin(config: &'a Config) -> Result<Self, BreakerError> {
        let l = &config.layout;
        let edge_dir = l
            .allow_token()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        fsutil::ensure_dir(&l.state_dir, 0o755).map_err(|e| BreakerError::io(&l.state_dir, e))?;
        fsutil::ensure_dir(&edge_dir, 0o755).map_err(|e| BreakerError::io(&edge_dir, e))?;
        let lock = ExclusiveLock::acquire(&l.lock_file())
            .map_err(|e| BreakerError::io(&l.lock_file(), e))?;
        let loaded = store::load(&l.state_file(), Utc::now());
        Ok(Self {
            config,
            _lock: lock,
            current: loaded.record,
            problem: loaded.problem,
        })
    }

    fn settle(&mut self) -> Result<Vec<Settlement>, BreakerError> {
        let mut done = Vec::new();
        if let Some(problem) = self.problem.take() {
            let kept = store::quarantine(&self.config.layout.state_file(), Utc::now())
                .map_err(|e| BreakerError::io(&self.config.layout.state_file(), e))?;
            let r = self.apply(Request {
                target: BreakerState::Open,
                reason: ReasonCode::StateInvalid,
                detail: problem.to_string(),
                actor: Actor::System,
                ttl: None,
                keep_running_config: false,
            })?;
            done.push(Settlement {
                kind: SettlementKind::RepairedState,
                message: format!(
                    "{problem}: the breaker was forced OPEN and the state file rewritten (generation {}){}",
                    r.after.generation,
                    kept.map(|p| format!("; the bad file was kept as {}", p.display())).unwrap_or_default()
                ),
            });
        }
        let now = Utc::now();
        if self.current.is_expired(now) {
            let until = self.current.expires_at.unwrap_or(now);
            let r = self.apply(Request {
                target: BreakerState::Open,
                reason: ReasonCode::TtlExpired,
                detail: format!(
                    "the {} lifetime ended at {}",
                    self.current.state,
                    until.to_rfc3339()
                ),
                actor: Actor::System,
                ttl: None,
                keep_running_config: false,
            })?;
            done.push(Settlement {
                kind: SettlementKind::RecordedExpiry,
                message: format!(
                    "the {} lifetime ended at {}; recorded as OPEN (generation {})",
                    r.before.state,
                    until.to_rfc3339(),
                    r.after.generation
                ),
            });
        }
        Ok(done)
    }

    /// One transition; updates `self.current` to what the state file now says.
    fn apply(&mut self, req: Request) -> Result<Report, BreakerError> {
        let cfg = self.config;
        let l = &cfg.layout;
        let before = self.current.clone();
        if req.target.admits_traffic() {
            if let Some(why) = htpasswd::auth_problem(&l.htpasswd) {
                return Err(BreakerError::Refused {
                    why: format!("refusing to let traffic through: {why}, so nothing would ask for a password"),
                    hint: "add a user first: `moltguard auth add-user NAME`".into(),
                });
            }
        }
        let now = Utc::now();
        let generation = self.next_generation();
        let mut next = BreakerRecord {
            schema_version: SCHEMA_VERSION,
            state: req.target,
            reason: req.reason,
            detail: req.detail.clone(),
            actor: req.actor,
            generation,
            changed_at: now,
            expires_at: req.ttl.and_then(|t| expiry_after(now, t)),
            last_apply: None,
            audit_head: before.audit_head.clone(),
        };
        let nginx = Nginx::from_config(cfg);
        if req.target == BreakerState::Open {
            // Deny at once, before anything that can fail or take time.
            fsutil::remove_durable(&l.allow_token())
                .map_err(|e| BreakerError::io(&l.allow_token(), e))?;
            store::save(&l.state_file(), &next)
                .map_err(|e| BreakerError::io(&l.state_file(), e))?;
        }
        let (outcome, message, served) = match &nginx {
            Ok(n) if req.keep_running_config && req.target == BreakerState::Open => {
                self.deny_without_reload(n, &next)?
            }
            Ok(n) => self.apply_to_edge(n, &next)?,
            Err(e) if req.target == BreakerState::Open => {
                self.write_include(None, &next)?;
                (
                    ApplyOutcome::NginxNotRunning,
                    format!("{e}; nothing is served without nginx"),
                    None,
                )
            }
            Err(e) => {
                return Err(BreakerError::Refused {
                    why: format!("cannot apply the change: {e}"),
                    hint: match e {
                        NginxError::Exec(x) => x.hint(),
                        _ => "fix nginx, then retry".into(),
                    },
                })
            }
        };
        next.last_apply = Some(ApplyRecord {
            at: Utc::now(),
            target: req.target,
            generation,
            outcome,
            message: message.clone(),
        });
        let final_record = match outcome {
            ApplyOutcome::RolledBack => BreakerRecord {
                last_apply: next.last_apply.clone(),
                ..before.clone()
            },
            _ => next.clone(),
        };
        let head = audit::append(
            &l.audit_log(),
            NewEntry {
                actor: req.actor,
                from: before.state,
                to: req.target,
                reason: req.reason,
                detail: req.detail,
                generation,
                outcome: outcome.as_str().into(),
                message: message.clone(),
            },
            Utc::now(),
        )
        .map_err(|e| BreakerError::io(&l.audit_log(), e))?;
        let final_record = BreakerRecord {
            audit_head: Some(head),
            ..final_record
        };
        store::save(&l.state_file(), &final_record)
            .map_err(|e| BreakerError::io(&l.state_file(), e))?;
        self.current = final_record.clone();
        Ok(Report {
            before,
            after: final_record,
            outcome,
            message,
            served,
            preliminary: Vec::new(),
        })
    }

    /// Never reuse a generation, even one whose apply failed or that only
    /// reached the include file before a crash.
    fn next_generation(&self) -> u64 {
        let on_disk = fs::read_to_string(self.config.layout.include_file())
            .ok()
            .and_then(|t| render::parse_include_header(&t))
            .map_or(0, |h| h.generation);
        let attempted = self.current.last_apply.as_ref().map_or(0, |a| a.generation);
        self.current.generation.max(on_disk).max(attempted) + 1
    }

    fn write_include(
        &self,
        nginx: Option<&Nginx>,
        record: &BreakerRecord,
    ) -> Result<(), BreakerError> {
        let l = &self.config.layout;
        let text = render::render_include(record, l)?;
        write_shared(
            l.include_file().as_path(),
            text.as_bytes(),
            nginx.and_then(Nginx::run_as),
        )
    }

    fn apply_to_edge(
        &self,
        nginx: &Nginx,
        next: &BreakerRecord,
    ) -> Result<(ApplyOutcome, String, Option<probe::Served>), BreakerError> {
        let cfg = self.config;
        let l = &cfg.layout;
        let to_open = next.state == BreakerState::Open;
        let old_include = fs::read(l.include_file()).ok();
        let old_token = l.allow_token().exists();
        let text = render::render_include(next, l)?;
        let restore = |this: &Self| -> Result<(), BreakerError> {
            match &old_include {
                Some(b) => write_shared(&l.include_file(), b, nginx.run_as())?,
                None => fsutil::remove_durable(&l.include_file())
                    .map_err(|e| BreakerError::io(&l.include_file(), e))?,
            }
            this.set_token(old_token && !to_open)
        };

        if let Err(e) = nginx.test_candidate(&text, &l.nginx_dir) {
            if to_open {
                return Ok(
                    self.escalate(nginx, format!("the OPEN include failed its own test: {e}"))
                );
            }
            return Ok((
                ApplyOutcome::RolledBack,
                format!("nothing changed: the new include failed `nginx -t`: {e}"),
                None,
            ));
        }
        write_shared(&l.include_file(), text.as_bytes(), nginx.run_as())?;
        self.set_token(!to_open)?;

        if nginx.running_pid().is_none() {
            let msg = if to_open {
                "nginx is not running, so nothing is served".to_string()
            } else {
                "written, but nginx is not running: it takes effect when nginx starts".to_string()
            };
            return Ok((ApplyOutcome::NginxNotRunning, msg, None));
        }
        let failure = match nginx.test().and_then(|_| nginx.reload()) {
            Err(e) => Some(e.to_string()),
            Ok(()) => None,
        };
        let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
        let timeout = cfg.settings.nginx.verify_timeout;
        let failure = match failure {
            Some(f) => f,
            None => match probe::wait_for_generation(addr, next.generation, timeout) {
                Ok(served) => {
                    return Ok((
                        ApplyOutcome::Applied,
                        format!(
                            "nginx serves generation {} (verified on {addr})",
                            next.generation
                        ),
                        Some(served),
                    ))
                }
                Err(e) => e.to_string(),
            },
        };
        if to_open {
            return Ok(self.escalate(nginx, failure));
        }
        // Put the previous include back and make sure nginx serves it.
        restore(self)?;
        let previous = old_include
            .as_deref()
            .and_then(|b| render::parse_include_header(&String::from_utf8_lossy(b)));
        let back = nginx
            .test()
            .and_then(|_| nginx.reload())
            .map_err(|e| e.to_string())
            .and_then(|_| match previous {
                Some(h) => probe::wait_for_generation(addr, h.generation, timeout)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                None => Err("there was no previous include to return to".into()),
            });
        match back {
            Ok(()) => Ok((
                ApplyOutcome::RolledBack,
                format!("not applied, previous config restored: {failure}"),
                None,
            )),
            Err(e) => {
                // Neither the new nor the old config is known to be live: block.
                self.set_token(false)?;
                let (o, m, s) = self.escalate(
                    nginx,
                    format!("{failure}; restoring the previous config failed too: {e}"),
                );
                Ok((o, m, s))
            }
        }
    }

    /// OPEN without reloading an unsafe config: the token is gone, so the
    /// running config already denies; write the OPEN include for the next
    /// start and check that the edge really answers 503 (or nothing).
    fn deny_without_reload(
        &self,
        nginx: &Nginx,
        next: &BreakerRecord,
    ) -> Result<(ApplyOutcome, String, Option<probe::Served>), BreakerError> {
        self.write_include(Some(nginx), next)?;
        if nginx.running_pid().is_none() {
            return Ok((
                ApplyOutcome::NginxNotRunning,
                "nginx is not running, so nothing is served".into(),
                None,
            ));
        }
        let cfg = self.config;
        let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
        match probe::probe(addr, Duration::from_secs(2)) {
            Ok(s) if s.http_status == 503 => Ok((
                ApplyOutcome::Applied,
                format!(
                    "not reloaded (the nginx config on disk is unsafe): the running nginx denies every request                      without the allow token (HTTP 503 on {addr}); fix the config before reloading nginx"
                ),
                Some(s),
            )),
            Err(probe::ProbeError::Unreachable(_)) => {
                Ok((ApplyOutcome::Applied, format!("nothing answers on {addr}: nothing is served"), None))
            }
            Ok(s) => Ok(self.escalate(nginx, format!("the running nginx still answers HTTP {} without the allow token", s.http_status))),
            Err(e) => Ok(self.escalate(nginx, format!("the running nginx cannot be shown to deny: {e}"))),
        }
    }

    /// Going to OPEN could not be verified: stop nginx rather than let it serve.
    fn escalate(
        &self,
        nginx: &Nginx,
        why: String,
    ) -> (ApplyOutcome, String, Option<probe::Served>) {
        let _ = self.set_token(false);
        match nginx.stop(Duration::from_secs(2)) {
            Ok(()) => (
                ApplyOutcome::NginxStopped,
                format!("{why}; nginx was stopped so nothing is served (fail closed)"),
                None,
            ),
            Err(e) => (
                ApplyOutcome::Failed,
                format!("{why}; stopping nginx failed too: {e}. Stop it by hand now"),
                None,
            ),
        }
    }

    fn set_token(&self, present: bool) -> Result<(), BreakerError> {
        let t = self.config.layout.allow_token();
        let r = if present {
            fsutil::touch_atomic(&t, 0o644)
        } else {
            fsutil::remove_durable(&t)
        };
        r.map_err(|e| BreakerError::io(&t, e))
    }
}

/// `now + ttl`, rounded up to a whole second: nginx compares whole seconds
/// of its clock, so the state file and nginx then agree on the instant.
fn expiry_after(now: chrono::DateTime<Utc>, ttl: Duration) -> Option<chrono::DateTime<Utc>> {
    let t = now + chrono::Duration::from_std(ttl).ok()?;
    let whole = chrono::DateTime::from_timestamp(t.timestamp(), 0)?;
    Some(if whole < t {
        whole + chrono::Duration::seconds(1)
    } else {
        whole
    })
}

/// Writes a file nginx must read: atomically, group-readable by nginx.
fn write_shared(
    path: &std::path::Path,
    bytes: &[u8],
    run_as: Option<control::RunAs>,
) -> Result<(), BreakerError> {
    control::write_for_nginx(path, bytes, run_as).map_err(|e| BreakerError::io(path, e))
}

/// Writes the first state of a new setup (OPEN, reason INIT) if there is
/// no state file yet, and renders the include either way. Returns whether a
/// new state was written. An existing state, valid or not, is left for
/// `settle` to judge: init never overwrites history.
pub fn initialize(
    config: &Config,
    nginx_run_as: Option<control::RunAs>,
) -> Result<bool, BreakerError> {
    let session = Session::begin(config)?;
    let l = &config.layout;
    let fresh = session.problem == Some(StateProblem::Missing) && !l.include_file().exists();
    if fresh {
        let mut record = BreakerRecord::initial(Utc::now());
        let head = audit::append(
            &l.audit_log(),
            NewEntry {
                actor: Actor::System,
                from: BreakerState::Open,
                to: BreakerState::Open,
                reason: ReasonCode::Init,
                detail: record.detail.clone(),
                generation: record.generation,
                outcome: ApplyOutcome::NginxNotRunning.as_str().into(),
                message: "new setup".into(),
            },
            Utc::now(),
        )
        .map_err(|e| BreakerError::io(&l.audit_log(), e))?;
        record.audit_head = Some(head);
        fsutil::remove_durable(&l.allow_token())
            .map_err(|e| BreakerError::io(&l.allow_token(), e))?;
        store::save(&l.state_file(), &record).map_err(|e| BreakerError::io(&l.state_file(), e))?;
        let text = render::render_include(&record, l)?;
        write_shared(&l.include_file(), text.as_bytes(), nginx_run_as)?;
    } else if session.problem.is_none() {
        let text = render::render_include(&session.current, l)?;
        write_shared(&l.include_file(), text.as_bytes(), nginx_run_as)?;
    }
    Ok(fresh)
}
