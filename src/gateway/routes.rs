//! The router, and what it serves, for the answers given before it runs.
//!
//! The security layer ([`super::security::layer`]) wraps the router once
//! instead of every route, so its own answers (a CORS preflight, a
//! refusal) no longer pass through axum's method router. Two things came
//! from there and are kept here, from the router's own list of paths: a
//! matched route missing from the scope table needs admin
//! ([`Routes::serves`]), and such answers carry the path's `Allow` when
//! the path does not take the request's method ([`Routes::with_allow`]).

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{HeaderValue, ALLOW};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;
use futures_util::FutureExt;
use tower::{Layer, Service};

pub struct Routes {
    router: Router,
    /// Handlers read at most this much of a body (axum's `DefaultBodyLimit`).
    body_limit: usize,
    /// Each route's path pattern, with the methods the router answers
    /// there, as its `Allow` header lists them.
    allow: matchit::Router<HeaderValue>,
}

impl Routes {
    /// `paths` are the patterns `router` was built with.
    pub fn new(router: Router, paths: &[&str], body_limit: usize) -> Self {
        let mut allow = matchit::Router::new();
        for pattern in paths {
            allow
                .insert(*pattern, allow_header(&router, pattern))
                .expect("the router took this pattern");
        }
        Routes {
            router,
            body_limit,
            allow,
        }
    }

    /// Runs the router on an admitted request.
    pub fn call(&self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        // The limit goes on each request here (an extension), rather than
        // as a layer on every route.
        let mut router = DefaultBodyLimit::max(self.body_limit).layer(self.router.clone());
        router
            .call(req)
            .map(|r: Result<Response, Infallible>| r.unwrap_or_else(|e| match e {}))
    }

    /// Does a route match this path (with any method)?
    pub fn serves(&self, path: &str) -> bool {
        self.allow.at(path).is_ok()
    }

    /// An answer given instead of the router's, with its `Allow` if the
    /// path has routes but none for this method (axum's method router
    /// added it when the security layers ran inside each route).
    pub fn with_allow(&self, req: &Parts, mut resp: Response) -> Response {
        if let Ok(m) = self.allow.at(req.uri.path()) {
            let allow = m.value;
            let method = req.method.as_str();
            let served = allow
                .to_str()
                .is_ok_and(|a| a.split(',').any(|m| m == method));
            if !served && !resp.headers().contains_key(ALLOW) {
                resp.headers_mut().insert(ALLOW, allow.clone());
            }
        }
        resp
    }
}

/// The `Allow` the router answers with on `pattern`: an OPTIONS request,
/// which no route takes (preflights never reach the router), gets the
/// method-not-allowed answer, which lists the methods the path takes.
fn allow_header(router: &Router, pattern: &str) -> HeaderValue {
    // A path the pattern matches: `{param}` and `{*rest}` segments as "x".
    let path = pattern
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/");
    let probe = Request::builder()
        .method(Method::OPTIONS)
        .uri(&path)
        .body(Body::empty())
        .expect("a valid path");
    let resp = router
        .clone()
        .call(probe)
        .now_or_never()
        .expect("the method-not-allowed fallback answers at once")
        .unwrap_or_else(|e| match e {});
    assert_eq!(
        resp.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "{pattern}: no route may take OPTIONS (preflights are answered before the router)"
    );
    resp.headers()
        .get(ALLOW)
        .cloned()
        .expect("a 405 lists the methods the path takes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    fn routes() -> Routes {
        let router = Router::new()
            .route("/chat", post(|| async {}))
            .route("/api/{*method}", get(|| async {}).post(|| async {}))
            .route("/assets/{name}", get(|| async {}))
            .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED });
        Routes::new(router, &["/chat", "/api/{*method}", "/assets/{name}"], 1024)
    }

    fn allow_on(r: &Routes, method: Method, path: &str) -> Option<String> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let resp = r.with_allow(&req, Response::new(Body::empty()));
        resp.headers()
            .get(ALLOW)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[test]
    fn matched_paths_and_their_allow() {
        let r = routes();
        assert!(r.serves("/chat"));
        assert!(r.serves("/api/providers/status"));
        assert!(r.serves("/assets/app.js"));
        assert!(!r.serves("/assets/a/b"));
        assert!(!r.serves("/chat/"));
        assert!(!r.serves("/nope"));

        // Only a method the path does not take gets the path's `Allow`.
        assert_eq!(allow_on(&r, Method::POST, "/chat"), None);
        assert_eq!(allow_on(&r, Method::GET, "/chat").as_deref(), Some("POST"));
        assert_eq!(
            allow_on(&r, Method::OPTIONS, "/api/x").as_deref(),
            Some("GET,HEAD,POST")
        );
        assert_eq!(allow_on(&r, Method::HEAD, "/assets/x"), None);
        assert_eq!(
            allow_on(&r, Method::PUT, "/assets/x").as_deref(),
            Some("GET,HEAD")
        );
        assert_eq!(allow_on(&r, Method::GET, "/nope"), None);
    }
}
