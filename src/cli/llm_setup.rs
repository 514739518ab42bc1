//! For `up`: which LLM providers the moltgate it starts will be able to use,
//! and, when none, how to add one (an Ollama already running on this
//! machine is found and named).

use crate::config::Config;
use crate::gateway::config::{self as gwconfig, GatewayConfig};
use crate::gateway::secrets::SecretSource;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Where Ollama listens by default.
pub(super) const OLLAMA_ADDR: &str = "127.0.0.1:11434";
/// How long `up` waits for a local Ollama to answer: it must not slow startup.
pub(super) const OLLAMA_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// What moltgate will start with.
#[derive(Debug, serde::Serialize)]
pub(super) struct LlmSetup {
    /// Providers that can answer: `name` and where the key comes from.
    pub usable: Vec<UsableProvider>,
    /// The gateway config could not be loaded (moltgate will say the same).
    pub config_error: Option<String>,
    /// Checked only when nothing is usable.
    pub ollama: Option<OllamaFound>,
    /// Where moltgate reads its config file, if it has a place for one.
    pub config_file: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct UsableProvider {
    pub name: String,
    /// "file", "keychain", "environment", ... or "no key needed".
    pub key: String,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct OllamaFound {
    pub url: String,
    pub models: Vec<String>,
}

/// moltgate's default model, as the moltgate `up` starts will load it.
pub(super) fn default_model(cfg: &Config) -> Option<String> {
    let env = gateway_env(cfg);
    let path = gwconfig::default_config_path(&env).filter(|p| p.exists());
    GatewayConfig::load(path.as_deref(), &env)
        .ok()
        .map(|gc| gc.default_model)
        .filter(|m| !m.is_empty())
}

/// The environment moltgate gets from `up`: this one, with the home and
/// state dir of this setup.
fn gateway_env(cfg: &Config) -> gwconfig::Env {
    let mut env = gwconfig::process_env();
    if let Some(home) = &cfg.layout.home {
        env.insert("MOLTGUARD_HOME".into(), home.display().to_string());
    }
    env.insert(
        "MOLTGATE_STATE_DIR".into(),
        cfg.layout.state_dir.display().to_string(),
    );
    env
}

/// Loads the gateway config exactly as the moltgate `up` starts will (same
/// home, state dir and environment) and sees which providers have a key.
pub(super) fn inspect(cfg: &Config) -> LlmSetup {
    let env = gateway_env(cfg);
    let config_file = gwconfig::default_config_path(&env);
    let path = config_file.clone().filter(|p| p.exists());
    let mut setup = LlmSetup {
        usable: Vec::new(),
        config_error: None,
        ollama: None,
        config_file,
    };
    match GatewayConfig::load(path.as_deref(), &env) {
        Err(e) => setup.config_error = Some(e.to_string()),
        Ok(gc) => {
            let secrets = SecretSource::new(gc.state_dir.clone(), &env);
            for p in &gc.providers {
                let key = match &p.key_ref {
                    None => Some("no key needed".to_string()),
                    Some(k) => match secrets.resolve(k) {
                        Ok(Some(s)) => Some(format!("key {k} from {}", s.origin.as_str())),
                        _ => None,
                    },
                };
                if let Some(key) = key {
                    setup.usable.push(UsableProvider {
                        name: p.name.clone(),
                        key,
                    });
                }
            }
        }
    }
    if setup.usable.is_empty() && setup.config_error.is_none() {
        let addr: SocketAddr = OLLAMA_ADDR.parse().expect("a valid address");
        setup.ollama = detect_ollama(addr, OLLAMA_PROBE_TIMEOUT).map(|models| OllamaFound {
            url: format!("http://{addr}"),
            models,
        });
    }
    setup
}

impl LlmSetup {
    /// Lines for a person, each a complete thought; `prefix` is how to run
    /// moltguard for this setup (`moltguard --home DIR`).
    pub(super) fn lines(&self, prefix: &str) -> Vec<String> {
        if let Some(e) = &self.config_error {
            return vec![
                format!("llm:      moltgate's config is not valid: {e}"),
                "          fix it (docs/GATEWAY.md lists every key), then restart `up`".into(),
            ];
        }
        if !self.usable.is_empty() {
            let list = self
                .usable
                .iter()
                .map(|p| format!("{} ({})", p.name, p.key))
                .collect::<Vec<_>>()
                .join(", ");
            let mut v = vec![format!("llm:      {list}")];
            if let Some(p) = self.usable.iter().find(|p| p.key.ends_with("environment")) {
                let var = p.key.split_whitespace().nth(1).unwrap_or("THE_KEY");
                v.push(format!(
                    "          move {var} out of the environment: `{prefix} secrets set {var}`, then unset it"
                ));
            }
            return v;
        }
        let mut v = vec![
            "llm:      no LLM provider is set up: moltgate answers every request with an error"
                .into(),
        ];
        match &self.ollama {
            Some(o) => {
                let model = o.models.first().map(String::as_str);
                match model {
                    Some(_) => v.push(format!(
                        "          Ollama runs on {} (models: {}); to use it:",
                        o.url,
                        o.models.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                    )),
                    None => v.push(format!(
                        "          Ollama runs on {} but has no models: `ollama pull llama3.2` first; then:",
                        o.url
                    )),
                }
                let model = model.unwrap_or("llama3.2");
                v.push(format!(
                    "            stop this (Ctrl-C) and run: OLLAMA_BASE_URL={} OLLAMA_MODEL={model} DEFAULT_MODEL={model} {prefix} up",
                    o.url
                ));
                if let Some(f) = &self.config_file {
                    v.push(format!(
                        "            or, to keep it, put this in {}:",
                        f.display()
                    ));
                    for l in [
                        "default_provider = \"ollama\"".to_string(),
                        format!("default_model = \"{model}\""),
                        "[providers.ollama]".into(),
                        format!("model = \"{model}\""),
                    ] {
                        v.push(format!("              {l}"));
                    }
                }
            }
            None => {
                v.push(format!(
                    "          a hosted one: `{prefix} secrets set GROQ_API_KEY` (or OPENROUTER_API_KEY, OPENAI_API_KEY), then restart `up`"
                ));
                v.push(
                    "          a local one: install Ollama (https://ollama.com), `ollama pull llama3.2`, then restart `up`"
                        .into(),
                );
                v.push(match &self.config_file {
                    Some(f) => format!(
                        "          more (aliases, fallbacks, any OpenAI-compatible URL): {} as in docs/GATEWAY.md",
                        f.display()
                    ),
                    None => "          more (aliases, fallbacks, any OpenAI-compatible URL): docs/GATEWAY.md".into(),
                });
            }
        }
        v
    }
}

/// `GET /api/tags` on an Ollama at `addr`: the model names if it answers
/// like Ollama within `timeout` (all of it: connect, send, read), else None.
pub(super) fn detect_ollama(addr: SocketAddr, timeout: Duration) -> Option<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_write_timeout(Some(left()?)).ok()?;
    // HTTP/1.0: the server closes the connection after the answer, which
    // then ends at EOF (no chunked encoding to undo).
    // One write: a request split over several segments can reach a server
    // that answers and closes after the first, which then resets ours.
    let request = format!(
        "GET /api/tags HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nUser-Agent: moltguard\r\n\r\n"
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        s.set_read_timeout(Some(left()?)).ok()?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
        if raw.len() > 1 << 20 {
            return None;
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&raw[split + 4..]).ok()?;
    let models = body.get("models")?.as_array()?;
    Some(
        models
            .iter()
            .filter_map(|m| m.get("name").and_then(|n| n.as_str()).map(String::from))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server that reads the request and sends `answer`
    /// (or nothing, holding the connection, when `answer` is None).
    fn serve_once(answer: Option<&'static str>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // Read the whole request: closing with unread bytes would
            // reset the connection instead of ending it.
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            match answer {
                Some(a) => {
                    let _ = c.write_all(a.as_bytes());
                }
                None => std::thread::sleep(Duration::from_secs(2)),
            }
        });
        addr
    }

    #[test]
    fn an_ollama_is_recognised_with_its_models() {
        let addr = serve_once(Some(
            "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n\
             {\"models\":[{\"name\":\"llama3.2:latest\",\"size\":1},{\"name\":\"qwen2.5:7b\"}]}",
        ));
        assert_eq!(
            detect_ollama(addr, Duration::from_secs(2)).unwrap(),
            vec!["llama3.2:latest", "qwen2.5:7b"]
        );
    }

    #[test]
    fn anything_else_is_not_an_ollama() {
        let other = serve_once(Some("HTTP/1.0 200 OK\r\n\r\n<html>hello</html>"));
        assert_eq!(detect_ollama(other, Duration::from_secs(2)), None);
        let not_found = serve_once(Some("HTTP/1.0 404 Not Found\r\n\r\n{\"models\":[]}"));
        assert_eq!(detect_ollama(not_found, Duration::from_secs(2)), None);
        // Nothing listening.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(detect_ollama(closed, Duration::from_secs(2)), None);
    }

    #[test]
    fn a_silent_port_costs_only_the_timeout() {
        let silent = serve_once(None);
        let t = Instant::now();
        assert_eq!(detect_ollama(silent, Duration::from_millis(300)), None);
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn without_a_provider_the_way_to_add_one_is_printed() {
        let none = LlmSetup {
            usable: vec![],
            config_error: None,
            ollama: None,
            config_file: Some("/h/moltgate.toml".into()),
        };
        let text = none.lines("moltguard --home /h").join("\n");
        assert!(
            text.contains("moltguard --home /h secrets set GROQ_API_KEY"),
            "{text}"
        );
        assert!(text.contains("ollama.com"), "{text}");
        let ollama = LlmSetup {
            ollama: Some(OllamaFound {
                url: "http://127.0.0.1:11434".into(),
                models: vec!["qwen2.5:7b".into()],
            }),
            ..none
        };
        let text = ollama.lines("moltguard --home /h").join("\n");
        assert!(
            text.contains("OLLAMA_BASE_URL=http://127.0.0.1:11434 OLLAMA_MODEL=qwen2.5:7b"),
            "{text}"
        );
        assert!(text.contains("default_provider = \"ollama\""), "{text}");
    }
}
