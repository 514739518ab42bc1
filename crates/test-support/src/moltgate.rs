//! A real `moltgate` serving from a temporary moltguard home, and the
//! `moltguard` CLI pointed at that home (tests/security.rs, tests/dashboard.rs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fake_provider::FakeProvider;

pub const PASSWORD: &str = "a long gateway password";

/// A binary under test: `moltgate` or `moltguard`.
pub fn bin(name: &str) -> PathBuf {
    crate::binary(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `moltguard --home H --json ARGS`: exit code and parsed output.
pub fn cli(home: &Path, args: &[&str]) -> (i32, Value) {
    let out = Command::new(bin("moltguard"))
        .arg("--home")
        .arg(home)
        .arg("--json")
        .args(args)
        .env_clear()
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

/// A moltguard home with a moltgate serving from it (the gateway password
/// set, the fake provider as Ollama when given); killed on drop.
pub struct Gate {
    pub home: tempfile::TempDir,
    pub port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Gate {
    pub async fn start(provider: Option<&FakeProvider>, env: &[(&str, &str)]) -> Gate {
        Gate::start_in(tempfile::tempdir().unwrap(), provider, env).await
    }

    /// In a home prepared beforehand.
    pub async fn start_in(
        home: tempfile::TempDir,
        provider: Option<&FakeProvider>,
        env: &[(&str, &str)],
    ) -> Gate {
        let mut all: Vec<(String, String)> = vec![
            ("GATEWAY_PASSWORD".into(), PASSWORD.into()),
            ("DEFAULT_MODEL".into(), "fake-ok".into()),
        ];
        if let Some(p) = provider {
            all.push(("DEFAULT_LLM_PROVIDER".into(), "ollama".into()));
            all.push(("OLLAMA_BASE_URL".into(), format!("http://{}", p.addr)));
            all.push(("OLLAMA_MODEL".into(), "fake-ok".into()));
        }
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut g = Gate {
            home,
            port: free_port(),
            env: all,
            child: None,
        };
        g.spawn().await;
        g
    }

    pub async fn spawn(&mut self) {
        let mut cmd = Command::new(bin("moltgate"));
        cmd.arg("serve")
            .env_clear()
            .env("MOLTGUARD_HOME", self.home.path())
            .env("MOLTGATE_LISTEN", format!("127.0.0.1:{}", self.port))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
        let t = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/health", self.base())).await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "moltgate did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn cli(&self, args: &[&str]) -> (i32, Value) {
        cli(self.home.path(), args)
    }

    /// A new API key with these scopes.
    pub fn key(&self, scopes: &str) -> String {
        let (code, v) = self.cli(&["keys", "create", "--label", "t", "--scopes", scopes]);
        assert_eq!(code, 0, "{v}");
        v["key"].as_str().unwrap().to_string()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop();
    }
}
