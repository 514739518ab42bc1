//! Logging through `tracing`: text or JSON on stderr (journald captures a
//! systemd service's stderr), plus macOS unified logging when built with
//! `macos-native`.
//!
//! On macOS, watch it with:
//! `log stream --level info --predicate 'subsystem == "dev.moltguard"'`
//! (or filter Console.app on the subsystem `dev.moltguard`).
//!
//! Never log secrets: findings carry redacted excerpts only.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// The unified-logging subsystem moltguard logs under on macOS.
pub const OSLOG_SUBSYSTEM: &str = "dev.moltguard";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `MOLTGUARD_LOG` overrides the level
/// filter (e.g. `debug`, `moltguard=trace`).
pub fn init(format: LogFormat, category: &'static str) {
    let filter =
        EnvFilter::try_from_env("MOLTGUARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(false)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(stderr);
    #[cfg(all(target_os = "macos", feature = "macos-native"))]
    let registry = registry.with(tracing_oslog::OsLogger::new(OSLOG_SUBSYSTEM, category));
    #[cfg(not(all(target_os = "macos", feature = "macos-native")))]
    let _ = category;
    let _ = registry.try_init();
}
