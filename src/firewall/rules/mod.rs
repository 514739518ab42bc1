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
