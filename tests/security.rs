//! moltgate's security layers against the real binaries: a `moltgate`
//! process on loopback, keys made with the `moltguard` CLI, clients dialing
//! from 127.0.0.x addresses (127.0.0.1 is the trusted proxy and the local
//! admin; 127.0.0.2 and up are "remote" clients), a real WebSocket client
//! and the fake provider.

use moltguard_test_support::fake_provider;
use moltguard_test_support::moltgate;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fake_provider::FakeProvider;
use futures_util::{SinkExt, StreamExt};
use moltgate::{bin, free_port, Gate, PASSWORD};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// An HTTP client whose connections come from `from` (127.0.0.x).
fn client_from(from: &str, key: Option<&str>) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    if let Some(k) = key {
        h.insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .default_headers(h)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn status_of(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = r.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn chat() -> Value {
    json!({"model": "fake-ok", "messages": [{"role": "user", "content": "hi"}]})
}

/// A WebSocket to /ws, dialed from `from`, optionally with an Origin.
async fn ws_from(
    gate: &Gate,
    from: &str,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    tokio_tungstenite::tungstenite::Error,
> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let tcp = sock.connect(gate.addr()).await.unwrap();
    let mut req = format!("ws://127.0.0.1:{}/ws", gate.port)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::client_async(req, tcp)
        .await
        .map(|(ws, _)| ws)
}

async fn rpc(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    ws.send(Message::Text(
        json!({"id": id, "method": method, "params": params})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a reply")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
        }
    }
}

async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

const BAD_KEY: &str = "mgk_aaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

// ------------------------------------------------------------ brute force

#[tokio::test]
async fn brute_force_over_rest_is_banned_after_the_limit() {
    let g = Gate::start(None, &[]).await;
    let good = g.key("operator.read");
    let remote = client_from("127.0.0.2", None);
    for i in 0..5 {
        let (s, v) = status_of(
            remote
                .get(format!("{}/v1/models", g.base()))
                .bearer_auth(BAD_KEY),
        )
        .await;
        assert_eq!(s, 401, "attempt {i}: {v}");
    }
    // Now even the right key is refused from that address...
    let (s, v) = status_of(
        remote
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(&good),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "ip_blocked");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("until"),
        "{v}"
    );
    // ...but not from another one, and never for the local admin.
    let (s, _) =
        status_of(client_from("127.0.0.3", Some(&good)).get(format!("{}/v1/models", g.base())))
            .await;
    assert_eq!(s, 200);
    let local = client_from("127.0.0.1", None);
    for _ in 0..10 {
        let _ = local
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(BAD_KEY)
            .send()
            .await;
    }
    let (s, _) = status_of(
        local
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(&good),
    )
    .await;
    assert_eq!(s, 200, "loopback admin never locks itself out");

    // Password logins: the same ban, plus 5 attempts per hour.
    let web = client_from("127.0.0.4", None);
    let (s, v) = status_of(
        web.post(format!("{}/api/login", g.base()))
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for _ in 0..4 {
        let (s, _) = status_of(
            web.post(format!("{}/api/login", g.base()))
                .json(&json!({"password": "guess"})),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, v) = status_of(
        web.post(format!("{}/api/login", g.base()))
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 429, "the sixth login in an hour: {v}");

    // Every failure is an incident with the client IP and a request id.
    let (_, inc) = g.cli(&["incidents", "--kind", "auth_failure"]);
    let rows = inc["incidents"].as_array().unwrap();
    assert!(rows.len() >= 5, "{inc}");
    assert!(rows.iter().any(|r| r["client_ip"] == "127.0.0.2"));
    assert!(rows
        .iter()
        .all(|r| r["request_id"].as_str().unwrap().starts_with("req_")));
    let (_, bans) = g.cli(&["incidents", "--kind", "auto_block"]);
    assert!(!bans["incidents"].as_array().unwrap().is_empty(), "{bans}");
    // Oldest first, RFC 3339 times, and filters by address and time.
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = rows
        .iter()
        .map(|r| chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{inc}");
    let (_, one) = g.cli(&["incidents", "--kind", "auth_failure", "--ip", "127.0.0.2"]);
    let one = one["incidents"].as_array().unwrap();
    assert!(!one.is_empty() && one.len() < rows.len(), "{one:?}");
    assert!(one.iter().all(|r| r["client_ip"] == "127.0.0.2"), "{one:?}");
    let (_, recent) = g.cli(&["incidents", "--kind", "auth_failure", "--since", "1h"]);
    assert_eq!(recent["incidents"].as_array().unwrap().len(), rows.len());
    let after = (times[times.len() - 1] + chrono::Duration::seconds(1)).to_rfc3339();
    let (_, none) = g.cli(&["incidents", "--since", &after]);
    assert_eq!(none["incidents"], json!([]), "{none}");
    // The CLI's own records are kinds like the others.
    let (_, made) = g.cli(&["incidents", "--kind", "key_created"]);
    assert!(!made["incidents"].as_array().unwrap().is_empty(), "{made}");
    // A typo is a usage error, not an empty list.
    let (code, _) = g.cli(&["incidents", "--kind", "auth_failures"]);
    assert_eq!(code, 2);
    let (code, _) = g.cli(&["incidents", "--since", "yesterday-ish"]);
    assert_eq!(code, 2);

    // And /metrics counts them, without a key or a password in sight.
    let text = local
        .get(format!("{}/metrics", g.base()))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
    };
    assert!(value("moltgate_security_incidents_total{kind=\"auth_failure\"}") >= 5.0);
    assert_eq!(value("moltgate_security_state{what=\"active_bans\"}"), 1.0);
    assert!(!text.contains(PASSWORD) && !text.contains(&good) && !text.contains("mgk_"));
}

#[tokio::test]
async fn brute_force_over_websocket_counts_toward_the_same_ban() {
    let g = Gate::start(None, &[]).await;
    let admin = g.key("operator.admin");
    for i in 0..5 {
        let mut ws = ws_from(&g, "127.0.0.5", None).await.expect("upgrade");
        let r = if i % 2 == 0 {
            rpc(&mut ws, 1, "connect", json!({"key": BAD_KEY})).await
        } else {
            rpc(&mut ws, 1, "connect", json!({"password": "guess"})).await
        };
        assert_eq!(r["ok"], false, "{r}");
        assert_eq!(r["error"]["code"], "unauthorized");
    }
    // Banned: the upgrade itself is refused, and REST too.
    let Err(e) = ws_from(&g, "127.0.0.5", None).await else {
        panic!("a banned client was upgraded")
    };
    assert!(e.to_string().contains("403"), "{e}");
    let (s, _) =
        status_of(client_from("127.0.0.5", Some(&admin)).get(format!("{}/v1/models", g.base())))
            .await;
    assert_eq!(s, 403);
    // A good connect from elsewhere works, and says who it is.
    let mut ws = ws_from(&g, "127.0.0.6", None).await.unwrap();
    let r = rpc(&mut ws, 7, "connect", json!({"key": admin})).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["result"]["scopes"], json!(["operator.admin"]));
    let r = rpc(&mut ws, 8, "security.blocked.list", json!({})).await;
    let blocked = r["result"]["blocked"].as_array().unwrap();
    assert!(blocked.iter().any(|b| b["target"] == "127.0.0.5"), "{r}");
}

// ------------------------------------------------------------ client IP

#[tokio::test]
async fn spoofed_forwarded_for_is_ignored_and_cannot_escape_a_ban() {
    let g = Gate::start(None, &[]).await;
    let good = g.key("operator.read");
    let remote = client_from("127.0.0.7", None);
    // An untrusted peer claiming to be the local admin is still itself.
    for _ in 0..5 {
        let (s, _) = status_of(
            remote
                .get(format!("{}/v1/models", g.base()))
                .header("x-forwarded-for", "127.0.0.1")
                .bearer_auth(BAD_KEY),
        )
        .await;
        assert_eq!(s, 401);
    }
    for i in 0..20 {
        let spoof = format!("198.51.100.{i}, 127.0.0.1");
        let (s, v) = status_of(
            remote
                .get(format!("{}/v1/models", g.base()))
                .header("x-forwarded-for", spoof)
                .header("x-real-ip", format!("203.0.113.{i}"))
                .bearer_auth(&good),
        )
        .await;
        assert_eq!(s, 403, "rotating headers must not escape the ban: {v}");
    }

    // Through the trusted proxy (nginx on 127.0.0.1), the forwarded client
    // is the one counted and banned, and only that one.
    let proxy = client_from("127.0.0.1", None);
    for _ in 0..5 {
        let _ = proxy
            .get(format!("{}/v1/models", g.base()))
            .header("x-forwarded-for", "198.51.100.77")
            .bearer_auth(BAD_KEY)
            .send()
            .await;
    }
    let via = |xff: &'static str| {
        proxy
            .get(format!("{}/v1/models", g.base()))
            .header("x-forwarded-for", xff)
            .bearer_auth(&good)
    };
    assert_eq!(status_of(via("198.51.100.77")).await.0, 403);
    // The client wrote its own XFF; nginx appended the real address.
    assert_eq!(status_of(via("10.9.9.9, 198.51.100.77")).await.0, 403);
    assert_eq!(status_of(via("198.51.100.78")).await.0, 200);
    let (s, _) = status_of(
        proxy
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(&good),
    )
    .await;
    assert_eq!(s, 200, "the proxy itself is not banned");
}

// ------------------------------------------------------------ scopes

#[tokio::test]
async fn empty_scope_and_read_only_keys_are_refused_on_every_write_method() {
    let p = FakeProvider::start().await;
    let g = Gate::start(Some(&p), &[]).await;
    let empty = g.key("");
    let read = g.key("operator.read");
    let rest_writes: Vec<(&str, Value)> = vec![
        ("/v1/chat/completions", chat()),
        ("/api/providers/test", json!({})),
        (
            "/api/security/blocked/add",
            json!({"target": "203.0.113.9"}),
        ),
        (
            "/api/security/blocked/remove",
            json!({"target": "203.0.113.9"}),
        ),
        ("/api/security/lockdown/toggle", json!({"on": true})),
        ("/api/security/emergency/toggle", json!({"on": true})),
        ("/api/security/incidents/list", json!({})),
    ];
    let local = client_from("127.0.0.1", None);
    for key in [&empty, &read] {
        for (path, body) in &rest_writes {
            let (s, v) = status_of(
                local
                    .post(format!("{}{path}", g.base()))
                    .bearer_auth(key)
                    .json(body),
            )
            .await;
            assert_eq!(s, 403, "{path}: {v}");
            assert_eq!(v["error"]["code"], "insufficient_scope", "{path}: {v}");
        }
    }
    // The agent key README recommends lists models (agents ask first), and
    // reads nothing else.
    let writer = g.key("operator.write");
    for (path, want) in [("/v1/models", 200), ("/metrics", 403)] {
        let (s, v) = status_of(
            local
                .get(format!("{}{path}", g.base()))
                .bearer_auth(&writer),
        )
        .await;
        assert_eq!(s, want, "{path}: {v}");
    }
    // Behind nginx's password (Authorization: Basic), the key rides in X-Api-Key.
    let basic = local
        .get(format!("{}/v1/models", g.base()))
        .basic_auth("me", Some("edge password"));
    let (s, v) = status_of(basic).await;
    assert_eq!(s, 401);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-Api-Key"),
        "{v}"
    );
    let (s, _) = status_of(
        local
            .get(format!("{}/v1/models", g.base()))
            .basic_auth("me", Some("edge password"))
            .header("x-api-key", &read),
    )
    .await;
    assert_eq!(s, 200);

    // Empty scopes cannot even read; read-only can.
    for path in [
        "/v1/models",
        "/api/providers/status",
        "/metrics",
        "/v1/nope",
    ] {
        let (s, _) = status_of(local.get(format!("{}{path}", g.base())).bearer_auth(&empty)).await;
        assert_eq!(s, 403, "{path}");
    }
    let (s, _) = status_of(
        local
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(&read),
    )
    .await;
    assert_eq!(s, 200);

    // The same over the WebSocket.
    let ws_methods = [
        ("providers.test", json!({})),
        ("security.blocked.add", json!({"target": "203.0.113.9"})),
        ("security.blocked.remove", json!({"target": "203.0.113.9"})),
        ("security.lockdown.toggle", json!({"on": true})),
        ("security.emergency.toggle", json!({"on": true})),
        ("security.incidents.list", json!({})),
        ("subscribe", json!({})),
    ];
    for key in [&empty, &read] {
        let mut ws = ws_from(&g, "127.0.0.1", None).await.unwrap();
        let r = rpc(&mut ws, 0, "connect", json!({"key": key})).await;
        assert_eq!(r["ok"], true, "{r}");
        for (i, (m, params)) in ws_methods.iter().enumerate() {
            let r = rpc(&mut ws, i as u64 + 1, m, params.clone()).await;
            assert_eq!(r["ok"], false, "{m}: {r}");
            assert_eq!(r["error"]["code"], "insufficient_scope", "{m}: {r}");
        }
        let r = rpc(&mut ws, 99, "providers.status", json!({})).await;
        assert_eq!(r["ok"], *key == read, "{r}");
    }
    // Nothing changed, nothing reached the provider.
    assert_eq!(p.attempts("fake-ok"), 0);
    assert_eq!(g.cli(&["blocked", "list"]).1["blocked"], json!([]));
    assert_eq!(g.cli(&["lockdown"]).1["on"], false);
}

// ------------------------------------------------------------ modes

#[tokio::test]
async fn lockdown_and_kill_switch_by_rpc_and_cli_are_enforced_and_audited() {
    let p = FakeProvider::start().await;
    let g = Gate::start(Some(&p), &[]).await;
    let admin = g.key("operator.admin");
    let writer = g.key("operator.write");
    let local = client_from("127.0.0.1", None);
    let remote_admin = client_from("127.0.0.8", Some(&admin));
    let chat_as = |c: &reqwest::Client, key: &str| {
        c.post(format!("{}/v1/chat/completions", g.base()))
            .bearer_auth(key.to_string())
            .json(&chat())
    };
    assert_eq!(status_of(chat_as(&local, &writer)).await.0, 200);

    let (s, v) = status_of(
        local
            .post(format!("{}/api/security/lockdown/toggle", g.base()))
            .bearer_auth(&admin)
            .json(&json!({"on": true})),
    )
    .await;
    assert_eq!((s, &v["lockdown"]), (200, &json!(true)), "{v}");
    let (s, v) = status_of(chat_as(&local, &writer)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("lockdown")),
        "{v}"
    );
    let (s, _) = status_of(remote_admin.get(format!("{}/v1/models", g.base()))).await;
    assert_eq!(s, 503, "admin, but not from this machine");
    assert_eq!(status_of(chat_as(&local, &admin)).await.0, 200);
    assert_eq!(
        status_of(local.get(format!("{}/health", g.base()))).await.0,
        200
    );

    // The CLI ends it; the running gateway notices.
    assert_eq!(g.cli(&["lockdown", "off"]).0, 0);
    assert!(
        eventually(Duration::from_secs(5), async || {
            status_of(chat_as(&local, &writer)).await.0 == 200
        })
        .await
    );

    // Kill switch: no LLM call leaves the gateway.
    assert_eq!(g.cli(&["kill-switch", "on"]).1["on"], true);
    assert!(
        eventually(Duration::from_secs(5), async || {
            status_of(chat_as(&local, &writer)).await.0 == 503
        })
        .await
    );
    let before = p.total_requests();
    let (s, v) = status_of(chat_as(&local, &admin)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("kill_switch")),
        "{v}"
    );
    let (s, _) = status_of(
        local
            .post(format!("{}/api/providers/test", g.base()))
            .bearer_auth(&admin)
            .json(&json!({})),
    )
    .await;
    assert_eq!(s, 503);
    assert_eq!(p.total_requests(), before, "nothing reached the provider");

    // Toggle back over the WebSocket; every toggle is in the audit trail.
    let mut ws = ws_from(&g, "127.0.0.1", None).await.unwrap();
    assert_eq!(
        rpc(&mut ws, 1, "connect", json!({"key": admin})).await["ok"],
        true
    );
    let r = rpc(
        &mut ws,
        2,
        "security.emergency.toggle",
        json!({"on": false}),
    )
    .await;
    assert_eq!(r["result"]["emergency"], false, "{r}");
    assert_eq!(status_of(chat_as(&local, &writer)).await.0, 200);
    let (_, inc) = g.cli(&["incidents", "--kind", "mode_change"]);
    let details: Vec<&str> = inc["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 4, "{details:?}");
    assert!(
        details.iter().any(|d| d.contains("lockdown on by key")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("lockdown off by moltguard CLI")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("emergency on by moltguard CLI")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.contains("emergency off by key")),
        "{details:?}"
    );
}

#[tokio::test]
async fn kill_switch_from_the_environment_at_start() {
    let p = FakeProvider::start().await;
    let g = Gate::start(Some(&p), &[("KILL_SWITCH", "1")]).await;
    let w = g.key("operator.write");
    let (s, _) = status_of(
        client_from("127.0.0.1", Some(&w))
            .post(format!("{}/v1/chat/completions", g.base()))
            .json(&chat()),
    )
    .await;
    assert_eq!(s, 503);
    assert_eq!(p.total_requests(), 0, "not even the startup check");
}

// ------------------------------------------------------------ persistence

#[tokio::test]
async fn bans_survive_a_restart_with_their_remaining_time() {
    let mut g = Gate::start(None, &[]).await;
    let good = g.key("operator.read");
    let remote = client_from("127.0.0.9", None);
    for _ in 0..5 {
        let _ = remote
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(BAD_KEY)
            .send()
            .await;
    }
    assert_eq!(
        g.cli(&["blocked", "add", "127.0.1.0/24", "--reason", "test net"])
            .0,
        0
    );
    let (_, before) = g.cli(&["blocked", "list"]);
    let expires = before["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["target"] == "127.0.0.9")
        .expect("auto ban listed")["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        chrono::DateTime::parse_from_rfc3339(&expires).is_ok(),
        "{expires}"
    );

    g.stop();
    g.spawn().await;

    let banned = |from: &'static str| {
        let good = good.clone();
        let base = g.base();
        async move { status_of(client_from(from, Some(&good)).get(format!("{base}/v1/models"))).await }
    };
    let (s, v) = banned("127.0.0.9").await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(
        banned("127.0.1.200").await.0,
        403,
        "manual CIDR block persisted"
    );
    assert_eq!(banned("127.0.0.10").await.0, 200);
    let (_, after) = g.cli(&["blocked", "list"]);
    let still = after["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["target"] == "127.0.0.9")
        .unwrap()["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(still, expires, "the same expiry, not a fresh one");

    // Lifting it with the CLI reaches the running gateway.
    assert_eq!(g.cli(&["blocked", "remove", "127.0.0.9"]).0, 0);
    assert!(
        eventually(Duration::from_secs(5), async || banned("127.0.0.9").await.0
            == 200)
        .await
    );
    // Everything at once; with neither a target nor --all, a usage error.
    assert_eq!(g.cli(&["blocked", "remove"]).0, 2);
    let (code, all) = g.cli(&["blocked", "remove", "--all"]);
    assert_eq!(code, 0, "{all}");
    assert_eq!(all["unblocked"], json!(["127.0.1.0/24"]), "{all}");
    assert_eq!(g.cli(&["blocked", "list"]).1["blocked"], json!([]));
    assert!(
        eventually(Duration::from_secs(5), async || banned("127.0.1.200")
            .await
            .0
            == 200)
        .await
    );
}

#[tokio::test]
async fn failure_counts_and_login_attempts_survive_a_restart() {
    let mut g = Gate::start(None, &[]).await;
    let good = g.key("operator.read");
    // Four wrong keys from one address, three wrong passwords from another:
    // each one short of its limit (5 failures, 5 logins an hour).
    let remote = client_from("127.0.0.31", None);
    for _ in 0..4 {
        let (s, _) = status_of(
            remote
                .get(format!("{}/v1/models", g.base()))
                .bearer_auth(BAD_KEY),
        )
        .await;
        assert_eq!(s, 401);
    }
    let web = client_from("127.0.0.32", None);
    for _ in 0..3 {
        let (s, _) = status_of(
            web.post(format!("{}/api/login", g.base()))
                .json(&json!({"password": "guess"})),
        )
        .await;
        assert_eq!(s, 401);
    }
    // The incidents are on disk before the gateway dies.
    assert!(
        eventually(Duration::from_secs(5), async || {
            let (_, a) = g.cli(&["incidents", "--kind", "auth_failure"]);
            let (_, l) = g.cli(&["incidents", "--kind", "login_failure"]);
            a["incidents"].as_array().map_or(0, Vec::len) == 4
                && l["incidents"].as_array().map_or(0, Vec::len) == 3
        })
        .await
    );
    g.stop();
    g.spawn().await;

    // One more wrong key is the fifth: banned, even the right key.
    let (s, _) = status_of(
        remote
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(BAD_KEY),
    )
    .await;
    assert_eq!(s, 401);
    let (s, v) = status_of(
        remote
            .get(format!("{}/v1/models", g.base()))
            .bearer_auth(&good),
    )
    .await;
    assert_eq!(s, 403, "the restart forgave the earlier failures: {v}");
    assert_eq!(v["error"]["code"], "ip_blocked");

    // The three failed logins still use three of the hour's five: two
    // right passwords get in, the third login is limited.
    for _ in 0..2 {
        let (s, v) = status_of(
            web.post(format!("{}/api/login", g.base()))
                .json(&json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = status_of(
        web.post(format!("{}/api/login", g.base()))
            .json(&json!({"password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 429, "the sixth login in an hour, across a restart: {v}");
}

// ------------------------------------------------------------ connections

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 && hard > soft {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(8192), hard).unwrap();
    }
}

async fn raw_get(stream: &mut tokio::net::TcpStream, path: &str, key: Option<&str>) -> String {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\nUser-Agent: t\r\n{auth}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn the_1001st_connection_is_refused_while_health_answers() {
    raise_fd_limit();
    // Held idle while the rest open: past the default header deadline.
    let g = Gate::start(None, &[("GATEWAY_HEADER_TIMEOUT_MS", "120000")]).await;
    let key = g.key("operator.read");
    let mut held = Vec::new();
    for i in 0..1000 {
        let mut s = tokio::net::TcpStream::connect(g.addr()).await.unwrap();
        // One request each, so every connection is accepted and counted.
        let r = raw_get(&mut s, "/health", None).await;
        assert!(r.starts_with("HTTP/1.1 200"), "connection {i}: {r}");
        held.push(s);
    }
    let mut extra = tokio::net::TcpStream::connect(g.addr()).await.unwrap();
    let r = raw_get(&mut extra, "/v1/models", Some(&key)).await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(r.contains("too_many_connections"), "{r}");
    let mut probe = tokio::net::TcpStream::connect(g.addr()).await.unwrap();
    let r = raw_get(&mut probe, "/health", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "/health still answers: {r}");
    drop((extra, probe));
    // Held connections still work, and freeing some lets new ones in.
    let r = raw_get(&mut held[0], "/v1/models", Some(&key)).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    held.truncate(900);
    let ok = eventually(Duration::from_secs(5), async || {
        let mut s = tokio::net::TcpStream::connect(g.addr()).await.unwrap();
        raw_get(&mut s, "/v1/models", Some(&key))
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(ok);
}

/// Whether the server ended `ws` (a close frame or EOF) within `limit`.
async fn closed_by_server(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    limit: Duration,
) -> bool {
    let end = Instant::now() + limit;
    loop {
        match tokio::time::timeout(end.saturating_duration_since(Instant::now()), ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Calls a read method until the socket's first refusal (within ~4 s).
async fn first_refusal(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Value {
    for n in 100..140 {
        let r = rpc(ws, n, "security.lockdown.status", json!({})).await;
        if r["ok"] == false {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

#[tokio::test]
async fn open_websockets_lose_a_revoked_key_and_remote_ones_end_with_lockdown() {
    let g = Gate::start(None, &[]).await;
    let admin = g.key("operator.admin");
    let id = admin.split('_').nth(1).unwrap().to_string();
    let mut ws = ws_from(&g, "127.0.0.1", None).await.unwrap();
    assert_eq!(
        rpc(&mut ws, 1, "connect", json!({"key": admin})).await["ok"],
        true
    );
    assert_eq!(
        rpc(&mut ws, 2, "security.lockdown.status", json!({})).await["ok"],
        true
    );
    let (code, v) = g.cli(&["keys", "revoke", &id]);
    assert_eq!(code, 0, "{v}");
    // A key that is not there is "not found" (9), like every such name.
    let (code, v) = g.cli(&["keys", "revoke", &id]);
    assert_eq!(code, 9, "{v}");
    assert_eq!(g.cli(&["blocked", "remove", "192.0.2.77"]).0, 9);
    // Lists are arrays; times are RFC 3339.
    let (_, list) = g.cli(&["keys", "list"]);
    let row = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert_eq!(row["scopes"], json!(["operator.admin"]), "{row}");
    assert_eq!(row["state"], "revoked");
    for t in ["created_at", "revoked_at"] {
        let ts = row[t].as_str().unwrap_or_else(|| panic!("{t}: {row}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "{t}: {ts}"
        );
    }
    // The running gateway sees the revocation within a second or so.
    let refused = first_refusal(&mut ws).await;
    assert_eq!(refused["error"]["code"], "unauthorized", "{refused}");
    assert!(closed_by_server(&mut ws, Duration::from_secs(3)).await);

    // An admin WebSocket from another machine, then lockdown: it ends.
    let admin2 = g.key("operator.admin");
    let mut remote = ws_from(&g, "127.0.0.2", None).await.unwrap();
    assert_eq!(
        rpc(&mut remote, 1, "connect", json!({"key": admin2})).await["ok"],
        true
    );
    assert_eq!(
        rpc(&mut remote, 2, "security.lockdown.status", json!({})).await["ok"],
        true
    );
    assert_eq!(g.cli(&["lockdown", "on"]).0, 0);
    let refused = first_refusal(&mut remote).await;
    assert_eq!(refused["error"]["code"], "lockdown", "{refused}");
    assert!(closed_by_server(&mut remote, Duration::from_secs(3)).await);
    // This machine's admin still gets in.
    let mut local = ws_from(&g, "127.0.0.1", None).await.unwrap();
    assert_eq!(
        rpc(&mut local, 1, "connect", json!({"key": admin2})).await["ok"],
        true
    );
    assert_eq!(
        rpc(&mut local, 2, "security.lockdown.status", json!({})).await["result"]["lockdown"],
        true
    );
}

/// A raw connection from `from` (127.0.0.x).
async fn tcp_from(g: &Gate, from: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    sock.connect(g.addr()).await.unwrap()
}

/// Reads until the server closes (or `limit`): what it sent, and when it closed.
async fn read_to_close(
    s: &mut tokio::net::TcpStream,
    limit: Duration,
) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&out).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn one_host_cannot_hold_the_gateway() {
    let p = FakeProvider::start().await;
    let g = Gate::start(
        Some(&p),
        &[
            ("GATEWAY_MAX_CONNECTIONS_PER_IP", "8"),
            ("GATEWAY_HEADER_TIMEOUT_MS", "1500"),
            ("GATEWAY_BODY_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let key = g.key("operator.read,operator.write");

    // Slowloris from one address: a header byte every 300 ms.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = tcp_from(&g, "127.0.0.9").await;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: ")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The ninth from that address is told why, at once, and closed.
    let mut ninth = tcp_from(&g, "127.0.0.9").await;
    let (answer, closed) = read_to_close(&mut ninth, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("too_many_connections_from_address"),
        "{answer}"
    );
    assert!(closed.is_some());
    // Everyone else is served meanwhile.
    let mut other = tcp_from(&g, "127.0.0.10").await;
    let r = raw_get(&mut other, "/health", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Trickling does not extend the header deadline: all 8 are closed by it.
    let trickle = async {
        for _ in 0..20 {
            for s in slow.iter_mut() {
                let _ = s.write_all(b"a").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let start = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    for s in slow.iter_mut() {
        let (_, closed) = read_to_close(s, Duration::from_secs(4)).await;
        assert!(
            closed.is_some(),
            "a slowloris connection was still open after {:?}",
            start.elapsed()
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    // Its places are free again.
    let mut again = tcp_from(&g, "127.0.0.9").await;
    let r = raw_get(&mut again, "/health", None).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    // A body announced and never sent: 408 after the body timeout, not a hang.
    let mut s = tcp_from(&g, "127.0.0.11").await;
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 17825792\r\n\r\n{{\"model\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let (answer, _) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Pipelining: two requests in one write get two answers, in order.
    let mut s = tcp_from(&g, "127.0.0.12").await;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the connection hung: {answer}");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 2, "{answer}");
    let health = answer.find("\"ok\"").unwrap();
    let ready = answer.find("ready").unwrap();
    assert!(health < ready, "{answer}");
}

// ------------------------------------------------------------ SSRF

fn write_config(home: &Path, toml: &str) {
    std::fs::write(home.join("moltgate.toml"), toml).unwrap();
}

#[tokio::test]
async fn ssrf_provider_urls_are_refused_at_start_and_at_connect_time() {
    // A metadata address: refused by check-config and at start.
    let home = tempfile::tempdir().unwrap();
    write_config(
        home.path(),
        "default_provider = \"evil\"\n[providers.evil]\nbase_url = \"http://169.254.169.254/latest\"\n",
    );
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = Command::new(bin("moltgate"))
            .args(args)
            .env_clear()
            .env("MOLTGUARD_HOME", home.path())
            .env("MOLTGATE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(
            text.contains("169.254.169.254") && text.contains("metadata"),
            "{text}"
        );
    }

    // A remote provider whose *name* resolves to loopback: refused when it
    // connects, before any byte reaches the server behind it.
    let p = FakeProvider::start().await;
    let port = p.addr.port();
    let mut g = Gate::start(None, &[]).await;
    g.stop();
    write_config(
        g.home.path(),
        &format!(
            "default_provider = \"hosted\"\n[providers.hosted]\nbase_url = \"http://localhost:{port}/v1\"\nmodel = \"fake-ok\"\n\
             [providers.lan]\nbase_url = \"http://localhost:{port}/v1\"\nmodel = \"fake-ok\"\nlocal = true\n"
        ),
    );
    g.spawn().await;
    let w = g.key("operator.write");
    let c = client_from("127.0.0.1", Some(&w));
    let (s, v) = status_of(c.post(format!("{}/v1/chat/completions", g.base())).json(
        &json!({"model": "hosted/fake-ok", "messages": [{"role": "user", "content": "hi"}]}),
    ))
    .await;
    assert_ne!(s, 200, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("SSRF") || msg.contains("private"), "{msg}");
    assert_eq!(p.attempts("fake-ok"), 0, "no chat reached the server");
    // Marked local, the same address is fine.
    let (s, v) =
        status_of(c.post(format!("{}/v1/chat/completions", g.base())).json(
            &json!({"model": "lan/fake-ok", "messages": [{"role": "user", "content": "hi"}]}),
        ))
        .await;
    assert_eq!(s, 200, "{v}");
}

// ------------------------------------------------------------ browser rules

#[tokio::test]
async fn origins_headers_validation_and_events() {
    let p = FakeProvider::start().await;
    // The default (4,000,000) is far above real prompts; a small one here
    // shows the limit is enforced.
    let g = Gate::start(Some(&p), &[("MAX_MESSAGE_CHARS", "50000")]).await;
    let admin = g.key("operator.admin");
    let local = client_from("127.0.0.1", Some(&admin));

    // Security headers on every answer, including refusals.
    for (path, auth) in [("/health", true), ("/v1/models", false)] {
        let mut r = reqwest::Client::new().get(format!("{}{path}", g.base()));
        if auth {
            r = r.bearer_auth(&admin);
        }
        let r = r.send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert!(h["x-request-id"].to_str().unwrap().starts_with("req_"));
    }

    // CORS: local origins only (the gateway is on loopback).
    for (origin, allowed) in [
        ("http://localhost:3000", true),
        ("https://evil.example", false),
    ] {
        let r = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/v1/models", g.base()))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
        // Answered before admission (no credentials, no request id), with
        // the security headers all the same.
        assert_eq!(r.status(), 200, "{origin}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-methods"], "GET,POST,OPTIONS");
        assert_eq!(
            h["vary"],
            "origin, access-control-request-method, access-control-request-headers"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert!(h.get("x-request-id").is_none());
    }
    // Cross-site WebSocket hijacking: refused before the upgrade.
    let e = ws_from(&g, "127.0.0.1", Some("https://evil.example"))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("403"), "{e}");

    // Input validation: precise 400s that never reach the provider.
    for (body, param) in [
        (
            json!({"messages": [{"role": "user", "content": "   "}]}),
            "messages[0].content",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "user": "a b"}),
            "user",
        ),
        (
            json!({"messages": [{"role": "user", "content": "x".repeat(50_001)}]}),
            "messages[0].content",
        ),
    ] {
        let (s, v) = status_of(
            local
                .post(format!("{}/v1/chat/completions", g.base()))
                .json(&body),
        )
        .await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
    }
    assert_eq!(p.attempts("fake-ok"), 0);

    // Subscribed admins see security events as they happen.
    let mut ws = ws_from(&g, "127.0.0.1", Some(&g.base())).await.unwrap();
    assert_eq!(
        rpc(&mut ws, 1, "connect", json!({"key": admin})).await["ok"],
        true
    );
    assert_eq!(rpc(&mut ws, 2, "subscribe", json!({})).await["ok"], true);
    let (s, _) = status_of(
        local
            .post(format!("{}/api/security/blocked/add", g.base()))
            .json(&json!({"target": "203.0.113.0/24", "reason": "scanner"})),
    )
    .await;
    assert_eq!(s, 200);
    let mut seen = false;
    let t = Instant::now();
    while !seen && t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            let v: Value = serde_json::from_str(&t).unwrap();
            seen = v["event"] == "blocked" && v["ban"]["target"] == "203.0.113.0/24";
        }
    }
    assert!(seen, "a blocked event was pushed");
    // And the firewall: a probe for secrets is refused and recorded.
    let (s, v) = status_of(local.get(format!("{}/.env", g.base()))).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "request_blocked");
    let (_, inc) = g.cli(&["incidents", "--kind", "firewall_block"]);
    assert_eq!(inc["incidents"][0]["rule"], "945100", "{inc}");
}

// ------------------------------------------------------------ breaker

#[tokio::test]
async fn the_gateway_enforces_the_breaker_state_file_itself() {
    let g = Gate::start(None, &[]).await;
    let key = g.key("operator.read");
    let home = g.home.path();
    let file = home.join("state/breaker.json");
    let remote = client_from("127.0.0.2", Some(&key));
    let local = client_from("127.0.0.1", Some(&key));
    let models = |c: &reqwest::Client| c.get(format!("{}/v1/models", g.base()));
    let remote_gets = async |want: u16, within: u64| {
        eventually(Duration::from_secs(within), async || {
            status_of(models(&remote)).await.0 == want
        })
        .await
    };
    // Every state below is made by the real CLI (nginx is not running:
    // moltgate is the only edge).
    let mg = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new(bin("moltguard"))
            .arg("--home")
            .arg(home)
            .args(args)
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait().unwrap()
    };
    // No breaker file: a stand-alone gateway.
    assert_eq!(status_of(models(&remote)).await.0, 200);

    let edge = free_port().to_string();
    assert!(mg(
        &[
            "init",
            "--edge-port",
            &edge,
            "--upstream-port",
            &g.port.to_string()
        ],
        ""
    )
    .success());
    assert!(remote_gets(503, 5).await);
    let (_, v) = status_of(models(&remote)).await;
    assert_eq!(v["error"]["code"], "breaker_open", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("moltguard breaker close"),
        "{v}"
    );
    assert_eq!(
        status_of(models(&local)).await.0,
        200,
        "this machine is still served"
    );

    assert!(mg(
        &["auth", "add-user", "alice", "--password-stdin"],
        "correct-horse-battery\n"
    )
    .success());
    assert!(mg(&["breaker", "close", "--for", "3s"], "").success());
    assert!(remote_gets(200, 5).await);
    // The lifetime runs out on its own, file unchanged.
    assert!(remote_gets(503, 6).await);

    // A hand edit of OPEN into CLOSED is not trusted (it is not the audit log's).
    assert!(mg(&["breaker", "open"], "").success());
    let open = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        open.replace("\"state\": \"open\"", "\"state\": \"closed\""),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        status_of(models(&remote)).await.0,
        503,
        "a hand edit opens nothing"
    );

    // Closed for real; then each way the file or token can go wrong is OPEN.
    assert!(mg(&["breaker", "close"], "").success());
    assert!(remote_gets(200, 5).await);
    let token = home.join("state/edge/breaker.allow");
    let kept = std::fs::read(&token).unwrap();
    std::fs::remove_file(&token).unwrap();
    assert!(remote_gets(503, 5).await, "no allow token, no traffic");
    std::fs::write(&token, kept).unwrap();
    assert!(remote_gets(200, 5).await);
    let closed = std::fs::read(&file).unwrap();
    std::fs::write(&file, b"{ not json").unwrap();
    assert!(
        remote_gets(503, 5).await,
        "a damaged state file is OPEN, not \"no breaker\""
    );
    std::fs::remove_file(&file).unwrap();
    assert!(
        remote_gets(503, 5).await,
        "a setup with a history has a breaker"
    );
    std::fs::write(&file, &closed).unwrap();
    assert!(remote_gets(200, 5).await);
    // A change cut off mid-way is OPEN until a command finishes it.
    let out = std::process::Command::new(bin("moltguard"))
        .arg("--home")
        .arg(home)
        .args(["breaker", "half-open"])
        .env_clear()
        .env(moltguard::breaker::crashpoint::ENV, "audited")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(remote_gets(503, 5).await, "a pending change is OPEN");
}

/// Admission may read more than handlers take (MAX_BODY_BYTES above the
/// handlers' 16 MiB): past 16 MiB every handler that reads a body refuses
/// it, each as it always has.
#[tokio::test]
async fn handlers_keep_their_16_mib_body_limit() {
    let p = FakeProvider::start().await;
    let g = Gate::start(
        Some(&p),
        &[
            ("MAX_BODY_BYTES", "33554432"),
            ("SECURITY_FIREWALL", "false"),
        ],
    )
    .await;
    let admin = g.key("operator.admin");
    let local = client_from("127.0.0.1", Some(&admin));
    let big = "x".repeat(17 << 20);
    let r = local
        .post(format!("{}/v1/chat/completions", g.base()))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("the limit is 16 MiB"));
    for path in ["/api/login", "/api/security/admin/check"] {
        let r = local
            .post(format!("{}{path}", g.base()))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        assert_eq!(
            r.text().await.unwrap(),
            "Failed to buffer the request body: length limit exceeded",
            "{path}"
        );
    }
    // Over axum's default limit (2 MB), the body still reaches the handler.
    let r = local
        .post(format!("{}/api/security/admin/check", g.base()))
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(3 << 20)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
