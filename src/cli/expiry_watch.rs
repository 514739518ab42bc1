//! The end of a `--for` lifetime, for connections already open too.
//!
//! nginx refuses new requests once the lifetime is over by itself (the
//! include compares `$msec` with the expiry), but a connection it already
//! proxies, such as the panel's WebSocket, lasts until nginx reloads. The
//! guardian reloads at the expiry when it runs; so that the promise does not
//! hang on it, the command that grants a lifetime leaves a watcher behind: a
//! detached `moltguard breaker expire-at GENERATION TIME` that sleeps until
//! then and settles the breaker (records `TTL_EXPIRED`, renders OPEN,
//! reloads nginx, whose old workers close their connections within
//! `worker_shutdown_timeout`). If the breaker moves on meanwhile (another
//! transition, another generation) it exits within 30 s, doing nothing.
//!
//! `MOLTGUARD_EXPIRY_WATCHER=off` leaves no watcher (where only the guardian
//! should act, and in the test that shows nginx's own enforcement).

use super::Ctx;
use crate::breaker::store;
use chrono::{DateTime, Utc};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Turns the watcher off when set to `off` (or `0`, `false`).
pub(super) const ENV_SWITCH: &str = "MOLTGUARD_EXPIRY_WATCHER";
/// After the expiry, so that the include already refuses and `settle`
/// sees the lifetime as over.
const GRACE: Duration = Duration::from_millis(100);
/// The longest single sleep: a suspended laptop wakes to a real clock.
const MAX_NAP: Duration = Duration::from_secs(30);

fn disabled() -> bool {
    match crate::envvar::bool_var(ENV_SWITCH) {
        Ok(on) => on == Some(false),
        // A typo keeps the watcher: it is what closes the edge on time.
        Err(e) => {
            eprintln!("moltguard: {e}; the expiry watcher stays on");
            false
        }
    }
}

/// Starts the watcher for `generation`'s lifetime ending at `at`. Returns
/// why it could not, for a warning: nginx still refuses new requests then.
pub(super) fn spawn(ctx: &Ctx, generation: u64, at: DateTime<Utc>) -> Result<(), String> {
    if disabled() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cfg = ctx.config().map_err(|e| e.message)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(cfg.layout.log_dir.join("breaker-expiry.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut c = Command::new(exe);
    c.args([
        "breaker",
        "expire-at",
        &generation.to_string(),
        &at.to_rfc3339(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log);
    // The same setup as this command, whether it came from flags or the environment.
    let o = &ctx.overrides;
    for (var, v) in [
        ("MOLTGUARD_HOME", &o.home),
        ("MOLTGUARD_CONFIG", &o.config),
        ("MOLTGUARD_STATE_DIR", &o.state_dir),
        ("MOLTGUARD_NGINX", &o.nginx_binary),
    ] {
        if let Some(v) = v {
            c.env(var, crate::config::absolutize(v));
        }
    }
    // Not waited for: it outlives this command (reparented to init).
    c.spawn().map(drop).map_err(|e| e.to_string())
}

/// The watcher itself: sleeps until `at`, then settles if `generation` is
/// still the committed one.
pub(super) fn run(
    ctx: &Ctx,
    generation: u64,
    at: DateTime<Utc>,
) -> Result<super::Exit, super::CliError> {
    // Its own session: a closing terminal or Ctrl-C of the shell that ran
    // `breaker close` does not end it.
    let _ = nix::unistd::setsid();
    let cfg = ctx.config()?;
    let superseded = || {
        store::load(&cfg.layout.state_files(), Utc::now())
            .record
            .generation
            != generation
    };
    loop {
        // Gone as soon as another transition took over, not at the old expiry.
        if superseded() {
            return Ok(super::Exit::Ok);
        }
        let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(MAX_NAP));
    }
    std::thread::sleep(GRACE);
    if superseded() {
        return Ok(super::Exit::Ok);
    }
    for s in crate::breaker::settle(&cfg)? {
        eprintln!("{} {}", Utc::now().to_rfc3339(), s.message);
    }
    Ok(super::Exit::Ok)
}
