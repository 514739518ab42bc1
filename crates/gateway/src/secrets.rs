//! Reading API keys by reference, from the most to the least protected store:
//! a 0600 file in the state dir, systemd credentials, the macOS Keychain,
//! and finally the environment (works, but warned about: the threat model
//! wants keys out of env, where every child process and crash dump sees them).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::Env;

/// A secret value. `Debug`/`Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `s`; from here on it shows as `[redacted]` in debug output.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The only way to get at the value: named so it stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

/// Where a secret was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    /// A 0600 file in the state directory (`secrets/<NAME>`).
    File,
    /// A systemd credential (`$CREDENTIALS_DIRECTORY`).
    SystemdCredential,
    /// The macOS Keychain.
    Keychain,
    /// An environment variable (the least protected).
    Environment,
}

impl SecretOrigin {
    /// The name, as status and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::SystemdCredential => "systemd-credential",
            Self::Keychain => "keychain",
            Self::Environment => "environment",
        }
    }
}

/// A resolved secret.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The value.
    pub value: SecretString,
    /// Where it was found.
    pub origin: SecretOrigin,
}

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file is readable by group or others.
    #[error("refusing secrets file {path}: mode {mode:04o} lets group/other read it; run `chmod 600 {path}`")]
    InsecureFile {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file could not be read.
    #[error("cannot read secret {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A name that could escape its directory or the Keychain's namespace.
    #[error("secret name {0:?} is invalid (use letters, digits, '_', '-', '.')")]
    BadName(String),
}

/// Resolves key references such as `GROQ_API_KEY`.
pub struct SecretSource {
    state_dir: PathBuf,
    credentials_dir: Option<PathBuf>,
    env: Env,
    warned: Mutex<HashSet<String>>,
}

impl SecretSource {
    /// A source reading the state directory `state_dir` and `env`
    /// (systemd's `CREDENTIALS_DIRECTORY` among it).
    pub fn new(state_dir: impl Into<PathBuf>, env: &Env) -> Self {
        Self {
            state_dir: state_dir.into(),
            credentials_dir: env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            env: env.clone(),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Look a key reference up; `Ok(None)` if no store has it.
    pub fn resolve(&self, name: &str) -> Result<Option<Secret>, SecretError> {
        validate_name(name)?;
        let file = secret_path(&self.state_dir, name);
        if let Some(v) = read_secret_file(&file, true)? {
            return Ok(Some(Secret {
                value: v,
                origin: SecretOrigin::File,
            }));
        }
        if let Some(dir) = &self.credentials_dir {
            // systemd already restricts credentials to the unit; no mode check.
            if let Some(v) = read_secret_file(&dir.join(name), false)? {
                return Ok(Some(Secret {
                    value: v,
                    origin: SecretOrigin::SystemdCredential,
                }));
            }
        }
        if let Some(v) = keychain_lookup(name) {
            return Ok(Some(Secret {
                value: v,
                origin: SecretOrigin::Keychain,
            }));
        }
        if let Some(v) = self
            .env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            let first = self.warned.lock().unwrap().insert(name.to_string());
            if first {
                tracing::warn!(
                    secret = name,
                    "API key {name} comes from the environment; move it to the secret store with `moltguard secrets set {name}` and unset it"
                );
            }
            return Ok(Some(Secret {
                value: SecretString::new(v),
                origin: SecretOrigin::Environment,
            }));
        }
        Ok(None)
    }
}

fn validate_name(name: &str) -> Result<(), SecretError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_string()))
    }
}

/// `<state_dir>/secrets/<NAME>`.
pub fn secret_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("secrets").join(name)
}

fn read_secret_file(path: &Path, check_mode: bool) -> Result<Option<SecretString>, SecretError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SecretError::Io {
                path: path.into(),
                source,
            })
        }
    };
    #[cfg(unix)]
    if check_mode {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::InsecureFile {
                path: path.into(),
                mode,
            });
        }
    }
    let _ = (meta, check_mode);
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
        path: path.into(),
        source,
    })?;
    let v = text.trim_end_matches(['\n', '\r']).to_string();
    Ok((!v.is_empty()).then(|| SecretString::new(v)))
}

/// Store a secret atomically: temp file created 0600 in the same directory,
/// fsync, rename over the target, fsync the directory. For `moltguard secrets set`.
pub fn write_secret_file(
    state_dir: &Path,
    name: &str,
    value: &str,
) -> Result<PathBuf, SecretError> {
    validate_name(name)?;
    let dir = state_dir.join("secrets");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SecretError::Io { path, source }
    };
    moltguard_fsutil::ensure_dir(&dir, 0o700).map_err(io(&dir))?;
    let target = dir.join(name);
    moltguard_fsutil::write_atomic(&target, value.as_bytes(), 0o600).map_err(io(&target))?;
    Ok(target)
}

/// Removes a stored secret file; a missing one is not an error.
pub fn remove_secret_file(state_dir: &Path, name: &str) -> Result<(), SecretError> {
    validate_name(name)?;
    let path = secret_path(state_dir, name);
    moltguard_fsutil::remove_durable(&path).map_err(|source| SecretError::Io { path, source })
}

/// Names of the secrets stored as files (never their values).
pub fn list_secret_files(state_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state_dir.join("secrets"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// Stores a secret in the macOS Keychain (service "moltguard"), where
/// `SecretSource` looks after the secrets dir and systemd credentials.
#[cfg(all(target_os = "macos", feature = "macos-native"))]
pub fn write_keychain(name: &str, value: &str) -> Result<(), SecretError> {
    validate_name(name)?;
    security_framework::passwords::set_generic_password("moltguard", name, value.as_bytes())
        .map_err(|e| SecretError::Io {
            path: PathBuf::from("keychain"),
            source: std::io::Error::other(e.to_string()),
        })
}

#[cfg(all(target_os = "macos", feature = "macos-native"))]
fn keychain_lookup(name: &str) -> Option<SecretString> {
    // Service "moltguard", account = key reference (what `moltguard secrets set` writes).
    security_framework::passwords::get_generic_password("moltguard", name)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .map(SecretString::new)
}

#[cfg(not(all(target_os = "macos", feature = "macos-native")))]
fn keychain_lookup(_name: &str) -> Option<SecretString> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_beats_env_and_insecure_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let env: Env = [("K1".to_string(), "from-env".to_string())].into();
        let src = SecretSource::new(dir.path(), &env);
        let s = src.resolve("K1").unwrap().unwrap();
        assert_eq!(s.origin, SecretOrigin::Environment);

        let p = write_secret_file(dir.path(), "K1", "from-file\n").unwrap();
        let s = src.resolve("K1").unwrap().unwrap();
        assert_eq!(
            (s.value.expose(), s.origin),
            ("from-file", SecretOrigin::File)
        );

        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = src.resolve("K1").unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("from-file"));
    }

    #[test]
    fn systemd_credentials_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("K2"), "cred").unwrap();
        let env: Env = [(
            "CREDENTIALS_DIRECTORY".to_string(),
            creds.path().display().to_string(),
        )]
        .into();
        let src = SecretSource::new(dir.path(), &env);
        let s = src.resolve("K2").unwrap().unwrap();
        assert_eq!(s.origin, SecretOrigin::SystemdCredential);
        assert!(src.resolve("missing").unwrap().is_none());
        assert!(src.resolve("../etc/passwd").is_err());
        assert_eq!(format!("{:?}", s.value), "SecretString([redacted])");
    }
}
