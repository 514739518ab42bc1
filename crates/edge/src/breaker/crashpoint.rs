//! Named steps of a transition where a test can make moltguard die.
//!
//! The transaction must leave nothing that serves more than the state file
//! allows, whatever instant it is cut off at. Random `kill -9`s land at
//! random instants; these points let a test land one *exactly* between two
//! steps, every step in turn: with `MOLTGUARD_CRASH_AT=<point>` the process
//! sends itself SIGKILL there, which is what a `kill -9` or a power cut
//! does (no destructors, no flush, the lock released by the kernel).
//!
//! Only debug builds (what the tests run) read the variable; in a release
//! build every point compiles to nothing.

/// Every point, in the order a transition passes them (docs/BREAKER.md).
pub const POINTS: &[&str] = &[
    "token-removed",
    "pending-written",
    "candidate-tested",
    "include-swapped",
    "token-created",
    "reloaded",
    "verified",
    "audited",
];

/// The environment variable that names the point to die at.
pub const ENV: &str = "MOLTGUARD_CRASH_AT";
/// `<point>:<ms>`: wait there that long instead, so that a test can watch
/// what others see of a transaction in flight.
pub const PAUSE_ENV: &str = "MOLTGUARD_PAUSE_AT";

/// Dies (or pauses) here if the test asked for this point.
#[inline]
pub fn here(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "unknown crash point {point}");
    #[cfg(debug_assertions)]
    {
        if std::env::var_os(ENV).is_some_and(|v| v == point) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(ms) = std::env::var(PAUSE_ENV).ok().and_then(|v| {
            let (p, ms) = v.split_once(':')?;
            (p == point).then(|| ms.parse::<u64>().ok())?
        }) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }
}
