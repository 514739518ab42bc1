//! The rule table. Each category lives in its own module and exports
//! `RULES`: a list of [`Rule`]s that read like a spec (id, category,
//! severity, paranoia level, targets, pattern, why it fires and why normal
//! traffic does not). Rules whose logic is code rather than a pattern
//! (protocol checks, the SQL tokenizer) use [`Matcher::Check`] and are
//! implemented next to their table.
//!
//! Id scheme (moltguard's own, in CRS-like families): 911 method, 913
//! scanner, 920 protocol, 921 protocol attack, 930 LFI, 931 RFI, 932 RCE,
//! 933 PHP, 934 Node/generic, 941 XSS, 942 SQLi, 943 session fixation, 944
//! Java, 945 secret/agent-config probes, 946 LLM body policy.

use super::score::Severity;

pub mod java;
pub mod lfi;
pub mod method;
pub mod node;
pub mod php;
pub mod probes;
pub mod protocol;
pub mod rce;
pub mod rfi;
pub mod scanner;
pub mod session;
pub mod sqli;
pub mod xss;

use std::fmt;

/// Attack category, for incidents and per-category reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// Disallowed HTTP method.
    Method,
    /// Known scanner or attack tool.
    Scanner,
    /// Malformed or smuggling-prone HTTP.
    Protocol,
    /// Header/response splitting, request smuggling payloads.
    ProtocolAttack,
    /// Path traversal and local file inclusion.
    Lfi,
    /// Remote file inclusion.
    Rfi,
    /// Unix shell command injection.
    RceUnix,
    /// Windows cmd/PowerShell command injection.
    RceWindows,
    /// PHP code injection.
    Php,
    /// Node.js / JavaScript server-side injection.
    Node,
    /// Cross-site scripting.
    Xss,
    /// SQL (and NoSQL) injection.
    Sqli,
    /// Session fixation.
    SessionFixation,
    /// Java code injection, deserialisation, Log4Shell.
    Java,
    /// Probes for secrets and agent configuration.
    SecretProbe,
    /// LLM route body policy (structure, types, size).
    LlmBody,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Method => "method",
            Category::Scanner => "scanner",
            Category::Protocol => "protocol",
            Category::ProtocolAttack => "protocol-attack",
            Category::Lfi => "lfi",
            Category::Rfi => "rfi",
            Category::RceUnix => "rce-unix",
            Category::RceWindows => "rce-windows",
            Category::Php => "php",
            Category::Node => "node",
            Category::Xss => "xss",
            Category::Sqli => "sqli",
            Category::SessionFixation => "session-fixation",
            Category::Java => "java",
            Category::SecretProbe => "secret-probe",
            Category::LlmBody => "llm-body",
        })
    }
}

/// Which canonical form of a field a pattern runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// Decoded, lowercased text.
    Text,
    /// Text with path segments resolved.
    Path,
    /// Text with SQL comments removed and whitespace collapsed.
    Sql,
    /// Text shell-folded (quotes and escapes removed).
    Cmd,
}

/// How a rule matches.
#[derive(Debug, Clone, Copy)]
pub enum Matcher {
    /// A regular expression (lowercase; the input is lowercased), compiled
    /// into one linear-time `RegexSet` per transform.
    Regex(&'static str),
    /// Literal substrings (lowercase), compiled into one Aho-Corasick
    /// automaton per transform.
    Literals(&'static [&'static str]),
    /// The base64 encodings of these literals at all three byte alignments
    /// (so they are found inside a larger encoded blob), compiled into the
    /// transform's Aho-Corasick automaton.
    Base64Of(&'static [&'static str]),
    /// Logic implemented in code (protocol checks, SQL tokenizer).
    Check,
}

/// One firewall rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id (see the module doc for the scheme).
    pub id: u32,
    /// Category.
    pub category: Category,
    /// Severity (anomaly points).
    pub severity: Severity,
    /// Lowest paranoia level at which the rule is active (1–4).
    pub paranoia: u8,
    /// `fields::loc` bits the rule inspects.
    pub targets: u16,
    /// Canonical form the pattern runs on.
    pub transform: Transform,
    /// The pattern.
    pub matcher: Matcher,
    /// What it catches, and why normal traffic does not trip it.
    pub description: &'static str,
}

/// Short constructor for pattern rules, so tables stay one rule per block.
#[allow(clippy::too_many_arguments)]
pub const fn re(
    id: u32,
    category: Category,
    severity: Severity,
    paranoia: u8,
    targets: u16,
    transform: Transform,
    pattern: &'static str,
    description: &'static str,
) -> Rule {
    Rule {
        id,
        category,
        severity,
        paranoia,
        targets,
        transform,
        matcher: Matcher::Regex(pattern),
        description,
    }
}

/// Short constructor for literal-list rules.
#[allow(clippy::too_many_arguments)]
pub const fn lit(
    id: u32,
    category: Category,
    severity: Severity,
    paranoia: u8,
    targets: u16,
    transform: Transform,
    literals: &'static [&'static str],
    description: &'static str,
) -> Rule {
    Rule {
        id,
        category,
        severity,
        paranoia,
        targets,
        transform,
        matcher: Matcher::Literals(literals),
        description,
    }
}

/// The literal strings a literal-style matcher contributes to an automaton.
pub fn literal_patterns(m: &Matcher) -> Vec<String> {
    match m {
        Matcher::Literals(l) => l.iter().map(|s| s.to_string()).collect(),
        Matcher::Base64Of(l) => l
            .iter()
            .flat_map(|s| base64_fragments(s.as_bytes()))
            .collect(),
        Matcher::Regex(_) | Matcher::Check => Vec::new(),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    out
}

/// For each byte alignment, the part of `base64(prefix + literal + suffix)`
/// that does not depend on the surrounding bytes, lowercased (fields are
/// matched in lowercase; a 6+ character fragment stays specific).
pub fn base64_fragments(literal: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for align in 0..3 {
        let variants: Vec<String> = [0x00u8, 0xff]
            .iter()
            .flat_map(|&p| [0x00u8, 0xff].map(move |s| (p, s)))
            .map(|(p, s)| {
                let mut v = vec![p; align];
                v.extend_from_slice(literal);
                v.extend_from_slice(&[s; 3]);
                base64_encode(&v)
            })
            .collect();
        let first = variants[0].as_bytes();
        let stable: Vec<bool> = (0..first.len())
            .map(|i| {
                variants
                    .iter()
                    .all(|v| v.as_bytes().get(i) == Some(&first[i]))
            })
            .collect();
        // Longest run of positions identical across all surroundings.
        let (mut best, mut cur_start, mut best_range) = (0, 0, (0, 0));
        for i in 0..=stable.len() {
            if i < stable.len() && stable[i] {
                continue;
            }
            if i - cur_start > best {
                best = i - cur_start;
                best_range = (cur_start, i);
            }
            cur_start = i + 1;
        }
        if best >= 6 {
            out.push(variants[0][best_range.0..best_range.1].to_ascii_lowercase());
        }
    }
    out
}

/// Short constructor for code-implemented rules.
pub const fn code(
    id: u32,
    category: Category,
    severity: Severity,
    paranoia: u8,
    targets: u16,
    description: &'static str,
) -> Rule {
    Rule {
        id,
        category,
        severity,
        paranoia,
        targets,
        transform: Transform::Text,
        matcher: Matcher::Check,
        description,
    }
}

/// Every rule, all paranoia levels.
pub fn all() -> Vec<Rule> {
    [
        method::RULES,
        scanner::RULES,
        protocol::RULES,
        lfi::RULES,
        rfi::RULES,
        rce::RULES,
        php::RULES,
        node::RULES,
        xss::RULES,
        sqli::RULES,
        session::RULES,
        java::RULES,
        probes::RULES,
        super::llm::RULES,
    ]
    .concat()
}

/// The rule table as crates/waf/WAF.md shows it (one markdown row per rule,
/// by id); a test keeps the document equal to it.
pub fn table_markdown() -> String {
    use crate::fields::loc;
    let targets = |t: u16| -> String {
        if t == loc::ALL {
            return "request".to_string();
        }
        let names = [
            (loc::PATH, "path"),
            (loc::ARG_NAMES, "arg names"),
            (loc::ARGS, "args"),
            (loc::COOKIE_NAMES, "cookie names"),
            (loc::COOKIES, "cookies"),
            (loc::HEADERS, "headers"),
            (loc::UA, "UA"),
            (loc::REFERER, "referer"),
            (loc::FILENAMES, "file names"),
            (loc::HEADER_NAMES, "header names"),
        ];
        let named: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| t & bit != 0)
            .map(|(_, n)| *n)
            .collect();
        named.join(", ")
    };
    let mut out = String::from(
        "| id | category | severity | PL | kind | inspects | catches / why not a false positive |\n|---|---|---|---|---|---|---|\n",
    );
    let mut rules = all();
    rules.sort_by_key(|r| r.id);
    for r in rules {
        let kind = match r.matcher {
            Matcher::Regex(_) => format!("regex/{:?}", r.transform).to_lowercase(),
            Matcher::Literals(l) => format!("{} literals", l.len()),
            Matcher::Base64Of(l) => format!("base64 of {} literals", l.len()),
            Matcher::Check => "code".to_string(),
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.category,
            r.severity,
            r.paranoia,
            kind,
            targets(r.targets),
            r.description.replace('|', "\\|")
        );
    }
    out
}
