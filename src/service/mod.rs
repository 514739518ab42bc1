//! Installing the guardian as a system service: a LaunchDaemon on macOS,
//! a systemd unit on Linux. Rendering is pure (and tested everywhere);
//! installing runs `launchctl` / `systemctl` by absolute path.

pub mod launchd;
pub mod systemd;

use crate::config::Config;
use std::path::{Path, PathBuf};

/// Everything a service definition names.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Absolute path of the moltguard binary.
    pub exe: PathBuf,
    /// Absolute path of moltguard.toml.
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    pub nginx_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl ServiceSpec {
    pub fn from_config(config: &Config, exe: &Path) -> Self {
        let l = &config.layout;
        Self {
            exe: exe.to_path_buf(),
            config_file: l.config_file.clone(),
            state_dir: l.state_dir.clone(),
            nginx_dir: l.nginx_dir.clone(),
            log_dir: l.log_dir.clone(),
        }
    }

    /// The daemon's command line; no secrets, no environment variables.
    pub fn program_arguments(&self) -> Vec<String> {
        vec![
            self.exe.display().to_string(),
            "--config".into(),
            self.config_file.display().to_string(),
            "guardian".into(),
            "run".into(),
            "--log-format".into(),
            "json".into(),
        ]
    }
}

/// What `install` would write and run, for `--dry-run` and for doing it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
    pub install_commands: Vec<Vec<String>>,
    pub uninstall_commands: Vec<Vec<String>>,
}

/// The plan for this platform.
pub fn plan(spec: &ServiceSpec) -> Result<Plan, String> {
    if cfg!(target_os = "macos") {
        launchd::plan(spec)
    } else {
        Ok(systemd::plan(spec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            exe: "/usr/local/bin/moltguard".into(),
            config_file: "/opt/homebrew/etc/moltguard/moltguard.toml".into(),
            state_dir: "/opt/homebrew/var/lib/moltguard".into(),
            nginx_dir: "/opt/homebrew/etc/moltguard/nginx".into(),
            log_dir: "/opt/homebrew/var/log/moltguard".into(),
        }
    }

    /// `launchd/` and `systemd/` hold the templates users can read.
    #[test]
    fn shipped_templates_match_the_renderers() {
        crate::golden::check(
            "launchd/dev.moltguard.guardian.plist",
            &launchd::render(&spec()).unwrap(),
        );
        let linux = ServiceSpec {
            config_file: "/etc/moltguard/moltguard.toml".into(),
            state_dir: "/var/lib/moltguard".into(),
            nginx_dir: "/etc/moltguard/nginx".into(),
            log_dir: "/var/log/moltguard".into(),
            ..spec()
        };
        crate::golden::check(
            "systemd/moltguard-guardian.service",
            &systemd::render(&linux),
        );
    }

    #[test]
    fn no_environment_variables_in_the_plist() {
        let text = launchd::render(&spec()).unwrap();
        assert!(!text.contains("EnvironmentVariables"));
        assert!(text.contains("<key>KeepAlive</key>"));
    }
}
