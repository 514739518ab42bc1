//! The edge breaker's state, apart from how the edge enforces it: the
//! record ([`state`]), the state file it lives in, read back only when it
//! can be trusted ([`store`]), and the append-only, hash-chained log of
//! every change ([`audit`]); and what a state means and which commands
//! change it ([`remedy`]).
//!
//! This crate knows nothing of nginx: rendering the state into the edge,
//! and the transaction that changes it, are moltguard's (`breaker::edge`,
//! `breaker::transition`), and the compiler keeps it so.

pub mod audit;
pub mod remedy;
pub mod state;
pub mod store;

pub use state::{Actor, BreakerRecord, BreakerState, ReasonCode};
