//! Streams of the pass-through endpoints (`/v1/completions`,
//! `/v1/responses`) towards the client.
//!
//! The response is committed once the answer has begun
//! ([`super::endpoint::Endpoint::event_has_content`]); until then a failure
//! goes to the next route like any other. After that each upstream event is
//! relayed as it came (its `event:` name kept), bounded like a chat stream:
//! the provider's idle timeout between events and `LLM_MAX_STREAM_MS` in
//! all. These streams are not resumed (a continuation needs the chat
//! message shape): an upstream that breaks after the answer began ends the
//! client's stream with an error event the OpenAI SDKs raise on — for
//! completions `data: {"error": ..}` then `data: [DONE]`, for Responses an
//! `event: error` whose data also carries `error`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::Event;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout_at, Instant};

use super::endpoint::Endpoint;
use super::errors::ApiError;
use super::stream::FINISH_GRACE;
use crate::admin::metrics::Usage;
use crate::outbound::circuit::Blame;
use crate::outbound::deadline::Deadline;
use crate::outbound::provider::{Provider, UpstreamEvents};
use crate::Gateway;

/// A committed pass-through stream and what it needs to end well.
pub struct Passthrough {
    /// The gateway (metrics, redaction).
    pub gw: Arc<Gateway>,
    /// The provider serving the stream.
    pub provider: Arc<Provider>,
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The model of the route it serves.
    pub route_model: String,
    /// The events read before the commit, in order.
    pub first: Vec<eventsource_stream::Event>,
    /// The rest of the upstream stream.
    pub rest: UpstreamEvents,
    /// The upstream already sent `[DONE]`.
    pub done: bool,
    /// The longest silence between events.
    pub idle: Duration,
    /// The stream's whole life (`LLM_MAX_STREAM_MS`).
    pub budget: Deadline,
    /// When the stream was committed.
    pub started: Instant,
    /// The caller's label in the tokens metric.
    pub key: Arc<str>,
}

struct State {
    p: Passthrough,
    queue: VecDeque<Event>,
    finished: bool,
    /// The upstream said the answer is complete (a finish reason, or a
    /// terminal Responses event): a close after it is the normal end.
    complete: bool,
    usage: Option<Usage>,
}

/// Responses events after which nothing more is said.
const TERMINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl State {
    /// Queues one upstream event for the client, as it came.
    fn forward(&mut self, ev: eventsource_stream::Event) {
        if ev.data.trim() == "[DONE]" {
            return self.finish(true);
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            // A client's parser would choke on it: counted and dropped.
            self.p
                .gw
                .metrics
                .errors
                .with_label_values(&[self.p.provider.name(), "malformed_chunk"])
                .inc();
            return;
        };
        if let Some(e) = self.p.endpoint.event_error(&v) {
            let msg = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the provider reported an error mid-stream");
            let msg = self
                .p
                .gw
                .redactor
                .redact(&crate::outbound::provider::truncate(msg, 300));
            return self.broke("upstream_error", msg);
        }
        if let Some(u) = Endpoint::event_usage(&v).and_then(|u| Usage::parse(&u.to_string())) {
            self.usage = Some(u);
        }
        let terminal = match self.p.endpoint {
            Endpoint::Responses => v
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| TERMINAL.contains(&t)),
            _ => v
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null()))
                }),
        };
        self.complete |= terminal;
        let mut out = Event::default().data(ev.data);
        if !ev.event.is_empty() && ev.event != "message" {
            out = out.event(ev.event);
        }
        self.queue.push_back(out);
        if terminal && self.p.endpoint == Endpoint::Responses {
            // Responses streams have no `[DONE]`: this is their end.
            self.finish(false);
        }
    }

    /// The upstream broke after the answer began: counted against the
    /// model's circuit, and the client told in-band.
    fn broke(&mut self, reason: &'static str, what: String) {
        let p = &self.p;
        let name = p.provider.name();
        tracing::warn!(provider = %name, model = %p.route_model, endpoint = %p.endpoint, reason, "stream broke after it began: {what}");
        p.gw.metrics.errors.with_label_values(&[name, reason]).inc();
        p.gw.metrics
            .stream_aborts
            .with_label_values(&[name, reason])
            .inc();
        p.provider
            .circuits
            .record_failure(&p.route_model, Blame::Model);
        p.gw.refresh_circuit_gauge(&p.provider);
        p.provider
            .record(p.started.elapsed().as_millis() as u64, Err(what.clone()));
        let msg = format!(
            "{name}/{}: {what}; the answer above is incomplete",
            p.route_model
        );
        let err = ApiError::new(StatusCode::BAD_GATEWAY, "api_error", reason, msg).body();
        match self.p.endpoint {
            Endpoint::Responses => {
                let e = &err["error"];
                let data = json!({"type": "error", "code": reason, "message": e["message"],
                    "param": null, "error": e});
                self.queue
                    .push_back(Event::default().event("error").data(data.to_string()));
                self.finish(false);
            }
            _ => {
                self.queue.push_back(Event::default().data(err.to_string()));
                self.finish(true);
            }
        }
    }

    fn finish(&mut self, done_event: bool) {
        if self.finished {
            return;
        }
        if done_event {
            self.queue.push_back(Event::default().data("[DONE]"));
        }
        if let Some(u) = self.usage.take() {
            let model = self.p.gw.model_label(&self.p.route_model);
            self.p
                .gw
                .metrics
                .count_tokens(self.p.provider.name(), model, &self.p.key, &u);
        }
        self.finished = true;
    }

    /// The upstream ended: normal after a complete answer, else a cut.
    fn ended(&mut self) {
        if self.complete {
            // Completions end with `[DONE]`; one that closes without it
            // after its finish reason is supplied it.
            let done = self.p.endpoint != Endpoint::Responses;
            self.finish(done);
        } else {
            self.broke(
                "stream_cut",
                "upstream closed the stream before finishing".into(),
            );
        }
    }
}

/// The committed stream. It owns the upstream body: when the client goes
/// away axum drops this stream and with it the upstream connection.
pub fn relay(p: Passthrough) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let mut st = State {
        queue: VecDeque::new(),
        finished: false,
        complete: false,
        usage: None,
        p,
    };
    for ev in std::mem::take(&mut st.p.first) {
        st.forward(ev);
    }
    if st.p.done {
        st.finish(true);
    }
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.finished {
                return None;
            }
            // After the answer's end, only a short wait for `[DONE]`.
            let wait = if st.complete {
                FINISH_GRACE.min(st.p.idle)
            } else {
                st.p.idle
            };
            let idle_by = st.p.budget.cap(wait).instant();
            match timeout_at(idle_by, st.p.rest.next()).await {
                Err(_) if st.complete => st.ended(),
                Err(_) if idle_by >= st.p.budget.instant() => st.broke(
                    "stream_timeout",
                    format!(
                        "stream did not finish within LLM_MAX_STREAM_MS ({} ms)",
                        st.p.gw.cfg.max_stream.as_millis()
                    ),
                ),
                Err(_) => st.broke(
                    "stream_timeout",
                    format!(
                        "upstream went silent for {} ms mid-stream (timeout)",
                        st.p.idle.as_millis()
                    ),
                ),
                Ok(None) => st.ended(),
                Ok(Some(Err(e))) if st.complete => {
                    tracing::debug!(error = %e, "upstream stream error after the end");
                    st.ended()
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "upstream stream error");
                    st.broke("stream_cut", "upstream connection broke mid-stream".into())
                }
                Ok(Some(Ok(ev))) => st.forward(ev),
            }
        }
    })
}
