//! moltguard keeps a self-hosted AI agent's control panel off the public
//! internet: a circuit breaker rendered into nginx, a guardian that opens it
//! when something is exposed, and `moltgate`, the LLM gateway behind it.
//!
//! Module map:
//! - [`breaker`]: the state file, the audit log, transitions as transactions.
//! - [`nginx`]: rendering the breaker into config, running and probing nginx.
//! - [`nginxconf`]: reading nginx configuration (any, not only ours) for
//!   checks (the `moltguard-nginxconf` crate).
//! - [`auth`]: the htpasswd file and its hashes.
//! - [`config`]: `moltguard.toml` and where every file lives.
//! - [`guardian`]: the checks and the daemon that opens the breaker.
//! - [`gateway`]: `moltgate`, the OpenAI-compatible LLM gateway.
//! - [`firewall`]: moltgate's request firewall (the `moltguard-waf` crate).
//! - [`cli`]: the `moltguard` command.

pub mod auth;
pub mod breaker;
pub mod cli;
pub mod config;
pub mod envvar;
pub mod exec;
pub use moltguard_waf as firewall;
pub mod fsutil;
pub mod gateway;
#[cfg(test)]
mod golden;
pub mod guardian;
pub mod logging;
pub mod nginx;
pub use moltguard_nginxconf as nginxconf;
pub mod service;
