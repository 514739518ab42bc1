//! The circuit breaker: its state, store, audit log and remedies (the
//! `moltguard-breaker` crate, re-exported here), how the edge enforces it
//! ([`edge`]), and the transactions that change it ([`transition`](mod@transition)).

pub use moltguard_breaker::{audit, remedy, state, store};

pub mod crashpoint;
pub mod edge;
pub mod transition;

pub use state::{Actor, BreakerRecord, BreakerState, ReasonCode};
pub use transition::{
    initialize, reapply, settle, transition, transition_if, BreakerError, Conditional, Report,
    Request, Settlement, SettlementKind,
};
