//! `moltguard audit-log [verify]`.

use super::output::{emit, CliError, Exit};
use super::Ctx;
use crate::breaker::{audit, store};
use chrono::Utc;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Show only the newest N entries.
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Subcommand)]
enum AuditAction {
    /// Check the hash chain, and that it ends where the state file says.
    Verify,
}

pub(super) fn run(ctx: &Ctx, args: AuditArgs) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    let path = cfg.layout.audit_log();
    let io_err =
        |e: std::io::Error| CliError::error(format!("cannot read {}: {e}", path.display()), "");
    match args.action {
        Some(AuditAction::Verify) => {
            let loaded = store::load(&cfg.layout.state_files(), Utc::now());
            let head = if loaded.problem.is_none() {
                loaded.record.audit_head.clone()
            } else {
                None
            };
            let v = audit::verify(&path, head.as_ref()).map_err(io_err)?;
            emit(
                ctx.json,
                serde_json::to_value(&v).unwrap_or_default(),
                || {
                    if v.intact {
                        println!(
                            "audit log intact: {} entries, hash chain unbroken{}",
                            v.entries,
                            if head.is_some() {
                                ", ends where the state file says"
                            } else {
                                ""
                            }
                        );
                    } else if let Some((line, why)) = &v.first_break {
                        println!("AUDIT LOG TAMPERED: line {line} {why}");
                        println!("{} entries before it verify", v.entries);
                    }
                },
            );
            Ok(if v.intact {
                Exit::Ok
            } else {
                Exit::AuditBroken
            })
        }
        None => {
            let entries = audit::read_all(&path).map_err(io_err)?;
            let shown = &entries[entries.len().saturating_sub(args.limit)..];
            emit(
                ctx.json,
                serde_json::to_value(shown).unwrap_or_default(),
                || {
                    for e in shown {
                        println!(
                            "#{:<4} {}  {:<8} {} → {}  {}  gen {}  {}{}",
                            e.seq,
                            e.at.format("%Y-%m-%d %H:%M:%S"),
                            e.actor.to_string(),
                            e.from,
                            e.to,
                            e.reason,
                            e.generation,
                            e.outcome,
                            if e.detail.is_empty() {
                                String::new()
                            } else {
                                format!("  ({})", e.detail)
                            }
                        );
                    }
                    if shown.is_empty() {
                        println!("the audit log is empty");
                    }
                },
            );
            Ok(Exit::Ok)
        }
    }
}
