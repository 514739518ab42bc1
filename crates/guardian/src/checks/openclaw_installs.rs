//! Where OpenClaw's plugins and skills came from, and whether the next
//! `openclaw plugins update` / `skills update` could bring in code nobody
//! chose. A plugin runs inside the agent with its permissions; a skill is
//! text the agent follows. Both are a supply chain.
//!
//! Read from what OpenClaw itself records (2026.9.6):
//! - plugin install records in its state database,
//!   `<state dir>/state/openclaw.sqlite`, table `config_machine_state`, row
//!   `plugins.installedIndex`, at `index.installRecords` (plugin id ->
//!   record with `source`, `spec`, `integrity`, `gitRef`, ...); older
//!   versions kept the same records in `openclaw.json` at `plugins.installs`;
//! - the skills lockfile `<workspace>/.clawhub/lock.json` (legacy
//!   `.clawdhub/`), one entry per skill with its registry, version and
//!   `trustState`.
//!
//! The database is opened read-only and never waited on for long: the
//! guardian must not hold OpenClaw up, and a locked or unreadable database
//! is said, not guessed at.

use crate::breaker::ReasonCode;
use crate::Finding;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A plugin whose recorded source is not pinned: an npm spec without an
/// exact version or without an integrity hash, a git ref that is not a
/// commit, a ClawHub spec without a version, a marketplace install. Warning:
/// the next update installs whatever that source serves then. A plugin from
/// a local archive or path is outside every registry's review: info.
pub const OPENCLAW_PLUGIN_UNPINNED: &str = "OPENCLAW_PLUGIN_UNPINNED";
/// A skill installed straight from GitHub (skills.sh) that ClawHub never
/// scanned (`trustState: "not-scanned-by-clawhub"`). Warning.
pub const OPENCLAW_SKILL_UNSCANNED: &str = "OPENCLAW_SKILL_UNSCANNED";
/// OpenClaw's install records could not be read (locked, corrupt,
/// unreadable). Warning: what is installed is unknown.
pub const OPENCLAW_INSTALLS_UNREADABLE: &str = "OPENCLAW_INSTALLS_UNREADABLE";

/// The key of the installed-plugin index in `config_machine_state`.
const INSTALLED_INDEX_KEY: &str = "plugins.installedIndex";
/// How long a read waits for OpenClaw's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_millis(250);
/// At most this many findings per kind: a broken setup is one story.
const MAX_FINDINGS: usize = 32;

/// Checks the plugins recorded in `state_dir` (and in the parsed `config`,
/// for older OpenClaw versions) and the skills of each workspace.
pub fn check_installs(state_dir: &Path, config: &Value, workspaces: &[PathBuf]) -> Vec<Finding> {
    let mut out = Vec::new();
    let db = state_dir.join("state/openclaw.sqlite");
    match read_install_records(&db) {
        Ok(records) => out.extend(judge_records(&records, &db.display().to_string())),
        Err(e) => out.push(
            Finding::warning(
                OPENCLAW_INSTALLS_UNREADABLE,
                ReasonCode::CheckFailed,
                format!(
                    "OpenClaw's plugin install records in {} cannot be read: {e}",
                    db.display()
                ),
                "run the guardian as the agent's user (or root); `openclaw doctor` repairs a damaged state database",
            )
            .at(db.display().to_string()),
        ),
    }
    if let Some(legacy) = config
        .pointer("/plugins/installs")
        .and_then(Value::as_object)
    {
        out.extend(judge_records(legacy, "openclaw.json (plugins.installs)"));
    }
    for ws in workspaces {
        out.extend(check_skills(ws));
    }
    out
}

/// The install records of the state database; none when there is no
/// database or no index yet (nothing installed).
fn read_install_records(db: &Path) -> Result<Map<String, Value>, String> {
    use rusqlite::{OpenFlags, OptionalExtension};
    if !db.exists() {
        return Ok(Map::new());
    }
    let conn = rusqlite::Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'config_machine_state'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| e.to_string())?
        > 0;
    if !has_table {
        return Ok(Map::new());
    }
    let row: Option<String> = conn
        .query_row(
            "SELECT value_json FROM config_machine_state WHERE state_key = ?1",
            [INSTALLED_INDEX_KEY],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    let Some(text) = row else {
        return Ok(Map::new());
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{INSTALLED_INDEX_KEY} is not JSON: {e}"))?;
    match v.pointer("/index/installRecords") {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!(
            "{INSTALLED_INDEX_KEY}: index.installRecords is not an object"
        )),
    }
}

/// Why one record's source is not pinned, with the severity and the fix;
/// `None` when it is pinned.
fn unpinned(id: &str, r: &Value) -> Option<(bool, String, String)> {
    let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::trim);
    let has = |k: &str| s(k).is_some_and(|v| !v.is_empty());
    let spec = s("spec").unwrap_or("");
    match s("source").unwrap_or("") {
        "npm" => {
            let (name, selector) = split_npm_spec(spec);
            let name = if name.is_empty() { id } else { name };
            if !selector.is_some_and(is_exact_semver) {
                Some((
                    true,
                    format!("plugin {id:?} follows the npm spec {spec:?}, not an exact version: the next update installs whatever is published then"),
                    format!("openclaw plugins install {name} --pin (records the exact version and its integrity)"),
                ))
            } else if !has("integrity") && !has("npmIntegrity") {
                Some((
                    true,
                    format!("plugin {id:?} ({spec}) has no integrity hash recorded: a changed tarball would not be noticed"),
                    format!("openclaw plugins install {spec} --pin"),
                ))
            } else {
                None
            }
        }
        "git" => {
            let reference = s("gitRef")
                .filter(|r| !r.is_empty())
                .or_else(|| spec.rsplit_once('#').map(|(_, r)| r))
                .unwrap_or("");
            if is_commit(reference) {
                None
            } else {
                let shown = if reference.is_empty() {
                    "its default branch".to_string()
                } else {
                    format!("the ref {reference:?}")
                };
                Some((
                    true,
                    format!("plugin {id:?} follows {shown} of {}: a push there changes the code the agent runs", s("gitUrl").unwrap_or(spec)),
                    "reinstall it from a full commit: openclaw plugins install git:<url>#<40-hex commit>".to_string(),
                ))
            }
        }
        "clawhub" => {
            let version = s("version").or(s("resolvedVersion"));
            let pinned_spec = spec
                .trim_start_matches("clawhub:")
                .rsplit_once('@')
                .is_some_and(|(n, v)| !n.is_empty() && is_exact_semver(v));
            if pinned_spec {
                None
            } else {
                Some((
                    true,
                    format!("plugin {id:?} follows the ClawHub spec {spec:?} without a version: the next update installs the latest release"),
                    format!("openclaw plugins install clawhub:{}@{}", s("clawhubPackage").unwrap_or(id), version.unwrap_or("<version>")),
                ))
            }
        }
        "marketplace" => Some((
            true,
            format!(
                "plugin {id:?} comes from the marketplace {:?} by name: updates take whatever it lists then",
                s("marketplaceName").or(s("marketplaceSource")).unwrap_or("?")
            ),
            "prefer the plugin's npm package pinned with --pin, or review each update".to_string(),
        )),
        "archive" | "path" => {
            let from = s("sourcePath").or(s("installPath")).unwrap_or("?");
            if from.contains("://") && !has("integrity") && !has("shasum") && !has("clawpackSha256") {
                Some((
                    true,
                    format!("plugin {id:?} was downloaded from {from} with no hash recorded"),
                    "install it from a registry with a pinned version, or from a file you checked".to_string(),
                ))
            } else {
                Some((
                    false,
                    format!("plugin {id:?} was installed from the local {} {from}, outside every registry's review: what it contains is yours to vouch for", if s("source") == Some("path") { "path" } else { "archive" }),
                    "keep the file you installed from, or install a published, pinned version".to_string(),
                ))
            }
        }
        // Unknown sources: a newer OpenClaw; nothing to judge.
        _ => None,
    }
}

fn judge_records(records: &Map<String, Value>, loc: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (id, r) in records {
        if out.len() >= MAX_FINDINGS {
            break;
        }
        if let Some((warn, what, fix)) = unpinned(id, r) {
            let f = if warn {
                Finding::warning(
                    OPENCLAW_PLUGIN_UNPINNED,
                    ReasonCode::PermissionsUnsafe,
                    what,
                    fix,
                )
            } else {
                Finding::info(
                    OPENCLAW_PLUGIN_UNPINNED,
                    ReasonCode::PermissionsUnsafe,
                    what,
                    fix,
                )
            };
            out.push(f.at(loc.to_string()));
        }
    }
    out
}

/// Skills in `workspace` that came from outside ClawHub's scan.
fn check_skills(workspace: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for dir in [".clawhub", ".clawdhub"] {
        let lock = workspace.join(dir).join("lock.json");
        let Ok((bytes, _)) = crate::fsutil::read_regular(&lock) else {
            continue;
        };
        let shown = lock.display().to_string();
        let Some(skills) = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("skills").and_then(Value::as_object).cloned())
        else {
            out.push(
                Finding::warning(
                    OPENCLAW_INSTALLS_UNREADABLE,
                    ReasonCode::CheckFailed,
                    format!("the skills lockfile {shown} is not a version 1 lockfile"),
                    "openclaw doctor",
                )
                .at(shown),
            );
            return out;
        };
        for (slug, s) in skills.iter().take(MAX_FINDINGS) {
            if s.get("trustState").and_then(Value::as_str) == Some("not-scanned-by-clawhub") {
                let from = s
                    .get("requestedReference")
                    .or_else(|| s.get("sourceUrl"))
                    .and_then(Value::as_str)
                    .unwrap_or("GitHub");
                out.push(
                    Finding::warning(
                        OPENCLAW_SKILL_UNSCANNED,
                        ReasonCode::PermissionsUnsafe,
                        format!("skill {slug:?} was installed from {from}, which ClawHub never scanned: the agent follows its instructions"),
                        format!("read {}/skills/{slug}/SKILL.md before the agent does, or install the ClawHub release", workspace.display()),
                    )
                    .at(shown.clone()),
                );
            }
        }
        // The first lockfile found is the one OpenClaw reads.
        return out;
    }
    out
}

/// `name@selector` -> (name, selector); a scoped name keeps its `@`.
fn split_npm_spec(spec: &str) -> (&str, Option<&str>) {
    match spec.rfind('@') {
        Some(i) if i > 0 => (&spec[..i], Some(&spec[i + 1..])),
        _ => (spec, None),
    }
}

/// `1.2.3` or `1.2.3-beta.1` (what npm calls an exact version; ranges and
/// tags are not).
fn is_exact_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && !v.contains(' ')
}

/// A full git commit id (SHA-1 or SHA-256).
fn is_commit(r: &str) -> bool {
    (r.len() == 40 || r.len() == 64) && r.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use serde_json::json;

    fn verdict(id: &str, r: Value) -> Option<bool> {
        unpinned(id, &r).map(|(warn, _, _)| warn)
    }

    #[test]
    fn npm_needs_an_exact_version_and_an_integrity_hash() {
        let pinned = json!({"source": "npm", "spec": "@acme/tool@1.4.2", "integrity": "sha512-x"});
        assert_eq!(verdict("tool", pinned), None);
        for spec in [
            "@acme/tool",
            "@acme/tool@latest",
            "@acme/tool@^1.4.0",
            "tool@1.x",
        ] {
            let r = json!({"source": "npm", "spec": spec, "integrity": "sha512-x"});
            assert_eq!(verdict("tool", r), Some(true), "{spec}");
        }
        let no_hash = json!({"source": "npm", "spec": "tool@1.4.2"});
        assert_eq!(verdict("tool", no_hash), Some(true));
        let npm_hash =
            json!({"source": "npm", "spec": "tool@1.4.2-beta.1", "npmIntegrity": "sha512-y"});
        assert_eq!(verdict("tool", npm_hash), None);
    }

    #[test]
    fn git_needs_a_commit() {
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            verdict(
                "g",
                json!({"source": "git", "spec": format!("git:https://x/y#{c}")})
            ),
            None
        );
        assert_eq!(
            verdict(
                "g",
                json!({"source": "git", "gitRef": c, "gitUrl": "https://x/y"})
            ),
            None
        );
        assert_eq!(
            verdict(
                "g",
                json!({"source": "git", "spec": "git:https://x/y#main"})
            ),
            Some(true)
        );
        assert_eq!(
            verdict(
                "g",
                json!({"source": "git", "spec": "git:https://x/y", "gitCommit": c})
            ),
            Some(true),
            "the commit it happened to get is not what an update follows"
        );
    }

    #[test]
    fn clawhub_marketplace_and_local_sources() {
        assert_eq!(
            verdict(
                "p",
                json!({"source": "clawhub", "spec": "clawhub:p@2026.1.2"})
            ),
            None
        );
        assert_eq!(
            verdict("p", json!({"source": "clawhub", "spec": "clawhub:p"})),
            Some(true)
        );
        assert_eq!(
            verdict(
                "p",
                json!({"source": "marketplace", "marketplaceName": "m"})
            ),
            Some(true)
        );
        assert_eq!(
            verdict(
                "p",
                json!({"source": "archive", "sourcePath": "/tmp/p-1.0.0.tgz"})
            ),
            Some(false)
        );
        assert_eq!(
            verdict(
                "p",
                json!({"source": "archive", "sourcePath": "https://x/p.tgz"})
            ),
            Some(true)
        );
        assert_eq!(verdict("p", json!({"source": "bundled-in-2030"})), None);
    }

    /// A state database laid out as OpenClaw 2026.9.6 writes it.
    fn state_dir_with(records: Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("state/openclaw.sqlite")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE config_machine_state (state_key TEXT NOT NULL PRIMARY KEY, value_json TEXT NOT NULL, updated_at INTEGER NOT NULL) STRICT;",
        )
        .unwrap();
        let value = json!({"version": 1, "index": {"installRecords": records}}).to_string();
        conn.execute(
            "INSERT INTO config_machine_state VALUES (?1, ?2, 0), ('plugins.bundledDiscovery', '\"compat\"', 0)",
            [INSTALLED_INDEX_KEY, value.as_str()],
        )
        .unwrap();
        dir
    }

    #[test]
    fn records_are_read_from_the_state_database_and_the_legacy_config() {
        let dir = state_dir_with(json!({
            "pinned": {"source": "npm", "spec": "pinned@1.0.0", "integrity": "sha512-a"},
            "floating": {"source": "npm", "spec": "floating"},
        }));
        let legacy = json!({"plugins": {"installs": {"old": {"source": "git", "spec": "git:https://x/old"}}}});
        let f = check_installs(dir.path(), &legacy, &[]);
        let whats: Vec<&str> = f.iter().map(|f| f.what.as_str()).collect();
        assert_eq!(f.len(), 2, "{whats:?}");
        assert!(f.iter().all(|f| f.id == OPENCLAW_PLUGIN_UNPINNED));
        assert!(
            whats[0].contains("\"floating\"") && whats[1].contains("\"old\""),
            "{whats:?}"
        );
        assert!(f[0].fix.contains("openclaw plugins install floating --pin"));
    }

    #[test]
    fn no_database_is_nothing_installed_and_a_broken_one_is_said() {
        let empty = tempfile::tempdir().unwrap();
        assert!(check_installs(empty.path(), &json!({}), &[]).is_empty());
        std::fs::create_dir(empty.path().join("state")).unwrap();
        std::fs::write(
            empty.path().join("state/openclaw.sqlite"),
            "not a database at all, sorry",
        )
        .unwrap();
        let f = check_installs(empty.path(), &json!({}), &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].id, OPENCLAW_INSTALLS_UNREADABLE);
        assert_eq!(f[0].severity, Severity::Warning);
    }

    #[test]
    fn skills_from_outside_clawhub_are_flagged() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir(ws.path().join(".clawhub")).unwrap();
        std::fs::write(
            ws.path().join(".clawhub/lock.json"),
            json!({"version": 1, "skills": {
                "weather": {"version": "1.0.0", "registry": "https://clawhub.ai"},
                "deploy": {"version": "0.0.0", "registry": "https://clawhub.ai",
                           "requestedReference": "skills-sh:someone/repo/deploy",
                           "trustState": "not-scanned-by-clawhub"},
            }})
            .to_string(),
        )
        .unwrap();
        let f = check_installs(ws.path(), &json!({}), &[ws.path().to_path_buf()]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].id, OPENCLAW_SKILL_UNSCANNED);
        assert!(f[0].what.contains("skills-sh:someone/repo/deploy"));
        std::fs::write(ws.path().join(".clawhub/lock.json"), "{").unwrap();
        let f = check_installs(ws.path(), &json!({}), &[ws.path().to_path_buf()]);
        assert_eq!(f[0].id, OPENCLAW_INSTALLS_UNREADABLE);
    }
}
