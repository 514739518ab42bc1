//! Checks on the htpasswd file nginx asks passwords against.
//!
//! Parsing and hash classification are `auth::htpasswd`'s; this only judges.

use crate::auth::htpasswd::{HashKind, Listing};
use crate::breaker::ReasonCode;
use crate::Finding;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The htpasswd file does not exist. Why: closing the breaker would expose
/// the panel with no password (nginx answers 500, or worse if auth is edited
/// out). Fix: `moltguard auth add-user NAME`.
pub const AUTH_HTPASSWD_MISSING: &str = "AUTH_HTPASSWD_MISSING";

/// The htpasswd file has no user lines. Why and fix: as for a missing file.
pub const AUTH_HTPASSWD_EMPTY: &str = "AUTH_HTPASSWD_EMPTY";

/// The guardian cannot read the file (permissions, not a file, I/O error).
/// Why: it cannot tell whether auth works; ambiguity means deny. Fix: make
/// it readable by the guardian's user (root or the moltguard group).
pub const AUTH_HTPASSWD_UNREADABLE: &str = "AUTH_HTPASSWD_UNREADABLE";

/// The nginx worker (uid/gid given) cannot read the file. Why: every request
/// fails with 500; safe but broken. Fix: `chgrp <nginx group>` and mode 0640.
pub const AUTH_HTPASSWD_NOT_READABLE_BY_NGINX: &str = "AUTH_HTPASSWD_NOT_READABLE_BY_NGINX";

/// Other users can read the file (mode & 0o004). Warning: a local user can
/// already reach the loopback panel port, so reading the hashes adds little
/// for them, and the hashes are salted; critical when a hash is weak
/// (plain, `{SHA}`, DES, unknown), because then reading it is nearly
/// knowing the password. Fix: `chmod 640` and group = nginx's group.
pub const AUTH_HTPASSWD_WORLD_READABLE: &str = "AUTH_HTPASSWD_WORLD_READABLE";

/// Other users (or the group) can write the file: anyone can add themselves
/// a user. Critical when world-writable, warning when group-writable.
/// Fix: `chmod 640`, owned by root.
pub const AUTH_HTPASSWD_WRITABLE_BY_OTHERS: &str = "AUTH_HTPASSWD_WRITABLE_BY_OTHERS";

/// Lines that are neither comments nor `user:hash`. Why: a typo may lock a
/// user out or hide an intended change. Fix: correct or delete those lines.
pub const AUTH_HTPASSWD_MALFORMED: &str = "AUTH_HTPASSWD_MALFORMED";

/// A user's hash is plain text, unsalted SHA-1, DES crypt (8 characters
/// count) or unknown. Fix: `moltguard auth add-user NAME` again (apr1).
pub const AUTH_WEAK_HASH: &str = "AUTH_WEAK_HASH";

/// A user's hash (bcrypt, sha-crypt, yescrypt, md5-crypt) is checked by the
/// system's crypt(): works on Linux, fails on macOS. Fix: re-add the user
/// with moltguard (apr1 works everywhere).
pub const AUTH_HASH_NOT_PORTABLE: &str = "AUTH_HASH_NOT_PORTABLE";

/// The nginx worker's identity, to judge whether it can read the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NginxWorker {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

impl NginxWorker {
    /// The worker's identity from its user name (`nginx.user` in
    /// moltguard.toml, `user` in nginx.conf). Only the primary group is
    /// considered when judging access.
    pub fn from_user_name(name: &str) -> Option<Self> {
        let u = nix::unistd::User::from_name(name).ok()??;
        Some(Self {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        })
    }
}

const FIX_ADD_USER: &str = "run `moltguard auth add-user NAME` to create a user";

/// Checks the file at `path`: existence, permissions, then its content.
pub fn check_htpasswd(path: &Path, worker: Option<NginxWorker>) -> Vec<Finding> {
    let loc = path.display().to_string();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return vec![Finding::critical(
                AUTH_HTPASSWD_MISSING,
                ReasonCode::AuthMissing,
                format!("the htpasswd file {loc} does not exist: nothing would ask for a password"),
                FIX_ADD_USER,
            )
            .at(loc)]
        }
        Err(e) => return vec![unreadable(&loc, &e)],
    };
    if !meta.is_file() {
        return vec![unreadable(
            &loc,
            &io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        )];
    }
    let text = match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return vec![unreadable(&loc, &e)],
    };
    let mut out = check_htpasswd_text(&text, &loc);
    let weak = Listing::parse(&text)
        .entries
        .iter()
        .any(|e| e.hash_kind.is_weak());
    out.extend(mode_findings(&loc, meta.mode(), weak));
    if let Some(w) = worker {
        if !readable_by(meta.mode(), meta.uid(), meta.gid(), w) {
            out.push(
                Finding::warning(
                    AUTH_HTPASSWD_NOT_READABLE_BY_NGINX,
                    ReasonCode::AuthMissing,
                    format!(
                        "nginx (uid {}, gid {}) cannot read {loc} (mode {:o}, owner {}:{}): every request would fail",
                        w.uid,
                        w.gid,
                        meta.mode() & 0o7777,
                        meta.uid(),
                        meta.gid()
                    ),
                    format!("chgrp {} {loc} && chmod 640 {loc}", w.gid),
                )
                .at(loc.clone()),
            );
        }
    }
    out
}

fn unreadable(loc: &str, e: &io::Error) -> Finding {
    Finding::critical(
        AUTH_HTPASSWD_UNREADABLE,
        ReasonCode::CheckFailed,
        format!("the htpasswd file {loc} cannot be read: {e}"),
        "run the guardian as root or give it read access to the file",
    )
    .at(loc.to_string())
}

fn readable_by(mode: u32, uid: u32, gid: u32, w: NginxWorker) -> bool {
    w.uid == 0
        || (w.uid == uid && mode & 0o400 != 0)
        || (w.gid == gid && mode & 0o040 != 0)
        || mode & 0o004 != 0
}

fn mode_findings(loc: &str, mode: u32, weak_hashes: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let m = mode & 0o7777;
    if mode & 0o004 != 0 {
        let what = format!("the htpasswd file {loc} is readable by every local user (mode {m:o})");
        let fix = format!("chmod 640 {loc} (group: nginx's group)");
        out.push(
            if weak_hashes {
                Finding::critical(
                    AUTH_HTPASSWD_WORLD_READABLE,
                    ReasonCode::PermissionsUnsafe,
                    format!("{what}, and it holds weak hashes"),
                    fix,
                )
            } else {
                Finding::warning(
                    AUTH_HTPASSWD_WORLD_READABLE,
                    ReasonCode::PermissionsUnsafe,
                    what,
                    fix,
                )
            }
            .at(loc.to_string()),
        );
    }
    if mode & 0o022 != 0 {
        let what = format!(
            "the htpasswd file {loc} is writable by others (mode {m:o}): they can add a user"
        );
        let fix = format!("chmod 640 {loc} and chown root {loc}");
        out.push(
            if mode & 0o002 != 0 {
                Finding::critical(
                    AUTH_HTPASSWD_WRITABLE_BY_OTHERS,
                    ReasonCode::PermissionsUnsafe,
                    what,
                    fix,
                )
            } else {
                Finding::warning(
                    AUTH_HTPASSWD_WRITABLE_BY_OTHERS,
                    ReasonCode::PermissionsUnsafe,
                    what,
                    fix,
                )
            }
            .at(loc.to_string()),
        );
    }
    out
}

/// Judges the file's content alone. `label` names it in findings. Never
/// panics, whatever the text.
pub fn check_htpasswd_text(text: &str, label: &str) -> Vec<Finding> {
    let listing = Listing::parse(text);
    let mut out = Vec::new();
    if listing.entries.is_empty() {
        out.push(
            Finding::critical(
                AUTH_HTPASSWD_EMPTY,
                ReasonCode::AuthMissing,
                format!("the htpasswd file {label} has no users: nobody can log in, and auth may get switched off to work around it"),
                FIX_ADD_USER,
            )
            .at(label.to_string()),
        );
    }
    if let Some(&first) = listing.malformed_lines.first() {
        let shown: Vec<String> = listing
            .malformed_lines
            .iter()
            .take(20)
            .map(|n| n.to_string())
            .collect();
        let more = listing.malformed_lines.len().saturating_sub(20);
        out.push(
            Finding::warning(
                AUTH_HTPASSWD_MALFORMED,
                ReasonCode::AuthMissing,
                format!(
                    "the htpasswd file {label} has lines that are not `user:hash`: line {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
                "correct or delete those lines",
            )
            .at(format!("{label}:{first}")),
        );
    }
    for e in &listing.entries {
        let user = printable(&e.user);
        if e.hash_kind.is_weak() {
            out.push(
                Finding::warning(
                    AUTH_WEAK_HASH,
                    ReasonCode::AuthMissing,
                    format!(
                        "user {user} has a weak password hash ({})",
                        kind_name(e.hash_kind)
                    ),
                    format!("run `moltguard auth add-user {user}` to set the password again"),
                )
                .at(format!("{label}:{}", e.line)),
            );
        } else if !e.hash_kind.portable() {
            out.push(
                Finding::warning(
                    AUTH_HASH_NOT_PORTABLE,
                    ReasonCode::AuthMissing,
                    format!(
                        "user {user}'s hash ({}) depends on the system's crypt(): it works on Linux but fails on macOS",
                        kind_name(e.hash_kind)
                    ),
                    format!("run `moltguard auth add-user {user}` to store it as apr1, which works everywhere"),
                )
                .at(format!("{label}:{}", e.line)),
            );
        }
    }
    out
}

/// A user name as shown in findings: bounded, no control characters.
fn printable(s: &str) -> String {
    let t: String = s.chars().take(64).filter(|c| !c.is_control()).collect();
    format!("{t:?}")
}

fn kind_name(k: HashKind) -> &'static str {
    match k {
        HashKind::Apr1 => "apr1",
        HashKind::Md5Crypt => "md5-crypt",
        HashKind::Sha256Crypt => "sha256-crypt",
        HashKind::Sha512Crypt => "sha512-crypt",
        HashKind::Bcrypt => "bcrypt",
        HashKind::Yescrypt => "yescrypt",
        HashKind::SaltedSha1 => "{SSHA}",
        HashKind::Sha1 => "{SHA}, unsalted",
        HashKind::Plain => "{PLAIN}, the password itself",
        HashKind::DesCrypt => "DES crypt, only 8 characters count",
        HashKind::Unknown => "unknown format",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Severity;
    use std::os::unix::fs::PermissionsExt;

    fn ids(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.id).collect()
    }

    #[test]
    fn content_rules() {
        assert_eq!(ids(&check_htpasswd_text("", "h")), [AUTH_HTPASSWD_EMPTY]);
        assert_eq!(
            ids(&check_htpasswd_text("# only\n\n", "h")),
            [AUTH_HTPASSWD_EMPTY]
        );
        assert!(check_htpasswd_text("a:$apr1$x$y\nb:{SSHA}abc\n", "h").is_empty());
        let f = check_htpasswd_text("a:$apr1$x$y\njunk\nb:{PLAIN}pw\nc:$2y$05$x\nd:???\n", "h");
        assert_eq!(
            ids(&f),
            [
                AUTH_HTPASSWD_MALFORMED,
                AUTH_WEAK_HASH,
                AUTH_HASH_NOT_PORTABLE,
                AUTH_WEAK_HASH
            ]
        );
        assert_eq!(f[0].location.as_deref(), Some("h:2"));
        assert_eq!(f[1].location.as_deref(), Some("h:3"));
        assert!(f.iter().all(|f| f.severity == Severity::Warning));
        assert!(
            !f.iter().any(|f| f.what.contains("pw")),
            "no password in findings"
        );
    }

    #[test]
    fn file_rules() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("htpasswd");
        assert_eq!(ids(&check_htpasswd(&p, None)), [AUTH_HTPASSWD_MISSING]);
        fs::write(&p, "a:$apr1$x$y\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(check_htpasswd(&p, None).is_empty());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let f = check_htpasswd(&p, None);
        assert_eq!(ids(&f), [AUTH_HTPASSWD_WORLD_READABLE]);
        assert_eq!(f[0].severity, Severity::Warning);
        fs::write(&p, "a:{PLAIN}x\n").unwrap();
        let f = check_htpasswd(&p, None);
        assert_eq!(ids(&f), [AUTH_WEAK_HASH, AUTH_HTPASSWD_WORLD_READABLE]);
        assert_eq!(f[1].severity, Severity::Critical);
        fs::write(&p, "a:$apr1$x$y\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o602)).unwrap();
        let f = check_htpasswd(&p, None);
        assert_eq!(ids(&f), [AUTH_HTPASSWD_WRITABLE_BY_OTHERS]);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        let me = fs::metadata(&p).unwrap();
        let other = NginxWorker {
            uid: me.uid() + 1,
            gid: me.gid() + 1,
        };
        assert_eq!(
            ids(&check_htpasswd(&p, Some(other))),
            [AUTH_HTPASSWD_NOT_READABLE_BY_NGINX]
        );
        let same = NginxWorker {
            uid: me.uid(),
            gid: me.gid(),
        };
        assert!(check_htpasswd(&p, Some(same)).is_empty());
        assert_eq!(
            ids(&check_htpasswd(d.path(), None)),
            [AUTH_HTPASSWD_UNREADABLE]
        );
    }
}
