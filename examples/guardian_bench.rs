//! Guardian benchmark: how fast a bad change on disk or a new public socket
//! gets denied by nginx, what a scan costs, and the guardian's idle memory.
//!
//! Run: `cargo run --release --example guardian_bench` (needs nginx; Linux for RSS).
//! Everything runs on loopback in a temporary home; the self-probe is off.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password-123";

fn main() {
    let exe = std::env::var("MOLTGUARD_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/moltguard").to_string()
    });
    assert!(
        Path::new(&exe).exists(),
        "build it first: cargo build --release (or set MOLTGUARD_BIN)"
    );
    let home = tempfile::Builder::new()
        .prefix("moltguard-bench-")
        .tempdir()
        .unwrap();
    let h = home.path().to_str().unwrap().to_string();
    let mg = |args: &[&str]| -> std::process::Output {
        let mut c = Command::new(&exe);
        c.arg("--home").arg(&h).args(args);
        c.output().unwrap()
    };
    let edge = free_port();
    let upstream_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = upstream_listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve_ok(upstream_listener));
    let agent = free_port();
    ok(mg(&[
        "init",
        "--edge-port",
        &edge.to_string(),
        "--upstream-port",
        &upstream.to_string(),
    ]));
    let cfg = home.path().join("moltguard.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text
        .replace("interval = \"30s\"", "interval = \"5s\"")
        .replace("self_probe = true", "self_probe = false")
        .replace(
            &format!("agent_port = {}", 18789),
            &format!("agent_port = {agent}"),
        );
    let text = clear_agent_homes(&text);
    std::fs::write(&cfg, text).unwrap();
    let mut add = Command::new(&exe)
        .args([
            "--home",
            &h,
            "auth",
            "add-user",
            "bench",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());
    ok(mg(&["nginx", "start"]));
    let _nginx = NginxGuard(exe.clone(), h.clone());

    // Hundreds of sockets for the scan to look through.
    let _many: Vec<TcpListener> = (0..300)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();

    println!("moltguard guardian benchmark (poll interval 5s, nginx on 127.0.0.1:{edge})");
    println!();
    let mut g = Guardian::start(&exe, &h);

    // 1. A bad file on disk → nginx denies.
    let mut file_delays = Vec::new();
    for _ in 0..5 {
        ok(mg(&["breaker", "close"]));
        wait_status(edge, 200, Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(home.path().join("state/breaker.json"), "{ corrupt").unwrap();
        file_delays.push(wait_status(edge, 503, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(300));
    }
    print_delays(
        "corrupt state file written → nginx answers 503",
        &file_delays,
        "target ≤ 1 s",
    );

    // 2. A new public socket on a protected port → nginx denies.
    let mut sock_delays = Vec::new();
    for _ in 0..3 {
        ok(mg(&["breaker", "close"]));
        wait_status(edge, 200, Duration::from_secs(5));
        // Let the scan that `close` itself triggered pass: this measures the poll.
        std::thread::sleep(Duration::from_millis(1500));
        let l = TcpListener::bind(("0.0.0.0", agent)).unwrap();
        sock_delays.push(wait_status(edge, 503, Duration::from_secs(15)));
        drop(l);
        std::thread::sleep(Duration::from_millis(300));
    }
    print_delays(
        "0.0.0.0 bind on a protected port → nginx answers 503",
        &sock_delays,
        "target ≤ interval (5 s) + 1 s",
    );

    // 3. Scan cost and idle memory, from steady-state poll cycles.
    std::thread::sleep(Duration::from_secs(11));
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("state/guardian.json")).unwrap())
            .unwrap();
    println!(
        "one poll scan (300+ sockets): {} µs CPU, {} µs wall",
        status["scan_cpu_us"], status["scan_wall_us"]
    );
    // A one-shot audit is a new process: it pays for startup, and runs `nginx -t`.
    let audit = mg(&["--json", "audit"]);
    let a: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap_or_default();
    println!(
        "full audit incl. `nginx -t`: {} µs CPU, {} µs wall",
        a["cpu_us"], a["wall_us"]
    );
    match rss_kb(g.child.id()) {
        Some(kb) => println!("guardian idle RSS: {:.1} MB", kb as f64 / 1024.0),
        None => println!("guardian idle RSS: not measured on this platform"),
    }
    g.stop();
}

fn clear_agent_homes(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("agent_homes") {
                "agent_homes = []".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

struct Guardian {
    child: Child,
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops the bench's nginx even when the bench panics.
struct NginxGuard(String, String);

impl Drop for NginxGuard {
    fn drop(&mut self) {
        let _ = Command::new(&self.0)
            .args(["--home", &self.1, "nginx", "stop"])
            .output();
    }
}

impl Guardian {
    fn start(exe: &str, home: &str) -> Self {
        let status = Path::new(home).join("state/guardian.json");
        let _ = std::fs::remove_file(&status);
        let child = Command::new(exe)
            .args(["--home", home, "guardian", "run"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(10);
        while !status.exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        Guardian { child }
    }
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The protected upstream: answers 200 to anything.
fn serve_ok(l: TcpListener) {
    use std::io::{Read, Write};
    for mut c in l.incoming().flatten() {
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    }
}

fn ok(o: std::process::Output) {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls the edge every 5 ms until it answers `want`; returns how long it took.
fn wait_status(port: u16, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < within {
        if status(port) == Some(want) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("edge did not answer {want} within {within:?}");
}

fn status(port: u16) -> Option<u16> {
    use base64::Engine;
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("bench:{PASSWORD}"));
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 16];
    s.read_exact(&mut buf[..12]).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}

fn print_delays(what: &str, d: &[Duration], target: &str) {
    let ms: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    let max = ms.iter().cloned().fold(0.0, f64::max);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "{what}: mean {mean:.0} ms, max {max:.0} ms over {} runs ({target})",
        ms.len()
    );
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
