//! Towards the providers: turning a model name into a chain of routes
//! ([`routing`]), one attempt against one provider ([`provider`], over
//! [`upstream`]) within deadlines computed once per request ([`deadline`]),
//! what a failure means and whether to retry ([`retry`]), each provider's
//! circuit ([`circuit`]), where a provider may connect at all ([`ssrf`]),
//! and a broken stream continued on the next route ([`resume`]).
//!
//! Nothing here knows who the client is; that was settled inbound.

pub mod chain;
pub mod circuit;
pub mod deadline;
pub mod provider;
pub mod resume;
pub mod retry;
pub mod routing;
pub mod ssrf;
pub mod upstream;
