//! A streamed chat answer, assembled into the `chat.completion` that a
//! client which did not stream expects.
//!
//! Why stream at all for such a client: a provider asked for a whole answer
//! sends nothing, not even its headers, until the answer is written, so a
//! healthy 12-second answer and a hung provider look the same until a
//! timer fires. Streamed, the first token and every token after it show the
//! provider is working, and the deadlines bound only the waits.
//!
//! The rules, per choice (by its `index`):
//! - text fields of the delta (`content`, `refusal`, `reasoning_content`,
//!   …) are concatenated in order; arrays are extended; objects merge by
//!   the same rules;
//! - fields that name a thing rather than carry text (`role`, `id`,
//!   `type`, `name`) keep their first value: some providers repeat them on
//!   every chunk;
//! - tool calls merge by their own `index` (their position when it is
//!   missing), and lose it: a whole answer's tool calls have none;
//! - the last `finish_reason` stands; `logprobs` arrays are joined;
//! - `content` is `null` when the answer is only tool calls, as OpenAI
//!   gives it.
//!
//! The answer's `id`, `created` and `model` are the stream's (the relay
//! keeps them the same on every chunk), and its `usage` the last one seen
//! (the relay sums it across resumed legs).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Fields that name something: the first value stands.
const NAMES: [&str; 5] = ["role", "id", "type", "name", "index"];

/// Top-level fields of a chunk carried onto the answer, first value kept.
const HEAD: [&str; 5] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

/// The answer so far.
#[derive(Default)]
pub struct Assembly {
    head: Map<String, Value>,
    choices: BTreeMap<u64, Choice>,
    usage: Option<Value>,
    /// The relay's note on a resumed answer (which legs served it).
    note: Option<Value>,
}

#[derive(Default)]
struct Choice {
    message: Map<String, Value>,
    tool_calls: BTreeMap<u64, Map<String, Value>>,
    finish_reason: Option<Value>,
    logprobs: Option<Map<String, Value>>,
}

impl Assembly {
    /// Adds one `chat.completion.chunk`.
    pub fn add(&mut self, chunk: &Value) {
        let Some(o) = chunk.as_object() else {
            return;
        };
        for k in HEAD {
            if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
                self.head.entry(k).or_insert_with(|| v.clone());
            }
        }
        if let Some(u) = o.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(u.clone());
        }
        if let Some(n) = o.get("x_moltgate") {
            self.note = Some(n.clone());
        }
        let choices = o.get("choices").and_then(Value::as_array);
        for c in choices.into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let choice = self.choices.entry(index).or_default();
            if let Some(d) = c.get("delta").and_then(Value::as_object) {
                choice.add_delta(d);
            }
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                choice.finish_reason = Some(f.clone());
            }
            if let Some(l) = c.get("logprobs").and_then(Value::as_object) {
                merge(choice.logprobs.get_or_insert_with(Map::new), l);
            }
        }
    }

    /// The `chat.completion`.
    pub fn finish(self) -> Value {
        let mut out = Map::new();
        for (k, v) in self.head {
            out.insert(k, v);
        }
        out.insert("object".into(), json!("chat.completion"));
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, c)| c.finish(index))
            .collect();
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = self.usage {
            out.insert("usage".into(), u);
        }
        if let Some(n) = self.note {
            out.insert("x_moltgate".into(), n);
        }
        Value::Object(out)
    }
}

impl Choice {
    fn add_delta(&mut self, delta: &Map<String, Value>) {
        for (k, v) in delta {
            match (k.as_str(), v) {
                (_, Value::Null) => {}
                ("tool_calls", Value::Array(calls)) => {
                    for (pos, call) in calls.iter().enumerate() {
                        let Some(call) = call.as_object() else {
                            continue;
                        };
                        let i = call
                            .get("index")
                            .and_then(Value::as_u64)
                            .unwrap_or(pos as u64);
                        merge(self.tool_calls.entry(i).or_default(), call);
                    }
                }
                _ => merge_field(&mut self.message, k, v),
            }
        }
    }

    fn finish(self, index: u64) -> Value {
        let mut message = Map::new();
        let role = self.message.get("role").cloned();
        message.insert("role".into(), role.unwrap_or(json!("assistant")));
        for (k, v) in self.message {
            if k != "role" {
                message.insert(k, v);
            }
        }
        let calls: Vec<Value> = self
            .tool_calls
            .into_values()
            .map(|mut call| {
                call.remove("index");
                if call.contains_key("function") {
                    call.entry("type").or_insert(json!("function"));
                }
                Value::Object(call)
            })
            .collect();
        if !message.contains_key("content") {
            let none = if calls.is_empty() {
                json!("")
            } else {
                Value::Null
            };
            message.insert("content".into(), none);
        }
        if !calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        json!({
            "index": index,
            "message": message,
            "logprobs": self.logprobs.map_or(Value::Null, Value::Object),
            "finish_reason": self.finish_reason.unwrap_or(json!("stop")),
        })
    }
}

/// Merges `from` into `into` by the module's rules.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        merge_field(into, k, v);
    }
}

fn merge_field(into: &mut Map<String, Value>, k: &str, v: &Value) {
    if v.is_null() {
        return;
    }
    let Some(have) = into.get_mut(k) else {
        into.insert(k.to_string(), v.clone());
        return;
    };
    if NAMES.contains(&k) {
        if have.as_str().is_some_and(str::is_empty) {
            *have = v.clone();
        }
        return;
    }
    match (have, v) {
        (Value::String(a), Value::String(b)) => a.push_str(b),
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (Value::Object(a), Value::Object(b)) => merge(a, b),
        (have, v) => *have = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 7, "model": "p/m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn assemble(chunks: &[Value]) -> Value {
        let mut a = Assembly::default();
        for c in chunks {
            a.add(c);
        }
        a.finish()
    }

    #[test]
    fn text_is_joined_in_order_with_the_streams_identity_and_usage() {
        let v = assemble(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hel"}), None),
            chunk(json!({"content": "lo"}), None),
            chunk(json!({}), Some("stop")),
            json!({"id": "c1", "created": 7, "model": "p/m", "choices": [],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
        ]);
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["id"], "c1");
        assert_eq!(v["created"], 7);
        assert_eq!(v["model"], "p/m");
        let c = &v["choices"][0];
        assert_eq!(c["index"], 0);
        assert_eq!(
            c["message"],
            json!({"role": "assistant", "content": "Hello"})
        );
        assert_eq!(c["finish_reason"], "stop");
        assert_eq!(c["logprobs"], Value::Null);
        assert_eq!(v["usage"]["total_tokens"], 5);
        assert!(v.get("x_moltgate").is_none());
    }

    #[test]
    fn tool_calls_merge_by_index_and_names_are_not_repeated() {
        let v = assemble(&[
            chunk(json!({"role": "assistant"}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                    "function": {"name": "shell", "arguments": "{\"cmd\":"}}]}),
                None,
            ),
            // A second call starts while the first is still being written.
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b",
                    "function": {"name": "read", "arguments": ""}}]}),
                None,
            ),
            // Some providers repeat the id and name on every chunk.
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a",
                    "function": {"name": "shell", "arguments": " \"ls\"}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ]);
        let m = &v["choices"][0]["message"];
        assert_eq!(m["content"], Value::Null, "only tool calls: {m}");
        assert_eq!(
            m["tool_calls"],
            json!([
                {"id": "call_a", "type": "function", "function": {"name": "shell", "arguments": "{\"cmd\": \"ls\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{}"}},
            ])
        );
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn choices_reasoning_refusals_and_logprobs_stay_apart() {
        let two = |i: u64, delta: Value| {
            json!({"id": "c1", "choices": [{"index": i, "delta": delta, "finish_reason": null,
                "logprobs": {"content": [{"token": i.to_string()}]}}]})
        };
        let v = assemble(&[
            two(1, json!({"role": "assistant", "content": "B"})),
            two(
                0,
                json!({"role": "assistant", "reasoning_content": "think", "content": "A"}),
            ),
            two(0, json!({"reasoning_content": "ing", "content": "a"})),
            two(1, json!({"refusal": "no"})),
        ]);
        let cs = v["choices"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["index"], 0, "ordered by index");
        assert_eq!(cs[0]["message"]["content"], "Aa");
        assert_eq!(cs[0]["message"]["reasoning_content"], "thinking");
        assert_eq!(cs[0]["logprobs"]["content"].as_array().unwrap().len(), 2);
        assert_eq!(cs[1]["message"]["content"], "B");
        assert_eq!(cs[1]["message"]["refusal"], "no");
        assert_eq!(cs[1]["finish_reason"], "stop", "a clean end without one");
    }

    #[test]
    fn an_empty_answer_has_empty_content_and_the_resume_note_is_kept() {
        let mut last = chunk(json!({}), Some("length"));
        last["x_moltgate"] = json!({"resumed_after": "stream_cut", "served_by": ["a/x", "b/y"]});
        let v = assemble(&[chunk(json!({"role": "assistant"}), None), last]);
        assert_eq!(v["choices"][0]["message"]["content"], "");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["x_moltgate"]["served_by"][1], "b/y");
    }
}
