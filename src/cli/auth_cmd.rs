//! `moltguard auth add-user|remove-user|list`.

use super::output::{emit, read_secret, CliError, Exit};
use super::Ctx;
use crate::auth::htpasswd::{self, HtpasswdError};
use crate::fsutil::ExclusiveLock;
use crate::nginx::control::{self, Nginx};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum AuthCmd {
    /// Add a user, or set a new password for an existing one.
    AddUser {
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    RemoveUser { name: String },
    /// List users and how their passwords are hashed.
    List,
}

pub(super) fn run(ctx: &Ctx, cmd: AuthCmd) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let path = cfg.layout.htpasswd.clone();
    let run_as = Nginx::from_config(&cfg).ok().and_then(|n| n.run_as());
    match cmd {
        AuthCmd::AddUser {
            name,
            password_stdin,
        } => {
            htpasswd::validate_user_name(&name).map_err(map_err)?;
            let password = read_secret(password_stdin, "password-stdin", "New password: ", true)?;
            let _lock = lock(&cfg)?;
            let existed = htpasswd::upsert(&path, &name, &password, 0o640).map_err(map_err)?;
            control::share_with_nginx(&path, run_as, 0o640).map_err(|e| {
                CliError::error(
                    format!("cannot set permissions on {}: {e}", path.display()),
                    "",
                )
            })?;
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "user": name, "updated": existed, "htpasswd": path}),
                || {
                    println!(
                    "{} {name:?} in {} (APR1-MD5, which nginx checks the same way on Linux and macOS)",
                    if existed { "updated the password of" } else { "added" },
                    path.display()
                );
                },
            );
        }
        AuthCmd::RemoveUser { name } => {
            let _lock = lock(&cfg)?;
            htpasswd::remove(&path, &name, 0o640).map_err(map_err)?;
            let left = htpasswd::read(&path).map_err(map_err)?.entries.len();
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "user": name, "users_left": left}),
                || {
                    println!("removed {name:?}");
                    if left == 0 {
                        println!("no users are left: nginx now refuses every request, and `breaker close` will refuse until you add one");
                    }
                },
            );
        }
        AuthCmd::List => {
            let listing = htpasswd::read(&path).map_err(map_err)?;
            emit(
                ctx.json,
                serde_json::to_value(&listing).unwrap_or_default(),
                || {
                    if listing.entries.is_empty() {
                        println!(
                            "no users in {} — add one with `moltguard auth add-user NAME`",
                            path.display()
                        );
                    }
                    for e in &listing.entries {
                        let warn = if e.hash_kind.is_weak() {
                            "  (WEAK: replace with `auth add-user`)"
                        } else {
                            ""
                        };
                        println!("{:<24} {:?}{warn}", e.user, e.hash_kind);
                    }
                    for n in &listing.malformed_lines {
                        println!("warning: line {n} of {} is not `user:hash`", path.display());
                    }
                },
            );
        }
    }
    Ok(Exit::Ok)
}

fn lock(cfg: &crate::config::Config) -> Result<ExclusiveLock, CliError> {
    crate::fsutil::ensure_dir(&cfg.layout.state_dir, 0o755)
        .and_then(|_| ExclusiveLock::acquire(&cfg.layout.lock_file()))
        .map_err(|e| {
            CliError::error(
                format!("cannot lock {}: {e}", cfg.layout.lock_file().display()),
                "run with the permissions of the setup's owner (sudo for system-wide)",
            )
        })
}

fn map_err(e: HtpasswdError) -> CliError {
    match e {
        HtpasswdError::BadUserName(_) | HtpasswdError::WeakPassword { .. } => {
            CliError::usage(e.to_string(), "")
        }
        HtpasswdError::NoSuchUser(_) => {
            CliError::not_found(e.to_string(), "see `moltguard auth list`")
        }
        HtpasswdError::Io { .. } => {
            CliError::error(e.to_string(), "check the file's owner and permissions")
        }
    }
}
