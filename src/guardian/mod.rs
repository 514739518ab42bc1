//! The guardian: checks that find exposure and misconfiguration, and the
//! daemon that opens the breaker when one is critical.

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
