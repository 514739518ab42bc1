//! What operators see and change: the security database ([`store`]), the
//! `security.*` and `providers.*` methods over WebSocket RPC and REST
//! ([`rpc`]), provider status and tests ([`status`]) with their history
//! ([`history`]), the Prometheus metrics ([`metrics`]) and the dashboard
//! ([`dashboard`]) that shows them.

pub mod dashboard;
pub mod history;
pub mod metrics;
pub mod rpc;
pub mod status;
pub mod store;
