//! Admission: the steps of the module docs, in order, each answering with
//! a status and a message a person can act on; then the router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tracing::Instrument;

use super::keys::KeyRejection;
use super::limits::{ConnGuard, Limited};
use super::scope::Access;
use super::{headers, session, Incident, IncidentKind, Principal, RequestContext, Security};
use crate::gateway::api::{self, Route};
use crate::gateway::errors::ApiError;
use crate::gateway::routes::Routes;

/// Body bytes read from a request that carries no credential (enough for
/// the firewall to see what a scanner sends).
const ANONYMOUS_BODY_BYTES: usize = 64 << 10;

/// Per-connection facts, attached to every request on the connection.
#[derive(Clone)]
pub struct ConnMeta {
    pub peer: SocketAddr,
    guard: Option<Arc<ConnGuard>>,
}

impl std::fmt::Debug for ConnMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

impl ConnMeta {
    pub fn new(peer: SocketAddr, guard: ConnGuard) -> Self {
        ConnMeta {
            peer,
            guard: Some(Arc::new(guard)),
        }
    }

    fn over_limit(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.over_limit)
    }
}

/// Set by admission for handlers: who is calling, from where, and the
/// body it read (a handler takes it from here rather than collecting the
/// request body a second time).
#[derive(Clone)]
pub struct Admitted {
    pub principal: Option<Principal>,
    pub ctx: RequestContext,
    pub body: Bytes,
    /// When admission started: the gateway's own time on a request is
    /// measured from here.
    pub received: tokio::time::Instant,
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

fn refuse(status: StatusCode, kind: &'static str, code: &str, msg: impl Into<String>) -> Response {
    ApiError::new(status, kind, code, msg).into_response()
}

fn limited(what: &str, l: Limited) -> Response {
    let secs = l.retry_after.as_secs_f64().ceil().max(1.0) as u64;
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "rate_limited",
        format!("{what}; retry after {secs} s"),
    );
    e.retry_after_secs = Some(secs);
    e.into_response()
}

fn unauthorized(msg: impl Into<String>) -> Response {
    let mut r = refuse(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "unauthorized",
        msg,
    );
    r.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"moltgate\""),
    );
    r
}

/// Admits `req` and runs it through `routes`, or refuses it.
pub async fn admit(sec: &Security, routes: &Routes, conn: &ConnMeta, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();

    // 1. Connection cap: a full gateway still says it is alive.
    if conn.over_limit() && parts.uri.path() != "/health" {
        let mut r = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded_error",
            "too_many_connections",
            format!(
                "the gateway is at its connection limit ({}, GATEWAY_MAX_CONNECTIONS); try again shortly",
                sec.limits.connections.max()
            ),
        );
        r.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
        return routes.with_allow(&parts, r);
    }

    // 2. Who is it, and are they banned?
    let client_ip = super::client_ip::resolve(conn.peer, &parts.headers, &sec.cfg.trusted_proxies);
    let ctx = RequestContext {
        client_ip,
        request_id: sec.next_request_id(),
    };
    let rid = HeaderValue::from_str(&ctx.request_id).ok();
    // Every log line of this request carries its id (as do incidents).
    let span = tracing::info_span!("request", id = %ctx.request_id);
    let mut resp = async {
        match admit_inner(sec, ctx, &mut parts, body).await {
            Ok(body) => routes.call(Request::from_parts(parts, body)).await,
            Err(refusal) => routes.with_allow(&parts, refusal),
        }
    }
    .instrument(span)
    .await;
    if let Some(rid) = rid {
        resp.headers_mut().insert(X_REQUEST_ID, rid);
    }
    resp
}

/// Steps 2 to 8: the body to hand to the router (with [`Admitted`] in
/// the extensions, except for liveness and readiness), or the refusal.
// The refusal is the response itself, built once per refused request.
#[allow(clippy::result_large_err)]
async fn admit_inner(
    sec: &Security,
    ctx: RequestContext,
    parts: &mut Parts,
    body: Body,
) -> Result<Body, Response> {
    let received = tokio::time::Instant::now();
    let now = super::store::now_ms();
    if let Some(ban) = sec.bans.banned(ctx.client_ip, now) {
        let until = match ban.expires_at {
            Some(t) => chrono::DateTime::from_timestamp_millis(t)
                .map(|d| format!("until {}", d.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default(),
            None => "until an operator lifts it".into(),
        };
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "access_denied",
            "ip_blocked",
            format!(
                "your address {} is blocked {until} ({})",
                ctx.client_ip, ban.reason
            ),
        ));
    }
    let method = &parts.method;
    let path = parts.uri.path();
    let route = Route::of_path(path);
    let access = api::access(route, path);
    if route.is_some_and(Route::is_probe) {
        return Ok(body);
    }

    // "This machine": the local-admin addresses (SECURITY_IGNORE_IPS,
    // loopback by default); through nginx the client is the forwarded one.
    let local_admin = sec.bans.ignored(ctx.client_ip);

    // The moltguard breaker, enforced here too: not closed, not served.
    if !local_admin {
        if let Some(b) = sec
            .breaker()
            .filter(|b| !b.admits_remote(chrono::Utc::now()))
        {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "breaker_open",
                format!(
                    "the moltguard breaker is {} ({}); only this machine is served until it is closed (`moltguard breaker close`)",
                    b.state.as_str().to_uppercase(),
                    b.reason
                ),
            ));
        }
    }

    // 3. Lockdown: this machine only (then admin only, below).
    let lockdown = sec.mode(super::Mode::Lockdown);
    if lockdown && !local_admin {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "lockdown",
            "the gateway is in lockdown: only an administrator on this machine is served (`moltguard lockdown off` ends it)",
        ));
    }

    // 4. Per-IP rate limit (the local admin is exempt), before any body
    // is read.
    if !local_admin {
        if let Err(l) = sec.limits.check_api(ctx.client_ip) {
            return Err(limited(
                &format!(
                    "too many requests from {} (RATE_LIMIT_API_PER_MINUTE={})",
                    ctx.client_ip, sec.cfg.api_per_minute
                ),
                l,
            ));
        }
    }

    // 5. The request firewall, on the whole request including the body.
    // A request that carries no credential at all for a route that needs
    // one will be refused anyway: only a little of its body is read, so
    // strangers cannot make the gateway buffer 16 MiB per connection.
    let anonymous = access != Access::Public
        && !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        && !parts.headers.contains_key(X_API_KEY)
        && !parts.headers.contains_key(axum::http::header::COOKIE)
        && sec.cfg.auth_required;
    let limit = if anonymous {
        ANONYMOUS_BODY_BYTES.min(sec.cfg.max_body_bytes)
    } else {
        sec.cfg.max_body_bytes
    };
    let body = match read_body(body, limit, sec.cfg.body_timeout).await {
        Ok(b) => b,
        Err(BodyError::Stalled) => {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "body_timeout",
                format!(
                    "the request body stopped arriving: nothing for {} (GATEWAY_BODY_TIMEOUT_MS)",
                    humantime::format_duration(sec.cfg.body_timeout)
                ),
            ))
        }
        Err(_) if anonymous => {
            return Err(unauthorized("missing credentials: send `Authorization: Bearer <key>` (create one with `moltguard keys create`)"))
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!(
                    "the request body is too large or could not be read; the limit is {} (MAX_BODY_BYTES)",
                    human_bytes(sec.cfg.max_body_bytes)
                ),
            ))
        }
    };
    if let Some(fw) = sec.firewall() {
        let view = crate::firewall::RequestView::from_http_parts(parts, body.clone())
            .client_ip(ctx.client_ip)
            .request_id(ctx.request_id.clone());
        let blocked = match fw.inspect(&view) {
            crate::firewall::Verdict::Block(b) => Some(b),
            _ => None,
        };
        // A malformed LLM body alone is a client bug, not an attack: it
        // goes on (through auth) to the handler's precise 400.
        let blocked = blocked.filter(|b| {
            let score: u32 = b
                .matches
                .iter()
                .filter(|m| m.category != crate::firewall::Category::LlmBody)
                .map(|m| m.severity.points())
                .sum();
            score >= fw.config().threshold
        });
        if let Some(b) = blocked {
            let detail = format!(
                "{} rule {} (score {}) on {}: {}",
                b.category, b.rule_id, b.score, b.matched_field, b.redacted_excerpt
            );
            sec.incident(
                Some(&ctx),
                Incident::new(IncidentKind::FirewallBlock, "blocked", detail)
                    .rule(b.rule_id.to_string()),
            );
            sec.failure(&ctx, "request firewall");
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "access_denied",
                "request_blocked",
                format!(
                    "request blocked by the firewall (rule {}, {}); request id {}",
                    b.rule_id, b.category, ctx.request_id
                ),
            ));
        }
    }

    // 6. Authentication and scope.
    let principal = match access {
        Access::Public => None,
        needed => match authenticate(sec, parts, method, &ctx) {
            Err(resp) => return Err(resp),
            Ok(p) => {
                if !needed.granted_to(p.scopes()) {
                    let scope = needed.needed();
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "permission_error",
                        "insufficient_scope",
                        format!(
                            "{} may not {} {path}: it needs the {scope} scope (it has: {})",
                            p.label(),
                            method,
                            if p.scopes().is_empty() {
                                "none".to_string()
                            } else {
                                p.scopes().to_string()
                            }
                        ),
                    ));
                }
                if lockdown && !p.scopes().allows(super::scope::Scope::Admin) {
                    return Err(refuse(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "service_unavailable",
                        "lockdown",
                        "the gateway is in lockdown: only administrator keys are served",
                    ));
                }
                // 7. Per-key / per-session rate limit.
                if let Err(l) = sec.check_principal_rate(&p) {
                    return Err(limited(&format!("too many requests for {}", p.label()), l));
                }
                Some(p)
            }
        },
    };
    // In lockdown, public routes stay open to this machine (remote clients
    // were refused above): the login, the dashboard page (it holds no
    // data) and /ws, which authenticates in its first frame and then
    // serves only admins.
    parts.extensions.insert(Admitted {
        principal,
        ctx,
        body: body.clone(),
        received,
    });
    Ok(Body::from(body))
}

/// Bearer key first, then the session cookie.
// The refusal is the response itself, built once per refused request.
#[allow(clippy::result_large_err)]
fn authenticate(
    sec: &Security,
    parts: &axum::http::request::Parts,
    method: &Method,
    ctx: &RequestContext,
) -> Result<Principal, Response> {
    if !sec.cfg.auth_required {
        return Ok(Principal::Open);
    }
    // `Authorization: Bearer <key>`, or `X-Api-Key: <key>` for clients
    // behind nginx's password, which takes `Authorization` for itself.
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("").trim())
    };
    let authorization = header(axum::http::header::AUTHORIZATION);
    let bearer = authorization.and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .map(str::trim)
    });
    let presented = bearer.or_else(|| header(X_API_KEY));
    if let Some(key) = presented {
        return match sec.authenticate_key(key) {
            Ok(k) => Ok(Principal::Key(k)),
            Err(why) => {
                let id = super::keys::split(key).map(|(id, _)| id).unwrap_or("-");
                sec.incident(
                    Some(ctx),
                    Incident::new(
                        IncidentKind::AuthFailure,
                        "refused",
                        format!("{} (key id {id})", why.describe()),
                    ),
                );
                sec.failure(ctx, "failed authentication");
                Err(unauthorized(match why {
                    KeyRejection::Malformed | KeyRejection::Unknown => why.describe().to_string(),
                    _ => format!(
                        "{}; ask an administrator for a new one (`moltguard keys create`)",
                        why.describe()
                    ),
                }))
            }
        };
    }
    let basic_only =
        authorization.is_some_and(|v| v.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")));
    if authorization.is_some() && !basic_only {
        return Err(unauthorized(
            "the Authorization header must be `Bearer <key>`",
        ));
    }
    let cookie = parts
        .headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header);
    if let Some(token) = cookie {
        if !sec.sessions.valid(token) {
            return Err(unauthorized(
                "your session has expired or is unknown; log in again",
            ));
        }
        // Cookies ride along on cross-site requests: writes must come
        // from an allowed origin (SameSite=Strict is the first line).
        if !matches!(*method, Method::GET | Method::HEAD)
            && !headers::browser_origin_ok(&parts.headers, &sec.cfg.cors_origins, sec.loopback)
        {
            sec.incident(
                Some(ctx),
                Incident::new(
                    IncidentKind::Csrf,
                    "refused",
                    "cookie-authenticated write from a foreign origin",
                ),
            );
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "permission_error",
                "bad_origin",
                "this request carries a session cookie but comes from another site's page; refused",
            ));
        }
        return Ok(Principal::Session);
    }
    Err(unauthorized(if basic_only {
        "nginx's password is not a moltgate key: also send the key as `X-Api-Key: <key>` (create one with `moltguard keys create`)"
    } else {
        "missing credentials: send `Authorization: Bearer <key>` (create one with `moltguard keys create`) or log in with the gateway password"
    }))
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// Over the limit, or the connection broke.
    TooLargeOrBroken,
    /// No piece arrived for the body timeout (a client that announced a
    /// body and sends none, or one byte now and then).
    Stalled,
}

/// The whole body (as `axum::body::to_bytes`, without its list of pieces:
/// a body usually comes in one, kept as it is). Each piece must come
/// within `idle` of the last: progress, not a total, is what is asked.
async fn read_body(
    mut body: Body,
    limit: usize,
    idle: std::time::Duration,
) -> Result<Bytes, BodyError> {
    let mut first = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => break,
            Ok(Some(f)) => f,
        };
        // Trailers are not part of the body.
        let Ok(data) = frame.map_err(|_| BodyError::TooLargeOrBroken)?.into_data() else {
            continue;
        };
        let read = joined.as_ref().map_or(first.len(), BytesMut::len);
        if data.len() > limit - read {
            return Err(BodyError::TooLargeOrBroken);
        }
        match &mut joined {
            None if first.is_empty() => first = data,
            None => {
                // In pieces: one buffer that grows with what arrives (not
                // sized from the announced length, which costs a client
                // nothing to inflate).
                let mut buf = BytesMut::from(std::mem::take(&mut first));
                buf.extend_from_slice(&data);
                joined = Some(buf);
            }
            Some(buf) => buf.extend_from_slice(&data),
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

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
    use axum::http::HeaderMap;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    const T: std::time::Duration = std::time::Duration::from_secs(5);
    const TOO: BodyError = BodyError::TooLargeOrBroken;

    fn body(frames: Vec<Result<Frame<Bytes>, std::io::Error>>) -> Body {
        Body::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, std::io::Error> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn read_body_joins_pieces_within_the_limit() {
        let one = Bytes::from_static(b"{\"a\":1}");
        let read = read_body(Body::from(one.clone()), 7, T).await.unwrap();
        assert_eq!(read.as_ptr(), one.as_ptr(), "one piece is kept, not copied");
        assert_eq!(read_body(Body::from(one), 6, T).await, Err(TOO));

        let pieces = || vec![data("ab"), data(""), data("cd"), data("e")];
        assert_eq!(read_body(body(pieces()), 5, T).await.unwrap(), "abcde");
        assert_eq!(read_body(body(pieces()), 4, T).await, Err(TOO));
        assert_eq!(read_body(body(vec![]), 0, T).await.unwrap(), "");

        let trailers = Ok(Frame::trailers(HeaderMap::new()));
        assert_eq!(
            read_body(body(vec![data("ab"), trailers]), 2, T)
                .await
                .unwrap(),
            "ab"
        );
        let broken = Err(std::io::Error::other("reset"));
        assert_eq!(
            read_body(body(vec![data("ab"), broken]), 9, T).await,
            Err(TOO)
        );
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_is_a_timeout_not_a_wait() {
        // A piece, then nothing: the deadline runs from the last piece.
        use futures_util::StreamExt;
        let frames =
            futures_util::stream::iter(vec![data("{\"a\"")]).chain(futures_util::stream::pending());
        let b = Body::new(StreamBody::new(frames));
        let started = std::time::Instant::now();
        let r = read_body(b, 1 << 20, std::time::Duration::from_millis(200)).await;
        assert_eq!(r, Err(BodyError::Stalled));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
