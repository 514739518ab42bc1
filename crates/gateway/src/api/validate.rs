//! Input validation of chat requests, with a precise message per rule.
//!
//! * `user` (the OpenAI end-user id): 1–256 characters of `[A-Za-z0-9_@.-]`;
//! * every message's text: not empty, not only whitespace, at most
//!   `max_chars` characters (string content, or the text parts of an array);
//!   a message without content is allowed only where the API allows it
//!   (an assistant turn carrying tool calls);
//! * every message's role is one the API knows ([`ROLES`]);
//! * the sampling and shape parameters have their API types and ranges
//!   ([`params`]): `max_tokens: "lots"` is a 400 here, not an upstream's
//!   puzzling error (or worse, its silent default).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The longest `user` field accepted, in bytes.
pub const MAX_USER_ID: usize = 256;

/// The roles of the chat completions API.
pub const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// What one optional parameter must be.
enum Kind {
    /// An integer in the range.
    Int(i64, i64),
    /// A number in the range.
    Number(f64, f64),
    Bool,
    /// A string, or a list of at most this many strings.
    StringOrList(usize),
    Object,
    Array,
    /// A string or an object.
    StringOrObject,
}

/// The typed parameters of `POST /v1/chat/completions` (others pass as they are).
const PARAMS: &[(&str, Kind)] = &[
    ("max_tokens", Kind::Int(1, 10_000_000)),
    ("max_completion_tokens", Kind::Int(1, 10_000_000)),
    ("n", Kind::Int(1, 128)),
    ("temperature", Kind::Number(0.0, 2.0)),
    ("top_p", Kind::Number(0.0, 1.0)),
    ("presence_penalty", Kind::Number(-2.0, 2.0)),
    ("frequency_penalty", Kind::Number(-2.0, 2.0)),
    ("seed", Kind::Int(i64::MIN, i64::MAX)),
    ("logprobs", Kind::Bool),
    ("top_logprobs", Kind::Int(0, 20)),
    ("parallel_tool_calls", Kind::Bool),
    ("stop", Kind::StringOrList(16)),
    ("tools", Kind::Array),
    ("tool_choice", Kind::StringOrObject),
    ("response_format", Kind::Object),
    ("stream_options", Kind::Object),
    ("logit_bias", Kind::Object),
    ("metadata", Kind::Object),
];

/// Checks every typed parameter `get` finds (`null` counts as absent).
pub fn params<'a>(get: impl Fn(&str) -> Option<&'a RawValue>) -> Result<(), Invalid> {
    use serde_json::Value;
    for (name, kind) in PARAMS {
        let Some(raw) = get(name).filter(|r| r.get() != "null") else {
            continue;
        };
        let v: Value = serde_json::from_str(raw.get())
            .map_err(|_| invalid(*name, format!("\"{name}\" is not valid JSON")))?;
        let ok = match kind {
            Kind::Int(lo, hi) => v.as_i64().is_some_and(|n| (*lo..=*hi).contains(&n)),
            Kind::Number(lo, hi) => v.as_f64().is_some_and(|n| n >= *lo && n <= *hi),
            Kind::Bool => v.is_boolean(),
            Kind::StringOrList(max) => {
                v.is_string()
                    || v.as_array()
                        .is_some_and(|a| a.len() <= *max && a.iter().all(Value::is_string))
            }
            Kind::Object => v.is_object(),
            Kind::Array => v.is_array(),
            Kind::StringOrObject => v.is_string() || v.is_object(),
        };
        if !ok {
            let want = match kind {
                Kind::Int(lo, _) if *lo == i64::MIN => "an integer".to_string(),
                Kind::Int(lo, hi) => format!("an integer from {lo} to {hi}"),
                Kind::Number(lo, hi) => format!("a number from {lo} to {hi}"),
                Kind::Bool => "true or false".into(),
                Kind::StringOrList(max) => format!("a string or a list of at most {max} strings"),
                Kind::Object => "an object".into(),
                Kind::Array => "a list".into(),
                Kind::StringOrObject => "a string or an object".into(),
            };
            return Err(invalid(*name, format!("\"{name}\" must be {want}")));
        }
    }
    Ok(())
}

/// A rejected field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The request field, as the OpenAI `param` names it.
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        param: param.into(),
        message: message.into(),
    }
}

/// Checks the `user` field: a string of at most [`MAX_USER_ID`] bytes.
pub fn user_id(raw: &RawValue) -> Result<(), Invalid> {
    let Ok(s) = serde_json::from_str::<Cow<str>>(raw.get()) else {
        return Err(invalid("user", "\"user\" must be a string"));
    };
    if s.is_empty() {
        return Err(invalid("user", "\"user\" must not be empty"));
    }
    if s.chars().count() > MAX_USER_ID {
        return Err(invalid(
            "user",
            format!("\"user\" is longer than {MAX_USER_ID} characters"),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '@' | '.' | '-')))
    {
        return Err(invalid(
            "user",
            format!("\"user\" contains {c:?}; allowed are letters, digits and _ @ . -"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    role: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow)]
    function_call: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

fn is_null(v: Option<&RawValue>) -> bool {
    v.is_none_or(|v| v.get() == "null")
}

/// Checks the `messages` array (already known to be an array of objects).
pub fn messages(array: &RawValue, max_chars: usize) -> Result<(), Invalid> {
    let list: Vec<Message> = serde_json::from_str(array.get()).map_err(|_| {
        invalid(
            "messages",
            "\"messages\" must be an array of {role, content} objects",
        )
    })?;
    for (i, m) in list.into_iter().enumerate() {
        let at = |what: &str| format!("messages[{i}]{what}");
        let role: Cow<str> = match m.role {
            None => return Err(invalid(at(".role"), format!("{} is missing", at(".role")))),
            Some(r) => serde_json::from_str(r.get())
                .map_err(|_| invalid(at(".role"), format!("{} must be a string", at(".role"))))?,
        };
        if !ROLES.contains(&role.as_ref()) {
            return Err(invalid(
                at(".role"),
                format!(
                    "{} is {role:?}; it must be one of {}",
                    at(".role"),
                    ROLES.join(", ")
                ),
            ));
        }
        let calls = !is_null(m.tool_calls) || !is_null(m.function_call);
        if is_null(m.content) {
            if role == "assistant" && calls {
                continue;
            }
            return Err(invalid(
                at(".content"),
                format!(
                    "{} is missing; every {role} message needs text",
                    at(".content")
                ),
            ));
        }
        let content = m.content.expect("checked above");
        let mut total = 0usize;
        if content.get().starts_with('"') {
            let text: Cow<str> = serde_json::from_str(content.get()).map_err(|_| {
                invalid(
                    at(".content"),
                    format!("{} is not a valid string", at(".content")),
                )
            })?;
            total = check_text(&text, &at(".content"), role == "assistant" && calls)?;
        } else if content.get().starts_with('[') {
            let parts: Vec<Part> = serde_json::from_str(content.get()).map_err(|_| {
                invalid(
                    at(".content"),
                    format!("{} must be a string or a list of parts", at(".content")),
                )
            })?;
            if parts.is_empty() {
                return Err(invalid(
                    at(".content"),
                    format!("{} must not be an empty list", at(".content")),
                ));
            }
            for (j, p) in parts.iter().enumerate() {
                if p.kind.as_deref().unwrap_or("text") == "text" {
                    let Some(t) = &p.text else {
                        return Err(invalid(
                            at(&format!(".content[{j}].text")),
                            format!("{} is missing", at(&format!(".content[{j}].text"))),
                        ));
                    };
                    total += check_text(t, &at(&format!(".content[{j}].text")), false)?;
                }
            }
        } else {
            return Err(invalid(
                at(".content"),
                format!("{} must be a string or a list of parts", at(".content")),
            ));
        }
        if total > max_chars {
            return Err(invalid(
                at(".content"),
                format!(
                    "{} has {total} characters; the limit is {max_chars} (MAX_MESSAGE_CHARS)",
                    at(".content")
                ),
            ));
        }
    }
    Ok(())
}

/// Returns the length in characters.
fn check_text(t: &str, at: &str, may_be_empty: bool) -> Result<usize, Invalid> {
    if !may_be_empty {
        if t.is_empty() {
            return Err(invalid(at, format!("{at} must not be empty")));
        }
        if t.trim().is_empty() {
            return Err(invalid(at, format!("{at} must not be only whitespace")));
        }
    }
    Ok(t.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(json: &str, max: usize) -> Result<(), Invalid> {
        messages(&RawValue::from_string(json.to_string()).unwrap(), max)
    }

    #[test]
    fn good_messages_pass() {
        msgs(r#"[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:x"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},{"role":"tool","tool_call_id":"1","content":"42"}]"#, 100).unwrap();
        msgs(
            r#"[{"role":"user","content":"caf\u00e9 \n SELECT * FROM t; rm -rf /"}]"#,
            100,
        )
        .unwrap();
    }

    #[test]
    fn each_rule_names_the_field() {
        let cases = [
            (
                r#"[{"role":"user","content":""}]"#,
                "messages[0].content must not be empty",
            ),
            (
                r#"[{"role":"user","content":"  \n\t "}]"#,
                "only whitespace",
            ),
            (r#"[{"role":"user"}]"#, "messages[0].content is missing"),
            (r#"[{"content":"x"}]"#, "messages[0].role is missing"),
            (r#"[{"role":1,"content":"x"}]"#, "role must be a string"),
            (
                r#"[{"role":"user","content":"ok"},{"role":"user","content":5}]"#,
                "messages[1].content must be a string",
            ),
            (r#"[{"role":"user","content":[]}]"#, "empty list"),
            (
                r#"[{"role":"user","content":[{"type":"text","text":" "}]}]"#,
                "messages[0].content[0].text must not be only whitespace",
            ),
            (
                r#"[{"role":"user","content":"abcdefghijk"}]"#,
                "11 characters; the limit is 10",
            ),
            (r#"[{"role":"assistant","content":null}]"#, "is missing"),
        ];
        for (json, want) in cases {
            let e = msgs(json, 10).unwrap_err();
            assert!(e.message.contains(want), "{json}: {e:?}");
        }
    }

    #[test]
    fn unknown_roles_are_refused() {
        let e = msgs(r#"[{"role":"root","content":"x"}]"#, 100).unwrap_err();
        assert_eq!(e.param, "messages[0].role");
        assert!(e.message.contains("\"root\""), "{}", e.message);
        msgs(r#"[{"role":"developer","content":"x"}]"#, 100).unwrap();
    }

    #[test]
    fn typed_params_have_their_types_and_ranges() {
        let check = |json: &str| {
            let v: std::collections::HashMap<String, Box<RawValue>> =
                serde_json::from_str(json).unwrap();
            params(|k| v.get(k).map(|b| &**b))
        };
        check(r#"{"max_tokens": 100, "temperature": 0.7, "stop": ["\n"], "tools": [], "tool_choice": "auto", "seed": -5, "n": null}"#).unwrap();
        for (json, param) in [
            (r#"{"max_tokens": "lots"}"#, "max_tokens"),
            (r#"{"max_tokens": 0}"#, "max_tokens"),
            (r#"{"max_tokens": 1.5}"#, "max_tokens"),
            (r#"{"temperature": 3}"#, "temperature"),
            (r#"{"top_p": "0.9"}"#, "top_p"),
            (r#"{"stream_options": true}"#, "stream_options"),
            (
                r#"{"stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}"#,
                "stop",
            ),
            (r#"{"stop": [1]}"#, "stop"),
            (r#"{"logprobs": "yes"}"#, "logprobs"),
            (r#"{"tools": {}}"#, "tools"),
        ] {
            let e = check(json).unwrap_err();
            assert_eq!(e.param, param, "{json}");
            assert!(
                e.message.starts_with(&format!("\"{param}\" must be")),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn characters_not_bytes_are_counted() {
        msgs(r#"[{"role":"user","content":"ééééé"}]"#, 5).unwrap();
        assert!(msgs(r#"[{"role":"user","content":"éééééé"}]"#, 5).is_err());
    }

    #[test]
    fn user_ids() {
        let ok = |s: &str| user_id(&RawValue::from_string(s.into()).unwrap());
        ok(r#""alice@example.com""#).unwrap();
        ok(r#""user_42-a.b""#).unwrap();
        assert!(ok(r#""""#).is_err());
        assert!(ok(r#""a b""#).unwrap_err().message.contains("' '"));
        assert!(ok(r#""<script>""#).is_err());
        assert!(ok("42").is_err());
        assert!(ok(&format!("\"{}\"", "a".repeat(257))).is_err());
        ok(&format!("\"{}\"", "a".repeat(256))).unwrap();
    }
}
