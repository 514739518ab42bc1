//! `moltguard init --agent openclaw --write-agent-config`: points OpenClaw
//! at moltgate by editing its `openclaw.json`, with every secret kept in
//! OpenClaw's environment file (`~/.openclaw/.env`, mode 600, which
//! OpenClaw loads itself) and only `${VAR}` references in the config.
//!
//! What it sets (and nothing else):
//! - `models.providers.moltgate`: moltgate's loopback URL, the OpenAI API,
//!   `apiKey: "${MOLTGATE_API_KEY}"`, the models (`--agent-model`, else the
//!   ones already listed there, else moltgate's default model);
//!   `models.mode = "merge"` when unset, so OpenClaw's own providers stay;
//! - `agents.defaults.model.primary = "moltgate/<model>"` only when unset;
//! - `gateway.auth`: a token written in the file moves to the environment
//!   file as `OPENCLAW_GATEWAY_TOKEN`; with no credential at all, a new
//!   random token is made there; `rateLimit.exemptLoopback = false` (every
//!   request through the edge comes from loopback).
//!
//! Safety: a config that is not plain JSON (comments, JSON5) is refused
//! rather than rewritten without its comments; the environment file is
//! written before the config (a reference never points at nothing); both
//! are written atomically, the old config kept as
//! `openclaw.json.bak.moltguard` (mode 600); under sudo, the files stay the
//! agent user's.

use super::output::CliError;
use crate::fsutil;
use rand::distributions::{Alphanumeric, DistString};
use serde_json::{json, Map, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The variable holding moltgate's key for OpenClaw.
pub(super) const KEY_VAR: &str = "MOLTGATE_API_KEY";
/// The variable holding OpenClaw's gateway token.
pub(super) const TOKEN_VAR: &str = "OPENCLAW_GATEWAY_TOKEN";
/// Length of a gateway token made here (alphanumeric: ~190 bits).
const TOKEN_LEN: usize = 32;

/// What the edit needs to know.
pub(super) struct Request {
    /// moltgate's OpenAI-compatible base URL (`http://127.0.0.1:PORT/v1`).
    pub base_url: String,
    /// Models to list (`--agent-model`); empty: keep or use `default_model`.
    pub models: Vec<String>,
    /// moltgate's default model, if its config names one.
    pub default_model: Option<String>,
}

/// The edit, computed before anything is written.
#[derive(Debug)]
pub(super) struct Edit {
    pub config: Value,
    /// Variables to add to the environment file (name, value).
    pub env_add: Vec<(&'static str, String)>,
    /// What changed, for people.
    pub changes: Vec<String>,
    /// Whether the environment file needs moltgate's key (made by the caller).
    pub needs_key: bool,
}

/// Variables an environment file defines (`KEY=value`, `export KEY=value`).
pub(super) fn env_vars(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("export ").unwrap_or(l);
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// Computes the edit of `existing` (the file's text, `None` if it does not
/// exist) given what the environment file already defines.
pub(super) fn plan(
    existing: Option<&str>,
    env: &[(String, String)],
    req: &Request,
) -> Result<Edit, CliError> {
    let mut config = match existing {
        None => Value::Object(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return Err(CliError::refused(
                    "openclaw.json is not a JSON object",
                    "fix it (`openclaw config validate`), then run this again",
                ))
            }
            Err(e) => {
                let json5 = crate::guardian::checks::agent::json5_to_json(text);
                let hint = if serde_json::from_str::<Value>(&json5).is_ok() {
                    "it has comments or JSON5 syntax, which a rewrite would lose: run the `openclaw config set` commands `moltguard init --agent openclaw` prints instead"
                } else {
                    "fix the syntax at that line (`openclaw config validate`), then run this again"
                };
                return Err(CliError::refused(
                    format!(
                        "openclaw.json is not plain JSON (line {}, column {}): {e}",
                        e.line(),
                        e.column()
                    ),
                    hint,
                ));
            }
        },
    };
    let has_env = |k: &str| env.iter().any(|(n, v)| n == k && !v.is_empty());
    let mut edit = Edit {
        config: Value::Null,
        env_add: Vec::new(),
        changes: Vec::new(),
        needs_key: !has_env(KEY_VAR),
    };

    // models.providers.moltgate
    let root = config.as_object_mut().expect("an object");
    let models = object_at(root, "models")?;
    if !models.contains_key("mode") {
        models.insert("mode".into(), json!("merge"));
    }
    let providers = object_at(models, "providers")?;
    let old = providers.get("moltgate").cloned();
    let listed: Vec<Value> = old
        .as_ref()
        .and_then(|o| o.get("models"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ids: Vec<String> = if !req.models.is_empty() {
        req.models.clone()
    } else if !listed.is_empty() {
        Vec::new()
    } else if let Some(m) = &req.default_model {
        vec![m.clone()]
    } else {
        return Err(CliError::usage(
            "no model to list for moltgate in OpenClaw's config",
            "name one moltgate routes: --agent-model MODEL",
        ));
    };
    let mut provider = match old {
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(CliError::refused(
                "models.providers.moltgate in openclaw.json is not an object",
                "remove it or fix it by hand, then run this again",
            ))
        }
        None => Map::new(),
    };
    provider.insert("baseUrl".into(), json!(req.base_url));
    provider.insert("api".into(), json!("openai-completions"));
    provider.insert("apiKey".into(), json!(format!("${{{KEY_VAR}}}")));
    if !ids.is_empty() {
        provider.insert(
            "models".into(),
            Value::Array(
                ids.iter()
                    .map(|m| json!({"id": m, "name": format!("{m} through moltgate")}))
                    .collect(),
            ),
        );
    }
    let first = ids.first().cloned().or_else(|| {
        listed
            .first()
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    providers.insert("moltgate".into(), Value::Object(provider));
    edit.changes.push(format!(
        "models.providers.moltgate: {} with the key from ${{{KEY_VAR}}}",
        req.base_url
    ));

    // agents.defaults.model.primary, only when unset.
    if let Some(first) = first {
        let agents = object_at(root, "agents")?;
        let defaults = object_at(agents, "defaults")?;
        let primary = match defaults.get("model") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(m)) => m.get("primary").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        match primary {
            None => {
                let model = object_at(defaults, "model")?;
                model.insert("primary".into(), json!(format!("moltgate/{first}")));
                edit.changes
                    .push(format!("agents.defaults.model.primary: moltgate/{first}"));
            }
            Some(p) if !p.starts_with("moltgate/") => edit.changes.push(format!(
                "agents.defaults.model.primary stays {p:?}: set it to \"moltgate/{first}\" for the agent's turns to go through moltgate"
            )),
            Some(_) => {}
        }
    }

    // gateway.auth
    let gateway = object_at(root, "gateway")?;
    let auth = object_at(gateway, "auth")?;
    let reference = format!("${{{TOKEN_VAR}}}");
    let mode = auth.get("mode").and_then(Value::as_str).map(str::to_string);
    match auth.get("token").and_then(Value::as_str) {
        Some(t) if t.trim_start().starts_with("${") => {}
        Some(t) if !t.is_empty() => {
            if let Some((_, v)) = env.iter().find(|(n, _)| n == TOKEN_VAR) {
                if v != t {
                    return Err(CliError::refused(
                        format!("openclaw.json holds a gateway token and the environment file sets a different {TOKEN_VAR}"),
                        "keep one: remove the token from openclaw.json or the line from the environment file",
                    ));
                }
            } else {
                edit.env_add.push((TOKEN_VAR, t.to_string()));
            }
            auth.insert("token".into(), json!(reference));
            edit.changes.push(format!(
                "gateway.auth.token: moved out of openclaw.json into the environment file as {TOKEN_VAR}"
            ));
        }
        _ => {
            let has_password = auth
                .get("password")
                .and_then(Value::as_str)
                .is_some_and(|p| !p.is_empty());
            if !has_password && matches!(mode.as_deref(), None | Some("token")) {
                if !has_env(TOKEN_VAR) {
                    let token = Alphanumeric.sample_string(&mut rand::thread_rng(), TOKEN_LEN);
                    edit.env_add.push((TOKEN_VAR, token));
                }
                auth.insert("mode".into(), json!("token"));
                auth.insert("token".into(), json!(reference));
                edit.changes.push(format!(
                    "gateway.auth: token mode, the token in the environment file as {TOKEN_VAR} (`openclaw gateway auth-token` shows it)"
                ));
            } else if mode.as_deref() == Some("none") {
                edit.changes.push(
                    "gateway.auth.mode stays \"none\", as you set it: every local process can drive the agent (moltguard audit calls it critical)".into(),
                );
            }
        }
    }
    let rate = object_at(auth, "rateLimit")?;
    if rate.get("exemptLoopback") != Some(&json!(false)) {
        rate.insert("exemptLoopback".into(), json!(false));
        edit.changes.push(
            "gateway.auth.rateLimit.exemptLoopback: false (requests through the edge come from loopback)".into(),
        );
    }
    edit.config = config;
    Ok(edit)
}

/// `parent[key]` as an object, made if missing; refused if it is
/// something else (never overwritten).
fn object_at<'a>(
    parent: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, CliError> {
    let v = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    v.as_object_mut().ok_or_else(|| {
        CliError::refused(
            format!("openclaw.json: {key:?} is not an object"),
            "fix it by hand (`openclaw config validate`), then run this again",
        )
    })
}

/// What was written, for people and `--json`.
#[derive(Debug, serde::Serialize)]
pub(super) struct Written {
    pub config_file: PathBuf,
    pub env_file: PathBuf,
    pub backup: Option<PathBuf>,
    pub changes: Vec<String>,
    /// Variables added to the environment file (names only).
    pub env_added: Vec<&'static str>,
}

/// Edits OpenClaw's config in `state_dir` (`~/.openclaw`). `make_key`
/// creates moltgate's key for OpenClaw when the environment file has none.
pub(super) fn write(
    state_dir: &Path,
    req: &Request,
    make_key: impl FnOnce() -> Result<String, CliError>,
) -> Result<Written, CliError> {
    let config_file = state_dir.join("openclaw.json");
    let env_file = state_dir.join(".env");
    let existing = read_optional(&config_file)?;
    let env_text = read_optional(&env_file)?.unwrap_or_default();
    let mut edit = plan(existing.as_deref(), &env_vars(&env_text), req)?;
    if edit.needs_key {
        edit.env_add.push((KEY_VAR, make_key()?));
        edit.changes.push(format!(
            "a moltgate key for OpenClaw, in the environment file as {KEY_VAR}"
        ));
    }
    // Files stay the agent user's, also when run with sudo.
    let owner = std::fs::metadata(state_dir)
        .or_else(|_| std::fs::metadata(state_dir.parent().unwrap_or(state_dir)))
        .map(|m| (m.uid(), m.gid()))
        .ok();
    if !state_dir.exists() {
        fsutil::ensure_dir(state_dir, 0o700).map_err(|e| io_err(state_dir, e))?;
        chown(state_dir, owner)?;
    }
    if !edit.env_add.is_empty() {
        let mut text = env_text.clone();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for (k, v) in &edit.env_add {
            text.push_str(&format!("{k}={v}\n"));
        }
        fsutil::write_atomic(&env_file, text.as_bytes(), 0o600)
            .map_err(|e| io_err(&env_file, e))?;
        chown(&env_file, owner)?;
    }
    let mut out = serde_json::to_string_pretty(&edit.config).expect("JSON");
    out.push('\n');
    let backup = match &existing {
        Some(old) if *old == out => None,
        Some(old) => {
            let b = state_dir.join("openclaw.json.bak.moltguard");
            fsutil::write_atomic(&b, old.as_bytes(), 0o600).map_err(|e| io_err(&b, e))?;
            chown(&b, owner)?;
            Some(b)
        }
        None => None,
    };
    if existing.as_deref() != Some(out.as_str()) {
        // Owner only, whatever it was: the file names where secrets are.
        fsutil::write_atomic(&config_file, out.as_bytes(), 0o600)
            .map_err(|e| io_err(&config_file, e))?;
        chown(&config_file, owner)?;
    }
    Ok(Written {
        config_file,
        env_file,
        backup,
        changes: edit.changes,
        env_added: edit.env_add.iter().map(|(k, _)| *k).collect(),
    })
}

fn read_optional(p: &Path) -> Result<Option<String>, CliError> {
    match fsutil::read_regular(p) {
        Ok((bytes, _)) => String::from_utf8(bytes).map(Some).map_err(|_| {
            CliError::refused(
                format!("{} is not UTF-8 text", p.display()),
                "fix it by hand",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::error(
            format!("cannot read {}: {e}", p.display()),
            "run as the agent's user (or with sudo)",
        )),
    }
}

fn chown(p: &Path, owner: Option<(u32, u32)>) -> Result<(), CliError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    if !crate::exec::running_as_root() {
        return Ok(());
    }
    nix::unistd::chown(p, Some(uid.into()), Some(gid.into()))
        .map_err(|e| io_err(p, std::io::Error::from(e)))
}

fn io_err(p: &Path, e: std::io::Error) -> CliError {
    CliError::error(
        format!("cannot write {}: {e}", p.display()),
        "run as the agent's user (or with sudo), and check free disk space",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn req(models: &[&str]) -> Request {
        Request {
            base_url: "http://127.0.0.1:8787/v1".into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            default_model: Some("llama-3.1-8b-instant".into()),
        }
    }

    #[test]
    fn a_fresh_config_gets_the_provider_a_token_and_no_loopback_exemption() {
        let e = plan(None, &[], &req(&[])).unwrap();
        let c = &e.config;
        assert_eq!(c["models"]["mode"], "merge");
        let p = &c["models"]["providers"]["moltgate"];
        assert_eq!(p["baseUrl"], "http://127.0.0.1:8787/v1");
        assert_eq!(p["apiKey"], "${MOLTGATE_API_KEY}");
        assert_eq!(p["models"][0]["id"], "llama-3.1-8b-instant");
        assert_eq!(
            c["agents"]["defaults"]["model"]["primary"],
            "moltgate/llama-3.1-8b-instant"
        );
        assert_eq!(c["gateway"]["auth"]["mode"], "token");
        assert_eq!(c["gateway"]["auth"]["token"], "${OPENCLAW_GATEWAY_TOKEN}");
        assert_eq!(c["gateway"]["auth"]["rateLimit"]["exemptLoopback"], false);
        assert!(e.needs_key);
        assert_eq!(e.env_add.len(), 1);
        assert_eq!(e.env_add[0].0, TOKEN_VAR);
        assert_eq!(e.env_add[0].1.len(), TOKEN_LEN);
    }

    #[test]
    fn a_literal_token_moves_to_the_environment_and_other_settings_stay() {
        let text = r#"{"gateway": {"port": 19000, "auth": {"mode": "token", "token": "s3cret-token"}},
                       "agents": {"defaults": {"model": {"primary": "anthropic/claude"}}},
                       "models": {"mode": "replace", "providers": {"other": {"baseUrl": "x"},
                                  "moltgate": {"models": [{"id": "m1", "contextWindow": 32000}]}}}}"#;
        let env = env_vars("# mine\nexport MOLTGATE_API_KEY=mgk_abc\n");
        let e = plan(Some(text), &env, &req(&[])).unwrap();
        let c = &e.config;
        assert_eq!(c["gateway"]["port"], 19000);
        assert_eq!(c["gateway"]["auth"]["token"], "${OPENCLAW_GATEWAY_TOKEN}");
        assert_eq!(e.env_add, [(TOKEN_VAR, "s3cret-token".to_string())]);
        assert!(!e.needs_key, "the key is in the environment file already");
        assert_eq!(c["models"]["mode"], "replace", "the user's choice stays");
        assert_eq!(c["models"]["providers"]["other"]["baseUrl"], "x");
        assert_eq!(
            c["models"]["providers"]["moltgate"]["models"][0]["contextWindow"], 32000,
            "models already listed stay as they are"
        );
        assert_eq!(
            c["agents"]["defaults"]["model"]["primary"],
            "anthropic/claude"
        );
        assert!(e
            .changes
            .iter()
            .any(|c| c.contains("stays \"anthropic/claude\"")));
        assert!(!c.to_string().contains("s3cret-token"));
        // A different value already in the environment: refused, not guessed.
        let env = env_vars("OPENCLAW_GATEWAY_TOKEN=other\n");
        assert!(plan(Some(text), &env, &req(&[])).is_err());
    }

    #[test]
    fn unsafe_files_are_refused_not_rewritten() {
        let json5 = "{ // my notes\n gateway: { bind: 'loopback' }, }";
        let err = plan(Some(json5), &[], &req(&[])).unwrap_err();
        assert!(err.hint.contains("comments or JSON5"), "{}", err.hint);
        assert!(plan(Some("{\"gateway\": "), &[], &req(&[])).is_err());
        assert!(plan(Some("[1]"), &[], &req(&[])).is_err());
        assert!(plan(Some(r#"{"models": "x"}"#), &[], &req(&[])).is_err());
        let no_model = Request {
            default_model: None,
            ..req(&[])
        };
        assert!(plan(None, &[], &no_model).is_err());
    }

    #[test]
    fn written_atomically_with_a_backup_and_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join(".openclaw");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("openclaw.json"),
            r#"{"gateway": {"auth": {"token": "literal-token-123"}}}"#,
        )
        .unwrap();
        let w = write(&dir, &req(&["m"]), || Ok("mgk_test_key".into())).unwrap();
        let env = std::fs::read_to_string(dir.join(".env")).unwrap();
        assert_eq!(
            env,
            "OPENCLAW_GATEWAY_TOKEN=literal-token-123\nMOLTGATE_API_KEY=mgk_test_key\n"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(".env")), 0o600);
        assert_eq!(mode(&dir.join("openclaw.json")), 0o600);
        let backup = w.backup.unwrap();
        assert!(std::fs::read_to_string(&backup)
            .unwrap()
            .contains("literal-token-123"));
        assert_eq!(mode(&backup), 0o600);
        let config = std::fs::read_to_string(dir.join("openclaw.json")).unwrap();
        assert!(!config.contains("literal-token-123") && !config.contains("mgk_test_key"));
        // Again: nothing to add, nothing rewritten, no key made.
        std::fs::remove_file(&backup).unwrap();
        let w = write(&dir, &req(&["m"]), || panic!("no second key")).unwrap();
        assert!(w.backup.is_none() && w.env_added.is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.join("openclaw.json")).unwrap(),
            config
        );
    }
}
