//! Slow-client benchmark: a normal client's latency while one address holds
//! thousands of slow connections (slowloris: a header byte a second, and a
//! new connection whenever the server closes one).
//!
//! Run by `bench/slow_clients.sh`, which starts moltgate and the edge; alone:
//! `cargo run --release --example slow_clients_bench -- ADDR [PATH] [USER:PASSWORD]`
//! with `SLOW=2000` (slow connections), `REQUESTS=400` (normal requests per
//! phase), `ATTACKER=127.0.0.2` and `CLIENT=127.0.0.1` (source addresses;
//! loopback only).
//!
//! Prints, for the normal client without and then with the slow
//! connections held: p50/p99/max latency and how many requests failed,
//! and how many slow connections the server held open at the end.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target: SocketAddr = args
        .next()
        .expect("usage: slow_clients_bench ADDR [PATH] [USER:PASSWORD]")
        .parse()
        .expect("ADDR is IP:PORT");
    assert!(target.ip().is_loopback(), "loopback targets only");
    let path = args.next().unwrap_or_else(|| "/health".into());
    let auth = args.next().map(|up| {
        use base64::Engine;
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(up)
        )
    });
    let slow: usize = env_or("SLOW", 2000);
    let requests: usize = env_or("REQUESTS", 400);
    let attacker: IpAddr = env_or("ATTACKER", IpAddr::from([127, 0, 0, 2]));
    let client: IpAddr = env_or("CLIENT", IpAddr::from([127, 0, 0, 1]));
    assert!(attacker.is_loopback() && client.is_loopback());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: bench\r\n{}Connection: close\r\n\r\n",
        auth.unwrap_or_default()
    );

    let quiet = normal_client(target, client, &request, requests);
    println!("{}", quiet.line("alone"));

    let open = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..slow {
        rt.spawn(slow_connection(target, attacker, open.clone()));
    }
    // Let the slow connections pile up (and the first ones be cut off).
    let t = Instant::now();
    while open.load(Ordering::Relaxed) < slow.min(500) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let loaded = normal_client(target, client, &request, requests);
    println!(
        "{}",
        loaded.line(&format!(
            "with {slow} slow connections from {attacker} ({} open from the attacker's side)",
            open.load(Ordering::Relaxed)
        ))
    );
    rt.shutdown_background();
}

struct Phase {
    latencies: Vec<Duration>,
    failed: usize,
    statuses: std::collections::BTreeMap<u16, usize>,
}

impl Phase {
    fn line(&self, what: &str) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
        };
        format!(
            "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; statuses {:?}; failed {}",
            pct(0.5),
            pct(0.99),
            l.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
            self.statuses,
            self.failed
        )
    }
}

/// `n` requests one after another, each on a new connection from `from`.
fn normal_client(target: SocketAddr, from: IpAddr, request: &str, n: usize) -> Phase {
    let mut phase = Phase {
        latencies: Vec::with_capacity(n),
        failed: 0,
        statuses: Default::default(),
    };
    for _ in 0..n {
        let t = Instant::now();
        match one_request(target, from, request) {
            Ok(status) => {
                phase.latencies.push(t.elapsed());
                *phase.statuses.entry(status).or_default() += 1;
            }
            Err(_) => phase.failed += 1,
        }
    }
    phase
}

fn one_request(target: SocketAddr, from: IpAddr, request: &str) -> std::io::Result<u16> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::new(from, 0).into())?;
    sock.connect_timeout(&target.into(), Duration::from_secs(5))?;
    let mut s = TcpStream::from(sock);
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::with_capacity(1024);
    s.read_to_end(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..buf.len().min(32)]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))
}

/// One slowloris connection, re-opened whenever the server closes it.
async fn slow_connection(target: SocketAddr, from: IpAddr, open: Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    loop {
        let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
            return;
        };
        if sock.bind(SocketAddr::new(from, 0)).is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let Ok(mut s) = sock.connect(target).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        open.fetch_add(1, Ordering::Relaxed);
        if s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n")
            .await
            .is_ok()
        {
            // A header byte a second, forever: only the server ends it.
            while s.write_all(b"X").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        open.fetch_sub(1, Ordering::Relaxed);
    }
}
