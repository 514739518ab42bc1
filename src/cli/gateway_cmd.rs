//! moltgate's security state from the command line: `keys`, `lockdown`,
//! `kill-switch`, `blocked` and `incidents`.
//!
//! These write the gateway's SQLite database in the state dir directly; a
//! running moltgate notices within a second. Every mode toggle and block
//! is recorded as an incident, naming the OS user who made it.

use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::gateway::admin::store::{now_ms, IncidentFilter, IncidentRow, Store};
use crate::gateway::inbound::{keys, scope::Scopes, IncidentKind, Mode};

#[derive(Debug, Subcommand)]
pub(super) enum KeysCmd {
    /// Create an API key; it is shown once.
    Create {
        /// What the key is for (shown in lists and the audit trail).
        #[arg(long)]
        label: String,
        /// Comma-separated: operator.read, operator.write, operator.admin,
        /// operator.approvals. An empty list grants nothing.
        #[arg(long, value_name = "LIST")]
        scopes: String,
        /// Expire after this long (e.g. 90d, 12h).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
        /// Requests per minute for this key (0 = no per-key limit).
        #[arg(long, value_name = "N")]
        rate_limit: Option<u32>,
        /// Models the key may use (exact names or `provider/*`); default any.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        models: Vec<String>,
    },
    /// List keys (ids and labels; never secrets).
    List,
    /// Revoke a key by id or label.
    Revoke { id_or_label: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum Switch {
    On,
    Off,
    Status,
}

#[derive(Debug, Subcommand)]
pub(super) enum BlockedCmd {
    /// Active blocks (automatic and manual).
    List,
    /// Block an IP address or CIDR block.
    Add {
        target: String,
        #[arg(long, default_value = "blocked by an operator")]
        reason: String,
        /// Lift automatically after this long (default: until removed).
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<humantime::Duration>,
    },
    /// Lift a block, or every block with --all.
    Remove {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        target: Option<String>,
        /// Lift every block, automatic and manual.
        #[arg(long)]
        all: bool,
    },
}

fn open(ctx: &Ctx) -> Result<Store, CliError> {
    let cfg = ctx.config_allow_missing()?;
    Store::open(&cfg.layout.state_dir).map_err(|e| {
        CliError::error(
            e.to_string(),
            "check the state dir's permissions (run as the user moltgate runs as)",
        )
    })
}

fn db_err(e: impl std::fmt::Display) -> CliError {
    CliError::error(e.to_string(), "see ops/RECOVERY.md")
}

fn who() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {}", nix::unistd::getuid()));
    format!("moltguard CLI ({user})")
}

fn audit(
    store: &mut Store,
    kind: IncidentKind,
    action: &str,
    detail: String,
) -> Result<(), CliError> {
    store
        .insert_incidents(&[IncidentRow {
            id: 0,
            ts: now_ms(),
            client_ip: None,
            kind: kind.as_str().into(),
            rule: None,
            action: action.into(),
            request_id: None,
            detail: Some(detail),
        }])
        .map_err(db_err)
}

/// Creates a key with no expiry or limits (for `init --write-agent-config`)
/// and returns its plaintext, recorded like `keys create`.
pub(super) fn create_key(ctx: &Ctx, label: &str, scopes: &str) -> Result<String, CliError> {
    let scopes = Scopes::parse_list(scopes).map_err(|e| CliError::usage(e, ""))?;
    let k = insert_key(&mut open(ctx)?, label, scopes, None, None, &[])?;
    Ok(k.plaintext)
}

/// Makes a key, stores it, and records who made it.
fn insert_key(
    store: &mut Store,
    label: &str,
    scopes: Scopes,
    expires_at: Option<i64>,
    rate_limit: Option<u32>,
    models: &[String],
) -> Result<keys::NewKey, CliError> {
    let k = keys::generate(label, scopes, expires_at, rate_limit, models);
    store.insert_key(&k.row).map_err(db_err)?;
    audit(
        store,
        IncidentKind::KeyCreated,
        "created",
        format!(
            "key {} ({label}) with scopes [{scopes}] by {}",
            k.row.id,
            who()
        ),
    )?;
    Ok(k)
}

pub(super) fn keys(ctx: &Ctx, cmd: KeysCmd) -> Result<Exit, CliError> {
    let mut store = open(ctx)?;
    match cmd {
        KeysCmd::Create {
            label,
            scopes,
            expires_in,
            rate_limit,
            models,
        } => {
            let scopes = Scopes::parse_list(&scopes)
                .map_err(|e| CliError::usage(e, "e.g. --scopes operator.read,operator.write"))?;
            if label.trim().is_empty() {
                return Err(CliError::usage("--label is empty", "e.g. --label my-agent"));
            }
            let expires_at = expires_in.map(|d| now_ms() + Duration::from(d).as_millis() as i64);
            let k = insert_key(&mut store, &label, scopes, expires_at, rate_limit, &models)?;
            emit(
                ctx.json,
                json!({"id": k.row.id, "label": label, "scopes": scopes.names(), "key": k.plaintext, "expires_at": expires_at.map(rfc3339_ms)}),
                || {
                    println!("{}", k.plaintext);
                    eprintln!(
                        "created key {} ({label}) with scopes [{}]. It is shown only now: store it in your agent's config or secret store.",
                        k.row.id,
                        if scopes.is_empty() { "none: it can do nothing".into() } else { scopes.to_string() }
                    );
                },
            );
        }
        KeysCmd::List => {
            let now = now_ms();
            let rows = store.keys().map_err(db_err)?;
            let list: Vec<_> = rows
                .iter()
                .map(|r| {
                    let state = if r.revoked_at.is_some() {
                        "revoked"
                    } else if r.expires_at.is_some_and(|t| t <= now) {
                        "expired"
                    } else {
                        "active"
                    };
                    // Lists as arrays, times in RFC 3339, as in every --json.
                    let list = |s: &str| -> Vec<String> {
                        s.split(',')
                            .map(str::trim)
                            .filter(|x| !x.is_empty())
                            .map(String::from)
                            .collect()
                    };
                    json!({"id": r.id, "label": r.label, "scopes": list(&r.scopes), "state": state,
                           "created_at": rfc3339_ms(r.created_at),
                           "expires_at": r.expires_at.map(rfc3339_ms),
                           "revoked_at": r.revoked_at.map(rfc3339_ms),
                           "rate_per_minute": r.rate_per_minute,
                           "models": r.models.as_deref().map(list)})
                })
                .collect();
            emit(ctx.json, json!({"keys": list}), || {
                if list.is_empty() {
                    println!("no keys; create one with `moltguard keys create --label NAME --scopes operator.write`");
                }
                for k in &list {
                    let scopes: Vec<&str> = k["scopes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .collect();
                    println!(
                        "{}  {:8}  {:24}  {}",
                        k["id"].as_str().unwrap_or(""),
                        k["state"].as_str().unwrap_or(""),
                        k["label"].as_str().unwrap_or(""),
                        scopes.join(",")
                    );
                }
            });
        }
        KeysCmd::Revoke { id_or_label } => {
            let n = store.revoke_key(&id_or_label).map_err(db_err)?;
            if n == 0 {
                return Err(CliError::not_found(
                    format!("no active key with id or label {id_or_label:?}"),
                    "see `moltguard keys list`",
                ));
            }
            audit(
                &mut store,
                IncidentKind::KeyRevoked,
                "revoked",
                format!("{n} key(s) {id_or_label:?} revoked by {}", who()),
            )?;
            emit(ctx.json, json!({"ok": true, "revoked": n}), || {
                println!("revoked {n} key(s); a running moltgate refuses them within a second")
            });
        }
    }
    Ok(Exit::Ok)
}

pub(super) fn mode(ctx: &Ctx, mode: Mode, switch: Switch) -> Result<Exit, CliError> {
    let mut store = open(ctx)?;
    let name = mode.setting();
    if let Switch::On | Switch::Off = switch {
        let on = matches!(switch, Switch::On);
        let by = who();
        store
            .set_setting(name, if on { "on" } else { "off" }, &by)
            .map_err(db_err)?;
        audit(
            &mut store,
            IncidentKind::ModeChange,
            "toggled",
            format!("{name} {} by {by}", if on { "on" } else { "off" }),
        )?;
    }
    let on = store.setting(name).map_err(db_err)?.as_deref() == Some("on");
    let meaning = match (mode, on) {
        (Mode::Lockdown, true) => "only administrator keys from this machine are served",
        (Mode::Lockdown, false) => "normal service",
        (Mode::Emergency, true) => "kill switch on: no LLM call leaves the gateway",
        (Mode::Emergency, false) => "LLM calls allowed",
    };
    emit(ctx.json, json!({"mode": name, "on": on}), || {
        println!("{name}: {} ({meaning})", if on { "on" } else { "off" })
    });
    Ok(Exit::Ok)
}

pub(super) fn blocked(ctx: &Ctx, cmd: BlockedCmd) -> Result<Exit, CliError> {
    let mut store = open(ctx)?;
    let now = now_ms();
    match cmd {
        BlockedCmd::List => {
            let rows: Vec<_> = store
                .bans()
                .map_err(db_err)?
                .into_iter()
                .filter(|b| b.expires_at.is_none_or(|t| t > now))
                .collect();
            let json_rows: Vec<_> = rows
                .iter()
                .map(|b| {
                    let mut v = json!(b);
                    v["created_at"] = json!(rfc3339_ms(b.created_at));
                    v["expires_at"] = json!(b.expires_at.map(rfc3339_ms));
                    v
                })
                .collect();
            emit(ctx.json, json!({"blocked": json_rows}), || {
                if rows.is_empty() {
                    println!("nothing is blocked");
                }
                for b in &rows {
                    let until = b
                        .expires_at
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|d| d.format("until %Y-%m-%d %H:%M UTC").to_string())
                        .unwrap_or_else(|| "until removed".into());
                    println!("{:20} {until:26} {}", b.target, b.reason);
                }
            });
        }
        BlockedCmd::Add {
            target,
            reason,
            for_,
        } => {
            // The same rules as the gateway's own (ignore list, CIDR syntax).
            let cfg = crate::gateway::inbound::SecurityConfig::load(
                Default::default(),
                &crate::gateway::config::process_env(),
            )
            .map_err(|e| CliError::usage(e.to_string(), "fix the environment variable"))?;
            let bans = crate::gateway::inbound::bans::Bans::new(
                cfg.ignore,
                1,
                Duration::from_secs(1),
                Duration::from_secs(1),
                Duration::from_secs(1),
            );
            let ban = bans
                .block(&target, &reason, for_.map(Into::into), now)
                .map_err(|e| {
                    CliError::usage(e, "give an IP address or a CIDR block like 203.0.113.0/24")
                })?;
            store.upsert_ban(&ban).map_err(db_err)?;
            audit(
                &mut store,
                IncidentKind::ManualBlock,
                "blocked",
                format!("{} blocked by {}: {reason}", ban.target, who()),
            )?;
            emit(ctx.json, json!({"blocked": &ban}), || {
                println!(
                    "blocked {}; a running moltgate refuses it within a second",
                    ban.target
                )
            });
        }
        BlockedCmd::Remove { target: None, .. } => {
            // Every row, lifted only where still in force (expired rows
            // keep offence counts and stay).
            let mut targets = Vec::new();
            for b in store.bans().map_err(db_err)? {
                if store.lift_ban(&b.target).map_err(db_err)? > 0 {
                    targets.push(b.target);
                }
            }
            if !targets.is_empty() {
                audit(
                    &mut store,
                    IncidentKind::ManualUnblock,
                    "unblocked",
                    format!("all {} blocks lifted by {}", targets.len(), who()),
                )?;
            }
            emit(
                ctx.json,
                json!({"ok": true, "unblocked": targets}),
                || match targets.len() {
                    0 => println!("nothing was blocked"),
                    n => println!("unblocked {n}: {}", targets.join(", ")),
                },
            );
        }
        BlockedCmd::Remove {
            target: Some(target),
            ..
        } => {
            let n = store.lift_ban(target.trim()).map_err(db_err)?;
            if n == 0 {
                return Err(CliError::not_found(
                    format!("{target} is not blocked"),
                    "see `moltguard blocked list` (give the target exactly as listed)",
                ));
            }
            audit(
                &mut store,
                IncidentKind::ManualUnblock,
                "unblocked",
                format!("{target} unblocked by {}", who()),
            )?;
            emit(ctx.json, json!({"ok": true}), || {
                println!("unblocked {target}")
            });
        }
    }
    Ok(Exit::Ok)
}

pub(super) fn incidents(ctx: &Ctx, limit: u32, filter: &IncidentFilter) -> Result<Exit, CliError> {
    let store = open(ctx)?;
    let mut rows = store.incidents(limit, filter).map_err(db_err)?;
    // The store gives the newest first; people read oldest first.
    rows.reverse();
    let json_rows: Vec<_> = rows
        .iter()
        .map(|i| {
            let mut v = json!(i);
            v["ts"] = json!(rfc3339_ms(i.ts));
            v
        })
        .collect();
    emit(ctx.json, json!({"incidents": json_rows}), || {
        if rows.is_empty() {
            println!("no incidents");
        }
        for i in &rows {
            let t = chrono::DateTime::from_timestamp_millis(i.ts)
                .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            println!(
                "{t}  {:16} {:10} {:15} {}{}",
                i.kind,
                i.action,
                i.client_ip.as_deref().unwrap_or("-"),
                i.detail.as_deref().unwrap_or(""),
                i.request_id
                    .as_deref()
                    .map(|r| format!("  [{r}]"))
                    .unwrap_or_default()
            );
        }
    });
    Ok(Exit::Ok)
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `--since`: an RFC 3339 time, or an age before now; epoch milliseconds.
pub(super) fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match humantime::parse_duration(s) {
        Ok(age) => Ok(now_ms().saturating_sub(age.as_millis().min(i64::MAX as u128) as i64)),
        Err(_) => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-12-03T20:00:00Z) nor an age (90s, 30m, 2h, 7d)"
        )),
    }
}
