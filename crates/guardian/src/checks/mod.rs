//! The guardian's static checks: pure functions from files to findings.
//!
//! Each check returns `Vec<Finding>`; an empty vector means nothing was
//! found, never "could not look" (that is a finding too, usually
//! `CheckFailed`: ambiguity means deny). Rule ids are stable strings,
//! documented on the constants below and in `docs/CHECKS.md`.
//!
//! - [`nginx`]: server blocks that front a protected port without the breaker,
//!   listen publicly, or switch auth off.
//! - [`htpasswd`]: the password file nginx checks.
//! - [`secrets`]: provider keys and tokens where they can leak.
//! - [`agent`]: the agent's own gateway config (bind, auth, port).

pub mod agent;
pub mod htpasswd;
pub mod net;
pub mod nginx;
pub mod openclaw;
pub mod openclaw_installs;
pub mod secrets;

pub use agent::{check_agent, AgentConfig, AgentReport};
pub use htpasswd::{check_htpasswd, check_htpasswd_text, NginxWorker};
pub use nginx::{check_nginx, check_nginx_file, check_nginx_t_output, ProtectedSet};
pub use secrets::{
    check_nginx_secrets, check_nginx_t_secrets, check_secrets, scan_dir, scan_file,
    scan_process_environ, scan_text, DirScan, EnvScanError, ScanLimits, SecretHit, SecretKind,
    SecretPlace,
};

use crate::config::Config;
use crate::Finding;
use std::path::Path;

/// Where the nginx configuration comes from for [`run_static`].
/// Where the nginx checks read the configuration from.
#[derive(Debug, Clone, Copy)]
pub enum NginxSource<'a> {
    /// The stdout of `nginx -T` from the nginx moltguard drives (preferred:
    /// nginx itself resolved the config path, prefix and includes).
    DumpT(&'a str),
    /// The main config file, and the directory relative includes resolve
    /// against (nginx's conf prefix: the directory of the main file).
    Files {
        /// The main config file.
        main: &'a Path,
        /// What relative includes resolve against.
        base_dir: &'a Path,
    },
    /// Not available: the nginx checks are skipped (the runtime check
    /// reports why nginx cannot be used).
    Unavailable,
}

/// What [`run_static`] found, and the agent ports it learned.
#[derive(Debug, Clone, Default)]
pub struct StaticReport {
    /// What is wrong.
    pub findings: Vec<Finding>,
    /// Agent control ports from the configs under `guardian.agent_homes`
    /// (18789 for a home without a readable config; empty without homes).
    pub agent_ports: Vec<u16>,
}

/// Every static check moltguard's settings call for, in a stable order:
/// agent configs (`guardian.agent_homes`), nginx configuration and the
/// secrets in it, the htpasswd file, web roots (`guardian.web_roots`), log
/// files (`guardian.log_files`).
pub fn run_static(
    config: &Config,
    nginx: NginxSource<'_>,
    worker: Option<NginxWorker>,
) -> StaticReport {
    let g = &config.settings.guardian;
    let limits = ScanLimits::default();
    let mut findings = Vec::new();
    let mut agent_ports = Vec::new();
    for home in &g.agent_homes {
        let r = check_agent(
            home,
            config.settings.edge.panel != crate::config::Panel::None,
        );
        agent_ports.extend(r.control_ports());
        findings.extend(r.findings);
    }
    agent_ports.sort_unstable();
    agent_ports.dedup();
    let protected = ProtectedSet::for_config(config, &agent_ports);
    match nginx {
        NginxSource::DumpT(text) => {
            findings.extend(check_nginx_t_output(text, &protected));
            findings.extend(check_nginx_t_secrets(text));
        }
        NginxSource::Files { main, base_dir } => match crate::nginxconf::load(main, base_dir) {
            Ok(tree) => {
                findings.extend(check_nginx(&tree, &protected));
                findings.extend(check_nginx_secrets(&tree, &limits));
            }
            Err(_) => findings.extend(check_nginx_file(main, base_dir, &protected)),
        },
        NginxSource::Unavailable => {}
    }
    findings.extend(check_htpasswd(&config.layout.htpasswd, worker));
    for root in &g.web_roots {
        findings.extend(check_secrets(SecretPlace::WebRoot, root, &limits));
    }
    for log in &g.log_files {
        findings.extend(check_secrets(SecretPlace::Log, log, &limits));
    }
    StaticReport {
        findings,
        agent_ports,
    }
}
