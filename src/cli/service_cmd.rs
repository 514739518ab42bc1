//! `moltguard install` / `uninstall`: the whole stack as system services.

use super::nginx_cmd::nginx_err;
use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::config::Config;
use crate::exec;
use crate::fsutil;
use crate::nginx::control::Nginx;
use crate::service::{self, launchd, Plan, Platform, ServiceSpec};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Args)]
pub(super) struct ServiceArgs {
    /// Print what would be written and run, and do nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the files under DIR instead of / and run no service manager
    /// (an image build, a test). DIR/etc/systemd/system/ or DIR/Library/LaunchDaemons/.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// The service manager to write for [default: this machine's].
    #[arg(long, value_enum, value_name = "MANAGER")]
    platform: Option<Platform>,
}

/// The plan for this setup. `exe` is this moltguard, whose moltgate is
/// beside it.
pub(super) fn plan_for(cfg: &Config, exe: &Path, platform: Platform) -> Result<Plan, CliError> {
    let nginx = if cfg.nginx_managed() {
        Some(Nginx::from_config(cfg).map_err(nginx_err)?)
    } else {
        None
    };
    let spec = ServiceSpec::from_config(cfg, exe, nginx.as_ref().map(|n| n.binary()));
    service::plan(&spec, platform).map_err(|e| CliError::error(e, ""))
}

fn this_exe() -> Result<PathBuf, CliError> {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::error(format!("cannot find this program's path: {e}"), ""))
}

pub(super) fn install(ctx: &Ctx, args: ServiceArgs) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let exe = this_exe()?;
    let platform = args.platform.unwrap_or_else(Platform::host);
    let mut plan = plan_for(&cfg, &exe, platform)?;
    let gateway = exe.with_file_name("moltgate");
    if !gateway.is_file() {
        return Err(CliError::refused(
            format!(
                "{} not found: the gateway service runs it",
                gateway.display()
            ),
            "install moltgate beside moltguard (`cargo build --release` builds both)",
        ));
    }
    if let Some(root) = &args.root {
        plan = plan.under_root(root);
    }
    if args.dry_run {
        return Ok(print_plan(ctx, &plan, Done::DryRun));
    }
    let live = args.root.is_none();
    if live {
        require_root("install")?;
        if platform != Platform::host() {
            return Err(CliError::usage(
                format!("--platform {platform:?} is not this machine's service manager"),
                "add --root DIR to only write the files, or --dry-run to see them",
            ));
        }
        // launchd/systemd will run these binaries as root on every boot.
        for bin in [&exe, &gateway] {
            exec::resolve("moltguard", Some(bin), &[]).map_err(|e| {
                CliError::refused(
                    e.to_string(),
                    "copy moltguard and moltgate to a root-owned directory first, \
                     e.g. `sudo install -m 755 moltguard moltgate /usr/local/bin/`",
                )
            })?;
        }
        for dir in [&cfg.layout.log_dir, &cfg.layout.state_dir] {
            fsutil::ensure_dir(dir, 0o750).map_err(|e| CliError::error(e.to_string(), ""))?;
        }
    }
    for f in &plan.files {
        if let Some(parent) = f.path.parent() {
            fsutil::ensure_dir(parent, 0o755).map_err(|e| {
                CliError::error(format!("cannot create {}: {e}", parent.display()), "")
            })?;
        }
        fsutil::write_atomic(&f.path, f.contents.as_bytes(), f.mode)
            .map_err(|e| CliError::error(format!("cannot write {}: {e}", f.path.display()), ""))?;
    }
    if live {
        for cmd in &plan.install_commands {
            run(cmd, platform == Platform::Launchd && launchd::may_fail(cmd))?;
        }
    }
    Ok(print_plan(
        ctx,
        &plan,
        if live { Done::Live } else { Done::FilesOnly },
    ))
}

pub(super) fn uninstall(ctx: &Ctx, args: ServiceArgs) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let exe = std::env::current_exe().unwrap_or_default();
    let platform = args.platform.unwrap_or_else(Platform::host);
    let mut plan = plan_for(&cfg, &exe, platform)?;
    if let Some(root) = &args.root {
        plan = plan.under_root(root);
    }
    let live = args.root.is_none();
    let paths: Vec<&PathBuf> = plan.files.iter().map(|f| &f.path).collect();
    if args.dry_run {
        emit(
            ctx.json,
            serde_json::json!({"dry_run": true, "remove": paths, "commands": if live { plan.uninstall_commands.clone() } else { Vec::new() }}),
            || {
                if live {
                    println!("would run:");
                    for c in &plan.uninstall_commands {
                        println!("  {}", c.join(" "));
                    }
                }
                for p in &paths {
                    println!("would remove {}", p.display());
                }
            },
        );
        return Ok(Exit::Ok);
    }
    if live {
        require_root("uninstall")?;
        for cmd in &plan.uninstall_commands {
            // Stopping what is not running is not a failure of uninstall.
            run(cmd, true)?;
        }
    }
    for p in &paths {
        fsutil::remove_durable(p)
            .map_err(|e| CliError::error(format!("cannot remove {}: {e}", p.display()), ""))?;
    }
    emit(
        ctx.json,
        serde_json::json!({"ok": true, "removed": paths}),
        || {
            for p in &paths {
                println!("removed {}", p.display());
            }
            println!("services removed; the breaker keeps its state, and nginx's include stays");
        },
    );
    Ok(Exit::Ok)
}

#[derive(Clone, Copy, PartialEq)]
enum Done {
    DryRun,
    FilesOnly,
    Live,
}

fn print_plan(ctx: &Ctx, plan: &Plan, done: Done) -> Exit {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    v["dry_run"] = (done == Done::DryRun).into();
    v["commands_run"] = (done == Done::Live).into();
    emit(ctx.json, v, || {
        let verb = if done == Done::DryRun {
            "would write"
        } else {
            "wrote"
        };
        for f in &plan.files {
            println!(
                "{verb} {} (mode {:o}), {}:",
                f.path.display(),
                f.mode,
                f.purpose
            );
            println!("{}", f.contents);
        }
        match done {
            Done::DryRun => println!("would run:"),
            Done::Live => println!("ran:"),
            Done::FilesOnly => println!("not run (--root); on the real machine:"),
        }
        for c in &plan.install_commands {
            println!("  {}", c.join(" "));
        }
        if done == Done::Live {
            println!("`moltguard status` shows each service's state");
        }
    });
    Exit::Ok
}

fn require_root(what: &str) -> Result<(), CliError> {
    if exec::running_as_root() {
        Ok(())
    } else {
        Err(CliError::refused(
            format!("{what} needs root: the stack runs as system services"),
            format!("run `sudo moltguard {what}`, or add --dry-run to see what it would do"),
        ))
    }
}

fn run(cmd: &[String], tolerate_failure: bool) -> Result<(), CliError> {
    let Some((prog, args)) = cmd.split_first() else {
        return Ok(());
    };
    let prog = exec::resolve(prog, Some(Path::new(prog)), &[])
        .map_err(|e| CliError::error(e.to_string(), e.hint()))?;
    let out = Command::new(&prog)
        .args(args)
        .output()
        .map_err(|e| CliError::error(format!("cannot run {}: {e}", prog.display()), ""))?;
    if !out.status.success() && !tolerate_failure {
        return Err(CliError::error(
            format!(
                "`{}` failed: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            "see the system log (`journalctl -xe` or `log show`)",
        ));
    }
    Ok(())
}
