//! Top-level JSON field surgery without building a `Value` tree.
//!
//! The hot path only needs to read a few top-level fields and replace
//! `model`; parsing whole requests and answers into `serde_json::Value` and
//! back cost a measurable share of CPU per request (see BENCHMARKS.md).
//! Everything else is copied through byte for byte (already validated JSON).
//!
//! [`Fields`] behaves like the `BTreeMap<String, &RawValue>` it replaced
//! (sorted by key, a repeated key keeps its last value, so rewritten objects
//! come out byte for byte as before) but is one `Vec` whose keys borrow from
//! the input: no allocation per key and no tree nodes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One top-level field: key (borrowed unless it had escapes) and raw value.
pub type Field<'a> = (Cow<'a, str>, &'a RawValue);

/// An object's top-level fields, sorted by key, values kept as raw JSON text.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    list: Vec<Field<'a>>,
}

impl<'a> Fields<'a> {
    /// The raw value of the top-level field `key`.
    pub fn get(&self, key: &str) -> Option<&&'a RawValue> {
        self.list
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.list[i].1)
    }

    /// Fields in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.list.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Every top-level value, in key order.
    pub fn values(&self) -> impl Iterator<Item = &'a RawValue> + '_ {
        self.list.iter().map(|(_, v)| *v)
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut list: Vec<Field<'de>> = Vec::with_capacity(16);
        while let Some(k) = map.next_key_seed(KeySeed)? {
            let v: &'de RawValue = map.next_value()?;
            list.push((k, v));
        }
        // Stable sort, then keep the last of equal keys (as a map insert would).
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        Ok(Fields { list })
    }
}

/// Parse a JSON object's top level. `Err` names what is wrong.
pub fn parse_fields(raw: &[u8]) -> Result<Fields<'_>, String> {
    let first = raw.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(raw) {
            Ok(_) => Err("must be a JSON object".into()),
            Err(e) => Err(format!("is not valid JSON: {e}")),
        };
    }
    let mut de = serde_json::Deserializer::from_slice(raw);
    de.deserialize_map(FieldsVisitor)
        .and_then(|f| de.end().map(|()| f))
        .map_err(|e| format!("is not valid JSON: {e}"))
}

/// True when the field is absent or `null`.
pub fn is_absent(f: Option<&&RawValue>) -> bool {
    f.is_none_or(|v| v.get() == "null")
}

/// A raw JSON string's value (`None` if it is not a string).
pub fn str_value(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        // Valid JSON without a backslash: the text between the quotes is the value.
        Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
        _ => serde_json::from_str::<String>(s).ok().map(Cow::Owned),
    }
}

/// Whether `raw` is an array whose every element is an object, and how many
/// elements it has (`None` if it is not an array), without collecting them.
pub fn array_of_objects(raw: &RawValue) -> Option<(usize, bool)> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = (usize, bool);
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let (mut n, mut all) = (0, true);
            while let Some(v) = seq.next_element::<&'de RawValue>()? {
                n += 1;
                all &= v.get().starts_with('{');
            }
            Ok((n, all))
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_seq(V).ok()
}

/// Whether a JSON string's characters can be written between quotes as they
/// are (what `serde_json` would escape: `"`, `\` and control characters).
fn needs_no_escape(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Builds an object from raw values.
pub struct ObjectWriter {
    out: Vec<u8>,
    empty: bool,
}

impl ObjectWriter {
    /// A writer for an object of about `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        let mut out = Vec::with_capacity(n + 64);
        out.push(b'{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.quoted(key);
        self.out.push(b':');
    }

    /// `s` as a JSON string, exactly as `serde_json` writes it.
    fn quoted(&mut self, s: &str) {
        if needs_no_escape(s) {
            self.out.reserve(s.len() + 2);
            self.out.push(b'"');
            self.out.extend_from_slice(s.as_bytes());
            self.out.push(b'"');
        } else {
            serde_json::to_writer(&mut self.out, s).expect("write string");
        }
    }

    /// Add `"key": raw` where `raw` is already valid JSON.
    pub fn raw(&mut self, key: &str, raw: &str) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(raw.as_bytes());
        self
    }

    /// Adds `key` with the string `value`, escaped.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.quoted(value);
        self
    }

    /// The object, closed.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn round_trip_with_replacement() {
        let src = br#" {"model": "x", "messages": [{"role": "user", "content": "h\u00e9 \"q\""}], "n": 1} "#;
        let f = parse_fields(src).unwrap();
        let mut w = ObjectWriter::with_capacity(src.len());
        for (k, v) in f.iter() {
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
        assert!(parse_fields(br#"{"a":1} x"#)
            .unwrap_err()
            .starts_with("is not valid JSON"));
        assert!(is_absent(f.get("nope")));
    }

    /// The same fields, order, values, errors and bytes out as the
    /// `BTreeMap<String, &RawValue>` + `serde_json::to_writer` it replaced.
    #[test]
    fn same_as_a_btreemap_and_serde_json() {
        let cases: &[&[u8]] = &[
            br#"{"z":1,"a":2,"m":{"x":[1,2]},"a":3,"\u0041b":"c\"d","k\ney":null,"":true,"\u00e9":"\u00e9"}"#,
            br#"  {"b" : "x" , "a":[ {} ] }  "#,
            b"{}",
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{1:2}"#,
            br#"{"a":1} {"#,
        ];
        for src in cases {
            let old = serde_json::from_slice::<BTreeMap<String, &RawValue>>(src);
            let new = parse_fields(src);
            match (old, new) {
                (Ok(old), Ok(new)) => {
                    let o: Vec<_> = old.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
                    let n: Vec<_> = new.iter().map(|(k, v)| (k, v.get())).collect();
                    assert_eq!(o, n);
                    for (k, v) in &old {
                        assert_eq!(new.get(k).map(|v| v.get()), Some(v.get()));
                    }
                    let mut a = Vec::from(&b"{"[..]);
                    for (i, (k, v)) in old.iter().enumerate() {
                        if i > 0 {
                            a.push(b',');
                        }
                        serde_json::to_writer(&mut a, k).unwrap();
                        a.push(b':');
                        a.extend_from_slice(v.get().as_bytes());
                    }
                    a.push(b'}');
                    let mut w = ObjectWriter::with_capacity(0);
                    for (k, v) in new.iter() {
                        w.raw(k, v.get());
                    }
                    assert_eq!(
                        String::from_utf8(w.finish()).unwrap(),
                        String::from_utf8(a).unwrap()
                    );
                }
                (Err(old), Err(new)) => assert_eq!(new, format!("is not valid JSON: {old}")),
                (old, new) => panic!("{}: {old:?} vs {new:?}", String::from_utf8_lossy(src)),
            }
        }
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}",
            "tab\t",
            "é\u{7f}",
        ] {
            let mut w = ObjectWriter::with_capacity(0);
            w.string(s, s);
            let k = serde_json::to_string(s).unwrap();
            assert_eq!(
                String::from_utf8(w.finish()).unwrap(),
                format!("{{{k}:{k}}}")
            );
        }
    }

    #[test]
    fn string_values_and_arrays_of_objects() {
        let f =
            parse_fields(br#"{"a":"x y","b":"h\u00e9","c":1,"d":[{},{"r":1}],"e":[{},2],"f":[]}"#)
                .unwrap();
        assert_eq!(str_value(f.get("a").unwrap()).as_deref(), Some("x y"));
        assert!(matches!(
            str_value(f.get("a").unwrap()),
            Some(Cow::Borrowed(_))
        ));
        assert_eq!(str_value(f.get("b").unwrap()).as_deref(), Some("hé"));
        assert_eq!(str_value(f.get("c").unwrap()), None);
        assert_eq!(array_of_objects(f.get("d").unwrap()), Some((2, true)));
        assert_eq!(array_of_objects(f.get("e").unwrap()), Some((2, false)));
        assert_eq!(array_of_objects(f.get("f").unwrap()), Some((0, true)));
        assert_eq!(array_of_objects(f.get("a").unwrap()), None);
    }
}
