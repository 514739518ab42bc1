//! OWASP CRS regression corpus runner, shared by `tests/firewall_corpus.rs`
//! and `examples/waf_corpus.rs`.
//!
//! Each go-ftw stage is turned into the raw bytes a client would send
//! (or taken verbatim from `encoded_request`), then handed to a [`Target`]:
//! in-process (`Firewall::inspect` on the tolerant re-parse of those bytes)
//! or over raw TCP against a running server (403 = blocked), so malformed
//! requests reach the server byte-exact. Status-code mode: an attack stage
//! passes when blocked, a must-not-fire stage when not blocked.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use moltguard_waf::{Firewall, RequestView, Verdict};
use serde_norway::Value;

/// Corpus root, resolved next to the repository (CI lays `shared/` beside the clone).
pub fn corpus_root() -> PathBuf {
    crate::repo_root().join("../shared/corpora/crs-regression")
}

/// What a stage expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `expect_ids`: should be blocked.
    Attack,
    /// `no_expect_ids`: must not be blocked.
    Benign,
    /// Checks status or response content only: counted separately.
    Other,
}

/// One stage, ready to send.
#[derive(Debug, Clone)]
pub struct Stage {
    pub rule_id: String,
    pub test_id: String,
    pub family: &'static str,
    pub paranoia: Option<u8>,
    pub expect: Expect,
    pub raw: Vec<u8>,
}

/// Rule-id family → category label.
pub fn family(rule_id: &str) -> &'static str {
    match rule_id.get(..3).unwrap_or("") {
        "911" => "911 method",
        "913" => "913 scanner",
        "920" | "921" => "920/921 protocol",
        "922" => "922 multipart",
        "930" => "930 LFI",
        "931" => "931 RFI",
        "932" => "932 RCE",
        "933" => "933 PHP",
        "934" => "934 generic/Node",
        "941" => "941 XSS",
        "942" => "942 SQLi",
        "943" => "943 session fixation",
        "944" => "944 Java",
        _ => "other",
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping()
        .and_then(|m| m.get(Value::String(key.to_string())))
}

fn non_empty_list(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Sequence(s)) => !s.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    }
}

/// Serialises a go-ftw `input` into request bytes (as go-ftw would send them).
pub fn build_raw(input: &Value) -> Vec<u8> {
    if let Some(enc) = get(input, "encoded_request").and_then(scalar) {
        let cleaned: String = enc.chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) {
            return bytes;
        }
    }
    let method = get(input, "method")
        .and_then(scalar)
        .unwrap_or_else(|| "GET".to_string());
    let uri = get(input, "uri")
        .and_then(scalar)
        .unwrap_or_else(|| "/".to_string());
    let version = get(input, "version")
        .and_then(scalar)
        .unwrap_or_else(|| "HTTP/1.1".to_string());
    let autocomplete = get(input, "autocomplete_headers")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let data = get(input, "data").and_then(scalar).unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Mapping(m)) = get(input, "headers") {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (scalar(k), scalar(v)) {
                headers.push((k, v));
            }
        }
    }
    let has = |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if autocomplete {
        if !data.is_empty()
            && !has(&headers, "content-length")
            && !has(&headers, "transfer-encoding")
        {
            headers.push(("Content-Length".to_string(), data.len().to_string()));
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".to_string(), "close".to_string()));
        }
    }
    let mut raw = Vec::new();
    raw.extend_from_slice(format!("{method} {uri} {version}\r\n").as_bytes());
    for (k, v) in &headers {
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(data.as_bytes());
    raw
}

/// Tolerant HTTP/1.x parser: never fails, keeps whatever it can.
pub fn parse_raw(raw: &[u8]) -> RequestView {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => (raw, &raw[raw.len()..]),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or("");
    let mut parts: Vec<&str> = line.split(' ').filter(|p| !p.is_empty()).collect();
    let version = match parts.last() {
        Some(v) if v.starts_with("HTTP/") && parts.len() >= 2 => {
            let v = v.to_string();
            parts.pop();
            v
        }
        _ => String::new(),
    };
    let method = if parts.is_empty() {
        String::new()
    } else {
        parts.remove(0).to_string()
    };
    let target = parts.join(" ");
    let mut view = RequestView::new(method, target);
    view.version = version;
    for l in lines {
        match l.split_once(':') {
            Some((k, v)) => view
                .headers
                .push((k.to_string(), v.trim_start().as_bytes().to_vec())),
            None if !l.is_empty() => view.headers.push((l.to_string(), Vec::new())),
            None => {}
        }
    }
    let chunked = view
        .header_str("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    // HTTP/1.x framing, as the server in front of the firewall applies it:
    // a chunked body is de-chunked; otherwise Content-Length says how many
    // bytes belong to this request (left as sent when it is not a number);
    // without either header a request has no body (RFC 9112 §6.3), and any
    // bytes after the head belong to the next request on the connection.
    let content_length = view
        .header_str("content-length")
        .map(|v| v.trim().to_string());
    let body = if chunked {
        dechunk(body)
    } else if let Some(cl) = content_length {
        match cl.parse::<usize>() {
            Ok(n) => body[..n.min(body.len())].to_vec(),
            Err(_) => body.to_vec(),
        }
    } else if view.version.starts_with("HTTP/1") {
        Vec::new()
    } else {
        body.to_vec()
    };
    view.body = body.into();
    view
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..i]);
        let size_str = size_str.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_str, 16) else {
            out.extend_from_slice(b);
            break;
        };
        b = &b[i + 2..];
        if size == 0 {
            break;
        }
        let take = size.min(b.len());
        out.extend_from_slice(&b[..take]);
        b = &b[take..];
        b = b.strip_prefix(b"\r\n").unwrap_or(b);
    }
    out
}

/// Loads every REQUEST-* stage.
pub fn load() -> Result<Vec<Stage>, String> {
    let root = corpus_root();
    let mut pl: BTreeMap<String, Option<u8>> = BTreeMap::new();
    let tsv = std::fs::read_to_string(root.join("rule-paranoia-levels.tsv"))
        .map_err(|e| format!("{}: {e}", root.display()))?;
    for line in tsv.lines().skip(1) {
        let mut f = line.split('\t');
        if let (Some(id), Some(level)) = (f.next(), f.next()) {
            pl.insert(id.to_string(), level.trim().parse().ok());
        }
    }
    let tests = root.join("tests/regression/tests");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&tests).map_err(|e| e.to_string())? {
        let dir = dir.map_err(|e| e.to_string())?.path();
        if !dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("REQUEST-"))
        {
            continue;
        }
        for f in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
            let f = f.map_err(|e| e.to_string())?.path();
            if f.extension().is_some_and(|e| e == "yaml") {
                files.push(f);
            }
        }
    }
    files.sort();
    let mut stages = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| e.to_string())?;
        if text.trim().is_empty() {
            continue; // 920539.yaml
        }
        let doc: Value =
            serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let Some(rule_id) = get(&doc, "rule_id").and_then(scalar) else {
            continue;
        };
        let Some(Value::Sequence(tests)) = get(&doc, "tests") else {
            continue;
        };
        for t in tests {
            let test_id = get(t, "test_id").and_then(scalar).unwrap_or_default();
            let Some(Value::Sequence(st)) = get(t, "stages") else {
                continue;
            };
            for s in st {
                let s = get(s, "stage").unwrap_or(s);
                let (Some(input), Some(output)) = (get(s, "input"), get(s, "output")) else {
                    continue;
                };
                let log = get(output, "log").unwrap_or(output);
                let expect = if non_empty_list(get(log, "expect_ids")) {
                    Expect::Attack
                } else if non_empty_list(get(log, "no_expect_ids")) {
                    Expect::Benign
                } else {
                    Expect::Other
                };
                stages.push(Stage {
                    rule_id: rule_id.clone(),
                    test_id: test_id.clone(),
                    family: family(&rule_id),
                    paranoia: pl.get(&rule_id).copied().flatten(),
                    expect,
                    raw: build_raw(input),
                });
            }
        }
    }
    Ok(stages)
}

/// The system under test.
pub trait Target {
    /// Sends one request; returns whether it was blocked (403).
    fn blocked(&mut self, raw: &[u8]) -> bool;
}

/// In-process target: `Firewall::inspect`.
pub struct InProcess(pub Firewall);

impl Target for InProcess {
    fn blocked(&mut self, raw: &[u8]) -> bool {
        matches!(self.0.inspect(&parse_raw(raw)), Verdict::Block(_))
    }
}

/// Raw-TCP HTTP target (e.g. a running moltgate): sends the bytes verbatim,
/// reads the status line, 403 = blocked.
pub struct Http {
    pub addr: SocketAddr,
}

impl Target for Http {
    fn blocked(&mut self, raw: &[u8]) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_secs(3)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
        if s.write_all(raw).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while got.len() < 12 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).split(' ').nth(1) == Some("403")
    }
}

/// Counts for one family.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub attacks: usize,
    pub detected: usize,
    pub benign: usize,
    pub false_pos: usize,
    pub other: usize,
    pub other_blocked: usize,
}

impl Tally {
    pub fn detection(&self) -> f64 {
        pct(self.detected, self.attacks)
    }
    pub fn fp_rate(&self) -> f64 {
        pct(self.false_pos, self.benign)
    }
    fn add(&mut self, o: &Tally) {
        self.attacks += o.attacks;
        self.detected += o.detected;
        self.benign += o.benign;
        self.false_pos += o.false_pos;
        self.other += o.other;
        self.other_blocked += o.other_blocked;
    }
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// Result of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub by_family: BTreeMap<&'static str, Tally>,
    pub misses: Vec<String>,
    pub false_positives: Vec<String>,
}

impl Report {
    pub fn total(&self) -> Tally {
        let mut t = Tally::default();
        for v in self.by_family.values() {
            t.add(v);
        }
        t
    }
}

/// Runs the stages selected by `filter` against `target`.
pub fn run(stages: &[Stage], target: &mut dyn Target, filter: impl Fn(&Stage) -> bool) -> Report {
    let mut r = Report::default();
    for s in stages.iter().filter(|s| filter(s)) {
        let blocked = target.blocked(&s.raw);
        let t = r.by_family.entry(s.family).or_default();
        let tag = format!("{}-{}", s.rule_id, s.test_id);
        match s.expect {
            Expect::Attack => {
                t.attacks += 1;
                if blocked {
                    t.detected += 1;
                } else {
                    r.misses.push(tag);
                }
            }
            Expect::Benign => {
                t.benign += 1;
                if blocked {
                    t.false_pos += 1;
                    r.false_positives.push(tag);
                }
            }
            Expect::Other => {
                t.other += 1;
                if blocked {
                    t.other_blocked += 1;
                }
            }
        }
    }
    r
}

/// Markdown table of one or more runs side by side.
pub fn table(columns: &[(&str, &Report)]) -> String {
    let mut out = String::new();
    out.push_str("| category |");
    for (name, _) in columns {
        out.push_str(&format!(" {name}: detected | {name}: false positives |"));
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in columns {
        out.push_str("---:|---:|");
    }
    out.push('\n');
    let mut fams: Vec<&str> = columns
        .iter()
        .flat_map(|(_, r)| r.by_family.keys().copied())
        .collect();
    fams.sort();
    fams.dedup();
    let row = |label: &str, get: &dyn Fn(&Report) -> Tally| {
        let mut s = format!("| {label} |");
        for (_, r) in columns {
            let t = get(r);
            s.push_str(&format!(
                " {}/{} ({:.1}%) | {}/{} ({:.1}%) |",
                t.detected,
                t.attacks,
                t.detection(),
                t.false_pos,
                t.benign,
                t.fp_rate()
            ));
        }
        s.push('\n');
        s
    };
    for f in fams {
        out.push_str(&row(f, &|r: &Report| {
            r.by_family.get(f).copied().unwrap_or_default()
        }));
    }
    out.push_str(&row("**total**", &|r: &Report| r.total()));
    out
}

/// For each stage tagged `rule-test` in `tags`: the rules that fired.
pub fn explain(stages: &[Stage], fw: &Firewall, tags: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in stages {
        let tag = format!("{}-{}", s.rule_id, s.test_id);
        if !tags.contains(&tag) {
            continue;
        }
        let view = parse_raw(&s.raw);
        let line = match fw.inspect(&view) {
            Verdict::Block(b) => b
                .matches
                .iter()
                .map(|m| format!("{}@{}[{}]", m.rule_id, m.field, m.excerpt))
                .collect::<Vec<_>>()
                .join(" ; "),
            Verdict::Allow => "allow".to_string(),
        };
        out.push(format!("{tag} {:?}: {line}", s.expect));
    }
    out
}
