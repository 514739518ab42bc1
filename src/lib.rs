//! moltguard keeps a self-hosted AI agent's control panel off the public
//! internet: a circuit breaker rendered into nginx, a guardian that opens it
//! when something is exposed, and `moltgate`, the LLM gateway behind it.
//!
//! Module map:
//! - [`breaker`]: the state file and the audit log (the `moltguard-breaker`
//!   crate), transitions as transactions.
//! - [`nginx`]: rendering the breaker into config, running and probing nginx.
//! - [`nginxconf`]: reading nginx configuration (any, not only ours) for
//!   checks (the `moltguard-nginxconf` crate).
//! - [`auth`]: the htpasswd file and its hashes.
//! - [`config`]: `moltguard.toml` and where every file lives.
//! - [`guardian`]: the checks and the daemon that opens the breaker.
//! - [`gateway`]: `moltgate`, the OpenAI-compatible LLM gateway.
//! - [`firewall`]: moltgate's request firewall (the `moltguard-waf` crate).
//! - [`cli`]: the `moltguard` command.
//! - [`fsutil`]: durable writes (the `moltguard-fsutil` crate).

pub mod auth;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod envvar;
pub mod exec;
pub use moltguard_fsutil as fsutil;
pub use moltguard_waf as firewall;
pub mod gateway;
#[cfg(test)]
mod golden;
pub mod guardian;
pub mod logging;
pub mod nginx;
pub use moltguard_nginxconf as nginxconf;
pub mod service;
