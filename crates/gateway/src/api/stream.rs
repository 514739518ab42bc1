//! A committed chat stream, relayed to the client or assembled for it.
//!
//! After the first content chunk the response is committed. From then on an
//! upstream that goes idle, is cut, resets, sends an error or a chunk that is
//! not JSON, or ends with no finish, is *resumed*: the same client stream
//! continues from the next route ([`crate::outbound::resume`]). When that is not
//! possible (no route left, a tool call in flight, several choices, every
//! fallback failed) the stream ends with an OpenAI-shaped error event and
//! `[DONE]`, so no client mistakes a truncated answer for a complete one. A
//! missing `[DONE]` after the finish chunk is supplied after a short grace
//! period; with nowhere to resume, a malformed chunk is skipped.
//!
//! The same relay serves a client that asked for a whole answer: its chunks
//! are read to the end and assembled ([`assemble`], rules in
//! [`super::assemble`]), and a stream that breaks for good is an error
//! response instead of an error event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::Event;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout_at, Instant};

use super::assemble::Assembly;
use super::errors::ApiError;
use crate::outbound::deadline::Deadline;
use crate::outbound::provider::{embedded_error, label_model, Answer, Provider, UpstreamEvents};
use crate::outbound::resume::{self, Diverged, Plan, Splicer};
use crate::outbound::retry::Failure;
use crate::Gateway;

/// How long to wait for `[DONE]` (or a usage chunk) after `finish_reason`.
pub(super) const FINISH_GRACE: Duration = Duration::from_millis(500);

/// The `data: [DONE]` event that ends a stream.
pub fn done_event() -> Event {
    Event::default().data("[DONE]")
}

fn json_event(v: &Value) -> Event {
    Event::default().data(v.to_string())
}

/// Build a valid stream from a complete (non-streamed) answer.
pub fn synthesize(full: &Value) -> Vec<Event> {
    let mut events: Vec<Event> = synthesize_chunks(full).iter().map(json_event).collect();
    events.push(done_event());
    events
}

/// The chunks of [`synthesize`]: one delta per choice, then the finish chunk with `usage`.
pub fn synthesize_chunks(full: &Value) -> Vec<Value> {
    let id = full
        .get("id")
        .cloned()
        .unwrap_or(json!("chatcmpl-moltgate"));
    let created = full.get("created").cloned().unwrap_or(json!(0));
    let model = full.get("model").cloned().unwrap_or(Value::Null);
    let base = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
    let choices = full
        .get("choices")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut deltas = Vec::new();
    let mut finishes = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        let index = c.get("index").cloned().unwrap_or(json!(i));
        let mut delta = c
            .get("message")
            .cloned()
            .unwrap_or(json!({"role": "assistant", "content": ""}));
        if let Some(o) = delta.as_object_mut() {
            o.retain(|_, v| !v.is_null());
            // Streaming tool calls carry an index per call.
            if let Some(Value::Array(calls)) = o.get_mut("tool_calls") {
                for (k, call) in calls.iter_mut().enumerate() {
                    if let Some(co) = call.as_object_mut() {
                        co.entry("index").or_insert(json!(k));
                    }
                }
            }
        }
        deltas.push(json!({"index": index, "delta": delta, "finish_reason": null}));
        finishes.push(json!({"index": index, "delta": {}, "finish_reason": c.get("finish_reason").cloned().unwrap_or(json!("stop"))}));
    }
    let mut last = base(Value::Array(finishes));
    if let Some(u) = full.get("usage") {
        last["usage"] = u.clone();
    }
    vec![base(Value::Array(deltas)), last]
}

/// Everything the relay needs after commit.
pub struct Relay {
    /// The gateway (metrics, redaction).
    pub gw: Arc<Gateway>,
    /// The provider serving the stream.
    pub provider: Arc<Provider>,
    /// The model of the route it serves.
    pub route_model: String,
    /// The chunks read before the commit, in order.
    pub first: Vec<Value>,
    /// The rest of the upstream stream.
    pub rest: UpstreamEvents,
    /// The upstream already sent `[DONE]`.
    pub done: bool,
    /// The longest silence between chunks.
    pub idle: Duration,
    /// The stream's whole life (`LLM_MAX_STREAM_MS`).
    pub budget: Deadline,
    /// When the stream was committed.
    pub started: Instant,
    /// The caller's label in the tokens metric.
    pub key: Arc<str>,
    /// Where a broken stream may continue (`None`: it may not).
    pub plan: Option<Plan>,
}

struct State {
    r: Relay,
    queue: VecDeque<Out>,
    finished: bool,
    saw_finish: bool,
    /// The text of the answer sent so far (what a resume continues).
    sent: String,
    /// A tool call was streamed: never resumed half-way.
    tool_call: bool,
    /// More than one choice: not resumed.
    many_choices: bool,
    /// The first chunk's `id`, `created` and `model`, kept on every chunk.
    identity: Option<[Value; 3]>,
    /// While a resumed leg's text is joined on.
    splicer: Option<Splicer>,
    /// Why the stream was resumed, and each leg's `provider/model`.
    resumed: Option<(&'static str, Vec<String>)>,
    /// The usage the earlier legs reported, added to the next one's.
    prior_usage: Option<Value>,
}

/// The token counts summed across legs.
const USAGE_FIELDS: [&str; 3] = ["prompt_tokens", "completion_tokens", "total_tokens"];

impl State {
    fn push_chunk(&mut self, mut v: Value) -> Result<(), Diverged> {
        if !v.is_object() {
            return Ok(());
        }
        let mut finishes = false;
        let mut flushed = String::new();
        if let Some(cs) = v.get_mut("choices").and_then(Value::as_array_mut) {
            for c in cs.iter_mut() {
                if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                    self.many_choices = true;
                }
                if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    finishes = true;
                }
                let Some(d) = c.get_mut("delta").and_then(Value::as_object_mut) else {
                    continue;
                };
                if d.get("tool_calls").is_some_and(|t| !t.is_null()) {
                    self.tool_call = true;
                }
                if self.splicer.is_some() {
                    // One role per stream, said at its start.
                    d.remove("role");
                }
                if let Some(text) = d.get("content").and_then(Value::as_str) {
                    let text = match &mut self.splicer {
                        Some(sp) => sp.feed(text)?,
                        None => text.to_string(),
                    };
                    self.sent.push_str(&text);
                    d.insert("content".into(), Value::String(text));
                }
            }
        }
        if finishes {
            self.saw_finish = true;
            if let Some(sp) = &mut self.splicer {
                flushed = sp.flush()?;
            }
        }
        let usage = v.get_mut("usage").filter(|u| u.is_object());
        if let Some(u) = usage {
            if let Ok(counted) = serde_json::from_value::<crate::admin::metrics::Usage>(u.clone()) {
                let model = self.r.gw.model_label(&self.r.route_model);
                self.r.gw.metrics.count_tokens(
                    self.r.provider.name(),
                    model,
                    &self.r.key,
                    &counted,
                );
            }
            if let Some(prior) = &self.prior_usage {
                for f in USAGE_FIELDS {
                    let sum = u.get(f).and_then(Value::as_u64).unwrap_or(0)
                        + prior.get(f).and_then(Value::as_u64).unwrap_or(0);
                    u[f] = json!(sum);
                }
            }
            if self.splicer.is_none() {
                self.prior_usage = Some(u.clone());
            }
        }
        if self.splicer.is_some() && !finishes && v.get("usage").is_none() && is_empty(&v) {
            return Ok(());
        }
        label_model(&mut v, self.r.provider.name(), &self.r.route_model);
        match &self.identity {
            None => {
                self.identity = Some(["id", "created", "model"].map(|k| v[k].clone()));
            }
            Some(id) => {
                for (k, val) in ["id", "created", "model"].into_iter().zip(id) {
                    v[k] = val.clone();
                }
            }
        }
        if !flushed.is_empty() {
            self.sent.push_str(&flushed);
            self.push_text(flushed);
        }
        if finishes {
            if let Some((after, legs)) = &self.resumed {
                v["x_moltgate"] = json!({
                    "resumed_after": after,
                    "served_by": legs,
                    // Whether `usage` adds up every leg, or is the last
                    // leg's alone (a broken leg seldom reports any).
                    "usage_summed": self.prior_usage.is_some(),
                });
            }
        }
        self.queue.push_back(Out::Chunk(v));
        Ok(())
    }

    /// A content chunk of this stream's own (text a splice held back).
    fn push_text(&mut self, text: String) {
        let [id, created, model] = self.identity.clone().unwrap_or_default();
        let v = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
        self.queue.push_back(Out::Chunk(v));
    }

    /// Counts a leg that broke after content (its provider's circuit, the
    /// metrics, its latency record).
    fn record_break(&mut self, reason: &'static str, what: &str) {
        let p = self.r.provider.name().to_string();
        tracing::warn!(provider = %p, model = %self.r.route_model, reason, "stream broke after content started: {what}");
        self.r
            .gw
            .metrics
            .errors
            .with_label_values(&[&p, reason])
            .inc();
        self.r
            .provider
            .circuits
            .record_failure(&self.r.route_model, crate::outbound::circuit::Blame::Model);
        self.r.gw.refresh_circuit_gauge(&self.r.provider);
        self.r.provider.record(
            self.r.started.elapsed().as_millis() as u64,
            Err(what.to_string()),
        );
    }

    /// Ends the stream with an error event and `[DONE]`.
    fn end_with_error(&mut self, reason: &'static str, msg: String) {
        self.r
            .gw
            .metrics
            .stream_aborts
            .with_label_values(&[self.r.provider.name(), reason])
            .inc();
        self.queue.push_back(Out::Broken { reason, msg });
        // Text a splice still holds was never sent: it stays unsaid.
        self.splicer = None;
        self.finish();
    }

    /// The upstream broke after content was sent: continue on the next
    /// route when the plan allows, else end with an error.
    async fn broke(&mut self, reason: &'static str, what: String) {
        self.record_break(reason, &what);
        let leg = format!("{}/{}", self.r.provider.name(), self.r.route_model);
        let why_not = match self.resumability() {
            Err(why) => why.map(str::to_string),
            Ok(()) => match self.resume(reason, &leg).await {
                Ok(()) => return,
                Err(tried) => Some(format!("resuming failed: {tried}")),
            },
        };
        let msg = match why_not {
            None => format!("{leg}: {what}"),
            Some(w) => format!("{leg}: {what}; {w}"),
        };
        self.end_with_error(reason, msg);
    }

    /// Asks the next routes, one after the other, to continue the text
    /// sent; switches the stream to the first that does. `Err` says what
    /// each route answered.
    async fn resume(&mut self, reason: &'static str, broken: &str) -> Result<(), String> {
        let gw = self.r.gw.clone();
        let Some(plan) = self.r.plan.as_mut() else {
            return Err("no route left".into());
        };
        let wait = Deadline::after(plan.wait);
        let mut tried = Vec::new();
        while let Some((p, model)) = plan.next_route() {
            let at = format!("{}/{model}", p.name());
            if wait.expired() {
                tried.push(format!("{at}: no time left"));
                break;
            }
            if p.key_missing() || p.key_error.is_some() {
                tried.push(format!("{at}: no API key"));
                continue;
            }
            let Ok(permit) = p.circuits.try_acquire(&model) else {
                tried.push(format!("{at}: circuit open"));
                continue;
            };
            let Some(body) = plan.continuation(&model, &self.sent) else {
                return Err("the request cannot be rebuilt".into());
            };
            let t0 = Instant::now();
            let answer = p
                .attempt(
                    super::endpoint::Endpoint::Chat,
                    body,
                    &model,
                    true,
                    wait,
                    &gw.redactor,
                )
                .await;
            let ms = t0.elapsed().as_millis() as u64;
            let answer = match answer {
                Ok(a) => {
                    permit.success();
                    p.record(ms, Ok(()));
                    a
                }
                Err(f) => {
                    match f.blame() {
                        Some(b) => permit.failure(b),
                        None => permit.success(),
                    }
                    let detail = match &f {
                        Failure::BadRequest { message, .. } if resume::rejects_prefill(message) => {
                            "does not take a partial answer to continue (prefill)".to_string()
                        }
                        f => f.describe(),
                    };
                    p.record(ms, Err(detail.clone()));
                    tried.push(format!("{at}: {detail}"));
                    continue;
                }
            };
            gw.metrics
                .stream_resumes
                .with_label_values(&[p.name(), "resumed"])
                .inc();
            tracing::info!(from = broken, to = %at, reason, "stream resumed on a fallback");
            match &mut self.resumed {
                Some((_, legs)) => legs.push(at),
                None => self.resumed = Some((reason, vec![broken.to_string(), at])),
            }
            self.r.provider = p.clone();
            self.r.route_model = model;
            self.r.idle = p.cfg.timeouts.idle;
            self.r.started = Instant::now();
            self.saw_finish = false;
            self.splicer = Some(Splicer::new(&self.sent));
            match answer {
                Answer::Stream { first, rest, done } => {
                    self.r.rest = rest;
                    for v in first {
                        self.push_or_end(v);
                    }
                    if done {
                        self.finish();
                    }
                }
                Answer::Events { .. } => {
                    unreachable!("a chat attempt answers in chat chunks")
                }
                Answer::Full { body, .. } => {
                    // It answered whole (it does not stream): the same
                    // splice, then the end.
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    for chunk in synthesize_chunks(&v) {
                        self.push_or_end(chunk);
                    }
                    self.finish();
                }
            }
            return Ok(());
        }
        gw.metrics
            .stream_resumes
            .with_label_values(&[self.r.provider.name(), "failed"])
            .inc();
        Err(if tried.is_empty() {
            "no route left".into()
        } else {
            tried.join("; ")
        })
    }

    /// Pushes a chunk; a resumed leg that restarted the answer differently
    /// ends the stream.
    fn push_or_end(&mut self, v: Value) {
        if self.finished {
            return;
        }
        if let Err(Diverged) = self.push_chunk(v) {
            let leg = format!("{}/{}", self.r.provider.name(), self.r.route_model);
            self.end_with_error(
                "stream_resume_diverged",
                format!("{leg} restarted the answer and said something else, which cannot be joined to the text above"),
            );
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        if let Some(sp) = &mut self.splicer {
            match sp.flush() {
                Ok(text) if !text.is_empty() => {
                    self.sent.push_str(&text);
                    self.push_text(text);
                }
                Ok(_) => {}
                Err(Diverged) => {
                    self.splicer = None;
                    return self.end_with_error(
                        "stream_resume_diverged",
                        "the fallback restarted the answer and stopped before catching up with the text above".into(),
                    );
                }
            }
        }
        self.queue.push_back(Out::Done);
        self.finished = true;
    }
}

/// A chunk with nothing left to say (its text was held or dropped).
fn is_empty(v: &Value) -> bool {
    v.get("choices").and_then(Value::as_array).is_none_or(|cs| {
        cs.iter().all(|c| {
            c.get("delta").and_then(Value::as_object).is_none_or(|d| {
                d.iter()
                    .all(|(k, val)| k == "content" && val.as_str().is_some_and(str::is_empty))
            })
        })
    })
}

/// What the relay says, before it is written for its reader.
enum Out {
    Chunk(Value),
    /// The answer broke off and could not be continued: the error code and
    /// what happened.
    Broken {
        reason: &'static str,
        msg: String,
    },
    /// The answer is complete.
    Done,
}

/// The committed stream, as SSE for a client that streams. It owns the
/// upstream body: when the client goes away axum drops this stream and
/// with it the upstream connection.
pub fn relay(r: Relay) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    answer(r).map(|out| {
        Ok(match out {
            Out::Chunk(v) => json_event(&v),
            Out::Broken { reason, msg } => {
                let msg = format!("{msg}; the answer above is incomplete");
                json_event(&ApiError::new(StatusCode::BAD_GATEWAY, "api_error", reason, msg).body())
            }
            Out::Done => done_event(),
        })
    })
}

/// The committed stream, read to its end and assembled into one
/// `chat.completion`, for a client that asked for a whole answer. Resumes
/// happen as they would for a streaming client; an answer that breaks off
/// for good is an error, never a truncated answer.
pub async fn assemble(r: Relay) -> Result<Bytes, ApiError> {
    let mut whole = Assembly::default();
    let chunks = answer(r);
    futures_util::pin_mut!(chunks);
    while let Some(out) = chunks.next().await {
        match out {
            Out::Chunk(v) => whole.add(&v),
            Out::Broken { reason, msg } => {
                let status = if reason == "stream_timeout" {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                let msg =
                    format!("{msg}; the answer broke off before its end, so none is returned");
                return Err(ApiError::new(status, "api_error", reason, msg));
            }
            Out::Done => break,
        }
    }
    Ok(Bytes::from(whole.finish().to_string()))
}

/// The chunks of the relay, each leg joined on.
fn answer(r: Relay) -> impl Stream<Item = Out> + Send {
    let mut st = State {
        queue: VecDeque::new(),
        finished: false,
        saw_finish: false,
        sent: String::new(),
        tool_call: false,
        many_choices: false,
        identity: None,
        splicer: None,
        resumed: None,
        prior_usage: None,
        r,
    };
    for v in std::mem::take(&mut st.r.first) {
        st.push_or_end(v);
    }
    if st.r.done {
        st.finish();
    }
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(out) = st.queue.pop_front() {
                return Some((out, st));
            }
            if st.finished {
                return None;
            }
            let idle_by = if st.saw_finish {
                st.r.budget.cap(FINISH_GRACE.min(st.r.idle))
            } else {
                st.r.budget.cap(st.r.idle)
            }
            .instant();
            match timeout_at(idle_by, st.r.rest.next()).await {
                Err(_) if st.saw_finish => st.finish(),
                Err(_) if idle_by >= st.r.budget.instant() => {
                    // The stream's whole life is up: no resume.
                    let what = format!(
                        "stream did not finish within LLM_MAX_STREAM_MS ({} ms)",
                        st.r.gw.cfg.max_stream.as_millis()
                    );
                    st.record_break("stream_timeout", &what);
                    let leg = format!("{}/{}", st.r.provider.name(), st.r.route_model);
                    st.end_with_error("stream_timeout", format!("{leg}: {what}"));
                }
                Err(_) => {
                    let what = format!(
                        "upstream went silent for {} ms mid-stream (timeout)",
                        st.r.idle.as_millis()
                    );
                    st.broke("stream_timeout", what).await;
                }
                Ok(None) if st.saw_finish => st.finish(),
                Ok(None) => {
                    st.broke(
                        "stream_cut",
                        "upstream closed the stream before finishing".into(),
                    )
                    .await
                }
                Ok(Some(Err(_))) if st.saw_finish => st.finish(),
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "upstream stream error");
                    st.broke("stream_cut", "upstream connection broke mid-stream".into())
                        .await;
                }
                Ok(Some(Ok(ev))) => {
                    if ev.data.trim() == "[DONE]" {
                        st.finish();
                        continue;
                    }
                    match serde_json::from_str::<Value>(&ev.data) {
                        Err(_) => {
                            st.r.gw
                                .metrics
                                .errors
                                .with_label_values(&[st.r.provider.name(), "malformed_chunk"])
                                .inc();
                            // A lost chunk may have held text: continue
                            // elsewhere when that is possible, else skip it.
                            if st.resumability().is_ok() {
                                st.broke(
                                    "malformed_chunk",
                                    "upstream sent a chunk that is not JSON".into(),
                                )
                                .await;
                            } else {
                                tracing::debug!(
                                    provider = st.r.provider.name(),
                                    "skipping malformed chunk"
                                );
                            }
                        }
                        Ok(v) => {
                            if let Some(f) = embedded_error(&v, &st.r.gw.redactor) {
                                st.broke("upstream_error", f.describe()).await;
                            } else if v.is_object() {
                                st.push_or_end(v);
                            }
                        }
                    }
                }
            }
        }
    })
}

impl State {
    /// Whether a break now would be resumed (not whether it would
    /// succeed); `Err` says why not, `Err(None)` when no route is left.
    fn resumability(&self) -> Result<(), Option<&'static str>> {
        if !self.r.plan.as_ref().is_some_and(Plan::has_routes) {
            return Err(None);
        }
        if self.tool_call {
            return Err(Some(
                "a tool call was being streamed, and one is never resumed half-way",
            ));
        }
        if self.many_choices {
            return Err(Some(
                "the answer has several choices, which are not resumed",
            ));
        }
        if self.sent.is_empty() {
            return Err(Some("no text was sent to continue from"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesised_stream_carries_content_tool_calls_finish_and_usage() {
        let full = json!({
            "id": "x", "created": 1, "model": "p/m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
            }}],
            "usage": {"total_tokens": 3}
        });
        let c = synthesize_chunks(&full);
        assert_eq!(c.len(), 2);
        assert_eq!(synthesize(&full).len(), 3, "plus [DONE]");
        assert_eq!(c[0]["object"], "chat.completion.chunk");
        assert_eq!(c[0]["model"], "p/m");
        let d = &c[0]["choices"][0]["delta"];
        assert!(d.get("content").is_none(), "nulls dropped: {d}");
        assert_eq!(
            d["tool_calls"][0]["index"], 0,
            "streamed tool calls carry an index"
        );
        assert_eq!(d["tool_calls"][0]["function"]["name"], "f");
        assert_eq!(c[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(c[1]["usage"]["total_tokens"], 3);
    }
}
