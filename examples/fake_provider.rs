//! The test suite's fake OpenAI-compatible provider as a standalone server,
//! for the benchmark and for poking at moltgate by hand.
//!
//! `cargo run --release --example fake_provider -- 127.0.0.1:18001`

use moltguard_test_support::fake_provider;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18001".into());
    let p = fake_provider::FakeProvider::start_on(addr.parse().expect("ADDR like 127.0.0.1:18001"))
        .await;
    println!("fake provider on {}", p.base_url());
    tokio::signal::ctrl_c().await.ok();
}
