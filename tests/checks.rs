//! The guardian's static checks against real files in temp dirs: moltguard's
//! own rendered config is clean, and each bad pattern, added alone, yields
//! exactly its rule at the right `file:line`. Then property tests: nothing
//! panics, whatever the input, and time stays bounded.

use chrono::{Duration, TimeZone, Utc};
use moltguard::auth::htpasswd;
use moltguard::breaker::{BreakerRecord, BreakerState, ReasonCode};
use moltguard::config::{Config, Layout, Settings};
use moltguard::guardian::checks::{self, secrets, ProtectedSet, ScanLimits, SecretPlace};
use moltguard::guardian::{Finding, Severity};
use moltguard::nginx::render;
use moltguard::nginxconf;
use proptest::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A moltguard install rendered into a temp dir: managed main config, site,
/// breaker include, htpasswd.
struct Install {
    _dir: tempfile::TempDir,
    config: Config,
}

impl Install {
    fn new(state: BreakerState) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let layout = Layout {
            home: Some(root.clone()),
            config_file: root.join("moltguard.toml"),
            state_dir: root.join("state"),
            log_dir: root.join("log"),
            htpasswd: root.join("htpasswd"),
            nginx_dir: root.join("nginx"),
        };
        fs::create_dir_all(&layout.nginx_dir).unwrap();
        fs::create_dir_all(&layout.state_dir).unwrap();
        let config = Config {
            settings: Settings::default(),
            layout,
            config_file_found: false,
        };
        let mut record =
            BreakerRecord::initial(Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap());
        record.state = state;
        record.reason = ReasonCode::Manual;
        if state != BreakerState::Open {
            record.expires_at = Some(record.changed_at + Duration::minutes(30));
        }
        let l = &config.layout;
        fs::write(
            l.include_file(),
            moltguard::breaker::edge::render_include(&record, l).unwrap(),
        )
        .unwrap();
        fs::write(l.site_file(), render::render_site(&config).unwrap()).unwrap();
        fs::write(
            l.managed_main_conf(),
            render::render_managed_main(&config).unwrap(),
        )
        .unwrap();
        htpasswd::upsert(&l.htpasswd, "alice", "a-long-enough-password", 0o640).unwrap();
        Install { _dir: dir, config }
    }

    fn layout(&self) -> &Layout {
        &self.config.layout
    }

    fn protected(&self) -> ProtectedSet {
        ProtectedSet::for_config(&self.config, &[])
    }

    /// All nginx findings (config + secrets in it) for the current files.
    fn nginx_findings(&self) -> Vec<Finding> {
        let l = self.layout();
        let tree = nginxconf::load(&l.managed_main_conf(), &l.nginx_dir).unwrap();
        let mut f = checks::check_nginx(&tree, &self.protected());
        f.extend(checks::check_nginx_secrets(&tree, &ScanLimits::default()));
        f
    }

    fn edit_site(&self, edit: impl Fn(&str) -> String) -> String {
        let p = self.layout().site_file();
        let new = edit(&fs::read_to_string(&p).unwrap());
        fs::write(&p, &new).unwrap();
        new
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle) && !l.trim_start().starts_with('#'))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
}

fn criticals(f: &[Finding]) -> Vec<&Finding> {
    f.iter()
        .filter(|f| f.severity == Severity::Critical)
        .collect()
}

#[test]
fn moltguard_own_config_has_no_findings_in_every_state() {
    for state in [
        BreakerState::Open,
        BreakerState::HalfOpen,
        BreakerState::Closed,
    ] {
        let i = Install::new(state);
        let f = i.nginx_findings();
        assert!(f.is_empty(), "{state:?}: {f:#?}");
        assert!(checks::check_htpasswd(&i.layout().htpasswd, None).is_empty());
        // And through `nginx -T` output, as the guardian may read it.
        let l = i.layout();
        let mut dump = String::new();
        for p in [l.managed_main_conf(), l.site_file(), l.include_file()] {
            dump.push_str(&format!(
                "# configuration file {}:\n{}\n",
                p.display(),
                fs::read_to_string(&p).unwrap()
            ));
        }
        let mut f = checks::check_nginx_t_output(&dump, &i.protected());
        f.extend(checks::check_nginx_t_secrets(&dump));
        assert!(f.is_empty(), "{state:?} via -T: {f:#?}");
        let leaky = dump.replace(
            "server_tokens off;",
            "server_tokens off;\n    set $k \"ghp_A1b2C3d4E5f6A1b2C3d4E5f6A1b2C3d4E5f6\";",
        );
        let f = checks::check_nginx_t_secrets(&leaky);
        assert_eq!(f[0].id, "SECRET_IN_NGINX_CONFIG");
    }
}

/// One bad edit of the site file, and what it must produce.
struct Case {
    name: &'static str,
    from: &'static str,
    to: &'static str,
    id: &'static str,
    /// A string on the line the finding must point at.
    at: &'static str,
}

#[test]
fn each_bad_pattern_yields_exactly_its_finding_at_its_line() {
    let cases = [
        Case { name: "no breaker include", from: "    include ", to: "    # include ", id: "NGINX_BREAKER_NOT_INCLUDED", at: "server {" },
        Case { name: "listen all addresses", from: "listen 127.0.0.1:8443;", to: "listen 8443;", id: "NGINX_LISTEN_PUBLIC", at: "listen 8443" },
        Case { name: "listen *", from: "listen 127.0.0.1:8443;", to: "listen *:8443;", id: "NGINX_LISTEN_PUBLIC", at: "listen *:8443" },
        Case { name: "listen [::]", from: "listen 127.0.0.1:8443;", to: "listen [::]:8443 ipv6only=on;", id: "NGINX_LISTEN_PUBLIC", at: "listen [::]" },
        Case { name: "listen 0.0.0.0", from: "listen 127.0.0.1:8443;", to: "listen 0.0.0.0:8443;", id: "NGINX_LISTEN_PUBLIC", at: "0.0.0.0" },
        Case { name: "listen LAN", from: "listen 127.0.0.1:8443;", to: "listen 192.168.1.20:8443;", id: "NGINX_LISTEN_PUBLIC", at: "192.168" },
        Case { name: "extra public listen", from: "listen 127.0.0.1:8443;", to: "listen 127.0.0.1:8443;\n    listen 10.1.2.3:8443;", id: "NGINX_LISTEN_PUBLIC", at: "10.1.2.3" },
        Case { name: "no listen", from: "    listen 127.0.0.1:8443;\n", to: "", id: "NGINX_LISTEN_PUBLIC", at: "server {" },
        Case { name: "auth_basic off", from: "proxy_buffering off;", to: "proxy_buffering off;\n        auth_basic off;", id: "NGINX_AUTH_BYPASS", at: "auth_basic off" },
        Case { name: "location return", from: "    location / {", to: "    location = /health { return 200 'ok'; }\n    location / {", id: "NGINX_AUTH_BYPASS", at: "/health" },
        Case { name: "allow all", from: "proxy_buffering off;", to: "proxy_buffering off;\n        allow all;", id: "NGINX_AUTH_BYPASS", at: "allow all" },
        Case { name: "satisfy any", from: "server_tokens off;", to: "server_tokens off;\n    satisfy any;", id: "NGINX_AUTH_BYPASS", at: "satisfy any" },
        Case { name: "auth_request off", from: "proxy_buffering off;", to: "proxy_buffering off;\n        auth_request off;", id: "NGINX_AUTH_BYPASS", at: "auth_request off" },
        Case { name: "return in location if", from: "proxy_buffering off;", to: "proxy_buffering off;\n        if ($arg_x) { return 302 /x; }", id: "NGINX_AUTH_BYPASS", at: "$arg_x" },
        Case { name: "syntax error", from: "proxy_read_timeout 300s;", to: "proxy_read_timeout \"300s;", id: "NGINX_CONFIG_UNPARSEABLE", at: "proxy_read_timeout" },
        Case { name: "missing include file", from: "server_tokens off;", to: "server_tokens off;\n    include /nonexistent/x.conf;", id: "NGINX_CONFIG_UNPARSEABLE", at: "/nonexistent" },
        Case { name: "secret in config", from: "proxy_buffering off;", to: "proxy_buffering off;\n        proxy_set_header Authorization \"Bearer gsk_Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6Qw3Er4Ty5Ui6\";", id: "SECRET_IN_NGINX_CONFIG", at: "Bearer gsk_" },
    ];
    for c in &cases {
        let i = Install::new(BreakerState::Closed);
        let text = i.edit_site(|s| {
            assert!(
                s.contains(c.from),
                "{}: {:?} not in the site",
                c.name,
                c.from
            );
            s.replacen(c.from, c.to, 1)
        });
        if c.id.starts_with("SECRET") {
            // Root-only, so the file mode adds no second finding.
            fs::set_permissions(i.layout().site_file(), fs::Permissions::from_mode(0o600)).unwrap();
        }
        let f = i.nginx_findings();
        assert_eq!(f.len(), 1, "{}: {f:#?}", c.name);
        assert_eq!(f[0].id, c.id, "{}", c.name);
        assert_eq!(f[0].severity, Severity::Critical, "{}", c.name);
        let want = format!(
            "{}:{}",
            i.layout().site_file().display(),
            line_of(&text, c.at)
        );
        assert_eq!(f[0].location.as_deref(), Some(want.as_str()), "{}", c.name);
        // No secret in any finding, ever.
        assert!(
            !format!("{f:?}").contains("Ui6Qw3Er4Ty5Ui6Qw3"),
            "{}",
            c.name
        );
    }
}

#[test]
fn a_second_site_from_a_glob_include_is_checked_in_its_own_file() {
    let i = Install::new(BreakerState::Closed);
    let l = i.layout();
    let main = fs::read_to_string(l.managed_main_conf()).unwrap();
    fs::write(
        l.managed_main_conf(),
        main.replacen(
            "    include ",
            "    include conf.d/*.conf;\n    include ",
            1,
        ),
    )
    .unwrap();
    fs::create_dir_all(l.nginx_dir.join("conf.d")).unwrap();
    let evil = l.nginx_dir.join("conf.d/panel.conf");
    fs::write(&evil, "# direct panel access\nserver {\n    listen 127.0.0.1:9000;\n    location / { proxy_pass http://127.0.0.1:18789; }\n}\n").unwrap();
    let f = i.nginx_findings();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].id, "NGINX_BREAKER_NOT_INCLUDED");
    assert_eq!(
        f[0].location.as_deref(),
        Some(format!("{}:2", evil.display()).as_str())
    );
    // Including the breaker fixes it.
    fs::write(&evil, format!("server {{\n    listen 127.0.0.1:9000;\n    include {};\n    location / {{ proxy_pass http://127.0.0.1:18789; }}\n}}\n", l.include_file().display())).unwrap();
    assert!(i.nginx_findings().is_empty());
}

#[test]
fn run_static_covers_every_configured_input() {
    let mut i = Install::new(BreakerState::Closed);
    let home = tempfile::tempdir().unwrap();
    let www = home.path().join("www");
    fs::create_dir_all(&www).unwrap();
    fs::create_dir_all(home.path().join(".openclaw")).unwrap();
    fs::set_permissions(
        home.path().join(".openclaw"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::write(
        home.path().join(".openclaw/openclaw.json"),
        r#"{"gateway": {"port": 18800, "auth": {"token": "x"}}}"#,
    )
    .unwrap();
    fs::set_permissions(
        home.path().join(".openclaw/openclaw.json"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let g = &mut i.config.settings.guardian;
    g.agent_homes = vec![home.path().to_path_buf()];
    g.web_roots = vec![www.clone()];
    let l = i.layout().clone();
    let files = checks::NginxSource::Files {
        main: &l.managed_main_conf(),
        base_dir: &l.nginx_dir,
    };
    let r = checks::run_static(&i.config, files, None);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.agent_ports, [18800]);
    // A server proxying to the agent port learned from its config is judged.
    fs::write(
        l.site_file(),
        format!("{}\nserver {{ listen 127.0.0.1:9999; location / {{ proxy_pass http://127.0.0.1:18800; }} }}\n", fs::read_to_string(l.site_file()).unwrap()),
    )
    .unwrap();
    fs::write(
        www.join("k.txt"),
        format!("ghp_{}\n", "A1b2C3d4E5f6".repeat(3)),
    )
    .unwrap();
    let files = checks::NginxSource::Files {
        main: &l.managed_main_conf(),
        base_dir: &l.nginx_dir,
    };
    let ids: Vec<_> = checks::run_static(&i.config, files, None)
        .findings
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, ["NGINX_BREAKER_NOT_INCLUDED", "SECRET_IN_WEB_ROOT"]);
}

#[test]
fn htpasswd_agent_and_secret_checks_on_real_files() {
    let i = Install::new(BreakerState::Closed);
    let h = &i.layout().htpasswd;
    fs::remove_file(h).unwrap();
    let f = checks::check_htpasswd(h, None);
    assert_eq!(
        (f[0].id, f[0].reason),
        ("AUTH_HTPASSWD_MISSING", ReasonCode::AuthMissing)
    );
    fs::write(h, "").unwrap();
    assert_eq!(checks::check_htpasswd(h, None)[0].id, "AUTH_HTPASSWD_EMPTY");

    let home = tempfile::tempdir().unwrap();
    let p = home.path().join(".moltbot/moltbot.json");
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, r#"{"gateway": {"bind": "lan", "port": 18790}}"#).unwrap();
    let r = checks::check_agent(home.path(), false);
    let ids: Vec<_> = r.findings.iter().map(|f| (f.id, f.severity)).collect();
    assert_eq!(
        ids,
        [
            ("AGENT_BIND_PUBLIC", Severity::Critical),
            ("AGENT_AUTH_MISSING", Severity::Critical),
            ("OPENCLAW_ALLOWED_ORIGINS", Severity::Critical),
            ("OPENCLAW_STATE_DIR_PERMS", Severity::Warning),
        ]
    );
    assert_eq!(r.control_ports(), [18790]);

    let www = home.path().join("www");
    fs::create_dir_all(&www).unwrap();
    let key = format!("sk-ant-api03-{}", "Xy9kQ2".repeat(15));
    fs::write(www.join(".env"), format!("\nANTHROPIC_API_KEY={key}\n")).unwrap();
    fs::set_permissions(www.join(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let f = checks::check_secrets(SecretPlace::WebRoot, &www, &ScanLimits::default());
    assert_eq!(criticals(&f).len(), 1);
    assert_eq!(f[0].id, "SECRET_IN_WEB_ROOT");
    assert_eq!(
        f[0].location.as_deref(),
        Some(format!("{}:2", www.join(".env").display()).as_str())
    );
    assert!(!format!("{f:?}").contains(&key[10..]));
}

// ---------------------------------------------------------------------------
// Property tests: never panic, bounded time.

fn nginxish() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"([a-z_$]{1,6}|[ \t\n]|[{};#"'\\()*]|include [a-z*]{1,3}\.conf;|if \(|_by_lua_block \{|\$\{){0,200}"#).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parser_never_panics_on_any_string(s in any::<String>()) {
        let _ = nginxconf::parse(&s, Path::new("/p"));
    }

    #[test]
    fn parser_never_panics_on_nginx_like_text(s in nginxish()) {
        if let Ok(d) = nginxconf::parse(&s, Path::new("/p")) {
            // Every directive has a line inside the text.
            let lines = s.matches('\n').count() + 1;
            nginxconf::walk(&d, &mut |d, _| assert!(d.line >= 1 && d.line <= lines));
        }
    }

    #[test]
    fn parser_never_panics_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = nginxconf::parse(&String::from_utf8_lossy(&b), Path::new("/p"));
        let _ = nginxconf::parse_nginx_t_output(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn checks_never_panic_on_nginx_like_text(s in nginxish()) {
        let dump = format!("# configuration file /e/nginx.conf:\nserver {{ listen 8443; {s} }}\n");
        let _ = checks::check_nginx_t_output(&dump, &ProtectedSet { ports: vec![8443], breaker_include: "/e/b.conf".into() });
    }

    #[test]
    fn htpasswd_classification_never_panics(s in any::<String>(), n in nginxish()) {
        let _ = checks::check_htpasswd_text(&s, "h");
        let _ = checks::check_htpasswd_text(&n.replace(';', ":"), "h");
        let _ = moltguard::auth::htpasswd::HashKind::classify(&s);
    }

    #[test]
    fn secret_scanner_never_panics_and_never_shows_the_secret(
        pre in "[ -~\n]{0,100}",
        body in "[A-Za-z0-9]{40,60}",
        prefix in prop::sample::select(vec!["sk-", "sk-proj-", "sk-ant-", "sk-or-v1-", "gsk_", "ghp_", "github_pat_", "xoxb-", "sk_live_", "AIza", "api_key = \""]),
        junk in any::<String>(),
    ) {
        let _ = secrets::scan_text(&junk, "j");
        let secret = format!("{prefix}{body}");
        let hits = secrets::scan_text(&format!("{pre} {secret}\" \n"), "t");
        let shown = format!("{hits:?}");
        let tail: String = body.chars().skip(5).collect();
        prop_assert!(!shown.contains(&tail), "{}", shown);
    }

    #[test]
    fn agent_config_reader_never_panics(s in any::<String>(), n in nginxish()) {
        let _ = checks::agent::check_agent_text(&s, Path::new("/a.json"), false);
        let _ = checks::agent::check_agent_text(&n, Path::new("/a.json"), true);
        let _ = checks::agent::json5_to_json(&s);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random include graphs (self includes, cycles, diamonds, globs,
    /// missing files): loading ends, within its limits, and reports cycles.
    #[test]
    fn include_graphs_load_within_limits(
        edges in proptest::collection::vec(proptest::collection::vec(0usize..8, 0..4), 1..8),
        glob_at in proptest::option::of(0usize..8),
    ) {
        let d = tempfile::tempdir().unwrap();
        let n = edges.len();
        for (i, targets) in edges.iter().enumerate() {
            let mut t = format!("d{i} 1;\n");
            for &j in targets {
                t.push_str(&format!("include f{j}.conf;\n"));
            }
            if glob_at == Some(i) {
                t.push_str("include f*.conf;\n");
            }
            fs::write(d.path().join(format!("f{i}.conf")), t).unwrap();
        }
        let limits = nginxconf::LoadLimits { max_directives: 20_000, ..Default::default() };
        let start = Instant::now();
        let tree = nginxconf::load_with(&d.path().join("f0.conf"), d.path(), &limits).unwrap();
        prop_assert!(start.elapsed().as_secs() < 5);
        let mut count = 0usize;
        nginxconf::walk(&tree.directives, &mut |_, _| count += 1);
        prop_assert!(count <= limits.max_directives + 1);
        // A file including itself or an ancestor is a cycle; it must be reported.
        let has_cycle_from_root = edges[0].contains(&0) || glob_at == Some(0);
        if has_cycle_from_root {
            prop_assert!(tree.errors.iter().any(|e| e.message.contains("cycle") || e.message.contains("more than")), "{:?}", tree.errors);
        }
        // Missing files (targets >= n) are reported, never a panic.
        if edges[0].iter().any(|&j| j >= n) {
            prop_assert!(!tree.errors.is_empty());
        }
    }
}

#[test]
fn adversarial_inputs_stay_fast() {
    let big = |unit: &str, bytes: usize| unit.repeat(bytes / unit.len().max(1));
    let inputs = [
        big("a{", 200_000),
        big("}", 200_000),
        big("\"", 200_001),
        big("\\", 200_000),
        big("${", 200_000),
        big("x ", 1_000_000),
        big(
            "server { listen 80; location / { proxy_pass http://127.0.0.1:1; } }\n",
            2_000_000,
        ),
        big("content_by_lua_block {", 100_000),
    ];
    for s in &inputs {
        let t = Instant::now();
        let _ = nginxconf::parse(s, Path::new("/big"));
        let _ = secrets::scan_text(s, "big");
        assert!(
            t.elapsed().as_secs() < 10,
            "slow on {:?}…",
            &s[..20.min(s.len())]
        );
    }
    for s in [
        big("sk-", 1_000_000),
        big("api_key = \"", 1_000_000),
        big("gsk_aaaaaaaaaa", 1_000_000),
        big("-----BEGIN ", 1_000_000),
    ] {
        let t = Instant::now();
        let _ = secrets::scan_text(&s, "big");
        assert!(t.elapsed().as_secs() < 10, "slow on {:?}…", &s[..20]);
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}{}", "a {".repeat(10_000), "}".repeat(10_000));
    let e = nginxconf::parse(&deep, Path::new("/deep")).unwrap_err();
    assert!(e.message.contains("nested deeper"));
    let _: PathBuf = e.file;
}

// ---------------------------------------------------------------------------
// Differential: where a real nginx is installed, it and the parser agree.

fn nginx_bin() -> Option<PathBuf> {
    which::which("nginx")
        .ok()
        .or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists()))
}

/// `nginx -t` on `body` wrapped in a minimal main config: Ok(()) or the error.
fn nginx_accepts(bin: &Path, dir: &Path, http_body: &str) -> Result<(), String> {
    let conf = dir.join("t.conf");
    fs::write(
        &conf,
        format!(
            "pid {}/nginx.pid;\nevents {{ worker_connections 16; }}\nhttp {{\n{http_body}\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .args(["-t", "-q", "-e", "stderr", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The sites `init` writes (kept equal to the renderer by a golden test)
/// load in a real nginx, with each state's include.
#[test]
fn the_example_sites_load_in_real_nginx() {
    let Some(bin) = nginx_bin() else {
        eprintln!("nginx not installed: differential test skipped");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx/examples");
    for site in ["moltguard-site.conf", "moltguard-site-openclaw.conf"] {
        for include in [
            "breaker-open.conf",
            "breaker-half-open.conf",
            "breaker-closed-for-30m.conf",
        ] {
            let inc = d.path().join("breaker.conf");
            fs::copy(examples.join(include), &inc).unwrap();
            let text = fs::read_to_string(examples.join(site)).unwrap().replace(
                "/etc/moltguard/nginx/breaker.conf",
                &inc.display().to_string(),
            );
            assert_eq!(
                nginx_accepts(&bin, d.path(), &text),
                Ok(()),
                "{site} with {include}"
            );
        }
    }
}

#[test]
fn parser_agrees_with_real_nginx_on_syntax() {
    let Some(bin) = nginx_bin() else {
        eprintln!("nginx not installed: differential test skipped");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let valid = [
        r#"map $http_upgrade $c { default upgrade; '' close; "~^x{2}$" "a;b}"; }"#,
        "types { text/html html htm; }",
        r#"server { listen 127.0.0.1:18443; set $x "${host}-\"q\""; set $y 'it\'s'; add_header X-B a}b; }"#,
        r#"server { if ($request_method = POST) { return 405; } if ($msec ~ "^(1[0-9]{2})[.]") { return 503 '{"a":1}\n'; } }"#,
        "server { location ~ ^/foo(bar|baz)$ { return 200 \"x#y\"; } # c\n add_header X-A \"1\" always;#c\n}",
        "server {\n listen\n 127.0.0.1:18444\n ;\n}",
    ];
    for body in valid {
        assert_eq!(
            nginx_accepts(&bin, d.path(), body),
            Ok(()),
            "nginx rejects {body}"
        );
        let text = fs::read_to_string(d.path().join("t.conf")).unwrap();
        assert!(
            nginxconf::parse(&text, Path::new("t")).is_ok(),
            "parser rejects {body}"
        );
    }
    let tree = nginxconf::parse(
        &fs::read_to_string(d.path().join("t.conf")).unwrap(),
        Path::new("t"),
    )
    .unwrap();
    let listen = &tree[2].children()[0].children()[0];
    assert_eq!(
        (listen.name.as_str(), listen.args.as_slice(), listen.line),
        ("listen", &["127.0.0.1:18444".to_string()][..], 5)
    );
    let invalid = [
        "server {",
        "server { } }",
        "server { add_header X \"a; }",
        "server { listen 127.0.0.1:18445 }",
        "server { add_header X 'a' }",
        "; server { }",
        "server { { } }",
    ];
    for body in invalid {
        assert!(
            nginx_accepts(&bin, d.path(), body).is_err(),
            "nginx accepts {body}"
        );
        let text = fs::read_to_string(d.path().join("t.conf")).unwrap();
        assert!(
            nginxconf::parse(&text, Path::new("t")).is_err(),
            "parser accepts {body}"
        );
    }
    let tree = nginxconf::parse(&format!("a {};", "\"b\\\"c\""), Path::new("t")).unwrap();
    assert_eq!(tree[0].args, ["b\"c"]);
}

#[test]
fn system_nginx_config_reads_the_same_from_disk_and_from_nginx_t() {
    let (Some(bin), true) = (nginx_bin(), Path::new("/etc/nginx/nginx.conf").exists()) else {
        eprintln!("no system nginx config: skipped");
        return;
    };
    let out = std::process::Command::new(bin).arg("-T").output().unwrap();
    if !out.status.success() {
        eprintln!("nginx -T fails here: skipped");
        return;
    }
    let from_t = nginxconf::parse_nginx_t_output(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let from_disk =
        nginxconf::load(Path::new("/etc/nginx/nginx.conf"), Path::new("/etc/nginx")).unwrap();
    assert!(from_t.errors.is_empty(), "{:?}", from_t.errors);
    assert!(from_disk.errors.is_empty(), "{:?}", from_disk.errors);
    let count = |t: &nginxconf::Tree| {
        let mut v = Vec::new();
        nginxconf::walk(&t.directives, &mut |d, _| {
            v.push((d.name.clone(), d.args.clone(), d.line))
        });
        v
    };
    assert_eq!(count(&from_t), count(&from_disk));
    assert!(count(&from_disk).len() > 10);
}
