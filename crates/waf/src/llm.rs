//! The LLM-route body policy.
//!
//! Chat messages legitimately contain SQL, shell, `<script>`, `../` and code
//! of every kind, so on the OpenAI-compatible inference routes the fields
//! that carry model input (message content, prompts, tool definitions and
//! tool-call arguments) are *not* matched against injection rules. Instead
//! the body must be a JSON object whose well-known fields have the right
//! types and sane sizes. Every other field (`model`, `user`, `metadata`,
//! message `role` and `name`, …) is still inspected like any argument.

use serde_json::Value;

use super::fields::{self, loc, Field};
use super::rules::{code, Category, Rule};
use super::score::Severity;

/// Routes whose JSON body carries model input (with `/v1`, and without it
/// for clients whose base URL is the gateway's root).
pub const LLM_ROUTES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
];

/// Top-level keys whose whole subtree is model input or a schema for it.
const EXEMPT_KEYS: &[&str] = &[
    "prompt",
    "input",
    "instructions",
    "system",
    "tools",
    "functions",
    "response_format",
    "text",
    "stop",
    "suffix",
    "prediction",
];

/// Maximum JSON nesting accepted on LLM routes.
pub const MAX_DEPTH: usize = 64;
/// Maximum number of messages in one request.
pub const MAX_MESSAGES: usize = 10_000;
/// Maximum length of the `model` string.
pub const MAX_MODEL_LEN: usize = 256;

/// LLM body policy rules.
#[rustfmt::skip]
pub const RULES: &[Rule] = &[
    code(946100, Category::LlmBody, Severity::Critical, 1, loc::ALL,
        "LLM route body is not valid JSON: every OpenAI-compatible SDK sends JSON."),
    code(946110, Category::LlmBody, Severity::Critical, 1, loc::ALL,
        "LLM route body is not a JSON object (arrays/scalars are never valid requests)."),
    code(946120, Category::LlmBody, Severity::Critical, 1, loc::ALL,
        "A well-known field has the wrong type (model not a string, messages not an array of objects, stream not a boolean...)."),
    code(946130, Category::LlmBody, Severity::Critical, 1, loc::ALL,
        "Body nesting deeper than 64 levels or more than 10,000 messages: parser-exhaustion shapes, never produced by clients."),
];

/// A policy violation found while walking the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Rule id (946xxx).
    pub rule_id: u32,
    /// Field path.
    pub field: String,
    /// What was wrong.
    pub detail: String,
}

/// What the LLM policy found in one body.
#[derive(Debug, Clone, Default)]
pub struct BodyReport {
    /// Structure/type violations.
    pub violations: Vec<Violation>,
}

/// Whether a (normalised) path and method select the LLM body policy.
pub fn is_llm_route(method: &str, path: &str) -> bool {
    method.trim().eq_ignore_ascii_case("POST")
        && LLM_ROUTES.iter().any(|r| path.trim_end_matches('/') == *r)
}

fn depth_of(v: &Value, limit: usize) -> usize {
    // Iterative walk so hostile nesting cannot blow the stack.
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if max > limit {
            return max;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    max
}

fn violation(report: &mut BodyReport, rule_id: u32, field: &str, detail: &str) {
    report.violations.push(Violation {
        rule_id,
        field: field.to_string(),
        detail: detail.to_string(),
    });
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Validates an LLM route body and pushes its non-model-input fields.
pub fn extract_fields(text: &str, out: &mut Vec<Field>) -> BodyReport {
    let mut report = BodyReport::default();
    // serde_json has its own recursion limit (128), so parsing is safe.
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            violation(&mut report, 946100, "REQUEST_BODY", &e.to_string());
            return report;
        }
    };
    let Value::Object(map) = &value else {
        violation(&mut report, 946110, "REQUEST_BODY", type_name(&value));
        return report;
    };
    if depth_of(&value, MAX_DEPTH) > MAX_DEPTH {
        violation(&mut report, 946130, "REQUEST_BODY", "nesting too deep");
        return report;
    }
    for (key, v) in map {
        let field = fields::named("json.", fields::short(key));
        let bad_type = match key.as_str() {
            "model" => match v {
                Value::String(s) => s.len() > MAX_MODEL_LEN,
                _ => true,
            },
            "stream" | "logprobs" | "parallel_tool_calls" | "store" | "echo" => {
                !matches!(v, Value::Bool(_) | Value::Null)
            }
            "temperature" | "top_p" | "presence_penalty" | "frequency_penalty" => {
                !matches!(v, Value::Number(_) | Value::Null)
            }
            "max_tokens"
            | "max_completion_tokens"
            | "max_output_tokens"
            | "n"
            | "seed"
            | "top_logprobs"
            | "dimensions" => !(v.is_u64() || v.is_i64() || v.is_null()),
            "messages" => {
                check_messages(v, &mut report, out);
                false
            }
            _ => false,
        };
        if bad_type {
            violation(&mut report, 946120, &field, type_name(v));
            continue;
        }
        if key == "messages" || EXEMPT_KEYS.contains(&key.as_str()) {
            continue;
        }
        fields::walk_json(v, &field, out, 1);
    }
    report
}

fn check_messages(v: &Value, report: &mut BodyReport, out: &mut Vec<Field>) {
    let Value::Array(msgs) = v else {
        violation(report, 946120, "json.messages", type_name(v));
        return;
    };
    if msgs.len() > MAX_MESSAGES {
        violation(report, 946130, "json.messages", "too many messages");
        return;
    }
    for (i, m) in msgs.iter().enumerate() {
        let Value::Object(m) = m else {
            violation(report, 946120, &format!("json.messages[{i}]"), type_name(m));
            return;
        };
        match m.get("role") {
            Some(Value::String(_)) | None => {}
            Some(other) => {
                violation(
                    report,
                    946120,
                    &format!("json.messages[{i}].role"),
                    type_name(other),
                );
                return;
            }
        }
        if let Some(c) = m.get("content") {
            if !matches!(c, Value::String(_) | Value::Array(_) | Value::Null) {
                violation(
                    report,
                    946120,
                    &format!("json.messages[{i}].content"),
                    type_name(c),
                );
                return;
            }
        }
        // Only the routing metadata of a message is inspected; content,
        // tool calls and their arguments are model input.
        for (key, path) in [
            ("role", "json.messages.role"),
            ("name", "json.messages.name"),
            ("tool_call_id", "json.messages.tool_call_id"),
        ] {
            if let Some(v) = m.get(key) {
                fields::walk_json(v, path, out, 1);
            }
        }
    }
}
