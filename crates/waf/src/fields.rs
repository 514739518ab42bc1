//! Splits a request into the named fields that injection rules inspect
//! (CRS's "collections"): path, argument names and values (query, form,
//! JSON, XML, multipart), cookies, headers, uploaded file names.

use super::llm;
use super::normalize::Normalized;
use super::request::RequestView;

/// Where a field came from, as a bit so rules can target several at once.
pub mod loc {
    /// Decoded request path (`REQUEST_FILENAME`).
    pub const PATH: u16 = 1 << 0;
    /// Argument names: query, form, JSON keys, multipart part names.
    pub const ARG_NAMES: u16 = 1 << 1;
    /// Argument values: query, form, JSON leaves, XML text, multipart parts.
    pub const ARGS: u16 = 1 << 2;
    /// Cookie names.
    pub const COOKIE_NAMES: u16 = 1 << 3;
    /// Cookie values.
    pub const COOKIES: u16 = 1 << 4;
    /// Any other header value.
    pub const HEADERS: u16 = 1 << 5;
    /// `User-Agent`.
    pub const UA: u16 = 1 << 6;
    /// `Referer`.
    pub const REFERER: u16 = 1 << 7;
    /// Uploaded file names (multipart `filename=`, `X-Filename`).
    pub const FILENAMES: u16 = 1 << 8;
    /// Header names.
    pub const HEADER_NAMES: u16 = 1 << 9;
    /// The whole decoded query string and form body (`QUERY_STRING`,
    /// `REQUEST_BODY`), for rules about name=value pairs.
    pub const QUERY: u16 = 1 << 10;
    /// Set (with `ARGS`/`ARG_NAMES`) on query-string arguments only.
    pub const QUERY_ARGS: u16 = 1 << 11;

    /// The usual injection surface: everything the application reads.
    pub const INPUT: u16 = ARG_NAMES | ARGS | COOKIES | COOKIE_NAMES;
    /// Injection surface plus the path.
    pub const INPUT_PATH: u16 = INPUT | PATH;
    /// Everything, including all headers.
    pub const ALL: u16 = INPUT_PATH | HEADERS | UA | REFERER | FILENAMES | HEADER_NAMES | QUERY;
}

/// Upper bound on fields taken from one request (keeps pathological bodies
/// with millions of `&` linear and small).
pub const MAX_FIELDS: usize = 4096;

/// Header names sent by ordinary clients: their names are not inspected.
fn common_header(lname: &str) -> bool {
    matches!(
        lname,
        "host"
            | "user-agent"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "authorization"
            | "content-type"
            | "content-length"
            | "connection"
            | "cookie"
            | "referer"
            | "origin"
            | "cache-control"
            | "pragma"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "x-request-id"
            | "x-forwarded-for"
            | "x-forwarded-proto"
            | "x-forwarded-host"
            | "x-real-ip"
            | "openai-organization"
            | "openai-project"
            | "openai-beta"
            | "anthropic-version"
            | "x-api-key"
            | "sec-fetch-mode"
            | "sec-fetch-site"
            | "sec-fetch-dest"
            | "sec-ch-ua"
            | "sec-ch-ua-mobile"
            | "sec-ch-ua-platform"
            | "if-none-match"
            | "if-modified-since"
            | "dnt"
            | "priority"
            | "proxy-connection"
            | "range"
    ) || lname.starts_with("x-stainless-")
}

/// One inspected value.
#[derive(Debug, Clone)]
pub struct Field {
    /// `loc::*` bits.
    pub loc: u16,
    /// Human-readable field name for incidents (`ARGS:q`, `REQUEST_HEADERS:User-Agent`).
    pub name: String,
    /// Canonical forms.
    pub norm: Normalized,
    /// True for values that may carry credentials (excerpts are masked).
    pub sensitive: bool,
}

fn push(fields: &mut Vec<Field>, loc: u16, name: String, raw: &str, form: bool, sensitive: bool) {
    if fields.len() >= MAX_FIELDS || raw.is_empty() {
        return;
    }
    fields.push(Field {
        loc,
        name,
        norm: Normalized::of(raw, form),
        sensitive,
    });
}

/// `prefix` + `key`: a field name (cheaper than `format!`, and every
/// field of every request gets one).
pub fn named(prefix: &str, key: &str) -> String {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.push_str(key);
    name
}

/// At most the first 64 characters of `s` (names in incidents stay short).
pub fn short(s: &str) -> &str {
    s.char_indices().nth(64).map_or(s, |(i, _)| &s[..i])
}

/// Splits `a=1&b=2` into decoded-later (name, value) pairs.
fn form_pairs(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, ""),
        })
}

fn push_form(fields: &mut Vec<Field>, s: &str, origin: &str) {
    let extra = if origin == "ARGS_GET" {
        loc::QUERY_ARGS
    } else {
        0
    };
    for (k, v) in form_pairs(s) {
        let kn = super::normalize::canonical_text(k, true);
        let short: String = kn.chars().take(64).collect();
        push(
            fields,
            loc::ARG_NAMES | extra,
            format!("{origin}_NAMES:{short}"),
            k,
            true,
            false,
        );
        push(
            fields,
            loc::ARGS | extra,
            format!("{origin}:{short}"),
            v,
            true,
            false,
        );
    }
}

/// Cookie names and values (values may be session tokens: masked).
fn push_cookies(fields: &mut Vec<Field>, header: &str) {
    for c in header.split(';') {
        let (k, v) = match c.find('=') {
            Some(i) => (&c[..i], &c[i + 1..]),
            None => (c, ""),
        };
        let k = k.trim();
        push(
            fields,
            loc::COOKIE_NAMES,
            named("REQUEST_COOKIES_NAMES:", short(k)),
            k,
            false,
            false,
        );
        push(
            fields,
            loc::COOKIES,
            named("REQUEST_COOKIES:", short(k)),
            v,
            false,
            true,
        );
    }
}

/// Path of an absolute-form target (`http://host/p?q` gives `/p`).
fn path_of(raw_path: &str) -> &str {
    if let Some(i) = raw_path.find("://") {
        let rest = &raw_path[i + 3..];
        return match rest.find('/') {
            Some(j) => &rest[j..],
            None => "/",
        };
    }
    raw_path
}

/// Extracts every inspected field of a request. `llm_route` selects the LLM
/// body policy (model input is not a field).
pub fn extract(req: &RequestView, max_body: usize) -> (Vec<Field>, Option<llm::BodyReport>) {
    // Enough for a typical API request without growing.
    let mut fields = Vec::with_capacity(16);
    push(
        &mut fields,
        loc::PATH,
        "REQUEST_FILENAME".to_string(),
        path_of(req.raw_path()),
        false,
        false,
    );
    push_form(&mut fields, req.raw_query(), "ARGS_GET");
    push(
        &mut fields,
        loc::QUERY,
        "QUERY_STRING".to_string(),
        req.raw_query(),
        true,
        false,
    );

    for (name, value) in &req.headers {
        let lname = super::normalize::ascii_lowercase(name.trim());
        let value = text_of(value);
        // Standard header names are not worth inspecting; unusual ones are.
        if !common_header(&lname) {
            push(
                &mut fields,
                loc::HEADER_NAMES,
                named("REQUEST_HEADERS_NAMES:", name),
                name,
                false,
                false,
            );
        }
        let (loc, sensitive) = match &*lname {
            "cookie" => {
                push_cookies(&mut fields, &value);
                continue;
            }
            "user-agent" => (loc::UA, false),
            "referer" => (loc::REFERER, false),
            n if n.contains("file")
                && (n.contains("filename")
                    || n.contains("file-name")
                    || n.contains("file_name")) =>
            {
                (loc::FILENAMES | loc::HEADERS, false)
            }
            "authorization" | "proxy-authorization" | "x-api-key" | "api-key" => {
                (loc::HEADERS, true)
            }
            _ => (loc::HEADERS, false),
        };
        if !value.is_empty() {
            push(
                &mut fields,
                loc,
                named("REQUEST_HEADERS:", name),
                &value,
                false,
                sensitive,
            );
        }
    }

    let body = &req.body[..req.body.len().min(max_body)];
    let mut report = None;
    if !body.is_empty() {
        let ct = req.content_type().unwrap_or_default();
        let text = text_of(body);
        let path = super::normalize::canonical_text(req.raw_path(), false);
        let path = super::normalize::resolve_path(&path);
        if llm::is_llm_route(&req.method, &path) && (ct.is_empty() || ct.contains("json")) {
            report = Some(llm::extract_fields(&text, &mut fields));
        } else if ct.contains("json") {
            if !json_fields(&text, &mut fields) {
                push(
                    &mut fields,
                    loc::ARGS,
                    "REQUEST_BODY".to_string(),
                    &text,
                    false,
                    false,
                );
            }
        } else if ct.starts_with("multipart/") {
            multipart_fields(req, &text, &mut fields);
        } else if ct.contains("xml") {
            xml_fields(&text, &mut fields);
        } else if ct.is_empty() || ct == "application/x-www-form-urlencoded" {
            let form = text.trim_end_matches(['\r', '\n']);
            push_form(&mut fields, form, "ARGS_POST");
            push(
                &mut fields,
                loc::QUERY,
                "REQUEST_BODY".to_string(),
                form,
                true,
                false,
            );
        } else {
            push(
                &mut fields,
                loc::ARGS,
                "REQUEST_BODY".to_string(),
                &text,
                false,
                false,
            );
        }
    }
    (fields, report)
}

/// Flattens JSON into argument names (keys) and values (leaves).
pub fn json_fields(text: &str, fields: &mut Vec<Field>) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    walk_json(&v, "json", fields, 0);
    true
}

/// Pushes one JSON value's keys and leaves (used by the LLM policy too).
pub fn walk_json(v: &serde_json::Value, path: &str, fields: &mut Vec<Field>, depth: usize) {
    if depth > 64 || fields.len() >= MAX_FIELDS {
        return;
    }
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                let p = format!("{path}.{}", short(k));
                push(
                    fields,
                    loc::ARG_NAMES,
                    named("ARGS_NAMES:", &p),
                    k,
                    false,
                    false,
                );
                walk_json(child, &p, fields, depth + 1);
            }
        }
        serde_json::Value::Array(a) => {
            for child in a {
                walk_json(child, path, fields, depth + 1);
            }
        }
        serde_json::Value::String(s) => {
            push(fields, loc::ARGS, named("ARGS:", path), s, false, false)
        }
        serde_json::Value::Number(n) => push(
            fields,
            loc::ARGS,
            named("ARGS:", path),
            &n.to_string(),
            false,
            false,
        ),
        _ => {}
    }
}

/// XML text nodes and attribute values become argument values (`XML:/*`).
fn xml_fields(text: &str, fields: &mut Vec<Field>) {
    let mut rest = text;
    let mut buf = String::new();
    while !rest.is_empty() && fields.len() < MAX_FIELDS {
        match rest.find('<') {
            Some(i) => {
                buf.push_str(&rest[..i]);
                let tag_end = rest[i..].find('>').map(|j| i + j + 1).unwrap_or(rest.len());
                let tag = &rest[i..tag_end];
                // Attribute values.
                let mut t = tag;
                while let Some(q) = t.find(['"', '\'']) {
                    let quote = &t[q..q + 1];
                    let after = &t[q + 1..];
                    match after.find(quote) {
                        Some(e) => {
                            push(
                                fields,
                                loc::ARGS,
                                "XML:/*@".to_string(),
                                &after[..e],
                                false,
                                false,
                            );
                            t = &after[e + 1..];
                        }
                        None => break,
                    }
                }
                rest = &rest[tag_end..];
            }
            None => {
                buf.push_str(rest);
                rest = "";
            }
        }
    }
    let trimmed = buf.trim();
    push(
        fields,
        loc::ARGS,
        "XML:/*".to_string(),
        trimmed,
        false,
        false,
    );
}

fn multipart_fields(req: &RequestView, text: &str, fields: &mut Vec<Field>) {
    let ct = req.header_str("content-type").unwrap_or_default();
    let boundary = ct
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string());
    let Some(boundary) = boundary.filter(|b| !b.is_empty()) else {
        push(
            fields,
            loc::ARGS,
            "REQUEST_BODY".to_string(),
            text,
            false,
            false,
        );
        return;
    };
    let delim = format!("--{boundary}");
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") || fields.len() >= MAX_FIELDS {
            continue;
        }
        let part = part.trim_start_matches(['\r', '\n']);
        let (head, content) = match part
            .find("\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| part.find("\n\n").map(|i| (i, 2)))
        {
            Some((i, n)) => (&part[..i], &part[i + n..]),
            None => (part, ""),
        };
        let mut name = String::new();
        for line in head.lines() {
            let lower = line.to_ascii_lowercase();
            push(
                fields,
                loc::HEADERS,
                "MULTIPART_PART_HEADERS".to_string(),
                line,
                false,
                false,
            );
            if lower.starts_with("content-disposition") {
                for attr in line.split(';').skip(1) {
                    let attr = attr.trim();
                    if let Some(v) = attr.strip_prefix("name=") {
                        name = v.trim_matches('"').to_string();
                        push(
                            fields,
                            loc::ARG_NAMES,
                            format!("ARGS_NAMES:{name}"),
                            &name,
                            false,
                            false,
                        );
                    } else if let Some(v) = attr.strip_prefix("filename=") {
                        push(
                            fields,
                            loc::FILENAMES,
                            "FILES".to_string(),
                            v.trim_matches('"'),
                            false,
                            false,
                        );
                    }
                }
            }
        }
        let content = content.trim_end_matches(['\r', '\n']);
        let short: String = name.chars().take(64).collect();
        push(
            fields,
            loc::ARGS,
            format!("ARGS:{short}"),
            content,
            false,
            false,
        );
    }
}

/// `bytes` as text, invalid sequences replaced: as `String::from_utf8_lossy`,
/// but valid UTF-8 (nearly every request) takes the standard library's
/// word-at-a-time check instead of the lossy decoder's byte-at-a-time one
/// (a 64 KiB chat body: measured in BENCHMARKS.md).
pub(crate) fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::text_of;
    use std::borrow::Cow;

    #[test]
    fn text_is_read_as_the_lossy_decoder_reads_it() {
        let cases: [&[u8]; 4] = [
            b"plain ascii",
            "caf\u{e9} \u{1F600}".as_bytes(),
            b"bad \xff\xfe end",
            b"cut \xe2\x82",
        ];
        for bytes in cases {
            assert_eq!(text_of(bytes), String::from_utf8_lossy(bytes));
        }
        assert!(matches!(text_of(b"ok"), Cow::Borrowed(_)));
    }
}
