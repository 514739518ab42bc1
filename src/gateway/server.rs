//! HTTP routes and the fallback chain.
//!
//! Every inference endpoint ([`Endpoint`]) is served by one handler: the
//! request is checked, its model resolved to a chain of routes, and the
//! chain run under one deadline. Chat completions get a synthesised stream
//! and mid-stream resume; the other endpoints are passed through.
// `ApiError` carries the attempt list by value; it is built once per failed
// request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::api;
use super::dashboard;
use super::deadline::Deadline;
use super::endpoint::Endpoint;
use super::errors::{ApiError, AttemptReport};
use super::json;
use super::metrics::{label, Outcome};
use super::passthrough::{self, Passthrough};
use super::provider::{upstream_body, Answer, Provider, Streamed, UpstreamEvents};
use super::resume::Plan;
use super::retry::{Action, Failure};
use super::routes::Routes;
use super::routing::{resolve_chain, Route};
use super::security::admission::Admitted;
use super::security::{rpc, validate, Mode};
use super::stream::{self, relay, synthesize, Relay};
use super::Gateway;

/// Largest request body accepted (long prompts are big, but not unbounded).
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Every route of the API's table ([`api::Route::ALL`]). The security layer
/// ([`super::security::layer`]) wraps them once, so they carry no layers
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
    Routes::new(router, MAX_REQUEST_BYTES)
}

/// The handler of each route.
fn handler(route: api::Route) -> MethodRouter<Arc<Gateway>> {
    use api::Route;
    match route {
        Route::Infer(e) => post(move |gw: State<Arc<Gateway>>, req: Request| infer(e, gw, req)),
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
    let now = super::security::store::now_ms();
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

/// An inference request, checked.
struct ApiRequest<'a> {
    endpoint: Endpoint,
    fields: json::Fields<'a>,
    model: String,
    stream: bool,
    fallbacks: Vec<String>,
}

fn parse_request<'a>(
    endpoint: Endpoint,
    raw: &'a [u8],
    default_model: &str,
    max_chars: usize,
) -> Result<ApiRequest<'a>, ApiError> {
    let fields = json::parse_fields(raw)
        .map_err(|e| ApiError::invalid_request(None, format!("request body {e}")))?;
    let model = match fields.get("model") {
        f if json::is_absent(f) => default_model.to_string(),
        Some(v) => match json::str_value(v) {
            Some(s) if s.trim().is_empty() => default_model.to_string(),
            Some(s) => s.trim().to_string(),
            None => {
                return Err(ApiError::invalid_request(
                    Some("model"),
                    "\"model\" must be a string",
                ))
            }
        },
        None => unreachable!("absent handled above"),
    };
    if endpoint == Endpoint::Chat {
        chat_messages(&fields, max_chars)?;
    } else {
        input(endpoint, &fields)?;
    }
    if let Some(u) = fields.get("user").filter(|u| u.get() != "null") {
        validate::user_id(u).map_err(invalid)?;
    }
    validate::params(|k| fields.get(k).copied()).map_err(invalid)?;
    let stream = match fields.get("stream") {
        f if json::is_absent(f) => false,
        Some(v) => match v.get() {
            "true" => true,
            "false" => false,
            other => serde_json::from_str::<bool>(other).map_err(|_| {
                ApiError::invalid_request(Some("stream"), "\"stream\" must be true or false")
            })?,
        },
        None => false,
    };
    if stream && !endpoint.streams() {
        return Err(ApiError::invalid_request(
            Some("stream"),
            format!("{endpoint} has no streamed form; leave \"stream\" out"),
        ));
    }
    let bad_fallbacks = || {
        ApiError::invalid_request(
            Some("fallbacks"),
            "\"fallbacks\" must be a list of model names",
        )
    };
    let fallbacks = match fields.get("fallbacks") {
        f if json::is_absent(f) => Vec::new(),
        Some(v) => match serde_json::from_str::<Value>(v.get()) {
            Ok(Value::Array(a)) => a
                .iter()
                .map(|f| match f {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(o) => o.get("model").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad_fallbacks)?,
            _ => return Err(bad_fallbacks()),
        },
        None => Vec::new(),
    };
    Ok(ApiRequest {
        endpoint,
        fields,
        model,
        stream,
        fallbacks,
    })
}

/// The pass-through endpoints' input: present where the endpoint needs it,
/// a string or a list (the provider judges the rest).
fn input(endpoint: Endpoint, fields: &json::Fields<'_>) -> Result<(), ApiError> {
    let (name, required) = endpoint.input_field();
    match fields.get(name).filter(|v| v.get() != "null") {
        None if required => Err(ApiError::invalid_request(
            Some(name),
            format!("missing required field {name:?}"),
        )),
        None => Ok(()),
        Some(v) if v.get().starts_with(['"', '[']) => Ok(()),
        Some(_) => Err(ApiError::invalid_request(
            Some(name),
            format!("{name:?} must be a string or a list"),
        )),
    }
}

/// `messages`: a non-empty array of message objects, each within limits.
fn chat_messages(fields: &json::Fields<'_>, max_chars: usize) -> Result<(), ApiError> {
    let bad_messages = || {
        ApiError::invalid_request(
            Some("messages"),
            "\"messages\" must be an array of {role, content} objects",
        )
    };
    match fields.get("messages") {
        None => {
            return Err(ApiError::invalid_request(
                Some("messages"),
                "missing required field \"messages\"",
            ))
        }
        Some(v) => {
            let (len, all_objects) = json::array_of_objects(v).ok_or_else(bad_messages)?;
            if len == 0 {
                return Err(ApiError::invalid_request(
                    Some("messages"),
                    "\"messages\" must not be empty",
                ));
            }
            if !all_objects {
                return Err(bad_messages());
            }
            validate::messages(v, max_chars).map_err(invalid)?;
        }
    }
    Ok(())
}

fn invalid(e: validate::Invalid) -> ApiError {
    ApiError::invalid_request(Some(&e.param), e.message)
}

/// The answer of the route that succeeded.
struct Success<'a> {
    provider: Arc<Provider>,
    route: &'a Route,
    answer: Answer,
    attempts: usize,
}

/// One inference request, on any endpoint.
async fn infer(endpoint: Endpoint, State(gw): State<Arc<Gateway>>, mut req: Request) -> Response {
    let started = Instant::now();
    let adm = req.extensions_mut().remove::<Admitted>();
    // Admission read the body: it is not collected again, unless it is
    // over the handlers' limit (admission's MAX_BODY_BYTES may be larger)
    // and collecting it is the way to the same refusal as other handlers.
    let raw = match &adm {
        Some(a) if a.body.len() <= MAX_REQUEST_BYTES => Ok(a.body.clone()),
        _ => Bytes::from_request(req, &()).await,
    };
    let raw = match raw {
        Ok(b) => b,
        Err(e) => {
            let mut err = ApiError::invalid_request(
                None,
                format!(
                    "could not read the request body ({e}); the limit is {} MiB",
                    MAX_REQUEST_BYTES >> 20
                ),
            );
            err.status = e.status();
            return client_error(&gw, err);
        }
    };
    let req = match parse_request(
        endpoint,
        &raw,
        &gw.cfg.default_model,
        gw.security.cfg.max_message_chars,
    ) {
        Ok(r) => r,
        Err(e) => return client_error(&gw, e),
    };
    if gw.security.mode(Mode::Emergency) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "kill_switch",
            "the kill switch is on: no LLM call leaves the gateway (`moltguard kill-switch off` ends it)",
        )
        .into_response();
    }
    if let Some(Admitted {
        principal: Some(p), ..
    }) = &adm
    {
        if let Some(m) = std::iter::once(&req.model)
            .chain(&req.fallbacks)
            .find(|m| !p.allows_model(m))
        {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                format!(
                    "{} may not use model {m:?} (the key's allowed models are set at creation)",
                    p.label()
                ),
            )
            .into_response();
        }
    }
    let chain = match resolve_chain(&gw.cfg, &req.model, &req.fallbacks) {
        Ok(c) => c,
        Err(msg) => return client_error(&gw, ApiError::invalid_request(Some("model"), msg)),
    };
    let overall = Deadline::after(gw.cfg.request_timeout);
    let upstream = upstream_streaming(&gw.cfg, endpoint, req.stream);
    let received = adm.as_ref().map_or(started, |a| a.received);
    let key = key_label(adm.as_ref().and_then(|a| a.principal.as_ref()));

    let chain_started = Instant::now();
    let mut outcome = run_chain(&gw, &req, &chain, upstream, overall).await;
    if let Ok(s) = &outcome {
        if matches!(s.answer, Answer::Stream { .. } | Answer::Events { .. }) {
            gw.metrics
                .time_to_first_token
                .with_label_values(&[s.provider.name()])
                .observe(received.elapsed().as_secs_f64());
        }
    }
    if upstream == Streamed::ToAssemble {
        outcome = match outcome {
            Ok(s) => assembled(&gw, s, &chain, &raw, key).await,
            e => e,
        };
    }
    let chain_time = chain_started.elapsed();
    let elapsed = started.elapsed().as_secs_f64();
    match outcome {
        Err(e) => {
            gw.metrics.request_done(Outcome::Error, Some(elapsed));
            tracing::info!(model = %label(&req.model), status = e.status.as_u16(), "request failed: {}", e.message);
            e.into_response()
        }
        Ok(s) => {
            gw.metrics.request_done(Outcome::Ok, Some(elapsed));
            // A stream that breaks after its first content may continue on
            // the routes after the one serving it.
            let plan = matches!(s.answer, Answer::Stream { .. })
                .then(|| Plan::new(&gw, &chain, s.route, raw.clone(), upstream));
            let resp = respond(&gw, s, req.stream, endpoint, key, plan);
            // Everything but the wait on upstreams (attempts, retries, backoff).
            let overhead = received.elapsed().saturating_sub(chain_time);
            gw.metrics.overhead.observe(overhead.as_secs_f64());
            resp
        }
    }
}

/// Who asked, as the tokens metric labels it: the key's label (keys are
/// made by an operator, so the set is bounded), else the kind of caller.
fn key_label(p: Option<&super::security::Principal>) -> &str {
    use super::security::Principal;
    match p {
        Some(Principal::Key(k)) => label(&k.label),
        Some(Principal::Session) => "session",
        Some(Principal::Open) | None => "none",
    }
}

fn client_error(gw: &Gateway, e: ApiError) -> Response {
    gw.metrics.request_done(Outcome::ClientError, None);
    e.into_response()
}

const X_PROVIDER: HeaderName = HeaderName::from_static("x-moltgate-provider");
const X_MODEL: HeaderName = HeaderName::from_static("x-moltgate-model");
const X_ATTEMPTS: HeaderName = HeaderName::from_static("x-moltgate-attempts");

fn attempts_header(n: usize) -> HeaderValue {
    const SMALL: [HeaderValue; 10] = [
        HeaderValue::from_static("0"),
        HeaderValue::from_static("1"),
        HeaderValue::from_static("2"),
        HeaderValue::from_static("3"),
        HeaderValue::from_static("4"),
        HeaderValue::from_static("5"),
        HeaderValue::from_static("6"),
        HeaderValue::from_static("7"),
        HeaderValue::from_static("8"),
        HeaderValue::from_static("9"),
    ];
    match SMALL.get(n) {
        Some(v) => v.clone(),
        None => HeaderValue::from(n),
    }
}

fn respond(
    gw: &Arc<Gateway>,
    s: Success<'_>,
    client_stream: bool,
    endpoint: Endpoint,
    key: &str,
    plan: Option<Plan>,
) -> Response {
    let (mut resp, answered_model) = match s.answer {
        Answer::Full { body, model, usage } => {
            if let Some(u) = usage {
                let model_label = gw.model_label(&s.route.model);
                gw.metrics
                    .count_tokens(s.provider.name(), model_label, key, &u);
            }
            // Only a chat answer is asked for whole when the client streams.
            let resp = if client_stream && endpoint == Endpoint::Chat {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let events = synthesize(&v);
                Sse::new(futures_util::stream::iter(
                    events.into_iter().map(Ok::<_, std::convert::Infallible>),
                ))
                .into_response()
            } else {
                let mut resp = Response::new(axum::body::Body::from(body));
                resp.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                resp
            };
            (resp, model)
        }
        Answer::Stream { first, rest, done } => {
            let model = upstream_model(&first, &s.route.model);
            let r = relay_of(gw, &s.provider, s.route, (first, rest, done), key, plan);
            (Sse::new(relay(r)).into_response(), model)
        }
        Answer::Events { first, rest, done } => {
            let p = Passthrough {
                gw: gw.clone(),
                provider: s.provider.clone(),
                endpoint,
                route_model: s.route.model.clone(),
                first,
                rest,
                done,
                idle: s.provider.cfg.timeouts.idle,
                budget: Deadline::after(gw.cfg.max_stream),
                started: Instant::now(),
                key: Arc::from(key),
            };
            (
                Sse::new(passthrough::relay(p)).into_response(),
                s.route.model.clone(),
            )
        }
    };
    let h = resp.headers_mut();
    if let Some(v) = &s.provider.name_header {
        h.insert(X_PROVIDER, v.clone());
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(answered_model)) {
        h.insert(X_MODEL, v);
    }
    h.insert(X_ATTEMPTS, attempts_header(s.attempts));
    resp
}

/// How the upstream is asked to answer. A chat answer is streamed from
/// the provider unless `stream_upstream` is off, and assembled when the
/// client is not to see it live; the other endpoints stream exactly when
/// the client does.
fn upstream_streaming(
    cfg: &super::config::GatewayConfig,
    endpoint: Endpoint,
    client_streams: bool,
) -> Streamed {
    match endpoint {
        Endpoint::Chat if client_streams && cfg.streaming => Streamed::ForClient,
        Endpoint::Chat if cfg.stream_upstream => Streamed::ToAssemble,
        _ if client_streams && endpoint != Endpoint::Chat => Streamed::ForClient,
        _ => Streamed::No,
    }
}

/// The model a stream's first chunks report, else the route's.
fn upstream_model(first: &[Value], route_model: &str) -> String {
    first
        .iter()
        .find_map(|c| c.get("model").and_then(Value::as_str))
        .filter(|m| !m.is_empty())
        .map_or_else(|| route_model.to_owned(), str::to_owned)
}

/// The relay of a committed chat stream: `(first, rest, done)` of its
/// [`Answer::Stream`].
fn relay_of(
    gw: &Arc<Gateway>,
    provider: &Arc<Provider>,
    route: &Route,
    (first, rest, done): (Vec<Value>, UpstreamEvents, bool),
    key: &str,
    plan: Option<Plan>,
) -> Relay {
    Relay {
        gw: gw.clone(),
        provider: provider.clone(),
        route_model: route.model.clone(),
        first,
        rest,
        done,
        idle: provider.cfg.timeouts.idle,
        // The request's deadline bounded the wait for the first content;
        // an answer that flows is bounded by the idle timeout between
        // chunks, and this long at most.
        budget: Deadline::after(gw.cfg.max_stream),
        started: Instant::now(),
        key: Arc::from(key),
        plan,
    }
}

/// A stream the client did not ask for, read to its end and made one
/// answer ([`stream::assemble`]); a provider that answered whole anyway
/// is used as it came.
async fn assembled<'c>(
    gw: &Arc<Gateway>,
    s: Success<'c>,
    chain: &'c [Route],
    raw: &Bytes,
    key: &str,
) -> Result<Success<'c>, ApiError> {
    match s.answer {
        Answer::Stream { first, rest, done } => {
            let model = upstream_model(&first, &s.route.model);
            let plan = Plan::new(gw, chain, s.route, raw.clone(), Streamed::ToAssemble);
            let r = relay_of(
                gw,
                &s.provider,
                s.route,
                (first, rest, done),
                key,
                Some(plan),
            );
            let body = stream::assemble(r).await?;
            // The relay counted the tokens.
            let answer = Answer::Full {
                body,
                model,
                usage: None,
            };
            Ok(Success { answer, ..s })
        }
        answer => Ok(Success { answer, ..s }),
    }
}

async fn run_chain<'c>(
    gw: &Arc<Gateway>,
    req: &ApiRequest<'_>,
    chain: &'c [Route],
    upstream: Streamed,
    overall: Deadline,
) -> Result<Success<'c>, ApiError> {
    let cfg = &gw.cfg;
    let mut reports: Vec<AttemptReport> = Vec::new();
    let mut last: Option<Failure> = None;
    let mut retries_used = 0u32;
    let mut skipped_providers: HashSet<String> = HashSet::new();
    let mut sent = 0usize;

    'routes: for (i, route) in chain.iter().enumerate() {
        let Some(p) = gw.provider(&route.provider) else {
            continue;
        };
        if i > 0 {
            if let Some(prev) = chain.get(i - 1) {
                gw.metrics
                    .fallbacks
                    .with_label_values(&[&prev.provider])
                    .inc();
            }
        }
        if skipped_providers.contains(&route.provider) {
            continue;
        }
        if p.key_missing() || p.key_error.is_some() {
            let f = Failure::KeyMissing {
                key_ref: p.cfg.key_ref.clone().unwrap_or_default(),
            };
            let mut rep = AttemptReport::failed(p.name(), &route.model, &f, 0);
            if let Some(e) = &p.key_error {
                rep.detail = format!("skipped: {e}");
            }
            reports.push(rep);
            skipped_providers.insert(route.provider.clone());
            last = Some(f);
            continue;
        }
        let body = upstream_body(&req.fields, &route.model, upstream);
        loop {
            if overall.expired() {
                break 'routes;
            }
            let permit = match p.circuits.try_acquire(&route.model) {
                Ok(permit) => permit,
                Err(rej) => {
                    let f = Failure::CircuitOpen {
                        retry_in: rej.retry_in,
                    };
                    reports.push(AttemptReport::failed(p.name(), &route.model, &f, 0));
                    last = Some(f);
                    continue 'routes;
                }
            };
            let t0 = Instant::now();
            sent += 1;
            let wait = attempt_deadline(overall, cfg.attempt_share_pct, i + 1 < chain.len());
            let result = p
                .attempt(
                    req.endpoint,
                    body.clone(),
                    &route.model,
                    upstream.is_stream(),
                    wait,
                    &gw.redactor,
                )
                .await;
            // The attempt's share ran out, not the request's deadline: an
            // upstream timeout like any other.
            let result = match result {
                Err(Failure::Timeout {
                    phase,
                    ms,
                    overall: true,
                }) if !overall.expired() => Err(Failure::Timeout {
                    phase,
                    ms,
                    overall: false,
                }),
                r => r,
            };
            let ms = t0.elapsed().as_millis() as u64;
            let model_l = gw.model_label(&route.model);
            match result {
                Ok(answer) => {
                    permit.success();
                    p.record(ms, Ok(()));
                    gw.metrics
                        .upstream_ok(p.name(), model_l, t0.elapsed().as_secs_f64());
                    return Ok(Success {
                        provider: p.clone(),
                        route,
                        answer,
                        attempts: sent,
                    });
                }
                Err(f) => {
                    match f.blame() {
                        Some(blame) => permit.failure(blame),
                        // It answered: reachable and healthy, whatever it said.
                        None => permit.success(),
                    }
                    gw.refresh_circuit_gauge(p);
                    let rep = AttemptReport::failed(p.name(), &route.model, &f, ms);
                    tracing::warn!(provider = p.name(), model = %model_l, class = f.class(), elapsed_ms = ms, "attempt failed: {}", rep.detail);
                    p.record(ms, Err(rep.detail.clone()));
                    gw.metrics
                        .upstream_requests
                        .with_label_values(&[p.name(), model_l, f.class()])
                        .inc();
                    gw.metrics
                        .errors
                        .with_label_values(&[p.name(), f.class()])
                        .inc();
                    reports.push(rep);
                    let action = f.action(cfg.max_retry_after);
                    last = Some(f.clone());
                    match action {
                        Action::Retry if retries_used < cfg.max_retries => {
                            let delay = f.retry_delay(retries_used);
                            // A retry that cannot finish in time is pointless: move on.
                            if delay + std::time::Duration::from_millis(50) >= overall.remaining() {
                                continue 'routes;
                            }
                            retries_used += 1;
                            gw.metrics.retries.with_label_values(&[p.name()]).inc();
                            tokio::time::sleep(delay).await;
                        }
                        Action::Retry | Action::NextRoute => continue 'routes,
                        Action::SkipProvider => {
                            skipped_providers.insert(route.provider.clone());
                            continue 'routes;
                        }
                        Action::Stop => return Err(stop_error(&req.model, &f, reports)),
                    }
                }
            }
        }
    }
    Err(exhausted_error(
        cfg, &req.model, chain, last, reports, overall,
    ))
}

/// How long one attempt may wait for its answer to begin: the time left,
/// or its share of it when routes come after it (the last one gets all).
fn attempt_deadline(overall: Deadline, share_pct: u32, routes_after: bool) -> Deadline {
    if routes_after && share_pct < 100 {
        overall.cap(overall.remaining() * share_pct / 100)
    } else {
        overall
    }
}

fn stop_error(model: &str, f: &Failure, reports: Vec<AttemptReport>) -> ApiError {
    let culprit = reports
        .last()
        .map(|r| format!("{}/{}", r.provider, r.model))
        .unwrap_or_default();
    let (status, kind, code) = match f {
        Failure::ContentPolicy { .. } => (
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "content_policy_violation",
        ),
        Failure::BadRequest { status, .. } => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            "invalid_request_error",
            "upstream_rejected_request",
        ),
        _ => (StatusCode::BAD_GATEWAY, "api_error", "upstream_error"),
    };
    let mut e = ApiError::new(
        status,
        kind,
        code,
        format!(
            "{culprit} {} (model {model:?}; not retried: another provider would refuse it too)",
            f.describe()
        ),
    );
    e.attempts = reports;
    e
}

fn exhausted_error(
    cfg: &super::GatewayConfig,
    model: &str,
    chain: &[Route],
    last: Option<Failure>,
    reports: Vec<AttemptReport>,
    overall: Deadline,
) -> ApiError {
    let tried: Vec<String> = reports.iter().map(AttemptReport::line).collect();
    let reached: HashSet<String> = reports
        .iter()
        .map(|r| format!("{}/{}", r.provider, r.model))
        .collect();
    let untried: Vec<String> = chain
        .iter()
        .map(|r| r.to_string())
        .filter(|r| !reached.contains(r))
        .collect();
    let classes: Vec<&str> = reports.iter().map(|r| r.outcome).collect();
    let all = |c: &[&str]| !classes.is_empty() && classes.iter().all(|x| c.contains(x));
    let deadline_hit =
        overall.expired() || matches!(last, Some(Failure::Timeout { overall: true, .. }));

    let (status, kind, code, headline) = if deadline_hit {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            "deadline_exceeded",
            format!(
                "No answer for model {model:?} within the request deadline of {} ms.",
                cfg.request_timeout.as_millis()
            ),
        )
    } else if all(&["rate_limited", "circuit_open"]) && classes.contains(&"rate_limited") {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            format!("Every provider for model {model:?} is rate limiting."),
        )
    } else if all(&["context_length"]) {
        (StatusCode::BAD_REQUEST, "invalid_request_error", "context_length_exceeded", format!("The prompt is too long for every model tried for {model:?}; shorten it or add a larger-context model to the chain."))
    } else if all(&["auth", "key_missing"]) {
        (
            StatusCode::BAD_GATEWAY,
            "api_error",
            "upstream_auth_failed",
            format!("No provider for model {model:?} has a working API key."),
        )
    } else if matches!(last, Some(Failure::Timeout { .. })) {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "timeout_error",
            "upstream_timeout",
            format!("No provider answered model {model:?} in time."),
        )
    } else if all(&["circuit_open"]) {
        (StatusCode::SERVICE_UNAVAILABLE, "api_error", "circuit_open", format!("Every provider for model {model:?} is temporarily disabled after repeated failures."))
    } else {
        (
            StatusCode::BAD_GATEWAY,
            "api_error",
            "upstream_error",
            format!("No provider could answer model {model:?}."),
        )
    };
    let mut msg = headline;
    if !tried.is_empty() {
        msg.push_str(&format!(" Tried {}: {}.", tried.len(), tried.join("; ")));
    }
    if !untried.is_empty() {
        msg.push_str(&format!(
            " Not tried (no time left or provider skipped): {}.",
            untried.join(", ")
        ));
    }
    let mut e = ApiError::new(status, kind, code, msg);
    if status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(Failure::RateLimited {
            retry_after: Some(d),
            ..
        }) = &last
        {
            e.retry_after_secs = Some(d.as_secs().max(1));
        }
    }
    e.attempts = reports;
    e
}
