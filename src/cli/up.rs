//! `moltguard up`: the whole stack in the foreground, on its defaults.

use super::init::{self, InitArgs};
use super::nginx_cmd::nginx_err;
use super::output::{CliError, Exit};
use super::Ctx;
use crate::nginx::control::Nginx;
use crate::nginx::probe;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The port nginx listens on (loopback), for a new setup.
    #[arg(long, value_name = "PORT")]
    edge_port: Option<u16>,
    /// The loopback port of the upstream, for a new setup.
    #[arg(long, value_name = "PORT")]
    upstream_port: Option<u16>,
    /// Do not run the guardian (e.g. when it runs as a system service already).
    #[arg(long)]
    no_guardian: bool,
}

pub fn run(ctx: &Ctx, args: UpArgs) -> Result<Exit, CliError> {
    let existing = ctx.config_allow_missing()?;
    let out = init::init(
        ctx,
        &InitArgs {
            edge_port: if existing.config_file_found {
                None
            } else {
                args.edge_port
            },
            upstream_port: if existing.config_file_found {
                None
            } else {
                args.upstream_port
            },
            system_nginx: false,
            force: false,
        },
    )?;
    let cfg = out.config;
    if !cfg.nginx_managed() {
        return Err(CliError::refused(
            "this setup drives the system nginx; `up` runs a private one",
            "use `moltguard --home DIR up` for a self-contained stack",
        ));
    }
    crate::breaker::settle(&cfg)?;
    let nginx = Nginx::from_config(&cfg).map_err(nginx_err)?;
    nginx.test().map_err(nginx_err)?;
    let pid = nginx.start().map_err(nginx_err)?;
    let gateway = start_gateway(&cfg);
    let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
    let prefix = init::command_prefix(&cfg);
    println!("moltguard is up (Ctrl-C stops everything it started)");
    println!("  edge:     http://{addr}/  (nginx pid {pid})");
    match &gateway {
        Ok(child) => println!(
            "  gateway:  moltgate (pid {}) on http://127.0.0.1:{}/ behind the edge (OpenAI-compatible /v1/...), log {}",
            child.id(),
            cfg.settings.edge.upstream_port,
            cfg.layout.log_dir.join("moltgate.log").display()
        ),
        Err(why) => println!("  gateway:  not started: {why}"),
    }
    println!(
        "  logs:     {}/logs/",
        cfg.layout.managed_prefix().display()
    );
    match probe::probe(addr, Duration::from_secs(2)) {
        Ok(s) => println!(
            "  breaker:  {} (generation {})",
            s.state.label(),
            s.generation
        ),
        Err(e) => println!("  breaker:  edge probe failed: {e}"),
    }
    if crate::auth::htpasswd::auth_problem(&cfg.layout.htpasswd).is_some() {
        println!("next: `{prefix} auth add-user NAME`, then `{prefix} breaker close --for 30m`");
    } else {
        println!(
            "next: `{prefix} breaker close --for 30m` to let traffic through for half an hour"
        );
    }
    if args.no_guardian {
        println!("guardian: off (--no-guardian); nothing opens the breaker for you");
    } else {
        // The guardian in the foreground: its findings and breaker changes
        // stream to this terminal as log lines.
        println!(
            "guardian: scanning every {} and on file changes; findings follow below",
            humantime::format_duration(cfg.settings.guardian.interval)
        );
        crate::logging::init(crate::logging::LogFormat::Text, "guardian");
        let guardian_cfg = cfg.clone();
        std::thread::spawn(move || {
            if let Err(e) = crate::guardian::daemon::run(guardian_cfg) {
                tracing::error!(error = %e, "the guardian stopped");
            }
        });
    }
    wait_for_shutdown_signal();
    if let Ok(mut child) = gateway {
        println!("stopping moltgate…");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
    }
    println!("stopping nginx…");
    nginx.stop(Duration::from_secs(5)).map_err(nginx_err)?;
    Ok(Exit::Ok)
}

/// Starts `moltgate` (the binary next to this one) on the upstream port,
/// with keys read from this setup's state dir.
fn start_gateway(cfg: &crate::config::Config) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let gate = exe.with_file_name("moltgate");
    if !gate.is_file() {
        return Err(format!(
            "{} not found (build it: `cargo build --release --bin moltgate`)",
            gate.display()
        ));
    }
    let log = cfg.layout.log_dir.join("moltgate.log");
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut cmd = std::process::Command::new(&gate);
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{}", cfg.settings.edge.upstream_port))
        .arg("--state-dir")
        .arg(&cfg.layout.state_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file);
    if let Some(home) = &cfg.layout.home {
        cmd.env("MOLTGUARD_HOME", home);
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", gate.display()))
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_shutdown_signal() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let Ok(rt) = rt else { return };
    rt.block_on(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
