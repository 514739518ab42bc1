//! The guardian: checks that find exposure and misconfiguration, and the
//! daemon that opens the breaker when one is critical.
//!
//! It stands on the edge (`moltguard-edge`: the config, the breaker's
//! transactions, nginx) and reads nginx configuration with
//! `moltguard-nginxconf`; nothing of the gateway or the CLI, which the
//! compiler keeps so. What it finds and does: docs/GUARDIAN.md.

// The edge's modules under the names the checks have always used.
use moltguard_edge::{auth, breaker, config, exec, fsutil, nginx};
use moltguard_nginxconf as nginxconf;

pub mod checks;
pub mod contain;
pub mod daemon;
pub mod exposure;
pub mod finding;
pub mod runtime;
pub mod scan;
pub mod selfcheck;
pub mod stop_agent;

pub use finding::{Finding, Severity};
