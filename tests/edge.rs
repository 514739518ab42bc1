//! Phase 1 end to end: the breaker, a real nginx, real sockets, real files.
//!
//! Every test starts its own nginx on a private prefix (ports >= 1024,
//! pid/logs/temp inside the prefix). When the tests run as root, moltguard
//! runs that nginx as the unprivileged `nobody`.

use moltguard_test_support::stack;

use stack::*;
use std::time::Duration;

#[test]
fn open_blocks_everything_with_the_reason() {
    let s = Stack::started();
    for auth in [false, true] {
        let r = s.get(auth);
        assert_eq!(r.status, 503);
        let j = r.json();
        assert_eq!(j["error"]["state"], "open");
        assert_eq!(j["error"]["reason"], "INIT");
        assert!(j["error"]["since"].as_str().unwrap().ends_with('Z'));
        assert_eq!(r.header("X-Breaker-State"), Some("open; generation=1"));
    }
    s.ok(&["breaker", "close"]);
    s.ok(&["breaker", "open", "--reason", "going out"]);
    let r = s.get(true);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["reason"], "MANUAL");
    let st = s.state();
    assert_eq!(st["state"], "open");
    assert_eq!(st["detail"], "going out");
    assert_eq!(st["generation"], 3);
}

#[test]
fn closed_requires_auth_and_passes_traffic() {
    let s = Stack::started();
    let (code, v) = s.json(&["breaker", "close"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "applied");
    let anon = s.get(false);
    assert_eq!(anon.status, 401);
    assert_eq!(anon.header("X-Breaker-State"), Some("closed; generation=2"));
    let wrong = http_get(s.edge(), None, Some((USER, "not-the-password")), &[]);
    assert_eq!(wrong.status, 401);
    let ok = s.get(true);
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.starts_with("upstream ok"));
    // A remote client is let through too (with auth).
    assert_eq!(
        http_get(s.edge(), Some("127.0.0.2"), Some((USER, PASSWORD)), &[]).status,
        200
    );
}

#[test]
fn forwarded_for_is_overwritten_not_appended() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let r = http_get(
        s.edge(),
        None,
        Some((USER, PASSWORD)),
        &[("X-Forwarded-For", "203.0.113.9")],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("upstream ok; xff=127.0.0.1;"),
        "{}",
        r.body
    );
}

#[test]
fn a_right_password_once_gives_a_session_cookie_for_this_generation() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let cookie_of = |r: &Response| {
        r.header("Set-Cookie")
            .map(|c| c.split(';').next().unwrap().to_string())
    };
    // Anonymous and wrong passwords get no cookie.
    assert_eq!(cookie_of(&s.get(false)), None);
    let wrong = http_get(s.edge(), None, Some((USER, "not-the-password")), &[]);
    assert_eq!((wrong.status, cookie_of(&wrong)), (401, None));
    let ok = s.get(true);
    assert_eq!(ok.status, 200);
    let cookie = cookie_of(&ok).expect("a session cookie");
    assert!(cookie.starts_with("moltguard_edge="), "{cookie}");
    let set = ok.header("Set-Cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    // Neither the password nor the cookie travels upstream.
    assert!(ok.body.contains("authorization=-; cookie=-"), "{}", ok.body);
    // The cookie alone gets through, and an agent's own bearer token with it.
    let with_cookie = http_get(
        s.edge(),
        Some("127.0.0.2"),
        None,
        &[
            ("Cookie", &format!("theme=dark; {cookie}")),
            ("Authorization", "Bearer agent-token"),
        ],
    );
    assert_eq!(with_cookie.status, 200, "{}", with_cookie.body);
    assert!(
        with_cookie
            .body
            .contains("authorization=Bearer agent-token; cookie=theme=dark"),
        "{}",
        with_cookie.body
    );
    assert!(
        !with_cookie.body.contains("moltguard_edge"),
        "{}",
        with_cookie.body
    );
    let forged = http_get(s.edge(), None, None, &[("Cookie", "moltguard_edge=00ff")]);
    assert_eq!(forged.status, 401);
    // Half-open: the cookie does not get a remote client past the loopback rule.
    s.ok(&["breaker", "half-open"]);
    let fresh = cookie_of(&s.get(true)).unwrap();
    assert_ne!(fresh, cookie, "every generation has its own session");
    let remote = http_get(s.edge(), Some("127.0.0.2"), None, &[("Cookie", &fresh)]);
    assert_eq!(remote.status, 403);
    // Every transition ends every session.
    s.ok(&["breaker", "close"]);
    let old = http_get(s.edge(), None, None, &[("Cookie", &fresh)]);
    assert_eq!(old.status, 401);
    s.ok(&["breaker", "open"]);
    let r = http_get(s.edge(), None, Some((USER, PASSWORD)), &[]);
    assert_eq!((r.status, cookie_of(&r)), (503, None));
}

#[test]
fn half_open_admits_only_loopback_and_still_wants_auth() {
    let s = Stack::started();
    s.ok(&["breaker", "half-open"]);
    assert_eq!(s.get(false).status, 401);
    assert_eq!(s.get(true).status, 200);
    let remote = http_get(s.edge(), Some("127.0.0.2"), Some((USER, PASSWORD)), &[]);
    assert_eq!(remote.status, 403, "{}", remote.body);
    assert_eq!(remote.json()["error"]["state"], "half-open");
}

#[test]
fn close_is_refused_without_users() {
    let s = Stack::new();
    s.ok(&["nginx", "start"]);
    let out = s.run(&["breaker", "close"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("htpasswd") && err.contains("auth add-user"),
        "{err}"
    );
    assert_eq!(s.get(false).status, 503);
    // An emptied file is refused the same way.
    std::fs::write(s.path("htpasswd"), "# nobody here\n").unwrap();
    assert_eq!(s.run(&["breaker", "half-open"]).status.code(), Some(3));
    assert_eq!(s.state()["state"], "open");
}

/// `breaker close --for 2s`, leaving no expiry watcher behind.
fn close_for_2s_without_a_watcher(s: &Stack) {
    let out = s
        .command(&["breaker", "close", "--for", "2s"])
        .env("MOLTGUARD_EXPIRY_WATCHER", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lifetime_expiry_blocks_without_any_moltguard_process() {
    let s = Stack::started();
    // No watcher either: nginx alone.
    close_for_2s_without_a_watcher(&s);
    assert_eq!(s.get(true).status, 200);
    // nginx itself compares its clock with the expiry: no daemon involved.
    assert!(eventually(Duration::from_secs(6), || s.get(true).status == 503));
    let r = s.get(true);
    assert_eq!(r.json()["error"]["reason"], "TTL_EXPIRED");
    // The next moltguard command records the expiry as a transition.
    let (_, v) = s.json(&["status"]);
    assert_eq!(v["state"], "open");
    assert_eq!(v["reason"], "TTL_EXPIRED");
    assert_eq!(s.get(true).json()["error"]["reason"], "TTL_EXPIRED");
    // And says how to let traffic through again, for this setup.
    assert_eq!(v["remedy"]["state"], "open", "{v}");
    assert_eq!(
        v["remedy"]["commands"][0]["run"],
        format!(
            "moltguard --home {} breaker close --for 30m",
            s.home.path().display()
        )
    );
}

/// A WebSocket through the edge (Basic auth), as a raw stream.
fn open_websocket(s: &Stack) -> std::net::TcpStream {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.edge()).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    write!(
        c,
        "GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101", "{}", String::from_utf8_lossy(&head));
    c
}

/// Blocks until the peer closes `c` (or `limit` passes); how long it took.
fn until_closed(mut c: std::net::TcpStream, limit: Duration) -> Duration {
    use std::io::Read;
    let start = std::time::Instant::now();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => break,
        }
    }
    start.elapsed()
}

#[test]
fn an_expired_lifetime_ends_open_connections_with_no_guardian() {
    let s = Stack::started();
    s.ok(&["breaker", "close", "--for", "3s"]);
    let ws = open_websocket(&s);
    // The watcher `close --for` left: at the expiry it records it and
    // reloads, and the old worker closes the connection.
    let lasted = until_closed(ws, Duration::from_secs(30));
    let wst = 5; // worker_shutdown_timeout in the starter config
    assert!(
        lasted < Duration::from_secs(3 + wst + 3),
        "the WebSocket lasted {lasted:?}"
    );
    assert!(
        lasted > Duration::from_secs(2),
        "closed before the expiry: {lasted:?}"
    );
    println!(
        "an open WebSocket ended {:.1} s after `close --for 3s` (no guardian)",
        lasted.as_secs_f64()
    );
    let (_, v) = s.json(&["status"]);
    assert_eq!(v["state"], "open");
    assert_eq!(v["reason"], "TTL_EXPIRED");
    // Without the watcher (and no guardian) it would have stayed open.
    close_for_2s_without_a_watcher(&s);
    let ws = open_websocket(&s);
    let lasted = until_closed(ws, Duration::from_secs(8));
    assert!(
        lasted >= Duration::from_secs(8),
        "closed after {lasted:?} with no watcher"
    );
}

#[test]
fn the_edges_own_refusals_are_json_and_one_address_cannot_hold_it() {
    let s = Stack::started();
    s.set_config("max_connections_per_ip", "max_connections_per_ip = 2");
    s.ok(&["init", "--force"]);
    s.ok(&["nginx", "reload"]);
    s.ok(&["breaker", "close"]);
    // No password: 401 with the browser's prompt and a message SDKs show.
    let r = s.get(false);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"moltguard\"")
    );
    assert_eq!(
        r.json()["error"]["code"],
        "edge_auth_required",
        "{}",
        r.body
    );
    // Two long-lived requests (WebSockets) from this address, then a third: 429.
    let a = open_websocket(&s);
    let b = open_websocket(&s);
    let r = s.get(true);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(
        r.json()["error"]["code"],
        "too_many_connections_from_address"
    );
    drop((a, b));
    assert!(eventually(Duration::from_secs(5), || s.get(true).status == 200));

    // What nginx refuses before any password check is JSON too, with the
    // status HTTP has for it.
    let long_uri = format!("/{}", "a".repeat(20_000));
    let big_header = ("X-Big", "b".repeat(20_000));
    for (what, request, status, code) in [
        (
            "a duplicate Host",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(),
            400,
            "bad_request",
        ),
        (
            "a 20 KB URI",
            format!("GET {long_uri} HTTP/1.1\r\nHost: a\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            "a 20 KB header",
            format!(
                "GET / HTTP/1.1\r\nHost: a\r\n{}: {}\r\n\r\n",
                big_header.0, big_header.1
            ),
            431,
            "headers_too_large",
        ),
        (
            "a 1 GB body announced",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n".to_string(),
            413,
            "body_too_large",
        ),
    ] {
        let r = raw_request(s.edge(), request.as_bytes()).unwrap();
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert_eq!(r.header("Content-Type"), Some("application/json"), "{what}");
        assert_eq!(r.json()["error"]["code"], code, "{what}: {}", r.body);
    }
}

#[test]
fn a_dead_upstream_is_a_json_502() {
    let s = Stack::started();
    // An upstream port where nothing listens.
    let dead = free_port();
    s.set_config("upstream_port", &format!("upstream_port = {dead}"));
    s.ok(&["init", "--force"]);
    s.ok(&["nginx", "reload"]);
    s.ok(&["breaker", "close"]);
    let r = s.get(true);
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        r.json()["error"]["code"],
        "upstream_unavailable",
        "{}",
        r.body
    );
}

#[test]
fn deleting_the_allow_token_denies_at_once() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    std::fs::remove_file(s.path("state/edge/breaker.allow")).unwrap();
    let r = s.get(true);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["reason"], "ALLOW_TOKEN_MISSING");
}

#[test]
fn corrupt_state_is_reported_repaired_and_blocks() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    std::fs::write(
        s.path("state/breaker.json"),
        "{\"schema_version\": 1, \"state\": \"clo",
    )
    .unwrap();
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "status must say it was not healthy: {v}");
    assert_eq!(v["settled"][0]["kind"], "repaired-state", "{v}");
    assert!(
        v["settled"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid"),
        "{v}"
    );
    assert_eq!(v["state"], "open");
    assert_eq!(v["reason"], "STATE_INVALID");
    let r = s.get(true);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["reason"], "STATE_INVALID");
    // The bad file was kept, and the generation never went backwards.
    let kept = std::fs::read_dir(s.path("state"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("breaker.json.invalid-")
        });
    assert!(kept);
    assert!(v["generation"].as_u64().unwrap() > 2);
    // Next status is healthy again.
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn unknown_schema_version_fails_closed() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let mut st = s.state();
    st["schema_version"] = 99.into();
    std::fs::write(s.path("state/breaker.json"), st.to_string()).unwrap();
    let (_, v) = s.json(&["status"]);
    assert_eq!(v["reason"], "STATE_INVALID");
    assert_eq!(s.get(true).status, 503);
}

/// A port the edge must also listen on is taken: `nginx -t` passes and
/// `nginx -s reload` exits 0, but the new config never loads.
fn take_a_port_in_the_site(s: &Stack) -> std::net::TcpListener {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let site = s.path("nginx/moltguard-site.conf");
    let text = read(&site).replacen(
        "server_name _;",
        &format!("server_name _;\n    listen 127.0.0.1:{port};"),
        1,
    );
    std::fs::write(&site, text).unwrap();
    blocker
}

#[test]
fn failed_reload_to_closed_is_detected_and_rolled_back() {
    let s = Stack::started();
    let _blocker = take_a_port_in_the_site(&s);
    let (code, v) = s.json(&["breaker", "close"]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["outcome"], "rolled-back");
    assert!(v["message"].as_str().unwrap().contains("generation"), "{v}");
    // The state is still OPEN and nginx still serves it.
    let st = s.state();
    assert_eq!(st["state"], "open");
    assert_eq!(st["last_apply"]["outcome"], "rolled-back");
    assert_eq!(s.get(true).status, 503);
    assert!(!s.path("state/edge/breaker.allow").exists());
    let log = read(&s.path("state/audit.jsonl"));
    assert!(log
        .lines()
        .last()
        .unwrap()
        .contains("\"outcome\":\"rolled-back\""));
}

#[test]
fn failed_reload_to_open_keeps_a_running_config_that_denies() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    let _blocker = take_a_port_in_the_site(&s);
    let (code, v) = s.json(&["breaker", "open"]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["outcome"], "not-reloaded", "{v}");
    // The token is gone: the CLOSED config still running refuses everyone.
    let r = s.get(true);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["reason"], "ALLOW_TOKEN_MISSING");
    assert!(s.nginx_pid().is_some());
    let st = s.state();
    assert_eq!(st["state"], "open");
    assert_eq!(st["last_apply"]["outcome"], "not-reloaded");
    // status says so, and does not call it healthy.
    let (code, v) = s.json(&["status"]);
    assert_eq!(code, 5, "{v}");
    assert!(
        v["nginx"]["summary"]
            .as_str()
            .unwrap()
            .contains("could not load"),
        "{v}"
    );
}

#[test]
fn failed_reload_to_open_stops_an_nginx_that_still_serves() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    // The running config is made to serve without the token, behind
    // moltguard's back; then nginx can no longer load anything.
    s.edit_include(|t| {
        t.lines()
            .filter(|l| !l.contains("breaker.allow"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    s.hand_reload();
    let _blocker = take_a_port_in_the_site(&s);
    std::fs::remove_file(s.path("state/edge/breaker.allow")).unwrap();
    assert_eq!(s.get(true).status, 200, "the tampered config serves");
    // The edited include is drift, repaired toward OPEN before the change
    // asked for; the reload cannot load, the running config still serves.
    let (code, v) = s.json(&["breaker", "open"]);
    assert_eq!(code, 0, "{v}");
    let repair = v["preliminary"][0]["message"].as_str().unwrap();
    assert!(repair.contains("nginx-stopped"), "{v}");
    assert!(eventually(Duration::from_secs(5), || s
        .nginx_pid()
        .is_none()));
    assert!(
        try_http_get(s.edge(), None, Some((USER, PASSWORD)), &[]).is_err(),
        "nothing may serve"
    );
    assert_eq!(s.state()["state"], "open");
    let log = read(&s.path("state/audit.jsonl"));
    assert!(log.contains("\"outcome\":\"nginx-stopped\""), "{log}");
}

#[test]
fn audit_log_chain_verifies_and_detects_tampering() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    s.ok(&["breaker", "open"]);
    let (code, v) = s.json(&["audit-log", "verify"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["entries"], 3);
    let log = s.path("state/audit.jsonl");
    std::fs::write(
        &log,
        read(&log).replacen("\"actor\":\"user\"", "\"actor\":\"guardian\"", 1),
    )
    .unwrap();
    let (code, v) = s.json(&["audit-log", "verify"]);
    assert_eq!(code, 6, "{v}");
    assert_eq!(v["intact"], false);
}

#[test]
fn an_old_include_put_back_is_never_reloaded() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    // Someone puts an old include back by hand and asks for a reload.
    s.edit_include(|t| t.replace("generation=2", "generation=1"));
    let (code, v) = s.json(&["nginx", "reload"]);
    assert_eq!(code, 0, "{v}");
    assert!(
        v["settled"][0]["message"]
            .as_str()
            .unwrap()
            .contains("differs from what the state renders"),
        "{v}"
    );
    let st = s.state();
    assert_eq!(st["state"], "open");
    assert_eq!(st["reason"], "NGINX_DRIFT");
    let r = s.get(true);
    assert_eq!(r.status, 503);
    assert_eq!(
        r.header("X-Breaker-State"),
        Some(format!("open; generation={}", st["generation"]).as_str())
    );
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn nginx_not_running_is_said_plainly() {
    let s = Stack::new();
    s.add_user();
    let (code, v) = s.json(&["breaker", "close", "--for", "10m"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"], "nginx-not-running");
    let (code, v) = s.json(&["status"]);
    assert_eq!(
        code, 5,
        "a closed breaker nobody serves is not healthy: {v}"
    );
    s.ok(&["nginx", "start"]);
    assert_eq!(s.get(true).status, 200);
    assert_eq!(s.json(&["status"]).0, 0);
}

#[test]
fn malformed_config_is_a_clear_error() {
    let s = Stack::new();
    std::fs::write(s.path("moltguard.toml"), "[edge]\nport = \"high\"\n").unwrap();
    let out = s.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("moltguard.toml") && err.contains("port"),
        "{err}"
    );
}

#[test]
fn init_keeps_state_and_refuses_to_ignore_ports() {
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    s.ok(&["init"]);
    assert_eq!(s.state()["state"], "closed");
    assert_eq!(
        s.run(&["init", "--edge-port", "1234"]).status.code(),
        Some(3)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn managed_nginx_runs_unprivileged() {
    let s = Stack::started();
    let pid = s.nginx_pid().unwrap();
    let status = read(std::path::Path::new(&format!("/proc/{pid}/status")));
    let uid: u32 = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(uid, 0, "the managed nginx master must not run as root");
}

#[test]
fn secrets_are_stored_0600_and_never_printed() {
    use std::os::unix::fs::PermissionsExt;
    let s = Stack::new();
    let value = "gsk_live_value_that_must_not_be_printed_0123456789";
    let out = s.run_with_stdin(
        &["secrets", "set", "GROQ_API_KEY", "--value-stdin"],
        &format!("{value}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(value));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(value));
    let file = s.path("state/secrets/GROQ_API_KEY");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read(&file), value);
    let (_, v) = s.json(&["secrets", "list"]);
    assert_eq!(v["names"], serde_json::json!(["GROQ_API_KEY"]));
    // A name that could escape the directory is refused.
    let out = s.run_with_stdin(&["secrets", "set", "../evil", "--value-stdin"], "x\n");
    assert_eq!(out.status.code(), Some(2));
}

/// fail2ban's own `nginx-http-auth` filter finds every wrong password in
/// the log the generated jail points at, and fail2ban reads the jail.
#[test]
fn wrong_edge_passwords_are_what_the_fail2ban_jail_bans() {
    let Some(regex) = tool("fail2ban-regex") else {
        return;
    };
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    for password in ["guess1", "guess2", "guess3", "guess4"] {
        let r = try_http_get(s.edge(), Some("127.0.0.5"), Some((USER, password)), &[]).unwrap();
        assert_eq!(r.status, 401);
    }
    let r = try_http_get(s.edge(), Some("127.0.0.5"), Some(("mallory", "x")), &[]).unwrap();
    assert_eq!(r.status, 401);
    // The right password is no failure.
    let r = try_http_get(s.edge(), Some("127.0.0.6"), Some((USER, PASSWORD)), &[]).unwrap();
    assert_eq!(r.status, 200);

    let (code, v) = s.json(&["nginx", "fail2ban-jail"]);
    assert_eq!(code, 0, "{v}");
    let log = v["logpath"].as_str().unwrap().to_string();
    let jail = v["jail"].as_str().unwrap().to_string();
    assert!(
        jail.contains(&format!("port     = {}\n", s.edge_port)),
        "{jail}"
    );

    let out = std::process::Command::new(&regex)
        .args([
            "--print-all-matched",
            &log,
            "/etc/fail2ban/filter.d/nginx-http-auth.conf",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let matched: usize = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("Lines:")?;
            rest.split(',')
                .find_map(|p| p.trim().strip_suffix(" matched")?.parse().ok())
        })
        .unwrap_or_else(|| panic!("no Lines: summary in\n{text}"));
    assert_eq!(
        matched, 5,
        "four wrong passwords and an unknown user:\n{text}"
    );
    assert!(text.contains("127.0.0.5"), "{text}");
    assert!(!text.contains("127.0.0.6"), "{text}");

    // fail2ban itself reads the jail: a private configuration directory with
    // the system's filters and actions, and the generated jail.
    let etc = tempfile::tempdir().unwrap();
    for f in [
        "fail2ban.conf",
        "jail.conf",
        "paths-common.conf",
        "paths-debian.conf",
    ] {
        let from = std::path::Path::new("/etc/fail2ban").join(f);
        if from.exists() {
            std::fs::copy(&from, etc.path().join(f)).unwrap();
        }
    }
    for d in ["filter.d", "action.d"] {
        std::os::unix::fs::symlink(format!("/etc/fail2ban/{d}"), etc.path().join(d)).unwrap();
    }
    std::fs::create_dir(etc.path().join("jail.d")).unwrap();
    std::fs::write(etc.path().join("jail.d/moltguard.local"), &jail).unwrap();
    let out = std::process::Command::new(regex.with_file_name("fail2ban-client"))
        .args(["-c", etc.path().to_str().unwrap(), "-d"])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dump}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dump.contains("['add', 'moltguard-edge-auth'"), "{dump}");
    assert!(
        dump.contains(&log),
        "the jail follows the edge's log:\n{dump}"
    );
}

/// 1,200 connections from one address that never finish their headers
/// (more than nginx's old 1,024 worker connections) leave room for
/// everyone else: `limit_conn` cannot count them, so the edge must hold
/// them until `client_header_timeout`.
#[test]
fn a_slowloris_from_one_address_does_not_fill_the_edge() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 8192 && hard > soft {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    }
    let s = Stack::started();
    s.ok(&["breaker", "close"]);
    let mut held = Vec::new();
    for _ in 0..1200 {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let from: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
        sock.bind(&from.into()).unwrap();
        sock.connect_timeout(&s.edge().into(), Duration::from_secs(5))
            .unwrap();
        let mut c = std::net::TcpStream::from(sock);
        std::io::Write::write_all(&mut c, b"GET / HTTP/1.1\r\nHost: slow\r\n").unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    let r = try_http_get(s.edge(), Some("127.0.0.3"), Some((USER, PASSWORD)), &[])
        .expect("another client is still served");
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    drop(held);
}

#[test]
fn asking_for_the_state_in_force_changes_nothing_and_reloads_nothing() {
    let s = Stack::started();
    s.ok(&["breaker", "half-open"]);
    let before = s.state();
    let audit = read(&s.path("state/audit.jsonl"));
    let (code, again) = s.json(&["breaker", "half-open"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(again["message"], "already half-open; nothing reloaded");
    assert_eq!(s.state()["generation"], before["generation"]);
    assert_eq!(
        read(&s.path("state/audit.jsonl")),
        audit,
        "nothing recorded"
    );
    let text = s.ok(&["breaker", "half-open"]);
    assert!(text.contains("already HALF-OPEN"), "{text}");
    // A new lifetime is a change; so is a served edge that does not match.
    let (_, timed) = s.json(&["breaker", "half-open", "--for", "10m"]);
    assert_eq!(timed["outcome"], "applied", "{timed}");
    let (_, open) = s.json(&["breaker", "open"]);
    assert_eq!(open["outcome"], "applied");
    s.ok(&["nginx", "stop"]);
    s.edit_include(|t| t.replace("open", "closed"));
    let (_, repaired) = s.json(&["breaker", "open"]);
    // The hand edit is drift: settled to OPEN as a new generation, and said.
    assert!(
        repaired["generation"].as_u64() > open["generation"].as_u64(),
        "{repaired}"
    );
    assert!(
        !repaired["preliminary"].as_array().unwrap().is_empty(),
        "{repaired}"
    );
}
