//! Optional, off by default: stop the agent itself when its control port
//! listens beyond loopback (`[guardian] stop_agent = true`).
//!
//! The breaker and the containment already keep other machines out, so
//! this is for those who would rather have no exposed agent running at
//! all. It runs `stop_agent_command` (default `openclaw gateway stop`, which
//! stops OpenClaw's own service, launchd or systemd) once per exposure: when
//! an agent port is newly exposed, not again on every scan while it stays
//! so. Under root it runs as the owner of the first agent home, with that
//! home as `HOME`, because the agent's service is that user's. It is given
//! 30 s; what it did is logged.

use crate::config::Config;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the stop command may take before it is killed.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Agent ports the command already ran for, until they are fixed.
#[derive(Debug, Default)]
pub struct StopAgent {
    done_for: BTreeSet<u16>,
}

impl StopAgent {
    /// `exposed_agent_ports`: the agent's control ports this scan saw beyond loopback.
    pub fn on_scan(&mut self, config: &Config, exposed_agent_ports: &BTreeSet<u16>) {
        self.done_for.retain(|p| exposed_agent_ports.contains(p));
        let g = &config.settings.guardian;
        if !g.stop_agent {
            return;
        }
        let new: Vec<u16> = exposed_agent_ports
            .difference(&self.done_for)
            .copied()
            .collect();
        if new.is_empty() {
            return;
        }
        self.done_for.extend(new.iter().copied());
        let shown = g.stop_agent_command.join(" ");
        match run(&g.stop_agent_command, g.agent_homes.first()) {
            Ok(status) if status.success() => tracing::warn!(
                ports = ?new,
                "STOPPED the agent (`{shown}`): its control port(s) {new:?} listen beyond loopback; \
                 fix the bind (gateway.bind = \"loopback\") before starting it again"
            ),
            Ok(status) => tracing::error!(
                ports = ?new,
                "could not stop the agent: `{shown}` exited with {status}"
            ),
            Err(e) => tracing::error!(
                ports = ?new,
                "could not stop the agent: `{shown}`: {e}"
            ),
        }
    }
}

/// Runs `argv`, as the owner of `home` when we are root, within [`TIMEOUT`].
fn run(
    argv: &[String],
    home: Option<&std::path::PathBuf>,
) -> Result<std::process::ExitStatus, String> {
    let (program, args) = argv
        .split_first()
        .ok_or("guardian.stop_agent_command is empty")?;
    let mut c = Command::new(program);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(home) = home {
        c.env("HOME", home).current_dir(home);
        if crate::exec::running_as_root() {
            let md = std::fs::metadata(home).map_err(|e| format!("{}: {e}", home.display()))?;
            if md.uid() != 0 {
                c.uid(md.uid()).gid(md.gid());
            }
        }
    }
    let mut child = c.spawn().map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(status);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "still running after {} s, killed",
                TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(stop: bool, argv: &[&str], home: &std::path::Path) -> Config {
        let mut c = crate::config::load(&crate::config::Overrides {
            home: Some(home.to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        c.settings.guardian.stop_agent = stop;
        c.settings.guardian.stop_agent_command = argv.iter().map(|s| s.to_string()).collect();
        c.settings.guardian.agent_homes = vec![home.to_path_buf()];
        c
    }

    #[test]
    fn runs_once_per_exposure_in_the_agents_home_and_never_when_off() {
        let home = tempfile::tempdir().unwrap();
        let marker = home.path().join("stopped");
        let script = format!("echo \"$HOME\" >> {}", marker.display());
        let mut s = StopAgent::default();
        let exposed: BTreeSet<u16> = [18789].into();
        s.on_scan(
            &config(false, &["/bin/sh", "-c", &script], home.path()),
            &exposed,
        );
        assert!(!marker.exists(), "off by default");
        let on = config(true, &["/bin/sh", "-c", &script], home.path());
        for _ in 0..3 {
            s.on_scan(&on, &exposed);
        }
        let runs = std::fs::read_to_string(&marker).unwrap();
        assert_eq!(
            runs,
            format!("{}\n", home.path().display()),
            "once, with HOME"
        );
        // Fixed, then exposed again: a new episode.
        s.on_scan(&on, &BTreeSet::new());
        s.on_scan(&on, &exposed);
        assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_missing_or_failing_command_is_an_error_not_a_panic() {
        assert!(run(&[], None).is_err());
        assert!(run(&["/nonexistent/openclaw".into()], None).is_err());
        assert!(!run(&["/bin/false".into()], None).unwrap().success());
    }
}
