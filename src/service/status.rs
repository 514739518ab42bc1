//! What each installed service is doing, as its service manager says.

use super::{Installed, Plan, Platform};
use std::path::Path;
use std::process::{Command, Stdio};

/// One service's state, for `moltguard status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ServiceState {
    /// Which service.
    pub service: super::Service,
    /// Its unit name or label.
    pub name: String,
    /// Whether its definition is installed.
    pub installed: bool,
    /// The manager's word for it (`active`, `failed`, `running`, `not loaded`…),
    /// or why it could not be asked.
    pub state: String,
    /// Whether it runs right now.
    pub running: bool,
}

/// Asks the platform's manager about every service of `plan`.
pub fn query(plan: &Plan) -> Vec<ServiceState> {
    plan.services
        .iter()
        .map(|s| one(plan.platform, s))
        .collect()
}

fn one(platform: Platform, s: &Installed) -> ServiceState {
    let mut st = ServiceState {
        service: s.service,
        name: s.name.clone(),
        installed: s.file.exists(),
        state: "not installed".into(),
        running: false,
    };
    if !st.installed {
        return st;
    }
    let (state, running) = match platform {
        Platform::Systemd => ask_systemd(&s.name),
        Platform::Launchd => ask_launchd(&s.name),
    };
    st.state = state;
    st.running = running;
    st
}

fn output(prog: &str, args: &[&str]) -> Result<(bool, String, String), String> {
    if !Path::new(prog).exists() {
        return Err(format!("{prog} not found"));
    }
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

fn ask_systemd(unit: &str) -> (String, bool) {
    match output("/usr/bin/systemctl", &["is-active", unit]) {
        // is-active prints the state and exits non-zero for anything but active.
        Ok((ok, out, _)) if !out.is_empty() && !out.contains(' ') => (out, ok),
        Ok((_, out, err)) => (
            format!(
                "unknown ({})",
                first_line(if err.is_empty() { &out } else { &err })
            ),
            false,
        ),
        Err(e) => (format!("unknown ({e})"), false),
    }
}

fn ask_launchd(label: &str) -> (String, bool) {
    match output("/bin/launchctl", &["print", &format!("system/{label}")]) {
        Ok((true, out, _)) => {
            let state = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("state = "))
                .unwrap_or("loaded")
                .to_string();
            let running = state == "running";
            (state, running)
        }
        Ok((false, _, _)) => ("not loaded".into(), false),
        Err(e) => (format!("unknown ({e})"), false),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("no answer")
}
