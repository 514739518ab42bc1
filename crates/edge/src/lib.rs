//! The edge: what stands between the network and the agent's panel, and
//! how moltguard changes it without ever failing open.
//!
//! - [`config`]: `moltguard.toml`, precedence (flag > env > file > platform
//!   default) and where every file lives.
//! - [`breaker`]: the breaker's state, store and audit log (the
//!   `moltguard-breaker` crate), how the edge enforces it
//!   ([`breaker::edge`]: the one observation of what nginx really serves),
//!   and the transactions that change it ([`breaker::transition`](mod@breaker::transition)).
//! - [`nginx`]: rendering the breaker into config, running nginx, probing
//!   what it answers.
//! - [`auth`]: the htpasswd file and its password hashes.
//! - [`exec`]: finding programs without trusting `PATH` as root.
//!
//! Nothing here knows of the guardian, the gateway or the CLI: they use
//! the edge, and the compiler keeps the arrow one way.

pub mod auth;
pub mod breaker;
pub mod config;
pub mod exec;
pub mod nginx;

pub use moltguard_fsutil as fsutil;
