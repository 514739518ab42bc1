//! Top-level JSON field surgery without building a `Value` tree.
//!
//! The hot path only needs to read a few top-level fields and replace
//! `model`; parsing whole requests and answers into `serde_json::Value` and
//! back cost a measurable share of CPU per request (see BENCHMARKS.md).
//! Everything else is copied through byte for byte (already validated JSON).

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// An object's top-level fields, values kept as raw JSON text.
pub type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// Parse a JSON object's top level. `Err` names what is wrong.
pub fn parse_fields(raw: &[u8]) -> Result<Fields<'_>, String> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Ok(_) => Err("must be a JSON object".into()),
            Err(e) => Err(format!("is not valid JSON: {e}")),
        };
    }
    serde_json::from_slice(raw).map_err(|e| format!("is not valid JSON: {e}"))
}

/// True when the field is absent or `null`.
pub fn is_absent(f: Option<&&RawValue>) -> bool {
    f.is_none_or(|v| v.get() == "null")
}

/// Builds an object from raw values.
pub struct ObjectWriter {
    out: Vec<u8>,
    empty: bool,
}

impl ObjectWriter {
    pub fn with_capacity(n: usize) -> Self {
        let mut out = Vec::with_capacity(n + 64);
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Add `"key": raw` where `raw` is already valid JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut self.out, key).expect("write key");
        self.out.push(b':');
        self.out.extend_from_slice(raw.as_bytes());
        self
    }

    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        let v = serde_json::to_string(value).expect("encode string");
        self.raw(key, &v)
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_replacement() {
        let src = br#" {"model": "x", "messages": [{"role": "user", "content": "h\u00e9 \"q\""}], "n": 1} "#;
        let f = parse_fields(src).unwrap();
        let mut w = ObjectWriter::with_capacity(src.len());
        for (k, v) in &f {
            if k != "model" {
                w.raw(k, v.get());
            }
        }
        w.string("model", "p/m\"");
        let out: serde_json::Value = serde_json::from_slice(&w.finish()).unwrap();
        assert_eq!(out["model"], "p/m\"");
        assert_eq!(out["messages"][0]["content"], "hé \"q\"");
        assert_eq!(out["n"], 1);
        assert_eq!(parse_fields(b"[1]").unwrap_err(), "must be a JSON object");
        assert!(parse_fields(b"{oops")
            .unwrap_err()
            .starts_with("is not valid JSON"));
        assert!(is_absent(f.get("nope")));
    }
}
