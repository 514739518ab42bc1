//! Turning breaker state into nginx configuration.
//!
//! nginx cannot read JSON, so the include is derived from the state file and
//! regenerated on every transition. Everything here works around traps seen
//! on nginx 1.22:
//!
//! * A server-level `deny all` or `auth_basic` is overridden by a location's
//!   own `allow`/`deny` or `auth_basic off`, and a location-level `return`
//!   runs before access and auth checks. So every block is a server-level
//!   `if … { return … }`, which runs in the server rewrite phase, before any
//!   location is even chosen: no location can undo it.
//! * A reload takes effect only later and may silently fail; the allow token
//!   (`if (!-f token)`) is checked on every request, so deleting it denies at
//!   once, with no reload.
//! * A `--for` lifetime must end even if no moltguard process is alive, so
//!   the include compares nginx's clock (`$msec`) with the expiry itself.

use crate::breaker::state::{BreakerRecord, BreakerState};
use crate::config::{Config, Layout};
use std::fmt::Write as _;
use std::path::Path;

/// The first line of every rendered include; `parse_include_header` reads it back.
const INCLUDE_MAGIC: &str = "# moltguard breaker include:";

/// A path that cannot be written into nginx config safely (a quote, a newline, a `;`, ...).
#[derive(Debug, thiserror::Error)]
#[error(
    "the path {path} contains {what}, which nginx config cannot hold safely; use a path without it"
)]
pub struct UnsafePath {
    /// The path.
    pub path: String,
    /// What in it is unsafe.
    pub what: &'static str,
}

/// Quotes a path for nginx, refusing characters that would change meaning
/// (quotes end the string, `$` starts a variable, `;` and braces end directives).
pub fn quote_path(p: &Path) -> Result<String, UnsafePath> {
    let s = p.to_string_lossy();
    let bad = |what| UnsafePath {
        path: s.to_string(),
        what,
    };
    for c in s.chars() {
        match c {
            '"' | '\'' => return Err(bad("a quote")),
            '\\' => return Err(bad("a backslash")),
            '$' => return Err(bad("a '$'")),
            '{' | '}' | ';' => return Err(bad("a brace or semicolon")),
            c if c.is_control() => return Err(bad("a control character")),
            _ => {}
        }
    }
    Ok(format!("\"{s}\""))
}

/// A JSON body for `return`, free of characters nginx would interpret.
fn block_body(state: &str, meaning: &str, reason: &str, since: &str, generation: u64) -> String {
    let body = serde_json::json!({
        "error": {
            "type": "breaker_open",
            "state": state,
            "meaning": meaning,
            "reason": reason,
            "since": since,
            "generation": generation,
            "help": "the operator can run `moltguard status` on the host",
        }
    })
    .to_string();
    debug_assert!(!body.contains(['\'', '\\', '$']));
    body
}

/// The name of the edge's session cookie.
pub const SESSION_COOKIE: &str = "moltguard_edge";

/// Renders the breaker include for `record`. `session` is the value of this
/// generation's session cookie (`breaker::edge::session_cookie`): a browser
/// that gave the password once carries it instead of the password, so an
/// agent's own `Authorization: Bearer` reaches the agent.
pub fn render_include(
    record: &BreakerRecord,
    layout: &Layout,
    session: &str,
) -> Result<String, UnsafePath> {
    let token = quote_path(&layout.allow_token())?;
    let htpasswd = quote_path(&layout.htpasswd)?;
    let gen = record.generation;
    let since = record
        .changed_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut o = String::new();
    let _ = writeln!(o, "{INCLUDE_MAGIC} state={} generation={gen}", record.state);
    let _ = writeln!(
        o,
        "# Generated from {}; do not edit, run `moltguard breaker ...` instead.",
        layout.state_file().display()
    );
    let _ = writeln!(o, "# {}", record.state.label());
    let _ = writeln!(o, "default_type application/json;");
    let _ = writeln!(
        o,
        "add_header X-Breaker-State \"{}; generation={gen}\" always;",
        record.state
    );
    match record.state {
        BreakerState::Open => {
            // Nothing passes, so no session; the site's map still names the variable.
            let _ = writeln!(o, "set $moltguard_session \"\";");
            let body = block_body(
                "open",
                BreakerState::Open.meaning(),
                record.reason.as_str(),
                &since,
                gen,
            );
            let _ = writeln!(o, "return 503 '{body}\\n';");
        }
        BreakerState::HalfOpen | BreakerState::Closed => {
            if let Some(exp) = record.expires_at {
                let body = block_body(
                    "open",
                    BreakerState::Open.meaning(),
                    "TTL_EXPIRED",
                    &exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    gen,
                );
                let _ = writeln!(
                    o,
                    "# The lifetime ends at {exp}: nginx enforces it with its own clock."
                );
                let _ = writeln!(
                    o,
                    "if ($msec ~ \"^({})[.]\") {{ return 503 '{body}\\n'; }}",
                    at_or_after_regex(exp.timestamp().max(0) as u64)
                );
            }
            let body = block_body(
                "open",
                BreakerState::Open.meaning(),
                "ALLOW_TOKEN_MISSING",
                &since,
                gen,
            );
            let _ = writeln!(
                o,
                "# Fail-safe: without the allow token every request is denied, no reload needed."
            );
            let _ = writeln!(o, "if (!-f {token}) {{ return 503 '{body}\\n'; }}");
            if record.state == BreakerState::HalfOpen {
                let body = serde_json::json!({"error": {
                    "type": "breaker_half_open",
                    "state": "half-open",
                    "meaning": BreakerState::HalfOpen.meaning(),
                    "generation": gen,
                }})
                .to_string();
                let _ = writeln!(o, "# Half-open: loopback clients only.");
                let _ = writeln!(
                    o,
                    "if ($remote_addr !~ \"^(127[.]0[.]0[.]1|::1|::ffff:127[.]0[.]0[.]1)$\") {{ return 403 '{body}\\n'; }}"
                );
            }
            debug_assert!(session.bytes().all(|b| b.is_ascii_hexdigit()));
            let _ = writeln!(
                o,
                "# The password, or this generation's session cookie, set once the password was right."
            );
            let _ = writeln!(o, "set $moltguard_realm \"moltguard\";");
            let _ = writeln!(
                o,
                "if ($cookie_{SESSION_COOKIE} = \"{session}\") {{ set $moltguard_realm off; }}"
            );
            let _ = writeln!(o, "auth_basic $moltguard_realm;");
            let _ = writeln!(o, "auth_basic_user_file {htpasswd};");
            let _ = writeln!(
                o,
                "set $moltguard_session \"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict\";"
            );
            let _ = writeln!(o, "add_header Set-Cookie $moltguard_session_cookie always;");
        }
    }
    Ok(o)
}

/// The allow token for `record`: present only while the state admits
/// traffic. nginx only checks that it exists; its one line names the state
/// and generation that made it, so a token left by another generation (or
/// touched by hand) is recognised as not moltguard's current one.
pub fn render_allow_token(record: &BreakerRecord) -> Option<String> {
    record.state.admits_traffic().then(|| {
        format!(
            "moltguard allow token: state={} generation={}\n",
            record.state, record.generation
        )
    })
}

/// What a rendered include says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncludeHeader {
    /// The state the include renders.
    pub state: BreakerState,
    /// Its generation.
    pub generation: u64,
}

/// Reads the state and generation back from an include's first line.
pub fn parse_include_header(text: &str) -> Option<IncludeHeader> {
    let rest = text.lines().next()?.strip_prefix(INCLUDE_MAGIC)?;
    let mut state = None;
    let mut generation = None;
    for kv in rest.split_whitespace() {
        match kv.split_once('=') {
            Some(("state", v)) => state = BreakerState::parse(v),
            Some(("generation", v)) => generation = v.parse().ok(),
            _ => {}
        }
    }
    Some(IncludeHeader {
        state: state?,
        generation: generation?,
    })
}

/// A regex matching decimal integers (without leading zeros) that are
/// `>= n`. nginx `if` can only match regexes, so "now >= expiry" becomes
/// "the seconds part of $msec matches this".
pub fn at_or_after_regex(n: u64) -> String {
    let digits: Vec<u8> = n.to_string().into_bytes();
    let len = digits.len();
    let mut alts = Vec::new();
    // Any number with more digits is larger.
    alts.push(format!("[1-9][0-9]{{{len},}}"));
    // Same length: equal up to position i, larger at i, anything after.
    for i in 0..len {
        let d = digits[i] - b'0';
        if d == 9 {
            continue;
        }
        let lo = d + 1;
        let prefix = std::str::from_utf8(&digits[..i]).unwrap_or_default();
        let rest = len - i - 1;
        let class = if lo == 9 {
            "9".to_string()
        } else {
            format!("[{lo}-9]")
        };
        if rest == 0 {
            alts.push(format!("{prefix}{class}"));
        } else {
            alts.push(format!("{prefix}{class}[0-9]{{{rest}}}"));
        }
    }
    alts.push(n.to_string());
    alts.join("|")
}

/// The `http`-level pieces the include and the site rely on; the site
/// carries them, and so does the harness that tests a candidate include.
pub const HTTP_MAPS: &str = r#"map $http_upgrade $moltguard_connection_upgrade {
    default upgrade;
    ''      close;
}
# The session cookie goes only with a success answered after the password was
# checked ($remote_user alone is whatever a client sent; a wrong password is 401).
map "$status:$remote_user" $moltguard_session_cookie {
    "~^[23][0-9][0-9]:."  $moltguard_session;
    default               "";
}
# Neither the edge's password nor its session cookie travels upstream.
map $http_authorization $moltguard_upstream_authorization {
    "~*^basic\s"  "";
    default       $http_authorization;
}
map $http_cookie $moltguard_upstream_cookie {
    "~^(?<moltguard_before>.*?)(?:^|;\s*)moltguard_edge=[^;]*(?<moltguard_after>.*)$"  "$moltguard_before$moltguard_after";
    default  $http_cookie;
}
# Connections per client address, for `limit_conn` in the servers below.
limit_conn_zone $binary_remote_addr zone=moltguard_per_ip:10m;
"#;

/// The edge's own refusals (password missing or wrong, too many
/// connections, the upstream down) as JSON in moltgate's error shape, so
/// SDKs show a message rather than "Error code: 401". Named locations: no
/// request reaches them by its URI, and each only answers an error.
fn error_pages(upstream: &str) -> String {
    // (the status nginx decides, the one sent, where it is answered, the
    // error's message, type and code)
    let down = format!("{upstream} behind the edge is not answering; is it running?");
    let slow = format!("{upstream} behind the edge did not answer in time");
    let pages: [(u16, u16, &str, &str, &str, &str); 9] = [
        (400, 400, "@moltguard_400", "the edge could not read this HTTP request (malformed request line or headers)", "invalid_request_error", "bad_request"),
        (401, 401, "@moltguard_401", "the edge asks for your moltguard user and password (HTTP Basic auth); API clients send the moltgate key as X-Api-Key", "authentication_error", "edge_auth_required"),
        (403, 403, "@moltguard_403", "the edge refuses this request", "permission_error", "forbidden"),
        (413, 413, "@moltguard_413", "the request body is larger than the edge accepts (client_max_body_size)", "invalid_request_error", "body_too_large"),
        (414, 414, "/.moltguard/414.json", "the request URI is longer than the edge accepts (large_client_header_buffers)", "invalid_request_error", "uri_too_long"),
        (494, 431, "@moltguard_431", "a request header, or all of them, is larger than the edge accepts (large_client_header_buffers)", "invalid_request_error", "headers_too_large"),
        (429, 429, "@moltguard_429", "too many open connections from your address at the edge; close some and retry", "rate_limit_error", "too_many_connections_from_address"),
        (502, 502, "@moltguard_upstream_down", &down, "api_error", "upstream_unavailable"),
        (504, 504, "@moltguard_upstream_slow", &slow, "timeout_error", "upstream_timeout"),
    ];
    let mut out = String::from(
        "    # The edge's own refusals, in the JSON moltgate answers with. No
    # add_header in these locations: it would drop the include's
    # X-Breaker-State (the auth module's WWW-Authenticate is kept). A URI
    # too long leaves nginx no URI for a named location, so that one is an
    # internal URI (no request reaches it by its name); 494 is nginx's own
    # code for headers too large, 431 is HTTP's.\n",
    );
    for (nginx, sent, at, ..) in &pages {
        let _ = match nginx == sent {
            true => writeln!(out, "    error_page {nginx} {at};"),
            false => writeln!(out, "    error_page {nginx} ={sent} {at};"),
        };
    }
    for (_, sent, at, message, kind, code) in &pages {
        // The bodies sit in single quotes in nginx's syntax: none may hold one.
        assert!(!message.contains(['\'', '"', '\\']), "{message}");
        let head = match at.starts_with('@') {
            true => format!("location {at} {{"),
            false => format!("location = {at} {{\n        internal;"),
        };
        let _ = write!(
            out,
            r#"    {head}
        default_type application/json;
        return {sent} '{{"error":{{"message":"{message}","type":"{kind}","code":"{code}"}}}}\n';
    }}
"#
        );
    }
    out
}

/// Renders the site: a loopback server per upstream (moltgate, and the
/// agent's panel when configured), each with the breaker include at server
/// level.
pub fn render_site(config: &Config) -> Result<String, UnsafePath> {
    use crate::config::Upstream;
    let edge = &config.settings.edge;
    let include = quote_path(&config.layout.include_file())?;
    let listen = |port: u16| match edge.listen_address {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    };
    let mut out = format!(
        r#"# Generated by `moltguard init`. The breaker include decides who gets through;
# keep it at server level and add no `auth_basic off`, `allow`, `satisfy any` or
# location-level `return` inside these servers (they bypass the breaker).

{HTTP_MAPS}"#
    );
    for (port, upstream, kind) in edge.servers(config.settings.guardian.agent_port) {
        let location = match kind {
            Upstream::Gateway => format!(
                r#"    location / {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        # Overwrite, never append: a client cannot smuggle a fake address in.
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header Authorization $moltguard_upstream_authorization;
        proxy_set_header Cookie $moltguard_upstream_cookie;
        # WebSocket upgrades for the dashboard's live view.
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $moltguard_connection_upgrade;
        # LLM answers stream (SSE): pass bytes through as they come.
        proxy_buffering off;
        proxy_read_timeout 300s;
        # Long prompts and images are big; moltgate enforces its own limit
        # (MAX_BODY_BYTES, 16 MiB) with a clear message.
        client_max_body_size 16m;
    }}
"#
            ),
            Upstream::Panel => format!(
                r#"    # The agent's panel (OpenClaw's gateway: Control UI, HTTP API, WebSocket).
    location / {{
        proxy_pass http://127.0.0.1:{upstream};
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        # No forwarded headers: the agent sees what it is, a client on this
        # machine. OpenClaw refuses a loopback request that carries any
        # (proxy_attribution_required), and a client may not smuggle them in.
        proxy_set_header Forwarded "";
        proxy_set_header X-Forwarded-For "";
        proxy_set_header X-Forwarded-Host "";
        proxy_set_header X-Forwarded-Port "";
        proxy_set_header X-Forwarded-Proto "";
        proxy_set_header X-Forwarded-Server "";
        proxy_set_header X-Real-IP "";
        # The agent's own token (Authorization: Bearer) goes through.
        proxy_set_header Authorization $moltguard_upstream_authorization;
        proxy_set_header Cookie $moltguard_upstream_cookie;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $moltguard_connection_upgrade;
        proxy_buffering off;
        # An open Control UI keeps its WebSocket; a reload into OPEN still
        # ends it within worker_shutdown_timeout.
        proxy_read_timeout 1h;
        proxy_send_timeout 1h;
        client_max_body_size 64m;
    }}
"#
            ),
        };
        let _ = write!(
            out,
            r#"
server {{
    listen {listen};
    server_name _;
    server_tokens off;

    include {include};

    # One client cannot hold the edge: nginx's own deadlines, and a cap on
    # the connections of one address.
    client_header_timeout 10s;
    client_body_timeout 10s;
    keepalive_timeout 30s;
    send_timeout 60s;
{limit_conn}
{errors}
{location}}}
"#,
            listen = listen(port),
            limit_conn = match edge.max_connections_per_ip {
                0 => "    # limit_conn: off ([edge] max_connections_per_ip = 0)".to_string(),
                n => format!("    limit_conn moltguard_per_ip {n};\n    limit_conn_status 429;"),
            },
            errors = error_pages(match kind {
                Upstream::Gateway => "moltgate",
                Upstream::Panel => "the agent panel",
            }),
        );
    }
    Ok(out)
}

/// Renders the main config of a managed nginx (private prefix, no root needed).
pub fn render_managed_main(config: &Config) -> Result<String, UnsafePath> {
    let l = &config.layout;
    let prefix = l.managed_prefix();
    let q = |p: &Path| quote_path(p);
    Ok(format!(
        r#"# Generated by moltguard: a private nginx that moltguard starts and stops.
worker_processes 1;
pid {pid};
error_log {error_log} warn;
# A reload into OPEN must cut long-lived streams (SSE, WebSockets) within seconds.
worker_shutdown_timeout {wst}s;
# Connections that have not sent their headers yet are not capped per
# address (limit_conn counts requests): room for thousands of them, each
# cut at client_header_timeout, keeps a slowloris from filling the edge.
worker_rlimit_nofile 20000;

events {{
    worker_connections 8192;
}}

http {{
    access_log {access_log};
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server_tokens off;

    include {site};
}}
"#,
        pid = q(&l.managed_pid_file())?,
        error_log = q(&prefix.join("logs/error.log"))?,
        access_log = q(&prefix.join("logs/access.log"))?,
        tmp = q(&prefix.join("tmp"))?.trim_matches('"'),
        site = q(&l.site_file())?,
        wst = config
            .settings
            .nginx
            .worker_shutdown_timeout
            .as_secs()
            .max(1),
    ))
}

/// A minimal config that wraps a candidate include in a server block, so
/// `nginx -t` can check the include alone before it replaces the live one.
/// `nginx -t` binds the listen address but tolerates "address in use", so
/// the harness listens on the edge port, which the live nginx usually holds.
pub fn render_candidate_harness(
    candidate: &Path,
    prefix: &Path,
    port: u16,
) -> Result<String, UnsafePath> {
    Ok(format!(
        r#"pid {pid};
error_log {err} warn;
events {{ worker_connections 16; }}
http {{
    access_log off;
{maps}
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        include {candidate};
    }}
}}
"#,
        pid = quote_path(&prefix.join("harness.pid"))?,
        err = quote_path(&prefix.join("harness-error.log"))?,
        tmp = quote_path(&prefix.join("tmp"))?.trim_matches('"'),
        candidate = quote_path(candidate)?,
        maps = HTTP_MAPS,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::state::ReasonCode;
    use chrono::{TimeZone, Utc};

    /// A session cookie value, as `breaker::edge::session_cookie` makes them.
    const SESSION: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    /// nginx uses PCRE; this subset (classes, counted repeats) means the same in `regex`.
    fn ge_regex(n: u64) -> regex::Regex {
        regex::Regex::new(&format!("^({})$", at_or_after_regex(n))).unwrap()
    }

    #[test]
    fn at_or_after_matches_exactly_the_larger_numbers() {
        let samples = [
            1u64, 9, 10, 99, 100, 1795639697, 1799999999, 1800000000, 1790000009, 2000000000,
        ];
        for &n in &samples {
            let re = ge_regex(n);
            for x in [
                n.saturating_sub(1),
                n,
                n + 1,
                n + 10,
                n * 10,
                n / 10,
                9_999_999_999,
                10_000_000_000,
            ] {
                assert_eq!(re.is_match(&x.to_string()), x >= n, "n={n} x={x} re={re}");
            }
        }
        // Exhaustive over a small range.
        for n in 0..300u64 {
            let re = ge_regex(n);
            for x in 0..1200u64 {
                assert_eq!(re.is_match(&x.to_string()), x >= n, "n={n} x={x}");
            }
        }
    }

    fn layout() -> Layout {
        Layout {
            home: None,
            config_file: "/m/moltguard.toml".into(),
            state_dir: "/m/state".into(),
            log_dir: "/m/log".into(),
            htpasswd: "/m/htpasswd".into(),
            nginx_dir: "/m/nginx".into(),
        }
    }

    #[test]
    fn open_is_a_server_level_return_with_the_reason() {
        let mut r = BreakerRecord::initial(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        r.reason = ReasonCode::ExposurePublicBind;
        r.generation = 7;
        let inc = render_include(&r, &layout(), SESSION).unwrap();
        assert_eq!(
            parse_include_header(&inc),
            Some(IncludeHeader {
                state: BreakerState::Open,
                generation: 7
            })
        );
        assert!(inc.contains("return 503 '{"));
        assert!(inc.contains("\"reason\":\"EXPOSURE_PUBLIC_BIND\""));
        assert!(inc.contains("2026-01-02T03:04:05Z"));
        assert!(
            !inc.contains("auth_basic "),
            "open needs no auth: nothing passes"
        );
    }

    #[test]
    fn closed_requires_token_and_auth_and_enforces_expiry() {
        let mut r = BreakerRecord::initial(Utc::now());
        r.state = BreakerState::Closed;
        r.expires_at = Some(Utc.timestamp_opt(1_800_000_000, 0).unwrap());
        let inc = render_include(&r, &layout(), SESSION).unwrap();
        assert!(inc.contains("if (!-f \"/m/state/edge/breaker.allow\")"));
        assert!(inc.contains("auth_basic_user_file \"/m/htpasswd\";"));
        assert!(inc.contains("$msec ~"));
        assert!(inc.contains("TTL_EXPIRED"));
        assert!(
            !inc.contains("127[.]0[.]0[.]1"),
            "closed admits remote clients"
        );
    }

    #[test]
    fn half_open_admits_only_loopback() {
        let mut r = BreakerRecord::initial(Utc::now());
        r.state = BreakerState::HalfOpen;
        let inc = render_include(&r, &layout(), SESSION).unwrap();
        assert!(inc.contains("$remote_addr !~"));
        assert!(inc.contains("return 403"));
        assert!(inc.contains("auth_basic "));
    }

    #[test]
    fn hostile_paths_are_refused() {
        for p in ["/a\"b", "/a$b", "/a;b", "/a{b", "/a\nb", "/a\\b"] {
            assert!(quote_path(Path::new(p)).is_err(), "{p:?}");
        }
        assert_eq!(
            quote_path(Path::new("/Users/Jane Doe/x")).unwrap(),
            "\"/Users/Jane Doe/x\""
        );
    }

    /// `nginx/examples/` shows users exactly what moltguard writes.
    #[test]
    fn examples_in_the_repo_match_the_renderer() {
        let layout = Layout {
            home: None,
            config_file: "/etc/moltguard/moltguard.toml".into(),
            state_dir: "/var/lib/moltguard".into(),
            log_dir: "/var/log/moltguard".into(),
            htpasswd: "/etc/moltguard/htpasswd".into(),
            nginx_dir: "/etc/moltguard/nginx".into(),
        };
        let config = Config {
            settings: Default::default(),
            layout: layout.clone(),
            config_file_found: true,
        };
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let mut r = BreakerRecord::initial(at);
        r.generation = 7;
        r.reason = ReasonCode::Manual;
        let mut with_panel = config.clone();
        with_panel.settings.edge.panel = crate::config::Panel::Openclaw;
        let mut files = vec![
            ("moltguard-site.conf", render_site(&config).unwrap()),
            (
                "moltguard-site-openclaw.conf",
                render_site(&with_panel).unwrap(),
            ),
            ("nginx-managed.conf", render_managed_main(&config).unwrap()),
            (
                "breaker-open.conf",
                render_include(&r, &layout, SESSION).unwrap(),
            ),
        ];
        r.state = BreakerState::HalfOpen;
        files.push((
            "breaker-half-open.conf",
            render_include(&r, &layout, SESSION).unwrap(),
        ));
        r.state = BreakerState::Closed;
        r.expires_at = Some(at + chrono::Duration::minutes(30));
        files.push((
            "breaker-closed-for-30m.conf",
            render_include(&r, &layout, SESSION).unwrap(),
        ));
        for (name, text) in files {
            moltguard_test_support::golden::check(&format!("nginx/examples/{name}"), &text);
        }
    }

    /// The maps strip the session cookie by its name, spelled out there.
    #[test]
    fn the_maps_name_the_session_cookie() {
        assert!(HTTP_MAPS.contains(&format!("{SESSION_COOKIE}=[^;]*")));
    }

    #[test]
    fn header_parser_ignores_other_files() {
        assert_eq!(parse_include_header(""), None);
        assert_eq!(parse_include_header("server { }"), None);
        assert_eq!(
            parse_include_header("# moltguard breaker include: state=ajar generation=1"),
            None
        );
    }
}
