//! The guardian: checks that find exposure and misconfiguration, and the
//! daemon that opens the breaker when one is critical.

pub mod checks;
pub mod finding;

pub use finding::{Finding, Severity};
