//! `moltguard status`: the state, what it means, and what nginx really serves.

use super::output::{emit, relative, CliError, Exit};
use super::{init, Ctx};
use crate::breaker::edge::{self, Live};
use crate::breaker::remedy;
use crate::breaker::{
    self, store, Actor, BreakerState, Conditional, ReasonCode, Request, Settlement, SettlementKind,
};
use crate::guardian::daemon;
use crate::nginx::control::Nginx;
use crate::nginx::probe;
use crate::service::status::ServiceState;
use chrono::Utc;
use serde_json::json;

pub(super) fn run(ctx: &Ctx) -> Result<Exit, CliError> {
    let cfg = ctx.config()?;
    // Record what is already true (repair an untrusted file, finish an
    // interrupted change, an expired lifetime, drift in the edge files).
    // A user who may not write the state dir still gets a read-only status.
    let (mut settled, mut settle_error) = match breaker::settle(&cfg) {
        Ok(done) => (done, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let nginx = Nginx::from_config(&cfg);
    let mut loaded = store::load(&cfg.layout.state_files(), Utc::now());
    let mut seen = edge::observe(&cfg, &nginx, &loaded.record);
    // More served than the state allows: repair toward OPEN, never toward traffic.
    if let (Live::Violation(why), None) = (&seen.live, &settle_error) {
        let why = why.clone();
        let repaired = breaker::transition_if(
            &cfg,
            Request::open(ReasonCode::NginxDrift, why.clone(), Actor::System),
            // Seen without the lock: a transition may have been mid-way.
            |current| {
                matches!(
                    edge::observe(&cfg, &nginx, current).live,
                    Live::Violation(_)
                )
            },
        );
        match repaired {
            Ok(Conditional::Ran(r)) => settled.push(Settlement {
                kind: SettlementKind::RepairedDrift,
                message: format!(
                    "{why}: the breaker was forced OPEN (generation {}, {}): {}",
                    r.after.generation,
                    r.outcome.as_str(),
                    r.message
                ),
            }),
            // Settled a moment ago; anything found since is said too.
            Ok(Conditional::NotNeeded { settled: more }) => settled.extend(more),
            Err(e) => settle_error = Some(e.to_string()),
        }
        loaded = store::load(&cfg.layout.state_files(), Utc::now());
        seen = edge::observe(&cfg, &nginx, &loaded.record);
    }
    let now = Utc::now();
    let r = &loaded.record;
    let effective = r.effective_state(now);
    let addr = probe::probe_address(cfg.settings.edge.listen_address, cfg.settings.edge.port);
    let (pid, served) = (seen.pid, seen.served);
    let on = |s: &probe::Served| {
        format!(
            "generation {} ({}) on {addr}: HTTP {} to an anonymous request",
            s.generation, s.state, s.http_status
        )
    };
    let edge_summary = match (&seen.live, pid, &served) {
        (Live::Matches, Some(p), Some(s)) => format!("nginx (pid {p}) serves {}", on(s)),
        (Live::NothingServed, _, _) => match &nginx {
            Err(e) => format!("nginx unavailable: {e}"),
            Ok(_) if pid.is_none() => "nginx is not running: nothing is served".into(),
            Ok(_) => format!("nothing answers on {addr}: nothing is served"),
        },
        (Live::DeniesFromOtherConfig { served: g }, _, _) => format!(
            "nginx denies every request (HTTP 503), but from {} instead of generation {}: \
             it could not load the current one; `moltguard nginx reload` shows why",
            g.map_or("a config without the breaker header".into(), |g| format!(
                "generation {g}"
            )),
            r.generation
        ),
        (Live::NotServing(why), _, _) => format!("{why}: nothing is served"),
        (Live::Violation(why), _, _) => format!("NOT SAFE: {why}; could not be repaired"),
        (Live::Matches, _, _) => "nginx serves the state".into(),
    };
    // Healthy: the edge serves exactly this generation (or nothing, while
    // the breaker is open anyway), and nothing had to be repaired.
    let repaired = settled.iter().any(|s| s.kind.is_repair());
    let healthy =
        seen.live.is_exact() && !repaired && loaded.problem.is_none() && settle_error.is_none();

    let guardian = daemon::read_status(&cfg);
    let contained = crate::guardian::contain::read(&cfg);
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

    let services = services_of(&cfg);
    // What to do about it: the dashboard's banner, as text.
    let fix = remedy::finding_fix(
        &r.detail,
        guardian
            .iter()
            .flat_map(|g| &g.findings)
            .map(|f| (f.id.as_str(), f.fix.as_str())),
    );
    let known = remedy::Known {
        finding_fix: fix,
        auth_missing: crate::auth::htpasswd::auth_problem(&cfg.layout.htpasswd).is_some(),
    };
    let remedy = remedy::remedy(r, now, &init::command_prefix(&cfg), known);

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
        "remedy": remedy,
        "state_problem": loaded.problem.as_ref().map(|p| p.to_string()),
        "settled": settled,
        "settle_error": settle_error,
        "nginx": {
            "managed": cfg.nginx_managed(),
            "pid": pid,
            "orphaned_workers_group": seen.orphans,
            "served": served,
            "summary": edge_summary,
        },
        "guardian": guardian_json,
        "services": services,
        "containment": contained,
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
        if contained.is_active() {
            println!(
                "contained:  port(s) {:?} blocked from other machines by the {} until the bind is fixed and the breaker closed again",
                contained.ports, contained.firewall
            );
        }
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
        print_services(&services);
        for s in &settled {
            let label = if s.kind.is_repair() {
                "repaired:  "
            } else {
                "recorded:  "
            };
            println!("{label} {}", s.message);
        }
        if let Some(e) = &settle_error {
            println!("warning:    could not record or repair the state: {e}");
        }
        if let Some(p) = &loaded.problem {
            println!("warning:    {p}");
        }
        if remedy.state == BreakerState::Open {
            let lines = remedy.first.iter().cloned().chain(
                remedy
                    .commands
                    .iter()
                    .map(|c| format!("{}    ({})", c.run, c.does)),
            );
            for (i, line) in lines.enumerate() {
                println!(
                    "{}{line}",
                    if i == 0 {
                        "to fix:     "
                    } else {
                        "            "
                    }
                );
            }
        }
        println!("health:     {}", if healthy { "ok" } else { "NOT OK" });
    });
    Ok(if healthy { Exit::Ok } else { Exit::Unhealthy })
}

/// The installed services, as the service manager sees them (none when
/// this setup has no plan, e.g. nginx is not installed).
fn services_of(cfg: &crate::config::Config) -> Vec<ServiceState> {
    let exe = std::env::current_exe().unwrap_or_default();
    match super::service_cmd::plan_for(cfg, &exe, crate::service::Platform::host()) {
        Ok(plan) => crate::service::status::query(&plan),
        Err(_) => Vec::new(),
    }
}

fn print_services(services: &[ServiceState]) {
    if !services.iter().any(|s| s.installed) {
        println!("services:   not installed (`sudo moltguard install` runs the stack at boot)");
        return;
    }
    for (i, s) in services.iter().enumerate() {
        println!(
            "{}{:<9} {}: {}",
            if i == 0 {
                "services:   "
            } else {
                "            "
            },
            s.service.as_str(),
            s.name,
            s.state
        );
    }
}
