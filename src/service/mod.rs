//! The whole stack as system services: the edge (the managed nginx, or a
//! hook into the system nginx), the gateway (moltgate) and the guardian.
//! LaunchDaemons on macOS, systemd units on Linux.
//!
//! Rendering is pure and tested on every platform; installing writes the
//! files (atomically) and then runs `launchctl` / `systemctl` by absolute
//! path. With a private root (`--root DIR`) only the files are written.
//!
//! The one ordering rule: **the edge never serves before the breaker
//! include exists.** Every way the edge starts goes through
//! `moltguard nginx prepare` (or `nginx run`, which begins with it): it
//! settles the committed breaker state into the include, toward OPEN if
//! anything is off, and runs `nginx -t`. If that fails, nginx does not start.

pub mod launchd;
pub mod status;
pub mod systemd;

use crate::config::Config;
use std::path::{Component, Path, PathBuf};

/// Which service manager the files are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// macOS LaunchDaemons (plus a newsyslog rule for the logs).
    Launchd,
    /// Linux systemd units.
    Systemd,
}

impl Platform {
    /// This machine's service manager.
    pub fn host() -> Self {
        if cfg!(target_os = "macos") {
            Self::Launchd
        } else {
            Self::Systemd
        }
    }
}

/// One of the services of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// nginx: the managed one, or the system's (which moltguard only hooks).
    Edge,
    /// moltgate, the LLM gateway behind the edge.
    Gateway,
    /// The guardian daemon.
    Guardian,
}

impl Service {
    /// The name, as status and messages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Gateway => "gateway",
            Self::Guardian => "guardian",
        }
    }
}

/// The nginx the stack runs (or hooks into).
#[derive(Debug, Clone)]
pub enum EdgeSpec {
    /// A private nginx moltguard runs from its own prefix.
    Managed {
        /// The nginx binary.
        binary: PathBuf,
        /// Its `-p` prefix.
        prefix: PathBuf,
        /// Its main config.
        conf: PathBuf,
        /// Its pid file.
        pid_file: PathBuf,
        /// The user (and its primary group) nginx runs as.
        user: String,
        /// That user's primary group.
        group: String,
        /// The edge listens on loopback only, so nothing else may reach it.
        loopback_only: bool,
    },
    /// The system's nginx includes moltguard's site; its own service runs it.
    System {
        /// The system nginx's own unit or label.
        unit: String,
    },
}

/// Everything the service definitions name.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Absolute path of the moltguard binary.
    pub exe: PathBuf,
    /// Absolute path of the moltgate binary (beside moltguard).
    pub gateway_exe: PathBuf,
    /// `--home`, when the setup lives under one.
    pub home: Option<PathBuf>,
    /// Absolute path of moltguard.toml.
    pub config_file: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The generated nginx files.
    pub nginx_dir: PathBuf,
    /// Where logs go.
    pub log_dir: PathBuf,
    /// moltgate's loopback port (the edge's upstream).
    pub upstream_port: u16,
    /// The nginx the stack runs (or hooks into).
    pub edge: EdgeSpec,
}

impl ServiceSpec {
    /// The spec for this config. `nginx_binary` is the resolved nginx of a
    /// managed setup (services never search `PATH`).
    pub fn from_config(config: &Config, exe: &Path, nginx_binary: Option<&Path>) -> Self {
        let l = &config.layout;
        let edge = match (config.nginx_managed(), nginx_binary) {
            (true, Some(binary)) => {
                let user = config.settings.nginx.user.clone();
                let group = nix::unistd::User::from_name(&user)
                    .ok()
                    .flatten()
                    .and_then(|u| nix::unistd::Group::from_gid(u.gid).ok().flatten())
                    .map_or_else(|| user.clone(), |g| g.name);
                EdgeSpec::Managed {
                    binary: binary.to_path_buf(),
                    prefix: l.managed_prefix(),
                    conf: l.managed_main_conf(),
                    pid_file: l.managed_pid_file(),
                    user,
                    group,
                    loopback_only: config.settings.edge.listen_address.is_loopback(),
                }
            }
            _ => EdgeSpec::System {
                unit: "nginx.service".into(),
            },
        };
        Self {
            exe: exe.to_path_buf(),
            gateway_exe: exe.with_file_name("moltgate"),
            home: l.home.clone(),
            config_file: l.config_file.clone(),
            state_dir: l.state_dir.clone(),
            nginx_dir: l.nginx_dir.clone(),
            log_dir: l.log_dir.clone(),
            upstream_port: config.settings.edge.upstream_port,
            edge,
        }
    }

    /// `moltguard` with this setup's paths, then `args`. Absolute paths
    /// only, no secrets, no environment variables.
    pub fn moltguard(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![self.exe.display().to_string()];
        if let Some(h) = &self.home {
            v.extend(["--home".into(), h.display().to_string()]);
        }
        v.extend([
            "--config".into(),
            self.config_file.display().to_string(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
        ]);
        if let EdgeSpec::Managed { binary, .. } = &self.edge {
            v.extend(["--nginx-bin".into(), binary.display().to_string()]);
        }
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// The guardian daemon's command line.
    pub fn guardian_arguments(&self) -> Vec<String> {
        self.moltguard(&["guardian", "run", "--log-format", "json"])
    }

    /// moltgate's command line, as `moltguard up` starts it.
    pub fn gateway_arguments(&self) -> Vec<String> {
        vec![
            self.gateway_exe.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.upstream_port),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
        ]
    }

    /// moltgate finds its own config (moltgate.toml) through the home.
    pub fn gateway_environment(&self) -> Vec<(String, String)> {
        self.home
            .iter()
            .map(|h| ("MOLTGUARD_HOME".to_string(), h.display().to_string()))
            .collect()
    }

    /// Whether a path the services use lies in a temp directory, which a
    /// private /tmp would hide from them.
    pub fn uses_tmp(&self) -> bool {
        let in_tmp = |p: &Path| p.starts_with("/tmp") || p.starts_with("/var/tmp");
        [
            &self.config_file,
            &self.state_dir,
            &self.nginx_dir,
            &self.log_dir,
            &self.exe,
        ]
        .iter()
        .any(|p| in_tmp(p))
            || self.home.as_deref().is_some_and(in_tmp)
    }
}

/// A file `install` writes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedFile {
    /// Where.
    pub path: PathBuf,
    /// What.
    pub contents: String,
    /// Its permission bits.
    pub mode: u32,
    /// What it is for, in a few words.
    pub purpose: String,
}

/// What `install` would write and run, for `--dry-run` and for doing it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// The platform it is for.
    pub platform: Platform,
    /// The services, in start order, with their unit name or label.
    pub services: Vec<Installed>,
    /// The files, in writing order.
    pub files: Vec<PlannedFile>,
    /// The commands that start the services, in order.
    pub install_commands: Vec<Vec<String>>,
    /// The commands that stop and remove them, in order.
    pub uninstall_commands: Vec<Vec<String>>,
}

/// A service and the name its manager knows it by.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Installed {
    /// Which service.
    pub service: Service,
    /// systemd unit or launchd label.
    pub name: String,
    /// The file that defines it (a drop-in for the system nginx).
    pub file: PathBuf,
}

impl Plan {
    /// The same plan with every file under `root` (a private root for a
    /// test or an image build); the commands are for the real machine.
    pub fn under_root(mut self, root: &Path) -> Self {
        let rebase = |p: &Path| -> PathBuf {
            let rel: PathBuf = p
                .components()
                .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                .collect();
            root.join(rel)
        };
        for f in &mut self.files {
            f.path = rebase(&f.path);
        }
        for s in &mut self.services {
            s.file = rebase(&s.file);
        }
        self
    }
}

/// The plan for `platform`.
pub fn plan(spec: &ServiceSpec, platform: Platform) -> Result<Plan, String> {
    match platform {
        Platform::Launchd => launchd::plan(spec),
        Platform::Systemd => Ok(systemd::plan(spec)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A Homebrew (Apple silicon) setup: every path under /opt/homebrew.
    pub(crate) fn mac_spec() -> ServiceSpec {
        ServiceSpec {
            exe: "/opt/homebrew/bin/moltguard".into(),
            gateway_exe: "/opt/homebrew/bin/moltgate".into(),
            home: None,
            config_file: "/opt/homebrew/etc/moltguard/moltguard.toml".into(),
            state_dir: "/opt/homebrew/var/lib/moltguard".into(),
            nginx_dir: "/opt/homebrew/etc/moltguard/nginx".into(),
            log_dir: "/opt/homebrew/var/log/moltguard".into(),
            upstream_port: 8765,
            edge: EdgeSpec::Managed {
                binary: "/opt/homebrew/bin/nginx".into(),
                prefix: "/opt/homebrew/etc/moltguard/nginx/runtime".into(),
                conf: "/opt/homebrew/etc/moltguard/nginx/nginx.conf".into(),
                pid_file: "/opt/homebrew/etc/moltguard/nginx/runtime/nginx.pid".into(),
                user: "nobody".into(),
                group: "nobody".into(),
                loopback_only: true,
            },
        }
    }

    pub(crate) fn linux_spec() -> ServiceSpec {
        ServiceSpec {
            exe: "/usr/local/bin/moltguard".into(),
            gateway_exe: "/usr/local/bin/moltgate".into(),
            home: None,
            config_file: "/etc/moltguard/moltguard.toml".into(),
            state_dir: "/var/lib/moltguard".into(),
            nginx_dir: "/etc/moltguard/nginx".into(),
            log_dir: "/var/log/moltguard".into(),
            upstream_port: 8765,
            edge: EdgeSpec::Managed {
                binary: "/usr/sbin/nginx".into(),
                prefix: "/etc/moltguard/nginx/runtime".into(),
                conf: "/etc/moltguard/nginx/nginx.conf".into(),
                pid_file: "/etc/moltguard/nginx/runtime/nginx.pid".into(),
                user: "www-data".into(),
                group: "www-data".into(),
                loopback_only: true,
            },
        }
    }

    /// `launchd/` and `systemd/` hold the files users can read.
    #[test]
    fn shipped_templates_match_the_renderers() {
        for (platform, spec, dir) in [
            (Platform::Launchd, mac_spec(), "launchd"),
            (Platform::Systemd, linux_spec(), "systemd"),
        ] {
            for f in plan(&spec, platform).unwrap().files {
                let name = f.path.file_name().unwrap().to_string_lossy().into_owned();
                moltguard_test_support::golden::check(&format!("{dir}/{name}"), &f.contents);
            }
        }
    }

    #[test]
    fn a_private_root_moves_the_files_not_the_commands() {
        let p = plan(&linux_spec(), Platform::Systemd)
            .unwrap()
            .under_root(Path::new("/tmp/r"));
        assert!(p.files.iter().all(|f| f.path.starts_with("/tmp/r/etc")));
        assert!(p
            .install_commands
            .iter()
            .all(|c| c[0] == "/usr/bin/systemctl"));
    }

    #[test]
    fn temp_paths_are_noticed() {
        let mut s = linux_spec();
        assert!(!s.uses_tmp());
        s.home = Some("/tmp/mg".into());
        assert!(s.uses_tmp());
    }
}
