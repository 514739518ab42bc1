//! Admission: the steps of the module docs, in order, one function each.
//! A step that refuses says why as a [`Refusal`], which is answered with a
//! status and a message a person can act on; then the router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http_body_util::BodyExt;
use tracing::Instrument;

use super::keys::KeyRejection;
use super::limits::ConnGuard;
use super::refusal::Refusal;
use super::scope::Access;
use super::{headers, session, Incident, IncidentKind, Principal, RequestContext, Security};
use crate::api::routes::Routes;
use crate::api::{self, Route};

/// Body bytes read from a request that carries no credential (enough for
/// the firewall to see what a scanner sends).
const ANONYMOUS_BODY_BYTES: usize = 64 << 10;

/// Per-connection facts, attached to every request on the connection.
#[derive(Clone)]
pub struct ConnMeta {
    /// The TCP peer (nginx, when it fronts the gateway).
    pub peer: SocketAddr,
    guard: Option<Arc<ConnGuard>>,
}

impl std::fmt::Debug for ConnMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.peer.fmt(f)
    }
}

impl ConnMeta {
    /// The facts of a connection from `peer`, holding its place under the connection cap.
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
    /// Who is calling (`None`: an open route).
    pub principal: Option<Principal>,
    /// Where from, and the request's id.
    pub ctx: RequestContext,
    /// The request body, as admission read it.
    pub body: Bytes,
    /// When admission started: the gateway's own time on a request is
    /// measured from here.
    pub received: tokio::time::Instant,
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Admits `req` and runs it through `routes`, or refuses it.
pub async fn admit(sec: &Security, routes: &Routes, conn: &ConnMeta, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    if let Err(refusal) = within_connection_cap(sec, conn, &parts) {
        return routes.with_allow(&parts, refusal.into_response());
    }
    let client_ip = super::client_ip::resolve(conn.peer, &parts.headers, &sec.cfg.trusted_proxies);
    let ctx = RequestContext {
        client_ip,
        request_id: sec.next_request_id(),
    };
    let rid = HeaderValue::from_str(&ctx.request_id).ok();
    // Every log line of this request carries its id (as do incidents).
    let span = tracing::info_span!("request", id = %ctx.request_id);
    let mut resp = async {
        match admit_request(sec, ctx, &mut parts, body).await {
            Ok(body) => routes.call(Request::from_parts(parts, body)).await,
            Err(refusal) => routes.with_allow(&parts, refusal.into_response()),
        }
    }
    .instrument(span)
    .await;
    if let Some(rid) = rid {
        resp.headers_mut().insert(X_REQUEST_ID, rid);
    }
    resp
}

/// Steps 2 to 7, in the order of the module docs: the body to hand to the
/// router (with [`Admitted`] in the extensions, except for liveness and
/// readiness), or why not.
async fn admit_request(
    sec: &Security,
    ctx: RequestContext,
    parts: &mut Parts,
    body: Body,
) -> Result<Body, Refusal> {
    let received = tokio::time::Instant::now();
    not_banned(sec, &ctx)?;
    let path = parts.uri.path();
    let route = Route::of_path(path);
    let access = api::access(route, path);
    if route.is_some_and(Route::is_probe) {
        return Ok(body);
    }
    // "This machine": the local-admin addresses (SECURITY_IGNORE_IPS,
    // loopback by default); through nginx the client is the forwarded one.
    let local_admin = sec.bans.ignored(ctx.client_ip);
    let lockdown = sec.mode(super::Mode::Lockdown);
    if !local_admin {
        breaker_admits_remote(sec)?;
        if lockdown {
            return Err(Refusal::Lockdown);
        }
        within_address_rate(sec, &ctx)?;
    }
    let body = read_body_for(sec, parts, access, body).await?;
    passes_firewall(sec, parts, &ctx, &body)?;
    // In lockdown, public routes stay open to this machine (remote clients
    // were refused above): the login, the dashboard page (it holds no
    // data) and /ws, which authenticates in its first frame and then
    // serves only admins.
    let principal = authorize(sec, parts, access, &ctx, lockdown)?;
    parts.extensions.insert(Admitted {
        principal,
        ctx,
        body: body.clone(),
        received,
    });
    Ok(Body::from(body))
}

/// Step 1. Over the connection cap only `/health` is answered: a full
/// gateway still says it is alive.
fn within_connection_cap(sec: &Security, conn: &ConnMeta, parts: &Parts) -> Result<(), Refusal> {
    if conn.over_limit() && parts.uri.path() != "/health" {
        return Err(Refusal::TooManyConnections {
            max: sec.limits.connections.max(),
        });
    }
    Ok(())
}

/// Step 2, once the client's address is known: the ban list.
fn not_banned(sec: &Security, ctx: &RequestContext) -> Result<(), Refusal> {
    match sec
        .bans
        .banned(ctx.client_ip, crate::admin::store::now_ms())
    {
        Some(ban) => Err(Refusal::Banned {
            ip: ctx.client_ip,
            until_ms: ban.expires_at,
            reason: ban.reason,
        }),
        None => Ok(()),
    }
}

/// Step 3: the moltguard breaker, enforced here too. Not closed, not
/// served to anyone but this machine.
fn breaker_admits_remote(sec: &Security) -> Result<(), Refusal> {
    match sec
        .breaker()
        .filter(|b| !b.admits_remote(chrono::Utc::now()))
    {
        Some(b) => Err(Refusal::BreakerOpen {
            state: b.state.as_str().to_uppercase(),
            reason: b.reason.clone(),
        }),
        None => Ok(()),
    }
}

/// Step 4: the per-address rate limit, before any body is read.
fn within_address_rate(sec: &Security, ctx: &RequestContext) -> Result<(), Refusal> {
    sec.limits
        .check_api(ctx.client_ip)
        .map_err(|limited| Refusal::RateLimited {
            what: format!(
                "too many requests from {} (RATE_LIMIT_API_PER_MINUTE={})",
                ctx.client_ip, sec.cfg.api_per_minute
            ),
            limited,
        })
}

/// Step 5, first half: the body. A request that carries no credential at
/// all for a route that needs one will be refused anyway: only a little
/// of its body is read, so strangers cannot make the gateway buffer
/// 16 MiB per connection.
async fn read_body_for(
    sec: &Security,
    parts: &Parts,
    access: Access,
    body: Body,
) -> Result<Bytes, Refusal> {
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
    read_body(body, limit, sec.cfg.body_timeout)
        .await
        .map_err(|e| match e {
            BodyError::Stalled => Refusal::BodyStalled {
                idle: sec.cfg.body_timeout,
            },
            BodyError::TooLargeOrBroken if anonymous => Refusal::Unauthorized(
                "missing credentials: send `Authorization: Bearer <key>` (create one with `moltguard keys create`)".into(),
            ),
            BodyError::TooLargeOrBroken => Refusal::BodyTooLarge {
                limit: sec.cfg.max_body_bytes,
            },
        })
}

/// Step 5: the request firewall, on the whole request including the
/// body. Its blocks are incidents and count toward a ban.
fn passes_firewall(
    sec: &Security,
    parts: &Parts,
    ctx: &RequestContext,
    body: &Bytes,
) -> Result<(), Refusal> {
    let Some(fw) = sec.firewall() else {
        return Ok(());
    };
    let view = moltguard_waf::RequestView::from_http_parts(parts, body.clone())
        .client_ip(ctx.client_ip)
        .request_id(ctx.request_id.clone());
    let moltguard_waf::Verdict::Block(b) = fw.inspect(&view) else {
        return Ok(());
    };
    // A malformed LLM body alone is a client bug, not an attack: it goes
    // on (through auth) to the handler's precise 400.
    let score: u32 = b
        .matches
        .iter()
        .filter(|m| m.category != moltguard_waf::Category::LlmBody)
        .map(|m| m.severity.points())
        .sum();
    if score < fw.config().threshold {
        return Ok(());
    }
    let detail = format!(
        "{} rule {} (score {}) on {}: {}",
        b.category, b.rule_id, b.score, b.matched_field, b.redacted_excerpt
    );
    sec.incident(
        Some(ctx),
        Incident::new(IncidentKind::FirewallBlock, "blocked", detail).rule(b.rule_id.to_string()),
    );
    sec.failure(ctx, "request firewall");
    Err(Refusal::Blocked {
        rule_id: b.rule_id,
        category: b.category,
        request_id: ctx.request_id.clone(),
    })
}

/// Steps 6 and 7: who is calling ([`authenticate`]), whether the route's
/// access grants it, lockdown's admins-only, and the per-key rate limit.
/// `None` for a public route.
fn authorize(
    sec: &Security,
    parts: &Parts,
    access: Access,
    ctx: &RequestContext,
    lockdown: bool,
) -> Result<Option<Principal>, Refusal> {
    if access == Access::Public {
        return Ok(None);
    }
    let p = authenticate(sec, parts, ctx)?;
    if !access.granted_to(p.scopes()) {
        let has = if p.scopes().is_empty() {
            "none".to_string()
        } else {
            p.scopes().to_string()
        };
        return Err(Refusal::InsufficientScope(format!(
            "{} may not {} {}: it needs the {} scope (it has: {has})",
            p.label(),
            parts.method,
            parts.uri.path(),
            access.needed()
        )));
    }
    if lockdown && !p.scopes().allows(super::scope::Scope::Admin) {
        return Err(Refusal::LockdownAdminsOnly);
    }
    sec.check_principal_rate(&p)
        .map_err(|limited| Refusal::RateLimited {
            what: format!("too many requests for {}", p.label()),
            limited,
        })?;
    Ok(Some(p))
}

/// Step 6: the bearer key first, then the session cookie. A bad key is
/// an incident and counts toward a ban.
fn authenticate(sec: &Security, parts: &Parts, ctx: &RequestContext) -> Result<Principal, Refusal> {
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
                Err(Refusal::Unauthorized(match why {
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
        return Err(Refusal::Unauthorized(
            "the Authorization header must be `Bearer <key>`".into(),
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
            return Err(Refusal::Unauthorized(
                "your session has expired or is unknown; log in again".into(),
            ));
        }
        // Cookies ride along on cross-site requests: writes must come
        // from an allowed origin (SameSite=Strict is the first line).
        if !matches!(parts.method, Method::GET | Method::HEAD)
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
            return Err(Refusal::BadOrigin);
        }
        return Ok(Principal::Session);
    }
    Err(Refusal::Unauthorized(if basic_only {
        "nginx's password is not a moltgate key: also send the key as `X-Api-Key: <key>` (create one with `moltguard keys create`)".into()
    } else {
        "missing credentials: send `Authorization: Bearer <key>` (create one with `moltguard keys create`) or log in with the gateway password".into()
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
