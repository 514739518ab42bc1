//! `moltguard guardian run` and `moltguard audit`.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::guardian::daemon;
use crate::guardian::scan::Scanner;
use crate::guardian::Severity;
use crate::logging::{self, LogFormat};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum GuardianCmd {
    /// Run the guardian in the foreground (launchd/systemd run this).
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Log lines as text or JSON (stderr; journald and launchd capture it).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub fn run(ctx: &Ctx, cmd: GuardianCmd) -> Result<Exit, CliError> {
    let GuardianCmd::Run(args) = cmd;
    let cfg = ctx.config()?;
    logging::init(args.log_format, "guardian");
    daemon::run(cfg).map_err(|e| {
        CliError::error(
            format!("the guardian stopped: {e}"),
            "see the log lines above",
        )
    })?;
    Ok(Exit::Ok)
}

/// `moltguard audit`: the guardian's checks, once, changing nothing.
pub fn audit(ctx: &Ctx) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let mut scanner = Scanner::new(cfg);
    let report = scanner.scan(true);
    let worst = report.worst();
    let exit = match worst {
        Some(Severity::Critical) => Exit::AuditCritical,
        Some(Severity::Warning) => Exit::AuditWarnings,
        _ => Exit::Ok,
    };
    emit(
        ctx.json,
        serde_json::to_value(&report).unwrap_or_default(),
        || {
            if report.findings.is_empty() {
                println!(
                    "no findings: {} sockets checked, protected ports {:?}",
                    report.sockets_seen,
                    report
                        .protected_ports
                        .iter()
                        .map(|p| p.port)
                        .collect::<Vec<_>>()
                );
            }
            for f in &report.findings {
                let sev = match f.severity {
                    Severity::Critical => "CRITICAL",
                    Severity::Warning => "warning ",
                    Severity::Info => "info    ",
                };
                println!("{sev} {}: {}", f.id, f.what);
                if let Some(l) = &f.location {
                    println!("         at {l}");
                }
                println!("         fix: {}", f.fix);
            }
            if let Some(us) = report.cpu_us {
                println!("(scan took {} µs of CPU, {} µs wall)", us, report.wall_us);
            }
        },
    );
    Ok(exit)
}
