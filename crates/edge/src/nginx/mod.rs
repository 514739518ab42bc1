//! The nginx edge: rendering the breaker into config, running nginx, and
//! checking what it really serves.

pub mod control;
pub mod fail2ban;
pub mod probe;
pub mod render;
