//! Gateway configuration: a TOML file overlaid by the environment variables
//! users already know (`GROQ_API_KEY`, `DEFAULT_MODEL`, ...).
//!
//! Precedence: built-in defaults < TOML file < environment. Loading never
//! touches the process environment directly; callers pass a snapshot so tests
//! stay hermetic.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Snapshot of environment variables (name -> value).
pub type Env = HashMap<String, String>;

/// Take a snapshot of the process environment.
pub fn process_env() -> Env {
    std::env::vars().collect()
}

/// Where moltgate listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// The model asked for when a request names none.
pub const DEFAULT_MODEL: &str = "llama-3.1-8b-instant";
/// A request's whole deadline until its answer starts: 15 seconds.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 15_000;
/// A committed stream's longest life: 10 minutes.
pub const DEFAULT_MAX_STREAM_MS: u64 = 600_000;
/// A route with fallbacks after it waits at most half the time left: a
/// silent primary leaves its fallback as long as it had (7.5 s of 15 s).
pub const DEFAULT_ATTEMPT_SHARE_PCT: u64 = 50;
/// Retries of the same route, per request.
pub const DEFAULT_MAX_RETRIES: u32 = 1;

/// Which preset a provider is built from. Presets only supply defaults
/// (base URL, key reference, probe model); everything can be overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Groq (`GROQ_API_KEY`).
    Groq,
    /// OpenRouter (`OPENROUTER_API_KEY`).
    OpenRouter,
    /// Ollama on this machine (no key).
    Ollama,
    /// OpenAI (`OPENAI_API_KEY`).
    OpenAi,
    /// Any OpenAI-compatible base URL.
    Compatible,
}

impl ProviderKind {
    /// The preset called `s` (`openai-compatible` and `custom` mean `compatible`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "groq" => Self::Groq,
            "openrouter" => Self::OpenRouter,
            "ollama" => Self::Ollama,
            "openai" => Self::OpenAi,
            "compatible" | "openai-compatible" | "custom" => Self::Compatible,
            _ => return None,
        })
    }

    /// The preset's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Groq => "groq",
            Self::OpenRouter => "openrouter",
            Self::Ollama => "ollama",
            Self::OpenAi => "openai",
            Self::Compatible => "openai-compatible",
        }
    }

    fn default_base_url(self, env: &Env) -> Option<String> {
        match self {
            Self::Groq => Some("https://api.groq.com/openai/v1".into()),
            Self::OpenRouter => Some("https://openrouter.ai/api/v1".into()),
            Self::OpenAi => Some("https://api.openai.com/v1".into()),
            Self::Ollama => Some(ollama_base_url(
                env.get("OLLAMA_BASE_URL")
                    .map(String::as_str)
                    .unwrap_or("http://127.0.0.1:11434"),
            )),
            Self::Compatible => None,
        }
    }

    fn default_key_ref(self) -> Option<&'static str> {
        match self {
            Self::Groq => Some("GROQ_API_KEY"),
            Self::OpenRouter => Some("OPENROUTER_API_KEY"),
            Self::OpenAi => Some("OPENAI_API_KEY"),
            Self::Ollama | Self::Compatible => None,
        }
    }

    fn default_model(self, env: &Env) -> Option<String> {
        match self {
            Self::Groq => Some(DEFAULT_MODEL.into()),
            Self::OpenRouter => Some("meta-llama/llama-3.1-8b-instruct".into()),
            Self::OpenAi => Some("gpt-4o-mini".into()),
            Self::Ollama => Some(
                env.get("OLLAMA_MODEL")
                    .cloned()
                    .unwrap_or_else(|| "llama3.2".into()),
            ),
            Self::Compatible => None,
        }
    }
}

/// Ollama users set `OLLAMA_BASE_URL=http://host:11434` (no `/v1`); its
/// OpenAI-compatible API lives under `/v1`.
fn ollama_base_url(raw: &str) -> String {
    let t = raw.trim_end_matches('/');
    if t.ends_with("/v1") {
        t.to_string()
    } else {
        format!("{t}/v1")
    }
}

/// Per-attempt deadlines for one provider. Each attempt's effective budget is
/// additionally capped by what is left of the request's overall deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (+TLS) connect.
    pub connect: Duration,
    /// From sending the request to receiving response headers.
    pub ttfb: Duration,
    /// Longest silence between two body chunks.
    pub idle: Duration,
    /// Whole attempt, headers and body, until a stream's first content
    /// (a flowing stream is bounded by `idle` and `LLM_MAX_STREAM_MS`).
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(2_000),
            ttfb: Duration::from_millis(10_000),
            idle: Duration::from_millis(5_000),
            total: Duration::from_millis(DEFAULT_REQUEST_TIMEOUT_MS),
        }
    }
}

/// One `[providers.NAME]` section, resolved.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Its name, as routes (`name/model`) refer to it.
    pub name: String,
    /// Its preset.
    pub kind: ProviderKind,
    /// Its OpenAI-compatible base URL (ending in `/v1`, as the presets do).
    pub base_url: String,
    /// Name of the secret holding the API key (never the key itself).
    pub key_ref: Option<String>,
    /// Model used by `providers.test` and the startup probe.
    pub default_model: Option<String>,
    /// Its connect, first-byte, idle and total deadlines.
    pub timeouts: Timeouts,
    /// Runs on this machine or network (Ollama, a LAN model server): may
    /// resolve to private addresses. Remote providers may not (SSRF guard).
    pub local: bool,
}

/// The providers' circuits (`[circuit]` in moltgate.toml).
#[derive(Debug, Clone, Copy)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit skips the provider before one probe.
    pub cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// Everything moltgate runs with: `moltgate.toml` overlaid by the environment.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `MOLTGATE_LISTEN`: the address served.
    pub listen: SocketAddr,
    /// Where the security database and the secrets live.
    pub state_dir: PathBuf,
    /// The provider a bare model name goes to.
    pub default_provider: String,
    /// The model a request without one gets.
    pub default_model: String,
    /// A streaming client sees the provider's stream as it comes (`true`),
    /// or the whole answer, as a stream, once it is complete (`false`).
    pub streaming: bool,
    /// Ask chat providers for a stream even when the client gets a whole
    /// answer, and assemble it: the deadlines then bound the wait for the
    /// first token and between tokens, never the answer's length.
    pub stream_upstream: bool,
    /// Overall deadline for a request's whole chain of attempts, until its
    /// answer starts (a stream's first content): it bounds waiting, never
    /// the length of an answer that is flowing.
    pub request_timeout: Duration,
    /// Longest a committed stream may last, end to end (a safety net; the
    /// idle timeout between chunks is what catches a stalled one).
    pub max_stream: Duration,
    /// The share (percent) of the time left that an attempt with routes
    /// after it may wait for its answer to begin, so that a silent route
    /// leaves the rest of the chain room (100: no split).
    pub attempt_share_pct: u32,
    /// Retries of the same route, across the whole request.
    pub max_retries: u32,
    /// Longest `Retry-After` the gateway waits for instead of falling back.
    pub max_retry_after: Duration,
    /// The configured providers, in order.
    pub providers: Vec<ProviderConfig>,
    /// Alias -> ordered chain of "provider/model".
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Appended after wildcard (non-alias) routes.
    pub fallbacks: Vec<String>,
    /// The providers' circuits.
    pub circuit: CircuitConfig,
    /// Admission's settings (`[security]`).
    pub security: crate::inbound::SecurityConfig,
    /// Where the config came from, for messages.
    pub source: Option<PathBuf>,
}

impl GatewayConfig {
    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

/// Why a gateway configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a field it does not know.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, and where.
        message: String,
    },
    /// A value is out of range or unsafe (the message says which, and why).
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    default_provider: Option<String>,
    default_model: Option<String>,
    streaming: Option<bool>,
    stream_upstream: Option<bool>,
    request_timeout_ms: Option<u64>,
    max_stream_ms: Option<u64>,
    attempt_share_pct: Option<u32>,
    max_retries: Option<u32>,
    max_retry_after_ms: Option<u64>,
    fallbacks: Option<Vec<String>>,
    #[serde(default)]
    providers: BTreeMap<String, FileProvider>,
    #[serde(default)]
    aliases: BTreeMap<String, Vec<String>>,
    /// `[circuit]`; `[breaker]` is its older name, still read.
    #[serde(alias = "breaker")]
    circuit: Option<FileCircuit>,
    security: Option<crate::inbound::config::FileSecurity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileProvider {
    preset: Option<String>,
    base_url: Option<String>,
    /// Key reference: the name of a secret, e.g. "GROQ_API_KEY".
    key: Option<String>,
    model: Option<String>,
    connect_timeout_ms: Option<u64>,
    ttfb_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    /// Mark an OpenAI-compatible provider as local (see `ProviderConfig::local`).
    local: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCircuit {
    failure_threshold: Option<u32>,
    cooldown_ms: Option<u64>,
}

/// Default config file location: `$MOLTGUARD_HOME/moltgate.toml` if set.
pub fn default_config_path(env: &Env) -> Option<PathBuf> {
    env.get("MOLTGATE_CONFIG").map(PathBuf::from).or_else(|| {
        env.get("MOLTGUARD_HOME")
            .map(|h| Path::new(h).join("moltgate.toml"))
    })
}

/// State dir: `MOLTGATE_STATE_DIR`, else `$MOLTGUARD_HOME/state`, else `./.moltguard/state`.
pub fn default_state_dir(env: &Env) -> PathBuf {
    if let Some(d) = env.get("MOLTGATE_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(h) = env.get("MOLTGUARD_HOME") {
        return Path::new(h).join("state");
    }
    PathBuf::from(".moltguard/state")
}

impl GatewayConfig {
    /// Load from an optional file plus the environment snapshot.
    pub fn load(path: Option<&Path>, env: &Env) -> Result<Self, ConfigError> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                let mut cfg = Self::from_toml_str(&text, env, &p.display().to_string())?;
                cfg.source = Some(p.to_path_buf());
                Ok(cfg)
            }
            None => Self::from_toml_str("", env, "<defaults>"),
        }
    }

    /// Parse TOML text (may be empty) and overlay the environment.
    pub fn from_toml_str(text: &str, env: &Env, origin: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;

        let env_nonempty = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();

        let listen_raw = env_nonempty("MOLTGATE_LISTEN")
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "listen address {listen_raw:?} is not IP:PORT (e.g. 127.0.0.1:8787)"
            ))
        })?;

        let state_dir =
            if env.contains_key("MOLTGATE_STATE_DIR") || env.contains_key("MOLTGUARD_HOME") {
                default_state_dir(env)
            } else {
                file.state_dir.unwrap_or_else(|| default_state_dir(env))
            };

        let mut providers = Vec::new();
        for (name, fp) in &file.providers {
            providers.push(build_provider(name, fp, env)?);
        }

        let streaming = match env_nonempty("LLM_STREAMING") {
            Some(v) => parse_bool("LLM_STREAMING", &v)?,
            None => file.streaming.unwrap_or(false),
        };
        let stream_upstream = match env_nonempty("LLM_STREAM_UPSTREAM") {
            Some(v) => parse_bool("LLM_STREAM_UPSTREAM", &v)?,
            None => file.stream_upstream.unwrap_or(true),
        };
        let request_timeout_ms = match env_nonempty("LLM_REQUEST_TIMEOUT_MS") {
            Some(v) => parse_u64("LLM_REQUEST_TIMEOUT_MS", &v)?,
            None => file
                .request_timeout_ms
                .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS),
        };
        if request_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "LLM_REQUEST_TIMEOUT_MS / request_timeout_ms must be > 0".into(),
            ));
        }
        let max_stream_ms = match env_nonempty("LLM_MAX_STREAM_MS") {
            Some(v) => parse_u64("LLM_MAX_STREAM_MS", &v)?,
            None => file.max_stream_ms.unwrap_or(DEFAULT_MAX_STREAM_MS),
        };
        if max_stream_ms == 0 {
            return Err(ConfigError::Invalid(
                "LLM_MAX_STREAM_MS / max_stream_ms must be > 0".into(),
            ));
        }
        let attempt_share_pct = match env_nonempty("LLM_ATTEMPT_SHARE_PCT") {
            Some(v) => parse_u64("LLM_ATTEMPT_SHARE_PCT", &v)?,
            None => file
                .attempt_share_pct
                .map_or(DEFAULT_ATTEMPT_SHARE_PCT, u64::from),
        };
        if !(1..=100).contains(&attempt_share_pct) {
            return Err(ConfigError::Invalid(format!(
                "LLM_ATTEMPT_SHARE_PCT / attempt_share_pct must be from 1 to 100 (percent of the time left), not {attempt_share_pct}"
            )));
        }
        let max_retries = match env_nonempty("LLM_MAX_RETRIES") {
            Some(v) => parse_u64("LLM_MAX_RETRIES", &v)? as u32,
            None => file.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
        };

        // Presets signalled by the environment join implicitly, unless the
        // file already defines a provider of that name.
        let signals: [(&str, ProviderKind, &[&str]); 4] = [
            ("groq", ProviderKind::Groq, &["GROQ_API_KEY"]),
            (
                "openrouter",
                ProviderKind::OpenRouter,
                &["OPENROUTER_API_KEY"],
            ),
            ("openai", ProviderKind::OpenAi, &["OPENAI_API_KEY"]),
            (
                "ollama",
                ProviderKind::Ollama,
                &["OLLAMA_BASE_URL", "OLLAMA_MODEL"],
            ),
        ];
        let default_provider_env = env_nonempty("DEFAULT_LLM_PROVIDER");
        let secrets_dir = state_dir.join("secrets");
        let creds_dir = env.get("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        for (name, kind, vars) in signals {
            if providers.iter().any(|p: &ProviderConfig| p.name == name) {
                continue;
            }
            let key_ref = kind.default_key_ref();
            let signalled = vars.iter().any(|v| env_nonempty(v).is_some())
                || key_ref.is_some_and(|k| {
                    secrets_dir.join(k).exists()
                        || creds_dir.as_ref().is_some_and(|d| d.join(k).exists())
                })
                || default_provider_env.as_deref() == Some(name)
                || (file.providers.is_empty() && file.default_provider.as_deref() == Some(name));
            if signalled {
                providers.push(build_provider(name, &FileProvider::default(), env)?);
            }
        }

        let default_provider = default_provider_env
            .or(file.default_provider)
            .or_else(|| providers.first().map(|p| p.name.clone()))
            .unwrap_or_else(|| "groq".to_string());
        if providers.is_empty() && default_provider == "groq" {
            // Nothing configured at all: the documented default is Groq.
            providers.push(build_provider("groq", &FileProvider::default(), env)?);
        }

        let default_model = env_nonempty("DEFAULT_MODEL")
            .or(file.default_model)
            .unwrap_or_else(|| DEFAULT_MODEL.to_string());

        let circuit = {
            let fb = file.circuit.unwrap_or_default();
            let d = CircuitConfig::default();
            CircuitConfig {
                failure_threshold: fb.failure_threshold.unwrap_or(d.failure_threshold).max(1),
                cooldown: fb
                    .cooldown_ms
                    .map(Duration::from_millis)
                    .unwrap_or(d.cooldown),
            }
        };

        let security =
            crate::inbound::SecurityConfig::load(file.security.unwrap_or_default(), env)?;

        Ok(Self {
            listen,
            state_dir,
            default_provider,
            default_model,
            streaming,
            stream_upstream,
            request_timeout: Duration::from_millis(request_timeout_ms),
            max_stream: Duration::from_millis(max_stream_ms),
            attempt_share_pct: attempt_share_pct as u32,
            max_retries,
            max_retry_after: Duration::from_millis(file.max_retry_after_ms.unwrap_or(2_000)),
            providers,
            aliases: file.aliases,
            fallbacks: file.fallbacks.unwrap_or_default(),
            circuit,
            security,
            source: None,
        })
    }
}

fn build_provider(name: &str, fp: &FileProvider, env: &Env) -> Result<ProviderConfig, ConfigError> {
    if name.is_empty() || name.contains('/') {
        return Err(ConfigError::Invalid(format!(
            "provider name {name:?} must be non-empty and contain no '/'"
        )));
    }
    let kind = match &fp.preset {
        Some(p) => ProviderKind::parse(p).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "provider {name}: unknown preset {p:?} (use groq, openrouter, ollama, openai or openai-compatible)"
            ))
        })?,
        None => ProviderKind::parse(name).unwrap_or(ProviderKind::Compatible),
    };
    let base_url = match (&fp.base_url, kind) {
        (Some(u), ProviderKind::Ollama) => ollama_base_url(u),
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, k) => k.default_base_url(env).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "provider {name}: base_url is required for an OpenAI-compatible provider"
            ))
        })?,
    };
    let d = Timeouts::default();
    let ms = |v: Option<u64>, dflt: Duration| v.map(Duration::from_millis).unwrap_or(dflt);
    let timeouts = Timeouts {
        connect: ms(fp.connect_timeout_ms, d.connect),
        ttfb: ms(fp.ttfb_timeout_ms, d.ttfb),
        idle: ms(fp.idle_timeout_ms, d.idle),
        total: ms(fp.total_timeout_ms, d.total),
    };
    for (what, t) in [
        ("connect_timeout_ms", timeouts.connect),
        ("ttfb_timeout_ms", timeouts.ttfb),
        ("idle_timeout_ms", timeouts.idle),
        ("total_timeout_ms", timeouts.total),
    ] {
        if t.is_zero() {
            return Err(ConfigError::Invalid(format!(
                "provider {name}: {what} must be > 0"
            )));
        }
    }
    Ok(ProviderConfig {
        name: name.to_string(),
        kind,
        key_ref: fp
            .key
            .clone()
            .or_else(|| kind.default_key_ref().map(String::from)),
        default_model: fp.model.clone().or_else(|| kind.default_model(env)),
        timeouts,
        local: fp
            .local
            .unwrap_or_else(|| implicitly_local(kind, &base_url)),
        base_url,
    })
}

/// Ollama is local by nature; an OpenAI-compatible provider whose URL is
/// a private IP literal says so itself. Everything else (including host
/// names such as `localhost`) is remote unless marked `local = true`.
fn implicitly_local(kind: ProviderKind, base_url: &str) -> bool {
    match kind {
        ProviderKind::Ollama => true,
        ProviderKind::Compatible => reqwest::Url::parse(base_url)
            .ok()
            .and_then(|u| {
                let h = u.host_str()?;
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .ok()
            })
            .is_some_and(crate::outbound::ssrf::is_internal),
        _ => false,
    }
}

/// A boolean setting, in the one vocabulary of [`moltguard_envvar`].
pub(crate) fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    moltguard_envvar::parse_bool(var, v).map_err(ConfigError::Invalid)
}

pub(crate) fn parse_u64(var: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("{var}={v:?} is not a non-negative integer")))
}

/// An environment snapshot from pairs (tests).
#[cfg(test)]
pub(crate) fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_documented_values() {
        let c = GatewayConfig::from_toml_str("", &env(&[]), "t").unwrap();
        assert_eq!(c.default_model, "llama-3.1-8b-instant");
        assert_eq!(c.default_provider, "groq");
        assert!(!c.streaming);
        assert!(c.stream_upstream);
        assert_eq!(c.request_timeout, Duration::from_millis(15_000));
        assert_eq!(c.max_retries, 1);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.providers[0].key_ref.as_deref(), Some("GROQ_API_KEY"));
    }

    #[test]
    fn the_attempt_share_is_a_percent_of_the_time_left() {
        let c = GatewayConfig::from_toml_str("", &env(&[]), "t").unwrap();
        assert_eq!(c.attempt_share_pct, 50);
        let c = GatewayConfig::from_toml_str("attempt_share_pct = 100", &env(&[]), "t").unwrap();
        assert_eq!(c.attempt_share_pct, 100);
        let c = GatewayConfig::from_toml_str("", &env(&[("LLM_ATTEMPT_SHARE_PCT", "70")]), "t");
        assert_eq!(c.unwrap().attempt_share_pct, 70);
        for bad in ["0", "101", "half"] {
            let e = GatewayConfig::from_toml_str("", &env(&[("LLM_ATTEMPT_SHARE_PCT", bad)]), "t")
                .unwrap_err()
                .to_string();
            assert!(e.contains("LLM_ATTEMPT_SHARE_PCT"), "{bad}: {e}");
        }
    }

    #[test]
    fn circuit_is_read_under_its_old_name_too_but_not_both() {
        let parse = |t: &str| GatewayConfig::from_toml_str(t, &env(&[]), "t");
        let c = parse("[circuit]\nfailure_threshold = 7\n").unwrap();
        assert_eq!(c.circuit.failure_threshold, 7);
        let c = parse("[breaker]\ncooldown_ms = 1500\n").unwrap();
        assert_eq!(c.circuit.cooldown, Duration::from_millis(1500));
        let e = parse("[circuit]\nfailure_threshold = 1\n[breaker]\nfailure_threshold = 2\n");
        assert!(e.unwrap_err().to_string().contains("circuit"));
    }

    #[test]
    fn env_overrides_file_and_adds_presets() {
        let c = GatewayConfig::from_toml_str(
            "streaming = false\nstream_upstream = true\nmax_retries = 3\n",
            &env(&[
                ("LLM_STREAMING", "true"),
                ("LLM_STREAM_UPSTREAM", "false"),
                ("LLM_MAX_RETRIES", "0"),
                ("OLLAMA_BASE_URL", "http://10.0.0.2:11434/"),
                ("OLLAMA_MODEL", "qwen2.5"),
            ]),
            "t",
        )
        .unwrap();
        assert!(c.streaming);
        assert!(!c.stream_upstream);
        assert_eq!(c.max_retries, 0);
        let o = c.provider("ollama").unwrap();
        assert_eq!(o.base_url, "http://10.0.0.2:11434/v1");
        assert_eq!(o.default_model.as_deref(), Some("qwen2.5"));
        assert_eq!(c.default_provider, "ollama");
    }

    #[test]
    fn unknown_keys_are_rejected_precisely() {
        let e =
            GatewayConfig::from_toml_str("[providers.x]\nbase_ur = \"h\"\n", &env(&[]), "f.toml")
                .unwrap_err()
                .to_string();
        assert!(e.contains("base_ur"), "{e}");
        let e = GatewayConfig::from_toml_str("", &env(&[("LLM_STREAMING", "maybe")]), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("LLM_STREAMING"), "{e}");
    }
}
