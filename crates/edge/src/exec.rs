//! Finding the external programs moltguard runs, without trusting PATH as root.
//!
//! A root process that looks up `nginx` through PATH runs whatever a user
//! put first on PATH: a user-writable PATH must not become root. So as root
//! only absolute paths to root-owned files in root-owned, non-writable
//! directories are run.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where nginx is usually installed, in the order to try.
pub const NGINX_CANDIDATES: &[&str] = &[
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/opt/homebrew/bin/nginx",
    "/usr/local/bin/nginx",
    "/usr/bin/nginx",
];

/// Why a program could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Not on the trusted path, nor at a known place.
    #[error("{name} was not found (looked in {looked})")]
    NotFound {
        /// The program.
        name: String,
        /// Where it was looked for.
        looked: String,
    },
    /// Running as root, and the program could be replaced by another user.
    #[error(
        "refusing to run {path} as root: {why}. As root, moltguard runs only absolute paths \
         to root-owned programs that no other user can replace"
    )]
    Untrusted {
        /// The program.
        path: PathBuf,
        /// What makes it replaceable.
        why: String,
    },
}

impl ExecError {
    /// What to do about it, in one line.
    pub fn hint(&self) -> String {
        match self {
            ExecError::NotFound { name, .. } if name == "nginx" => {
                "install nginx (macOS: `brew install nginx`; Debian/Ubuntu: `sudo apt-get install nginx-light`, \
                 or `nginx` where nginx-light is not packaged), \
                 or set its absolute path with --nginx-bin / MOLTGUARD_NGINX / [nginx] binary"
                    .into()
            }
            ExecError::NotFound { .. } => "install it or configure its absolute path".into(),
            ExecError::Untrusted { path, .. } => format!(
                "give the absolute path of a root-owned binary, e.g. `sudo chown root:wheel {}` \
                 and make it writable only by root, or run moltguard as the user that owns it",
                path.display()
            ),
        }
    }
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Resolves a program to run, applying the root rules above.
pub fn resolve(
    name: &str,
    configured: Option<&Path>,
    candidates: &[&str],
) -> Result<PathBuf, ExecError> {
    resolve_as(name, configured, candidates, running_as_root())
}

fn resolve_as(
    name: &str,
    configured: Option<&Path>,
    candidates: &[&str],
    as_root: bool,
) -> Result<PathBuf, ExecError> {
    if let Some(path) = configured {
        if path.is_absolute() {
            if !path.exists() {
                // Said as what it is, not as a failed trust check or a spawn error.
                return Err(ExecError::NotFound {
                    name: name.into(),
                    looked: path.display().to_string(),
                });
            }
            if as_root {
                check_root_trust(path)?;
            }
            return Ok(path.to_path_buf());
        }
        if as_root {
            return Err(ExecError::Untrusted {
                path: path.to_path_buf(),
                why: "it is not an absolute path, and PATH is not searched as root".into(),
            });
        }
        return which::which(path).map_err(|_| ExecError::NotFound {
            name: path.display().to_string(),
            looked: "PATH".into(),
        });
    }
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            if as_root {
                check_root_trust(p)?;
            }
            return Ok(p.to_path_buf());
        }
    }
    if !as_root {
        if let Ok(p) = which::which(name) {
            return Ok(p);
        }
    }
    Err(ExecError::NotFound {
        name: name.into(),
        looked: if as_root {
            candidates.join(", ")
        } else {
            format!("{} and PATH", candidates.join(", "))
        },
    })
}

/// The file and every directory above it must be owned by root and not
/// writable by group or others; otherwise someone else could swap it.
fn check_root_trust(path: &Path) -> Result<(), ExecError> {
    let untrusted = |why: String| ExecError::Untrusted {
        path: path.to_path_buf(),
        why,
    };
    let canonical = path
        .canonicalize()
        .map_err(|e| untrusted(format!("it cannot be resolved ({e})")))?;
    let mut cur = Some(canonical.as_path());
    while let Some(p) = cur {
        let md = std::fs::metadata(p)
            .map_err(|e| untrusted(format!("{} cannot be read ({e})", p.display())))?;
        if md.uid() != 0 {
            return Err(untrusted(format!(
                "{} is owned by uid {}, not root",
                p.display(),
                md.uid()
            )));
        }
        let mode = md.permissions().mode();
        // A sticky, world-writable directory (like /tmp) still lets anyone
        // add files next to ours; treat it as untrusted too.
        if mode & 0o022 != 0 {
            return Err(untrusted(format!(
                "{} is writable by {} (mode {:o})",
                p.display(),
                if mode & 0o002 != 0 {
                    "everyone"
                } else {
                    "its group"
                },
                mode & 0o7777
            )));
        }
        cur = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_refuses_relative_names() {
        let e = resolve_as("nginx", Some(Path::new("nginx")), &[], true).unwrap_err();
        assert!(matches!(e, ExecError::Untrusted { .. }), "{e}");
    }

    #[test]
    fn root_refuses_files_in_writable_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nginx");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = resolve_as("nginx", Some(&p), &[], true).unwrap_err();
        assert!(matches!(e, ExecError::Untrusted { .. }), "{e}");
    }

    #[test]
    fn root_accepts_a_system_binary() {
        // /bin/sh is root-owned in root-owned directories on every supported system.
        resolve_as("sh", Some(Path::new("/bin/sh")), &[], true).unwrap();
    }

    #[test]
    fn a_configured_path_that_does_not_exist_is_not_found() {
        for as_root in [false, true] {
            let e = resolve_as("nginx", Some(Path::new("/nonexistent/nginx")), &[], as_root)
                .unwrap_err();
            assert!(matches!(e, ExecError::NotFound { .. }), "{e}");
            assert!(e.to_string().contains("/nonexistent/nginx"), "{e}");
        }
    }

    #[test]
    fn missing_binary_says_where_it_looked() {
        let e = resolve_as("nginx", None, &["/nonexistent/nginx"], true).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/nginx"));
        assert!(e.hint().contains("apt-get install nginx"));
    }
}
