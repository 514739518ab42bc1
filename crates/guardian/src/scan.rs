//! One full scan: every check, in one report. Shared by the daemon and by
//! `moltguard audit`, so a person can run exactly what the guardian runs.

use super::checks::{self, NginxSource, NginxWorker};
use super::exposure::{self, ProtectedPort};
use super::finding::{Finding, Severity};
use super::{runtime, selfcheck};
use crate::breaker::{store, ReasonCode};
use crate::config::Config;
use crate::nginx::control::{Nginx, NginxError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The role of the agent's control ports.
const AGENT_CONTROL: &str = "agent control";

/// The result of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// When the scan began.
    pub started_at: DateTime<Utc>,
    /// How long it took, wall clock.
    pub wall_us: u64,
    /// CPU time this process spent on the scan (user + system), where known.
    pub cpu_us: Option<u64>,
    /// The ports it protected (configured and learned from the agent's config).
    pub protected_ports: Vec<ProtectedPort>,
    /// Protected ports seen listening, or answering, beyond loopback.
    pub exposed_ports: std::collections::BTreeSet<u16>,
    /// How many listening sockets it saw.
    pub sockets_seen: usize,
    /// What it found.
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// The exposed ports that are the agent's control port.
    pub fn exposed_agent_ports(&self) -> std::collections::BTreeSet<u16> {
        self.protected_ports
            .iter()
            .filter(|p| p.role.starts_with(AGENT_CONTROL) && self.exposed_ports.contains(&p.port))
            .map(|p| p.port)
            .collect()
    }

    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The critical finding the breaker is opened for: the first in check
    /// order, so repeated scans pick the same one and stay idempotent.
    pub fn primary_critical(&self) -> Option<&Finding> {
        self.findings
            .iter()
            .find(|f| f.severity == Severity::Critical)
    }
}

/// Holds what persists between scans (nginx handle, process table, caches).
pub struct Scanner {
    config: Config,
    nginx: Result<Nginx, NginxError>,
    processes: sysinfo::System,
    scans: u64,
}

/// Run `nginx -t` on every Nth poll even without a file change: it costs a
/// process spawn, and file changes already trigger it.
const CONFIG_TEST_EVERY: u64 = 10;

impl Scanner {
    /// A scanner for `config`; it holds what repeated scans reuse (the
    /// nginx handle, the process table).
    pub fn new(config: Config) -> Self {
        let nginx = Nginx::from_config(&config);
        Self {
            config,
            nginx,
            processes: sysinfo::System::new(),
            scans: 0,
        }
    }

    /// The config it scans under.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The ports that must only listen on loopback: the edge, the upstream,
    /// the agent's control port, configured extras, and any control ports
    /// found in the agent's own config.
    pub fn protected_ports(&self, agent_ports_from_config: &[u16]) -> Vec<ProtectedPort> {
        let g = &self.config.settings.guardian;
        let e = &self.config.settings.edge;
        let port = |port: u16, role: &str| ProtectedPort {
            port,
            role: role.into(),
        };
        let mut ports = vec![
            port(e.port, "nginx edge"),
            port(e.upstream_port, "upstream (moltgate or the agent's panel)"),
            port(g.agent_port, AGENT_CONTROL),
        ];
        ports.extend(g.protected_ports.iter().map(|p| port(*p, "protected")));
        ports.extend(
            agent_ports_from_config
                .iter()
                .map(|p| port(*p, &format!("{AGENT_CONTROL} (from its config)"))),
        );
        ports.sort_by_key(|p| p.port);
        ports.dedup_by_key(|p| p.port);
        ports
    }

    /// Runs every check. `files_changed` forces the nginx config test.
    pub fn scan(&mut self, files_changed: bool) -> ScanReport {
        let started_at = Utc::now();
        let wall = Instant::now();
        let cpu_before = cpu_time();
        let run_config_test = files_changed || self.scans.is_multiple_of(CONFIG_TEST_EVERY);
        self.scans += 1;
        let mut findings = Vec::new();

        // Static checks: the nginx config as written, htpasswd, secrets, the agent's config.
        let main_conf = self.nginx_main_conf();
        let source = match &main_conf {
            Some(main) => NginxSource::Files {
                main,
                base_dir: main.parent().unwrap_or(std::path::Path::new("/")),
            },
            None => {
                findings.push(Finding::warning(
                    "NGINX_CONFIG_NOT_FOUND",
                    ReasonCode::CheckFailed,
                    "the main nginx.conf was not found, so its server blocks were not checked",
                    "set [nginx] conf in moltguard.toml to your nginx.conf",
                ));
                NginxSource::Unavailable
            }
        };
        let static_report = checks::run_static(&self.config, source, self.nginx_worker());
        findings.extend(static_report.findings);
        let protected = self.protected_ports(&static_report.agent_ports);

        // The state file first: everything else is judged against it. Read
        // under the breaker's lock, with what nginx serves: a transaction in
        // flight (a `breaker close` between its reload and its commit) is
        // waited for, not mistaken for one cut off or for drift.
        let lock = crate::fsutil::ExclusiveLock::acquire(&self.config.layout.lock_file());
        let loaded = store::load(&self.config.layout.state_files(), started_at);
        let live = runtime::check(&self.config, &self.nginx, &loaded.record, run_config_test);
        match &loaded.problem {
            None => {
                findings.extend(runtime::check_edge_files(&self.config, &loaded.record));
                findings.extend(runtime::check_site(&self.config));
            }
            Some(p @ store::StateProblem::Interrupted { .. }) => findings.push(Finding::critical(
                "TRANSITION_INTERRUPTED",
                ReasonCode::TransitionInterrupted,
                p.to_string(),
                "nothing to do by hand: any moltguard command (or the guardian) finishes it as OPEN",
            )),
            Some(p) => findings.push(Finding::critical(
                "STATE_INVALID",
                ReasonCode::StateInvalid,
                p.to_string(),
                "nothing to do by hand: moltguard replaces it with OPEN and keeps the bad copy",
            )),
        }
        drop(lock);

        // Exposure: the kernel's view, then the active probe.
        let mut sockets_seen = 0;
        let mut exposed_ports = std::collections::BTreeSet::new();
        match exposure::listening_sockets() {
            Ok(scan) => {
                sockets_seen = scan.sockets.len();
                exposed_ports.extend(
                    scan.sockets
                        .iter()
                        .filter(|s| {
                            protected.iter().any(|p| p.port == s.port)
                                && !exposure::is_loopback(s.addr)
                        })
                        .map(|s| s.port),
                );
                let pids: Vec<sysinfo::Pid> = scan
                    .sockets
                    .iter()
                    .filter(|s| {
                        protected.iter().any(|p| p.port == s.port) && !exposure::is_loopback(s.addr)
                    })
                    .flat_map(|s| s.pids.iter().map(|p| sysinfo::Pid::from_u32(*p)))
                    .collect();
                if !pids.is_empty() {
                    self.processes
                        .refresh_processes(sysinfo::ProcessesToUpdate::Some(&pids), true);
                }
                let procs = &self.processes;
                let name = |pid: u32| {
                    procs
                        .process(sysinfo::Pid::from_u32(pid))
                        .map(|p| p.name().to_string_lossy().into_owned())
                };
                findings.extend(exposure::check_sockets(&scan, &protected, &name));
                // Keys in the environment of whatever serves a protected port.
                let holders: std::collections::BTreeSet<u32> = scan
                    .sockets
                    .iter()
                    .filter(|s| protected.iter().any(|p| p.port == s.port))
                    .flat_map(|s| s.pids.iter().copied())
                    .filter(|pid| *pid != std::process::id())
                    .collect();
                for pid in holders {
                    if let Ok(f) = checks::scan_process_environ(pid) {
                        findings.extend(f);
                    }
                }
            }
            Err(e) => findings.push(Finding::critical(
                "EXPOSURE_SCAN_FAILED",
                ReasonCode::CheckFailed,
                format!("the socket scan failed: {e}"),
                "run the guardian as root, on a supported system",
            )),
        }
        if self.config.settings.guardian.self_probe {
            let addrs = exposure::interface_addresses();
            let reachable = exposure::self_probe(&addrs, &protected, Duration::from_millis(300));
            exposed_ports.extend(
                reachable
                    .iter()
                    .filter_map(|f| f.location.as_deref()?.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.port()),
            );
            findings.extend(reachable);
        }

        let contained = super::contain::read(&self.config);
        if contained.is_active() {
            findings.push(Finding::info(
                "EXPOSURE_CONTAINED",
                ReasonCode::ExposurePublicBind,
                format!(
                    "inbound connections from other machines to port(s) {:?} are blocked by the {} \
                     (since breaker generation {})",
                    contained.ports, contained.firewall, contained.since_generation
                ),
                "bind the port to 127.0.0.1 and close the breaker again: the guardian then removes its rules",
            ));
        }
        // Reported here, in check order, though taken under the lock above.
        findings.extend(live);
        findings.extend(selfcheck::check(&self.config));

        let cpu_us = match (cpu_before, cpu_time()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        ScanReport {
            started_at,
            wall_us: wall.elapsed().as_micros() as u64,
            cpu_us,
            protected_ports: protected,
            exposed_ports,
            sockets_seen,
            findings,
        }
    }
}

impl Scanner {
    /// The nginx.conf whose server blocks are checked.
    fn nginx_main_conf(&self) -> Option<std::path::PathBuf> {
        if self.config.nginx_managed() {
            return Some(self.config.layout.managed_main_conf());
        }
        if let Some(c) = &self.config.settings.nginx.conf {
            return Some(c.clone());
        }
        [
            "/etc/nginx/nginx.conf",
            "/opt/homebrew/etc/nginx/nginx.conf",
            "/usr/local/etc/nginx/nginx.conf",
        ]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
    }

    /// Who nginx's workers read files as: the managed identity when we are
    /// root, else ourselves (a non-root nginx runs as its starter).
    fn nginx_worker(&self) -> Option<NginxWorker> {
        if crate::exec::running_as_root() {
            NginxWorker::from_user_name(&self.config.settings.nginx.user)
        } else {
            Some(NginxWorker {
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
            })
        }
    }
}

/// CPU time so far of this process and its waited-for children (`nginx -t`), in µs.
fn cpu_time() -> Option<u64> {
    use nix::sys::resource::{getrusage, UsageWho};
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    let mut total = 0;
    for who in [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN] {
        let u = getrusage(who).ok()?;
        total += us(u.user_time()) + us(u.system_time());
    }
    Some(total)
}
