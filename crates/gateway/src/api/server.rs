//! The router built from the API's table, and the small handlers: health,
//! readiness, metrics and the model list. The inference endpoints are
//! [`super::infer`]'s; the RPC, login and WebSocket routes are
//! [`crate::admin::rpc`]'s; the dashboard is [`crate::admin::dashboard`]'s.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::infer;
use super::routes::Routes;
use crate::admin::dashboard;
use crate::admin::rpc;
use crate::api;
use crate::inbound::Mode;
use crate::Gateway;

/// Every route of the API's table ([`api::Route::ALL`]). The security layer
/// ([`crate::inbound::layer`]) wraps them once, so they carry no layers
/// of their own.
pub fn routes(gw: Arc<Gateway>) -> Routes {
    let router = api::Route::ALL
        .into_iter()
        .flat_map(|route| route.patterns().iter().map(move |p| (*p, handler(route))))
        .fold(Router::new(), |r, (path, handler)| r.route(path, handler))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "not_found",
                api::not_found_message(),
            )
        })
        .method_not_allowed_fallback(|uri: Uri| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                api::method_not_allowed_message(uri.path()),
            )
        })
        .with_state(gw);
    Routes::new(router, infer::MAX_REQUEST_BYTES)
}

/// The handler of each route.
fn handler(route: api::Route) -> MethodRouter<Arc<Gateway>> {
    use api::Route;
    match route {
        Route::Infer(e) => {
            post(move |gw: State<Arc<Gateway>>, req: Request| infer::infer(e, gw, req))
        }
        Route::Models => get(models),
        Route::Health => get(|| async { Json(json!({"status": "ok"})) }),
        Route::Ready => get(ready),
        Route::Metrics => get(metrics),
        Route::Login => post(rpc::login),
        Route::Logout => post(rpc::logout),
        Route::Rpc => get(rpc::rest).post(rpc::rest),
        Route::Ws => get(rpc::ws),
        Route::Dashboard => get(dashboard::index),
        Route::DashboardAsset => get(dashboard::asset),
    }
}

async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.ready() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": "no provider is usable (missing keys or open circuit breakers); see /api/providers/status"})),
        )
            .into_response()
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    for p in &gw.providers {
        gw.refresh_circuit_gauge(p);
    }
    let sec = &gw.security;
    let now = crate::admin::store::now_ms();
    for (what, v) in [
        ("open_connections", sec.limits.connections.count() as i64),
        ("active_bans", sec.bans.active(now).len() as i64),
        ("lockdown", sec.mode(Mode::Lockdown) as i64),
        ("kill_switch", sec.mode(Mode::Emergency) as i64),
        ("dropped_incidents", sec.dropped_incidents() as i64),
    ] {
        gw.metrics.security_state.with_label_values(&[what]).set(v);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        gw.metrics.render(),
    )
        .into_response()
}

/// Aliases plus each provider's default model; upstream catalogues are not
/// fetched (that would make a cheap call slow and fallible).
async fn models(State(gw): State<Arc<Gateway>>) -> Json<Value> {
    let mut data = Vec::new();
    for alias in gw.cfg.aliases.keys() {
        data.push(json!({"id": alias, "object": "model", "created": 0, "owned_by": "moltgate"}));
    }
    for p in &gw.providers {
        if let Some(m) = &p.cfg.default_model {
            data.push(json!({"id": format!("{}/{}", p.name(), m), "object": "model", "created": 0, "owned_by": p.name()}));
        }
    }
    Json(json!({"object": "list", "data": data}))
}
