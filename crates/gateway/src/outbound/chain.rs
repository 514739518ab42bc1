//! The fallback chain: each route in order, each attempt within its share
//! of the request's one deadline, retried, skipped or stopped as its
//! [`Failure`] says, each provider's circuit asked first and told after.
//! When nothing answers, one error says what was tried and why each failed.
// `ApiError` carries the attempt list by value; it is built once per failed
// request, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::time::Instant;

use super::deadline::Deadline;
use super::provider::{upstream_body, Answer, Provider, Streamed};
use super::retry::{Action, Failure, FailureClass};
use super::routing::Route;
use crate::api::endpoint::Endpoint;
use crate::api::errors::{ApiError, AttemptReport};
use crate::api::json::Fields;
use crate::Gateway;

/// The answer of the route that succeeded.
pub struct Success<'a> {
    /// Who answered.
    pub provider: Arc<Provider>,
    /// The route of the chain it answered for.
    pub route: &'a Route,
    /// The answer, whole or as a stream.
    pub answer: Answer,
    /// Attempts sent upstream, this one included.
    pub attempts: usize,
}

/// The first answer along `chain` for the request whose checked fields are
/// `fields` (for `model`, as the client named it), within `overall`.
pub async fn run<'c>(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    fields: &Fields<'_>,
    model: &str,
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
        let body = upstream_body(fields, &route.model, upstream);
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
                    endpoint,
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
                    tracing::warn!(provider = p.name(), model = %model_l, class = %f.class(), elapsed_ms = ms, "attempt failed: {}", rep.detail);
                    p.record(ms, Err(rep.detail.clone()));
                    gw.metrics
                        .upstream_requests
                        .with_label_values(&[p.name(), model_l, f.class().as_str()])
                        .inc();
                    gw.metrics
                        .errors
                        .with_label_values(&[p.name(), f.class().as_str()])
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
                        Action::Stop => return Err(stop_error(model, &f, reports)),
                    }
                }
            }
        }
    }
    Err(exhausted_error(cfg, model, chain, last, reports, overall))
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
    cfg: &crate::GatewayConfig,
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
    use FailureClass::{Auth, CircuitOpen, ContextLength, KeyMissing, RateLimited};
    let classes: Vec<FailureClass> = reports.iter().map(|r| r.outcome).collect();
    let all = |c: &[FailureClass]| !classes.is_empty() && classes.iter().all(|x| c.contains(x));
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
    } else if all(&[RateLimited, CircuitOpen]) && classes.contains(&RateLimited) {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "rate_limited",
            format!("Every provider for model {model:?} is rate limiting."),
        )
    } else if all(&[ContextLength]) {
        (StatusCode::BAD_REQUEST, "invalid_request_error", "context_length_exceeded", format!("The prompt is too long for every model tried for {model:?}; shorten it or add a larger-context model to the chain."))
    } else if all(&[Auth, KeyMissing]) {
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
    } else if all(&[CircuitOpen]) {
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
