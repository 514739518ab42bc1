//! Mid-stream resume benchmark: how long a client's stream pauses when its
//! upstream is cut and moltgate continues it on the fallback, against the
//! fallback's own time to first token through moltgate.
//!
//! Run: `cargo run --release --example resume_bench` (`ROUNDS=100`).
//! Two fake providers on loopback; moltgate in process with
//! `LLM_STREAMING=true`. Each round streams `a/fake-answer-cut-5` with
//! `b/fake-answer-drip-20` as fallback (a word every 20 ms, as a model
//! streaming 50 tokens a second) and times every content chunk as it
//! arrives: the pause is the gap between the 5th word (the last before the
//! cut) and the 6th (the first from the fallback). Then the fallback is
//! streamed alone: its time to first content is its TTFB.

use moltguard_test_support::fake_provider;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use moltguard::gateway::config::{Env, GatewayConfig};
use moltguard::gateway::secrets::SecretSource;
use moltguard::gateway::{self, Gateway};

const FALLBACK: &str = "b/fake-answer-drip-20";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let a = fake_provider::FakeProvider::start().await;
    let b = fake_provider::FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env: Env = [
        ("MOLTGATE_STATE_DIR", dir.path().to_str().unwrap()),
        ("GATEWAY_AUTH_REQUIRED", "false"),
        ("LLM_STREAMING", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let toml = format!(
        "default_provider = \"a\"\n[providers.a]\nbase_url = \"{}\"\nlocal = true\n[providers.b]\nbase_url = \"{}\"\nlocal = true\n[circuit]\nfailure_threshold = 1000000\n",
        a.base_url(),
        b.base_url()
    );
    let cfg = GatewayConfig::from_toml_str(&toml, &env, "bench").expect("config");
    let gw = Gateway::new(cfg, &SecretSource::new(dir.path(), &env)).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    tokio::spawn(gateway::serve(gw, listener));
    let client = reqwest::Client::new();

    let mut pauses = Vec::with_capacity(rounds);
    let mut ttfb = Vec::with_capacity(rounds);
    let mut whole = 0;
    for _ in 0..rounds {
        let (times, text) = stream(&client, &url, "a/fake-answer-cut-5", Some(FALLBACK)).await;
        if text == fake_provider::CANONICAL {
            whole += 1;
        }
        // times[0] is the empty role chunk; words 1..=5 come from `a`.
        if times.len() > 6 {
            pauses.push(times[6] - times[5]);
        }
        let (times, _) = stream(&client, &url, FALLBACK, None).await;
        if let Some(t) = times.get(1) {
            ttfb.push(*t);
        }
    }
    println!("resumed streams read whole: {whole} of {rounds} (each word once, in order)");
    println!(
        "pause at the cut (5th → 6th word):   {}",
        summary(&mut pauses)
    );
    println!(
        "fallback alone, first content:       {}",
        summary(&mut ttfb)
    );
}

/// Streams `model` and returns when each chunk with content arrived
/// (from the request) and the text.
async fn stream(
    client: &reqwest::Client,
    url: &str,
    model: &str,
    fallback: Option<&str>,
) -> (Vec<Duration>, String) {
    let mut body = serde_json::json!({
        "model": model, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]
    });
    if let Some(f) = fallback {
        body["fallbacks"] = serde_json::json!([f]);
    }
    let t0 = Instant::now();
    let resp = client.post(url).json(&body).send().await.unwrap();
    let mut events = resp.bytes_stream();
    let mut buf = String::new();
    let mut times = Vec::new();
    let mut text = String::new();
    while let Some(Ok(bytes)) = events.next().await {
        buf.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some(data) = event.trim().strip_prefix("data:") else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim()) else {
                continue;
            };
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                times.push(t0.elapsed());
                text.push_str(c);
            }
        }
    }
    (times, text)
}

fn summary(v: &mut [Duration]) -> String {
    v.sort();
    let at = |p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (n = {})",
        at(0.5),
        at(0.9),
        at(0.99),
        v.len()
    )
}
