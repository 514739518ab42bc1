//! Secrets: what the keys on an agent's box look like, in one place for
//! the three that need to know.
//!
//! - The guardian finds them in files, configs, logs and process
//!   environments ([`scan_text`]): one `RegexSet` pass says which kinds
//!   occur at all, and only those kinds' regexes then run to find where.
//!   The `regex` crate is linear in the input, so a scan costs
//!   O(kinds × bytes) whatever the text.
//! - The request firewall masks what looks like a credential in the
//!   excerpts its incidents keep ([`mask_tokens`]).
//! - moltgate masks the keys it holds, and any other key-shaped token, in
//!   the upstream errors it logs and answers with ([`KnownValues`]).
//!
//! A secret never leaves these functions whole: a [`SecretHit`] holds only
//! a redacted form (`gsk_ab…(56 chars)`), a mask keeps four characters.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use serde::Serialize;

/// What a secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretKind {
    /// A PEM private key block (`-----BEGIN … PRIVATE KEY-----`).
    PrivateKey,
    /// An Anthropic API key, `sk-ant-…`.
    AnthropicKey,
    /// An OpenRouter API key, `sk-or-v1-…`.
    OpenRouterKey,
    /// An OpenAI project, service-account or admin key: `sk-proj-…`,
    /// `sk-svcacct-…`, `sk-admin-…`.
    OpenAiProjectKey,
    /// An OpenAI API key, `sk-` and 32 or more letters and digits.
    OpenAiKey,
    /// A Groq API key, `gsk_…`.
    GroqKey,
    /// An AWS access key id, `AKIA…` or `ASIA…` and 16 more characters.
    AwsAccessKeyId,
    /// An AWS secret access key: the 40 characters given to an
    /// `aws_secret_access_key` (any case, `=` or `:`).
    AwsSecretKey,
    /// A GitHub token, `ghp_…` (also `gho_`, `ghs_`, `ghu_`, `ghr_`) or `github_pat_…`.
    GitHubToken,
    /// A Slack token, `xoxb-…` (also `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-`).
    SlackToken,
    /// A Google API key, `AIza…`.
    GoogleApiKey,
    /// A Stripe live secret or restricted key, `sk_live_…` or `rk_live_…`.
    StripeLiveKey,
    /// A Hugging Face token, `hf_…`.
    HuggingFaceToken,
    /// A GitLab personal access token, `glpat-…`.
    GitLabToken,
    /// An xAI API key, `xai-…`.
    XaiKey,
    /// A Perplexity API key, `pplx-…`.
    PerplexityKey,
    /// A Replicate API token, `r8_…`.
    ReplicateToken,
    /// An npm access token, `npm_…`.
    NpmToken,
    /// `api_key = "<long, high-entropy value>"` and `FOO_TOKEN=…` lines.
    Generic,
}

impl SecretKind {
    /// Every kind, in the scanner's order of priority.
    pub const ALL: [SecretKind; 19] = [
        SecretKind::PrivateKey,
        SecretKind::AnthropicKey,
        SecretKind::OpenRouterKey,
        SecretKind::OpenAiProjectKey,
        SecretKind::OpenAiKey,
        SecretKind::GroqKey,
        SecretKind::AwsAccessKeyId,
        SecretKind::AwsSecretKey,
        SecretKind::GitHubToken,
        SecretKind::SlackToken,
        SecretKind::GoogleApiKey,
        SecretKind::StripeLiveKey,
        SecretKind::HuggingFaceToken,
        SecretKind::GitLabToken,
        SecretKind::XaiKey,
        SecretKind::PerplexityKey,
        SecretKind::ReplicateToken,
        SecretKind::NpmToken,
        SecretKind::Generic,
    ];

    /// The literal prefixes a key of this kind starts with (none for a
    /// private key block, an AWS secret or a generic value): what
    /// [`mask_keys`] looks for in text.
    pub fn prefixes(self) -> &'static [&'static str] {
        match self {
            SecretKind::AnthropicKey => &["sk-ant-"],
            SecretKind::OpenRouterKey => &["sk-or-"],
            SecretKind::OpenAiProjectKey | SecretKind::OpenAiKey => &["sk-"],
            SecretKind::GroqKey => &["gsk_"],
            SecretKind::AwsAccessKeyId => &["AKIA", "ASIA"],
            SecretKind::GitHubToken => &["ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"],
            SecretKind::SlackToken => &["xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"],
            SecretKind::GoogleApiKey => &["AIza"],
            SecretKind::StripeLiveKey => &["sk_live_", "rk_live_"],
            SecretKind::HuggingFaceToken => &["hf_"],
            SecretKind::GitLabToken => &["glpat-"],
            SecretKind::XaiKey => &["xai-"],
            SecretKind::PerplexityKey => &["pplx-"],
            SecretKind::ReplicateToken => &["r8_"],
            SecretKind::NpmToken => &["npm_"],
            SecretKind::PrivateKey | SecretKind::AwsSecretKey | SecretKind::Generic => &[],
        }
    }

    /// What it is, in a finding's words.
    pub fn describe(self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "a private key",
            SecretKind::AnthropicKey => "an Anthropic API key",
            SecretKind::OpenRouterKey => "an OpenRouter API key",
            SecretKind::OpenAiProjectKey => "an OpenAI project/service key",
            SecretKind::OpenAiKey => "an OpenAI API key",
            SecretKind::GroqKey => "a Groq API key",
            SecretKind::AwsAccessKeyId => "an AWS access key id",
            SecretKind::AwsSecretKey => "an AWS secret access key",
            SecretKind::GitHubToken => "a GitHub token",
            SecretKind::SlackToken => "a Slack token",
            SecretKind::GoogleApiKey => "a Google API key",
            SecretKind::StripeLiveKey => "a Stripe live key",
            SecretKind::HuggingFaceToken => "a Hugging Face token",
            SecretKind::GitLabToken => "a GitLab token",
            SecretKind::XaiKey => "an xAI API key",
            SecretKind::PerplexityKey => "a Perplexity API key",
            SecretKind::ReplicateToken => "a Replicate token",
            SecretKind::NpmToken => "an npm token",
            SecretKind::Generic => "a high-entropy credential",
        }
    }
}

/// A secret found: its kind, line, and a redacted form safe to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretHit {
    /// What kind of secret it is.
    pub kind: SecretKind,
    /// 1-based.
    pub line: usize,
    /// At most a short prefix and the length, e.g. `gsk_ab…(56 chars)`.
    pub redacted: String,
    /// The label the caller gave the text (a path, `pid 12 env`).
    pub source: String,
}

/// A pattern: which kind, the regex, the capture group holding the secret
/// (0: the whole match), and how many leading characters are a public prefix.
struct Pattern {
    kind: SecretKind,
    re: String,
    group: usize,
    prefix: usize,
}

const GENERIC_VALUE: &str = r"[A-Za-z0-9_\-+/=.~]{20,200}";

fn patterns() -> &'static [Pattern] {
    // Order is priority: when two overlap, the earlier one names the hit.
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        let p = |kind, re: &str, group, prefix| Pattern {
            kind,
            re: re.to_string(),
            group,
            prefix,
        };
        vec![
            p(SecretKind::PrivateKey, r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY( BLOCK)?-----", 0, 0),
            p(SecretKind::AnthropicKey, r"\bsk-ant-[A-Za-z0-9_\-]{20,}", 0, 7),
            p(SecretKind::OpenRouterKey, r"\bsk-or-v1-[A-Za-z0-9]{32,}", 0, 9),
            p(SecretKind::OpenAiProjectKey, r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}", 0, 8),
            p(SecretKind::OpenAiKey, r"\bsk-[A-Za-z0-9]{32,}", 0, 3),
            p(SecretKind::GroqKey, r"\bgsk_[A-Za-z0-9]{20,}", 0, 4),
            p(SecretKind::AwsAccessKeyId, r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", 0, 4),
            p(
                SecretKind::AwsSecretKey,
                r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
                1,
                0,
            ),
            p(
                SecretKind::GitHubToken,
                r"\b(?:(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
                0,
                4,
            ),
            p(SecretKind::SlackToken, r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", 0, 5),
            p(SecretKind::GoogleApiKey, r"\bAIza[0-9A-Za-z_\-]{35}", 0, 4),
            p(SecretKind::StripeLiveKey, r"\b(?:sk|rk)_live_[0-9A-Za-z]{20,}", 0, 8),
            p(SecretKind::HuggingFaceToken, r"\bhf_[A-Za-z0-9]{34,}", 0, 3),
            p(SecretKind::GitLabToken, r"\bglpat-[A-Za-z0-9_\-]{20,}", 0, 6),
            p(SecretKind::XaiKey, r"\bxai-[A-Za-z0-9]{40,}", 0, 4),
            p(SecretKind::PerplexityKey, r"\bpplx-[A-Za-z0-9]{40,}", 0, 5),
            p(SecretKind::ReplicateToken, r"\br8_[A-Za-z0-9]{37,}", 0, 3),
            p(SecretKind::NpmToken, r"\bnpm_[A-Za-z0-9]{36}\b", 0, 4),
            p(
                SecretKind::Generic,
                &format!(
                    r#"(?i)\b(?:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?token|auth[_-]?token|bearer[_-]?token|secret|token|password|passwd)["']?\s*[:=]\s*["']({GENERIC_VALUE})["']"#
                ),
                1,
                0,
            ),
            p(
                SecretKind::Generic,
                &format!(
                    r"(?m)^[ \t]*(?:export[ \t]+)?[A-Z0-9_]*(?:API_KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*[ \t]*=[ \t]*({GENERIC_VALUE})[ \t\r]*$"
                ),
                1,
                0,
            ),
        ]
    })
}

struct Compiled {
    set: RegexSet,
    each: Vec<Regex>,
}

fn compiled() -> Option<&'static Compiled> {
    static C: OnceLock<Option<Compiled>> = OnceLock::new();
    C.get_or_init(|| {
        let ps = patterns();
        let set = RegexSet::new(ps.iter().map(|p| p.re.as_str())).ok()?;
        let each = ps
            .iter()
            .map(|p| Regex::new(&p.re))
            .collect::<Result<_, _>>()
            .ok()?;
        Some(Compiled { set, each })
    })
    .as_ref()
}

/// Bits per character; random base64 is ~6, English words ~3.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a generic `key = "value"` looks like a real credential, not a
/// path, word or placeholder.
fn generic_plausible(v: &str) -> bool {
    let lower = v.to_ascii_lowercase();
    v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().any(|b| b.is_ascii_alphabetic())
        && !v.starts_with('/')
        && ![
            "xxxx",
            "your",
            "example",
            "changeme",
            "placeholder",
            "redacted",
            "<",
            "0000",
        ]
        .iter()
        .any(|w| lower.contains(w))
        && entropy(v) >= 3.5
}

/// Shows at most the public prefix and two more characters (and never more
/// than a third of the secret), then the length.
pub fn redact(secret: &str, public_prefix: usize) -> String {
    let len = secret.chars().count();
    let visible = (public_prefix + 2).min(len / 3);
    let shown: String = secret.chars().take(visible).collect();
    format!("{shown}…({len} chars)")
}

/// Most hits kept per text; a file full of keys needs no more to be flagged.
const MAX_HITS: usize = 100;

/// Scans text for secrets. `source_label` is copied into each hit.
pub fn scan_text(text: &str, source_label: &str) -> Vec<SecretHit> {
    let Some(c) = compiled() else {
        return Vec::new();
    };
    let ps = patterns();
    let matched = c.set.matches(text);
    if !matched.matched_any() {
        return Vec::new();
    }
    // (start, end, pattern index)
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for i in matched.iter() {
        let (Some(re), Some(p)) = (c.each.get(i), ps.get(i)) else {
            continue;
        };
        for caps in re.captures_iter(text) {
            let Some(m) = caps.get(p.group) else { continue };
            if p.kind == SecretKind::Generic && !generic_plausible(m.as_str()) {
                continue;
            }
            spans.push((m.start(), m.end(), i));
            if spans.len() > MAX_HITS * 4 {
                break;
            }
        }
    }
    spans.sort_unstable_by_key(|&(start, _, i)| (start, i));
    let mut line_starts: Option<Vec<usize>> = None;
    let mut out = Vec::new();
    let mut last_end = 0usize;
    // Among spans starting at the same place, the first pattern wins.
    for (start, end, i) in spans {
        if start < last_end || out.len() >= MAX_HITS {
            continue;
        }
        let Some(p) = ps.get(i) else { continue };
        let secret = text.get(start..end).unwrap_or("");
        let ls = line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(k, _)| k + 1))
                .collect()
        });
        let line = ls.partition_point(|&s| s <= start);
        let redacted = if p.kind == SecretKind::PrivateKey {
            // The BEGIN line names the key type; the key itself follows it.
            secret.to_string()
        } else {
            redact(secret, p.prefix)
        };
        out.push(SecretHit {
            kind: p.kind,
            line,
            redacted,
            source: source_label.to_string(),
        });
        last_end = end;
    }
    out
}

/// Prefixes masked though the scanner reports no kind for them: short-lived
/// tokens (JWTs, Google OAuth access tokens) and Stripe test keys.
const MASK_ONLY_PREFIXES: &[&str] = &["eyJ", "ya29.", "sk_", "rk_"];

/// The shortest token a prefix makes a key: `sk-1` is a word, not a key.
const MIN_KEY_LEN: usize = 12;

/// Whether `token` starts with a key prefix (any case) and is long enough
/// to be one.
fn has_key_prefix(token: &str) -> bool {
    token.len() >= MIN_KEY_LEN
        && SecretKind::ALL
            .iter()
            .flat_map(|k| k.prefixes())
            .chain(MASK_ONLY_PREFIXES)
            .any(|p| {
                token
                    .get(..p.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(p))
            })
}

/// Whether `token` looks like a credential: a key prefix (also after an
/// `=`, as in `api_key=gsk_…`), or a long token mixing letters and digits.
fn looks_secret(token: &str) -> bool {
    if token.split('=').any(has_key_prefix) {
        return true;
    }
    if token.len() < 20 {
        return false;
    }
    let digits = token.chars().filter(|c| c.is_ascii_digit()).count();
    let alpha = token.chars().filter(|c| c.is_ascii_alphabetic()).count();
    digits >= 3 && alpha >= 6 && !token.contains('/')
}

/// Replaces each token (a run of `[A-Za-z0-9_+/=.-]`) that `secret` picks
/// with its first four characters and `…[redacted]`.
fn mask(text: &str, secret: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if secret(token) {
            out.extend(token.chars().take(4));
            out.push_str("…[redacted]");
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '=' | '.') {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Masks every token that looks like a credential: a key prefix, or a long
/// token mixing letters and digits (the firewall's excerpts, where a
/// request id lost to the mask costs nothing).
///
/// # Examples
///
/// ```
/// use moltguard_secrets::mask_tokens;
///
/// // Built at run time, so no key-shaped literal sits in the source.
/// let key = format!("gsk_{}", "Ab1".repeat(12));
/// let masked = mask_tokens(&format!("invalid key {key} for model llama-3"));
/// assert_eq!(masked, "invalid key gsk_…[redacted] for model llama-3");
/// assert!(!masked.contains(&key));
/// ```
pub fn mask_tokens(text: &str) -> String {
    mask(text, looks_secret)
}

/// Masks only the tokens with a key prefix (or one after an `=`): for text
/// whose other long tokens (request ids, model names) must stay readable.
pub fn mask_keys(text: &str) -> String {
    mask(text, |t| t.split('=').any(has_key_prefix))
}

/// The secret values this process holds (provider keys), replaced
/// wherever they would be shown, and every other key-shaped token masked.
///
/// # Examples
///
/// ```
/// use moltguard_secrets::KnownValues;
///
/// // Built at run time, so no key-shaped literal sits in the source.
/// let held = format!("prov{}", "x7Q".repeat(10)); // a key with no known prefix
/// let other = format!("sk-ant-{}", "Ab1".repeat(12));
/// let mut known = KnownValues::default();
/// known.add(&held);
/// known.add("abc"); // too short to be a key: not added
///
/// let shown = known.redact(&format!("401 for {held}; body had {other} (req 7f3a)"));
/// assert_eq!(shown, "401 for [redacted]; body had sk-a…[redacted] (req 7f3a)");
/// assert_eq!(known.redact("abc"), "abc");
/// ```
#[derive(Debug, Default)]
pub struct KnownValues {
    values: Vec<String>,
}

impl KnownValues {
    /// Adds a value. Very short values would redact ordinary words, and
    /// keys are long, so those are left out.
    pub fn add(&mut self, value: &str) {
        if value.len() >= 6 {
            self.values.push(value.to_string());
        }
    }

    /// `text` with each known value as `[redacted]` and other keys masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        mask_keys(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_with_a_prefix_is_masked_and_none_is_shown_whole() {
        // Built at run time, so no key-shaped literal sits in the source.
        for kind in SecretKind::ALL {
            for p in kind.prefixes() {
                let key = format!("{p}{}", "Qw3Er4Ty5Ui6Op7As8Df9Gh".repeat(2));
                for text in [
                    format!("key={key}&x=1"),
                    format!("Incorrect API key: {key}."),
                ] {
                    for out in [mask_tokens(&text), mask_keys(&text)] {
                        assert!(!out.contains(&key[4..]), "{kind:?} {p}: {out}");
                        assert!(out.contains("…[redacted]"), "{kind:?} {p}: {out}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_prefixed_kind_is_found_by_the_scanner_under_its_own_name() {
        for kind in SecretKind::ALL {
            for p in kind.prefixes() {
                let body = match kind {
                    SecretKind::AwsAccessKeyId => "QZ7R2LMX9VB4NT7K".to_string(),
                    SecretKind::GoogleApiKey => "Sy3Kq9_Lm2-Xv8Bn4Tz6Wc1Rd5Fg7Hj0Pqz".to_string(),
                    SecretKind::NpmToken => "A1b2C3d4E5f6".repeat(3),
                    SecretKind::OpenAiProjectKey => format!("proj-{}", "Ab1Cd2Ef3".repeat(4)),
                    SecretKind::OpenRouterKey => format!("v1-{}", "a1b2c3d4".repeat(8)),
                    SecretKind::AnthropicKey => format!("api03-{}", "Xy9kQ2".repeat(8)),
                    _ => "A1b2C3d4E5f6".repeat(4),
                };
                let hits = scan_text(&format!("key: \"{p}{body}\"\n"), "t");
                assert_eq!(hits.len(), 1, "{kind:?} {p}: {hits:?}");
                assert_eq!(hits[0].kind, kind, "{p}");
            }
        }
    }

    #[test]
    fn words_short_values_and_ids_stay_readable() {
        let plain = "union select password from users";
        assert_eq!(mask_tokens(plain), plain);
        assert_eq!(mask_tokens("sk-1"), "sk-1");
        assert_eq!(mask_tokens("mode=sk-1"), "mode=sk-1");
        // An upstream error keeps its request id and model for debugging.
        let err = "rate limited (request req_8f2a91c0d3e44b7a9c1d, model llama-3.1-8b-instant)";
        assert_eq!(mask_keys(err), err);
        assert_ne!(mask_tokens(err), err);
    }

    #[test]
    fn known_values_are_replaced_and_other_keys_masked() {
        let mine = format!("gsk_{}", "Zx8Cv7Bn6Mm5".repeat(4));
        let theirs = format!("sk-{}", "Lk4Jh3Gf2Ds1".repeat(4));
        let mut known = KnownValues::default();
        known.add(&mine);
        known.add("abc");
        let out = known.redact(&format!("bad key {mine}; also {theirs}; abc"));
        assert_eq!(out, "bad key [redacted]; also sk-L…[redacted]; abc");
    }

    #[test]
    fn redaction_shape() {
        let k = format!("gsk_{}", "ab".repeat(26));
        assert_eq!(redact(&k, 4), "gsk_ab…(56 chars)");
        assert_eq!(redact("short", 4), "s…(5 chars)");
        assert_eq!(redact("", 4), "…(0 chars)");
    }

    #[test]
    fn generic_rule_ignores_low_entropy_and_placeholders() {
        for v in [
            "aaaaaaaaaaaaaaaaaaaaaaaa",
            "your-api-key-goes-here-1",
            "/etc/moltguard/token/file1",
            "xxxxxxxxxxxxxxxxxxxxxxxx1",
        ] {
            assert!(
                scan_text(&format!("api_key = \"{v}\""), "f").is_empty(),
                "{v}"
            );
        }
        assert!(scan_text("password: \"${SECRET_FROM_ENV}\"", "f").is_empty());
        assert_eq!(
            scan_text("OPENAI_API_KEY=q8Zr2LmX9vB4nT7kW1pY5sD3\n", "f").len(),
            1
        );
        assert!(scan_text("just text with sk- and gsk_ and AKIA", "f").is_empty());
    }

    #[test]
    fn overlapping_patterns_yield_one_hit_with_the_specific_kind() {
        let k = format!("gsk_{}", "Qw3Er4Ty5Ui6".repeat(4));
        let hits = scan_text(&format!("api_key = \"{k}\"\nGROQ_API_KEY={k}\n"), "f");
        assert_eq!(
            hits.iter().map(|h| (h.kind, h.line)).collect::<Vec<_>>(),
            [(SecretKind::GroqKey, 1), (SecretKind::GroqKey, 2)]
        );
    }
}
