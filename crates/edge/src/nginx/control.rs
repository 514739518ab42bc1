//! Running nginx: test, start, reload, stop, and knowing whether it runs.
//!
//! Two modes. *Managed*: moltguard's own nginx on a private prefix
//! (`nginx_dir/runtime`), started and stopped by moltguard; when moltguard
//! runs as root, this nginx runs entirely as the unprivileged `nginx.user`.
//! *System*: the machine's nginx, which moltguard only tests and reloads.

use crate::config::Config;
use crate::exec;
use crate::fsutil;
use crate::nginx::render;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why nginx could not be tested, started, reloaded or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    /// nginx could not be found or trusted.
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    /// `nginx -t` failed; its output.
    #[error("`nginx -t` rejects the configuration:\n{0}")]
    TestFailed(String),
    /// A command nginx was given failed.
    #[error("nginx could not {action}: {detail}")]
    Command {
        /// What was asked (`reload`, `start`, ...).
        action: &'static str,
        /// nginx's own words.
        detail: String,
    },
    /// Reloading or stopping an nginx that does not run.
    #[error("nginx is not running")]
    NotRunning,
    /// The configured `nginx.user` does not exist.
    #[error("the nginx user {0:?} does not exist on this machine")]
    NoSuchUser(String),
    /// A path nginx would be given cannot be trusted.
    #[error(transparent)]
    Unsafe(#[from] render::UnsafePath),
    /// The files nginx needs could not be written.
    #[error("cannot prepare nginx files: {0}")]
    Io(#[from] io::Error),
}

/// The unprivileged identity a managed nginx runs as when we are root.
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    /// Its user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
}

#[derive(Debug, Clone)]
enum Mode {
    Managed {
        prefix: PathBuf,
        conf: PathBuf,
        pid: PathBuf,
    },
    System {
        conf: Option<PathBuf>,
        pid_candidates: Vec<PathBuf>,
    },
}

/// A handle on the nginx moltguard drives.
#[derive(Debug, Clone)]
pub struct Nginx {
    binary: PathBuf,
    mode: Mode,
    run_as: Option<RunAs>,
    edge_port: u16,
}

impl Nginx {
    /// The nginx `config` describes: the binary (trusted, see
    /// [`exec::resolve`]), managed or system, and who it runs as.
    pub fn from_config(config: &Config) -> Result<Self, NginxError> {
        let binary = exec::resolve(
            "nginx",
            config.settings.nginx.binary.as_deref(),
            exec::NGINX_CANDIDATES,
        )?;
        let mode = if config.nginx_managed() {
            let l = &config.layout;
            Mode::Managed {
                prefix: l.managed_prefix(),
                conf: l.managed_main_conf(),
                pid: l.managed_pid_file(),
            }
        } else {
            Mode::System {
                conf: config.settings.nginx.conf.clone(),
                pid_candidates: [
                    "/run/nginx.pid",
                    "/var/run/nginx.pid",
                    "/opt/homebrew/var/run/nginx.pid",
                    "/usr/local/var/run/nginx.pid",
                ]
                .iter()
                .map(PathBuf::from)
                .collect(),
            }
        };
        Ok(Self {
            binary,
            mode,
            run_as: nginx_identity(config)?,
            edge_port: config.settings.edge.port,
        })
    }

    /// The nginx binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Whether this is moltguard's own nginx on a private prefix.
    pub fn is_managed(&self) -> bool {
        matches!(self.mode, Mode::Managed { .. })
    }

    /// The identity files must be readable by (group) when we are root.
    pub fn run_as(&self) -> Option<RunAs> {
        self.run_as
    }

    /// `nginx` with the mode's `-p`/`-c` flags, run as the managed identity.
    fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        match &self.mode {
            Mode::Managed { prefix, conf, .. } => {
                c.arg("-p").arg(prefix).arg("-c").arg(conf);
                if let Some(r) = self.run_as {
                    // std drops supplementary groups when switching from root.
                    c.uid(r.uid).gid(r.gid);
                }
            }
            Mode::System {
                conf: Some(conf), ..
            } => {
                c.arg("-c").arg(conf);
            }
            Mode::System { conf: None, .. } => {}
        }
        c.stdin(Stdio::null());
        c
    }

    /// `nginx -t` on the effective configuration.
    pub fn test(&self) -> Result<(), NginxError> {
        if let Mode::Managed { prefix, .. } = &self.mode {
            // nginx -t opens the pid and log paths, which live in the prefix.
            self.prepare_prefix(prefix)?;
        }
        run_config_test(self.command())
    }

    /// Tests a candidate include on its own, inside a throwaway server block,
    /// before it replaces the live one.
    pub fn test_candidate(
        &self,
        include_text: &str,
        scratch_parent: &Path,
    ) -> Result<(), NginxError> {
        let dir = tempfile::Builder::new()
            .prefix(".candidate-")
            .tempdir_in(scratch_parent)?;
        let candidate = dir.path().join("breaker.conf");
        std::fs::write(&candidate, include_text)?;
        let harness = dir.path().join("harness.conf");
        std::fs::write(
            &harness,
            render::render_candidate_harness(&candidate, dir.path(), self.edge_port)?,
        )?;
        std::fs::create_dir(dir.path().join("tmp"))?;
        if let Some(r) = self.run_as {
            chown_tree(dir.path(), r)?;
        }
        let mut c = Command::new(&self.binary);
        c.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&harness)
            .stdin(Stdio::null());
        if let Some(r) = self.run_as {
            c.uid(r.uid).gid(r.gid);
        }
        run_config_test(c)
    }

    /// The master's pid, if nginx runs.
    pub fn running_pid(&self) -> Option<i32> {
        self.recorded_pids().into_iter().find(|pid| alive(*pid))
    }

    /// The pids the pid file(s) name, alive or not.
    fn recorded_pids(&self) -> Vec<i32> {
        let candidates: Vec<&Path> = match &self.mode {
            Mode::Managed { pid, .. } => vec![pid.as_path()],
            Mode::System { pid_candidates, .. } => {
                pid_candidates.iter().map(PathBuf::as_path).collect()
            }
        };
        candidates
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
            .filter(|pid: &i32| *pid > 1)
            .collect()
    }

    /// Workers whose master died (`kill -9` of the master): they keep the
    /// listening socket and serve the config they had, with nothing left to
    /// reload them. The master starts its own process group (it daemonizes
    /// with `setsid`), and the kernel hands out no pid that is still some
    /// group's id, so a live group under a dead master's pid is its orphans.
    /// Returns that group id.
    pub fn orphaned_group(&self) -> Option<i32> {
        use nix::sys::signal::killpg;
        use nix::unistd::Pid;
        if self.running_pid().is_some() {
            return None;
        }
        self.recorded_pids().into_iter().find(|pid| {
            killpg(Pid::from_raw(*pid), None).is_ok() && !group_members(*pid).is_empty()
        })
    }

    /// Ends an orphaned group for good (see [`Nginx::orphaned_group`]).
    fn kill_orphans(&self, group: i32) -> Result<(), NginxError> {
        use nix::sys::signal::{kill, Signal};
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            let members = group_members(group);
            if members.is_empty() {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(NginxError::Command {
                    action: "be stopped",
                    detail: format!(
                        "the orphaned workers {members:?} (process group {group}) survived SIGKILL"
                    ),
                });
            }
            for pid in members {
                let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asks the master to reload. Exit 0 only means the signal was sent:
    /// whether the new config loaded must be verified separately.
    pub fn reload(&self) -> Result<(), NginxError> {
        if self.running_pid().is_none() {
            return Err(NginxError::NotRunning);
        }
        let out = self
            .command()
            .args(["-s", "reload"])
            .output()
            .map_err(|e| NginxError::Command {
                action: "reload",
                detail: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NginxError::Command {
                action: "reload",
                detail: clean_output(&out.stderr),
            })
        }
    }

    /// Starts a managed nginx (it daemonizes; the pid file says when it is up).
    /// Orphaned workers of a killed master are ended first: they hold the
    /// port and serve a config nobody can reload.
    pub fn start(&self) -> Result<i32, NginxError> {
        if let Some(pid) = self.running_pid() {
            return Ok(pid);
        }
        if let (Some(group), true) = (self.orphaned_group(), self.is_managed()) {
            self.kill_orphans(group)?;
        }
        let Mode::Managed { prefix, pid, .. } = &self.mode else {
            return Err(NginxError::Command {
                action: "be started",
                detail: "this setup drives the system nginx; start it with `sudo systemctl start nginx` \
                         or `brew services start nginx`"
                    .into(),
            });
        };
        self.prepare_prefix(prefix)?;
        let out = self.command().output().map_err(|e| NginxError::Command {
            action: "start",
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(NginxError::Command {
                action: "start",
                detail: clean_output(&out.stderr),
            });
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(p) = self.running_pid() {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(NginxError::Command {
            action: "start",
            detail: format!(
                "no live pid in {} after 5s; see {}/logs/error.log",
                pid.display(),
                prefix.display()
            ),
        })
    }

    /// Becomes a managed nginx in the foreground (`daemon off`), for a
    /// service manager that supervises it (launchd). Returns only on failure.
    pub fn exec_foreground(&self) -> NginxError {
        use std::os::unix::process::CommandExt;
        let Mode::Managed { prefix, .. } = &self.mode else {
            return NginxError::Command {
                action: "run in the foreground",
                detail: "this setup drives the system nginx; its own service runs it".into(),
            };
        };
        if let Err(e) = self.prepare_prefix(prefix) {
            return e;
        }
        let e = self.command().arg("-g").arg("daemon off;").exec();
        NginxError::Command {
            action: "start",
            detail: e.to_string(),
        }
    }

    /// Stops nginx: a graceful quit first, then a fast stop, then SIGKILL,
    /// so a stop meant to fail closed really ends the serving.
    pub fn stop(&self, grace: Duration) -> Result<(), NginxError> {
        use nix::sys::signal::{kill, Signal};
        let Some(pid) = self.running_pid() else {
            return match self.orphaned_group() {
                Some(group) => self.kill_orphans(group),
                None => Ok(()),
            };
        };
        let raw = pid;
        let pid = nix::unistd::Pid::from_raw(pid);
        let gone = |d: Duration| {
            let end = Instant::now() + d;
            while Instant::now() < end {
                if !alive(raw) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            !alive(raw)
        };
        for (sig, wait) in [
            (Signal::SIGQUIT, grace),
            (Signal::SIGTERM, Duration::from_secs(2)),
            (Signal::SIGKILL, Duration::from_secs(2)),
        ] {
            if kill(pid, sig).is_err() || gone(wait) {
                if sig == Signal::SIGKILL {
                    // Workers outlive a killed master; end the whole group.
                    let _ = kill(nix::unistd::Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
                }
                return Ok(());
            }
        }
        Err(NginxError::Command {
            action: "be stopped",
            detail: format!("pid {pid} survived SIGKILL"),
        })
    }

    /// Creates the managed prefix's runtime dirs, owned by the nginx identity.
    fn prepare_prefix(&self, prefix: &Path) -> Result<(), NginxError> {
        for d in [
            prefix.to_path_buf(),
            prefix.join("logs"),
            prefix.join("tmp"),
        ] {
            fsutil::ensure_dir(&d, 0o700)?;
        }
        if let Some(r) = self.run_as {
            chown_tree(prefix, r)?;
        }
        Ok(())
    }
}

/// Whether `pid` runs: it exists and is not a zombie. Where init does not
/// reap (many containers), a killed master lingers as a zombie for a while;
/// it serves nothing and can reload nothing.
fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() && !is_zombie(pid)
}

/// Linux: the state letter in `/proc/PID/stat`, after the parenthesised
/// command name (which may itself hold spaces and parentheses).
#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(pid: i32) -> bool {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
    let p = Pid::from_u32(pid as u32);
    let mut sys = System::new();
    sys.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[p]),
        true,
        ProcessRefreshKind::nothing(),
    );
    sys.process(p)
        .is_some_and(|p| p.status() == ProcessStatus::Zombie)
}

/// The live (not zombie) processes of process group `group`.
fn group_members(group: i32) -> Vec<i32> {
    use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};
    let mut sys = System::new();
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::nothing());
    sys.processes()
        .iter()
        .filter(|(_, p)| p.status() != ProcessStatus::Zombie)
        .map(|(pid, _)| pid.as_u32() as i32)
        .filter(|pid| {
            nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(*pid)))
                .is_ok_and(|g| g.as_raw() == group)
        })
        .collect()
}

/// Who nginx runs as (managed) or reads files as (system), if we are root.
pub fn nginx_identity(config: &Config) -> Result<Option<RunAs>, NginxError> {
    if !exec::running_as_root() {
        return Ok(None);
    }
    let name = &config.settings.nginx.user;
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| NginxError::NoSuchUser(name.clone()))?;
    Ok(Some(RunAs {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }))
}

/// Writes a file nginx must read: atomically, 0640, group-readable by nginx.
pub fn write_for_nginx(path: &Path, bytes: &[u8], run_as: Option<RunAs>) -> io::Result<()> {
    fsutil::write_atomic(path, bytes, 0o640)?;
    share_with_nginx(path, run_as, 0o640)
}

/// Makes a file or directory readable (not writable) by nginx's group.
pub fn share_with_nginx(path: &Path, run_as: Option<RunAs>, mode: u32) -> io::Result<()> {
    if let Some(r) = run_as {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(r.gid)))
            .map_err(io::Error::from)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn chown_tree(root: &Path, r: RunAs) -> io::Result<()> {
    let uid = Some(nix::unistd::Uid::from_raw(r.uid));
    let gid = Some(nix::unistd::Gid::from_raw(r.gid));
    nix::unistd::chown(root, uid, gid).map_err(io::Error::from)?;
    if root.is_dir() {
        for e in std::fs::read_dir(root)? {
            chown_tree(&e?.path(), r)?;
        }
    }
    Ok(())
}

/// Runs `nginx … -t -q`; a failure carries nginx's own explanation.
fn run_config_test(mut cmd: Command) -> Result<(), NginxError> {
    let out = cmd
        .arg("-t")
        .arg("-q")
        .output()
        .map_err(|e| NginxError::Command {
            action: "run its config test",
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NginxError::TestFailed(clean_output(&out.stderr)))
    }
}

/// nginx's stderr, trimmed and without its "nginx: " prefixes.
fn clean_output(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| l.strip_prefix("nginx: ").unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
