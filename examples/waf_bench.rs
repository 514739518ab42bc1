//! Micro-benchmark of `Firewall::inspect` per request.
//!
//! `cargo run --release --example waf_bench`

use std::hint::black_box;
use std::time::Instant;

use moltguard::firewall::{Firewall, FirewallConfig, RequestView};

fn sdk_headers(r: RequestView) -> RequestView {
    r.header("Host", "127.0.0.1:8080")
        .header("User-Agent", "OpenAI/Python 1.54.3")
        .header("Accept", "application/json")
        .header("Accept-Encoding", "gzip, deflate")
        .header(
            "Authorization",
            "Bearer sk-proj-Abc123XyZ789abcdefGHIJKLmnopQRST456uvw",
        )
        .header("X-Stainless-Lang", "python")
        .header("X-Stainless-Package-Version", "1.54.3")
        .header("X-Stainless-OS", "Linux")
        .header("X-Stainless-Arch", "x64")
        .header("X-Stainless-Runtime", "CPython")
        .header("X-Stainless-Runtime-Version", "3.12.4")
        .header("Connection", "keep-alive")
}

fn chat(content: &str) -> RequestView {
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": content}
        ]
    })
    .to_string();
    sdk_headers(RequestView::new("POST", "/v1/chat/completions"))
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len().to_string())
        .body(body)
}

/// Cost per `inspect` call: 41 batches of 200 calls; prints the median
/// and the fastest batch (the machine is shared, so the median carries
/// scheduling noise and the minimum is the closest to the real cost).
fn bench(name: &str, fw: &Firewall, req: &RequestView) {
    // Optional filter: `waf_bench chat` runs only matching rows (for profiling).
    if let Some(filter) = std::env::args().nth(1) {
        if !name.contains(&filter) {
            return;
        }
    }
    for _ in 0..500 {
        black_box(fw.inspect(black_box(req)));
    }
    let n_batches: usize = std::env::var("WAF_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    let mut batches: Vec<f64> = (0..n_batches.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..200 {
                black_box(fw.inspect(black_box(req)));
            }
            start.elapsed().as_nanos() as f64 / 200.0
        })
        .collect();
    batches.sort_by(|a, b| a.total_cmp(b));
    println!(
        "| {name} | {} | {:.1} µs | {:.1} µs |",
        req.body.len(),
        batches[batches.len() / 2] / 1000.0,
        batches[0] / 1000.0
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fw = Firewall::new(FirewallConfig::default())?;
    let typical = chat(
        "Summarise the following meeting notes in three bullet points: we agreed to ship the \
        new onboarding flow on Monday, Alice owns the QA pass, Bob will update the docs.",
    );
    let models = sdk_headers(RequestView::new("GET", "/v1/models"));
    let big = chat(
        &"fn main() { println!(\"hello\"); } // SELECT * FROM t; <div>x</div>\n"
            .repeat(64 * 1024 / 64),
    );
    let form = RequestView::new("POST", "/login?next=%2Fdashboard")
        .header("Host", "example.com")
        .header(
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        )
        .header("Accept", "text/html")
        .header("Cookie", "theme=dark; lang=en")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Content-Length", "38")
        .body("user=alice&password=hunter2&remember=1");
    let attack = RequestView::new(
        "GET",
        "/search?q=1%20UNION%20SELECT%20password%20FROM%20users--",
    )
    .header("Host", "example.com")
    .header("User-Agent", "Mozilla/5.0")
    .header("Accept", "*/*");
    println!("| request | body bytes | median | best batch |");
    println!("|---|---:|---:|---:|");
    bench("POST /v1/chat/completions (typical chat)", &fw, &typical);
    bench("GET /v1/models (SDK headers)", &fw, &models);
    bench("POST /v1/chat/completions (64 KiB body)", &fw, &big);
    bench("POST /login (form + cookies, non-LLM route)", &fw, &form);
    bench("GET /search (SQLi, blocked)", &fw, &attack);
    Ok(())
}
