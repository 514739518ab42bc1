//! The router, and what it serves, for the answers given before it runs.
//!
//! The security layer ([`crate::inbound::layer`]) wraps the router once
//! instead of every route, so its own answers (a CORS preflight, a
//! refusal) no longer pass through axum's method router. The one thing
//! that came from there is kept here, from the API's table
//! ([`super::Route`]): such answers carry the path's `Allow` when the
//! path does not take the request's method ([`Routes::with_allow`]).

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

use super::Route;

/// The router, with what admission needs to know before it runs.
pub struct Routes {
    router: Router,
    /// Handlers read at most this much of a body (axum's `DefaultBodyLimit`).
    body_limit: usize,
}

impl Routes {
    /// `router` serves the API's table ([`Route::ALL`]). A route whose
    /// methods differ from the table's is a bug that stops the start here
    /// (every test that starts a gateway runs this), not a wrong `Allow`.
    pub fn new(router: Router, body_limit: usize) -> Self {
        for route in Route::ALL {
            for pattern in route.patterns() {
                assert_eq!(
                    allow_header(&router, pattern),
                    route.methods().join(","),
                    "{pattern}: the router's methods are not the API table's"
                );
            }
        }
        Routes { router, body_limit }
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

    /// An answer given instead of the router's, with its `Allow` if the
    /// path has routes but none for this method (axum's method router
    /// added it when the security layers ran inside each route).
    pub fn with_allow(&self, req: &Parts, mut resp: Response) -> Response {
        if let Some(route) = Route::of_path(req.uri.path()) {
            let served = route.methods().contains(&req.method.as_str());
            if !served && !resp.headers().contains_key(ALLOW) {
                if let Ok(allow) = HeaderValue::from_str(&route.methods().join(",")) {
                    resp.headers_mut().insert(ALLOW, allow);
                }
            }
        }
        resp
    }
}

/// The `Allow` the router answers with on `pattern`: an OPTIONS request,
/// which no route takes (preflights never reach the router), gets the
/// method-not-allowed answer, which lists the methods the path takes.
fn allow_header(router: &Router, pattern: &str) -> String {
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
    let allow = resp.headers().get(ALLOW);
    let allow = allow.and_then(|v| v.to_str().ok());
    allow
        .expect("a 405 lists the methods the path takes")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post, MethodRouter};

    /// A router of the table's routes, with handlers that do nothing.
    fn router(wrong: Option<Route>) -> Router {
        let handler = |route: Route| -> MethodRouter {
            let mut m = MethodRouter::new();
            if route.methods().contains(&"GET") {
                m = m.merge(get(|| async {}));
            }
            if route.methods().contains(&"POST") != (Some(route) == wrong) {
                m = m.merge(post(|| async {}));
            }
            m
        };
        Route::ALL
            .into_iter()
            .flat_map(|r| r.patterns().iter().map(move |p| (r, *p)))
            .fold(Router::new(), |router, (r, p)| router.route(p, handler(r)))
            .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
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
    fn a_method_the_path_does_not_take_gets_the_paths_allow() {
        let r = Routes::new(router(None), 1024);
        assert_eq!(allow_on(&r, Method::POST, "/v1/chat/completions"), None);
        assert_eq!(
            allow_on(&r, Method::GET, "/v1/chat/completions").as_deref(),
            Some("POST")
        );
        assert_eq!(
            allow_on(&r, Method::OPTIONS, "/api/x").as_deref(),
            Some("GET,HEAD,POST")
        );
        assert_eq!(allow_on(&r, Method::HEAD, "/dashboard/assets/x"), None);
        assert_eq!(
            allow_on(&r, Method::PUT, "/dashboard/assets/x").as_deref(),
            Some("GET,HEAD")
        );
        assert_eq!(allow_on(&r, Method::GET, "/nope"), None);
        assert_eq!(allow_on(&r, Method::GET, "/dashboard/assets/a/b"), None);
    }

    #[test]
    #[should_panic(expected = "the router's methods are not the API table's")]
    fn a_router_that_differs_from_the_table_stops_the_start() {
        Routes::new(router(Some(Route::Metrics)), 1024);
    }
}
