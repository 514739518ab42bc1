//! One configured upstream and one attempt against it, with separate connect,
//! headers (time-to-first-byte), idle-between-chunks and total deadlines.
//!
//! reqwest's own `timeout()` is a single total budget, so every phase here is
//! wrapped in `tokio::time::timeout_at`. The connect phase uses reqwest's
//! `connect_timeout`, which is why each provider has its own `Client` (built
//! once, pooled, shared by all requests to that provider).
//!
//! The attempt future owns the upstream request: dropping it (client gone)
//! drops the connection at once.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{Stream, StreamExt};
use reqwest::header::HeaderValue;
use serde_json::Value;
use tokio::time::{timeout_at, Instant};

use super::circuit::Circuits;
use super::deadline::Deadline;
use super::retry::{classify_status, Failure, Phase};
use super::ssrf::{self, GuardedResolver};
use super::upstream;
use crate::api::endpoint::Endpoint;
use crate::api::json;
use crate::config::{CircuitConfig, ProviderConfig};
use crate::secrets::{SecretOrigin, SecretString};

/// Latency samples kept per provider for status and the dashboard.
const HISTORY: usize = 512;
/// Cap on a buffered (non-streaming) answer.
const MAX_BODY: usize = 32 << 20;

/// One attempt, as the dashboard charts it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub ms: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

/// A provider's recent attempts.
#[derive(Debug, Default)]
pub struct Stats {
    /// The last attempts (at most 512), oldest first.
    pub history: VecDeque<Sample>,
    /// The latency of the last success.
    pub last_latency_ms: Option<u64>,
    /// The last failure, in words (secrets redacted).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// When the last success was.
    pub last_ok_at: Option<DateTime<Utc>>,
}

/// Replaces every key this gateway holds, and masks any other key-shaped
/// token, in text that may reach a client or a log
/// ([`moltguard_secrets::KnownValues`]).
#[derive(Default)]
pub struct Redactor(moltguard_secrets::KnownValues);

impl Redactor {
    /// Adds a key to replace wherever it appears.
    pub fn add(&mut self, s: &SecretString) {
        self.0.add(s.expose());
    }
    /// `text` with every known key replaced and any key-shaped token masked.
    pub fn redact(&self, text: &str) -> String {
        self.0.redact(text)
    }
}

/// One configured provider: its URLs, key, pooled clients, circuits and recent attempts.
pub struct Provider {
    /// Its configuration.
    pub cfg: ProviderConfig,
    /// `{base_url}/chat/completions` and the other endpoints' URLs, by
    /// [`Endpoint::index`], parsed once (URL parsing showed in profiles).
    urls: [reqwest::Url; 4],
    /// One client (one connection pool) per serving thread, so a request
    /// and its upstream connection stay on one thread; see `workers`.
    clients: Vec<reqwest::Client>,
    /// Its API key, if it needs one and it was found.
    pub key: Option<SecretString>,
    /// Where the key was found.
    pub key_origin: Option<SecretOrigin>,
    /// Why the key could not be read (e.g. insecure file), without the key.
    pub key_error: Option<String>,
    /// The provider's circuit and its models'.
    pub circuits: Circuits,
    /// Its recent attempts.
    pub stats: Mutex<Stats>,
    /// The name as the `x-moltgate-provider` response header.
    pub name_header: Option<HeaderValue>,
    /// `Authorization: Bearer <key>`, built once (marked sensitive).
    auth_header: Option<HeaderValue>,
    /// For plain-http upstreams: hyper's client, one pool per serving thread.
    direct: Option<DirectPath>,
}

struct DirectPath {
    /// By [`Endpoint::index`].
    targets: [upstream::Target; 4],
    clients: Vec<upstream::Direct>,
}

/// Upstream SSE events, owned by whoever consumes them.
pub type UpstreamEvents = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<upstream::Error>>>
            + Send,
    >,
>;

/// What an attempt brought back, ready for the client.
pub enum Answer {
    /// A complete `chat.completion` object, `model` already relabelled
    /// `provider/model`; `model` is what the upstream reported.
    Full {
        /// The body.
        body: Bytes,
        /// The model the upstream reported.
        model: String,
        /// The answer's `usage`, if it has one.
        usage: Option<crate::admin::metrics::Usage>,
    },
    /// A stream whose first content chunk has arrived; `first` holds every
    /// chunk so far (role chunk, first content chunk).
    Stream {
        /// The chunks so far.
        first: Vec<Value>,
        /// The rest of the upstream stream.
        rest: UpstreamEvents,
        /// The upstream already sent `[DONE]`.
        done: bool,
    },
    /// A pass-through endpoint's stream whose answer has begun; `first`
    /// holds every event so far, as the upstream sent them.
    Events {
        /// The events so far.
        first: Vec<eventsource_stream::Event>,
        /// The rest of the upstream stream.
        rest: UpstreamEvents,
        /// The upstream already sent `[DONE]`.
        done: bool,
    },
}

impl Provider {
    /// The provider `cfg` describes, with its key (or why it has none),
    /// and circuits set by `circuit`.
    pub fn new(
        cfg: ProviderConfig,
        key: Option<SecretString>,
        key_origin: Option<SecretOrigin>,
        key_error: Option<String>,
        circuit: CircuitConfig,
    ) -> anyhow::Result<Self> {
        let settings = upstream::Settings {
            connect_timeout: cfg.timeouts.connect,
            pool_idle_timeout: Duration::from_secs(60),
        };
        let clients = (0..crate::workers::count())
            .map(|_| upstream::reqwest_client(settings, GuardedResolver::new(&cfg.name, cfg.local)))
            .collect::<Result<Vec<_>, _>>()?;
        let url =
            |e: Endpoint| reqwest::Url::parse(&format!("{}/{}", cfg.base_url, e.upstream_path()));
        let urls = [
            url(Endpoint::Chat)?,
            url(Endpoint::Completions)?,
            url(Endpoint::Embeddings)?,
            url(Endpoint::Responses)?,
        ];
        let chat_url = &urls[Endpoint::Chat.index()];
        // An IP literal is never resolved, so it is checked here; names are
        // checked by the resolver on every connect (reqwest path only).
        let literal = chat_url
            .host_str()
            .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok());
        if let Some(ip) = literal {
            if let Some(why) = ssrf::refusal(&cfg.name, cfg.local, ip) {
                anyhow::bail!(why);
            }
        }
        let name_header = HeaderValue::from_str(&cfg.name).ok();
        // A key that is not a valid header value is left to `bearer_auth`,
        // which reports it on each attempt as before.
        let auth_header = key.as_ref().and_then(|k| {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", k.expose())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        // Plain-http upstreams at an IP literal (checked just above) skip
        // reqwest (see `upstream`), unless a proxy is configured or the key
        // cannot be a header (reqwest reports that). A host name goes
        // through reqwest, whose resolver applies the SSRF rules.
        let direct = if literal.is_some()
            && upstream::direct_ok(chat_url)
            && (key.is_none() || auth_header.is_some())
        {
            let target = |i: usize| upstream::Target::new(&urls[i]);
            (|| {
                Some(DirectPath {
                    targets: [target(0)?, target(1)?, target(2)?, target(3)?],
                    clients: (0..crate::workers::count())
                        .map(|_| upstream::Direct::new(settings))
                        .collect(),
                })
            })()
        } else {
            None
        };
        Ok(Self {
            name_header,
            auth_header,
            direct,
            urls,
            cfg,
            clients,
            key,
            key_origin,
            key_error,
            circuits: Circuits::new(circuit),
            stats: Mutex::new(Stats::default()),
        })
    }

    /// Its configured name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// A key is needed for presets that use one (Ollama and custom URLs may not).
    pub fn key_missing(&self) -> bool {
        self.cfg.key_ref.is_some() && self.key.is_none()
    }

    /// Records an attempt of `ms` and its result, for status and the dashboard.
    pub fn record(&self, ms: u64, result: Result<(), String>) {
        let mut s = self.stats.lock().unwrap();
        let now = Utc::now();
        if s.history.len() == HISTORY {
            s.history.pop_front();
        }
        s.history.push_back(Sample {
            at: now,
            ms,
            ok: result.is_ok(),
        });
        match result {
            Ok(()) => {
                s.last_latency_ms = Some(ms);
                s.last_ok_at = Some(now);
            }
            Err(e) => {
                s.last_error = Some(e);
                s.last_error_at = Some(now);
            }
        }
    }

    /// This thread's client.
    pub fn client(&self) -> &reqwest::Client {
        &self.clients[crate::workers::index() % self.clients.len()]
    }

    /// Send the request; resolves when the answer's headers are in.
    async fn send(
        &self,
        endpoint: Endpoint,
        body: Bytes,
    ) -> Result<upstream::Response, upstream::Error> {
        if let Some(d) = &self.direct {
            let headers = [
                Some((
                    reqwest::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )),
                self.auth_header
                    .clone()
                    .map(|v| (reqwest::header::AUTHORIZATION, v)),
                (self.cfg.kind == crate::config::ProviderKind::OpenRouter).then(|| {
                    (
                        reqwest::header::HeaderName::from_static("x-title"),
                        HeaderValue::from_static("moltgate"),
                    )
                }),
            ];
            let req = d.targets[endpoint.index()].post(headers.into_iter().flatten(), body);
            let client = &d.clients[crate::workers::index() % d.clients.len()];
            return client.send(req).await;
        }
        self.request(endpoint, body)
            .send()
            .await
            .map(upstream::Response::Reqwest)
            .map_err(upstream::Error::Reqwest)
    }

    fn request(&self, endpoint: Endpoint, body: Bytes) -> reqwest::RequestBuilder {
        let mut rb = self
            .client()
            .post(self.urls[endpoint.index()].clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .body(body);
        if let Some(v) = &self.auth_header {
            rb = rb.header(reqwest::header::AUTHORIZATION, v.clone());
        } else if let Some(k) = &self.key {
            rb = rb.bearer_auth(k.expose());
        }
        if self.cfg.kind == crate::config::ProviderKind::OpenRouter {
            rb = rb.header(
                reqwest::header::HeaderName::from_static("x-title"),
                HeaderValue::from_static("moltgate"),
            );
        }
        rb
    }

    /// One attempt. `body` is the client's request with `model`/`stream` already set.
    pub async fn attempt(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        route_model: &str,
        stream: bool,
        overall: Deadline,
        redactor: &Redactor,
    ) -> Result<Answer, Failure> {
        let t = self.cfg.timeouts;
        let budget = overall.cap(t.total);
        let start = Instant::now();
        let headers_by = budget.cap(t.ttfb);
        let overall_binds = |limit: Instant| overall.instant() <= limit;
        let timeout = |phase: Phase, limit: Instant| Failure::Timeout {
            phase,
            ms: limit.saturating_duration_since(start).as_millis() as u64,
            overall: overall_binds(limit),
        };

        let resp = match timeout_at(headers_by.instant(), self.send(endpoint, body)).await {
            Err(_) => return Err(timeout(Phase::Headers, headers_by.instant())),
            Ok(Err(e)) => return Err(send_error(e, t.connect, redactor)),
            Ok(Ok(r)) => r,
        };

        let status = resp.status();
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            // The error body is best effort: a short bounded read.
            let err_by = budget.cap(t.idle.min(Duration::from_secs(2)));
            let text = read_body(resp, err_by.instant(), err_by.instant(), 64 << 10)
                .await
                .unwrap_or_default();
            let (code, message) = error_message(&text, redactor);
            return Err(classify_status(
                status.as_u16(),
                code.as_deref(),
                message,
                retry_after.as_deref(),
            ));
        }

        let is_sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/event-stream"));

        if stream && is_sse {
            let events: UpstreamEvents = Box::pin(resp.bytes_stream().eventsource());
            let phase = Waiting {
                idle: t.idle,
                budget,
                start,
                overall,
            };
            return until_begun(endpoint, events, phase, redactor).await;
        }
        if stream && endpoint != Endpoint::Chat {
            // Only chat answers can be turned into a stream here.
            return Err(Failure::Malformed {
                detail: "asked to stream, the provider answered with a body that is not a stream"
                    .into(),
            });
        }

        // Buffered answer: every chunk must come within `idle`, all by `budget`.
        // A one-chunk answer (the usual case) is used as it came, not copied.
        let mut only: Option<Bytes> = None;
        let mut buf = Vec::new();
        let mut resp = resp;
        loop {
            let idle_by = budget.cap(t.idle).instant();
            match timeout_at(idle_by, resp.chunk()).await {
                Err(_) => {
                    let phase = if idle_by < budget.instant() {
                        Phase::Idle
                    } else {
                        Phase::Total
                    };
                    let ms = if phase == Phase::Idle {
                        t.idle.as_millis() as u64
                    } else {
                        budget
                            .instant()
                            .saturating_duration_since(start)
                            .as_millis() as u64
                    };
                    return Err(Failure::Timeout {
                        phase,
                        ms,
                        overall: phase == Phase::Total && overall_binds(idle_by),
                    });
                }
                Ok(Err(e)) => {
                    return Err(Failure::Cut {
                        detail: redactor.redact(&e.cause()),
                    })
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => {
                    if buf.is_empty() && only.is_none() {
                        only = Some(c);
                    } else {
                        if let Some(first) = only.take() {
                            buf.extend_from_slice(&first);
                        }
                        buf.extend_from_slice(&c);
                    }
                    if only.as_ref().map_or(buf.len(), Bytes::len) > MAX_BODY {
                        return Err(Failure::Malformed {
                            detail: format!("answer larger than {} MiB", MAX_BODY >> 20),
                        });
                    }
                }
            }
        }
        let buf = only.as_deref().unwrap_or(&buf);
        let (body, model, usage) = label_full(endpoint, buf, self.name(), route_model, redactor)?;
        Ok(Answer::Full { body, model, usage })
    }

    /// `GET /models`, used by the startup check: latency or a readable error.
    pub async fn probe_models(&self, within: Duration) -> Result<u64, String> {
        let start = Instant::now();
        let mut rb = self.client().get(format!("{}/models", self.cfg.base_url));
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k.expose());
        }
        match tokio::time::timeout(within, rb.send()).await {
            Err(_) => Err(format!("no answer within {} ms", within.as_millis())),
            Ok(Err(e)) => Err(root_cause(&e.without_url())),
            Ok(Ok(r)) if r.status().is_success() => Ok(start.elapsed().as_millis() as u64),
            Ok(Ok(r)) if matches!(r.status().as_u16(), 401 | 403) => {
                Err(format!("API key rejected ({})", r.status().as_u16()))
            }
            Ok(Ok(r)) => Err(format!("HTTP {}", r.status().as_u16())),
        }
    }
}

/// The timers of a stream until its answer begins.
#[derive(Clone, Copy)]
struct Waiting {
    idle: Duration,
    budget: Deadline,
    start: Instant,
    overall: Deadline,
}

impl Waiting {
    /// The next event, within the idle timeout and the attempt's budget.
    async fn next(
        &self,
        events: &mut UpstreamEvents,
        redactor: &Redactor,
    ) -> Result<Option<eventsource_stream::Event>, Failure> {
        let idle_by = self.budget.cap(self.idle).instant();
        match timeout_at(idle_by, events.next()).await {
            Err(_) => {
                let total = idle_by >= self.budget.instant();
                Err(Failure::Timeout {
                    phase: if total { Phase::Total } else { Phase::Idle },
                    ms: if total {
                        idle_by.saturating_duration_since(self.start).as_millis() as u64
                    } else {
                        self.idle.as_millis() as u64
                    },
                    overall: total && self.overall.instant() <= idle_by,
                })
            }
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(Failure::Cut {
                detail: redactor.redact(&stream_error(&e)),
            }),
            Ok(Some(Ok(ev))) => Ok(Some(ev)),
        }
    }
}

/// Read the stream until its answer begins (for chat, the first content
/// chunk), so that anything failing before it can still fall back to the
/// next route.
async fn until_begun(
    endpoint: Endpoint,
    mut events: UpstreamEvents,
    phase: Waiting,
    redactor: &Redactor,
) -> Result<Answer, Failure> {
    let mut first = Vec::new();
    let done = loop {
        let Some(ev) = phase.next(&mut events, redactor).await? else {
            return Err(Failure::Cut {
                detail: "stream ended before any content".into(),
            });
        };
        if ev.data.trim() == "[DONE]" {
            break true;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            tracing::debug!("skipping malformed upstream chunk before first content");
            continue;
        };
        if let Some(e) = endpoint.event_error(&v) {
            let f = embedded_error(&serde_json::json!({ "error": e }), redactor);
            return Err(f.unwrap_or(Failure::Malformed {
                detail: "the stream reported an error".into(),
            }));
        }
        let begun = endpoint.event_has_content(&v);
        first.push((ev, v));
        if begun {
            break false;
        }
    };
    Ok(match endpoint {
        Endpoint::Chat => Answer::Stream {
            first: first.into_iter().map(|(_, v)| v).collect(),
            rest: events,
            done,
        },
        _ => Answer::Events {
            first: first.into_iter().map(|(ev, _)| ev).collect(),
            rest: events,
            done,
        },
    })
}

/// The delta fields that carry the answer's text. Reasoning counts: a
/// model thinking aloud for 30 s is working, not hung, and the deadlines
/// bound only the wait for its first sign of life.
const DELTA_TEXT: [&str; 4] = ["content", "reasoning_content", "reasoning", "refusal"];

/// Text (the answer's, its reasoning or a refusal), a tool call or a
/// finish reason: the answer has begun.
pub fn chunk_has_content(v: &Value) -> bool {
    v.get("choices")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                let d = c.get("delta");
                DELTA_TEXT.iter().any(|k| {
                    d.and_then(|d| d.get(k))
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                }) || d
                    .and_then(|d| d.get("tool_calls"))
                    .is_some_and(|t| !t.is_null())
                    || c.get("finish_reason").is_some_and(|f| !f.is_null())
            })
        })
}

/// Some providers answer 200 with `{"error": ...}` (OpenRouter does, mid-stream too).
pub fn embedded_error(v: &Value, redactor: &Redactor) -> Option<Failure> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let (code, message) = error_fields(e, redactor);
    let status = e
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| (400..600).contains(c))
        .unwrap_or(502) as u16;
    Some(classify_status(status, code.as_deref(), message, None))
}

fn error_fields(e: &Value, redactor: &Redactor) -> (Option<String>, String) {
    let code = e
        .get("code")
        .and_then(|c| c.as_str().map(str::to_owned))
        .or_else(|| e.get("type").and_then(Value::as_str).map(str::to_owned));
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    (code, redactor.redact(&truncate(&msg, 300)))
}

/// Pull `error.message`/`error.code` out of an upstream error body.
fn error_message(text: &str, redactor: &Redactor) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.get("error").is_some() => {
            let e = &v["error"];
            if e.is_string() {
                (
                    None,
                    redactor.redact(&truncate(e.as_str().unwrap_or(""), 300)),
                )
            } else {
                error_fields(e, redactor)
            }
        }
        _ => {
            let t = text.trim();
            let t = if t.is_empty() { "(empty body)" } else { t };
            (None, redactor.redact(&truncate(t, 300)))
        }
    }
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

async fn read_body(
    mut resp: upstream::Response,
    idle_by: Instant,
    by: Instant,
    max: usize,
) -> Option<String> {
    let mut buf = Vec::new();
    let until = idle_by.min(by);
    while let Ok(Ok(Some(c))) = timeout_at(until, resp.chunk()).await {
        buf.extend_from_slice(&c);
        if buf.len() >= max {
            break;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The innermost error message ("Connection refused (os error 111)"),
/// without reqwest's URL (which could carry credentials).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn stream_error(e: &EventStreamError<upstream::Error>) -> String {
    match e {
        EventStreamError::Transport(t) => {
            let t = t.cause_ref();
            if t.is_empty() {
                "connection closed mid-stream".into()
            } else {
                t
            }
        }
        other => other.to_string(),
    }
}

fn send_error(e: upstream::Error, connect: Duration, redactor: &Redactor) -> Failure {
    if e.is_connect_timeout() {
        return Failure::Timeout {
            phase: Phase::Connect,
            ms: connect.as_millis() as u64,
            overall: false,
        };
    }
    let detail = redactor.redact(&e.cause());
    Failure::Connect { detail }
}

/// Rewrite `model` to "provider/model" so clients see who really answered.
pub fn label_model(v: &mut Value, provider: &str, route_model: &str) -> String {
    let upstream = v
        .get("model")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(route_model)
        .to_string();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "model".into(),
            Value::String(format!("{provider}/{upstream}")),
        );
    }
    upstream
}

/// Validate a buffered answer and relabel its `model` as "provider/model",
/// touching only top-level fields.
fn label_full(
    endpoint: Endpoint,
    buf: &[u8],
    provider: &str,
    route_model: &str,
    redactor: &Redactor,
) -> Result<(Bytes, String, Option<crate::admin::metrics::Usage>), Failure> {
    let fields = json::parse_fields(buf).map_err(|e| Failure::Malformed {
        detail: format!("answer {e}"),
    })?;
    if let Some(e) = fields.get("error").filter(|e| e.get() != "null") {
        let v = serde_json::json!({ "error": serde_json::from_str::<Value>(e.get()).unwrap_or(Value::Null) });
        if let Some(f) = embedded_error(&v, redactor) {
            return Err(f);
        }
    }
    let array = endpoint.answer_array();
    if !fields.get(array).is_some_and(|c| c.get().starts_with('[')) {
        return Err(Failure::Malformed {
            detail: format!("answer has no {array:?} array"),
        });
    }
    let upstream = fields
        .get("model")
        .and_then(|m| json::str_value(m))
        .filter(|m| !m.is_empty())
        .unwrap_or(Cow::Borrowed(route_model));
    let mut labelled = String::with_capacity(provider.len() + 1 + upstream.len());
    labelled.push_str(provider);
    labelled.push('/');
    labelled.push_str(&upstream);
    let mut w = json::ObjectWriter::with_capacity(buf.len() + provider.len());
    for (k, v) in fields.iter() {
        if k != "model" {
            w.raw(k, v.get());
        }
    }
    w.string("model", &labelled);
    let usage = fields
        .get("usage")
        .and_then(|u| crate::admin::metrics::Usage::parse(u.get()));
    Ok((Bytes::from(w.finish()), upstream.into_owned(), usage))
}

/// Whether, and for whom, an upstream is asked to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// A whole answer.
    No,
    /// A stream the client sees: its own `stream_options` apply.
    ForClient,
    /// A stream the gateway assembles into a whole answer: it asks for
    /// the usage chunk, which a whole answer always carries.
    ToAssemble,
}

impl Streamed {
    /// Whether the upstream is asked to stream.
    pub fn is_stream(self) -> bool {
        self != Streamed::No
    }
}

/// The request body sent upstream: the client's top-level fields, with the
/// route's model, our streaming choice, and gateway-only fields removed.
pub fn upstream_body(client: &json::Fields<'_>, model: &str, stream: Streamed) -> Bytes {
    upstream_body_with(client, model, stream, None)
}

/// [`upstream_body`], with `messages` (raw JSON) in place of the client's.
pub fn upstream_body_with(
    client: &json::Fields<'_>,
    model: &str,
    stream: Streamed,
    messages: Option<&str>,
) -> Bytes {
    let extra = messages.map_or(0, str::len);
    let mut w = json::ObjectWriter::with_capacity(
        client.values().map(|v| v.get().len() + 16).sum::<usize>() + extra,
    );
    for (k, v) in client.iter() {
        let drop = match k {
            "model" | "stream" | "fallbacks" => true,
            "stream_options" => stream != Streamed::ForClient,
            "messages" => messages.is_some(),
            _ => false,
        };
        if !drop {
            w.raw(k, v.get());
        }
    }
    if let Some(m) = messages {
        w.raw("messages", m);
    }
    w.string("model", model);
    if stream.is_stream() {
        w.raw("stream", "true");
    }
    if stream == Streamed::ToAssemble {
        w.raw("stream_options", r#"{"include_usage":true}"#);
    }
    Bytes::from(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProviderKind, Timeouts};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A raw HTTP/1.1 upstream; the answer depends on a word in the body.
    async fn upstream() -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            match s.read(&mut tmp).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            }
                        }
                        let body =
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        buf.drain(..end + 4 + len);
                        let reply = |status: &str, ctype: &str, extra: &str, b: &str| {
                            format!(
                                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\n{extra}content-length: {}\r\n\r\n{b}",
                                b.len()
                            )
                        };
                        let out = if body.contains("m-ok") {
                            reply(
                                "200 OK",
                                "application/json",
                                "",
                                r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"model":"up-model","usage":{"total_tokens":2}}"#,
                            )
                        } else if body.contains("m-429") {
                            reply(
                                "429 Too Many Requests",
                                "application/json",
                                "retry-after: Wed, 21 Oct 2037 07:28:00 GMT\r\n",
                                r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
                            )
                        } else if body.contains("m-bad") {
                            reply("200 OK", "application/json", "", "[1,2]")
                        } else if body.contains("m-sse") {
                            let b = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}],\"model\":\"up\"}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
                            reply("200 OK", "text/event-stream", "", b)
                        } else {
                            // Cut: promise 100 bytes, send 10, close.
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"choices\"")
                                .await;
                            return;
                        };
                        if s.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn provider(base_url: String, direct: bool) -> Provider {
        let cfg = ProviderConfig {
            name: "p".into(),
            kind: ProviderKind::Compatible,
            base_url,
            key_ref: None,
            default_model: None,
            timeouts: Timeouts::default(),
            local: true,
        };
        let mut p = Provider::new(cfg, None, None, None, CircuitConfig::default()).unwrap();
        assert!(p.direct.is_some(), "http upstreams go direct");
        if !direct {
            p.direct = None;
        }
        p
    }

    /// What an attempt produced, in comparable form.
    async fn outcome(p: &Provider, model: &str, stream: bool) -> String {
        let body = Bytes::from(format!(r#"{{"model":"{model}","messages":[]}}"#));
        let overall = Deadline::after(Duration::from_secs(5));
        match p
            .attempt(
                Endpoint::Chat,
                body,
                model,
                stream,
                overall,
                &Redactor::default(),
            )
            .await
        {
            Ok(Answer::Full { body, model, .. }) => {
                format!("full {model} {}", String::from_utf8_lossy(&body))
            }
            Ok(Answer::Events { .. }) => unreachable!("a chat attempt"),
            Ok(Answer::Stream {
                first,
                mut rest,
                done,
            }) => {
                let mut s = format!("stream {done} {first:?}");
                while let Some(ev) = rest.next().await {
                    s.push_str(&format!(" | {:?}", ev.map(|e| e.data)));
                }
                s
            }
            Err(f) => format!("{} {}", f.class(), f.describe()),
        }
    }

    /// The hyper path answers, fails and streams exactly as reqwest's did.
    #[tokio::test]
    async fn direct_and_reqwest_paths_agree() {
        let addr = upstream().await;
        let refused = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        for (base, model, stream) in [
            (addr, "m-ok", false),
            (addr, "m-ok", true),
            (addr, "m-429", false),
            (addr, "m-bad", false),
            (addr, "m-sse", true),
            (addr, "m-cut", false),
            (refused, "m-ok", false),
        ] {
            let url = format!("http://{base}/v1");
            let direct = outcome(&provider(url.clone(), true), model, stream).await;
            let reqwest = outcome(&provider(url, false), model, stream).await;
            assert_eq!(direct, reqwest, "{model} stream={stream}");
            if model == "m-ok" && base == addr {
                assert!(direct.contains(r#""model":"p/up-model""#), "{direct}");
            }
        }
    }
}
