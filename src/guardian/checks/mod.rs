//! The guardian's static checks: pure functions from files to findings.
//!
//! Each check returns `Vec<Finding>`; an empty vector means nothing was
//! found, never "could not look" (that is a finding too, usually
//! `CheckFailed`: ambiguity means deny). Rule ids are stable strings,
//! documented on the constants below and in `docs/CHECKS.md`.
//!
//! - [`nginx`]: server blocks that front a protected port without the breaker,
//!   listen publicly, or switch auth off.
//! - [`htpasswd`]: the password file nginx checks.
//! - [`secrets`]: provider keys and tokens where they can leak.
//! - [`agent`]: the agent's own gateway config (bind, auth, port).

pub mod agent;
pub mod htpasswd;
pub mod net;
pub mod nginx;
pub mod secrets;

pub use agent::{check_agent, AgentConfig, AgentReport};
pub use htpasswd::{check_htpasswd, check_htpasswd_text, NginxWorker};
pub use nginx::{check_nginx, check_nginx_file, check_nginx_t_output, ProtectedSet};
pub use secrets::{
    check_nginx_secrets, check_nginx_t_secrets, check_secrets, scan_dir, scan_file,
    scan_process_environ, scan_text, DirScan, EnvScanError, ScanLimits, SecretHit, SecretKind,
    SecretPlace,
};
