//! moltguard: keeps a self-hosted AI agent's panel off the public internet.
pub mod firewall;
