//! `moltguard status`: the state, what it means, and what nginx really serves.

use super::output::{emit, relative, CliError, Exit};
use super::Ctx;
use crate::breaker::{self, store, BreakerState, SettlementKind};
use crate::guardian::daemon;
use crate::nginx::control::Nginx;
use crate::nginx::probe;
use chrono::Utc;
use serde_json::json;
use std::time::Duration;

pub fn run(ctx: &Ctx) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    // Record what is already true (repair an invalid file, an expired lifetime).
    // A user who may not write the state dir still gets a read-only status.
    let (settled, settle_error) = match breaker::settle(&cfg) {
        Ok(done) => (done, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let now = Utc::now();
    let loaded = store::load(&cfg.layout.state_file(), now);
    let r = &loaded.record;
    let effective = r.effective_state(now);

    let nginx = Nginx::from_config(&cfg);
    let pid = nginx.as_ref().ok().and_then(Nginx::running_pid);
    let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
    let served = pid.map(|_| probe::probe(addr, Duration::from_secs(2)));

    // Healthy: the edge serves exactly this generation, or nothing is served
    // while the breaker is open anyway.
    let (healthy, edge_summary) = match (&nginx, pid, &served) {
        (Err(e), _, _) => (effective == BreakerState::Open, format!("nginx unavailable: {e}")),
        (Ok(_), None, _) => (
            effective == BreakerState::Open,
            "nginx is not running: nothing is served".to_string(),
        ),
        (Ok(_), Some(p), Some(Ok(s))) if s.generation == r.generation => (
            true,
            format!("nginx (pid {p}) serves generation {} on {addr}: HTTP {} to an anonymous request", s.generation, s.http_status),
        ),
        (Ok(_), Some(p), Some(Ok(s))) => (
            false,
            format!(
                "DRIFT: nginx (pid {p}) serves generation {} ({}), the state file says {}; run `moltguard breaker reapply`",
                s.generation, s.state, r.generation
            ),
        ),
        (Ok(_), Some(p), Some(Err(e))) => (false, format!("nginx (pid {p}) runs but the probe failed: {e}")),
        (Ok(_), Some(_), None) => unreachable!("a probe runs whenever a pid is known"),
    };
    let repaired = settled
        .iter()
        .any(|s| s.kind == SettlementKind::RepairedState);
    let healthy = healthy && !repaired && loaded.problem.is_none() && settle_error.is_none();

    let guardian = daemon::read_status(&cfg);
    let guardian_running = guardian.as_ref().is_some_and(|g| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(g.pid as i32), None).is_ok()
    });
    let guardian_json = match &guardian {
        Some(g) => json!({
            "running": guardian_running,
            "pid": g.pid,
            "last_scan_at": g.last_scan_at,
            "next_scan_at": g.next_scan_at,
            "scan_cpu_us": g.scan_cpu_us,
            "findings": g.findings,
        }),
        None => json!({"running": false, "findings": []}),
    };

    let value = json!({
        "ok": healthy,
        "state": r.state,
        "effective_state": effective,
        "meaning": effective.meaning(),
        "label": effective.label(),
        "reason": r.reason,
        "detail": r.detail,
        "actor": r.actor,
        "generation": r.generation,
        "changed_at": r.changed_at,
        "expires_at": r.expires_at,
        "last_apply": r.last_apply,
        "state_problem": loaded.problem.as_ref().map(|p| p.to_string()),
        "settled": settled,
        "settle_error": settle_error,
        "nginx": {
            "managed": cfg.nginx_managed(),
            "pid": pid,
            "served": served.as_ref().and_then(|s| s.as_ref().ok()),
            "summary": edge_summary,
        },
        "guardian": guardian_json,
        "paths": {
            "config": cfg.layout.config_file,
            "state": cfg.layout.state_file(),
            "audit_log": cfg.layout.audit_log(),
            "htpasswd": cfg.layout.htpasswd,
            "include": cfg.layout.include_file(),
        },
    });
    emit(ctx.json, value, || {
        println!("breaker:    {}", effective.label());
        if effective != r.state {
            println!(
                "            (recorded as {}, but its lifetime ended)",
                r.state.as_str().to_uppercase()
            );
        }
        println!(
            "reason:     {}{}",
            r.reason,
            if r.detail.is_empty() {
                String::new()
            } else {
                format!(" — {}", r.detail)
            }
        );
        println!(
            "since:      {} ({}, by {})",
            r.changed_at.to_rfc3339(),
            relative(r.changed_at, now),
            r.actor
        );
        if let Some(t) = r.expires_at {
            println!("expires:    {} ({})", t.to_rfc3339(), relative(t, now));
        }
        println!("generation: {}", r.generation);
        if let Some(a) = &r.last_apply {
            println!(
                "last apply: {} → {} (generation {}): {}",
                a.target,
                a.outcome.as_str(),
                a.generation,
                a.message
            );
        }
        println!("edge:       {edge_summary}");
        match &guardian {
            Some(g) => {
                println!(
                    "guardian:   {} (pid {}), last scan {}, next {}: {}",
                    if guardian_running { "running" } else { "NOT running" },
                    g.pid,
                    relative(g.last_scan_at, now),
                    relative(g.next_scan_at, now),
                    if g.findings.is_empty() { "no findings".to_string() } else { format!("{} finding(s)", g.findings.len()) }
                );
                for f in &g.findings {
                    println!("            {} {}: {} — fix: {}", f.severity, f.id, f.what, f.fix);
                }
            }
            None => println!("guardian:   never ran here (`moltguard guardian run`, or `sudo moltguard install`)"),
        }
        for s in &settled {
            let label = match s.kind {
                SettlementKind::RepairedState => "repaired:  ",
                SettlementKind::RecordedExpiry => "recorded:  ",
            };
            println!("{label} {}", s.message);
        }
        if let Some(e) = &settle_error {
            println!("warning:    could not record or repair the state: {e}");
        }
        if let Some(p) = &loaded.problem {
            println!("warning:    {p}");
        }
        println!("health:     {}", if healthy { "ok" } else { "NOT OK" });
    });
    Ok(if healthy { Exit::Ok } else { Exit::Unhealthy })
}
