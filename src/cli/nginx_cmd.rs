//! `moltguard nginx start|stop|reload|test|prepare|run`.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::breaker::{self, edge, store, Actor, ReasonCode, Request};
use crate::nginx::control::Nginx;
use crate::nginx::probe;
use clap::Subcommand;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub(super) enum NginxCmd {
    /// Start the private nginx (managed setups).
    Start,
    /// Stop it.
    Stop,
    /// Test the configuration and reload.
    Reload,
    /// Run `nginx -t` on the configuration.
    Test,
    /// Write the breaker include from the committed state and test the
    /// configuration: what a service runs before nginx starts.
    Prepare,
    /// Prepare, then become the private nginx in the foreground (for a
    /// service manager; `start` daemonizes instead).
    Run,
    /// Print a fail2ban jail that bans addresses with wrong edge passwords
    /// (for /etc/fail2ban/jail.d/moltguard.local).
    Fail2banJail,
}

pub(super) fn run(ctx: &Ctx, cmd: NginxCmd) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    // Every command but the jail's drives nginx (and needs its binary).
    let nginx = || Nginx::from_config(&cfg).map_err(nginx_err);
    let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
    match cmd {
        NginxCmd::Start | NginxCmd::Reload => {
            let nginx = nginx()?;
            // Record what is true before serving anything: an include that
            // is not the committed state's rendering is never (re)loaded.
            let settled = breaker::settle(&cfg)?;
            nginx.test().map_err(nginx_err)?;
            let (verb, pid) = match cmd {
                NginxCmd::Start => ("runs", nginx.start().map_err(nginx_err)?),
                _ => {
                    nginx.reload().map_err(nginx_err)?;
                    ("reloaded", nginx.running_pid().unwrap_or_default())
                }
            };
            let served = verify_served(&cfg, addr)?;
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "pid": pid, "listen": addr, "served": served, "settled": settled}),
                || {
                    for s in &settled {
                        println!("note: {}", s.message);
                    }
                    println!("nginx {verb} (pid {pid}) on http://{addr}/");
                    println!(
                        "breaker: {} (generation {}, verified)",
                        served.state.label(),
                        served.generation
                    );
                },
            );
        }
        NginxCmd::Stop => {
            nginx()?.stop(Duration::from_secs(5)).map_err(nginx_err)?;
            emit(ctx.json, serde_json::json!({"ok": true}), || {
                println!("nginx stopped")
            });
        }
        NginxCmd::Fail2banJail => {
            let jail = crate::nginx::fail2ban::render_jail(&cfg);
            let log = crate::nginx::fail2ban::edge_error_log(&cfg);
            emit(
                ctx.json,
                serde_json::json!({"jail": jail, "logpath": log}),
                || print!("{jail}"),
            );
        }
        NginxCmd::Prepare => {
            let nginx = nginx()?;
            let settled = breaker::settle(&cfg)?;
            nginx.test().map_err(nginx_err)?;
            emit(
                ctx.json,
                serde_json::json!({"ok": true, "settled": settled}),
                || {
                    for s in &settled {
                        println!("note: {}", s.message);
                    }
                    println!("breaker include written and nginx configuration valid");
                },
            );
        }
        NginxCmd::Run => {
            let nginx = nginx()?;
            breaker::settle(&cfg)?;
            nginx.test().map_err(nginx_err)?;
            return Err(nginx_err(nginx.exec_foreground()));
        }
        NginxCmd::Test => {
            nginx()?.test().map_err(nginx_err)?;
            emit(ctx.json, serde_json::json!({"ok": true}), || {
                println!("nginx configuration is valid")
            });
        }
    }
    Ok(Exit::Ok)
}

/// After a start or reload: nginx must serve the committed generation and
/// answer as that state should. If not, the breaker is opened through a
/// full transition (which stops nginx if even OPEN cannot be verified).
fn verify_served(
    cfg: &crate::config::Config,
    addr: std::net::SocketAddr,
) -> Result<probe::Served, CliError> {
    let record = store::load(&cfg.layout.state_files(), chrono::Utc::now()).record;
    let failure = match probe::wait_for_generation(
        addr,
        record.generation,
        cfg.settings.nginx.verify_timeout,
    ) {
        Ok(s) => match edge::answers_as_it_should(record.state, &s) {
            None => return Ok(s),
            Some(why) => format!("nginx serves generation {}, but {why}", s.generation),
        },
        Err(e) => e.to_string(),
    };
    let opened = breaker::transition(
        cfg,
        Request::open(ReasonCode::NginxDrift, failure.clone(), Actor::User),
    );
    let after = match opened {
        Ok(r) => format!(
            "the breaker was opened (generation {}, {}): {}",
            r.after.generation,
            r.outcome.as_str(),
            r.message
        ),
        Err(e) => format!("opening the breaker failed too: {e}"),
    };
    Err(CliError {
        message: format!("nginx does not serve the breaker's state: {failure}; {after}"),
        hint: "`moltguard status` shows what is served; nginx's error log says why".into(),
        exit: Exit::NotApplied,
    })
}

pub(super) fn nginx_err(e: crate::nginx::control::NginxError) -> CliError {
    use crate::nginx::control::NginxError as N;
    let hint = match &e {
        N::Exec(x) => x.hint(),
        N::TestFailed(_) => "fix the reported line; moltguard's own files are regenerated by `moltguard init --force`".into(),
        N::NoSuchUser(_) => "set [nginx] user in moltguard.toml to an existing unprivileged user".into(),
        _ => "see nginx's error log".into(),
    };
    CliError::error(e.to_string(), hint)
}
