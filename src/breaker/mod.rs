//! The circuit breaker: its state file, its audit log, and transitions.

pub mod audit;
pub mod crashpoint;
pub mod edge;
pub mod remedy;
pub mod state;
pub mod store;
pub mod transition;

pub use state::{Actor, BreakerRecord, BreakerState, ReasonCode};
pub use transition::{
    initialize, reapply, settle, transition, transition_if, BreakerError, Conditional, Report,
    Request, Settlement, SettlementKind,
};
