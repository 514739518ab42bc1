//! Response security headers, CORS, and the `Origin` rule shared by CORS,
//! WebSocket upgrades and cookie-authenticated writes.
//!
//! Allowed origins: the explicit `GATEWAY_CORS_ORIGINS` list; when it is
//! empty and the gateway is bound to loopback, `http://localhost`,
//! `http://127.0.0.1` and `http://[::1]` on any port; otherwise none. A
//! page the gateway serves itself (the dashboard) is same-origin.
//!
//! CORS is written out here rather than taken from tower_http's
//! `CorsLayer`, which rebuilt its `Vary` value and cloned its whole
//! configuration on every request; the tests below hold this to that
//! layer's answers, configured as the gateway configured it.

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

/// Headers on every response (a handler may set its own, e.g. the
/// dashboard's CSP, and it is kept).
pub const ALWAYS: [(HeaderName, HeaderValue); 8] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
    (
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    ),
    // API answers are data, never a document: nothing may run or embed them.
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// Adds [`ALWAYS`] to a response, keeping any a handler set itself.
pub fn add_security_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    for (name, value) in ALWAYS {
        if let header::Entry::Vacant(e) = h.entry(name) {
            e.insert(value);
        }
    }
}

/// `Vary` on every answer: it depends on the CORS request headers.
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The request's `Origin`, to echo in `Access-Control-Allow-Origin` if it
/// is allowed.
pub fn cors_origin(
    request: &HeaderMap,
    explicit: &[String],
    loopback: bool,
) -> Option<HeaderValue> {
    let origin = request.get(header::ORIGIN)?;
    origin
        .to_str()
        .is_ok_and(|o| origin_allowed(o, explicit, loopback))
        .then(|| origin.clone())
}

/// The answer to a CORS preflight: every `OPTIONS` request, answered
/// before admission (a browser sends it without credentials).
pub fn preflight(origin: Option<HeaderValue>) -> Response {
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(header::VARY, VARY);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,POST,OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization,content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    resp
}

/// CORS headers on any other answer (`Vary` joins any the handler set).
pub fn add_cors(h: &mut HeaderMap, origin: Option<HeaderValue>) {
    h.append(header::VARY, VARY);
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Method, Request};
    use tower::{Layer, ServiceExt};

    /// tower_http's CORS layer as the gateway configured it before
    /// [`preflight`] and [`add_cors`] took its place.
    fn tower_cors(explicit: Vec<String>, loopback: bool) -> tower_http::cors::CorsLayer {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |o: &HeaderValue, _| {
                o.to_str()
                    .is_ok_and(|o| origin_allowed(o, &explicit, loopback))
            }))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600))
    }

    /// A handler's answer, with headers CORS must keep or override.
    fn handler_answer(vary: bool) -> Response {
        let mut r = Response::new(Body::from("{}"));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if vary {
            h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("https://set-by-handler.example"),
            );
        }
        r
    }

    fn listed(h: &HeaderMap) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    #[tokio::test]
    async fn cors_answers_are_tower_https() {
        let panel = vec!["https://panel.example.com".to_string()];
        for (explicit, loopback) in [(vec![], true), (vec![], false), (panel, true)] {
            let oracle = tower_cors(explicit.clone(), loopback);
            for method in [
                Method::GET,
                Method::POST,
                Method::HEAD,
                Method::PUT,
                Method::OPTIONS,
            ] {
                for origin in [
                    None,
                    Some("http://localhost:3000"),
                    Some("https://panel.example.com"),
                    Some("https://evil.example"),
                    Some("null"),
                ] {
                    for preflight_headers in [false, true] {
                        for vary in [false, true] {
                            let request = || {
                                let mut r =
                                    Request::builder().method(method.clone()).uri("/v1/models");
                                if let Some(o) = origin {
                                    r = r.header(header::ORIGIN, o);
                                }
                                if preflight_headers {
                                    r = r
                                        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                                        .header(
                                            header::ACCESS_CONTROL_REQUEST_HEADERS,
                                            "authorization",
                                        );
                                }
                                r.body(Body::empty()).unwrap()
                            };
                            let handler = tower::service_fn(move |_: Request<Body>| async move {
                                Ok::<_, std::convert::Infallible>(handler_answer(vary))
                            });
                            let want = oracle.layer(handler).oneshot(request()).await.unwrap();

                            let req = request();
                            let allowed = cors_origin(req.headers(), &explicit, loopback);
                            let got = if req.method() == Method::OPTIONS {
                                preflight(allowed)
                            } else {
                                let mut r = handler_answer(vary);
                                add_cors(r.headers_mut(), allowed);
                                r
                            };
                            let case = format!("{method} {origin:?} {preflight_headers} {vary} {explicit:?} {loopback}");
                            assert_eq!(got.status(), want.status(), "{case}");
                            assert_eq!(listed(got.headers()), listed(want.headers()), "{case}");
                            let body = |r: Response| axum::body::to_bytes(r.into_body(), 1024);
                            assert_eq!(
                                body(got).await.unwrap(),
                                body(want).await.unwrap(),
                                "{case}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn security_headers_keep_a_handlers_own() {
        let mut r = Response::new(Body::empty());
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'"),
        );
        add_security_headers(&mut r);
        let h = r.headers();
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], "default-src 'self'");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            h["permissions-policy"],
            "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        );
        assert_eq!(h.len(), ALWAYS.len());
    }

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
