//! A real stack per test: a private moltguard home, a real nginx on a
//! private prefix, and a small upstream HTTP server on loopback.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct-horse-battery";

/// The `moltguard` binary under test.
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| crate::binary("moltguard").to_string_lossy().into_owned())
}

/// Runs `cmd` with `input` on its standard input, and collects its output.
pub fn output_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The nginx the tests run (what `moltguard` finds the same way).
pub fn nginx_binary() -> &'static str {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/opt/homebrew/bin/nginx",
        "/usr/local/bin/nginx",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("nginx is installed (scripts/install-deps.sh)")
}

/// Whether a process runs: it exists and is not a zombie (where init does
/// not reap promptly, as in many containers, an exited process lingers).
pub fn process_alive(pid: i32) -> bool {
    let exists = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    });
    exists && !zombie
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Stack {
    pub home: tempfile::TempDir,
    pub edge_port: u16,
}

// No `Default`: making a stack starts an upstream server and runs `init`.
#[allow(clippy::new_without_default)]
impl Stack {
    /// init + a running upstream; no user yet, nginx not started yet.
    pub fn new() -> Self {
        Self::new_in(&std::env::temp_dir())
    }

    /// Like `new`, with the home in `parent` (not every path may be under /tmp).
    pub fn new_in(parent: &Path) -> Self {
        let home = tempfile::Builder::new()
            .prefix("moltguard-test-")
            .tempdir_in(parent)
            .unwrap();
        // The upstream holds its port; the edge's, picked and let go, could
        // otherwise be handed out again at once to the upstream.
        let upstream = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream_port = upstream.local_addr().unwrap().port();
        let edge_port = std::iter::repeat_with(free_port)
            .find(|&p| p != upstream_port)
            .expect("a free port");
        std::thread::spawn(move || serve_upstream(upstream));
        let s = Stack { home, edge_port };
        s.ok(&[
            "init",
            "--edge-port",
            &edge_port.to_string(),
            "--upstream-port",
            &upstream_port.to_string(),
        ]);
        s
    }

    /// A stack with a user added and nginx running (breaker OPEN).
    pub fn started() -> Self {
        let s = Self::new();
        s.add_user();
        s.ok(&["nginx", "start"]);
        s
    }

    /// Rewrites one `key = value` line of moltguard.toml (the starter file has every key).
    pub fn set_config(&self, key_prefix: &str, line: &str) {
        let path = self.path("moltguard.toml");
        let text = read(&path);
        let mut found = false;
        let out: Vec<String> = text
            .lines()
            .map(|l| {
                if !found && l.starts_with(key_prefix) {
                    found = true;
                    line.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        assert!(
            found,
            "no line starting with {key_prefix:?} in moltguard.toml"
        );
        std::fs::write(&path, out.join("\n") + "\n").unwrap();
    }

    pub fn add_user(&self) {
        let out = self.run_with_stdin(
            &["auth", "add-user", USER, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--home").arg(self.home.path()).args(args);
        c.env_remove("MOLTGUARD_CONFIG")
            .env_remove("MOLTGUARD_STATE_DIR")
            .env_remove("MOLTGUARD_NGINX");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        output_with_stdin(self.command(args), input)
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "moltguard {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with --json and parses stdout.
    pub fn json(&self, args: &[&str]) -> (i32, Value) {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a);
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    pub fn state(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path("state/breaker.json")).unwrap()).unwrap()
    }

    pub fn edge(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.edge_port))
    }

    pub fn get(&self, auth: bool) -> Response {
        http_get(self.edge(), None, auth.then_some((USER, PASSWORD)), &[])
    }

    /// What a person does by hand, behind moltguard's back: signals the
    /// managed nginx to reload whatever is on disk now.
    pub fn hand_reload(&self) {
        let out = Command::new(nginx_binary())
            .arg("-p")
            .arg(self.path("nginx/runtime"))
            .arg("-c")
            .arg(self.path("nginx/nginx.conf"))
            .args(["-s", "reload"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx -s reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // New workers start, and the old ones keep accepting for 100 ms.
        std::thread::sleep(Duration::from_millis(400));
    }

    /// Edits the breaker include by hand.
    pub fn edit_include(&self, edit: impl FnOnce(&str) -> String) {
        let inc = self.path("nginx/breaker.conf");
        std::fs::write(&inc, edit(&read(&inc))).unwrap();
    }

    pub fn nginx_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.path("nginx/runtime/nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        process_alive(pid).then_some(pid)
    }

    /// The pid the managed nginx's pid file names, alive or not.
    fn recorded_nginx_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path("nginx/runtime/nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(pid) = self.nginx_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let end = Instant::now() + Duration::from_secs(3);
            while self.nginx_pid().is_some() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Workers a test orphaned (their master killed) go with their group.
        if let Some(pid) = self.recorded_nginx_pid().filter(|p| *p > 1) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The upstream the edge protects: answers 200 and echoes the
/// X-Forwarded-For, Authorization and Cookie it received, so tests can see
/// what nginx passed on.
fn serve_upstream(l: TcpListener) {
    for conn in l.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut xff = String::from("-");
            let mut authorization = String::from("-");
            let mut cookie = String::from("-");
            let mut upgrade = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let t = line.trim_end();
                if t.is_empty() {
                    break;
                }
                if let Some((k, v)) = t.split_once(':') {
                    if k.eq_ignore_ascii_case("x-forwarded-for") {
                        xff = v.trim().to_string();
                    } else if k.eq_ignore_ascii_case("authorization") {
                        authorization = v.trim().to_string();
                    } else if k.eq_ignore_ascii_case("cookie") {
                        cookie = v.trim().to_string();
                    } else if k.eq_ignore_ascii_case("upgrade") {
                        upgrade = v.trim().eq_ignore_ascii_case("websocket");
                    }
                }
            }
            if upgrade {
                // A WebSocket that stays open until the other side goes.
                let _ = write!(
                    conn,
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                );
                let mut sink = [0u8; 1024];
                while matches!(std::io::Read::read(&mut reader, &mut sink), Ok(n) if n > 0) {}
                return;
            }
            let body =
                format!("upstream ok; xff={xff}; authorization={authorization}; cookie={cookie}\n");
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 GET on a fresh connection, optionally from a chosen local
/// address (127.0.0.2 is a "remote" client as far as nginx can tell).
pub fn http_get(
    addr: SocketAddr,
    from: Option<&str>,
    auth: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> Response {
    try_http_get(addr, from, auth, extra)
        .unwrap_or_else(|e| panic!("GET http://{addr}/ failed: {e}"))
}

pub fn try_http_get(
    addr: SocketAddr,
    from: Option<&str>,
    auth: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> std::io::Result<Response> {
    try_http_get_path(addr, "/", from, auth, extra)
}

/// [`try_http_get`] for any path.
pub fn try_http_get_path(
    addr: SocketAddr,
    path: &str,
    from: Option<&str>,
    auth: Option<(&str, &str)>,
    extra: &[(&str, &str)],
) -> std::io::Result<Response> {
    let stream = match from {
        Some(ip) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            let local: SocketAddr = format!("{ip}:0").parse().unwrap();
            sock.bind(&local.into())?;
            sock.connect_timeout(&addr.into(), Duration::from_secs(2))?;
            TcpStream::from(sock)
        }
        None => TcpStream::connect_timeout(&addr, Duration::from_secs(2))?,
    };
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some((u, p)) = auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    (&stream).write_all(req.as_bytes())?;
    read_response(&stream)
}

/// Sends `request` as it is (for requests a client library would refuse to
/// build) and reads the answer until the server closes.
pub fn raw_request(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(request)?;
    read_response(&stream)
}

fn read_response(stream: &TcpStream) -> std::io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let t = line.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut body = String::new();
    std::io::Read::read_to_string(&mut reader, &mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Polls `f` until it returns true or `within` passes.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// A running `moltguard guardian run` (JSON log lines in `HOME/guardian.log`),
/// killed on drop.
pub struct Guardian {
    child: std::process::Child,
}

impl Guardian {
    /// Starts it and waits for its first scan.
    pub fn start(s: &Stack) -> Guardian {
        let status = s.path("state/guardian.json");
        let _ = std::fs::remove_file(&status);
        let child = s
            .command(&["guardian", "run", "--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(s.path("guardian.log")).unwrap())
            .spawn()
            .unwrap();
        let g = Guardian { child };
        assert!(
            eventually(Duration::from_secs(10), || status.exists()),
            "the guardian never finished a first scan"
        );
        g
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tool the test needs: `None` (skip) on a developer's machine without
/// it, a failure in CI, which installs it.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not installed (scripts/install-deps.sh installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}
