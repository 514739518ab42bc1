//! Checks on the agent's own gateway config: where it binds, whether it asks
//! for a token, which port to protect, and the secrets the file holds.
//!
//! Looked for under the given home directory, newest name first:
//! `.openclaw/openclaw.json`, `.moltbot/moltbot.json`, legacy
//! `.clawdbot/clawdbot.json`. The files are JSON5-ish (comments, trailing
//! commas, bare keys, single quotes); [`json5_to_json`] handles those.

use super::net::{is_loopback_ip, split_host_port, Host};
use super::secrets::{findings_for_file, readable_by_others, scan_text, SecretPlace};
use crate::breaker::ReasonCode;
use crate::Finding;
use serde_json::Value;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The agent's gateway binds a non-loopback address (`lan`, `0.0.0.0`, `::`,
/// a LAN/public IP). Why: its control panel (shell access) is on the network
/// without the breaker. Fix: `gateway.bind: "loopback"`; reach it through
/// moltguard's edge.
pub const AGENT_BIND_PUBLIC: &str = "AGENT_BIND_PUBLIC";

/// The bind mode may or may not be loopback (`tailnet`, `auto`, `custom`,
/// an unknown value or host name). Warning: check with the live exposure
/// scan. Fix: `gateway.bind: "loopback"`.
pub const AGENT_BIND_UNCERTAIN: &str = "AGENT_BIND_UNCERTAIN";

/// The gateway asks for no token or password (`gateway.auth.mode: "none"`,
/// or no token/password set). Critical: even on loopback every local user
/// and process (and a web page, by DNS rebinding) can drive the agent.
/// Fix: set `gateway.auth.mode: "token"` and a long random token.
pub const AGENT_AUTH_MISSING: &str = "AGENT_AUTH_MISSING";

/// The config cannot be parsed. Warning, not critical: the agent cannot
/// start from a config it cannot read either, and the live exposure scan
/// sees what is actually bound; a critical here would let a comment style
/// this reader does not know open the breaker. Fix: fix the JSON.
pub const AGENT_CONFIG_UNPARSEABLE: &str = "AGENT_CONFIG_UNPARSEABLE";

/// The agent's default control port.
pub const DEFAULT_AGENT_PORT: u16 = 18789;

/// Config files looked for, relative to the home directory.
pub const AGENT_CONFIG_PATHS: &[&str] = &[
    ".openclaw/openclaw.json",
    ".moltbot/moltbot.json",
    ".clawdbot/clawdbot.json",
];

/// What one agent config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The config file.
    pub path: PathBuf,
    /// `gateway.port`, or the default.
    pub port: u16,
    /// `gateway.bind` as written, if set.
    pub bind: Option<String>,
    /// Whether `gateway.auth` holds a token or password.
    pub has_credential: bool,
}

/// Everything [`check_agent`] learned.
#[derive(Debug, Clone, Default)]
pub struct AgentReport {
    /// The configs found and parsed.
    pub configs: Vec<AgentConfig>,
    /// What is wrong with them.
    pub findings: Vec<Finding>,
}

impl AgentReport {
    /// Ports the exposure scan must protect: every config's, or the default
    /// when no config was readable.
    pub fn control_ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = self.configs.iter().map(|c| c.port).collect();
        if p.is_empty() {
            p.push(DEFAULT_AGENT_PORT);
        }
        p.sort_unstable();
        p.dedup();
        p
    }
}

/// Checks every agent config found under `home`; `behind_edge`: moltguard's
/// edge serves this agent's panel.
pub fn check_agent(home: &Path, behind_edge: bool) -> AgentReport {
    let mut r = AgentReport::default();
    for rel in AGENT_CONFIG_PATHS {
        let path = home.join(rel);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                r.findings.push(
                    Finding::warning(
                        AGENT_CONFIG_UNPARSEABLE,
                        ReasonCode::CheckFailed,
                        format!("the agent config {} cannot be read: {e}", path.display()),
                        "run the guardian as the agent's user or root",
                    )
                    .at(path.display().to_string()),
                );
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let mode = fs::metadata(&path).ok().map(|m| m.mode());
        let hits = scan_text(&text, &path.display().to_string());
        r.findings.extend(findings_for_file(
            SecretPlace::AgentConfig,
            &path,
            &hits,
            mode,
        ));
        let (parsed, findings) = parse_and_check(&text, &path, behind_edge);
        r.findings.extend(findings);
        let (cfg, doc) = parsed.unzip();
        if let Some(dir) = path.parent() {
            r.findings.extend(super::openclaw::check_state_dir(dir));
        }
        // The gateway's own token is a secret even when too short to look like one.
        if let (true, Some(mode), Some(c)) = (hits.is_empty(), mode, &cfg) {
            if c.has_credential {
                r.findings.extend(readable_by_others(
                    &path,
                    "the gateway token or password",
                    mode,
                ));
            }
        }
        r.configs.extend(cfg);
        r.findings.extend(check_backups(&path));
        if let (Some(dir), Some(v)) = (path.parent(), &doc) {
            r.findings.extend(check_agent_files(home, dir, v));
        }
    }
    r
}

/// A config as JSON, or as the JSON5 OpenClaw accepts.
fn parse_config(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(text).or_else(|_| serde_json::from_str(&json5_to_json(text)))
}

/// Smaller limits than a web root's: the guardian reads these every scan.
const AGENT_FILES_LIMITS: super::ScanLimits = super::ScanLimits {
    max_file_bytes: 4 << 20,
    max_files: 5_000,
    max_total_bytes: 64 << 20,
};

/// OpenClaw's rolling logs when `logging.file` is not set.
const OPENCLAW_LOG_DIR: &str = "/tmp/openclaw";
/// The newest rolling logs read (one a day).
const MAX_LOGS: usize = 7;

/// The files the agent keeps beside its config: its workspaces (secrets
/// there reach the model's prompts), its logs, and where its plugins and
/// skills came from.
fn check_agent_files(home: &Path, state_dir: &Path, v: &Value) -> Vec<Finding> {
    use super::secrets::check_secrets;
    let workspaces = workspaces(home, state_dir, v);
    let mut out = Vec::new();
    for ws in &workspaces {
        out.extend(check_secrets(
            SecretPlace::AgentWorkspace,
            ws,
            &AGENT_FILES_LIMITS,
        ));
    }
    let owner = fs::metadata(home).map(|m| m.uid()).ok();
    for log in agent_logs(home, v, Path::new(OPENCLAW_LOG_DIR), owner) {
        out.extend(check_secrets(SecretPlace::Log, &log, &AGENT_FILES_LIMITS));
    }
    out.extend(super::openclaw_installs::check_installs(
        state_dir,
        v,
        &workspaces,
    ));
    out
}

/// `~/x` and relative paths as OpenClaw resolves them (from the home).
fn user_path(home: &Path, p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if p == "~" => home.to_path_buf(),
        None => home.join(p),
    }
}

/// `agents.defaults.workspace`, each `agents.list[].workspace`, or the
/// default `<state dir>/workspace`; only those that exist.
fn workspaces(home: &Path, state_dir: &Path, v: &Value) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let default = v
        .pointer("/agents/defaults/workspace")
        .and_then(Value::as_str)
        .map(|p| user_path(home, p))
        .unwrap_or_else(|| state_dir.join("workspace"));
    out.push(default);
    if let Some(list) = v.pointer("/agents/list").and_then(Value::as_array) {
        out.extend(
            list.iter()
                .filter_map(|a| a.get("workspace").and_then(Value::as_str))
                .map(|p| user_path(home, p)),
        );
    }
    out.sort();
    out.dedup();
    out.retain(|p| p.is_dir());
    out
}

/// `logging.file`, or the newest `openclaw*.log` in `log_dir` owned by
/// `owner` (the directory is shared by every user of the machine).
fn agent_logs(home: &Path, v: &Value, log_dir: &Path, owner: Option<u32>) -> Vec<PathBuf> {
    if let Some(file) = v.pointer("/logging/file").and_then(Value::as_str) {
        return vec![user_path(home, file)];
    }
    let Ok(entries) = fs::read_dir(log_dir) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("openclaw") && name.ends_with(".log")
        })
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && owner.is_none_or(|o| m.uid() == o))
        })
        .map(|e| e.path())
        .collect();
    // Dated names: newest last.
    logs.sort();
    logs.into_iter().rev().take(MAX_LOGS).collect()
}

/// Copies the agent keeps of its config (`openclaw.json.bak`,
/// `openclaw.json.bak.1`, `openclaw.json.last-good`, …) hold the same keys.
fn check_backups(config: &Path) -> Vec<Finding> {
    let (Some(dir), Some(name)) = (config.parent(), config.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut copies: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .and_then(|n| n.strip_prefix(&*name).map(str::to_string))
                .is_some_and(|rest| rest.starts_with(".bak") || rest == ".last-good")
        })
        .collect();
    copies.sort();
    for copy in copies.into_iter().take(32) {
        let Ok((bytes, md)) = crate::fsutil::read_regular(&copy) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let hits = scan_text(&text, &copy.display().to_string());
        out.extend(findings_for_file(
            SecretPlace::AgentConfig,
            &copy,
            &hits,
            Some(md.mode()),
        ));
    }
    out
}

/// How a bind value reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bind {
    Loopback,
    Public,
    Uncertain,
}

fn classify_bind(v: &str) -> Bind {
    let t = v.trim().to_ascii_lowercase();
    match t.as_str() {
        "loopback" | "localhost" | "local" => return Bind::Loopback,
        "lan" | "all" | "any" | "public" | "*" | "0.0.0.0" | "::" | "[::]" => return Bind::Public,
        "tailnet" | "auto" | "custom" | "" => return Bind::Uncertain,
        _ => {}
    }
    match split_host_port(&t, None).0 {
        Host::Ip(ip) if is_loopback_ip(&ip) => Bind::Loopback,
        Host::Ip(_) | Host::Any => Bind::Public,
        h if h.is_loopback() => Bind::Loopback,
        _ => Bind::Uncertain,
    }
}

/// Judges one config's text (`path` only names it). Returns the config, if
/// it parsed, and the findings.
pub fn check_agent_text(
    text: &str,
    path: &Path,
    behind_edge: bool,
) -> (Option<AgentConfig>, Vec<Finding>) {
    let (parsed, findings) = parse_and_check(text, path, behind_edge);
    (parsed.map(|(c, _)| c), findings)
}

/// [`check_agent_text`], keeping the parsed document for the checks of the
/// files around the config (parsed once per scan).
fn parse_and_check(
    text: &str,
    path: &Path,
    behind_edge: bool,
) -> (Option<(AgentConfig, Value)>, Vec<Finding>) {
    let loc = path.display().to_string();
    let mut out = Vec::new();
    let v: Value = match parse_config(text) {
        Ok(v) => v,
        Err(e) => {
            out.push(
                Finding::warning(
                    AGENT_CONFIG_UNPARSEABLE,
                    ReasonCode::CheckFailed,
                    format!("the agent config {loc} is not valid JSON: {e}"),
                    "fix the syntax at the reported line and column",
                )
                .at(format!("{loc}:{}", e.line())),
            );
            return (None, out);
        }
    };
    let gw = v.get("gateway");
    let port = match gw.and_then(|g| g.get("port")) {
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|&p| p != 0)
    .unwrap_or(DEFAULT_AGENT_PORT);
    let bind_raw = gw.and_then(|g| g.get("bind")).and_then(Value::as_str);
    let custom_host = gw
        .and_then(|g| g.get("customBindHost").or_else(|| g.get("host")))
        .and_then(Value::as_str);
    let bind = match bind_raw {
        None => Bind::Loopback, // the agents' default is loopback
        Some(b) if b.eq_ignore_ascii_case("custom") => {
            custom_host.map(classify_bind).unwrap_or(Bind::Uncertain)
        }
        Some(b) => classify_bind(b),
    };
    let shown = bind_raw
        .map(|b| b.chars().take(64).collect::<String>())
        .unwrap_or_default();
    match bind {
        Bind::Public => out.push(
            Finding::critical(
                AGENT_BIND_PUBLIC,
                ReasonCode::ExposurePublicBind,
                format!("the agent gateway binds {shown:?} (port {port}): its control panel is on the network, outside the breaker"),
                format!("set \"gateway\": {{ \"bind\": \"loopback\" }} in {loc} and restart the agent"),
            )
            .at(loc.clone()),
        ),
        Bind::Uncertain => out.push(
            Finding::warning(
                AGENT_BIND_UNCERTAIN,
                ReasonCode::ExposurePublicBind,
                format!("the agent gateway binds {shown:?} (port {port}), which may not be loopback"),
                format!("set \"gateway\": {{ \"bind\": \"loopback\" }} in {loc}"),
            )
            .at(loc.clone()),
        ),
        Bind::Loopback => {}
    }

    let auth = gw.and_then(|g| g.get("auth"));
    let field = |k: &str| {
        auth.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    let mode = auth
        .and_then(|a| a.get("mode"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    let missing = match mode.as_deref() {
        Some("none") | Some("off") | Some("disabled") => Some("gateway.auth.mode is \"none\""),
        Some("token") if !field("token") => {
            Some("gateway.auth.mode is \"token\" but no token is set")
        }
        Some("password") if !field("password") => {
            Some("gateway.auth.mode is \"password\" but no password is set")
        }
        None if !field("token") && !field("password") => {
            Some("no gateway.auth token or password is set")
        }
        _ => None,
    };
    if let Some(why) = missing {
        let what = format!("the agent gateway (port {port}) asks for no credentials: {why}");
        let fix = format!(
            "set \"gateway\": {{ \"auth\": {{ \"mode\": \"token\", \"token\": \"<long random>\" }} }} in {loc} (or the agent's token environment variable)"
        );
        // Critical on loopback too: every local process and every web page
        // the user opens (DNS rebinding) can reach a loopback port, and
        // moltguard's edge may forward to it.
        out.push(
            Finding::critical(AGENT_AUTH_MISSING, ReasonCode::AuthMissing, what, fix)
                .at(loc.clone()),
        );
    }
    out.extend(super::openclaw::check_config(
        &v,
        &loc,
        super::openclaw::Context {
            behind_edge,
            public_bind: bind == Bind::Public,
        },
    ));
    (
        Some((
            AgentConfig {
                path: path.to_path_buf(),
                port,
                bind: bind_raw.map(str::to_string),
                has_credential: field("token") || field("password"),
            },
            v,
        )),
        out,
    )
}

/// Rewrites the JSON5 features agent configs use into JSON: `//` and `/* */`
/// comments, trailing commas, bare keys, single-quoted strings. Linear; on
/// input it does not understand the result is simply not valid JSON.
pub fn json5_to_json(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut o = String::with_capacity(s.len());
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        match ch {
            '"' => {
                o.push('"');
                i += 1;
                while i < c.len() {
                    o.push(c[i]);
                    if c[i] == '\\' && i + 1 < c.len() {
                        o.push(c[i + 1]);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if c[i - 1] == '"' {
                        break;
                    }
                }
            }
            '\'' => {
                o.push('"');
                i += 1;
                while i < c.len() && c[i] != '\'' {
                    match c[i] {
                        '\\' if i + 1 < c.len() && c[i + 1] == '\'' => {
                            o.push('\'');
                            i += 2;
                            continue;
                        }
                        '\\' if i + 1 < c.len() => {
                            o.push('\\');
                            o.push(c[i + 1]);
                            i += 2;
                            continue;
                        }
                        '"' => o.push_str("\\\""),
                        x => o.push(x),
                    }
                    i += 1;
                }
                o.push('"');
                i += 1;
            }
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                i += 2;
                while i < c.len() && !(c[i] == '*' && c.get(i + 1) == Some(&'/')) {
                    if c[i] == '\n' {
                        o.push('\n'); // keep line numbers
                    }
                    i += 1;
                }
                i += 2;
            }
            '}' | ']' => {
                let trimmed = o.trim_end().len();
                if o[..trimmed].ends_with(',') {
                    let tail = o[trimmed..].to_string();
                    o.truncate(trimmed - 1);
                    o.push_str(&tail);
                }
                o.push(ch);
                i += 1;
            }
            x if x.is_alphabetic() || x == '_' || x == '$' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_' || c[i] == '$') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                if c.get(j) == Some(&':') {
                    o.push('"');
                    o.push_str(&word);
                    o.push('"');
                } else {
                    o.push_str(&word);
                }
            }
            x => {
                o.push(x);
                i += 1;
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use std::os::unix::fs::PermissionsExt;

    fn run(text: &str) -> (Option<AgentConfig>, Vec<(&'static str, Severity)>) {
        let (c, f) = check_agent_text(text, Path::new("/h/.openclaw/openclaw.json"), false);
        (c, f.iter().map(|f| (f.id, f.severity)).collect())
    }

    const TOKEN: &str = r#""auth": {"mode": "token", "token": "t"}"#;

    #[test]
    fn bind_values() {
        for b in ["loopback", "127.0.0.1", "::1", "localhost"] {
            let (c, f) = run(&format!(r#"{{"gateway": {{"bind": "{b}", {TOKEN}}}}}"#));
            assert!(f.is_empty(), "{b}: {f:?}");
            assert_eq!(c.unwrap().port, DEFAULT_AGENT_PORT);
        }
        // Beyond loopback, the Control UI also needs its allowed origins.
        let public = [
            (AGENT_BIND_PUBLIC, Severity::Critical),
            ("OPENCLAW_ALLOWED_ORIGINS", Severity::Critical),
        ];
        for b in ["lan", "0.0.0.0", "::", "192.168.1.4", "203.0.113.9"] {
            let (_, f) = run(&format!(r#"{{"gateway": {{"bind": "{b}", {TOKEN}}}}}"#));
            assert_eq!(f, public, "{b}");
        }
        let (_, f) = run(&format!(r#"{{"gateway": {{"bind": "tailnet", {TOKEN}}}}}"#));
        assert_eq!(f, [(AGENT_BIND_UNCERTAIN, Severity::Warning)]);
        let (_, f) = run(&format!(
            r#"{{"gateway": {{"bind": "custom", "customBindHost": "0.0.0.0", {TOKEN}}}}}"#
        ));
        assert_eq!(f, public);
    }

    #[test]
    fn auth_and_port() {
        let (c, f) = run(r#"{"gateway": {"port": 19001, "auth": {"mode": "none"}}}"#);
        assert_eq!(c.unwrap().port, 19001);
        // Critical on loopback too: every local process reaches it.
        assert_eq!(f, [(AGENT_AUTH_MISSING, Severity::Critical)]);
        let (_, f) = run(r#"{"gateway": {"bind": "lan"}}"#);
        assert_eq!(
            f,
            [
                (AGENT_BIND_PUBLIC, Severity::Critical),
                (AGENT_AUTH_MISSING, Severity::Critical),
                ("OPENCLAW_ALLOWED_ORIGINS", Severity::Critical),
            ]
        );
        let (_, f) = run(r#"{"gateway": {"auth": {"mode": "password", "password": ""}}}"#);
        assert_eq!(f, [(AGENT_AUTH_MISSING, Severity::Critical)]);
        let (_, f) = run(r#"{"gateway": {"auth": {"password": "p"}}}"#);
        assert!(f.is_empty());
        let home = tempfile::tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let p = home.path().join(".clawdbot/clawdbot.json");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::set_permissions(p.parent().unwrap(), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(&p, r#"{"gateway": {"auth": {"token": "short"}}}"#).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let r = check_agent(home.path(), false);
        assert_eq!(r.findings.len(), 1);
        assert_eq!(
            (r.findings[0].id, r.findings[0].severity),
            ("SECRET_FILE_READABLE_BY_OTHERS", Severity::Warning)
        );
    }

    #[test]
    fn json5_and_parse_errors() {
        let (c, f) = run("// agent\n{\n  gateway: { port: 18800, bind: 'loopback', /* x */ auth: { mode: 'token', token: 'a\"b', }, },\n}\n");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(c.unwrap().port, 18800);
        let (c, f) = run("{ gateway: ");
        assert!(c.is_none());
        assert_eq!(f, [(AGENT_CONFIG_UNPARSEABLE, Severity::Warning)]);
    }

    #[test]
    fn files_under_home() {
        let home = tempfile::tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let r = check_agent(home.path(), false);
        assert!(r.findings.is_empty());
        assert_eq!(r.control_ports(), [DEFAULT_AGENT_PORT]);
        let dir = home.path().join(".openclaw");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let p = dir.join("openclaw.json");
        let key = format!("gsk_{}", "Qw3Er4Ty5Ui6".repeat(4));
        fs::write(&p, format!("{{\"gateway\": {{\"port\": 18790, \"bind\": \"loopback\", {TOKEN}}},\n \"groq\": \"{key}\"}}")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let r = check_agent(home.path(), false);
        let ids: Vec<_> = r
            .findings
            .iter()
            .map(|f| (f.id, f.location.clone().unwrap_or_default()))
            .collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert_eq!(
            ids[0],
            ("SECRET_IN_AGENT_CONFIG", format!("{}:2", p.display()))
        );
        assert_eq!(ids[1].0, "SECRET_FILE_READABLE_BY_OTHERS");
        assert_eq!(ids[2].0, "OPENCLAW_STATE_DIR_PERMS");
        assert_eq!(r.control_ports(), [18790]);
        // Its backups hold the same keys.
        fs::write(dir.join("openclaw.json.bak.2"), fs::read(&p).unwrap()).unwrap();
        fs::set_permissions(
            dir.join("openclaw.json.bak.2"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let r = check_agent(home.path(), false);
        assert!(
            r.findings.iter().any(|f| f.id == "SECRET_IN_AGENT_CONFIG"
                && f.location
                    .as_deref()
                    .is_some_and(|l| l.contains("openclaw.json.bak.2"))),
            "{:?}",
            r.findings
        );
        fs::remove_file(dir.join("openclaw.json.bak.2")).unwrap();
        // A 644 file inside a 700 directory is read by nobody else.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let r = check_agent(home.path(), false);
        let ids: Vec<_> = r.findings.iter().map(|f| f.id).collect();
        assert_eq!(ids, ["SECRET_IN_AGENT_CONFIG"]);
        assert!(!format!("{:?}", r.findings).contains(&key));
    }

    #[test]
    fn the_workspace_and_the_logs_are_scanned_too() {
        let home = tempfile::tempdir().unwrap();
        // Nobody else reads in: only the secrets are the story here.
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let dir = home.path().join(".openclaw");
        fs::create_dir_all(dir.join("workspace/memory")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let key = format!("sk-or-v1-{}", "a1b2c3d4".repeat(8));
        fs::write(
            dir.join("workspace/memory/2026-12-01.md"),
            format!("notes\nthe OpenRouter key is {key}\n"),
        )
        .unwrap();
        let custom = home.path().join("elsewhere");
        fs::create_dir(&custom).unwrap();
        fs::write(custom.join("AGENTS.md"), format!("use {key}")).unwrap();
        let log = home.path().join("oc.log");
        fs::write(&log, format!("{{\"msg\": \"calling with {key}\"}}\n")).unwrap();
        fs::write(
            dir.join("openclaw.json"),
            format!(
                r#"{{gateway: {{ {TOKEN} }}, agents: {{list: [{{id: "b", workspace: "~/elsewhere"}}]}}, logging: {{file: "~/oc.log"}}}}"#
            ),
        )
        .unwrap();
        let r = check_agent(home.path(), false);
        let got: Vec<(&str, String)> = r
            .findings
            .iter()
            .map(|f| (f.id, f.location.clone().unwrap_or_default()))
            .collect();
        let at = |p: PathBuf, line| format!("{}:{line}", p.display());
        assert_eq!(
            got,
            [
                (
                    "SECRET_IN_AGENT_WORKSPACE",
                    at(dir.join("workspace/memory/2026-12-01.md"), 2)
                ),
                ("SECRET_IN_AGENT_WORKSPACE", at(custom.join("AGENTS.md"), 1)),
                ("SECRET_IN_LOG", at(log, 1)),
            ]
        );
        assert!(!format!("{:?}", r.findings).contains(&key));
    }

    #[test]
    fn rolling_logs_are_the_owners_newest() {
        let d = tempfile::tempdir().unwrap();
        for day in 1..=9 {
            fs::write(d.path().join(format!("openclaw-2026-12-0{day}.log")), "x").unwrap();
        }
        fs::write(d.path().join("other.log"), "x").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let logs = agent_logs(d.path(), &serde_json::json!({}), d.path(), Some(me));
        let names: Vec<String> = logs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), MAX_LOGS);
        assert_eq!(names[0], "openclaw-2026-12-09.log");
        assert!(!names.contains(&"openclaw-2026-12-01.log".to_string()));
        let theirs = agent_logs(d.path(), &serde_json::json!({}), d.path(), Some(me + 1));
        assert!(theirs.is_empty(), "another user's logs are theirs");
    }
}
