//! One full scan: every check, in one report. Shared by the daemon and by
//! `moltguard audit`, so a person can run exactly what the guardian runs.

use super::exposure::{self, ProtectedPort};
use super::finding::{Finding, Severity};
use super::{runtime, selfcheck};
use crate::breaker::{store, ReasonCode};
use crate::config::Config;
use crate::nginx::control::{Nginx, NginxError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The result of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub started_at: DateTime<Utc>,
    pub wall_us: u64,
    /// CPU time this process spent on the scan (user + system), where known.
    pub cpu_us: Option<u64>,
    pub protected_ports: Vec<ProtectedPort>,
    pub sockets_seen: usize,
    pub findings: Vec<Finding>,
}

impl ScanReport {
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
    pub fn new(config: Config) -> Self {
        let nginx = Nginx::from_config(&config);
        Self {
            config,
            nginx,
            processes: sysinfo::System::new(),
            scans: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn protected_ports(&self) -> Vec<ProtectedPort> {
        let g = &self.config.settings.guardian;
        let e = &self.config.settings.edge;
        let mut ports = vec![
            ProtectedPort {
                port: e.port,
                role: "nginx edge".into(),
            },
            ProtectedPort {
                port: e.upstream_port,
                role: "upstream (moltgate or the agent's panel)".into(),
            },
            ProtectedPort {
                port: g.agent_port,
                role: "agent control".into(),
            },
        ];
        for p in &g.protected_ports {
            ports.push(ProtectedPort {
                port: *p,
                role: "protected".into(),
            });
        }
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
        let protected = self.protected_ports();
        let mut findings = Vec::new();

        // The state file first: everything else is judged against it.
        let loaded = store::load(&self.config.layout.state_file(), started_at);
        if let Some(p) = &loaded.problem {
            findings.push(Finding::critical(
                "STATE_INVALID",
                ReasonCode::StateInvalid,
                p.to_string(),
                "nothing to do by hand: moltguard replaces it with OPEN and keeps the bad copy",
            ));
        }

        // Exposure: the kernel's view, then the active probe.
        let mut sockets_seen = 0;
        match exposure::listening_sockets() {
            Ok(scan) => {
                sockets_seen = scan.sockets.len();
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
            findings.extend(exposure::self_probe(
                &addrs,
                &protected,
                Duration::from_millis(300),
            ));
        }

        findings.extend(runtime::check(
            &self.config,
            &self.nginx,
            &loaded.record,
            run_config_test,
        ));
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
            sockets_seen,
            findings,
        }
    }
}

/// This process's CPU time so far, in µs.
fn cpu_time() -> Option<u64> {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).ok()?;
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Some(us(u.user_time()) + us(u.system_time()))
}
