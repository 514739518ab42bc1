//! Method allow-list (911). The gateway serves a handful of methods; anything
//! else (WebDAV, `TRACE`, made-up verbs) is a probe.

use super::{code, Category, Rule};
use crate::fields::loc;
use crate::score::Severity;
use crate::{FirewallConfig, Hits, RequestView};

/// Method rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    code(911100, Category::Method, Severity::Critical, 1, loc::ALL,
        "Method not in the allow-list (default GET, HEAD, POST, OPTIONS, PUT, PATCH, DELETE): no client of an OpenAI-compatible API uses others."),
];

/// Runs the method check.
pub fn check(req: &RequestView, cfg: &FirewallConfig, hits: &mut Hits<'_>) {
    let m = req.method.as_str();
    // Malformed method tokens are the protocol rules' business (920100).
    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return;
    }
    if !cfg.allowed_methods.iter().any(|a| a == m) {
        hits.hit(911100, "REQUEST_METHOD", m);
    }
}
