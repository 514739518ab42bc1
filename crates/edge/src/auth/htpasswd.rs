//! The htpasswd file nginx checks with `auth_basic_user_file`.
//!
//! Edits touch only the line of the user being changed; every other line,
//! comments and lines this code does not understand included, is kept
//! byte for byte. Writes are atomic.

use super::apr1;
use crate::fsutil;
use std::fs;
use std::io;
use std::path::Path;

/// The hash formats seen in htpasswd files, for auditing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashKind {
    /// Apache's `$apr1$` (MD5, 1000 rounds): what `htpasswd -m` writes.
    Apr1,
    /// `$1$`: glibc's MD5 crypt.
    Md5Crypt,
    /// `$5$`: SHA-256 crypt.
    Sha256Crypt,
    /// `$6$`: SHA-512 crypt.
    Sha512Crypt,
    /// `$2y$` and kin: bcrypt.
    Bcrypt,
    /// `$y$`: yescrypt.
    Yescrypt,
    /// `{SSHA}`: salted SHA-1, one round.
    SaltedSha1,
    /// `{SHA}`: unsalted SHA-1.
    Sha1,
    /// `{PLAIN}`: the password itself.
    Plain,
    /// Traditional 13-character DES crypt: only the first 8 characters count.
    DesCrypt,
    /// Anything else: nginx may not read it, and it cannot be judged.
    Unknown,
}

impl HashKind {
    /// Classifies a hash string; never panics, whatever the input.
    pub fn classify(hash: &str) -> Self {
        let h = hash.trim();
        if h.starts_with("$apr1$") {
            HashKind::Apr1
        } else if h.starts_with("$1$") {
            HashKind::Md5Crypt
        } else if h.starts_with("$5$") {
            HashKind::Sha256Crypt
        } else if h.starts_with("$6$") {
            HashKind::Sha512Crypt
        } else if h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") {
            HashKind::Bcrypt
        } else if h.starts_with("$y$") {
            HashKind::Yescrypt
        } else if h.starts_with("{SSHA}") {
            HashKind::SaltedSha1
        } else if h.starts_with("{SHA}") {
            HashKind::Sha1
        } else if h.starts_with("{PLAIN}") {
            HashKind::Plain
        } else if h.len() == 13
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
        {
            HashKind::DesCrypt
        } else {
            HashKind::Unknown
        }
    }

    /// Whether an attacker with the file recovers passwords cheaply.
    pub fn is_weak(self) -> bool {
        matches!(
            self,
            HashKind::Plain | HashKind::Sha1 | HashKind::DesCrypt | HashKind::Unknown
        )
    }

    /// Whether nginx checks it the same way on Linux and macOS (see `apr1`).
    pub fn portable(self) -> bool {
        matches!(
            self,
            HashKind::Apr1 | HashKind::SaltedSha1 | HashKind::Sha1 | HashKind::Plain
        )
    }
}

/// One user line of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The user name.
    pub user: String,
    /// How the password is hashed.
    pub hash_kind: HashKind,
    /// 1-based line number.
    pub line: usize,
}

/// What a read of the file found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Listing {
    /// The user lines, in file order.
    pub entries: Vec<Entry>,
    /// 1-based numbers of lines that are neither comments nor `user:hash`.
    pub malformed_lines: Vec<usize>,
}

impl Listing {
    /// Reads a file's text; never fails: what it cannot read is listed in `malformed_lines`.
    pub fn parse(text: &str) -> Self {
        let mut out = Listing::default();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            match t.split_once(':') {
                Some((user, hash)) if !user.is_empty() && !hash.trim().is_empty() => {
                    out.entries.push(Entry {
                        user: user.to_string(),
                        hash_kind: HashKind::classify(hash),
                        line: i + 1,
                    })
                }
                _ => out.malformed_lines.push(i + 1),
            }
        }
        out
    }
}

/// Why a change to the htpasswd file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// A user name outside the allowed characters or length.
    #[error("user names may use letters, digits and . _ @ - (1–64 characters); got {0:?}")]
    BadUserName(String),
    /// A password shorter than [`MIN_PASSWORD_LEN`].
    #[error("the password is too short: use at least {min} characters")]
    WeakPassword {
        /// The shortest length accepted.
        min: usize,
    },
    /// Removing or changing a user that is not there.
    #[error("no user named {0:?} in the htpasswd file")]
    NoSuchUser(String),
    /// The file cannot be read or written.
    #[error("the htpasswd file {path} cannot be used: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: io::Error,
    },
}

/// The shortest password `auth add-user` accepts. The edge guards a panel
/// with shell access; a short password is the cheapest way in.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Refuses a user name nginx or a shell could misread (see [`HtpasswdError::BadUserName`]).
pub fn validate_user_name(name: &str) -> Result<(), HtpasswdError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(HtpasswdError::BadUserName(name.to_string()))
    }
}

/// Reads the file; a missing file is an empty listing.
pub fn read(path: &Path) -> Result<Listing, HtpasswdError> {
    match fs::read(path) {
        Ok(b) => Ok(Listing::parse(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Listing::default()),
        Err(source) => Err(HtpasswdError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Why the edge cannot be opened to traffic yet, if it cannot.
pub fn auth_problem(path: &Path) -> Option<String> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(format!(
            "the htpasswd file {} does not exist",
            path.display()
        )),
        Err(e) => Some(format!(
            "the htpasswd file {} cannot be read: {e}",
            path.display()
        )),
        Ok(b) => {
            let l = Listing::parse(&String::from_utf8_lossy(&b));
            if l.entries.is_empty() {
                Some(format!("the htpasswd file {} has no users", path.display()))
            } else {
                None
            }
        }
    }
}

/// Adds a user or replaces their password. Returns true if the user existed.
pub fn upsert(path: &Path, user: &str, password: &str, mode: u32) -> Result<bool, HtpasswdError> {
    validate_user_name(user)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(HtpasswdError::WeakPassword {
            min: MIN_PASSWORD_LEN,
        });
    }
    let line = format!("{user}:{}", apr1::hash(password));
    let old = read_text(path)?;
    let mut replaced = false;
    let mut lines: Vec<String> = Vec::new();
    for l in old.lines() {
        if line_user(l) == Some(user) {
            if !replaced {
                lines.push(line.clone());
                replaced = true;
            }
            // A duplicate line for the same user is dropped: nginx would use the first.
        } else {
            lines.push(l.to_string());
        }
    }
    if !replaced {
        lines.push(line);
    }
    write(path, &lines, mode)?;
    Ok(replaced)
}

/// Removes a user.
pub fn remove(path: &Path, user: &str, mode: u32) -> Result<(), HtpasswdError> {
    let old = read_text(path)?;
    let lines: Vec<String> = old
        .lines()
        .filter(|l| line_user(l) != Some(user))
        .map(String::from)
        .collect();
    if lines.len() == old.lines().count() {
        return Err(HtpasswdError::NoSuchUser(user.to_string()));
    }
    write(path, &lines, mode)
}

fn line_user(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with('#') {
        return None;
    }
    t.split_once(':').map(|(u, _)| u)
}

fn read_text(path: &Path) -> Result<String, HtpasswdError> {
    match fs::read(path) {
        Ok(b) => String::from_utf8(b).map_err(|_| HtpasswdError::Io {
            path: path.display().to_string(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                "it is not UTF-8 text; fix or move it before editing",
            ),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(HtpasswdError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn write(path: &Path, lines: &[String], mode: u32) -> Result<(), HtpasswdError> {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    fsutil::write_atomic(path, text.as_bytes(), mode).map_err(|source| HtpasswdError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_never_panics_and_knows_the_formats() {
        assert_eq!(HashKind::classify("$apr1$abc$def"), HashKind::Apr1);
        assert_eq!(
            HashKind::classify("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
            HashKind::Sha1
        );
        assert_eq!(HashKind::classify("{PLAIN}hunter2"), HashKind::Plain);
        assert_eq!(HashKind::classify("abJnggxhB/yWI"), HashKind::DesCrypt);
        assert_eq!(HashKind::classify("$2y$05$xyz"), HashKind::Bcrypt);
        for junk in [
            "",
            "$",
            "$$$$",
            "\u{0}",
            "{",
            "é$apr1$",
            &"x".repeat(10_000),
        ] {
            let _ = HashKind::classify(junk);
        }
        assert!(HashKind::Plain.is_weak() && !HashKind::Apr1.is_weak());
    }

    #[test]
    fn upsert_keeps_other_lines_and_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        fs::write(&p, "# admins\nbob:$apr1$x$y\ngarbage line\n").unwrap();
        assert!(!upsert(&p, "alice", "a-long-enough-pass", 0o640).unwrap());
        assert!(upsert(&p, "bob", "another-long-pass", 0o640).unwrap());
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# admins\nbob:$apr1$"));
        assert!(!text.contains("bob:$apr1$x$y"));
        assert!(text.contains("garbage line\n"));
        let l = Listing::parse(&text);
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.malformed_lines, vec![3]);
    }

    #[test]
    fn rejects_bad_names_and_short_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        for bad in ["", "a:b", "a b", "ünï", "x\ny"] {
            assert!(matches!(
                upsert(&p, bad, "a-long-enough-pass", 0o640),
                Err(HtpasswdError::BadUserName(_))
            ));
        }
        assert!(matches!(
            upsert(&p, "ok", "short", 0o640),
            Err(HtpasswdError::WeakPassword { .. })
        ));
        assert!(!p.exists(), "nothing written on rejection");
    }

    #[test]
    fn remove_and_auth_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("htpasswd");
        assert!(auth_problem(&p).unwrap().contains("does not exist"));
        upsert(&p, "alice", "a-long-enough-pass", 0o640).unwrap();
        assert_eq!(auth_problem(&p), None);
        remove(&p, "alice", 0o640).unwrap();
        assert!(auth_problem(&p).unwrap().contains("no users"));
        assert!(matches!(
            remove(&p, "alice", 0o640),
            Err(HtpasswdError::NoSuchUser(_))
        ));
    }
}
