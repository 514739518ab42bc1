//! moltgate's security layers: who may call, how often, from where, and
//! what happens to those who misbehave.
//!
//! Every request passes [`admission::admit`] before any handler (CORS
//! preflights excepted: [`layer`] answers them first, and puts the CORS
//! and security headers ([`headers`]) on every answer):
//!
//! 1. connection cap (over it, only `/health` is answered);
//! 2. real client IP ([`client_ip`]), then the ban list ([`bans`]);
//! 3. the moltguard breaker (`state/breaker.json`): while it is not
//!    closed, only this machine is served (a damaged file counts as open);
//!    then lockdown (only this machine, then only admin keys);
//! 4. the per-IP rate limit ([`limits`]), before any body is read;
//! 5. the request firewall (`moltguard_waf`), whose blocks count toward
//!    bans (a request without any credential has only 64 KiB of its body
//!    read: it will be refused anyway);
//! 6. authentication (API key or password session) and the scope the
//!    route needs ([`scope`]); failed attempts count toward bans;
//! 7. the per-key rate limit.
//!
//! What each route and RPC method needs is the API's one table
//! ([`crate::api`]); each refusal is a [`refusal::Refusal`].
//!
//! Keys, bans, incidents, mode toggles and provider latency history live in
//! SQLite ([`store`]); the in-memory copies used on the hot path are
//! refreshed when another process (the `moltguard` CLI) changes the file.

pub mod admission;
pub mod bans;
pub mod client_ip;
pub mod config;
pub mod headers;
pub mod keys;
pub mod layer;
pub mod limits;
pub mod listen;
pub mod refusal;
pub mod scope;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use crate::admin::store::{self, now_ms, IncidentRow, Store};
pub use config::SecurityConfig;
use keys::{KeyRecord, KeyRejection};
use scope::Scopes;

use moltguard_waf::Firewall;

/// Who a request acts as, once authenticated.
#[derive(Debug, Clone)]
pub enum Principal {
    /// An API key.
    Key(Arc<KeyRecord>),
    /// A browser that logged in with the gateway password (admin).
    Session,
    /// Authentication is turned off (`GATEWAY_AUTH_REQUIRED=false`).
    Open,
}

impl Principal {
    /// What it may do (a session and open access: everything).
    pub fn scopes(&self) -> Scopes {
        match self {
            Principal::Key(k) => k.scopes,
            Principal::Session | Principal::Open => Scopes::admin(),
        }
    }

    /// For logs and the audit trail: never the secret.
    pub fn label(&self) -> String {
        match self {
            Principal::Key(k) => format!("key {} ({})", k.id, k.label),
            Principal::Session => "password session".into(),
            Principal::Open => "unauthenticated (auth disabled)".into(),
        }
    }

    fn limiter_id(&self) -> Option<(String, Option<u32>)> {
        match self {
            Principal::Key(k) => Some((format!("key:{}", k.id), k.rate_per_minute)),
            Principal::Session => Some(("session".into(), None)),
            Principal::Open => None,
        }
    }

    /// Whether it may use `model` (keys may be limited to some models).
    pub fn allows_model(&self, model: &str) -> bool {
        match self {
            Principal::Key(k) => k.allows_model(model),
            _ => true,
        }
    }
}

/// What is known about the request's origin, for incidents.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address, as [`client_ip::resolve`] found it.
    pub client_ip: IpAddr,
    /// The request's id (`x-request-id` of the answer).
    pub request_id: String,
}

/// What an incident is about: the one list the store, the metrics, the
/// RPC filter and `moltguard incidents --kind` share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A request with a missing, wrong or under-scoped API key.
    AuthFailure,
    /// A wrong dashboard password.
    LoginFailure,
    /// A request the firewall refused (its rule id is recorded).
    FirewallBlock,
    /// An address banned for repeated failures.
    AutoBlock,
    /// An address an operator blocked.
    ManualBlock,
    /// An address an operator unblocked.
    ManualUnblock,
    /// Lockdown or the kill switch turned on or off.
    ModeChange,
    /// A WebSocket from a foreign origin.
    WsOrigin,
    /// A dashboard write without its CSRF token.
    Csrf,
    /// An API key created (`moltguard keys create`).
    KeyCreated,
    /// An API key revoked.
    KeyRevoked,
}

impl IncidentKind {
    /// Every kind (clap's list, so there is one).
    pub fn all() -> &'static [IncidentKind] {
        <IncidentKind as clap::ValueEnum>::value_variants()
    }

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::AuthFailure => "auth_failure",
            IncidentKind::LoginFailure => "login_failure",
            IncidentKind::FirewallBlock => "firewall_block",
            IncidentKind::AutoBlock => "auto_block",
            IncidentKind::ManualBlock => "manual_block",
            IncidentKind::ManualUnblock => "manual_unblock",
            IncidentKind::ModeChange => "mode_change",
            IncidentKind::WsOrigin => "ws_origin",
            IncidentKind::Csrf => "csrf",
            IncidentKind::KeyCreated => "key_created",
            IncidentKind::KeyRevoked => "key_revoked",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<IncidentKind> {
        IncidentKind::all()
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }
}

/// An incident before it is stored.
#[derive(Debug, Clone)]
pub struct Incident {
    /// What happened.
    pub kind: IncidentKind,
    /// What was done about it (`refused`, `blocked`, `banned`, `toggled`, ...).
    pub action: &'static str,
    /// The firewall rule, if one fired.
    pub rule: Option<String>,
    /// What happened, in words (secrets redacted).
    pub detail: String,
}

impl Incident {
    /// An incident of `kind`, answered with `action`.
    pub fn new(kind: IncidentKind, action: &'static str, detail: impl Into<String>) -> Self {
        Incident {
            kind,
            action,
            rule: None,
            detail: detail.into(),
        }
    }

    /// The incident, naming the rule that fired.
    pub fn rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }
}

enum Write {
    Incident(IncidentRow),
}

/// Modes that change what the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only admin keys from loopback are served.
    Lockdown,
    /// Kill switch: no LLM call leaves the gateway.
    Emergency,
}

impl Mode {
    /// The name of the setting, as the store and the RPC methods spell it.
    pub fn setting(self) -> &'static str {
        match self {
            Mode::Lockdown => "lockdown",
            Mode::Emergency => "emergency",
        }
    }

    /// The mode called `s` (`kill_switch` and `kill-switch` mean `emergency`).
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "lockdown" => Some(Mode::Lockdown),
            "emergency" | "kill_switch" | "kill-switch" => Some(Mode::Emergency),
            _ => None,
        }
    }
}

/// Everything admission knows and changes: the settings, the database,
/// and the hot copies of what it holds.
pub struct Security {
    /// The settings it started with.
    pub cfg: SecurityConfig,
    store: Mutex<Store>,
    keys: RwLock<HashMap<String, Arc<KeyRecord>>>,
    /// The ban list.
    pub bans: bans::Bans,
    /// The rate limits and connection caps.
    pub limits: Arc<limits::Limits>,
    /// The browser sessions.
    pub sessions: session::Sessions,
    password: Option<session::Password>,
    lockdown: AtomicBool,
    emergency: AtomicBool,
    firewall: Option<Firewall>,
    writes: mpsc::SyncSender<Write>,
    events: tokio::sync::broadcast::Sender<Arc<str>>,
    seen_version: AtomicU64,
    request_seq: AtomicU64,
    request_prefix: u32,
    /// Bound to loopback: the default CORS origins are localhost ones.
    pub loopback: bool,
    dropped: AtomicU64,
    breaker: RwLock<Option<Arc<EdgeBreaker>>>,
    breaker_files: moltguard_breaker::store::StateFiles,
    /// `moltgate_security_incidents_total{kind}`.
    incident_counter: Option<prometheus::IntCounterVec>,
}

/// The moltguard breaker as the gateway enforces it itself (the embedded
/// default when nginx is absent, and a second line behind nginx): while it
/// is not closed, only the local-admin addresses are served.
#[derive(Debug, Clone)]
pub struct EdgeBreaker {
    /// The breaker's state, as its state file says.
    pub state: moltguard_breaker::state::BreakerState,
    /// Why it is in it.
    pub reason: String,
    /// When a state that admits traffic falls back to OPEN, if it does.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl EdgeBreaker {
    /// Whether non-local clients are served at `now`.
    pub fn admits_remote(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.state == moltguard_breaker::state::BreakerState::Closed
            && self.expires_at.is_none_or(|t| t > now)
    }
}

/// Where the security state lives and how the gateway is bound.
pub struct SecurityInit<'a> {
    /// The settings.
    pub cfg: SecurityConfig,
    /// Where the database lives.
    pub state_dir: &'a std::path::Path,
    /// The gateway is bound to loopback.
    pub loopback: bool,
    /// The gateway password, resolved from the secret store (or env).
    pub password: Option<String>,
    /// Counts incidents by kind for `/metrics`.
    pub incident_counter: Option<prometheus::IntCounterVec>,
}

impl Security {
    /// Whether `ip` is a proxy whose `X-Forwarded-For` is believed (nginx
    /// on loopback): it carries many clients, so per-address caps skip it.
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        client_ip::contains(&self.cfg.trusted_proxies, client_ip::canonical(ip))
    }

    /// Opens the database, loads keys, bans and modes, and starts the incident writer.
    pub fn new(init: SecurityInit<'_>) -> anyhow::Result<Arc<Security>> {
        let cfg = init.cfg;
        let store = Store::open(init.state_dir)?;
        let writer = Store::open(init.state_dir)?;
        let password = match (&init.password, cfg.password_required) {
            (Some(p), _) => Some(session::Password::new(p).map_err(anyhow::Error::msg)?),
            (None, _) => None,
        };
        let firewall = cfg.firewall_config().map(Firewall::new).transpose()?;
        let (tx, rx) = mpsc::sync_channel(10_000);
        let (events, _) = tokio::sync::broadcast::channel(256);
        let sec = Arc::new(Security {
            bans: bans::Bans::new(
                cfg.ignore.clone(),
                cfg.max_failed_auth,
                cfg.failed_auth_window,
                cfg.block_duration,
                cfg.max_block_duration,
            ),
            limits: Arc::new(limits::Limits::new(&cfg)),
            sessions: session::Sessions::default(),
            password,
            lockdown: AtomicBool::new(false),
            emergency: AtomicBool::new(false),
            firewall,
            writes: tx,
            events,
            seen_version: AtomicU64::new(u64::MAX),
            request_seq: AtomicU64::new(0),
            request_prefix: rand::random(),
            loopback: init.loopback,
            dropped: AtomicU64::new(0),
            keys: RwLock::default(),
            store: Mutex::new(store),
            breaker: RwLock::default(),
            breaker_files: moltguard_breaker::store::StateFiles::in_dir(init.state_dir),
            incident_counter: init.incident_counter,
            cfg,
        });
        sec.refresh_breaker();
        // Modes switched on by the environment at start are recorded (and
        // so persist until switched off on purpose).
        for (mode, on) in [
            (Mode::Lockdown, sec.cfg.lockdown),
            (Mode::Emergency, sec.cfg.emergency),
        ] {
            if on {
                sec.set_mode(mode, true, "environment at start", None)?;
            }
        }
        sec.reload()?;
        sec.restore_failure_counts()?;
        spawn_writer(writer, rx);
        spawn_maintenance(Arc::downgrade(&sec));
        Ok(sec)
    }

    /// Rebuilds, from the stored incidents, the failure counts that lead
    /// to a ban and the failed logins of the last hour: a restart (or a
    /// crash an attacker caused) forgives nothing. A failed login is
    /// charged to the login limit as if made now, which errs on the side
    /// of the limit for at most an hour.
    fn restore_failure_counts(&self) -> anyhow::Result<()> {
        let now = now_ms();
        let window = self
            .cfg
            .failed_auth_window
            .max(Duration::from_secs(3600))
            .as_millis() as i64;
        let rows = self.store().failures_since(now - window, 100_000)?;
        let mut restored = 0usize;
        for (ts, ip, kind) in rows {
            let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
                continue;
            };
            self.bans.restore_failure(ip, ts, now);
            if kind == "login_failure" && ts > now - 3_600_000 {
                let _ = self.limits.check_login(ip);
            }
            restored += 1;
        }
        if restored > 0 {
            tracing::info!("{restored} recent failure(s) restored from the incident log");
        }
        Ok(())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads keys, bans and modes (at start, and when the file changed).
    pub fn reload(&self) -> anyhow::Result<()> {
        let store = self.store();
        let version = store.data_version()? as u64;
        let mut keys = HashMap::new();
        for row in store.keys()? {
            match KeyRecord::from_row(&row) {
                Ok(k) => {
                    keys.insert(k.id.clone(), Arc::new(k));
                }
                Err(e) => tracing::warn!("ignoring unreadable key entry: {e}"),
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        self.bans.load(&store.bans()?);
        for mode in [Mode::Lockdown, Mode::Emergency] {
            let on = store.setting(mode.setting())?.as_deref() == Some("on");
            self.flag(mode).store(on, Ordering::Release);
        }
        self.seen_version.store(version, Ordering::Release);
        Ok(())
    }

    /// Re-reads `breaker.json` with every rule moltguard reads it by (an
    /// untrusted, unbound or mid-change file is OPEN), and applies nginx's
    /// own fail-safe: a state that admits traffic without the allow token
    /// is OPEN. No state file and no audit log: a stand-alone gateway
    /// without a moltguard breaker. A state file gone from a setup that
    /// has a history is OPEN.
    pub fn refresh_breaker(&self) {
        use moltguard_breaker::store::{self, StateProblem};
        let files = &self.breaker_files;
        let loaded = store::load(files, chrono::Utc::now());
        let standalone = loaded.problem == Some(StateProblem::Missing) && !files.audit_log.exists();
        let r = &loaded.record;
        let value = if standalone {
            None
        } else if r.state.admits_traffic() && !files.allow_token.exists() {
            Some(Arc::new(EdgeBreaker {
                state: moltguard_breaker::BreakerState::Open,
                reason: "ALLOW_TOKEN_MISSING: the allow token is gone, so the edge denies too"
                    .into(),
                expires_at: None,
            }))
        } else {
            Some(Arc::new(EdgeBreaker {
                state: r.state,
                reason: format!("{}: {}", r.reason.as_str(), r.detail),
                expires_at: r.expires_at,
            }))
        };
        *self.breaker.write().unwrap_or_else(|e| e.into_inner()) = value;
    }

    /// Checked on every remote request: a pointer copy, not a clone.
    pub fn breaker(&self) -> Option<Arc<EdgeBreaker>> {
        self.breaker
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reload_if_changed(&self) {
        let changed = match self.store().data_version() {
            Ok(v) => v as u64 != self.seen_version.load(Ordering::Acquire),
            Err(e) => {
                tracing::warn!("security database: {e}");
                false
            }
        };
        if changed {
            match self.reload() {
                // Another process (the CLI) changed keys, bans or modes:
                // live dashboards refresh now rather than at their next poll.
                Ok(()) => self.publish(json!({
                    "event": "modes",
                    "source": "database",
                    "modes": {"lockdown": self.mode(Mode::Lockdown), "emergency": self.mode(Mode::Emergency)},
                })),
                Err(e) => {
                    tracing::warn!("cannot reload security state (keeping the current one): {e:#}")
                }
            }
        }
    }

    fn flag(&self, mode: Mode) -> &AtomicBool {
        match mode {
            Mode::Lockdown => &self.lockdown,
            Mode::Emergency => &self.emergency,
        }
    }

    /// Whether `mode` is on.
    pub fn mode(&self, mode: Mode) -> bool {
        self.flag(mode).load(Ordering::Acquire)
    }

    /// Switches a mode, persists it and audits who did it.
    pub fn set_mode(
        &self,
        mode: Mode,
        on: bool,
        by: &str,
        ctx: Option<&RequestContext>,
    ) -> anyhow::Result<()> {
        {
            let store = self.store();
            store.set_setting(mode.setting(), if on { "on" } else { "off" }, by)?;
            self.seen_version
                .store(store.data_version()? as u64, Ordering::Release);
        }
        let was = self.flag(mode).swap(on, Ordering::AcqRel);
        let state = if on { "on" } else { "off" };
        tracing::warn!(mode = mode.setting(), state, by, "security mode changed");
        if was != on || ctx.is_some() {
            self.incident(
                ctx,
                Incident::new(
                    IncidentKind::ModeChange,
                    "toggled",
                    format!("{} {state} by {by}", mode.setting()),
                ),
            );
        }
        Ok(())
    }

    /// The request firewall, unless it is off.
    pub fn firewall(&self) -> Option<&Firewall> {
        self.firewall.as_ref()
    }

    /// Whether browsers may log in with the gateway password.
    pub fn password_login_enabled(&self) -> bool {
        self.cfg.password_required && self.password.is_some()
    }

    /// Whether `attempt` is the gateway password.
    pub fn verify_password(&self, attempt: &str) -> bool {
        self.password.as_ref().is_some_and(|p| p.verify(attempt))
    }

    /// Resolves a presented API key.
    pub fn authenticate_key(&self, presented: &str) -> Result<Arc<KeyRecord>, KeyRejection> {
        let (id, secret) = keys::split(presented).ok_or(KeyRejection::Malformed)?;
        let rec = self.key(id).ok_or(KeyRejection::Unknown)?;
        rec.verify(secret, now_ms())?;
        Ok(rec)
    }

    /// Whether key `id` is still valid now, as the database says (the
    /// cache follows it within a second): for connections that outlive a
    /// revocation or an expiry.
    pub fn key_still_valid(&self, id: &str, now: i64) -> bool {
        self.key(id)
            .is_some_and(|k| !k.revoked && k.expires_at.is_none_or(|t| t > now))
    }

    /// Key `id` from the cache, or from the database: a key created a
    /// moment ago (by the CLI) is not cached yet.
    fn key(&self, id: &str) -> Option<Arc<KeyRecord>> {
        let cached = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        cached.or_else(|| self.load_key(id))
    }

    fn load_key(&self, id: &str) -> Option<Arc<KeyRecord>> {
        let row = self.store().key(id).ok()??;
        let rec = Arc::new(KeyRecord::from_row(&row).ok()?);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id.clone(), rec.clone());
        Some(rec)
    }

    /// Counts a request against the rate limit of `p` (a key's own, or the default).
    pub fn check_principal_rate(&self, p: &Principal) -> Result<(), limits::Limited> {
        match p.limiter_id() {
            Some((id, own)) => self.limits.check_principal(&id, own),
            None => Ok(()),
        }
    }

    /// A new request id: unique per process, unguessable across restarts.
    /// `req_`, then the prefix and the sequence number in hex, zero-padded
    /// to 8 and 10 digits (written out: `format!` cost more than the rest
    /// of admission's bookkeeping).
    pub fn next_request_id(&self) -> String {
        let n = self.request_seq.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(22);
        id.push_str("req_");
        push_hex(&mut id, self.request_prefix.into(), 8);
        push_hex(&mut id, n, 10);
        id
    }

    /// Records an incident (asynchronously) and pushes it to subscribers.
    pub fn incident(&self, ctx: Option<&RequestContext>, i: Incident) {
        let row = IncidentRow {
            id: 0,
            ts: now_ms(),
            client_ip: ctx.map(|c| c.client_ip.to_string()),
            kind: i.kind.as_str().to_string(),
            rule: i.rule,
            action: i.action.to_string(),
            request_id: ctx.map(|c| c.request_id.clone()),
            detail: Some(i.detail),
        };
        tracing::info!(
            kind = %row.kind,
            action = %row.action,
            client_ip = row.client_ip.as_deref().unwrap_or("-"),
            request_id = row.request_id.as_deref().unwrap_or("-"),
            rule = row.rule.as_deref().unwrap_or("-"),
            "security incident: {}",
            row.detail.as_deref().unwrap_or("")
        );
        if let Some(c) = &self.incident_counter {
            c.with_label_values(&[i.kind.as_str()]).inc();
        }
        self.publish(json!({"event": "incident", "incident": &row}));
        if self.writes.try_send(Write::Incident(row)).is_err() {
            // The writer is behind (a flood): count, never block serving.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends `event` to every `subscribe`r (nothing when none listens).
    pub fn publish(&self, event: Value) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(Arc::from(event.to_string()));
        }
    }

    /// Events as they happen, as JSON text.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// Counts a failure (bad key, bad password, firewall block) against
    /// the client; bans it when this one crossed the threshold.
    pub fn failure(&self, ctx: &RequestContext, reason: &str) {
        let store = self.store();
        let Some(ban) = self.bans.record_failure(ctx.client_ip, reason, now_ms()) else {
            return;
        };
        if let Err(e) = store.upsert_ban(&ban) {
            tracing::error!("cannot persist the ban of {}: {e}", ban.target);
        }
        if let Ok(v) = store.data_version() {
            self.seen_version.store(v as u64, Ordering::Release);
        }
        drop(store);
        self.incident(
            Some(ctx),
            Incident::new(IncidentKind::AutoBlock, "banned", ban.reason.clone()),
        );
        self.publish(json!({"event": "blocked", "ban": &ban}));
    }

    /// Bans `target` (an address or a CIDR block) for `for_`, or until
    /// lifted; an incident names `by`.
    pub fn block(
        &self,
        target: &str,
        reason: &str,
        for_: Option<Duration>,
        by: &str,
        ctx: Option<&RequestContext>,
    ) -> Result<bans::Ban, String> {
        let store = self.store();
        let ban = self.bans.block(target, reason, for_, now_ms())?;
        store.upsert_ban(&ban).map_err(|e| e.to_string())?;
        if let Ok(v) = store.data_version() {
            self.seen_version.store(v as u64, Ordering::Release);
        }
        drop(store);
        self.incident(
            ctx,
            Incident::new(
                IncidentKind::ManualBlock,
                "blocked",
                format!("{} blocked by {by}: {reason}", ban.target),
            ),
        );
        self.publish(json!({"event": "blocked", "ban": &ban}));
        Ok(ban)
    }

    /// Lifts the ban on `target`; an incident names `by`. `None`: there was none.
    pub fn unblock(
        &self,
        target: &str,
        by: &str,
        ctx: Option<&RequestContext>,
    ) -> Result<Option<bans::Ban>, String> {
        let store = self.store();
        let lifted = self.bans.unblock(target, now_ms())?;
        if let Some(b) = &lifted {
            store.lift_ban(&b.target).map_err(|e| e.to_string())?;
            if let Ok(v) = store.data_version() {
                self.seen_version.store(v as u64, Ordering::Release);
            }
        }
        drop(store);
        if let Some(b) = &lifted {
            self.incident(
                ctx,
                Incident::new(
                    IncidentKind::ManualUnblock,
                    "unblocked",
                    format!("{} unblocked by {by}", b.target),
                ),
            );
            self.publish(json!({"event": "unblocked", "target": b.target}));
        }
        Ok(lifted)
    }

    /// The newest `limit` incidents matching `filter`.
    pub fn incidents(
        &self,
        limit: u32,
        filter: &store::IncidentFilter,
    ) -> anyhow::Result<Vec<IncidentRow>> {
        Ok(self.store().incidents(limit, filter)?)
    }

    /// Provider latency rows since `since_ms`.
    pub fn latency_history(&self, since_ms: i64) -> anyhow::Result<Vec<store::LatencyRow>> {
        Ok(self.store().latency(since_ms)?)
    }

    /// Provider latency rows since `since_ms`, in buckets of `bucket_ms`.
    pub fn latency_buckets(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> anyhow::Result<Vec<store::LatencyRow>> {
        Ok(self.store().latency_buckets(since_ms, bucket_ms)?)
    }

    /// Incident counts per kind since `since_ms`, in buckets of `bucket_ms`.
    pub fn incident_counts(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> anyhow::Result<Vec<store::IncidentCount>> {
        Ok(self.store().incident_counts(since_ms, bucket_ms)?)
    }

    /// Stores provider latency rows (a failure is logged, never raised).
    pub fn record_latency(&self, rows: &[store::LatencyRow]) {
        if let Err(e) = self.store().upsert_latency(rows) {
            tracing::warn!("cannot store provider latency history: {e}");
        }
    }

    /// Incidents not stored because the writer was behind.
    pub fn dropped_incidents(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn housekeeping(&self) {
        self.limits.housekeeping();
        let cutoff = now_ms() - self.cfg.incident_retention.as_millis() as i64;
        if let Err(e) = self.store().prune(cutoff, self.cfg.max_incidents) {
            tracing::warn!("cannot prune incidents: {e}");
        }
    }
}

/// Stores incidents in batches, off the serving threads.
fn spawn_writer(mut store: Store, rx: mpsc::Receiver<Write>) {
    std::thread::Builder::new()
        .name("moltgate-recorder".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(w) => batch.push(w),
                        Err(_) => break,
                    }
                }
                let rows: Vec<IncidentRow> = batch
                    .into_iter()
                    .map(|w| match w {
                        Write::Incident(r) => r,
                    })
                    .collect();
                if let Err(e) = store.insert_incidents(&rows) {
                    tracing::error!("cannot store {} incident(s): {e}", rows.len());
                }
            }
        })
        .expect("spawn the incident recorder");
}

/// Notices changes made by other processes (1 s) and prunes (1 min).
fn spawn_maintenance(sec: Weak<Security>) {
    std::thread::Builder::new()
        .name("moltgate-security".into())
        .spawn(move || {
            let mut ticks = 0u64;
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(sec) = sec.upgrade() else { return };
                sec.reload_if_changed();
                sec.refresh_breaker();
                if ticks.is_multiple_of(60) {
                    sec.housekeeping();
                }
                ticks += 1;
            }
        })
        .expect("spawn security maintenance");
}

/// `v` in lowercase hex, zero-padded to `width` digits (`{:0width$x}`).
fn push_hex(out: &mut String, v: u64, width: usize) {
    let digits = (64 - v.leading_zeros() as usize).div_ceil(4).max(width);
    for i in (0..digits).rev() {
        let nibble = v.checked_shr(4 * i as u32).unwrap_or(0) & 0xf;
        out.push(char::from_digit(nibble as u32, 16).expect("a nibble"));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_hex_pads_as_format_does() {
        for (v, width) in [
            (0, 8),
            (0xab, 10),
            (u32::MAX as u64, 8),
            (0x1_0000_0000, 8),
            (u64::MAX, 10),
            (0x123_4567_89ab, 10),
        ] {
            let mut s = String::new();
            super::push_hex(&mut s, v, width);
            assert_eq!(s, format!("{v:0width$x}"));
        }
    }
}
