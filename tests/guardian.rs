//! Phase 2 end to end: a real guardian process against a real nginx, real
//! sockets and real files. Each scenario asserts the HTTP status nginx
//! really returns and the reason recorded in the state file.
//!
//! The guardian's self-probe is off here: it would connect to this
//! machine's non-loopback addresses, and tests keep all traffic on loopback
//! (the probe itself is tested against 127.0.0.2 in the unit tests).

use moltguard_test_support::netns;
use moltguard_test_support::stack;

use stack::*;
use std::time::{Duration, Instant};

/// A stack with nginx running, a user, the breaker CLOSED, an agent port of
/// its own, and a guardian polling every 5 s.
fn guarded() -> (Stack, Guardian, u16) {
    let s = Stack::started();
    let agent_port = free_port();
    s.set_config("interval", "interval = \"5s\"");
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    s.set_config("agent_port", &format!("agent_port = {agent_port}"));
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
    let g = Guardian::start(&s);
    (s, g, agent_port)
}

/// Waits for the breaker to be OPEN for `reason`, both in the state file and at nginx.
fn wait_open(s: &Stack, reason: &str, within: Duration) -> Duration {
    wait_open_how(s, reason, within, true)
}

/// `reloaded`: nginx serves the OPEN include. Otherwise (an unsafe config on
/// disk is never reloaded) the running config denies for lack of the token.
fn wait_open_how(s: &Stack, reason: &str, within: Duration, reloaded: bool) -> Duration {
    let start = Instant::now();
    let opened = eventually(within, || {
        // The file may be mid-corruption by the test itself: unreadable = not yet.
        let Ok(st) =
            serde_json::from_str::<serde_json::Value>(&read(&s.path("state/breaker.json")))
        else {
            return false;
        };
        // `last_apply` for this generation is written when the transaction
        // is over (verified at nginx, audit line appended).
        let done = st["last_apply"]["generation"] == st["generation"];
        let live = format!("open; generation={}", st["generation"]);
        let r = s.get(true);
        let denied = if reloaded {
            r.header("X-Breaker-State") == Some(live.as_str())
        } else {
            r.status == 503 && r.json()["error"]["reason"] == "ALLOW_TOKEN_MISSING"
        };
        done && st["state"] == "open" && st["reason"] == reason && denied
    });
    assert!(
        opened,
        "breaker not OPEN for {reason} within {within:?}: state {}\nguardian log:\n{}",
        read(&s.path("state/breaker.json")),
        read(&s.path("guardian.log"))
    );
    start.elapsed()
}

#[test]
fn a_public_bind_on_a_protected_port_opens_the_breaker() {
    let (s, _g, agent_port) = guarded();
    // The agent starts listening on every address.
    let _agent = std::net::TcpListener::bind(("0.0.0.0", agent_port)).unwrap();
    wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(5 + 3));
    let st = s.state();
    assert_eq!(st["actor"], "guardian");
    assert!(st["detail"]
        .as_str()
        .unwrap()
        .contains(&agent_port.to_string()));
    let r = s.get(true);
    assert_eq!(r.json()["error"]["reason"], "EXPOSURE_PUBLIC_BIND");
}

#[test]
fn a_hand_corrupted_state_file_opens_the_breaker_at_once() {
    let (s, _g, _) = guarded();
    std::fs::write(s.path("state/breaker.json"), "{ not json").unwrap();
    // A file event, not the poll, triggers this: well under the 5 s interval.
    let took = wait_open(&s, "STATE_INVALID", Duration::from_secs(4));
    eprintln!("corrupt state → OPEN in {took:?}");
}

#[test]
fn an_expired_lifetime_is_recorded_by_the_guardian() {
    let (s, _g, _) = guarded();
    s.ok(&["breaker", "close", "--for", "2s"]);
    wait_open(&s, "TTL_EXPIRED", Duration::from_secs(5));
    let log = read(&s.path("state/audit.jsonl"));
    assert!(log.contains("\"reason\":\"TTL_EXPIRED\""), "{log}");
}

#[test]
fn drift_at_nginx_opens_the_breaker() {
    let (s, _g, _) = guarded();
    let inc = s.path("nginx/breaker.conf");
    let text = read(&inc);
    let gen = s.state()["generation"].as_u64().unwrap();
    std::fs::write(
        &inc,
        text.replace(&format!("generation={gen}"), "generation=999"),
    )
    .unwrap();
    s.ok(&["nginx", "reload"]);
    wait_open(&s, "NGINX_DRIFT", Duration::from_secs(8));
}

#[test]
fn the_guardian_is_idempotent_and_never_closes() {
    let (s, _g, agent_port) = guarded();
    let agent = std::net::TcpListener::bind(("0.0.0.0", agent_port)).unwrap();
    wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(8));
    let generation = s.state()["generation"].clone();
    // Two more poll cycles with the same finding: no reload, no new audit line.
    std::thread::sleep(Duration::from_secs(11));
    assert_eq!(s.state()["generation"], generation);
    let guardian_lines = read(&s.path("state/audit.jsonl"))
        .lines()
        .filter(|l| l.contains("\"actor\":\"guardian\""))
        .count();
    assert_eq!(guardian_lines, 1);
    // The finding goes away; the breaker stays OPEN until a person closes it.
    drop(agent);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(s.state()["state"], "open");
    s.ok(&["breaker", "close"]);
    assert_eq!(s.get(true).status, 200);
}

#[test]
fn status_shows_the_guardians_last_scan() {
    let (s, _g, _) = guarded();
    let (_, v) = s.json(&["status"]);
    let g = &v["guardian"];
    assert_eq!(g["running"], true, "{v}");
    assert!(g["last_scan_at"].is_string());
    assert!(g["next_scan_at"].is_string());
    assert_eq!(g["findings"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn audit_exit_codes_follow_severity() {
    let s = Stack::started();
    let agent_port = free_port();
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    s.set_config("agent_port", &format!("agent_port = {agent_port}"));
    let (code, v) = s.json(&["audit"]);
    assert_eq!(code, 0, "{v}");
    let _agent = std::net::TcpListener::bind(("0.0.0.0", agent_port)).unwrap();
    let (code, v) = s.json(&["audit"]);
    assert_eq!(code, 8, "{v}");
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "EXPOSURE_PUBLIC_BIND"));
    // audit acts on no finding.
    assert_eq!(s.state()["reason"], "INIT");
}

#[test]
fn a_deleted_htpasswd_opens_the_breaker() {
    let (s, _g, _) = guarded();
    std::fs::remove_file(s.path("htpasswd")).unwrap();
    wait_open(&s, "AUTH_MISSING", Duration::from_secs(4));
}

#[test]
fn an_emptied_htpasswd_opens_the_breaker() {
    let (s, _g, _) = guarded();
    std::fs::write(s.path("htpasswd"), "").unwrap();
    wait_open(&s, "AUTH_MISSING", Duration::from_secs(4));
}

/// Adds a location to the protected server, as a user editing the site would.
fn add_location(s: &Stack, block: &str) {
    let site = s.path("nginx/moltguard-site.conf");
    let text = read(&site).replacen(
        "    location / {",
        &format!("    {block}\n\n    location / {{"),
        1,
    );
    std::fs::write(&site, text).unwrap();
}

#[test]
fn auth_basic_off_in_a_location_opens_without_loading_it() {
    let (s, _g, _) = guarded();
    add_location(
        &s,
        "location /admin { auth_basic off; return 200 \"open door\"; }",
    );
    let took = wait_open_how(&s, "NGINX_BYPASS", Duration::from_secs(4), false);
    eprintln!("auth_basic off → denied in {took:?}");
    assert!(s.state()["detail"]
        .as_str()
        .unwrap()
        .contains("NGINX_AUTH_BYPASS"));
    // The bypass was never loaded: /admin is denied like everything else.
    let admin = try_http_get_path(s.edge(), "/admin", None, Some((USER, PASSWORD)), &[]).unwrap();
    assert_eq!(admin.status, 503);
}

#[test]
fn removing_the_breaker_include_opens_without_loading_it() {
    let (s, _g, _) = guarded();
    let site = s.path("nginx/moltguard-site.conf");
    let text: String = read(&site)
        .lines()
        .filter(|l| !l.trim_start().starts_with("include"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&site, text).unwrap();
    wait_open_how(&s, "NGINX_BYPASS", Duration::from_secs(4), false);
    assert!(s.state()["detail"]
        .as_str()
        .unwrap()
        .contains("NGINX_BREAKER_NOT_INCLUDED"));
}

#[test]
fn a_secret_in_the_web_root_opens_the_breaker() {
    let s = Stack::started();
    let www = s.path("www");
    std::fs::create_dir(&www).unwrap();
    s.set_config("interval", "interval = \"5s\"");
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    s.set_config("agent_port", &format!("agent_port = {}", free_port()));
    s.set_config(
        "web_roots",
        &format!("web_roots = [{:?}]", www.display().to_string()),
    );
    s.ok(&["breaker", "close"]);
    let _g = Guardian::start(&s);
    let key = format!(
        "gsk_{}",
        "Zq3xY9aB7cD5eF1gH2iJ4kL6mN8oP0qR2sT4uV6wX8yZ0aBcDeFg"
    );
    std::fs::write(
        www.join("config.js"),
        format!("const GROQ_API_KEY = \"{key}\";\n"),
    )
    .unwrap();
    wait_open(&s, "SECRET_LEAK", Duration::from_secs(4));
    let st = read(&s.path("state/breaker.json"));
    assert!(
        !st.contains(&key),
        "the secret must never reach the state file"
    );
    assert!(
        !read(&s.path("state/audit.jsonl")).contains(&key),
        "nor the audit log"
    );
    assert!(
        !read(&s.path("guardian.log")).contains(&key),
        "nor the guardian's log"
    );
}

/// Containment, across a real network: this test's private namespace is
/// "this machine", a second namespace joined by a veth pair is "another
/// machine". The agent binds every address; the guardian opens the breaker
/// and blocks the port from outside with a nftables table of its own, then
/// removes exactly that table once the bind is fixed and the breaker closed.
#[test]
fn a_public_bind_is_contained_until_fixed_and_closed_again() {
    if let Err(missing) = netns::available() {
        if std::env::var_os("CI").is_some() {
            panic!("the containment test needs {missing}");
        }
        eprintln!("\n!!!! SKIPPING the containment test: needs {missing} !!!!\n");
        return;
    }
    netns::enter_private();
    let outside = netns::Outside::create();
    // Somebody else's rules, which moltguard must never touch.
    netns::nft("table inet someone_else {\n chain input { type filter hook input priority 0; policy accept; tcp dport 9 counter; }\n}\n");
    let theirs = || {
        let out = std::process::Command::new("/usr/sbin/nft")
            .args(["list", "table", "inet", "someone_else"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let theirs_before = theirs();
    let (s, _g, agent_port) = guarded();
    // A port nobody protects stays reachable from outside throughout.
    let other = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    assert!(outside.can_connect(other_port));

    let agent = std::net::TcpListener::bind(("0.0.0.0", agent_port)).unwrap();
    wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(5 + 3));
    assert!(
        eventually(Duration::from_secs(8), || !outside.can_connect(agent_port)),
        "the exposed port is still reachable from outside\n{}\n{}",
        netns::nft_tables(),
        read(&s.path("guardian.log"))
    );
    assert!(netns::nft_tables().contains("table inet moltguard"));
    // This machine still reaches it, and other ports are not touched.
    assert!(std::net::TcpStream::connect(("127.0.0.1", agent_port)).is_ok());
    assert!(outside.can_connect(other_port));
    let (_, v) = s.json(&["status"]);
    assert_eq!(
        v["containment"]["ports"],
        serde_json::json!([agent_port]),
        "{v}"
    );
    let (_, v) = s.json(&["audit"]);
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "EXPOSURE_CONTAINED"),
        "{v}"
    );

    // The bind is fixed: the block stays until a person closes the breaker.
    drop(agent);
    let _agent = std::net::TcpListener::bind(("127.0.0.1", agent_port)).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        netns::nft_tables().contains("table inet moltguard"),
        "lifted before the breaker was closed"
    );
    s.ok(&["breaker", "close"]);
    assert!(
        eventually(Duration::from_secs(8), || !netns::nft_tables()
            .contains("table inet moltguard")),
        "{}\n{}",
        netns::nft_tables(),
        read(&s.path("guardian.log"))
    );
    assert_eq!(theirs(), theirs_before, "somebody else's table was changed");
    assert!(outside.can_connect(other_port));
    assert_eq!(
        s.json(&["status"]).1["containment"]["ports"],
        serde_json::json!([])
    );
    assert!(read(&s.path("guardian.log")).contains("containment lifted"));
}

/// After `[edge]` changes the site still proxies to the old port: audit
/// says so, and `init --force` renders it again keeping every setting.
#[test]
fn a_stale_site_is_reported_and_init_force_keeps_settings() {
    let s = Stack::started();
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = [\"/srv/agent\"]");
    s.set_config("protected_ports", "protected_ports = [3000]");
    let new_port = free_port();
    s.set_config("upstream_port", &format!("upstream_port = {new_port}"));
    let (_, v) = s.json(&["audit"]);
    let stale: Vec<_> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "NGINX_SITE_STALE")
        .collect();
    assert_eq!(stale.len(), 1, "{v}");
    assert_eq!(stale[0]["severity"], "warning");
    s.ok(&["init", "--force"]);
    let site = read(&s.path("nginx/moltguard-site.conf"));
    assert!(
        site.contains(&format!("proxy_pass http://127.0.0.1:{new_port};")),
        "{site}"
    );
    let toml = read(&s.path("moltguard.toml"));
    assert!(
        toml.contains("agent_homes = [\"/srv/agent\"]")
            && toml.contains("protected_ports = [3000]"),
        "{toml}"
    );
    let (_, v) = s.json(&["audit"]);
    assert!(
        !v["findings"].to_string().contains("NGINX_SITE_STALE"),
        "{v}"
    );
}

/// The guardian follows what changes after it started: an agent home whose
/// config appears later, and an edit of moltguard.toml, each seen by a file
/// event, well before the 30 s poll.
#[test]
fn the_guardian_follows_new_agent_configs_and_config_edits() {
    let s = Stack::started();
    let home = tempfile::tempdir().unwrap();
    s.set_config("interval", "interval = \"30s\"");
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_port", &format!("agent_port = {}", free_port()));
    s.set_config(
        "agent_homes",
        &format!("agent_homes = [\"{}\"]", home.path().display()),
    );
    s.ok(&["breaker", "close"]);
    let _g = Guardian::start(&s);
    // OpenClaw is installed now: its directory and config appear.
    let dir = home.path().join(".openclaw");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("openclaw.json"),
        r#"{"gateway": {"bind": "lan", "auth": {"mode": "token", "token": "t"}}}"#,
    )
    .unwrap();
    let took = wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(8),
        "seen by the poll, not the event: {took:?}"
    );

    // An edit of moltguard.toml: a port that must stay on loopback now.
    std::fs::remove_dir_all(&dir).unwrap();
    // A scan that read the config before it went would open again: close
    // only once the guardian has seen the finding go.
    assert!(
        eventually(Duration::from_secs(10), || read(&s.path("guardian.log"))
            .contains("resolved: the agent gateway binds")),
        "{}",
        read(&s.path("guardian.log"))
    );
    s.ok(&["breaker", "close"]);
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        s.state()["state"],
        "closed",
        "{}",
        read(&s.path("guardian.log"))
    );
    s.set_config("protected_ports", &format!("protected_ports = [{port}]"));
    let took = wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(10));
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(read(&s.path("guardian.log")).contains("its settings apply from this scan on"));
}

#[test]
fn stop_agent_runs_its_command_once_when_the_agent_port_is_exposed() {
    let s = Stack::started();
    let home = tempfile::tempdir().unwrap();
    let agent_port = free_port();
    s.set_config("interval", "interval = \"5s\"");
    s.set_config("self_probe", "self_probe = false");
    // This test runs in the machine's own network namespace: no firewall rules.
    s.set_config("contain", "contain = false");
    s.set_config("agent_port", &format!("agent_port = {agent_port}"));
    s.set_config(
        "agent_homes",
        &format!("agent_homes = [\"{}\"]", home.path().display()),
    );
    // The "agent": a process of its own, bound to every address.
    let mut agent = std::process::Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', {agent_port}))\ns.listen()\ntime.sleep(600)"
            ),
        ])
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        std::net::TcpStream::connect(("127.0.0.1", agent_port)).is_ok()
    }));
    let marker = home.path().join("stops");
    s.set_config("stop_agent =", "stop_agent = true");
    s.set_config(
        "stop_agent_command",
        &format!(
            "stop_agent_command = [\"/bin/sh\", \"-c\", \"echo \\\"$HOME\\\" >> {}; kill {}\"]",
            marker.display(),
            agent.id()
        ),
    );
    s.ok(&["breaker", "close"]);
    let _g = Guardian::start(&s);
    wait_open(&s, "EXPOSURE_PUBLIC_BIND", Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(10), || agent
            .try_wait()
            .unwrap()
            .is_some()),
        "the agent still runs\n{}",
        read(&s.path("guardian.log"))
    );
    // Later scans see nothing exposed, and do not run it again.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        read(&marker),
        format!("{}\n", home.path().display()),
        "once, in the agent's home"
    );
    assert!(read(&s.path("guardian.log")).contains("STOPPED the agent"));
    // Still OPEN: stopping the agent closes nothing by itself.
    assert_eq!(s.state()["state"], "open");
}

#[test]
fn a_transaction_in_flight_is_waited_for_not_judged() {
    let s = Stack::started();
    s.set_config("self_probe", "self_probe = false");
    s.set_config("agent_homes", "agent_homes = []");
    // A close that stops for 3 s after nginx verified CLOSED and before it
    // commits: the state file says pending, nginx serves the new include.
    let mut close = s
        .command(&["breaker", "close"])
        .env(moltguard::breaker::crashpoint::PAUSE_ENV, "verified:3000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(eventually(Duration::from_secs(10), || read(
        &s.path("state/breaker.json")
    )
    .contains("\"pending\"")));
    // A scan that starts now (as one already under way when the command
    // began would) waits for the commit instead of judging what it sees.
    let config = moltguard::config::load(&moltguard::config::Overrides {
        home: Some(s.home.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let started = Instant::now();
    let report = moltguard::guardian::scan::Scanner::new(config).scan(true);
    let ids: Vec<&str> = report.findings.iter().map(|f| f.id).collect();
    assert!(close.wait().unwrap().success());
    assert!(
        !ids.contains(&"TRANSITION_INTERRUPTED") && !ids.contains(&"NGINX_DRIFT"),
        "a transaction in flight was judged: {ids:?}"
    );
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "it did not wait"
    );
    assert_eq!(s.state()["state"], "closed");
}
