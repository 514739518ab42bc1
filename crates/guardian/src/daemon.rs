//! The guardian daemon: scan on a poll interval and at once when a watched
//! file changes; open the breaker on any critical finding. It never closes
//! the breaker.

use super::finding::Severity;
use super::runtime;
use super::scan::{ScanReport, Scanner};
use crate::breaker::{self, store, Actor, BreakerState, ReasonCode, Request};
use crate::config::Config;
use crate::fsutil;
use crate::nginx::control::Nginx;
use chrono::{DateTime, Utc};
use notify::{EventKind, RecursiveMode, Watcher};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// After a file event, wait this long for the burst to end (editors and
/// atomic renames produce several events) before scanning.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// What `moltguard status` reads about the guardian.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardianStatus {
    /// The guardian's process.
    pub pid: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its last scan began.
    pub last_scan_at: DateTime<Utc>,
    /// When the next one is due (sooner if a watched file changes).
    pub next_scan_at: DateTime<Utc>,
    /// How long the last scan took, wall clock.
    pub scan_wall_us: u64,
    /// The CPU time it took, where known.
    pub scan_cpu_us: Option<u64>,
    /// What the last scan found.
    pub findings: Vec<StatusFinding>,
}

/// A finding as stored for `status` (owned strings, so it reads back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFinding {
    /// The rule's stable identifier.
    pub id: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    /// What was found.
    pub what: String,
    /// What to do about it.
    pub fix: String,
    /// Where, if it has a place.
    pub location: Option<String>,
}

/// `guardian.json` in the state directory.
pub fn status_file(config: &Config) -> PathBuf {
    config.layout.state_dir.join("guardian.json")
}

/// Reads the guardian's last status; `None` if it never ran.
pub fn read_status(config: &Config) -> Option<GuardianStatus> {
    serde_json::from_slice(&std::fs::read(status_file(config)).ok()?).ok()
}

/// What a change on disk must touch to trigger an immediate scan.
///
/// Files are replaced by atomic renames, so their directories are watched;
/// only events on the files that matter count. A blacklist of noise would
/// miss a log file someone puts next to the config, and every log line
/// would trigger the next scan.
#[derive(Debug, Clone, Default)]
pub struct WatchSet {
    /// Exact files whose change matters.
    pub files: Vec<PathBuf>,
    /// Directories where any change matters (web roots, the system nginx conf dir).
    pub dirs: Vec<PathBuf>,
}

impl WatchSet {
    /// Everything the guardian watches under `config`.
    pub fn for_config(config: &Config) -> Self {
        let l = &config.layout;
        let g = &config.settings.guardian;
        let mut files = vec![
            l.config_file.clone(),
            l.htpasswd.clone(),
            l.state_file(),
            l.allow_token(),
            l.include_file(),
            l.site_file(),
            l.managed_main_conf(),
        ];
        for h in &g.agent_homes {
            for (dir, file) in [
                (".openclaw", "openclaw.json"),
                (".moltbot", "moltbot.json"),
                (".clawdbot", "clawdbot.json"),
            ] {
                files.push(h.join(dir).join(file));
                // Created later: the home is watched for this name alone.
                files.push(h.join(dir));
            }
        }
        let mut dirs = g.web_roots.clone();
        if let Some(d) = config.settings.nginx.conf.as_ref().and_then(|c| c.parent()) {
            dirs.push(d.to_path_buf());
        }
        Self { files, dirs }
    }

    /// The directories to hand to the watcher (those that exist).
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .chain(self.dirs.iter().cloned())
            .filter(|d| d.is_dir())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a change to `path` matters. Temp files of atomic writes
    /// (`.moltguard-*`) never do: the rename that follows does.
    pub fn matters(&self, path: &Path) -> bool {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.starts_with(".moltguard-") || name.starts_with(".candidate-") {
            return false;
        }
        self.files.iter().any(|f| f == path)
            || path
                .parent()
                .is_some_and(|p| self.dirs.iter().any(|d| d == p))
    }
}

/// Runs until the process is killed. SIGTERM's default action is fine:
/// every write is atomic and the lock dies with the process.
///
/// Edits of moltguard.toml take effect at the next scan (its settings; new
/// paths need a restart), and directories that appear later (an agent home
/// created after the guardian started) are watched from the scan after.
pub fn run(mut config: Config) -> anyhow::Result<()> {
    let started_at = Utc::now();
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |ev| {
        let _ = tx.send(ev);
    })?;
    let mut watch = WatchSet::for_config(&config);
    let mut watched = std::collections::BTreeSet::new();
    let _ = watch_new_directories(&mut watcher, &watch, &mut watched);
    tracing::info!(
        interval_s = config.settings.guardian.interval.as_secs(),
        watched = ?watched,
        "guardian started: scanning every {} and on file changes",
        humantime::format_duration(config.settings.guardian.interval)
    );
    let mut config_text = std::fs::read_to_string(&config.layout.config_file).ok();
    let mut scanner = Scanner::new(config.clone());
    let mut files_changed = true;
    let mut seen = std::collections::BTreeSet::new();
    let mut containment_unavailable: Option<String> = None;
    let mut stop_agent = super::stop_agent::StopAgent::default();
    loop {
        if let Some(next) = reload_config(&config, &mut config_text) {
            config = next;
            scanner = Scanner::new(config.clone());
            watch = WatchSet::for_config(&config);
            files_changed = true;
        }
        match breaker::settle(&config) {
            Ok(done) => {
                for s in done {
                    tracing::warn!(kind = ?s.kind, "{}", s.message);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot record the breaker's state"),
        }
        let report = scanner.scan(files_changed);
        log_report(&report, &mut seen);
        act(&config, &report);
        if config.settings.guardian.contain {
            contain_exposed(&config, &report, &mut containment_unavailable);
        }
        stop_agent.on_scan(&config, &report.exposed_agent_ports());
        let next = next_wake(&config, config.settings.guardian.interval);
        write_status(&config, started_at, &report, next);
        // A directory that just appeared may already hold what was written
        // before it was watched: scan again at once.
        files_changed = watch_new_directories(&mut watcher, &watch, &mut watched)
            || wait_for_change(&rx, next, &watch);
    }
}

/// Starts watching every directory of `watch` that exists and is not
/// watched yet. Returns whether there was one.
fn watch_new_directories(
    watcher: &mut notify::RecommendedWatcher,
    watch: &WatchSet,
    watched: &mut std::collections::BTreeSet<PathBuf>,
) -> bool {
    let mut added = false;
    for d in watch.directories() {
        if watched.contains(&d) {
            continue;
        }
        match watcher.watch(&d, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(d);
                added = true;
            }
            Err(e) => {
                tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; it is still scanned every poll")
            }
        }
    }
    added
}

/// The settings of moltguard.toml if its text changed since `last` and it
/// is valid; a broken edit is said and the running settings kept.
fn reload_config(config: &Config, last: &mut Option<String>) -> Option<Config> {
    let path = &config.layout.config_file;
    let text = std::fs::read_to_string(path).ok()?;
    if last.as_deref() == Some(text.as_str()) {
        return None;
    }
    *last = Some(text.clone());
    match crate::config::parse(path, &text) {
        Ok(mut settings) => {
            if settings.paths.state_dir != config.settings.paths.state_dir
                || settings.paths.nginx_dir != config.settings.paths.nginx_dir
                || settings.paths.htpasswd != config.settings.paths.htpasswd
            {
                tracing::warn!(
                    "{} changes [paths]: restart the guardian to use them; the old paths are kept",
                    path.display()
                );
                settings.paths = config.settings.paths.clone();
            }
            // A binary given on the command line still wins.
            if config.settings.nginx.binary.is_some() && settings.nginx.binary.is_none() {
                settings.nginx.binary = config.settings.nginx.binary.clone();
            }
            tracing::info!(
                "{} changed: its settings apply from this scan on",
                path.display()
            );
            Some(Config {
                settings,
                ..config.clone()
            })
        }
        Err(e) => {
            tracing::error!("{e}; the guardian keeps the settings it had");
            None
        }
    }
}

/// When to scan next: the poll interval, or a breaker lifetime's end if sooner.
fn next_wake(config: &Config, interval: Duration) -> DateTime<Utc> {
    let now = Utc::now();
    let poll = now + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::seconds(30));
    let expiry = store::load(&config.layout.state_files(), now)
        .record
        .expires_at
        .map(|t| t + chrono::Duration::milliseconds(50));
    match expiry {
        Some(t) if t > now && t < poll => t,
        _ => poll,
    }
}

/// Blocks until `deadline` or a relevant file event. Returns whether files changed.
fn wait_for_change(
    rx: &mpsc::Receiver<notify::Result<notify::Event>>,
    deadline: DateTime<Utc>,
    watch: &WatchSet,
) -> bool {
    let until = Instant::now() + (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        match rx.recv_timeout(left) {
            Ok(Ok(ev)) if is_relevant(&ev, watch) => {
                tracing::debug!(paths = ?ev.paths, "watched file changed");
                // Let the burst settle, then scan.
                let settle_until = Instant::now() + DEBOUNCE;
                while let Ok(_more) =
                    rx.recv_timeout(settle_until.saturating_duration_since(Instant::now()))
                {
                }
                return true;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "file watch error; scanning now");
                return true;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => return false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(left);
                return false;
            }
        }
    }
}

fn is_relevant(ev: &notify::Event, watch: &WatchSet) -> bool {
    matches!(
        ev.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    ) && ev.paths.iter().any(|p| watch.matters(p))
}

/// Opens the breaker for the primary critical finding, unless it already is
/// open for that reason (no reload, no audit line every cycle).
fn act(config: &Config, report: &ScanReport) {
    let Some(f) = report.primary_critical() else {
        return;
    };
    let reason = f.reason;
    let id = f.id;
    let detail = format!("{}: {}", f.id, f.what);
    let result = breaker::transition_if(
        config,
        Request {
            target: BreakerState::Open,
            reason,
            detail,
            actor: Actor::Guardian,
            ttl: None,
            // Reloading a config that bypasses the breaker or listens publicly
            // would make things worse; the token removal already denies.
            keep_running_config: matches!(
                reason,
                ReasonCode::NginxBypass | ReasonCode::NginxConfigInvalid
            ) || id == "NGINX_LISTEN_PUBLIC",
        },
        |current| {
            // Findings about what nginx serves were made without the lock: a
            // person's transition may have been mid-flight. Look again. They
            // are acted on even when the breaker is OPEN for this reason
            // already: an OPEN state that nginx does not serve is no OPEN.
            if runtime::LIVE_FINDINGS.contains(&id) {
                let nginx = Nginx::from_config(config);
                return runtime::check(config, &nginx, current, false)
                    .iter()
                    .any(|g| g.id == id && g.severity == Severity::Critical);
            }
            !(current.state == BreakerState::Open && current.reason == reason)
        },
    );
    match result {
        Ok(breaker::Conditional::Ran(r)) => tracing::warn!(
            finding = id,
            reason = %reason,
            generation = r.after.generation,
            outcome = r.outcome.as_str(),
            "breaker OPENED — all traffic blocked: {}",
            r.message
        ),
        Ok(breaker::Conditional::NotNeeded { settled }) => {
            for s in settled {
                tracing::warn!(finding = id, "{}", s.message);
            }
        }
        Err(e) => tracing::error!(finding = id, error = %e, "could not open the breaker"),
    }
}

/// Blocks exposed protected ports with the host firewall, and lifts the
/// block once they are fixed and a person closed the breaker again. Says
/// once when containment is wanted but cannot be done here.
fn contain_exposed(config: &Config, report: &ScanReport, unavailable: &mut Option<String>) {
    let record = store::load(&config.layout.state_files(), Utc::now()).record;
    match super::contain::reconcile(
        config,
        &report.exposed_ports,
        record.generation,
        record.state.admits_traffic(),
    ) {
        super::contain::Change::Unchanged => {}
        super::contain::Change::Contained(ports) => {
            *unavailable = None;
            tracing::warn!(
                ports = ?ports,
                "CONTAINED: inbound connections from other machines to port(s) {ports:?} are blocked \
                 by the host firewall until the bind is fixed and the breaker is closed again"
            )
        }
        super::contain::Change::Released(ports) => tracing::info!(
            ports = ?ports,
            "containment lifted: port(s) {ports:?} listen on loopback again and the breaker was closed"
        ),
        super::contain::Change::Unavailable(why) => {
            if unavailable.as_deref() != Some(why.as_str()) {
                tracing::warn!(
                    "cannot contain exposed port(s) {:?}: {why}",
                    report.exposed_ports
                );
                *unavailable = Some(why);
            }
        }
    }
}

/// Logs findings that are new since the last scan, and those that went
/// away, so a finding that persists for hours is one line, not one per poll.
fn log_report(r: &ScanReport, seen: &mut std::collections::BTreeSet<(String, String)>) {
    let now: std::collections::BTreeSet<(String, String)> = r
        .findings
        .iter()
        .map(|f| (f.id.to_string(), f.what.clone()))
        .collect();
    for (id, what) in seen.difference(&now) {
        tracing::info!(id = %id, "resolved: {what}");
    }
    for f in r
        .findings
        .iter()
        .filter(|f| !seen.contains(&(f.id.to_string(), f.what.clone())))
    {
        match f.severity {
            Severity::Critical => {
                tracing::warn!(id = f.id, location = f.location.as_deref().unwrap_or("-"), fix = %f.fix, "CRITICAL: {}", f.what)
            }
            Severity::Warning => {
                tracing::warn!(id = f.id, location = f.location.as_deref().unwrap_or("-"), fix = %f.fix, "warning: {}", f.what)
            }
            Severity::Info => tracing::info!(id = f.id, "{}", f.what),
        }
    }
    tracing::debug!(wall_us = r.wall_us, cpu_us = ?r.cpu_us, sockets = r.sockets_seen, findings = r.findings.len(), "scan done");
    *seen = now;
}

fn write_status(config: &Config, started_at: DateTime<Utc>, r: &ScanReport, next: DateTime<Utc>) {
    let status = GuardianStatus {
        pid: std::process::id(),
        started_at,
        last_scan_at: r.started_at,
        next_scan_at: next,
        scan_wall_us: r.wall_us,
        scan_cpu_us: r.cpu_us,
        findings: r
            .findings
            .iter()
            .map(|f| StatusFinding {
                id: f.id.to_string(),
                severity: format!("{:?}", f.severity).to_lowercase(),
                what: f.what.clone(),
                fix: f.fix.clone(),
                location: f.location.clone(),
            })
            .collect(),
    };
    let Ok(json) = serde_json::to_vec_pretty(&status) else {
        return;
    };
    if let Err(e) = fsutil::write_atomic(&status_file(config), &json, 0o644) {
        tracing::warn!(error = %e, "cannot write the guardian status file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_that_matter_trigger_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::load(&crate::config::Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        let w = WatchSet::for_config(&config);
        let h = dir.path();
        for p in [
            "state/breaker.json",
            "htpasswd",
            "nginx/moltguard-site.conf",
            "nginx/breaker.conf",
            "state/edge/breaker.allow",
            "moltguard.toml",
        ] {
            assert!(w.matters(&h.join(p)), "{p}");
        }
        for p in [
            "state/guardian.json",
            "state/.moltguard-abc.tmp",
            "nginx/runtime/logs/error.log",
            "nginx/.candidate-x",
            "guardian.log",
            "state/audit.jsonl",
            "state/breaker.lock",
        ] {
            assert!(!w.matters(&h.join(p)), "{p}");
        }
    }
}
