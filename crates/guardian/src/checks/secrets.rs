//! Finding provider keys and tokens where they can leak: the places the
//! guardian looks (web roots, nginx config, logs, agent configs and
//! workspaces, process environments) and the findings it makes.
//!
//! What a secret looks like is `moltguard-secrets`' ([`scan_text`]), the
//! same table the firewall and the gateway mask with. A secret never leaves
//! it whole: a [`SecretHit`] holds only a redacted form
//! (`gsk_ab…(56 chars)`), and findings are built from hits.

use crate::breaker::ReasonCode;
use crate::nginxconf::Tree;
use crate::{Finding, Severity};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A secret in a file the web server can serve. Why: anyone who can reach
/// the site can download it. Fix: move it out of the web root and revoke it.
pub const SECRET_IN_WEB_ROOT: &str = "SECRET_IN_WEB_ROOT";
/// A secret written in nginx config. Why: config is often world-readable,
/// copied into backups and bug reports, and `nginx -T` prints it. Fix: move
/// it into a root-only file included by nginx, or out of nginx; revoke it.
pub const SECRET_IN_NGINX_CONFIG: &str = "SECRET_IN_NGINX_CONFIG";
/// A secret in a log file (warning: logs are expected to be private, but
/// they are rotated, shipped and shared). Fix: stop logging it; revoke it.
pub const SECRET_IN_LOG: &str = "SECRET_IN_LOG";
/// A secret in the agent's config (warning: expected, it needs its keys;
/// the file's mode is checked separately). Fix: keep the file mode 600.
pub const SECRET_IN_AGENT_CONFIG: &str = "SECRET_IN_AGENT_CONFIG";
/// A secret in a file of the agent's workspace (`~/.openclaw/workspace`:
/// AGENTS.md, memory, files it wrote). Warning: the agent reads these into
/// its prompts, so the key goes to the model provider, and one prompt
/// injection can send it anywhere. Fix: move it out; revoke it.
pub const SECRET_IN_AGENT_WORKSPACE: &str = "SECRET_IN_AGENT_WORKSPACE";
/// A file holding a secret is readable by other users: critical when any
/// local user can read it (mode & 0o004), warning for group only (0o040).
/// Fix: `chmod 600 FILE`.
pub const SECRET_FILE_READABLE_BY_OTHERS: &str = "SECRET_FILE_READABLE_BY_OTHERS";
/// A secret in a running process's environment (warning: visible to root
/// and the same user through /proc, and inherited by every child process).
/// Fix: pass it through a mode-600 file the process reads, if it can.
pub const SECRET_IN_PROCESS_ENV: &str = "SECRET_IN_PROCESS_ENV";
/// A scan stopped early (limits, unreadable directory): what was not read
/// was not checked. Fix: raise the limits or fix permissions.
pub const SECRET_SCAN_INCOMPLETE: &str = "SECRET_SCAN_INCOMPLETE";

pub use moltguard_secrets::{redact, scan_text, SecretHit, SecretKind};

/// Bounds on what a scan reads.
#[derive(Debug, Clone)]
pub struct ScanLimits {
    /// Larger files are skipped (and reported as skipped).
    pub max_file_bytes: u64,
    /// Most files read by one directory scan.
    pub max_files: usize,
    /// Most bytes read by one directory scan.
    pub max_total_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 8 << 20,
            max_files: 20_000,
            max_total_bytes: 256 << 20,
        }
    }
}

/// Why a file was not scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A NUL byte in its first 8 KiB: not text.
    Binary,
    /// Larger than the scan's limit (its size in bytes).
    TooLarge(u64),
    /// Not a regular file (a directory, a socket, a device).
    NotAFile,
    /// It could not be read (why).
    Io(String),
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Binary => f.write_str("binary"),
            Skip::TooLarge(n) => write!(f, "too large ({n} bytes)"),
            Skip::NotAFile => f.write_str("not a regular file"),
            Skip::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

/// Scans one file (symlinks followed: the caller named it). Binary files
/// (a NUL in the first 8 KiB) and files over the size limit are skipped.
pub fn scan_file(path: &Path, limits: &ScanLimits) -> Result<Vec<SecretHit>, Skip> {
    let meta = fs::metadata(path).map_err(|e| Skip::Io(e.to_string()))?;
    if !meta.is_file() {
        return Err(Skip::NotAFile);
    }
    if meta.len() > limits.max_file_bytes {
        return Err(Skip::TooLarge(meta.len()));
    }
    let f = fs::File::open(path).map_err(|e| Skip::Io(e.to_string()))?;
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while being read.
    f.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Skip::Io(e.to_string()))?;
    if buf.len() as u64 > limits.max_file_bytes {
        return Err(Skip::TooLarge(buf.len() as u64));
    }
    if buf.iter().take(8192).any(|&b| b == 0) {
        return Err(Skip::Binary);
    }
    let text = String::from_utf8_lossy(&buf);
    Ok(scan_text(&text, &path.display().to_string()))
}

/// What a directory scan found.
#[derive(Debug, Clone, Default)]
pub struct DirScan {
    /// Hits, by file.
    pub hits: Vec<(PathBuf, Vec<SecretHit>)>,
    /// How many files were read.
    pub files_scanned: usize,
    /// How many bytes were read.
    pub bytes_scanned: u64,
    /// Files not scanned and why (the first 100).
    pub skipped: Vec<(PathBuf, Skip)>,
    /// Set when the scan stopped before the end: what stopped it.
    pub incomplete: Option<String>,
}

/// Directories never descended into: large, and not served.
const SKIP_DIRS: &[&str] = &[".git", "node_modules"];

/// Scans every file under `root` (or `root` itself if it is a file). Symlinks
/// are followed only to files inside `root`; symlinked directories are not
/// followed. Stops at the limits and says so.
pub fn scan_dir(root: &Path, limits: &ScanLimits) -> DirScan {
    let mut out = DirScan::default();
    let canon_root = match fs::canonicalize(root) {
        Ok(r) => r,
        Err(e) => {
            out.incomplete = Some(format!("cannot open {}: {e}", root.display()));
            return out;
        }
    };
    let mut stack = vec![root.to_path_buf()];
    let mut visited = 0usize;
    let max_visits = limits.max_files.saturating_mul(4).max(16);
    while let Some(path) = stack.pop() {
        visited += 1;
        if visited > max_visits {
            out.incomplete = Some(format!(
                "more than {max_visits} entries under {}",
                root.display()
            ));
            break;
        }
        // The root itself is followed if it is a symlink (`/var/www/html -> /srv/site`).
        let meta = if path == root {
            fs::metadata(&path)
        } else {
            fs::symlink_metadata(&path)
        };
        let Ok(lmeta) = meta else {
            continue;
        };
        let ft = lmeta.file_type();
        if ft.is_dir() {
            match fs::read_dir(&path) {
                Ok(rd) => {
                    let mut entries: Vec<PathBuf> = rd
                        .filter_map(Result::ok)
                        .filter(|e| !SKIP_DIRS.iter().any(|s| e.file_name() == *s))
                        .map(|e| e.path())
                        .collect();
                    // Reversed so the pop order is sorted: stable reports.
                    entries.sort_unstable_by(|a, b| b.cmp(a));
                    stack.extend(entries);
                }
                Err(e) => {
                    out.incomplete
                        .get_or_insert_with(|| format!("cannot list {}: {e}", path.display()));
                }
            }
            continue;
        }
        if ft.is_symlink() {
            let inside = fs::canonicalize(&path)
                .ok()
                .filter(|t| t.starts_with(&canon_root) && t.is_file());
            if inside.is_none() {
                if out.skipped.len() < 100 {
                    out.skipped.push((path, Skip::NotAFile));
                }
                continue;
            }
        } else if !ft.is_file() {
            continue;
        }
        if out.files_scanned >= limits.max_files {
            out.incomplete = Some(format!(
                "more than {} files under {}",
                limits.max_files,
                root.display()
            ));
            break;
        }
        if out.bytes_scanned.saturating_add(lmeta.len()) > limits.max_total_bytes {
            out.incomplete = Some(format!(
                "more than {} bytes under {}",
                limits.max_total_bytes,
                root.display()
            ));
            break;
        }
        match scan_file(&path, limits) {
            Ok(hits) => {
                out.files_scanned += 1;
                out.bytes_scanned += lmeta.len();
                if !hits.is_empty() {
                    out.hits.push((path, hits));
                }
            }
            Err(skip) => {
                if out.skipped.len() < 100 {
                    out.skipped.push((path, skip));
                }
            }
        }
    }
    out
}

/// Where secrets were looked for; decides the rule id and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretPlace {
    /// Served to whoever can reach the site: critical.
    WebRoot,
    /// nginx config: critical (often world-readable, printed by `nginx -T`).
    NginxConfig,
    /// Expected to be private: warning, plus the file's mode.
    Log,
    /// The agent's own config: expected to hold keys; warning, plus the mode.
    AgentConfig,
    /// Files the agent reads into its prompts: warning, plus the mode.
    AgentWorkspace,
}

impl SecretPlace {
    fn rule(self) -> (&'static str, Severity, &'static str) {
        match self {
            SecretPlace::WebRoot => (
                SECRET_IN_WEB_ROOT,
                Severity::Critical,
                "move the file out of the web root and revoke the key: assume it was downloaded",
            ),
            SecretPlace::NginxConfig => (
                SECRET_IN_NGINX_CONFIG,
                Severity::Critical,
                "move the secret into a root-only (mode 600) file nginx includes, or out of nginx; revoke it if the config was ever shared",
            ),
            SecretPlace::Log => (
                SECRET_IN_LOG,
                Severity::Warning,
                "stop logging the secret, delete or redact the log, and revoke the key if the log left the machine",
            ),
            SecretPlace::AgentConfig => (
                SECRET_IN_AGENT_CONFIG,
                Severity::Warning,
                "keep the file mode 600 (owner only); prefer the agent's secret store or environment if it has one",
            ),
            SecretPlace::AgentWorkspace => (
                SECRET_IN_AGENT_WORKSPACE,
                Severity::Warning,
                "move the secret out of the workspace (the agent reads it into prompts sent to the model) and revoke it if a session has read it",
            ),
        }
    }
}

/// Findings for one file's hits: one per hit, and one if the file is
/// readable by others (except in the web root, where being served is worse).
pub fn findings_for_file(
    place: SecretPlace,
    path: &Path,
    hits: &[SecretHit],
    mode: Option<u32>,
) -> Vec<Finding> {
    let (id, severity, fix) = place.rule();
    let mut out: Vec<Finding> = hits
        .iter()
        .map(|h| {
            let what = format!(
                "{} ({}) in {}",
                h.kind.describe(),
                h.redacted,
                path.display()
            );
            let f = match severity {
                Severity::Critical => Finding::critical(id, ReasonCode::SecretLeak, what, fix),
                _ => Finding::warning(id, ReasonCode::SecretLeak, what, fix),
            };
            f.at(format!("{}:{}", path.display(), h.line))
        })
        .collect();
    if let (Some(mode), false, Some(first)) = (mode, place == SecretPlace::WebRoot, hits.first()) {
        out.extend(readable_by_others(path, first.kind.describe(), mode));
    }
    out
}

/// `SECRET_FILE_READABLE_BY_OTHERS` for a file holding `what`, if its mode
/// lets the group (warning) or everyone (critical) read it.
pub fn readable_by_others(path: &Path, what: &str, mode: u32) -> Option<Finding> {
    // Readable only counts if the directories on the way let them in: a
    // 644 file inside a 700 directory is read by nobody else.
    let everyone = mode & 0o004 != 0 && ancestors_allow(path, 0o001);
    let group = mode & 0o040 != 0 && ancestors_allow(path, 0o011);
    if !everyone && !group {
        return None;
    }
    let text = format!(
        "{} holds {what} and is readable by {} (mode {:o})",
        path.display(),
        if everyone {
            "every local user"
        } else {
            "its group"
        },
        mode & 0o7777
    );
    let fix = format!("chmod 600 {}", path.display());
    let f = if everyone {
        Finding::critical(
            SECRET_FILE_READABLE_BY_OTHERS,
            ReasonCode::PermissionsUnsafe,
            text,
            fix,
        )
    } else {
        Finding::warning(
            SECRET_FILE_READABLE_BY_OTHERS,
            ReasonCode::PermissionsUnsafe,
            text,
            fix,
        )
    };
    Some(f.at(path.display().to_string()))
}

/// Whether every directory above `path` has one of the search (`x`) bits
/// in `bits` (0o001: others; 0o011: others or the group).
fn ancestors_allow(path: &Path, bits: u32) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .all(|d| std::fs::metadata(d).map_or(true, |m| m.permissions().mode() & bits != 0))
}

fn incomplete(what: String) -> Finding {
    Finding::warning(
        SECRET_SCAN_INCOMPLETE,
        ReasonCode::CheckFailed,
        format!("the secret scan did not read everything: {what}"),
        "fix the permissions, or raise the scan limits",
    )
}

/// Scans `root` (a file or a directory) and reports by `place`. A missing
/// root is nothing to report.
pub fn check_secrets(place: SecretPlace, root: &Path, limits: &ScanLimits) -> Vec<Finding> {
    if fs::symlink_metadata(root).is_err_and(|e| e.kind() == io::ErrorKind::NotFound) {
        return Vec::new();
    }
    let scan = scan_dir(root, limits);
    let mut out = Vec::new();
    for (path, hits) in &scan.hits {
        let mode = fs::metadata(path).ok().map(|m| m.mode());
        out.extend(findings_for_file(place, path, hits, mode));
    }
    if let Some(why) = scan.incomplete {
        out.push(incomplete(why).at(root.display().to_string()));
    }
    out
}

/// Scans every file of a loaded nginx configuration.
pub fn check_nginx_secrets(tree: &Tree, limits: &ScanLimits) -> Vec<Finding> {
    let mut out = Vec::new();
    for path in &tree.files {
        match scan_file(path, limits) {
            Ok(hits) if !hits.is_empty() => {
                let mode = fs::metadata(path).ok().map(|m| m.mode());
                out.extend(findings_for_file(
                    SecretPlace::NginxConfig,
                    path,
                    &hits,
                    mode,
                ));
            }
            Ok(_) => {}
            Err(Skip::Binary) => {}
            Err(skip) => out.push(
                incomplete(format!("{}: {skip}", path.display())).at(path.display().to_string()),
            ),
        }
    }
    out
}

/// Scans the files shown in `nginx -T` output (each section under its own
/// path; the file mode is read from disk when the file is there).
pub fn check_nginx_t_secrets(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for (path, body) in crate::nginxconf::split_nginx_t_output(text) {
        let hits = scan_text(&body, &path.display().to_string());
        if !hits.is_empty() {
            let mode = fs::metadata(&path).ok().map(|m| m.mode());
            out.extend(findings_for_file(
                SecretPlace::NginxConfig,
                &path,
                &hits,
                mode,
            ));
        }
    }
    out
}

/// Why a process environment could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum EnvScanError {
    /// This platform has no way to read another process's environment.
    #[error("reading another process's environment is not supported on {0}: only Linux exposes /proc/<pid>/environ; this check did not run")]
    Unsupported(&'static str),
    /// The environment of the process could not be read.
    #[error("cannot read the environment of pid {pid}: {source}")]
    Io {
        /// The process.
        pid: u32,
        /// What went wrong.
        source: io::Error,
    },
}

/// Scans `/proc/<pid>/environ` for secrets: one `SECRET_IN_PROCESS_ENV`
/// warning per variable holding one. Variable names are shown, values never.
#[cfg(target_os = "linux")]
pub fn scan_process_environ(pid: u32) -> Result<Vec<Finding>, EnvScanError> {
    let base = PathBuf::from(format!("/proc/{pid}"));
    let raw = fs::read(base.join("environ")).map_err(|source| EnvScanError::Io { pid, source })?;
    let comm = fs::read_to_string(base.join("comm"))
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(32)
                .collect::<String>()
        })
        .unwrap_or_default();
    Ok(environ_findings(pid, &comm, &raw))
}

/// Not Linux: an explicit error, never a silent pass.
#[cfg(not(target_os = "linux"))]
pub fn scan_process_environ(_pid: u32) -> Result<Vec<Finding>, EnvScanError> {
    Err(EnvScanError::Unsupported(std::env::consts::OS))
}

/// Findings for a NUL-separated environment block.
pub fn environ_findings(pid: u32, comm: &str, raw: &[u8]) -> Vec<Finding> {
    let mut out = Vec::new();
    for entry in raw.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let name = text.split_once('=').map(|(n, _)| n).unwrap_or("");
        let shown = if !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            name
        } else {
            "<unnamed>"
        };
        let label = format!("pid {pid} ({comm}) env {shown}");
        for h in scan_text(&text, &label) {
            out.push(
                Finding::warning(
                    SECRET_IN_PROCESS_ENV,
                    ReasonCode::SecretLeak,
                    format!("{} ({}) in the environment of pid {pid} ({comm}), variable {shown}", h.kind.describe(), h.redacted),
                    "pass the key through a mode-600 file the program reads, if it supports one; the environment is inherited by every child process",
                )
                .at(label.clone()),
            );
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// One sample per kind, built at run time so no key-shaped literal sits
    /// in the source. Returns (kind, text containing it, the secret itself).
    pub(crate) fn samples() -> Vec<(SecretKind, String, String)> {
        let s = |k, text: String, secret: String| (k, text, secret);
        let body: String = "MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2pQ".repeat(3);
        vec![
            s(
                SecretKind::PrivateKey,
                format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"),
                body.clone(),
            ),
            s(
                SecretKind::AnthropicKey,
                String::new(),
                format!("sk-ant-api03-{}", "Xy9kQ2".repeat(15)),
            ),
            s(
                SecretKind::OpenRouterKey,
                String::new(),
                format!("sk-or-v1-{}", "a1b2c3d4".repeat(8)),
            ),
            s(
                SecretKind::OpenAiProjectKey,
                String::new(),
                format!("sk-proj-{}", "Ab1_Cd2-Ef3".repeat(8)),
            ),
            s(
                SecretKind::OpenAiKey,
                String::new(),
                format!("sk-{}", "Ab1Cd2Ef3Gh4".repeat(4)),
            ),
            s(
                SecretKind::GroqKey,
                String::new(),
                format!("gsk_{}", "Qw3Er4Ty5Ui6".repeat(4)),
            ),
            s(
                SecretKind::AwsAccessKeyId,
                String::new(),
                format!("AKIA{}", "QZ7R2LMX9VB4NT7K"),
            ),
            s(
                SecretKind::AwsSecretKey,
                String::new(),
                "wJa1rXUtnFEMI/K7MDENG+bPxRfiCYz9k2Lm4Qp8".into(),
            ),
            s(
                SecretKind::GitHubToken,
                String::new(),
                format!("ghp_{}", "A1b2C3d4E5f6".repeat(3)),
            ),
            s(
                SecretKind::SlackToken,
                String::new(),
                format!("xoxb-{}", "1234567890-AbCdEfGhIj"),
            ),
            s(
                SecretKind::GoogleApiKey,
                String::new(),
                format!("AIza{}", "Sy3Kq9_Lm2-Xv8Bn4Tz6Wc1Rd5Fg7Hj0Pqz"),
            ),
            s(
                SecretKind::StripeLiveKey,
                String::new(),
                format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc"),
            ),
            s(
                SecretKind::Generic,
                String::new(),
                "q8Zr2LmX9vB4nT7kW1pY5sD3".into(),
            ),
        ]
        .into_iter()
        .map(|(k, text, secret)| {
            let text = if !text.is_empty() {
                text
            } else if k == SecretKind::AwsSecretKey {
                format!("[default]\naws_secret_access_key = {secret}\n")
            } else if k == SecretKind::Generic {
                format!("# config\napi_key = \"{secret}\"\n")
            } else {
                format!("# config\nkey: \"{secret}\"\n")
            };
            (k, text, secret)
        })
        .collect()
    }

    #[test]
    fn every_kind_is_found_on_its_line_and_never_shown_whole() {
        for (kind, text, secret) in samples() {
            let hits = scan_text(&text, "f");
            assert_eq!(hits.len(), 1, "{kind:?}: {hits:?}");
            assert_eq!(hits[0].kind, kind);
            let want_line = if kind == SecretKind::PrivateKey { 1 } else { 2 };
            assert_eq!(hits[0].line, want_line, "{kind:?}");
            let findings: Vec<Finding> = [
                SecretPlace::WebRoot,
                SecretPlace::NginxConfig,
                SecretPlace::Log,
                SecretPlace::AgentConfig,
            ]
            .into_iter()
            .flat_map(|p| findings_for_file(p, Path::new("/x"), &hits, Some(0o644)))
            .collect();
            let env = environ_findings(1, "x", format!("K={secret}\0").as_bytes());
            let shown = format!(
                "{hits:?} {} {findings:?} {} {env:?}",
                serde_json::to_string(&hits).unwrap(),
                serde_json::to_string(&findings).unwrap()
            );
            // Neither the secret nor its last two thirds may appear anywhere.
            let tail: String = secret.chars().skip(secret.chars().count() / 3).collect();
            assert!(!shown.contains(&secret), "{kind:?} leaked: {shown}");
            assert!(!shown.contains(&tail), "{kind:?} leaked its tail: {shown}");
        }
    }

    #[test]
    fn files_dirs_modes_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("www");
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::create_dir_all(root.join("sub")).unwrap();
        let (_, text, _) = samples().remove(5);
        fs::write(root.join("sub/app.js"), &text).unwrap();
        fs::write(root.join(".git/config"), &text).unwrap();
        fs::write(
            root.join("bin.dat"),
            [&b"\0\0"[..], text.as_bytes()].concat(),
        )
        .unwrap();
        fs::write(d.path().join("outside.txt"), &text).unwrap();
        std::os::unix::fs::symlink(d.path().join("outside.txt"), root.join("link.txt")).unwrap();
        let f = check_secrets(SecretPlace::WebRoot, &root, &ScanLimits::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].id, SECRET_IN_WEB_ROOT);
        assert_eq!(
            f[0].location.as_deref(),
            Some(format!("{}:2", root.join("sub/app.js").display()).as_str())
        );

        let log = d.path().join("agent.log");
        fs::write(&log, &text).unwrap();
        fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
        let f = check_secrets(SecretPlace::Log, &log, &ScanLimits::default());
        let ids: Vec<_> = f.iter().map(|f| (f.id, f.severity)).collect();
        assert_eq!(
            ids,
            [
                (SECRET_IN_LOG, Severity::Warning),
                (SECRET_FILE_READABLE_BY_OTHERS, Severity::Critical)
            ]
        );
        fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
        let f = check_secrets(SecretPlace::Log, &log, &ScanLimits::default());
        assert_eq!(f[1].severity, Severity::Warning);
        fs::set_permissions(&log, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            check_secrets(SecretPlace::Log, &log, &ScanLimits::default()).len(),
            1
        );

        fs::write(root.join("sub/z.txt"), "nothing").unwrap();
        let linked = d.path().join("www-link");
        std::os::unix::fs::symlink(&root, &linked).unwrap();
        assert_eq!(
            check_secrets(SecretPlace::WebRoot, &linked, &ScanLimits::default()).len(),
            1
        );
        let tiny = ScanLimits {
            max_files: 1,
            ..ScanLimits::default()
        };
        let f = check_secrets(SecretPlace::WebRoot, &d.path().join("www"), &tiny);
        assert!(f.iter().any(|f| f.id == SECRET_SCAN_INCOMPLETE), "{f:?}");
        assert!(check_secrets(SecretPlace::WebRoot, &d.path().join("none"), &tiny).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_environ_of_self_is_readable() {
        assert!(scan_process_environ(std::process::id()).is_ok());
        assert!(scan_process_environ(u32::MAX).is_err());
    }
}
