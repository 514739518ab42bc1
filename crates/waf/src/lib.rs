//! Request firewall (a mini-WAF in the spirit of the OWASP Core Rule Set).
//!
//! Pipeline: [`RequestView`] → protocol and method checks on the raw request
//! → [`fields::extract`] splits it into named fields (the LLM body policy in
//! [`llm`] keeps model input out of them) → [`normalize`] produces canonical
//! forms → all pattern rules run at once per form (one `RegexSet` plus one
//! Aho-Corasick automaton each) and the SQL tokenizer runs on argument
//! values → [`score`] adds severities → [`Verdict`].
//!
//! Everything is linear in the request size: the normaliser is single-pass
//! with a bounded number of URL-decoding rounds, the regex engine is
//! automaton-based, and bodies and field counts are capped.

pub mod fields;
pub mod llm;
mod memo;
pub mod normalize;
pub mod request;
pub mod rules;
pub mod score;

use std::net::IpAddr;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{RegexSet, RegexSetBuilder};
use regex::Regex;

pub use request::RequestView;
pub use rules::{Category, Rule, Transform};
pub use score::Severity;

use fields::Field;
use rules::Matcher;
use score::Score;

/// Firewall settings. This crate reads no environment: moltgate builds
/// them from its `[security]` config (`SECURITY_FIREWALL`,
/// `SECURITY_STRICT_MODE`, `SECURITY_PARANOIA_LEVEL`).
#[derive(Debug, Clone)]
pub struct FirewallConfig {
    /// On by default. Off means every request is allowed.
    pub enabled: bool,
    /// Raises the paranoia level to at least 2.
    pub strict: bool,
    /// Paranoia level 1–4: higher enables more (and noisier) rules.
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked.
    pub threshold: u32,
    /// Maximum number of request headers.
    pub max_header_count: usize,
    /// Maximum size of one header (name + value), bytes.
    pub max_header_bytes: usize,
    /// Maximum body size, bytes; larger bodies are blocked.
    pub max_body_bytes: usize,
    /// Methods the gateway serves; anything else is blocked.
    pub allowed_methods: Vec<String>,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strict: false,
            paranoia: score::DEFAULT_PARANOIA,
            threshold: score::DEFAULT_THRESHOLD,
            max_header_count: 100,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            allowed_methods: ["GET", "HEAD", "POST", "OPTIONS", "PUT", "PATCH", "DELETE"]
                .iter()
                .map(|m| m.to_string())
                .collect(),
        }
    }
}

impl FirewallConfig {
    /// Paranoia level in force (strict mode means at least 2).
    pub fn effective_paranoia(&self) -> u8 {
        let pl = self.paranoia.clamp(1, 4);
        if self.strict {
            pl.max(score::STRICT_PARANOIA)
        } else {
            pl
        }
    }
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Rule id.
    pub rule_id: u32,
    /// Rule category.
    pub category: Category,
    /// Rule severity.
    pub severity: Severity,
    /// Field that matched (`ARGS:q`, `REQUEST_HEADERS:User-Agent`, `REQUEST_LINE`).
    pub field: String,
    /// Bounded, redacted excerpt around the match.
    pub excerpt: String,
}

/// A blocked request: everything an incident record needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The most severe (then first) matching rule.
    pub rule_id: u32,
    /// Its category.
    pub category: Category,
    /// Total anomaly score.
    pub score: u32,
    /// Field that matched the leading rule.
    pub matched_field: String,
    /// Redacted excerpt for the leading rule.
    pub redacted_excerpt: String,
    /// All matches, in evaluation order.
    pub matches: Vec<Match>,
    /// Client address, copied from the request.
    pub client_ip: Option<IpAddr>,
    /// Request id, copied from the request.
    pub request_id: Option<String>,
}

/// The sets match bytes with ASCII classes and case folding: the
/// normaliser has already folded full-width forms and case, and Unicode
/// `\w`/`\s`/`(?i)` classes made the compiled sets about 45 MB instead of
/// about 11. Word boundaries stay Unicode-aware, so `über(` is not a word
/// boundary before `ber(`.
fn set_pattern(p: &str) -> String {
    p.replace(r"\b", r"(?u:\b)").replace(r"\B", r"(?u:\B)")
}

/// The firewall's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through (the score stayed below the threshold).
    Allow,
    /// Answer 403, record an incident, count toward the ban threshold.
    Block(Box<Block>),
}

impl Verdict {
    /// True for [`Verdict::Block`].
    pub fn is_block(&self) -> bool {
        matches!(self, Verdict::Block(_))
    }
}

/// Building the firewall failed (a rule pattern did not compile).
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A regex in the rule table is invalid.
    #[error("firewall rule pattern: {0}")]
    Regex(#[from] regex::Error),
    /// A literal set could not be compiled.
    #[error("firewall literal set: {0}")]
    Literals(#[from] aho_corasick::BuildError),
}

struct CompiledSet {
    transform: Transform,
    /// Union of the targets of the rules in the set: fields outside it skip the set.
    targets: u16,
    set: RegexSet,
    /// Index into `Firewall::rules` for each pattern of the set.
    rule_idx: Vec<usize>,
}

struct CompiledLiterals {
    transform: Transform,
    targets: u16,
    ac: AhoCorasick,
    rule_idx: Vec<usize>,
}

/// The compiled firewall. Build once, share (`Arc`) across requests.
pub struct Firewall {
    cfg: FirewallConfig,
    rules: Vec<Rule>,
    sets: Vec<CompiledSet>,
    literals: Vec<CompiledLiterals>,
    /// Every pattern of every transform in one set / automaton, for fields
    /// whose canonical forms all coincide (one scan instead of four).
    uniform_set: Option<CompiledSet>,
    uniform_literals: Option<CompiledLiterals>,
    /// Individually compiled regexes, built lazily only to locate an excerpt.
    singles: Vec<OnceLock<Option<Regex>>>,
    /// `(rule id, index into rules)`, sorted by id: code-implemented rules
    /// report by id on every request.
    by_id: Vec<(u32, usize)>,
    /// This firewall's key in the memory of clean values ([`memo`]).
    id: u64,
}

impl std::fmt::Debug for Firewall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Firewall")
            .field("cfg", &self.cfg)
            .field("rules", &self.rules.len())
            .finish()
    }
}

const TRANSFORMS: [Transform; 4] = [
    Transform::Text,
    Transform::Path,
    Transform::Sql,
    Transform::Cmd,
];

fn form(norm: &normalize::Normalized, t: Transform) -> &str {
    match t {
        Transform::Text => &norm.text,
        Transform::Path => norm.path(),
        Transform::Sql => norm.sql(),
        Transform::Cmd => norm.cmd(),
    }
}

/// Upper bound on an excerpt, characters.
pub const EXCERPT_MAX: usize = 96;

impl Firewall {
    /// Compiles the rules active at the configured paranoia level.
    ///
    /// # Examples
    ///
    /// ```
    /// use moltguard_waf::{Category, Firewall, FirewallConfig, RequestView, Verdict};
    ///
    /// let fw = Firewall::new(FirewallConfig::default())?;
    ///
    /// let body = r#"{"model":"llama-3","messages":[{"role":"user","content":"hi"}]}"#;
    /// let chat = RequestView::new("POST", "/v1/chat/completions")
    ///     .header("Host", "gateway.local")
    ///     .header("Content-Type", "application/json")
    ///     .header("Content-Length", body.len().to_string())
    ///     .body(body);
    /// assert_eq!(fw.inspect(&chat), Verdict::Allow);
    ///
    /// let traversal = RequestView::new("GET", "/files?name=../../../../etc/passwd")
    ///     .header("Host", "gateway.local");
    /// match fw.inspect(&traversal) {
    ///     Verdict::Block(b) => assert_eq!(b.category, Category::Lfi),
    ///     Verdict::Allow => panic!("path traversal let through"),
    /// }
    /// # Ok::<(), moltguard_waf::FirewallError>(())
    /// ```
    pub fn new(cfg: FirewallConfig) -> Result<Self, FirewallError> {
        let pl = cfg.effective_paranoia();
        let rules: Vec<Rule> = rules::all()
            .into_iter()
            .filter(|r| r.paranoia <= pl)
            .collect();
        let mut sets = Vec::new();
        let mut literals = Vec::new();
        for t in TRANSFORMS {
            let mut pats = Vec::new();
            let mut idx = Vec::new();
            let mut lits: Vec<String> = Vec::new();
            let mut lit_idx = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                if r.transform != t {
                    continue;
                }
                match r.matcher {
                    Matcher::Regex(p) => {
                        pats.push(p);
                        idx.push(i);
                    }
                    Matcher::Literals(_) | Matcher::Base64Of(_) => {
                        for s in rules::literal_patterns(&r.matcher) {
                            lits.push(s);
                            lit_idx.push(i);
                        }
                    }
                    Matcher::Check => {}
                }
            }
            if !pats.is_empty() {
                let set = RegexSetBuilder::new(pats.iter().map(|p| set_pattern(p)))
                    .unicode(false)
                    .size_limit(64 << 20)
                    .dfa_size_limit(64 << 20)
                    .build()?;
                sets.push(CompiledSet {
                    transform: t,
                    targets: idx.iter().fold(0, |m, &i| m | rules[i].targets),
                    set,
                    rule_idx: idx,
                });
            }
            if !lits.is_empty() {
                let ac = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&lits)?;
                literals.push(CompiledLiterals {
                    transform: t,
                    targets: lit_idx.iter().fold(0, |m, &i| m | rules[i].targets),
                    ac,
                    rule_idx: lit_idx,
                });
            }
        }
        let uniform_set = if sets.len() > 1 {
            let mut pats = Vec::new();
            let mut idx = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                if let Matcher::Regex(p) = r.matcher {
                    pats.push(p);
                    idx.push(i);
                }
            }
            Some(CompiledSet {
                transform: Transform::Text,
                targets: idx.iter().fold(0, |m, &i| m | rules[i].targets),
                set: RegexSetBuilder::new(pats.iter().map(|p| set_pattern(p)))
                    .unicode(false)
                    .size_limit(128 << 20)
                    .dfa_size_limit(128 << 20)
                    .build()?,
                rule_idx: idx,
            })
        } else {
            None
        };
        let uniform_literals = if literals.len() > 1 {
            let mut lits: Vec<String> = Vec::new();
            let mut idx = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                for s in rules::literal_patterns(&r.matcher) {
                    lits.push(s);
                    idx.push(i);
                }
            }
            Some(CompiledLiterals {
                transform: Transform::Text,
                targets: idx.iter().fold(0, |m, &i| m | rules[i].targets),
                ac: AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&lits)?,
                rule_idx: idx,
            })
        } else {
            None
        };
        let singles = rules.iter().map(|_| OnceLock::new()).collect();
        let mut by_id: Vec<(u32, usize)> =
            rules.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        by_id.sort_unstable();
        Ok(Self {
            cfg,
            rules,
            sets,
            literals,
            uniform_set,
            uniform_literals,
            singles,
            by_id,
            id: memo::new_firewall_id(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &FirewallConfig {
        &self.cfg
    }

    /// Active rules (at the configured paranoia level).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    fn rule(&self, id: u32) -> Option<&Rule> {
        let i = self.by_id.binary_search_by_key(&id, |&(id, _)| id).ok()?;
        self.rules.get(self.by_id[i].1)
    }

    /// Inspects one request.
    pub fn inspect(&self, req: &RequestView) -> Verdict {
        if !self.cfg.enabled {
            return Verdict::Allow;
        }
        let mut hits = Hits::new(self);
        rules::method::check(req, &self.cfg, &mut hits);
        rules::protocol::check(req, &self.cfg, &mut hits);
        let (fields, llm_report) = fields::extract(req, self.cfg.max_body_bytes);
        if let Some(report) = llm_report {
            for v in report.violations {
                hits.hit(v.rule_id, &v.field, &v.detail);
            }
        }
        for f in &fields {
            if memo::is_clean(self.id, f.loc, &f.norm.text) {
                continue;
            }
            // Matched on its own, so that "nothing matched" is a fact about
            // this value and not about what matched earlier in the request;
            // merging then skips the rules already counted, as matching
            // into `hits` directly would.
            let mut own = Hits::new(self);
            self.match_field(f, &mut own);
            if own.matches.is_empty() {
                memo::remember_clean(self.id, f.loc, &f.norm.text);
            }
            hits.merge(own);
        }
        rules::session::check(req, &fields, &mut hits);
        if hits.score.blocks(self.cfg.threshold) {
            // Most severe match; the first one among equals.
            let lead = hits
                .matches
                .iter()
                .min_by_key(|m| std::cmp::Reverse(m.severity))
                .cloned();
            let Some(lead) = lead else {
                return Verdict::Allow;
            };
            Verdict::Block(Box::new(Block {
                rule_id: lead.rule_id,
                category: lead.category,
                score: hits.score.total(),
                matched_field: lead.field,
                redacted_excerpt: lead.excerpt,
                matches: hits.matches,
                client_ip: req.client_ip,
                request_id: req.request_id.clone(),
            }))
        } else {
            Verdict::Allow
        }
    }

    fn match_field(&self, f: &Field, hits: &mut Hits<'_>) {
        let (sets, literals): (&[CompiledSet], &[CompiledLiterals]) =
            match (&self.uniform_set, &self.uniform_literals, f.norm.uniform()) {
                (Some(s), Some(l), true) => (std::slice::from_ref(s), std::slice::from_ref(l)),
                _ => (&self.sets, &self.literals),
            };
        for cs in sets {
            if cs.targets & f.loc == 0 {
                continue;
            }
            let s = form(&f.norm, cs.transform);
            // `is_match` runs the fast leftmost DFA; the overlapping
            // `matches` search is only needed for the rare field that hits.
            if s.is_empty() || !cs.set.is_match(s.as_bytes()) {
                continue;
            }
            for m in cs.set.matches(s.as_bytes()).iter() {
                let Some(&ri) = cs.rule_idx.get(m) else {
                    continue;
                };
                let Some(rule) = self.rules.get(ri) else {
                    continue;
                };
                if rule.targets & f.loc == 0 || hits.seen(rule.id) {
                    continue;
                }
                let excerpt = self.locate(ri, s, f.sensitive);
                hits.add(rule, &f.name, excerpt);
            }
        }
        for cl in literals {
            if cl.targets & f.loc == 0 {
                continue;
            }
            let s = form(&f.norm, cl.transform);
            if s.is_empty() || !cl.ac.is_match(s) {
                continue;
            }
            for m in cl.ac.find_overlapping_iter(s) {
                let Some(&ri) = cl.rule_idx.get(m.pattern().as_usize()) else {
                    continue;
                };
                let Some(rule) = self.rules.get(ri) else {
                    continue;
                };
                if rule.targets & f.loc == 0 || hits.seen(rule.id) {
                    continue;
                }
                let excerpt = excerpt_around(s, m.start(), m.end(), f.sensitive);
                hits.add(rule, &f.name, excerpt);
            }
        }
        if let Some((id, start, end)) = rules::sqli::detect(f) {
            if let Some(rule) = self.rule(id) {
                if rule.targets & f.loc != 0 && !hits.seen(id) {
                    let excerpt = excerpt_around(f.norm.sql(), start, end, f.sensitive);
                    hits.add(rule, &f.name, excerpt);
                }
            }
        }
        rules::node::check_field(f, hits);
    }

    fn locate(&self, ri: usize, s: &str, sensitive: bool) -> String {
        let re = self.singles.get(ri).and_then(|cell| {
            cell.get_or_init(|| match self.rules.get(ri).map(|r| r.matcher) {
                Some(Matcher::Regex(p)) => Regex::new(p).ok(),
                _ => None,
            })
            .as_ref()
        });
        match re.and_then(|re| re.find(s)) {
            Some(m) => excerpt_around(s, m.start(), m.end(), sensitive),
            None => excerpt_around(s, 0, 0, sensitive),
        }
    }
}

/// Collects matches for one request; rules report through it.
pub struct Hits<'a> {
    fw: &'a Firewall,
    score: Score,
    matches: Vec<Match>,
}

impl<'a> Hits<'a> {
    fn new(fw: &'a Firewall) -> Self {
        Hits {
            fw,
            score: Score::default(),
            matches: Vec::new(),
        }
    }

    /// Adds another collection's matches, in order, except rules already
    /// counted here.
    fn merge(&mut self, other: Hits<'_>) {
        for m in other.matches {
            if !self.seen(m.rule_id) && self.score.add(m.rule_id, m.severity) {
                self.matches.push(m);
            }
        }
    }

    /// Whether rule `id` already matched on this request.
    pub fn seen(&self, id: u32) -> bool {
        self.matches.iter().any(|m| m.rule_id == id)
    }

    fn add(&mut self, rule: &Rule, field: &str, excerpt: String) {
        if self.score.add(rule.id, rule.severity) {
            self.matches.push(Match {
                rule_id: rule.id,
                category: rule.category,
                severity: rule.severity,
                field: field.to_string(),
                excerpt,
            });
        }
    }

    /// Reports a code-implemented rule by id; ignored if the rule is not
    /// active at the configured paranoia level.
    pub fn hit(&mut self, id: u32, field: &str, detail: &str) {
        if let Some(rule) = self.fw.rule(id).copied() {
            if !self.seen(id) {
                let excerpt = moltguard_secrets::mask_tokens(&truncate_chars(detail, EXCERPT_MAX));
                self.add(&rule, field, excerpt);
            }
        }
    }

    /// Whether rule `id` is active.
    pub fn active(&self, id: u32) -> bool {
        self.fw.rule(id).is_some()
    }
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An excerpt of at most [`EXCERPT_MAX`] characters around `start..end`,
/// with credential-looking tokens masked.
pub fn excerpt_around(s: &str, start: usize, end: usize, sensitive: bool) -> String {
    let from = floor_boundary(s, start.saturating_sub(24));
    let to = floor_boundary(s, end.saturating_add(24).max(from));
    let to = if to <= from {
        floor_boundary(s, from + EXCERPT_MAX)
    } else {
        to
    };
    let piece = truncate_chars(&s[from..to], EXCERPT_MAX);
    if sensitive {
        let head: String = piece.chars().take(4).collect();
        return format!("{head}…[redacted]");
    }
    moltguard_secrets::mask_tokens(&piece)
}
