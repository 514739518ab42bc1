//! SSE towards the client.
//!
//! After the first content chunk the response is committed; from then on an
//! idle, cut or erroring upstream ends the stream with an OpenAI-shaped error
//! event followed by `[DONE]`, so no client mistakes a truncated answer for a
//! complete one. Malformed chunks are skipped; a missing `[DONE]` after the
//! finish chunk is supplied after a short grace period.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::Event;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout_at, Instant};

use super::deadline::Deadline;
use super::errors::ApiError;
use super::provider::{embedded_error, label_model, Provider, UpstreamEvents};
use super::Gateway;

/// How long to wait for `[DONE]` (or a usage chunk) after `finish_reason`.
const FINISH_GRACE: Duration = Duration::from_millis(500);

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
    pub gw: Arc<Gateway>,
    pub provider: Arc<Provider>,
    pub route_model: String,
    pub first: Vec<Value>,
    pub rest: UpstreamEvents,
    pub done: bool,
    pub idle: Duration,
    pub budget: Deadline,
    pub started: Instant,
    /// The caller's label in the tokens metric.
    pub key: Arc<str>,
}

struct State {
    r: Relay,
    queue: VecDeque<Event>,
    finished: bool,
    saw_finish: bool,
}

impl State {
    fn push_chunk(&mut self, mut v: Value) {
        if v.get("choices")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
            })
        {
            self.saw_finish = true;
        }
        if let Some(u) = v
            .get("usage")
            .filter(|u| u.is_object())
            .and_then(|u| serde_json::from_value::<super::metrics::Usage>(u.clone()).ok())
        {
            let model = self.r.gw.model_label(&self.r.route_model);
            self.r
                .gw
                .metrics
                .count_tokens(self.r.provider.name(), model, &self.r.key, &u);
        }
        label_model(&mut v, self.r.provider.name(), &self.r.route_model);
        self.queue.push_back(json_event(&v));
    }

    fn abort(&mut self, reason: &'static str, what: String) {
        let p = self.r.provider.name().to_string();
        let msg = format!(
            "{p}/{}: {what}; the answer above is incomplete",
            self.r.route_model
        );
        tracing::warn!(provider = %p, model = %self.r.route_model, reason, "stream aborted after content started");
        self.r
            .gw
            .metrics
            .stream_aborts
            .with_label_values(&[&p, reason])
            .inc();
        self.r
            .gw
            .metrics
            .errors
            .with_label_values(&[&p, reason])
            .inc();
        self.r
            .provider
            .circuits
            .record_failure(&self.r.route_model, super::circuit::Blame::Model);
        self.r.gw.refresh_breaker_gauge(&self.r.provider);
        self.r
            .provider
            .record(self.r.started.elapsed().as_millis() as u64, Err(what));
        let err = ApiError::new(StatusCode::BAD_GATEWAY, "api_error", reason, msg);
        self.queue.push_back(json_event(&err.body()));
        self.finish();
    }

    fn finish(&mut self) {
        self.queue.push_back(done_event());
        self.finished = true;
    }
}

/// The committed stream. It owns the upstream body: when the client goes
/// away axum drops this stream and with it the upstream connection.
pub fn relay(r: Relay) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let mut st = State {
        queue: VecDeque::new(),
        finished: false,
        saw_finish: false,
        r,
    };
    for v in std::mem::take(&mut st.r.first) {
        st.push_chunk(v);
    }
    if st.r.done {
        st.finish();
    }
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok(ev), st));
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
                Err(_) => {
                    let what = if idle_by >= st.r.budget.instant() {
                        format!(
                            "stream did not finish within LLM_MAX_STREAM_MS ({} ms)",
                            st.r.started.elapsed().as_millis()
                        )
                    } else {
                        format!(
                            "upstream went silent for {} ms mid-stream (timeout)",
                            st.r.idle.as_millis()
                        )
                    };
                    st.abort("stream_timeout", what);
                }
                Ok(None) if st.saw_finish => st.finish(),
                Ok(None) => st.abort(
                    "stream_cut",
                    "upstream closed the stream before finishing".into(),
                ),
                Ok(Some(Err(_))) if st.saw_finish => st.finish(),
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "upstream stream error");
                    st.abort("stream_cut", "upstream connection broke mid-stream".into());
                }
                Ok(Some(Ok(ev))) => {
                    if ev.data.trim() == "[DONE]" {
                        st.finish();
                        continue;
                    }
                    match serde_json::from_str::<Value>(&ev.data) {
                        Err(_) => {
                            tracing::debug!(
                                provider = st.r.provider.name(),
                                "skipping malformed chunk"
                            );
                            st.r.gw
                                .metrics
                                .errors
                                .with_label_values(&[st.r.provider.name(), "malformed_chunk"])
                                .inc();
                        }
                        Ok(v) => {
                            if let Some(f) = embedded_error(&v, &st.r.gw.redactor) {
                                st.abort("upstream_error", f.describe());
                            } else if v.is_object() {
                                st.push_chunk(v);
                            }
                        }
                    }
                }
            }
        }
    })
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
