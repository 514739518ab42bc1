//! Why admission refused a request: one variant per answer a step of
//! [`super::admission`] gives, and, in one place, the status, error code
//! and message each one is answered with.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::header::{CONNECTION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::limits::Limited;
use crate::api::errors::ApiError;
use moltguard_waf::Category;

/// A refused request. Every message says what happened and what to do.
#[derive(Debug)]
pub enum Refusal {
    /// Step 1: the gateway holds `GATEWAY_MAX_CONNECTIONS` already.
    TooManyConnections {
        /// The cap.
        max: usize,
    },
    /// Step 2: the client's address is banned.
    Banned {
        /// The client's address.
        ip: IpAddr,
        /// Milliseconds since the epoch; `None`: until lifted.
        until_ms: Option<i64>,
        /// Why it was banned.
        reason: String,
    },
    /// Step 3: the moltguard breaker is not closed, and the client is not
    /// this machine.
    BreakerOpen {
        /// The breaker's state.
        state: String,
        /// Why it is in it.
        reason: String,
    },
    /// Step 3: lockdown, and the client is not this machine.
    Lockdown,
    /// Step 6: lockdown, and the caller is no admin.
    LockdownAdminsOnly,
    /// Steps 4 and 7: a rate limit; `what` names whose and which.
    RateLimited {
        /// Whose requests, and which limit.
        what: String,
        /// When the next request may come.
        limited: Limited,
    },
    /// Step 5: the body stopped arriving.
    BodyStalled {
        /// How long nothing arrived.
        idle: Duration,
    },
    /// Step 5: the body is over `MAX_BODY_BYTES`, or broke off.
    BodyTooLarge {
        /// The largest body accepted.
        limit: usize,
    },
    /// Step 5: the request firewall blocked it.
    Blocked {
        /// The rule that blocked it.
        rule_id: u32,
        /// The rule's category.
        category: Category,
        /// The request's id, also in the incident.
        request_id: String,
    },
    /// Step 6: no valid credential; the message says which was wrong.
    Unauthorized(String),
    /// Step 6: a cookie-authenticated write from another site's page.
    BadOrigin,
    /// Step 6: the credential lacks the scope the route needs.
    InsufficientScope(String),
}

impl Refusal {
    /// The answer: status, OpenAI-style error kind and code, message.
    fn error(&self) -> ApiError {
        let (status, kind, code, message) = match self {
            Refusal::TooManyConnections { max } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded_error",
                "too_many_connections",
                format!(
                    "the gateway is at its connection limit ({max}, GATEWAY_MAX_CONNECTIONS); try again shortly"
                ),
            ),
            Refusal::Banned {
                ip,
                until_ms,
                reason,
            } => {
                let until = match until_ms {
                    Some(t) => chrono::DateTime::from_timestamp_millis(*t)
                        .map(|d| format!("until {}", d.format("%Y-%m-%d %H:%M:%S UTC")))
                        .unwrap_or_default(),
                    None => "until an operator lifts it".into(),
                };
                (
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    "ip_blocked",
                    format!("your address {ip} is blocked {until} ({reason})"),
                )
            }
            Refusal::BreakerOpen { state, reason } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "breaker_open",
                format!(
                    "the moltguard breaker is {state} ({reason}); only this machine is served until it is closed (`moltguard breaker close`)"
                ),
            ),
            Refusal::Lockdown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "lockdown",
                "the gateway is in lockdown: only an administrator on this machine is served (`moltguard lockdown off` ends it)".into(),
            ),
            Refusal::LockdownAdminsOnly => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "lockdown",
                "the gateway is in lockdown: only administrator keys are served".into(),
            ),
            Refusal::RateLimited { what, limited } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limited",
                format!("{what}; retry after {} s", retry_secs(limited)),
            ),
            Refusal::BodyStalled { idle } => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "body_timeout",
                format!(
                    "the request body stopped arriving: nothing for {} (GATEWAY_BODY_TIMEOUT_MS)",
                    humantime::format_duration(*idle)
                ),
            ),
            Refusal::BodyTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!(
                    "the request body is too large or could not be read; the limit is {} (MAX_BODY_BYTES)",
                    human_bytes(*limit)
                ),
            ),
            Refusal::Blocked {
                rule_id,
                category,
                request_id,
            } => (
                StatusCode::FORBIDDEN,
                "access_denied",
                "request_blocked",
                format!(
                    "request blocked by the firewall (rule {rule_id}, {category}); request id {request_id}"
                ),
            ),
            Refusal::Unauthorized(message) => (
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "unauthorized",
                message.clone(),
            ),
            Refusal::BadOrigin => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "bad_origin",
                "this request carries a session cookie but comes from another site's page; refused".into(),
            ),
            Refusal::InsufficientScope(message) => (
                StatusCode::FORBIDDEN,
                "permission_error",
                "insufficient_scope",
                message.clone(),
            ),
        };
        let mut e = ApiError::new(status, kind, code, message);
        if let Refusal::RateLimited { limited, .. } = self {
            e.retry_after_secs = Some(retry_secs(limited));
        }
        e
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = self.error().into_response();
        let headers = r.headers_mut();
        match self {
            // A full gateway sheds the connection, not only the request.
            Refusal::TooManyConnections { .. } => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Refusal::Unauthorized(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"moltgate\""),
                );
            }
            _ => {}
        }
        r
    }
}

/// Whole seconds to wait, at least one.
fn retry_secs(l: &Limited) -> u64 {
    l.retry_after.as_secs_f64().ceil().max(1.0) as u64
}

/// `16 MiB`, `64 KiB`, `100 bytes`.
fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(r: Refusal) -> (StatusCode, Option<String>, Option<String>) {
        let resp = r.into_response();
        let header = |n| {
            resp.headers()
                .get(n)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
        };
        (resp.status(), header(CONNECTION), header(WWW_AUTHENTICATE))
    }

    #[test]
    fn each_refusal_has_its_status_and_headers() {
        assert_eq!(
            answer(Refusal::TooManyConnections { max: 3 }),
            (StatusCode::SERVICE_UNAVAILABLE, Some("close".into()), None)
        );
        let (status, _, auth) = answer(Refusal::Unauthorized("no key".into()));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(auth.as_deref(), Some("Bearer realm=\"moltgate\""));
        let limited = Limited {
            retry_after: Duration::from_millis(1200),
        };
        let e = Refusal::RateLimited {
            what: "too many requests from 10.0.0.1".into(),
            limited,
        }
        .error();
        assert_eq!(e.retry_after_secs, Some(2));
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let e = Refusal::Banned {
            ip: "10.0.0.9".parse().unwrap(),
            until_ms: None,
            reason: "5 failed logins".into(),
        }
        .error();
        assert_eq!(
            e.message,
            "your address 10.0.0.9 is blocked until an operator lifts it (5 failed logins)"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(64 << 10), "64 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
