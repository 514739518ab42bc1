//! The inference endpoints ([`Endpoint`]), all served by one handler: the
//! request is checked, its model resolved to a chain of routes, and the
//! chain run under one deadline ([`chain::run`]). Chat completions get a
//! synthesised stream and mid-stream resume; the other endpoints are
//! passed through.
// `ApiError` carries the attempt list by value; it is built once per failed
// request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use super::endpoint::Endpoint;
use super::errors::ApiError;
use super::json;
use super::passthrough::{self, Passthrough};
use super::stream::{self, relay, synthesize, Relay};
use super::validate;
use crate::admin::metrics::{label, Outcome};
use crate::inbound::admission::Admitted;
use crate::inbound::Mode;
use crate::outbound::chain::{self, Success};
use crate::outbound::deadline::Deadline;
use crate::outbound::provider::{Answer, Provider, Streamed, UpstreamEvents};
use crate::outbound::resume::Plan;
use crate::outbound::routing::{resolve_chain, Route};
use crate::Gateway;

/// Largest request body accepted (long prompts are big, but not unbounded).
pub(super) const MAX_REQUEST_BYTES: usize = 16 << 20;

/// An inference request, checked.
struct ApiRequest<'a> {
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

/// One inference request, on any endpoint.
pub(super) async fn infer(
    endpoint: Endpoint,
    State(gw): State<Arc<Gateway>>,
    mut req: Request,
) -> Response {
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
    let mut outcome = chain::run(
        &gw,
        endpoint,
        &req.fields,
        &req.model,
        &chain,
        upstream,
        overall,
    )
    .await;
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
fn key_label(p: Option<&crate::inbound::Principal>) -> &str {
    use crate::inbound::Principal;
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
    cfg: &crate::config::GatewayConfig,
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
