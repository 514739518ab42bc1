//! The macOS LaunchDaemon for the guardian.
//!
//! A LaunchDaemon (not a LaunchAgent) because the guardian must run as
//! root: without root, macOS hides other users' sockets from the scan.

use super::{Plan, ServiceSpec};
use plist::{Dictionary, Value};
use std::path::PathBuf;

pub const LABEL: &str = "dev.moltguard.guardian";
pub const PLIST_PATH: &str = "/Library/LaunchDaemons/dev.moltguard.guardian.plist";

/// Renders the plist (XML) with the plist crate.
pub fn render(spec: &ServiceSpec) -> Result<String, String> {
    let mut d = Dictionary::new();
    d.insert("Label".into(), Value::String(LABEL.into()));
    d.insert(
        "ProgramArguments".into(),
        Value::Array(
            spec.program_arguments()
                .into_iter()
                .map(Value::String)
                .collect(),
        ),
    );
    d.insert("RunAtLoad".into(), Value::Boolean(true));
    // Restart whenever it exits: a guardian that is not running protects nothing.
    d.insert("KeepAlive".into(), Value::Boolean(true));
    // At most one restart every 10 s if it keeps crashing.
    d.insert("ThrottleInterval".into(), Value::Integer(10.into()));
    d.insert("ProcessType".into(), Value::String("Standard".into()));
    // 0o022: files it creates are not writable by others.
    d.insert("Umask".into(), Value::Integer(0o022.into()));
    let log = spec.log_dir.join("guardian.log").display().to_string();
    d.insert("StandardOutPath".into(), Value::String(log.clone()));
    d.insert("StandardErrorPath".into(), Value::String(log));
    let mut out = Vec::new();
    Value::Dictionary(d)
        .to_writer_xml(&mut out)
        .map_err(|e| e.to_string())?;
    out.push(b'\n');
    String::from_utf8(out).map_err(|e| e.to_string())
}

pub fn plan(spec: &ServiceSpec) -> Result<Plan, String> {
    let target = format!("system/{LABEL}");
    Ok(Plan {
        path: PathBuf::from(PLIST_PATH),
        contents: render(spec)?,
        // root:wheel 0644, as launchd requires for a LaunchDaemon.
        mode: 0o644,
        install_commands: vec![
            // An old copy may be loaded; bootout fails harmlessly if not.
            vec!["/bin/launchctl".into(), "bootout".into(), target.clone()],
            vec![
                "/bin/launchctl".into(),
                "bootstrap".into(),
                "system".into(),
                PLIST_PATH.into(),
            ],
        ],
        uninstall_commands: vec![vec!["/bin/launchctl".into(), "bootout".into(), target]],
    })
}
