//! The running nginx: does its config test pass, does it run when traffic
//! should flow, does it serve the generation the state file names and
//! answer as that state should, and are the files it reads what moltguard
//! rendered?

use super::finding::Finding;
use crate::breaker::edge::{self, Live};
use crate::breaker::{BreakerRecord, ReasonCode};
use crate::config::Config;
use crate::nginx::control::{Nginx, NginxError};
use crate::nginx::probe;

/// Findings about what the running nginx serves right now. They can be
/// caught mid-way through a person's transition, so the daemon checks them
/// again under the breaker lock before acting on one.
pub const LIVE_FINDINGS: &[&str] = &[
    "NGINX_DRIFT",
    "NGINX_EDGE_UNVERIFIABLE",
    "NGINX_NOT_RUNNING",
    "NGINX_ORPHANED_WORKERS",
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
    let n = match nginx {
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
        if let Err(e) = n.test() {
            out.push(Finding::critical(
                "NGINX_CONFIG_INVALID",
                ReasonCode::NginxConfigInvalid,
                format!("{e}"),
                "fix the reported line (`moltguard nginx test` shows it); nginx keeps its old config until then",
            ));
        }
    }
    let seen = edge::observe(config, nginx, record);
    let at = probe::probe_address(
        config.settings.edge.listen_address,
        config.settings.edge.port,
    )
    .to_string();
    match seen.live {
        Live::Matches | Live::NothingServed => {}
        Live::DeniesFromOtherConfig { served } => out.push(
            Finding::warning(
                "NGINX_NOT_RELOADED",
                ReasonCode::NginxDrift,
                format!(
                    "nginx denies every request, but from {} instead of the committed generation {}: \
                     it could not load the current config",
                    served.map_or("a config without the breaker header".into(), |g| format!("generation {g}")),
                    record.generation
                ),
                "`moltguard nginx reload` says why (a port in use, a config error); nothing flows meanwhile",
            )
            .at(at),
        ),
        Live::NotServing(why) if seen.pid.is_none() => out.push(Finding::critical(
            "NGINX_NOT_RUNNING",
            ReasonCode::NginxDrift,
            format!("the breaker is {} but {why}", record.state.as_str().to_uppercase()),
            "start nginx (`moltguard nginx start`, or the system's service), then close the breaker again",
        )),
        Live::NotServing(why) => out.push(
            Finding::critical(
                "NGINX_EDGE_UNVERIFIABLE",
                ReasonCode::CheckFailed,
                format!("nginx runs, but the edge cannot be verified: {why}"),
                "make sure the moltguard site (with the breaker include) serves the edge port",
            )
            .at(at),
        ),
        Live::Violation(why) if seen.orphans.is_some() => out.push(Finding::critical(
            "NGINX_ORPHANED_WORKERS",
            ReasonCode::NginxDrift,
            why,
            "nothing to do by hand: the guardian stops them and opens the breaker; then `moltguard nginx start`",
        )),
        Live::Violation(why) => out.push(
            Finding::critical(
                "NGINX_DRIFT",
                ReasonCode::NginxDrift,
                why,
                "nothing to do by hand: the breaker is opened and rendered again; do not edit the include or reload nginx by hand",
            )
            .at(at),
        ),
    }
    out
}

/// The site (and a managed nginx's main config) against what moltguard.toml
/// renders now: after `[edge]` ports change, the site still proxies to the
/// old ones until it is rendered again.
pub fn check_site(config: &Config) -> Vec<Finding> {
    use crate::nginx::render;
    let l = &config.layout;
    let mut files = vec![(l.site_file(), render::render_site(config))];
    if config.nginx_managed() {
        files.push((l.managed_main_conf(), render::render_managed_main(config)));
    }
    files
        .into_iter()
        .filter_map(|(path, want)| {
            let want = want.ok()?;
            let have = std::fs::read_to_string(&path).ok()?;
            (have != want).then(|| {
                Finding::warning(
                    "NGINX_SITE_STALE",
                    ReasonCode::NginxDrift,
                    format!(
                        "{} is not what {} renders now (the [edge] settings changed since, or it was edited): \
                         nginx may proxy to the wrong port or miss a server",
                        path.display(),
                        l.config_file.display()
                    ),
                    "`moltguard init --force` renders it again (every setting is kept), then `moltguard nginx reload`",
                )
                .at(path.display().to_string())
            })
        })
        .collect()
}

/// The include and the allow token against a fresh rendering of `record`
/// (`moltguard audit` reports it; the daemon and every command repair it).
pub fn check_edge_files(config: &Config, record: &BreakerRecord) -> Vec<Finding> {
    let drift = match edge::check(record, &config.layout) {
        Ok(d) => d,
        Err(e) => {
            return vec![Finding::critical(
                "EDGE_FILES_UNCHECKABLE",
                ReasonCode::CheckFailed,
                e.to_string(),
                "move moltguard's files to a plain path",
            )]
        }
    };
    drift
        .iter()
        .map(|d| {
            let f = if d.is_harmless_token() {
                Finding::warning
            } else {
                Finding::critical
            };
            f(
                "EDGE_FILES_DRIFT",
                ReasonCode::NginxDrift,
                d.to_string(),
                "nothing to do by hand: any moltguard command (or the guardian) opens the breaker and renders both again",
            )
            .at(config.layout.include_file().display().to_string())
        })
        .collect()
}
