//! `moltguard install` / `uninstall`: the guardian as a system service.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::exec;
use crate::fsutil;
use crate::service::{self, Plan, ServiceSpec};
use clap::Args;
use std::path::Path;
use std::process::Command;

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Print what would be written and run, and do nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn install(ctx: &Ctx, args: ServiceArgs) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| CliError::error(format!("cannot find this program's path: {e}"), ""))?;
    let plan =
        service::plan(&ServiceSpec::from_config(&cfg, &exe)).map_err(|e| CliError::error(e, ""))?;
    if args.dry_run {
        return Ok(print_plan(ctx, &plan, true));
    }
    require_root("install")?;
    // launchd/systemd will run this binary as root on every boot.
    exec::resolve("moltguard", Some(&exe), &[]).map_err(|e| {
        CliError::refused(
            e.to_string(),
            "copy moltguard to a root-owned directory first, e.g. `sudo install -m 755 moltguard /usr/local/bin/`",
        )
    })?;
    fsutil::ensure_dir(&cfg.layout.log_dir, 0o750)
        .map_err(|e| CliError::error(e.to_string(), ""))?;
    fsutil::write_atomic(&plan.path, plan.contents.as_bytes(), plan.mode)
        .map_err(|e| CliError::error(format!("cannot write {}: {e}", plan.path.display()), ""))?;
    for (i, cmd) in plan.install_commands.iter().enumerate() {
        // The first launchd command unloads an old copy and may fail harmlessly.
        let tolerate = cfg!(target_os = "macos") && i == 0;
        run(cmd, tolerate)?;
    }
    Ok(print_plan(ctx, &plan, false))
}

pub fn uninstall(ctx: &Ctx, args: ServiceArgs) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let exe = std::env::current_exe().unwrap_or_default();
    let plan =
        service::plan(&ServiceSpec::from_config(&cfg, &exe)).map_err(|e| CliError::error(e, ""))?;
    if args.dry_run {
        emit(
            ctx.json,
            serde_json::json!({"dry_run": true, "remove": plan.path, "commands": plan.uninstall_commands}),
            || {
                println!("would run:");
                for c in &plan.uninstall_commands {
                    println!("  {}", c.join(" "));
                }
                println!("would remove {}", plan.path.display());
            },
        );
        return Ok(Exit::Ok);
    }
    require_root("uninstall")?;
    for cmd in &plan.uninstall_commands {
        run(cmd, true)?;
    }
    fsutil::remove_durable(&plan.path).map_err(|e| CliError::error(e.to_string(), ""))?;
    emit(
        ctx.json,
        serde_json::json!({"ok": true, "removed": plan.path}),
        || {
            println!(
                "guardian service removed ({}); the breaker keeps its state",
                plan.path.display()
            );
        },
    );
    Ok(Exit::Ok)
}

fn print_plan(ctx: &Ctx, plan: &Plan, dry_run: bool) -> Exit {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    v["dry_run"] = dry_run.into();
    emit(ctx.json, v, || {
        println!(
            "{} {} (mode {:o}):",
            if dry_run { "would write" } else { "wrote" },
            plan.path.display(),
            plan.mode
        );
        println!("{}", plan.contents);
        println!("{}", if dry_run { "would run:" } else { "ran:" });
        for c in &plan.install_commands {
            println!("  {}", c.join(" "));
        }
    });
    Exit::Ok
}

fn require_root(what: &str) -> Result<(), CliError> {
    if exec::running_as_root() {
        Ok(())
    } else {
        Err(CliError::refused(
            format!("{what} needs root: the guardian runs as a system service"),
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
            "see the system log",
        ));
    }
    Ok(())
}
