//! The OpenAI inference endpoints moltgate serves, and what each one means
//! for the gateway: its paths, the provider path it forwards to, the field
//! that carries the model's input, and how to recognise an answer.
//!
//! Chat completions get everything (a synthesised stream for a buffered
//! answer, mid-stream resume); the others are passed through to providers
//! that have them with the same admission, deadlines, retries, fallbacks
//! and circuits, and their streams relayed event by event (see
//! [`super::passthrough`]).

use serde_json::Value;

/// One inference endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions` (the legacy text completions)
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses`
    Responses,
}

impl Endpoint {
    /// Every endpoint, in the order the docs list them.
    pub const ALL: [Endpoint; 4] = [
        Endpoint::Chat,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Responses,
    ];

    /// Index into per-endpoint tables (provider URLs).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The path under a provider's `base_url`.
    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }

    /// The paths clients call: with `/v1`, and without it for clients whose
    /// base URL is the gateway's root.
    pub fn paths(self) -> &'static [&'static str] {
        match self {
            Endpoint::Chat => &["/v1/chat/completions", "/chat/completions"],
            Endpoint::Completions => &["/v1/completions", "/completions"],
            Endpoint::Embeddings => &["/v1/embeddings", "/embeddings"],
            Endpoint::Responses => &["/v1/responses", "/responses"],
        }
    }

    /// The endpoint a request path names, if any.
    pub fn of_path(path: &str) -> Option<Endpoint> {
        Self::ALL.into_iter().find(|e| e.paths().contains(&path))
    }

    /// The request field that carries the model's input, and whether the
    /// request is meaningless without it.
    pub fn input_field(self) -> (&'static str, bool) {
        match self {
            Endpoint::Chat => ("messages", true),
            Endpoint::Completions => ("prompt", true),
            Endpoint::Embeddings => ("input", true),
            // A Responses request may continue a stored one
            // (`previous_response_id`) or use a stored prompt instead.
            Endpoint::Responses => ("input", false),
        }
    }

    /// Whether the endpoint has a streamed form.
    pub fn streams(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }

    /// The top-level array every successful answer has.
    pub fn answer_array(self) -> &'static str {
        match self {
            Endpoint::Chat | Endpoint::Completions => "choices",
            Endpoint::Embeddings => "data",
            Endpoint::Responses => "output",
        }
    }

    /// Whether a streamed event of a pass-through endpoint shows the answer
    /// has begun: until then a failure can still go to the next route.
    /// (Chat chunks are judged by [`crate::outbound::provider::chunk_has_content`].)
    pub fn event_has_content(self, v: &Value) -> bool {
        match self {
            Endpoint::Chat | Endpoint::Embeddings => {
                crate::outbound::provider::chunk_has_content(v)
            }
            Endpoint::Completions => v
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("text")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty())
                            || c.get("finish_reason").is_some_and(|f| !f.is_null())
                    })
                }),
            // `response.created` and `response.in_progress` come before the
            // model has produced anything; every later event is the answer.
            Endpoint::Responses => !matches!(
                v.get("type").and_then(Value::as_str),
                Some("response.created" | "response.in_progress" | "response.queued")
            ),
        }
    }

    /// The error an event of a pass-through stream carries: `{"error": ..}`
    /// (OpenAI-compatible providers), or a Responses `error` /
    /// `response.failed` event.
    pub fn event_error(self, v: &Value) -> Option<Value> {
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            return Some(e.clone());
        }
        match v.get("type").and_then(Value::as_str) {
            Some("error") => Some(v.clone()),
            Some("response.failed") => Some(
                v.pointer("/response/error")
                    .filter(|e| !e.is_null())
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"message": "response failed"})),
            ),
            _ => None,
        }
    }

    /// The `usage` an event carries (a completions chunk's, or the
    /// Responses `response.completed` event's).
    pub fn event_usage(v: &Value) -> Option<&Value> {
        v.get("usage")
            .or_else(|| v.pointer("/response/usage"))
            .filter(|u| u.is_object())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.paths()[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_path_names_its_endpoint_and_the_firewall_treats_it_as_model_input() {
        for e in Endpoint::ALL {
            for p in e.paths() {
                assert_eq!(Endpoint::of_path(p), Some(e));
                assert!(
                    moltguard_waf::llm::is_llm_route("POST", p),
                    "{p}: the firewall would match prompts against injection rules"
                );
            }
        }
        assert_eq!(Endpoint::of_path("/v1/models"), None);
    }

    #[test]
    fn a_responses_stream_begins_after_its_bookkeeping_events() {
        let r = Endpoint::Responses;
        assert!(!r.event_has_content(&json!({"type": "response.created"})));
        assert!(!r.event_has_content(&json!({"type": "response.in_progress"})));
        assert!(r.event_has_content(&json!({"type": "response.output_text.delta", "delta": "a"})));
        let c = Endpoint::Completions;
        assert!(!c.event_has_content(&json!({"choices": [{"text": "", "finish_reason": null}]})));
        assert!(c.event_has_content(&json!({"choices": [{"text": "a", "finish_reason": null}]})));
        assert!(c.event_has_content(&json!({"choices": [{"text": "", "finish_reason": "stop"}]})));
    }

    #[test]
    fn errors_and_usage_are_found_in_every_event_shape() {
        let r = Endpoint::Responses;
        assert!(r
            .event_error(&json!({"type": "response.output_text.delta"}))
            .is_none());
        assert_eq!(
            r.event_error(&json!({"type": "error", "code": "x", "message": "m"}))
                .unwrap()["code"],
            "x"
        );
        assert_eq!(
            r.event_error(
                &json!({"type": "response.failed", "response": {"error": {"code": "server_error"}}})
            )
            .unwrap()["code"],
            "server_error"
        );
        assert!(Endpoint::Completions
            .event_error(&json!({"error": {"message": "m"}}))
            .is_some());
        assert_eq!(
            Endpoint::event_usage(
                &json!({"type": "response.completed", "response": {"usage": {"input_tokens": 3}}})
            )
            .unwrap()["input_tokens"],
            3
        );
        assert!(Endpoint::event_usage(&json!({"usage": null})).is_none());
    }
}
