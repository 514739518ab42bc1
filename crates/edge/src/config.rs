//! Settings (`moltguard.toml`) and where every file lives.
//!
//! Precedence, highest first: command-line flag, environment variable,
//! config file, platform default. `--home DIR` / `MOLTGUARD_HOME` puts
//! everything (config, state, logs, the nginx prefix) under one directory.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings as read from `moltguard.toml`. Every field has a safe default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[paths]`: where the files live.
    pub paths: PathSettings,
    /// `[edge]`: the ports nginx serves and what it fronts.
    pub edge: EdgeSettings,
    /// `[nginx]`: which nginx, and how it is run.
    pub nginx: NginxSettings,
    /// `[guardian]`: what the guardian watches and how it reacts.
    pub guardian: GuardianSettings,
}

/// The guardian daemon's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardianSettings {
    /// How often to scan when nothing changes on disk (5s–60s).
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// The agent's own control port (Moltbot/OpenClaw default 18789).
    pub agent_port: u16,
    /// More ports that must only listen on loopback.
    pub protected_ports: Vec<u16>,
    /// Connect to every protected port on every non-loopback address of this machine.
    pub self_probe: bool,
    /// Home directories whose agent config (~/.moltbot, ~/.openclaw) is checked.
    pub agent_homes: Vec<PathBuf>,
    /// Directories nginx serves files from; scanned for secrets.
    pub web_roots: Vec<PathBuf>,
    /// Log files scanned for leaked secrets.
    pub log_files: Vec<PathBuf>,
    /// Block a protected port that listens beyond loopback with the host
    /// firewall (nftables / pf), in rules of moltguard's own, until the bind
    /// is fixed and the breaker closed again. Needs the guardian to run as root.
    pub contain: bool,
    /// Also stop the agent when its control port listens beyond loopback
    /// (off by default: the breaker and containment keep others out).
    pub stop_agent: bool,
    /// What stops it, run as the owner of the first agent home.
    pub stop_agent_command: Vec<String>,
}

impl Default for GuardianSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            agent_port: 18789,
            protected_ports: Vec::new(),
            self_probe: true,
            agent_homes: Vec::new(),
            web_roots: Vec::new(),
            log_files: Vec::new(),
            contain: true,
            stop_agent: false,
            stop_agent_command: vec!["openclaw".into(), "gateway".into(), "stop".into()],
        }
    }
}

/// `[paths]`: each unset one takes the layout's default (see [`Layout`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathSettings {
    /// The breaker's state, its audit log and moltgate's database.
    pub state_dir: Option<PathBuf>,
    /// Where logs go.
    pub log_dir: Option<PathBuf>,
    /// The htpasswd file the edge checks passwords against.
    pub htpasswd: Option<PathBuf>,
    /// The generated nginx files (see [`Layout::nginx_dir`]).
    pub nginx_dir: Option<PathBuf>,
}

/// `[edge]`: the ports nginx serves and what it fronts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSettings {
    /// The address the edge listens on (loopback unless people are to reach it).
    pub listen_address: IpAddr,
    /// What people open: moltgate, or the agent's panel when `panel` is set.
    pub port: u16,
    /// moltgate's loopback port.
    pub upstream_port: u16,
    /// The agent panel the edge port serves (`guardian.agent_port`), if any.
    pub panel: Panel,
    /// Where the edge serves moltgate when the edge port serves the panel.
    pub gateway_port: u16,
    /// Open connections one client address may hold at the edge (nginx
    /// `limit_conn`; 0: no cap). Behind another proxy every client shares
    /// its address: raise it, or set 0.
    pub max_connections_per_ip: u32,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            listen_address: IpAddr::from([127, 0, 0, 1]),
            port: 8443,
            upstream_port: 8787,
            panel: Panel::None,
            gateway_port: 8444,
            max_connections_per_ip: 128,
        }
    }
}

/// An agent's control panel the edge can serve behind the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Panel {
    /// No panel: the edge port serves moltgate.
    None,
    /// OpenClaw's gateway and Control UI (HTTP and WebSocket, one port).
    Openclaw,
}

impl EdgeSettings {
    /// The edge's servers: the port each listens on, the loopback port it
    /// proxies to, and what that is.
    pub fn servers(&self, agent_port: u16) -> Vec<(u16, u16, Upstream)> {
        match self.panel {
            Panel::None => vec![(self.port, self.upstream_port, Upstream::Gateway)],
            Panel::Openclaw => vec![
                (self.port, agent_port, Upstream::Panel),
                (self.gateway_port, self.upstream_port, Upstream::Gateway),
            ],
        }
    }
}

/// What an edge server fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// moltgate.
    Gateway,
    /// The agent's panel.
    Panel,
}

/// `[nginx]`: which nginx, and how it is run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NginxSettings {
    /// The nginx binary; found on the trusted PATH when unset.
    pub binary: Option<PathBuf>,
    /// Run a private nginx of moltguard's own (on a prefix under `nginx_dir`)
    /// rather than drive the system's; unset: managed exactly under `--home`.
    pub managed: Option<bool>,
    /// A system nginx's main config, when it is not at the usual place.
    pub conf: Option<PathBuf>,
    /// The user a managed nginx's workers run as.
    pub user: String,
    /// How long a transition waits to see the new generation served.
    #[serde(with = "humantime_serde_compat")]
    pub verify_timeout: Duration,
    /// How long a reload lets old workers finish requests (a stream into OPEN ends within it).
    #[serde(with = "humantime_serde_compat")]
    pub worker_shutdown_timeout: Duration,
}

impl Default for NginxSettings {
    fn default() -> Self {
        Self {
            binary: None,
            managed: None,
            conf: None,
            user: "nobody".into(),
            verify_timeout: Duration::from_secs(5),
            worker_shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// Durations in the config file are written the way people say them: "5s", "2m".
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// Overrides from flags and environment variables (clap merges those two).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--home`, `MOLTGUARD_HOME`: everything under one directory.
    pub home: Option<PathBuf>,
    /// `--config`, `MOLTGUARD_CONFIG`: the config file.
    pub config: Option<PathBuf>,
    /// `--state-dir`, `MOLTGUARD_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
    /// `--nginx`, `MOLTGUARD_NGINX`: the nginx binary.
    pub nginx_binary: Option<PathBuf>,
}

/// Where every file lives, after precedence is applied.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The home directory, when one was given.
    pub home: Option<PathBuf>,
    /// `moltguard.toml`.
    pub config_file: PathBuf,
    /// The breaker's state, its audit log, the guardian's status, moltgate's database.
    pub state_dir: PathBuf,
    /// Logs.
    pub log_dir: PathBuf,
    /// The htpasswd file.
    pub htpasswd: PathBuf,
    /// Generated nginx files: the site, the breaker include, and for a
    /// managed nginx its main config and runtime prefix.
    pub nginx_dir: PathBuf,
}

impl Layout {
    /// The state file, the audit log and the allow token.
    pub fn state_files(&self) -> crate::breaker::store::StateFiles {
        crate::breaker::store::StateFiles::in_dir(&self.state_dir)
    }
    /// The breaker's state file, `breaker.json`.
    pub fn state_file(&self) -> PathBuf {
        self.state_files().state
    }
    /// The hash-chained audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.state_files().audit_log
    }
    /// The lock every transition holds.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("breaker.lock")
    }
    /// The per-request fail-safe: nginx denies every request while it is absent.
    pub fn allow_token(&self) -> PathBuf {
        self.state_files().allow_token
    }
    /// The breaker include nginx loads.
    pub fn include_file(&self) -> PathBuf {
        self.nginx_dir.join("breaker.conf")
    }
    /// The edge's site config.
    pub fn site_file(&self) -> PathBuf {
        self.nginx_dir.join("moltguard-site.conf")
    }
    /// The main config of a managed (private-prefix) nginx.
    pub fn managed_main_conf(&self) -> PathBuf {
        self.nginx_dir.join("nginx.conf")
    }
    /// The managed nginx's `-p` prefix: pid, logs and temp paths live here.
    pub fn managed_prefix(&self) -> PathBuf {
        self.nginx_dir.join("runtime")
    }
    /// The managed nginx's pid file.
    pub fn managed_pid_file(&self) -> PathBuf {
        self.managed_prefix().join("nginx.pid")
    }
}

/// Settings plus layout: everything a command needs to find its files.
#[derive(Debug, Clone)]
pub struct Config {
    /// What `moltguard.toml` says.
    pub settings: Settings,
    /// Where each file lives.
    pub layout: Layout,
    /// Whether `layout.config_file` existed when loaded.
    pub config_file_found: bool,
}

impl Config {
    /// A managed nginx runs on a private prefix that moltguard starts and
    /// stops; otherwise moltguard drives the system's nginx.
    pub fn nginx_managed(&self) -> bool {
        self.settings
            .nginx
            .managed
            .unwrap_or(self.layout.home.is_some())
    }
}

/// Why `moltguard.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// It is not valid TOML, or has an unknown key.
    #[error("the config file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// It parses, but a value is out of range or unsafe.
    #[error("the config file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Loads settings and resolves the layout.
pub fn load(ov: &Overrides) -> Result<Config, ConfigError> {
    let defaults = PlatformDefaults::detect();
    let home = ov.home.as_ref().map(|h| absolutize(h));
    let config_file = match (&ov.config, &home) {
        (Some(c), _) => absolutize(c),
        (None, Some(h)) => h.join("moltguard.toml"),
        (None, None) => defaults.config_dir.join("moltguard.toml"),
    };
    let (settings, found) = match std::fs::read_to_string(&config_file) {
        Ok(text) => (parse(&config_file, &text)?, true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Settings::default(), false),
        Err(source) => {
            return Err(ConfigError::Read {
                path: config_file,
                source,
            })
        }
    };
    let base = |home_sub: &str, default: &Path| -> PathBuf {
        match &home {
            Some(h) => h.join(home_sub),
            None => default.to_path_buf(),
        }
    };
    let config_dir = config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| defaults.config_dir.clone());
    let p = &settings.paths;
    let layout = Layout {
        state_dir: ov
            .state_dir
            .clone()
            .or_else(|| p.state_dir.clone())
            .unwrap_or_else(|| base("state", &defaults.state_dir)),
        log_dir: p
            .log_dir
            .clone()
            .unwrap_or_else(|| base("log", &defaults.log_dir)),
        htpasswd: p
            .htpasswd
            .clone()
            .unwrap_or_else(|| config_dir.join("htpasswd")),
        nginx_dir: p
            .nginx_dir
            .clone()
            .unwrap_or_else(|| config_dir.join("nginx")),
        home,
        config_file,
    };
    let mut settings = settings;
    if let Some(bin) = &ov.nginx_binary {
        settings.nginx.binary = Some(bin.clone());
    }
    Ok(Config {
        settings,
        layout,
        config_file_found: found,
    })
}

/// Parses and validates a config file's text.
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    let s: Settings = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut ports = vec![
        ("edge.port", s.edge.port),
        ("edge.upstream_port", s.edge.upstream_port),
    ];
    if s.edge.panel != Panel::None {
        ports.push(("edge.gateway_port", s.edge.gateway_port));
    }
    // moltgate must never try to take the agent's own port.
    ports.push(("guardian.agent_port", s.guardian.agent_port));
    for (i, (a, pa)) in ports.iter().enumerate() {
        if *pa == 0 {
            return Err(invalid(format!("{a} must be 1–65535")));
        }
        if let Some((b, _)) = ports[..i].iter().find(|(_, pb)| pb == pa) {
            return Err(invalid(format!(
                "{b} and {a} are both {pa}; each needs a port of its own (nginx would proxy to itself, \
                 or moltgate would try to bind the agent's port)"
            )));
        }
    }
    for (name, p) in [
        ("paths.state_dir", &s.paths.state_dir),
        ("paths.log_dir", &s.paths.log_dir),
        ("paths.htpasswd", &s.paths.htpasswd),
        ("paths.nginx_dir", &s.paths.nginx_dir),
        ("nginx.conf", &s.nginx.conf),
    ] {
        if let Some(p) = p {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "{name} must be an absolute path, got {}",
                    p.display()
                )));
            }
        }
    }
    if s.nginx.verify_timeout.is_zero() || s.nginx.verify_timeout > Duration::from_secs(60) {
        return Err(invalid(
            "nginx.verify_timeout must be between 1ms and 60s".into(),
        ));
    }
    let g = &s.guardian;
    if g.interval < Duration::from_secs(5) || g.interval > Duration::from_secs(60) {
        return Err(invalid(format!(
            "guardian.interval must be between 5s and 60s, got {}",
            humantime::format_duration(g.interval)
        )));
    }
    if g.stop_agent
        && g.stop_agent_command
            .first()
            .is_none_or(|p| p.trim().is_empty())
    {
        return Err(invalid(
            "guardian.stop_agent is on but guardian.stop_agent_command is empty".into(),
        ));
    }
    for p in g.agent_homes.iter().chain(&g.web_roots).chain(&g.log_files) {
        if !p.is_absolute() {
            return Err(invalid(format!(
                "guardian paths must be absolute, got {}",
                p.display()
            )));
        }
    }
    if s.nginx.user.is_empty() {
        return Err(invalid("nginx.user must name a user".into()));
    }
    Ok(s)
}

/// The platform's conventional locations.
#[derive(Debug, Clone)]
pub struct PlatformDefaults {
    /// `/etc/moltguard` (Linux), Homebrew's `etc/moltguard` (macOS).
    pub config_dir: PathBuf,
    /// Where the state lives by default.
    pub state_dir: PathBuf,
    /// Where logs go by default.
    pub log_dir: PathBuf,
}

impl PlatformDefaults {
    /// This platform's locations.
    #[cfg(target_os = "macos")]
    pub fn detect() -> Self {
        // Homebrew's prefix: /opt/homebrew on Apple silicon, /usr/local on Intel.
        let prefix = if Path::new("/opt/homebrew").is_dir() {
            PathBuf::from("/opt/homebrew")
        } else {
            PathBuf::from("/usr/local")
        };
        Self {
            config_dir: prefix.join("etc/moltguard"),
            state_dir: prefix.join("var/lib/moltguard"),
            log_dir: prefix.join("var/log/moltguard"),
        }
    }

    /// This platform's locations.
    #[cfg(not(target_os = "macos"))]
    pub fn detect() -> Self {
        Self {
            config_dir: PathBuf::from("/etc/moltguard"),
            state_dir: PathBuf::from("/var/lib/moltguard"),
            log_dir: PathBuf::from("/var/log/moltguard"),
        }
    }
}

/// `p` made absolute against the current directory (not resolved: no symbolic link is followed).
pub fn absolutize(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The documented config `moltguard init` writes, with every value of
/// `settings` (the defaults for a new setup; the file's own values for
/// `init --force`, so a rewrite keeps what a person set). Without an nginx
/// binary (none installed yet) the `binary` line is left commented out, so
/// an nginx installed later is found in the usual places.
pub fn starter_toml(settings: &Settings, managed: bool, nginx_binary: Option<&Path>) -> String {
    // TOML basic strings use JSON-compatible escapes.
    let q = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let list = |ps: &[PathBuf]| ps.iter().map(|p| q(p)).collect::<Vec<_>>().join(", ");
    let optional = |key: &str, p: &Option<PathBuf>, example: &str| match p {
        Some(p) => format!("{key} = {}", q(p)),
        None => format!("# {key} = \"{example}\""),
    };
    let dur = |d: Duration| humantime::format_duration(d).to_string();
    let binary_line = match nginx_binary {
        Some(b) => format!("binary = {}", q(b)),
        None => format!(
            "# No nginx was found when this file was written; until this is set, moltguard\n\
             # looks in {} each time.\n# binary = \"{}\"",
            crate::exec::NGINX_CANDIDATES.join(", "),
            crate::exec::NGINX_CANDIDATES[0]
        ),
    };
    let (p, e, n, g) = (
        &settings.paths,
        &settings.edge,
        &settings.nginx,
        &settings.guardian,
    );
    let panel = match e.panel {
        Panel::None => "none",
        Panel::Openclaw => "openclaw",
    };
    let ports = |v: &[u16]| v.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    format!(
        r#"# moltguard configuration. Every setting is optional; shown values are the defaults
# unless `moltguard init` chose them for you. Precedence: flag > environment > this file.

[paths]
# Breaker state (breaker.json), the audit log, and the nginx allow token.
# Default: /var/lib/moltguard (Linux), $(brew --prefix)/var/lib/moltguard (macOS),
# or DIR/state with --home DIR. Flag: --state-dir, env: MOLTGUARD_STATE_DIR.
{state_dir}
# Logs of the guardian and of a managed nginx.
{log_dir}
# Users allowed through the edge (APR1-MD5 hashes; see `moltguard auth`).
{htpasswd}
# Generated nginx files: the site, the breaker include, a managed nginx's prefix.
{nginx_dir}

[edge]
# The address nginx listens on. Keep it on loopback: anything else exposes the panel.
listen_address = "{listen}"
# The port nginx listens on, what you open (flag: --edge-port).
port = {port}
# moltgate's loopback port (flag: --upstream-port).
upstream_port = {upstream}
# The agent panel the edge port serves: "none" (it serves moltgate), or "openclaw":
# OpenClaw's gateway and Control UI (guardian.agent_port) on the edge port, and
# moltgate on gateway_port (flag: init --agent openclaw).
panel = "{panel}"
# Where the edge serves moltgate when the edge port serves the panel.
gateway_port = {gateway_port}
# Open connections one client address may hold at the edge (0: no cap); beyond it, 429.
# Behind another reverse proxy every client shares its address: raise it or set 0.
max_connections_per_ip = {max_conn_per_ip}

[nginx]
# Absolute path of the nginx binary. When moltguard runs as root it only runs
# root-owned binaries by absolute path, never one found through PATH.
# Flag: --nginx-bin, env: MOLTGUARD_NGINX.
{binary_line}
# true: moltguard runs its own nginx on a private prefix (nginx_dir/runtime).
# false: moltguard drives the system nginx (add the printed include line to nginx.conf).
managed = {managed}
# The main nginx.conf to test and reload when not managed (default: nginx's own default).
{conf}
# The user nginx's workers read files as, when moltguard runs as root. A managed
# nginx runs entirely as this user; generated files are made readable by its group.
user = {user}
# How long to wait for nginx to serve a new breaker generation after a reload.
verify_timeout = "{verify}"
# How long a reload lets old workers finish long-lived streams before cutting them.
worker_shutdown_timeout = "{wst}"

[guardian]
# Scan this often (5s–60s); changes to watched files trigger a scan at once.
interval = "{interval}"
# The agent's own control port (Moltbot/OpenClaw default 18789). It must listen on
# loopback only; with edge.panel set, the edge serves it.
agent_port = {agent_port}
# More ports that must never listen beyond loopback.
protected_ports = [{protected}]
# Also connect to each protected port on every non-loopback address of this machine.
self_probe = {self_probe}
# Home directories whose ~/.moltbot/moltbot.json and ~/.openclaw/openclaw.json are checked.
agent_homes = [{agent_homes}]
# Directories nginx serves files from: a secret there is one request away from leaking.
web_roots = [{web_roots}]
# Log files to scan for leaked keys.
log_files = [{log_files}]
# When a protected port listens beyond loopback, also block it from other machines with
# the host firewall (nftables table inet moltguard / pf anchor com.apple/moltguard), until
# the bind is fixed and the breaker closed again. Needs the guardian to run as root.
contain = {contain}
# Also stop the agent when its control port listens beyond loopback (off by default:
# the breaker and the containment already keep other machines out). Runs the command
# once per exposure, as the owner of the first agent home.
stop_agent = {stop_agent}
stop_agent_command = {stop_agent_command}
"#,
        state_dir = optional("state_dir", &p.state_dir, "/var/lib/moltguard"),
        log_dir = optional("log_dir", &p.log_dir, "/var/log/moltguard"),
        htpasswd = optional("htpasswd", &p.htpasswd, "/etc/moltguard/htpasswd"),
        nginx_dir = optional("nginx_dir", &p.nginx_dir, "/etc/moltguard/nginx"),
        listen = e.listen_address,
        port = e.port,
        upstream = e.upstream_port,
        gateway_port = e.gateway_port,
        max_conn_per_ip = e.max_connections_per_ip,
        conf = optional("conf", &n.conf, "/etc/nginx/nginx.conf"),
        user = serde_json::to_string(&n.user).unwrap_or_default(),
        verify = dur(n.verify_timeout),
        wst = dur(n.worker_shutdown_timeout),
        interval = dur(g.interval),
        agent_port = g.agent_port,
        protected = ports(&g.protected_ports),
        self_probe = g.self_probe,
        agent_homes = list(&g.agent_homes),
        web_roots = list(&g.web_roots),
        log_files = list(&g.log_files),
        contain = g.contain,
        stop_agent = g.stop_agent,
        stop_agent_command = serde_json::to_string(&g.stop_agent_command).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_config_parses_back() {
        let mut want = Settings::default();
        want.edge.port = 9000;
        want.edge.upstream_port = 9001;
        want.guardian.agent_homes = vec![PathBuf::from("/home/jane")];
        let text = starter_toml(&want, true, Some(Path::new("/usr/sbin/nginx")));
        let s = parse(Path::new("/x/moltguard.toml"), &text).unwrap();
        assert_eq!(
            s.nginx.binary.as_deref(),
            Some(Path::new("/usr/sbin/nginx"))
        );
        assert_eq!(s.edge.port, 9000);
        assert_eq!(s.edge.upstream_port, 9001);
        assert_eq!(s.nginx.managed, Some(true));
        assert_eq!(s.nginx.verify_timeout, Duration::from_secs(5));
        assert_eq!(s.guardian.agent_homes, vec![PathBuf::from("/home/jane")]);
        assert_eq!(s.guardian.interval, Duration::from_secs(30));
    }

    /// `init --force` rewrites the file from its own values: nothing a
    /// person set is lost.
    #[test]
    fn every_setting_survives_a_rewrite() {
        let mut want = Settings::default();
        want.paths.state_dir = Some("/srv/m/state".into());
        want.edge.panel = Panel::Openclaw;
        want.edge.gateway_port = 9444;
        want.nginx.conf = Some("/etc/nginx/other.conf".into());
        want.nginx.managed = Some(false);
        want.nginx.user = "www-data".into();
        want.nginx.verify_timeout = Duration::from_secs(9);
        want.guardian.interval = Duration::from_secs(12);
        want.guardian.agent_port = 19001;
        want.guardian.protected_ports = vec![3000, 5173];
        want.guardian.self_probe = false;
        want.guardian.agent_homes = vec!["/home/a b".into()];
        want.guardian.web_roots = vec!["/var/www".into()];
        want.guardian.log_files = vec!["/tmp/openclaw/x.log".into()];
        want.guardian.contain = false;
        let text = starter_toml(&want, false, None);
        let got = parse(Path::new("/x/moltguard.toml"), &text).unwrap();
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&want).unwrap(),
            "{text}"
        );
    }

    #[test]
    fn starter_config_without_nginx_leaves_the_binary_to_be_found() {
        let text = starter_toml(&Settings::default(), true, None);
        let s = parse(Path::new("/x/moltguard.toml"), &text).unwrap();
        assert_eq!(s.nginx.binary, None);
        assert!(text.contains("# binary = \"/usr/sbin/nginx\""), "{text}");
    }

    #[test]
    fn malformed_config_names_the_problem() {
        let e = parse(Path::new("/x/m.toml"), "[edge]\nport = \"eighty\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("/x/m.toml") && msg.contains("port"), "{msg}");
        let e = parse(Path::new("/x/m.toml"), "[edge]\nprot = 80\n").unwrap_err();
        assert!(e.to_string().contains("prot"), "{e}");
        let e = parse(
            Path::new("/x/m.toml"),
            "[edge]\nport = 80\nupstream_port = 80\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("proxy to itself"), "{e}");
        let e = parse(Path::new("/x/m.toml"), "[guardian]\ninterval = \"1s\"\n").unwrap_err();
        assert!(e.to_string().contains("5s and 60s"), "{e}");
        let e = parse(Path::new("/x/m.toml"), "[paths]\nstate_dir = \"rel\"\n").unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
    }

    #[test]
    fn home_puts_everything_under_one_dir() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(&Overrides {
            home: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap();
        for p in [
            &c.layout.config_file,
            &c.layout.state_dir,
            &c.layout.log_dir,
            &c.layout.htpasswd,
            &c.layout.nginx_dir,
        ] {
            assert!(p.starts_with(dir.path()), "{}", p.display());
        }
        assert!(c.nginx_managed());
    }
}
