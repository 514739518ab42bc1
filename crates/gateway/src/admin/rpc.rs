//! The `security.*` and `providers.*` methods, over a WebSocket RPC at
//! `/ws` and mirrored as REST under `/api/` (`security.blocked.list` is
//! `/api/security/blocked/list`). Both transports go through [`call`], so
//! scopes are enforced by the API's one table ([`crate::api::RpcMethod`]).
//!
//! WebSocket frames: the first is `{"id", "method": "connect", "params":
//! {"key" | "password" | "session"}}` (or empty params when the upgrade
//! carried a session cookie); then `{"id", "method", "params"}` →
//! `{"id", "ok": true, "result"}` or `{"id", "ok": false, "error":
//! {"code", "message"}}`. After `subscribe`, security events arrive as
//! `{"event": ...}` frames.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::status;
use crate::api::errors::ApiError;
use crate::api::{rest_method_name, RpcMethod};
use crate::inbound::admission::Admitted;
use crate::inbound::scope::{Access, Scope};
use crate::inbound::{session, Incident, IncidentKind, Mode, Principal, RequestContext, Security};
use crate::Gateway;

/// Longest a WebSocket may take to send its `connect` frame.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 64 << 10;

/// A method that failed: the HTTP status of its REST form, a stable code, and a message.
#[derive(Debug, Clone)]
pub struct RpcError {
    /// The status its REST form answers with.
    pub status: StatusCode,
    /// A stable, machine-readable code (`invalid_params`, `not_found`, ...).
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> RpcError {
    RpcError {
        status,
        code,
        message: message.into(),
    }
}

fn bad_params(message: impl Into<String>) -> RpcError {
    err(StatusCode::BAD_REQUEST, "invalid_params", message)
}

impl RpcError {
    fn json(&self) -> Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => "invalid_request_error",
            _ => "api_error",
        };
        ApiError::new(self.status, kind, self.code, self.message).into_response()
    }
}

type Params = Map<String, Value>;

fn p_str<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).and_then(Value::as_str)
}

fn p_u64(p: &Params, name: &str) -> Result<Option<u64>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad_params(format!("{name} must be a non-negative integer"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| bad_params(format!("{name} must be a non-negative integer"))),
        Some(_) => Err(bad_params(format!("{name} must be a non-negative integer"))),
    }
}

fn p_bool(p: &Params, name: &str) -> Result<Option<bool>, RpcError> {
    match p.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        // A query string's `on=1`: the words the config's booleans take.
        Some(Value::String(s)) => crate::config::parse_bool(name, s)
            .map(Some)
            .map_err(|_| bad_params(format!("{name} must be true or false"))),
        Some(_) => Err(bad_params(format!("{name} must be true or false"))),
    }
}

/// Runs one method for `principal` (`None` only for public methods).
pub async fn call(
    gw: &Arc<Gateway>,
    principal: Option<&Principal>,
    ctx: &RequestContext,
    method: &str,
    params: Params,
) -> Result<Value, RpcError> {
    let parsed = RpcMethod::parse(method);
    authorize(parsed, principal, method)?;
    let Some(method) = parsed else {
        return Err(err(
            StatusCode::NOT_FOUND,
            "unknown_method",
            format!("unknown method {method:?}"),
        ));
    };
    let sec = &gw.security;
    let by = principal.map(Principal::label).unwrap_or_default();
    match method {
        RpcMethod::Subscribe => Err(err(
            StatusCode::BAD_REQUEST,
            "websocket_only",
            "subscribe pushes events: call it over the WebSocket at /ws",
        )),
        RpcMethod::AdminCheck => {
            let p = principal.expect("authorized: authenticated");
            Ok(json!({
                "admin": p.scopes().allows(Scope::Admin),
                "principal": p.label(),
                "scopes": p.scopes().names(),
            }))
        }
        RpcMethod::LockdownStatus => Ok(modes(sec)),
        RpcMethod::LockdownToggle => {
            let mode = match p_str(&params, "mode") {
                None => Mode::Lockdown,
                Some(m) => Mode::parse(m)
                    .ok_or_else(|| bad_params("mode must be \"lockdown\" or \"emergency\""))?,
            };
            toggle(sec, mode, &params, &by, ctx)
        }
        RpcMethod::EmergencyToggle => toggle(sec, Mode::Emergency, &params, &by, ctx),
        RpcMethod::BlockedList => Ok(json!({"blocked": sec.bans.active(super::store::now_ms())})),
        RpcMethod::BlockedAdd => blocked_add(sec, &params, &by, ctx),
        RpcMethod::BlockedRemove => blocked_remove(sec, &params, &by, ctx),
        RpcMethod::IncidentsList => incidents_list(gw, &params).await,
        RpcMethod::GatewayConnections => {
            let c = &sec.limits.connections;
            Ok(json!({"open": c.count(), "max": c.max(), "connections": c.list()}))
        }
        RpcMethod::Dashboard => dashboard(gw).await,
        RpcMethod::Activity => activity(gw, &params).await,
        RpcMethod::ProvidersStatus => Ok(status::status_json(gw)),
        RpcMethod::ProvidersLatency => {
            let since = p_u64(&params, "since_ms")?
                .map(|v| v as i64)
                .unwrap_or(super::store::now_ms() - 24 * 3600 * 1000);
            let rows = blocking(gw, move |sec| sec.latency_history(since)).await?;
            Ok(json!({"latency": rows}))
        }
        RpcMethod::ProvidersTest => providers_test(gw, principal, &params).await,
    }
}

/// Whether `principal` may call `method` (`parsed`, if it is one): the
/// access the API's table gives it; a name that is no method needs admin,
/// so probing for methods learns nothing.
fn authorize(
    parsed: Option<RpcMethod>,
    principal: Option<&Principal>,
    method: &str,
) -> Result<(), RpcError> {
    let access = match parsed.map_or(Access::Needs(Scope::Admin), |m| m.spec().access) {
        Access::Public => return Ok(()),
        // The table never says Unlisted; if it did, admin it is.
        Access::Unlisted => Access::Needs(Scope::Admin),
        a => a,
    };
    let Some(p) = principal else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first",
        ));
    };
    if access == Access::Authenticated || access.granted_to(p.scopes()) {
        return Ok(());
    }
    Err(err(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "{} may not call {method}: it needs the {} scope",
            p.label(),
            access.needed()
        ),
    ))
}

/// `security.lockdown.toggle` and `security.emergency.toggle`: `on`, or
/// the other way round when it is absent.
fn toggle(
    sec: &Security,
    mode: Mode,
    params: &Params,
    by: &str,
    ctx: &RequestContext,
) -> Result<Value, RpcError> {
    let on = p_bool(params, "on")?.unwrap_or(!sec.mode(mode));
    sec.set_mode(mode, on, by, Some(ctx))
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    sec.publish(json!({"event": "modes", "modes": modes(sec)}));
    Ok(modes(sec))
}

/// The `target` param of the block methods.
fn block_target(params: &Params) -> Result<&str, RpcError> {
    p_str(params, "target")
        .ok_or_else(|| bad_params("params.target (an IP or CIDR block) is required"))
}

/// `security.blocked.add`.
fn blocked_add(
    sec: &Security,
    params: &Params,
    by: &str,
    ctx: &RequestContext,
) -> Result<Value, RpcError> {
    let target = block_target(params)?;
    let reason = p_str(params, "reason").unwrap_or("blocked by an operator");
    let dur = p_u64(params, "duration_ms")?.map(Duration::from_millis);
    let ban = sec
        .block(target, reason, dur, by, Some(ctx))
        .map_err(bad_params)?;
    Ok(json!({"blocked": &ban}))
}

/// `security.blocked.remove`.
fn blocked_remove(
    sec: &Security,
    params: &Params,
    by: &str,
    ctx: &RequestContext,
) -> Result<Value, RpcError> {
    let target = block_target(params)?;
    match sec.unblock(target, by, Some(ctx)).map_err(bad_params)? {
        Some(b) => Ok(json!({"unblocked": b.target})),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{target} is not blocked"),
        )),
    }
}

/// `security.incidents.list`.
async fn incidents_list(gw: &Arc<Gateway>, params: &Params) -> Result<Value, RpcError> {
    let limit = p_u64(params, "limit")?.unwrap_or(100).min(1000) as u32;
    let kind = match p_str(params, "kind") {
        None => None,
        Some(k) => Some(IncidentKind::parse(k).ok_or_else(|| {
            let known: Vec<_> = IncidentKind::all().iter().map(|k| k.as_str()).collect();
            err(
                StatusCode::BAD_REQUEST,
                "invalid_params",
                format!("unknown incident kind {k:?} (known: {})", known.join(", ")),
            )
        })?),
    };
    let filter = super::store::IncidentFilter {
        kind,
        client_ip: p_str(params, "ip").map(str::to_string),
        since_ms: p_u64(params, "since_ms")?.map(|v| v.min(i64::MAX as u64) as i64),
    };
    let rows = blocking(gw, move |sec| sec.incidents(limit, &filter)).await?;
    Ok(json!({"incidents": rows}))
}

/// `security.activity`.
async fn activity(gw: &Arc<Gateway>, params: &Params) -> Result<Value, RpcError> {
    let now = super::store::now_ms();
    let since = p_u64(params, "since_ms")?
        .map(|v| v.min(i64::MAX as u64) as i64)
        .unwrap_or(now - 3600 * 1000)
        .min(now);
    let bucket = activity_bucket(now - since, p_u64(params, "bucket_ms")?);
    let (traffic, incidents) = blocking(gw, move |sec| {
        Ok((
            sec.latency_buckets(since, bucket)?,
            sec.incident_counts(since, bucket)?,
        ))
    })
    .await?;
    Ok(json!({
        "since_ms": since,
        "until_ms": now,
        "bucket_ms": bucket,
        "traffic": traffic,
        "incidents": incidents,
    }))
}

/// `providers.test`: refused under the kill switch; a key limited to some
/// models may test only those (a test is a real, paid call upstream).
async fn providers_test(
    gw: &Arc<Gateway>,
    principal: Option<&Principal>,
    params: &Params,
) -> Result<Value, RpcError> {
    if gw.security.mode(Mode::Emergency) {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "kill_switch",
            "the kill switch is on: no LLM call leaves the gateway",
        ));
    }
    let req = status::TestRequest {
        provider: p_str(params, "provider").map(str::to_string),
        model: p_str(params, "model").map(str::to_string),
    };
    if let Some(p) = principal {
        for prov in gw
            .providers
            .iter()
            .filter(|x| req.provider.as_deref().is_none_or(|n| n == x.name()))
        {
            let model = req
                .model
                .clone()
                .or_else(|| prov.cfg.default_model.clone())
                .unwrap_or_default();
            let qualified = format!("{}/{model}", prov.name());
            if !p.allows_model(&model) && !p.allows_model(&qualified) {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "model_not_allowed",
                    format!("{} may not use {qualified}", p.label()),
                ));
            }
        }
    }
    status::run_tests(gw, req)
        .await
        .map_err(|e| err(e.status, "unknown_provider", e.message))
}

/// The bucket width of `security.activity`: what was asked, at least a
/// minute (the traffic rows' own grain), and wide enough that a range gives
/// at most 1440 buckets.
fn activity_bucket(range_ms: i64, asked: Option<u64>) -> i64 {
    const MINUTE: i64 = 60_000;
    let asked = asked.map_or(MINUTE, |v| v.min(i64::MAX as u64) as i64);
    let floor = (range_ms.max(0) / 1440).max(MINUTE);
    let b = asked.max(floor);
    // Whole minutes, so traffic minutes never straddle two buckets.
    (b + MINUTE - 1) / MINUTE * MINUTE
}

fn modes(sec: &Security) -> Value {
    json!({"lockdown": sec.mode(Mode::Lockdown), "emergency": sec.mode(Mode::Emergency)})
}

async fn blocking<T: Send + 'static>(
    gw: &Arc<Gateway>,
    f: impl FnOnce(&Security) -> anyhow::Result<T> + Send + 'static,
) -> Result<T, RpcError> {
    let gw = gw.clone();
    tokio::task::spawn_blocking(move || f(&gw.security))
        .await
        .map_err(|e| err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| {
            err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("{e:#}"),
            )
        })
}

/// Everything the dashboard shows, in one call.
async fn dashboard(gw: &Arc<Gateway>) -> Result<Value, RpcError> {
    let sec = &gw.security;
    let state_dir = gw.cfg.state_dir.clone();
    let incidents = blocking(gw, |sec| sec.incidents(50, &Default::default())).await?;
    let read_json = |name: &str| -> Value {
        std::fs::read(state_dir.join(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let now = super::store::now_ms();
    let guardian = read_json("guardian.json");
    Ok(json!({
        "modes": modes(sec),
        "breaker": breaker_view(&state_dir, &guardian),
        "breaker_history": crate::admin::dashboard::audit_tail(&state_dir, 20),
        "guardian": guardian,
        "incident_kinds": crate::inbound::IncidentKind::all().iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "providers": status::status_json(gw),
        "blocked": sec.bans.active(now),
        "incidents": incidents,
        "connections": {"open": sec.limits.connections.count(), "max": sec.limits.connections.max()},
        "sessions": sec.sessions.count(),
        "dropped_incidents": sec.dropped_incidents(),
    }))
}

/// The breaker as moltguard trusts it: a hand-edited, unbound or mid-change
/// state file shows as the OPEN it is taken for, with why; `null` for a
/// stand-alone gateway (no state file, no history). `remedy` says what the
/// state does and the commands that change it; `guardian` (its status
/// file) gives the fix for the finding that opened it.
fn breaker_view(state_dir: &std::path::Path, guardian: &Value) -> Value {
    use moltguard_breaker::remedy;
    use moltguard_breaker::store::{self, StateFiles, StateProblem};
    let files = StateFiles::in_dir(state_dir);
    let now = chrono::Utc::now();
    let loaded = store::load(&files, now);
    if loaded.problem == Some(StateProblem::Missing) && !files.audit_log.exists() {
        return Value::Null;
    }
    let rec = &loaded.record;
    let fix = remedy::finding_fix(
        &rec.detail,
        guardian["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| Some((f["id"].as_str()?, f["fix"].as_str()?))),
    );
    let prefix = remedy::command_prefix(state_dir);
    let mut v = serde_json::to_value(rec).unwrap_or(Value::Null);
    v["problem"] = json!(loaded.problem.map(|p| p.to_string()));
    // (The gateway does not read the edge's htpasswd: no auth check here.)
    let known = remedy::Known {
        finding_fix: fix,
        auth_missing: false,
    };
    v["remedy"] =
        serde_json::to_value(remedy::remedy(rec, now, &prefix, known)).unwrap_or(Value::Null);
    v
}

/// `GET|POST /api/<method path>`: the REST mirror. GET takes the query
/// string as params, POST a JSON object body.
pub async fn rest(
    State(gw): State<Arc<Gateway>>,
    Extension(adm): Extension<Admitted>,
    uri: axum::http::Uri,
    method: axum::http::Method,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(name) = rest_method_name(uri.path()) else {
        return err(StatusCode::NOT_FOUND, "unknown_method", "unknown API path").into_response();
    };
    let changes_state = RpcMethod::parse(&name).is_some_and(|m| m.spec().changes_state);
    if !matches!(method, axum::http::Method::POST) && changes_state {
        let mut r = err(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{name} changes state: send it as POST with a JSON body"),
        )
        .into_response();
        r.headers_mut()
            .insert(axum::http::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let mut params: Params = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => params.extend(m),
            _ => return bad_params("the body must be a JSON object of parameters").into_response(),
        }
    }
    match call(&gw, adm.principal.as_ref(), &adm.ctx, &name, params).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/login {"password"}`: a session cookie for the dashboard.
pub async fn login(
    State(gw): State<Arc<Gateway>>,
    Extension(adm): Extension<Admitted>,
    body: Bytes,
) -> Response {
    let password = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("password")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let Some(password) = password else {
        return bad_params("send {\"password\": \"...\"}").into_response();
    };
    match password_login(&gw, &adm.ctx, password).await {
        Ok(token) => {
            let mut r = Json(json!({"ok": true})).into_response();
            if let Ok(v) =
                HeaderValue::from_str(&session::set_cookie(&token, gw.security.cfg.session_ttl))
            {
                r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /api/logout`: ends the session its cookie names, and clears the cookie.
pub async fn logout(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    for v in headers.get_all(axum::http::header::COOKIE) {
        if let Some(t) = v.to_str().ok().and_then(session::from_cookie_header) {
            gw.security.sessions.end(t);
        }
    }
    let mut r = Json(json!({"ok": true})).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        r.headers_mut().insert(axum::http::header::SET_COOKIE, v);
    }
    r
}

/// Shared by REST and WebSocket logins: the same limit, the same bans.
async fn password_login(
    gw: &Arc<Gateway>,
    ctx: &RequestContext,
    password: String,
) -> Result<String, RpcError> {
    let sec = &gw.security;
    if !sec.password_login_enabled() {
        return Err(err(
            StatusCode::FORBIDDEN,
            "password_login_disabled",
            "password login is not configured: set it with `moltguard secrets set GATEWAY_PASSWORD` (or use an API key)",
        ));
    }
    if let Err(l) = sec.limits.check_login(ctx.client_ip) {
        let secs = l.retry_after.as_secs().max(1);
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many login attempts from {} (RATE_LIMIT_LOGIN_PER_HOUR={}); retry after {secs} s",
                ctx.client_ip, sec.cfg.login_per_hour
            ),
        ));
    }
    let g = gw.clone();
    let ok = tokio::task::spawn_blocking(move || g.security.verify_password(&password))
        .await
        .unwrap_or(false);
    if !ok {
        sec.incident(
            Some(ctx),
            Incident::new(
                IncidentKind::LoginFailure,
                "refused",
                "wrong gateway password",
            ),
        );
        sec.failure(ctx, "failed login");
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong password",
        ));
    }
    Ok(sec.sessions.create(sec.cfg.session_ttl))
}

/// `GET /ws`: checks the origin and the per-IP cap, then speaks the RPC.
pub async fn ws(
    State(gw): State<Arc<Gateway>>,
    Extension(adm): Extension<Admitted>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let sec = &gw.security;
    if !crate::inbound::headers::browser_origin_ok(&headers, &sec.cfg.cors_origins, sec.loopback) {
        sec.incident(
            Some(&adm.ctx),
            Incident::new(
                IncidentKind::WsOrigin,
                "refused",
                format!(
                    "WebSocket from origin {:?}",
                    headers
                        .get("origin")
                        .and_then(|o| o.to_str().ok())
                        .unwrap_or("?")
                ),
            ),
        );
        return err(
            StatusCode::FORBIDDEN,
            "bad_origin",
            "WebSocket connections from this origin are not allowed (GATEWAY_CORS_ORIGINS)",
        )
        .into_response();
    }
    let Some(slot) = sec.limits.ws_slot(adm.ctx.client_ip) else {
        return err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many WebSocket connections from {} (RATE_LIMIT_WS_PER_IP={})",
                adm.ctx.client_ip, sec.cfg.ws_per_ip
            ),
        )
        .into_response();
    };
    let cookie_session = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::from_cookie_header)
        .filter(|t| sec.sessions.valid(t))
        .map(str::to_string);
    upgrade
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            session_loop(gw, adm.ctx, cookie_session, socket).await;
        })
}

fn reply(id: &Value, r: Result<Value, RpcError>) -> Message {
    let v = match r {
        Ok(result) => json!({"id": id, "ok": true, "result": result}),
        Err(e) => json!({"id": id, "ok": false, "error": e.json()}),
    };
    Message::Text(v.to_string().into())
}

fn parse_frame(m: &str) -> Result<(Value, String, Params), (Value, RpcError)> {
    let v: Value = serde_json::from_str(m).map_err(|_| {
        (
            Value::Null,
            bad_params("frames are JSON objects {id, method, params}"),
        )
    })?;
    let id = v.get("id").cloned().unwrap_or(Value::Null);
    let method = v
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| (id.clone(), bad_params("\"method\" is required")))?
        .to_string();
    let params = match v.get("params") {
        None | Some(Value::Null) => Params::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err((id, bad_params("\"params\" must be an object"))),
    };
    Ok((id, method, params))
}

async fn session_loop(
    gw: Arc<Gateway>,
    ctx: RequestContext,
    cookie_session: Option<String>,
    mut socket: WebSocket,
) {
    // The connect frame.
    let principal = loop {
        let frame = match tokio::time::timeout(CONNECT_DEADLINE, socket.recv()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => {
                let _ = socket
                    .send(reply(
                        &Value::Null,
                        Err(err(
                            StatusCode::UNAUTHORIZED,
                            "unauthorized",
                            "send a connect frame first",
                        )),
                    ))
                    .await;
                return;
            }
        };
        let (id, method, params) = match parse_frame(&frame) {
            Ok(f) => f,
            Err((id, e)) => {
                let _ = socket.send(reply(&id, Err(e))).await;
                return;
            }
        };
        if method != "connect" {
            let _ = socket
                .send(reply(
                    &id,
                    Err(err(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "the first frame must be {\"method\": \"connect\"}",
                    )),
                ))
                .await;
            return;
        }
        match connect(&gw, &ctx, cookie_session.as_deref(), &params).await {
            Ok(p) => {
                let hello = json!({"principal": p.principal.label(), "scopes": p.principal.scopes().names(), "request_id": ctx.request_id});
                if socket.send(reply(&id, Ok(hello))).await.is_err() {
                    return;
                }
                break p;
            }
            Err(e) => {
                let _ = socket.send(reply(&id, Err(e))).await;
                return;
            }
        }
    };
    let mut events: Option<tokio::sync::broadcast::Receiver<Arc<str>>> = None;
    loop {
        let next_event = async {
            match events.as_mut() {
                Some(rx) => rx.recv().await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let (id, method, params) = match parse_frame(&text) {
                    Ok(f) => f,
                    Err((id, e)) => {
                        if socket.send(reply(&id, Err(e))).await.is_err() { return; }
                        continue;
                    }
                };
                // What was true at connect may not be now: a revoked or
                // expired key, an ended session, a ban, lockdown for a
                // remote address. Then the call is refused and the socket closed.
                if let Err(e) = still_admitted(&gw.security, &principal, &ctx) {
                    let _ = socket.send(reply(&id, Err(e))).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                let result = ws_call(&gw, &principal.principal, &ctx, &method, params, &mut events).await;
                if socket.send(reply(&id, result)).await.is_err() {
                    return;
                }
            }
            Some(ev) = next_event => {
                if still_admitted(&gw.security, &principal, &ctx).is_err() {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                if socket.send(Message::Text(ev.to_string().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn ws_call(
    gw: &Arc<Gateway>,
    principal: &Principal,
    ctx: &RequestContext,
    method: &str,
    params: Params,
    events: &mut Option<tokio::sync::broadcast::Receiver<Arc<str>>>,
) -> Result<Value, RpcError> {
    let sec = &gw.security;
    if sec
        .bans
        .banned(ctx.client_ip, super::store::now_ms())
        .is_some()
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            "ip_blocked",
            "your address is blocked",
        ));
    }
    if sec.mode(Mode::Lockdown) && !principal.scopes().allows(Scope::Admin) {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "lockdown",
            "the gateway is in lockdown: only administrator keys are served",
        ));
    }
    if let Err(l) = sec.check_principal_rate(principal) {
        return Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests for {}; retry after {} s",
                principal.label(),
                l.retry_after.as_secs().max(1)
            ),
        ));
    }
    if RpcMethod::parse(method) == Some(RpcMethod::Subscribe) {
        if !principal.scopes().allows(Scope::Admin) {
            return Err(err(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "security events need the operator.admin scope",
            ));
        }
        *events = Some(sec.subscribe());
        return Ok(json!({"subscribed": ["incident", "blocked", "unblocked", "modes"]}));
    }
    call(gw, Some(principal), ctx, method, params).await
}

/// Who a WebSocket speaks for, and the session token behind it (checked
/// again on every call).
struct Connected {
    principal: Principal,
    session: Option<String>,
}

impl Connected {
    fn plain(principal: Principal) -> Self {
        Connected {
            principal,
            session: None,
        }
    }
}

/// Whether an open WebSocket may still make a call: the key is still
/// valid (not revoked, not expired), the session not ended, the address
/// not banned, and lockdown (if on) lets this address in.
fn still_admitted(sec: &Security, c: &Connected, ctx: &RequestContext) -> Result<(), RpcError> {
    let now = super::store::now_ms();
    if let Principal::Key(k) = &c.principal {
        if !sec.key_still_valid(&k.id, now) {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "key {} was revoked or has expired; this connection is closed",
                    k.id
                ),
            ));
        }
    }
    if let Some(t) = &c.session {
        if !sec.sessions.valid(t) {
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the session has ended; log in again",
            ));
        }
    }
    if sec.bans.banned(ctx.client_ip, now).is_some() {
        return Err(err(
            StatusCode::FORBIDDEN,
            "ip_blocked",
            "your address is blocked",
        ));
    }
    if sec.mode(Mode::Lockdown) && !sec.bans.ignored(ctx.client_ip) {
        return Err(err(
            StatusCode::SERVICE_UNAVAILABLE,
            "lockdown",
            "the gateway went into lockdown: only an administrator on this machine is served",
        ));
    }
    Ok(())
}

/// The `connect` frame: a key, a password, a session token, or the
/// session cookie of the upgrade request.
async fn connect(
    gw: &Arc<Gateway>,
    ctx: &RequestContext,
    cookie_session: Option<&str>,
    params: &Params,
) -> Result<Connected, RpcError> {
    let sec = &gw.security;
    if !sec.cfg.auth_required {
        return Ok(Connected::plain(Principal::Open));
    }
    if let Some(key) = p_str(params, "key") {
        return match sec.authenticate_key(key) {
            Ok(k) => Ok(Connected::plain(Principal::Key(k))),
            Err(why) => {
                sec.incident(
                    Some(ctx),
                    Incident::new(
                        IncidentKind::AuthFailure,
                        "refused",
                        format!("{} (over WebSocket)", why.describe()),
                    ),
                );
                sec.failure(ctx, "failed authentication");
                Err(err(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    why.describe(),
                ))
            }
        };
    }
    if let Some(pw) = p_str(params, "password") {
        let token = password_login(gw, ctx, pw.to_string()).await?;
        return Ok(Connected {
            principal: Principal::Session,
            session: Some(token),
        });
    }
    if let Some(t) = p_str(params, "session") {
        return if sec.sessions.valid(t) {
            Ok(Connected {
                principal: Principal::Session,
                session: Some(t.to_string()),
            })
        } else {
            Err(err(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the session has expired; log in again",
            ))
        };
    }
    if let Some(t) = cookie_session {
        return Ok(Connected {
            principal: Principal::Session,
            session: Some(t.to_string()),
        });
    }
    Err(err(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "connect needs params.key, params.password or params.session",
    ))
}

#[cfg(test)]
mod tests {
    use super::{activity_bucket, authorize};
    use crate::api::RpcMethod;
    use crate::inbound::keys;
    use crate::inbound::scope::{Scope, Scopes};
    use crate::inbound::Principal;
    use std::sync::Arc;

    fn key(scopes: Scopes) -> Principal {
        let k = keys::generate("test", scopes, None, None, &[]);
        Principal::Key(Arc::new(keys::KeyRecord::from_row(&k.row).unwrap()))
    }

    /// The status `authorize` answers for `method` (200: allowed).
    fn status(method: &str, p: Option<&Principal>) -> u16 {
        match authorize(RpcMethod::parse(method), p, method) {
            Ok(()) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn each_method_takes_the_access_of_the_table_and_unknown_names_need_admin() {
        let read = key(Scopes::NONE.with(Scope::Read));
        let write = key(Scopes::NONE.with(Scope::Write));
        let admin = key(Scopes::admin());
        // Any credential; none is a 401.
        assert_eq!(status("security.admin.check", None), 401);
        assert_eq!(status("security.admin.check", Some(&read)), 200);
        // A scope: the wrong one is a 403, admin implies it.
        assert_eq!(status("providers.status", None), 401);
        assert_eq!(status("providers.status", Some(&read)), 200);
        assert_eq!(status("providers.status", Some(&write)), 403);
        assert_eq!(status("providers.status", Some(&admin)), 200);
        assert_eq!(status("providers.test", Some(&read)), 403);
        assert_eq!(status("providers.test", Some(&write)), 200);
        assert_eq!(status("security.blocked.add", Some(&write)), 403);
        assert_eq!(
            status("security.blocked.add", Some(&Principal::Session)),
            200
        );
        // A name that is no method: admin only, so probing learns nothing.
        assert_eq!(status("security.nope", None), 401);
        assert_eq!(status("security.nope", Some(&read)), 403);
        assert_eq!(status("security.nope", Some(&admin)), 200);
        // Every method of the table, for a caller with no scope at all.
        let none = key(Scopes::NONE);
        for m in RpcMethod::ALL {
            let name = m.spec().name;
            let want = if m.spec().access == crate::inbound::scope::Access::Authenticated {
                200
            } else {
                403
            };
            assert_eq!(status(name, Some(&none)), want, "{name}");
        }
    }

    #[test]
    fn activity_buckets_are_whole_minutes_and_at_most_1440_per_range() {
        const H: i64 = 3600 * 1000;
        assert_eq!(activity_bucket(H, None), 60_000);
        assert_eq!(activity_bucket(H, Some(1)), 60_000);
        assert_eq!(activity_bucket(H, Some(90_000)), 120_000);
        assert_eq!(activity_bucket(24 * H, Some(60_000)), 60_000);
        // A week in minutes would be 10080 buckets: 7 minutes each instead.
        assert_eq!(activity_bucket(7 * 24 * H, None), 7 * 60_000);
        assert_eq!(activity_bucket(-5, None), 60_000);
    }
}
