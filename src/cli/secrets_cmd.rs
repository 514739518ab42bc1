//! `moltguard secrets set|remove|list`: provider keys out of the environment.
//!
//! On macOS (built with `macos-native`) keys go to the Keychain; elsewhere to
//! a 0600 file in the state dir's `secrets/`, where moltgate reads them. The
//! value is never printed, logged, or accepted as a command-line argument
//! (arguments are visible to every user in `ps`).

use super::output::{emit, read_secret, CliError, Exit};
use super::Ctx;
use crate::gateway::secrets;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(super) enum SecretsCmd {
    /// Store a key, e.g. `moltguard secrets set GROQ_API_KEY` (prompts, or --value-stdin).
    Set {
        name: String,
        /// Read the value from the first line of standard input.
        #[arg(long)]
        value_stdin: bool,
    },
    /// Delete a stored key.
    Remove { name: String },
    /// List stored key names (never values).
    List,
}

pub(super) fn run(ctx: &Ctx, cmd: SecretsCmd) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let dir = &cfg.layout.state_dir;
    let err = |e: secrets::SecretError| {
        CliError::usage(
            e.to_string(),
            "names use letters, digits, _ - . (e.g. GROQ_API_KEY)",
        )
    };
    match cmd {
        SecretsCmd::Set { name, value_stdin } => {
            let value = read_secret(value_stdin, "value-stdin", "Value (not echoed): ", false)?;
            if value.is_empty() {
                return Err(CliError::usage(
                    "the value is empty",
                    "paste the key when asked",
                ));
            }
            let place = store(dir, &name, &value).map_err(err)?;
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "name": name, "stored_in": place}),
                || {
                    println!("stored {name} in {place}; moltgate reads it from there (the value is not shown)");
                    if std::env::var_os(&name).is_some() {
                        println!("note: {name} is also set in this shell's environment; unset it so it does not leak to child processes");
                    }
                },
            );
        }
        SecretsCmd::Remove { name } => {
            secrets::remove_secret_file(dir, &name).map_err(err)?;
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "name": name}),
                || println!("removed {name}"),
            );
        }
        SecretsCmd::List => {
            let names = secrets::list_secret_files(dir);
            emit(ctx.json, serde_json::json!({"names": names}), || {
                if names.is_empty() {
                    println!("no keys stored in {}", dir.join("secrets").display());
                }
                for n in &names {
                    println!("{n}");
                }
            });
        }
    }
    Ok(Exit::Ok)
}

#[cfg(all(target_os = "macos", feature = "macos-native"))]
fn store(_dir: &std::path::Path, name: &str, value: &str) -> Result<String, secrets::SecretError> {
    secrets::write_keychain(name, value)
        .map(|_| "the macOS Keychain (service \"moltguard\")".to_string())
}

#[cfg(not(all(target_os = "macos", feature = "macos-native")))]
fn store(dir: &std::path::Path, name: &str, value: &str) -> Result<String, secrets::SecretError> {
    secrets::write_secret_file(dir, name, value).map(|p| format!("{} (mode 0600)", p.display()))
}
