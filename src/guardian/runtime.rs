//! The running nginx: does its config test pass, does it run when traffic
//! should flow, and does it serve the generation the state file names?

use super::finding::Finding;
use crate::breaker::{BreakerRecord, ReasonCode};
use crate::config::Config;
use crate::nginx::control::{Nginx, NginxError};
use crate::nginx::probe;
use std::time::Duration;

/// Findings about what the running nginx serves right now. They can be
/// caught mid-way through a person's transition, so the daemon checks them
/// again under the breaker lock before acting on one.
pub const LIVE_FINDINGS: &[&str] = &[
    "NGINX_DRIFT",
    "NGINX_EDGE_UNVERIFIABLE",
    "NGINX_NOT_RUNNING",
];

/// Runs `nginx -t` (when asked) and compares what nginx serves with `record`.
pub fn check(
    config: &Config,
    nginx: &Result<Nginx, NginxError>,
    record: &BreakerRecord,
    run_config_test: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let admits = record.state.admits_traffic();
    let nginx = match nginx {
        Ok(n) => n,
        Err(e) => {
            if admits {
                out.push(Finding::critical(
                    "NGINX_UNAVAILABLE",
                    ReasonCode::CheckFailed,
                    format!("the breaker lets traffic through, but nginx cannot be used: {e}"),
                    "install nginx or fix [nginx] binary in moltguard.toml",
                ));
            }
            return out;
        }
    };
    if run_config_test {
        if let Err(e) = nginx.test() {
            out.push(Finding::critical(
                "NGINX_CONFIG_INVALID",
                ReasonCode::NginxConfigInvalid,
                format!("{e}"),
                "fix the reported line (`moltguard nginx test` shows it); nginx keeps its old config until then",
            ));
        }
    }
    let Some(pid) = nginx.running_pid() else {
        if admits {
            out.push(Finding::critical(
                "NGINX_NOT_RUNNING",
                ReasonCode::NginxDrift,
                format!("the breaker is {} but nginx is not running", record.state.as_str().to_uppercase()),
                "start nginx (`moltguard nginx start`, or the system's service), then close the breaker again",
            ));
        }
        return out;
    };
    let addr = probe::probe_address(
        config.settings.edge.listen_address,
        config.settings.edge.port,
    );
    match probe::probe(addr, Duration::from_secs(2)) {
        Ok(s) if s.generation == record.generation => {}
        Ok(s) => out.push(
            Finding::critical(
                "NGINX_DRIFT",
                ReasonCode::NginxDrift,
                format!(
                    "nginx (pid {pid}) serves breaker generation {} ({}), but the state file says generation {} ({})",
                    s.generation, s.state, record.generation, record.state
                ),
                "run `moltguard breaker reapply`; do not edit the breaker include by hand",
            )
            .at(addr.to_string()),
        ),
        Err(e) => out.push(
            Finding::critical(
                "NGINX_EDGE_UNVERIFIABLE",
                ReasonCode::CheckFailed,
                format!("nginx (pid {pid}) runs, but the edge cannot be verified: {e}"),
                "make sure the moltguard site (with the breaker include) serves the edge port",
            )
            .at(addr.to_string()),
        ),
    }
    out
}
