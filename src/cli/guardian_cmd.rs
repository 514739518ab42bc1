//! `moltguard guardian run` and `moltguard audit`.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::guardian::daemon;
use crate::guardian::scan::Scanner;
use crate::guardian::Severity;
use crate::logging::{self, LogFormat};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(super) enum GuardianCmd {
    /// Run the guardian in the foreground (launchd/systemd run this).
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// Log lines as text or JSON (stderr; journald and launchd capture it).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

pub(super) fn run(ctx: &Ctx, cmd: GuardianCmd) -> Result<Exit, CliError> {
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

/// `moltguard audit`: the guardian's checks, once. It acts on no finding;
/// like every command it first records what is already true (an untrusted
/// state file, an interrupted change, drift in the edge files: all toward
/// OPEN), and a repair counts as a critical finding.
pub(super) fn audit(ctx: &Ctx) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let (settled, settle_error) = match crate::breaker::settle(&cfg) {
        Ok(done) => (done, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let mut scanner = Scanner::new(cfg);
    let report = scanner.scan(true);
    let repaired = settled.iter().any(|s| s.kind.is_repair()) || settle_error.is_some();
    let exit = match report.worst() {
        _ if repaired => Exit::AuditCritical,
        Some(Severity::Critical) => Exit::AuditCritical,
        Some(Severity::Warning) => Exit::AuditWarnings,
        _ => Exit::Ok,
    };
    let mut value = serde_json::to_value(&report).unwrap_or_default();
    value["settled"] = serde_json::to_value(&settled).unwrap_or_default();
    value["settle_error"] = serde_json::to_value(&settle_error).unwrap_or_default();
    emit(ctx.json, value, || {
        for s in &settled {
            println!("repaired: {}", s.message);
        }
        if let Some(e) = &settle_error {
            println!("CRITICAL could not record or repair the breaker's state: {e}");
        }
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
    });
    Ok(exit)
}
