//! A breaker transition as one write-ahead transaction (docs/BREAKER.md, "A
//! transition", has each step with what a crash there leaves behind):
//!
//! 1. take the lock, load the state, and [`settle`] what is already true;
//! 2. toward traffic only: check every precondition (users, nginx, the
//!    audit log and the edge directory writable) — a refusal changes nothing;
//! 3. **deny**: remove the allow token, so nginx refuses every request from
//!    here on, whatever fails later;
//! 4. **write ahead**: the state file records the change as *pending*; every
//!    reader treats a pending change as OPEN;
//! 5. render the include and `nginx -t` it alone;
//! 6. swap it in;
//! 7. create the allow token, if the target admits traffic;
//! 8. `nginx -t`, reload, and verify on fresh connections that nginx serves
//!    the new generation and answers as the state should;
//! 9. append the audit line;
//! 10. **commit**: the state file records the new state, nothing pending.
//!
//! The failure rule is one sentence: every failure ends in OPEN. A failed
//! change toward traffic falls back to OPEN (reason APPLY_FAILED) through
//! the same steps; a failed OPEN stops nginx. A change that cannot be
//! recorded (steps 4, 9, 10) leaves the pending change on disk, which every
//! reader takes as OPEN, and exits non-zero.

use super::audit::{self, NewEntry};
use super::crashpoint;
use super::edge::{self, Drift};
use super::state::{
    Actor, ApplyOutcome, ApplyRecord, BreakerRecord, BreakerState, Pending, ReasonCode,
    SCHEMA_VERSION,
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
use std::path::PathBuf;
use std::time::Duration;

/// The longest lifetime `--for` accepts: a "moment" is not a month.
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The state to go to.
    pub target: BreakerState,
    /// Why, as a code the audit log and the remedies know.
    pub reason: ReasonCode,
    /// Why, in the caller's words (shown and audited).
    pub detail: String,
    /// Who asks.
    pub actor: Actor,
    /// For how long, when not OPEN; the state falls back to OPEN after it.
    pub ttl: Option<Duration>,
    /// The nginx config on disk is known to be unsafe (a bypass, a public
    /// listen, a failing test): going to OPEN must not reload it. Removing
    /// the allow token already makes the running config deny everything.
    pub keep_running_config: bool,
}

impl Request {
    /// OPEN, for something already true.
    pub fn open(reason: ReasonCode, detail: String, actor: Actor) -> Self {
        Request {
            target: BreakerState::Open,
            reason,
            detail,
            actor,
            ttl: None,
            keep_running_config: false,
        }
    }
}

/// What happened, for printing and exit codes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The record before (as trusted: a stand-in OPEN if the file was not).
    pub before: BreakerRecord,
    /// The record committed.
    pub after: BreakerRecord,
    /// How applying it at the edge ended.
    pub outcome: ApplyOutcome,
    /// What happened, in words.
    pub message: String,
    /// What nginx answered afterwards, when it was probed.
    pub served: Option<probe::Served>,
    /// Transitions done first to record the truth: a repaired state file,
    /// an interrupted change, an expired lifetime, drift at the edge.
    pub preliminary: Vec<Settlement>,
    /// Steps that failed without changing the outcome (an allow token that
    /// could not be removed under an OPEN include): the command still fails.
    pub warnings: Vec<String>,
}

/// A transition `settle` made to record what was already true.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settlement {
    /// Which kind of settlement.
    pub kind: SettlementKind,
    /// What was found and done, in words.
    pub message: String,
}

/// What a [`Settlement`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SettlementKind {
    /// The state file could not be trusted and was replaced by OPEN.
    RepairedState,
    /// A transition had been cut off; it was finished as OPEN.
    RepairedInterrupted,
    /// A `--for` lifetime ran out and the OPEN state was recorded.
    RecordedExpiry,
    /// The include or the allow token differed from what the state
    /// renders; the breaker was opened and both rendered again.
    RepairedDrift,
    /// An allow token under a correct OPEN include was removed.
    RemovedStrayToken,
}

impl SettlementKind {
    /// Whether this settlement means something was wrong (status is then
    /// not healthy), rather than a lifetime ending as it should.
    pub fn is_repair(self) -> bool {
        self != SettlementKind::RecordedExpiry
    }
}

/// Why a transition did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError {
    /// A precondition does not hold (nothing was changed).
    #[error("{why}")]
    Refused {
        /// What does not hold.
        why: String,
        /// What to do about it.
        hint: String,
    },
    /// A file moltguard needs cannot be read or written.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
    /// A path that nginx would be given cannot be trusted.
    #[error(transparent)]
    Unsafe(#[from] render::UnsafePath),
    /// The edge files could not be rendered.
    #[error(transparent)]
    Render(#[from] edge::RenderError),
    /// nginx could not be tested, reloaded or probed.
    #[error(transparent)]
    Nginx(#[from] NginxError),
    /// The edge was brought to OPEN (or nginx stopped), but the change
    /// could not be written down: readers take the pending change as OPEN.
    #[error("{why}. {edge}")]
    Unrecorded {
        /// Why the change could not be written down.
        why: String,
        /// What the edge does now.
        edge: String,
    },
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
    let preliminary = session.settle()?;
    let report = session.apply(req)?;
    Ok(Report {
        preliminary,
        ..report
    })
}

/// What [`transition_if`] did.
#[derive(Debug)]
pub enum Conditional {
    /// The check held and the transition ran (what was settled first is
    /// the report's `preliminary`).
    Ran(Box<Report>),
    /// The check said nothing was needed. Drift found under the lock was
    /// settled all the same, and is said here.
    NotNeeded {
        /// What was settled under the lock, if anything.
        settled: Vec<Settlement>,
    },
}

/// Like [`transition`], but only if `still_needed` holds for the record
/// found under the lock (after settling): the guardian's findings were made
/// without the lock, and a person's transition may have finished since.
pub fn transition_if(
    config: &Config,
    req: Request,
    still_needed: impl FnOnce(&BreakerRecord) -> bool,
) -> Result<Conditional, BreakerError> {
    let mut session = Session::begin(config)?;
    let preliminary = session.settle()?;
    if !still_needed(&session.current) {
        return Ok(Conditional::NotNeeded {
            settled: preliminary,
        });
    }
    let report = session.apply(req)?;
    Ok(Conditional::Ran(Box::new(Report {
        preliminary,
        ..report
    })))
}

/// Records what is already true before anyone acts, always toward OPEN:
/// repairs an untrusted state file, finishes an interrupted transition as
/// OPEN, records an expired lifetime, and opens the breaker when the
/// include or the allow token is not what the state renders. Returns what
/// was done, in words.
pub fn settle(config: &Config) -> Result<Vec<Settlement>, BreakerError> {
    Session::begin(config)?.settle()
}

/// Re-renders and re-applies the current state with a new generation
/// (after a manual nginx restart, say). Drift is settled first, toward
/// OPEN, so a reapply never makes a hand edit real.
pub fn reapply(config: &Config, actor: Actor) -> Result<Report, BreakerError> {
    let mut session = Session::begin(config)?;
    let preliminary = session.settle()?;
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
    Ok(Report {
        preliminary,
        ..report
    })
}

/// Everything one locked transaction needs.
struct Session<'a> {
    config: &'a Config,
    _lock: ExclusiveLock,
    /// The committed record, or the OPEN stand-in while `problem` is set.
    current: BreakerRecord,
    problem: Option<StateProblem>,
    /// The highest generation this session has used, so a fallback never
    /// reuses the generation of the attempt it replaces.
    used_generation: u64,
    /// Keep the untrusted state file aside before the repair commits.
    quarantine_on_commit: bool,
    quarantined: Option<PathBuf>,
}

/// How one attempt at a target failed.
enum Failure {
    /// nginx could not be brought to the target (test, write, reload, verify).
    Edge(String),
    /// The change could not be written down (state file, audit log).
    Record(BreakerError),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Edge(why) => why.clone(),
            Failure::Record(e) => e.to_string(),
        }
    }
}

/// What the edge steps (5–8) ended with.
struct EdgeResult {
    outcome: ApplyOutcome,
    message: String,
    served: Option<probe::Served>,
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
        // Writers killed mid-write leave temp files behind.
        for dir in [&l.state_dir, &edge_dir, &l.nginx_dir] {
            fsutil::remove_stale_temp_files(dir);
        }
        remove_stale_candidates(&l.nginx_dir);
        let loaded = store::load(&l.state_files(), Utc::now());
        Ok(Self {
            config,
            _lock: lock,
            used_generation: loaded.record.generation,
            current: loaded.record,
            problem: loaded.problem,
            quarantine_on_commit: false,
            quarantined: None,
        })
    }

    fn settle(&mut self) -> Result<Vec<Settlement>, BreakerError> {
        let mut done = Vec::new();
        if let Some(problem) = self.problem.clone() {
            self.quarantine_on_commit = problem.quarantines();
            let (kind, req) = match &problem {
                // An OPEN that was cut off is finished with its own reason.
                StateProblem::Interrupted { pending, .. }
                    if pending.target == BreakerState::Open =>
                {
                    (
                        SettlementKind::RepairedInterrupted,
                        Request::open(pending.reason, pending.detail.clone(), pending.actor),
                    )
                }
                StateProblem::Interrupted { .. } => (
                    SettlementKind::RepairedInterrupted,
                    Request::open(problem.reason(), problem.to_string(), Actor::System),
                ),
                _ => (
                    SettlementKind::RepairedState,
                    Request::open(problem.reason(), problem.to_string(), Actor::System),
                ),
            };
            let r = self.apply(req)?;
            let kept = self
                .quarantined
                .take()
                .map(|p| format!("; the bad file was kept as {}", p.display()))
                .unwrap_or_default();
            done.push(Settlement {
                kind,
                message: format!(
                    "{problem}: the breaker was forced OPEN and the state file rewritten (generation {}, {}){kept}",
                    r.after.generation,
                    r.outcome.as_str(),
                ),
            });
        }
        let now = Utc::now();
        if self.current.is_expired(now) {
            let until = self.current.expires_at.unwrap_or(now);
            let r = self.apply(Request::open(
                ReasonCode::TtlExpired,
                format!(
                    "the {} lifetime ended at {}",
                    self.current.state,
                    until.to_rfc3339()
                ),
                Actor::System,
            ))?;
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
        let drift = edge::check(&self.current, &self.config.layout)?;
        if let [Drift::TokenPresent] = drift[..] {
            let token = self.config.layout.allow_token();
            fsutil::remove_durable(&token).map_err(|e| BreakerError::io(&token, e))?;
            done.push(Settlement {
                kind: SettlementKind::RemovedStrayToken,
                message: format!(
                    "an allow token existed while the breaker is OPEN; removed {}",
                    token.display()
                ),
            });
        } else if !drift.is_empty() {
            let what = drift
                .iter()
                .map(Drift::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let r = self.apply(Request::open(
                ReasonCode::NginxDrift,
                what.clone(),
                Actor::System,
            ))?;
            done.push(Settlement {
                kind: SettlementKind::RepairedDrift,
                message: format!(
                    "{what}: the breaker was forced OPEN and the edge files rendered again (generation {}, {}: {})",
                    r.after.generation,
                    r.outcome.as_str(),
                    r.message
                ),
            });
        }
        Ok(done)
    }

    /// One transition; updates `self.current` to what the state file now says.
    fn apply(&mut self, req: Request) -> Result<Report, BreakerError> {
        let before = self.current.clone();
        if req.target.admits_traffic() {
            self.preconditions()?;
        }
        let failure = match self.attempt(&before, &req, false) {
            Ok(report) => return Ok(report),
            Err(f) if !req.target.admits_traffic() => return Err(self.unrecorded(f.describe())),
            Err(f) => f.describe(),
        };
        // The fallback's step 3 removes the token this attempt may have
        // created; its include replaces this attempt's.
        let target = req.target.as_str().to_uppercase();
        let fallback = Request::open(
            ReasonCode::ApplyFailed,
            format!("the change to {target} failed: {failure}"),
            req.actor,
        );
        self.attempt(&before, &fallback, true).map_err(|f| {
            self.unrecorded(format!(
                "the change to {target} failed ({failure}), and recording OPEN failed too: {}",
                f.describe()
            ))
        })
    }

    /// What a failure to record leaves: say what the edge is doing now.
    fn unrecorded(&self, why: String) -> BreakerError {
        let token = self.config.layout.allow_token();
        let edge = if token.exists() {
            format!(
                "The allow token {} could not be removed; stop nginx (`moltguard nginx stop`) until this is fixed",
                token.display()
            )
        } else {
            "nginx denies every request (the allow token is gone), and every moltguard reader \
             takes the breaker as OPEN until a command completes"
                .to_string()
        };
        BreakerError::Unrecorded { why, edge }
    }

    /// Step 2: a change toward traffic that could not be recorded or made
    /// safe must not start. Each check says what to do.
    fn preconditions(&self) -> Result<(), BreakerError> {
        let l = &self.config.layout;
        let refuse = |why: String, hint: &str| BreakerError::Refused {
            why,
            hint: hint.into(),
        };
        if let Some(why) = htpasswd::auth_problem(&l.htpasswd) {
            return Err(refuse(
                format!(
                    "refusing to let traffic through: {why}, so nothing would ask for a password"
                ),
                "add a user first: `moltguard auth add-user NAME`",
            ));
        }
        if let Err(e) = Nginx::from_config(self.config) {
            let hint = match &e {
                NginxError::Exec(x) => x.hint(),
                _ => "fix nginx, then retry".into(),
            };
            return Err(BreakerError::Refused {
                why: format!("cannot apply the change: {e}"),
                hint,
            });
        }
        let writable = [
            (audit::check_appendable(&l.audit_log()), "the audit log"),
            (
                fsutil::check_dir_writable(&l.state_dir),
                "the state directory",
            ),
            (
                fsutil::check_dir_writable(
                    l.allow_token()
                        .parent()
                        .unwrap_or(std::path::Path::new(".")),
                ),
                "the allow token's directory",
            ),
            (
                fsutil::check_dir_writable(&l.nginx_dir),
                "the nginx directory",
            ),
        ];
        for (check, what) in writable {
            if let Err(e) = check {
                return Err(refuse(
                    format!("refusing to let traffic through: {what} is not usable ({e}), so the change could not be recorded or undone"),
                    "fix the file's permissions (or `moltguard audit-log verify` for a damaged log), then retry",
                ));
            }
        }
        Ok(())
    }

    /// Steps 3–10 for one target. `fallback`: this OPEN replaces a failed
    /// change toward traffic (its outcome reads `rolled-back`).
    fn attempt(
        &mut self,
        before: &BreakerRecord,
        req: &Request,
        fallback: bool,
    ) -> Result<Report, Failure> {
        let l = &self.config.layout;
        let to_open = req.target == BreakerState::Open;
        let now = Utc::now();
        let generation = self.next_generation();
        self.used_generation = generation;
        let next = BreakerRecord {
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
            pending: None,
        };
        let record = |e| Failure::Record(e);
        // Steps 3 and 4. Going to OPEN goes on to the edge even when they
        // fail: the edge must deny whatever else cannot be done.
        let mut warnings = Vec::new();
        let mut unrecorded: Option<BreakerError> = None;
        if let Err(e) = fsutil::remove_durable(&l.allow_token()) {
            let e = BreakerError::io(&l.allow_token(), e);
            if !to_open {
                return Err(record(e));
            }
            // The OPEN include refuses before it reads the token; what
            // matters is that it gets served, which the edge steps verify.
            warnings.push(format!(
                "{e}; the OPEN include does not read it, but fix the directory so it can be removed"
            ));
        }
        crashpoint::here("token-removed");
        if self.problem.is_none() {
            // An untrusted file is already OPEN to every reader; it is
            // replaced only at the commit.
            let ahead = BreakerRecord {
                pending: Some(Pending {
                    target: req.target,
                    generation,
                    reason: req.reason,
                    detail: req.detail.clone(),
                    actor: req.actor,
                    started_at: now,
                }),
                ..before.clone()
            };
            if let Err(e) = store::save(&l.state_file(), &ahead) {
                let e = BreakerError::io(&l.state_file(), e);
                if !to_open {
                    return Err(record(e));
                }
                unrecorded.get_or_insert(e);
            }
        }
        crashpoint::here("pending-written");

        let edge = self.apply_to_edge(&next, req.keep_running_config)?;
        if let Some(e) = unrecorded {
            return Err(record(e));
        }
        let outcome = match edge.outcome {
            ApplyOutcome::Applied | ApplyOutcome::NginxNotRunning | ApplyOutcome::NotReloaded
                if fallback =>
            {
                ApplyOutcome::RolledBack
            }
            o => o,
        };
        let message = if fallback {
            format!(
                "{}; the breaker fell back to OPEN: {}",
                req.detail, edge.message
            )
        } else {
            edge.message
        };

        // Step 9.
        let head = audit::append(
            &l.audit_log(),
            NewEntry {
                actor: req.actor,
                from: before.state,
                to: req.target,
                reason: req.reason,
                detail: req.detail.clone(),
                generation,
                expires_at: next.expires_at,
                outcome: outcome.as_str().into(),
                message: message.clone(),
            },
            Utc::now(),
        )
        .map_err(|e| record(BreakerError::io(&l.audit_log(), e)))?;
        crashpoint::here("audited");

        // Step 10.
        let committed = BreakerRecord {
            last_apply: Some(ApplyRecord {
                at: Utc::now(),
                target: req.target,
                generation,
                outcome,
                message: message.clone(),
            }),
            audit_head: Some(head),
            ..next
        };
        if self.quarantine_on_commit {
            self.quarantined = store::quarantine(&l.state_file(), Utc::now())
                .map_err(|e| record(BreakerError::io(&l.state_file(), e)))?;
            self.quarantine_on_commit = false;
        }
        store::save(&l.state_file(), &committed)
            .map_err(|e| record(BreakerError::io(&l.state_file(), e)))?;
        self.current = committed.clone();
        self.problem = None;
        Ok(Report {
            before: before.clone(),
            after: committed,
            outcome,
            message,
            served: edge.served,
            preliminary: Vec::new(),
            warnings,
        })
    }

    /// Never reuse a generation, even one whose apply failed or that only
    /// reached the include file or the log before a crash.
    fn next_generation(&self) -> u64 {
        let l = &self.config.layout;
        let on_disk = fs::read_to_string(l.include_file())
            .ok()
            .and_then(|t| render::parse_include_header(&t))
            .map_or(0, |h| h.generation);
        let logged = audit::Tail::read(&l.audit_log())
            .ok()
            .and_then(|t| t.last)
            .map_or(0, |e| e.generation);
        let attempted = self.current.last_apply.as_ref().map_or(0, |a| a.generation);
        [
            self.current.generation,
            self.used_generation,
            on_disk,
            logged,
            attempted,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 1
    }

    /// Steps 5–8. Going to OPEN never fails here: what cannot be verified
    /// ends with nginx stopped. A change toward traffic returns its failure
    /// for the caller to fall back to OPEN.
    fn apply_to_edge(
        &self,
        next: &BreakerRecord,
        keep_running_config: bool,
    ) -> Result<EdgeResult, Failure> {
        let l = &self.config.layout;
        let to_open = next.state == BreakerState::Open;
        let edge_failure = |why: String| Failure::Edge(why);
        let text = edge::render_include(next, l).map_err(|e| edge_failure(e.to_string()))?;
        let nginx = match Nginx::from_config(self.config) {
            Ok(n) => n,
            // Preconditions made sure a change toward traffic has an nginx.
            Err(e) => {
                write_shared(&l.include_file(), text.as_bytes(), None)
                    .map_err(|e| edge_failure(e.to_string()))?;
                crashpoint::here("include-swapped");
                return Ok(EdgeResult {
                    outcome: ApplyOutcome::NginxNotRunning,
                    message: format!("{e}; nothing is served without nginx"),
                    served: None,
                });
            }
        };
        if to_open && keep_running_config {
            return Ok(self.deny_without_reload(&nginx, &text));
        }
        let fail = |why: String| -> Result<EdgeResult, Failure> {
            if to_open {
                Ok(self.escalate(&nginx, why))
            } else {
                Err(Failure::Edge(why))
            }
        };

        if let Err(e) = nginx.test_candidate(&text, &l.nginx_dir) {
            return fail(format!("the new include failed `nginx -t`: {e}"));
        }
        crashpoint::here("candidate-tested");
        if let Err(e) = write_shared(&l.include_file(), text.as_bytes(), nginx.run_as()) {
            return fail(format!("cannot write the include: {e}"));
        }
        crashpoint::here("include-swapped");
        if let Some(token) = render::render_allow_token(next) {
            if let Err(e) = fsutil::write_atomic(&l.allow_token(), token.as_bytes(), 0o644) {
                return fail(format!("cannot create the allow token: {e}"));
            }
            crashpoint::here("token-created");
        }

        if nginx.running_pid().is_none() {
            // Workers of a killed master would go on serving an old config.
            let orphans = match nginx.orphaned_group() {
                Some(group) => match nginx.stop(Duration::ZERO) {
                    Ok(()) => format!("; the orphaned workers of a killed nginx master (process group {group}) were stopped"),
                    Err(e) => return fail(format!("orphaned nginx workers (process group {group}) still serve: {e}")),
                },
                None => String::new(),
            };
            let msg = if to_open {
                format!("nginx is not running, so nothing is served{orphans}")
            } else {
                format!(
                    "written, but nginx is not running: it takes effect when nginx starts{orphans}"
                )
            };
            return Ok(EdgeResult {
                outcome: ApplyOutcome::NginxNotRunning,
                message: msg,
                served: None,
            });
        }
        if let Err(e) = nginx.test().and_then(|_| nginx.reload()) {
            return fail(e.to_string());
        }
        crashpoint::here("reloaded");
        let addr = self.probe_address();
        let timeout = self.config.settings.nginx.verify_timeout;
        let served = match probe::wait_for_generation(addr, next.generation, timeout) {
            Ok(s) => s,
            Err(e) => return fail(e.to_string()),
        };
        if let Some(why) = edge::answers_as_it_should(next.state, &served) {
            return fail(format!(
                "nginx serves generation {}, but {why}",
                next.generation
            ));
        }
        crashpoint::here("verified");
        Ok(EdgeResult {
            outcome: ApplyOutcome::Applied,
            message: format!(
                "nginx serves generation {} (verified on {addr}: HTTP {} to an anonymous request)",
                next.generation, served.http_status
            ),
            served: Some(served),
        })
    }

    fn probe_address(&self) -> std::net::SocketAddr {
        let edge = &self.config.settings.edge;
        probe::probe_address(edge.listen_address, edge.port)
    }

    /// OPEN without reloading an unsafe config: the token is gone, so the
    /// running config already denies; write the OPEN include for the next
    /// start and check that the edge really answers 503 (or nothing).
    fn deny_without_reload(&self, nginx: &Nginx, text: &str) -> EdgeResult {
        let l = &self.config.layout;
        if let Err(e) = write_shared(&l.include_file(), text.as_bytes(), nginx.run_as()) {
            return self.escalate(nginx, format!("cannot write the OPEN include: {e}"));
        }
        crashpoint::here("include-swapped");
        if nginx.running_pid().is_none() {
            let _ = nginx.stop(Duration::ZERO); // orphaned workers, if any
            return EdgeResult {
                outcome: ApplyOutcome::NginxNotRunning,
                message: "nginx is not running, so nothing is served".into(),
                served: None,
            };
        }
        let addr = self.probe_address();
        match probe::probe(addr, Duration::from_secs(2)) {
            Ok(s) if s.http_status == 503 => EdgeResult {
                outcome: ApplyOutcome::Applied,
                message: format!(
                    "not reloaded (the nginx config on disk is unsafe): the running nginx denies every request \
                     without the allow token (HTTP 503 on {addr}); fix the config before reloading nginx"
                ),
                served: Some(s),
            },
            Err(probe::ProbeError::Unreachable(_)) => EdgeResult {
                outcome: ApplyOutcome::Applied,
                message: format!("nothing answers on {addr}: nothing is served"),
                served: None,
            },
            Ok(s) => self.escalate(
                nginx,
                format!(
                    "the running nginx still answers HTTP {} without the allow token",
                    s.http_status
                ),
            ),
            Err(e) => self.escalate(
                nginx,
                format!("the running nginx cannot be shown to deny: {e}"),
            ),
        }
    }

    /// Going to OPEN could not be verified. A running config that denies
    /// every request (the token is gone) may stay: nothing flows, and the
    /// outcome says nginx could not be reloaded. Anything else is stopped.
    fn escalate(&self, nginx: &Nginx, why: String) -> EdgeResult {
        let _ = fsutil::remove_durable(&self.config.layout.allow_token());
        if nginx.running_pid().is_some() && self.edge_denies() {
            return EdgeResult {
                outcome: ApplyOutcome::NotReloaded,
                message: format!(
                    "{why}; the running nginx denies every request (HTTP 503 on {}), so it was left running",
                    self.probe_address()
                ),
                served: None,
            };
        }
        let (outcome, message) = match nginx.stop(Duration::from_secs(2)) {
            Ok(()) => (
                ApplyOutcome::NginxStopped,
                format!("{why}; nginx was stopped so nothing is served (fail closed)"),
            ),
            Err(e) => (
                ApplyOutcome::Failed,
                format!("{why}; stopping nginx failed too: {e}. Stop it by hand now"),
            ),
        };
        EdgeResult {
            outcome,
            message,
            served: None,
        }
    }

    /// Whether several fresh connections in a row are refused with 503.
    fn edge_denies(&self) -> bool {
        let addr = self.probe_address();
        (0..3)
            .all(|_| probe::probe(addr, Duration::from_secs(2)).is_ok_and(|s| s.http_status == 503))
    }
}

/// Candidate-test directories of killed transactions (`.candidate-*`).
fn remove_stale_candidates(nginx_dir: &std::path::Path) {
    let Ok(entries) = fs::read_dir(nginx_dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(".candidate-") {
            let _ = fs::remove_dir_all(e.path());
        }
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
/// no state file yet, and renders the include. Returns whether a new state
/// was written. An existing state, valid or not, is left for `settle` to
/// judge (and its include with it): init never overwrites history.
pub fn initialize(
    config: &Config,
    nginx_run_as: Option<control::RunAs>,
) -> Result<bool, BreakerError> {
    let session = Session::begin(config)?;
    let l = &config.layout;
    let fresh = session.problem == Some(StateProblem::Missing)
        && !l.include_file().exists()
        && !l.audit_log().exists();
    if !fresh {
        return Ok(false);
    }
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
            expires_at: None,
            outcome: ApplyOutcome::NginxNotRunning.as_str().into(),
            message: "new setup".into(),
        },
        Utc::now(),
    )
    .map_err(|e| BreakerError::io(&l.audit_log(), e))?;
    record.audit_head = Some(head);
    fsutil::remove_durable(&l.allow_token()).map_err(|e| BreakerError::io(&l.allow_token(), e))?;
    let text = edge::render_include(&record, l)?;
    write_shared(&l.include_file(), text.as_bytes(), nginx_run_as)?;
    store::save(&l.state_file(), &record).map_err(|e| BreakerError::io(&l.state_file(), e))?;
    Ok(true)
}
