//! Response security headers, CORS, and the `Origin` rule shared by CORS,
//! WebSocket upgrades and cookie-authenticated writes.
//!
//! Allowed origins: the explicit `GATEWAY_CORS_ORIGINS` list; when it is
//! empty and the gateway is bound to loopback, `http://localhost`,
//! `http://127.0.0.1` and `http://[::1]` on any port; otherwise none. A
//! page the gateway serves itself (the dashboard) is same-origin.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers on every response (a handler may set its own, e.g. the
/// dashboard's CSP, and it is kept).
pub const ALWAYS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    ),
    // API answers are data, never a document: nothing may run or embed them.
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

/// Adds [`ALWAYS`] to a response, keeping any a handler set itself. One
/// pass over one response (rather than a layer per header, each cloned
/// with every route's service on every request).
pub async fn add_security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in ALWAYS {
        if !h.contains_key(*name) {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    resp
}

/// Is `origin` (as sent by a browser) allowed to call the API?
pub fn origin_allowed(origin: &str, explicit: &[String], loopback: bool) -> bool {
    let origin = origin.trim_end_matches('/');
    if !explicit.is_empty() {
        return explicit.iter().any(|o| o.eq_ignore_ascii_case(origin));
    }
    if !loopback {
        return false;
    }
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")),
        None => rest.split(':').next().map(str::to_string),
    };
    let port_ok = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with('[') && !p.contains(']') => {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
        }
        _ => true,
    };
    port_ok && matches!(host.as_deref(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

/// Same-origin: the browser's `Origin` names the host it sent the request to.
pub fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get("host").and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let origin = origin.trim_end_matches('/');
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// The rule for WebSocket upgrades and cookie-authenticated writes: no
/// `Origin` (not a browser) or an allowed or same origin.
pub fn browser_origin_ok(headers: &HeaderMap, explicit: &[String], loopback: bool) -> bool {
    match headers.get("origin").map(|o| o.to_str()) {
        None => true,
        Some(Ok(o)) => same_origin(o, headers) || origin_allowed(o, explicit, loopback),
        Some(Err(_)) => false,
    }
}

pub fn cors(explicit: Vec<String>, loopback: bool) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |o: &HeaderValue, _| {
            o.to_str()
                .is_ok_and(|o| origin_allowed(o, &explicit, loopback))
        }))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_default_allows_only_local_http_origins() {
        for o in [
            "http://localhost",
            "http://localhost:3000",
            "http://127.0.0.1:8787",
            "http://[::1]:5173",
        ] {
            assert!(origin_allowed(o, &[], true), "{o}");
        }
        for o in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://evil.example#@localhost",
            "http://localhost:80x",
            "null",
            "file://",
        ] {
            assert!(!origin_allowed(o, &[], true), "{o}");
        }
        assert!(!origin_allowed("http://localhost:3000", &[], false));
    }

    #[test]
    fn explicit_list_replaces_the_defaults() {
        let list = vec!["https://panel.example.com".to_string()];
        assert!(origin_allowed("https://panel.example.com", &list, true));
        assert!(!origin_allowed("http://localhost:3000", &list, true));
    }

    #[test]
    fn websocket_origin_rule() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8787"));
        assert!(browser_origin_ok(&h, &[], false));
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8787"));
        assert!(browser_origin_ok(&h, &[], false));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(!browser_origin_ok(&h, &[], true));
    }
}
