//! The HTTP stack around the router, as one service wrapping it once (a
//! layer per route was cloned with every route's service, per request):
//! CORS preflights are answered first, then [`admission::admit`] runs the
//! request through the router or refuses it; every answer gets the CORS
//! and security headers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Method;
use axum::response::Response;
use tower::Service;

use super::admission::{self, ConnMeta};
use super::headers;
use crate::api::routes::Routes;
use crate::Gateway;

struct App {
    gw: Arc<Gateway>,
    routes: Routes,
}

/// Makes the service of each accepted connection ([`crate::inbound::listen`]).
#[derive(Clone)]
pub struct MakeService(Arc<App>);

impl MakeService {
    /// The service around `routes`, for connections to `gw`.
    pub fn new(gw: Arc<Gateway>, routes: Routes) -> Self {
        MakeService(Arc::new(App { gw, routes }))
    }

    /// The service of one accepted connection.
    pub fn for_connection(&self, conn: ConnMeta) -> SecurityService {
        SecurityService {
            app: self.0.clone(),
            conn,
        }
    }
}

/// One connection's service. The server clones it for every request, so
/// it holds only shared pointers (and the peer's address).
#[derive(Clone)]
pub struct SecurityService {
    app: Arc<App>,
    conn: ConnMeta,
}

impl Service<Request> for SecurityService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.serve(req).await) })
    }
}

impl SecurityService {
    async fn serve(self, req: Request) -> Response {
        let App { gw, routes } = &*self.app;
        let sec = &gw.security;
        let origin = headers::cors_origin(req.headers(), &sec.cfg.cors_origins, sec.loopback);
        let mut resp = if req.method() == Method::OPTIONS {
            // A preflight: a browser sends it without credentials.
            let (parts, _) = req.into_parts();
            routes.with_allow(&parts, headers::preflight(origin))
        } else {
            let mut resp = admission::admit(sec, routes, &self.conn, req).await;
            // Room for the headers added below at once, rather than a
            // reallocation every few.
            resp.headers_mut().reserve(headers::ALWAYS.len() + 2);
            headers::add_cors(resp.headers_mut(), origin);
            resp
        };
        headers::add_security_headers(&mut resp);
        resp
    }
}
