//! moltguard keeps a self-hosted AI agent's control panel off the public
//! internet: a circuit breaker rendered into nginx, a guardian that opens it
//! when something is exposed, and `moltgate`, the LLM gateway behind it.
//!
//! Module map (the crates under `crates/` are re-exported under these names):
//! - The edge (the `moltguard-edge` crate): [`config`] (`moltguard.toml`
//!   and where every file lives), [`breaker`] (the state file and the audit
//!   log, from `moltguard-breaker`; transitions as transactions), [`nginx`]
//!   (rendering the breaker into config, running and probing nginx),
//!   [`auth`] (the htpasswd file and its hashes), [`exec`].
//! - [`nginxconf`]: reading nginx configuration (any, not only ours) for
//!   checks (the `moltguard-nginxconf` crate).
//! - [`guardian`]: the checks and the daemon that opens the breaker (the
//!   `moltguard-guardian` crate).
//! - [`gateway`]: `moltgate`, the OpenAI-compatible LLM gateway (the
//!   `moltguard-gateway` crate: inbound, api, outbound, admin).
//! - [`firewall`]: moltgate's request firewall (the `moltguard-waf` crate).
//! - [`cli`]: the `moltguard` command.
//! - [`fsutil`]: durable writes (the `moltguard-fsutil` crate).
//! - [`envvar`]: settings from the environment, parsed strictly (the
//!   `moltguard-envvar` crate).

pub mod cli;
pub use moltguard_edge::{auth, breaker, config, exec, nginx};
pub use moltguard_envvar as envvar;
pub use moltguard_fsutil as fsutil;
pub use moltguard_gateway as gateway;
pub use moltguard_guardian as guardian;
pub use moltguard_waf as firewall;
pub mod logging;
pub use moltguard_nginxconf as nginxconf;
pub mod service;
