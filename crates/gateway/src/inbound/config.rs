//! Security settings: the `[security]` TOML table overlaid by the
//! environment names of the design (`RATE_LIMIT_API_PER_MINUTE`, ...).
//! Every default is the safe one.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config::{parse_bool, parse_u64, ConfigError, Env};

/// The security settings, resolved (see docs/SECURITY.md for each).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Clients must present a key or a session (everything but `/health`,
    /// `/ready` and the login route). Off only for local experiments.
    pub auth_required: bool,
    /// `GATEWAY_PASSWORD_REQUIRED`: browsers log in with the gateway password.
    pub password_required: bool,
    /// Name of the secret holding the gateway password (`GATEWAY_PASSWORD`),
    /// resolved like provider keys (secret store first, environment last).
    pub password_ref: String,
    /// `GATEWAY_ALLOW_REMOTE`: the explicit flag needed to bind a
    /// non-loopback address (auth must be on as well).
    pub allow_remote: bool,

    /// `RATE_LIMIT_API_PER_MINUTE`: requests per client address.
    pub api_per_minute: u32,
    /// Default per key / session; a key may carry its own.
    pub key_per_minute: u32,
    /// `RATE_LIMIT_LOGIN_PER_HOUR`: login attempts per client address.
    pub login_per_hour: u32,
    /// `RATE_LIMIT_WS_PER_IP`: WebSocket connections per client address.
    pub ws_per_ip: u32,
    /// `GATEWAY_MAX_CONNECTIONS`: open connections in all.
    pub max_connections: usize,
    /// Open connections one address may hold (peers in `trusted_proxies`
    /// are exempt: behind nginx every client comes from it).
    pub max_connections_per_ip: usize,
    /// Until a request's head is complete, counted from when moltgate
    /// starts waiting for it (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Most client IPs tracked by the rate limiters at once.
    pub max_tracked_clients: usize,

    /// `MAX_FAILED_AUTH_ATTEMPTS`: failures within the window that ban the address.
    pub max_failed_auth: u32,
    /// `FAILED_AUTH_WINDOW_MS`: the window failures are counted in.
    pub failed_auth_window: Duration,
    /// `AUTO_BLOCK_DURATION_MS`: a first ban's length (it doubles with each repeat).
    pub block_duration: Duration,
    /// Longest an escalated ban lasts.
    pub max_block_duration: Duration,

    /// Peers whose `X-Forwarded-For` is believed (nginx on loopback).
    pub trusted_proxies: Vec<IpNet>,
    /// Never banned nor IP-rate-limited (the local admin).
    pub ignore: Vec<IpNet>,

    /// `MAX_MESSAGE_CHARS`: the longest chat message.
    pub max_message_chars: usize,
    /// `MAX_BODY_BYTES`: the largest request body admission reads.
    pub max_body_bytes: usize,

    /// Explicit CORS / WebSocket origins; empty means the defaults
    /// (localhost origins when bound to loopback, none otherwise).
    pub cors_origins: Vec<String>,

    /// `SECURITY_LOCKDOWN`: only this machine is served (then only admins).
    pub lockdown: bool,
    /// `SECURITY_EMERGENCY` or `KILL_SWITCH`: no LLM call leaves the gateway.
    pub emergency: bool,
    /// `SECURITY_FIREWALL`: the request firewall.
    pub firewall: bool,
    /// `SECURITY_STRICT_MODE`: the firewall at paranoia level 2 at least.
    pub strict: bool,
    /// The firewall's paranoia level, 1–4 (`SECURITY_PARANOIA_LEVEL`).
    pub paranoia: u8,

    /// `INCIDENT_RETENTION_DAYS`: how long incidents are kept.
    pub incident_retention: Duration,
    /// `MAX_INCIDENTS`: the most incidents kept.
    pub max_incidents: u64,
    /// `GATEWAY_SESSION_TTL_MS`: how long a browser session lasts.
    pub session_ttl: Duration,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            auth_required: true,
            password_required: true,
            password_ref: "GATEWAY_PASSWORD".into(),
            allow_remote: false,
            api_per_minute: 60,
            key_per_minute: 600,
            login_per_hour: 5,
            ws_per_ip: 3,
            max_connections: 1000,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(10),
            max_tracked_clients: 100_000,
            max_failed_auth: 5,
            failed_auth_window: Duration::from_secs(10 * 60),
            block_duration: Duration::from_millis(30 * 60 * 1000),
            max_block_duration: Duration::from_secs(7 * 24 * 3600),
            trusted_proxies: vec![
                "127.0.0.1/32".parse().expect("net"),
                "::1/128".parse().expect("net"),
            ],
            ignore: vec![
                "127.0.0.1/32".parse().expect("net"),
                "::1/128".parse().expect("net"),
            ],
            // About a million tokens, the largest context windows: far above
            // any agent's system prompt (OpenClaw's is ~49,000 characters).
            // MAX_BODY_BYTES is the real bound on a request.
            max_message_chars: 4_000_000,
            max_body_bytes: 16 << 20,
            cors_origins: Vec::new(),
            lockdown: false,
            emergency: false,
            firewall: true,
            strict: false,
            paranoia: moltguard_waf::score::DEFAULT_PARANOIA,
            incident_retention: Duration::from_secs(30 * 24 * 3600),
            max_incidents: 100_000,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// The `[security]` table of moltgate.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSecurity {
    auth_required: Option<bool>,
    password_required: Option<bool>,
    password_secret: Option<String>,
    allow_remote: Option<bool>,
    api_per_minute: Option<u32>,
    key_per_minute: Option<u32>,
    login_per_hour: Option<u32>,
    ws_per_ip: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    max_failed_auth: Option<u32>,
    failed_auth_window_ms: Option<u64>,
    block_duration_ms: Option<u64>,
    trusted_proxies: Option<Vec<String>>,
    ignore: Option<Vec<String>>,
    max_message_chars: Option<usize>,
    max_body_bytes: Option<usize>,
    cors_origins: Option<Vec<String>>,
    lockdown: Option<bool>,
    emergency: Option<bool>,
    firewall: Option<bool>,
    strict: Option<bool>,
    paranoia_level: Option<u64>,
    incident_retention_days: Option<u64>,
    max_incidents: Option<u64>,
    session_ttl_ms: Option<u64>,
}

impl SecurityConfig {
    /// Defaults < `[security]` table < environment.
    pub fn load(file: FileSecurity, env: &Env) -> Result<Self, ConfigError> {
        let d = Self::default();
        let get = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let boolean = |k: &str, f: Option<bool>, dflt: bool| -> Result<bool, ConfigError> {
            match get(k) {
                Some(v) => parse_bool(k, v),
                None => Ok(f.unwrap_or(dflt)),
            }
        };
        let number = |k: &str, f: Option<u64>, dflt: u64| -> Result<u64, ConfigError> {
            match get(k) {
                Some(v) => parse_u64(k, v),
                None => Ok(f.unwrap_or(dflt)),
            }
        };
        let nets = |k: &str, f: Option<Vec<String>>, dflt: Vec<IpNet>| {
            let list: Option<Vec<String>> = get(k)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .or(f);
            match list {
                None => Ok(dflt),
                Some(items) => items
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| parse_net(s).map_err(|e| ConfigError::Invalid(format!("{k}: {e}"))))
                    .collect(),
            }
        };
        // Either spelling of the kill switch turns it on.
        let emergency = boolean("SECURITY_EMERGENCY", file.emergency, d.emergency)?
            || boolean("KILL_SWITCH", None, false)?;
        let cfg = Self {
            auth_required: boolean("GATEWAY_AUTH_REQUIRED", file.auth_required, d.auth_required)?,
            password_required: boolean(
                "GATEWAY_PASSWORD_REQUIRED",
                file.password_required,
                d.password_required,
            )?,
            password_ref: file.password_secret.unwrap_or(d.password_ref),
            allow_remote: boolean("GATEWAY_ALLOW_REMOTE", file.allow_remote, d.allow_remote)?,
            api_per_minute: number(
                "RATE_LIMIT_API_PER_MINUTE",
                file.api_per_minute.map(u64::from),
                d.api_per_minute.into(),
            )? as u32,
            key_per_minute: number(
                "RATE_LIMIT_KEY_PER_MINUTE",
                file.key_per_minute.map(u64::from),
                d.key_per_minute.into(),
            )? as u32,
            login_per_hour: number(
                "RATE_LIMIT_LOGIN_PER_HOUR",
                file.login_per_hour.map(u64::from),
                d.login_per_hour.into(),
            )? as u32,
            ws_per_ip: number(
                "RATE_LIMIT_WS_PER_IP",
                file.ws_per_ip.map(u64::from),
                d.ws_per_ip.into(),
            )? as u32,
            max_connections: number(
                "GATEWAY_MAX_CONNECTIONS",
                file.max_connections.map(|v| v as u64),
                d.max_connections as u64,
            )? as usize,
            max_connections_per_ip: number(
                "GATEWAY_MAX_CONNECTIONS_PER_IP",
                file.max_connections_per_ip.map(|v| v as u64),
                d.max_connections_per_ip as u64,
            )?
            .max(1) as usize,
            header_timeout: Duration::from_millis(
                number(
                    "GATEWAY_HEADER_TIMEOUT_MS",
                    file.header_timeout_ms,
                    d.header_timeout.as_millis() as u64,
                )?
                .max(100),
            ),
            body_timeout: Duration::from_millis(
                number(
                    "GATEWAY_BODY_TIMEOUT_MS",
                    file.body_timeout_ms,
                    d.body_timeout.as_millis() as u64,
                )?
                .max(100),
            ),
            max_tracked_clients: d.max_tracked_clients,
            max_failed_auth: number(
                "MAX_FAILED_AUTH_ATTEMPTS",
                file.max_failed_auth.map(u64::from),
                d.max_failed_auth.into(),
            )? as u32,
            failed_auth_window: Duration::from_millis(number(
                "FAILED_AUTH_WINDOW_MS",
                file.failed_auth_window_ms,
                d.failed_auth_window.as_millis() as u64,
            )?),
            block_duration: Duration::from_millis(number(
                "AUTO_BLOCK_DURATION_MS",
                file.block_duration_ms,
                d.block_duration.as_millis() as u64,
            )?),
            max_block_duration: d.max_block_duration,
            trusted_proxies: nets("TRUSTED_PROXIES", file.trusted_proxies, d.trusted_proxies)?,
            ignore: nets("SECURITY_IGNORE_IPS", file.ignore, d.ignore)?,
            max_message_chars: number(
                "MAX_MESSAGE_CHARS",
                file.max_message_chars.map(|v| v as u64),
                d.max_message_chars as u64,
            )? as usize,
            max_body_bytes: number(
                "MAX_BODY_BYTES",
                file.max_body_bytes.map(|v| v as u64),
                d.max_body_bytes as u64,
            )? as usize,
            cors_origins: get("GATEWAY_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().trim_end_matches('/').to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .or(file.cors_origins)
                .unwrap_or_default(),
            lockdown: boolean("SECURITY_LOCKDOWN", file.lockdown, d.lockdown)?,
            emergency,
            firewall: boolean("SECURITY_FIREWALL", file.firewall, d.firewall)?,
            strict: boolean("SECURITY_STRICT_MODE", file.strict, d.strict)?,
            paranoia: match number(
                "SECURITY_PARANOIA_LEVEL",
                file.paranoia_level,
                d.paranoia.into(),
            )? {
                level @ 1..=4 => level as u8,
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "SECURITY_PARANOIA_LEVEL (paranoia_level) is {other}: it is 1 to 4"
                    )))
                }
            },
            incident_retention: Duration::from_secs(
                24 * 3600
                    * number(
                        "INCIDENT_RETENTION_DAYS",
                        file.incident_retention_days,
                        d.incident_retention.as_secs() / 86_400,
                    )?,
            ),
            max_incidents: number("MAX_INCIDENTS", file.max_incidents, d.max_incidents)?,
            session_ttl: Duration::from_millis(number(
                "GATEWAY_SESSION_TTL_MS",
                file.session_ttl_ms,
                d.session_ttl.as_millis() as u64,
            )?),
        };
        for (name, v) in [
            ("RATE_LIMIT_API_PER_MINUTE", cfg.api_per_minute),
            ("RATE_LIMIT_LOGIN_PER_HOUR", cfg.login_per_hour),
            ("RATE_LIMIT_WS_PER_IP", cfg.ws_per_ip),
            ("MAX_FAILED_AUTH_ATTEMPTS", cfg.max_failed_auth),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be at least 1 (a limit of 0 would refuse everyone)"
                )));
            }
        }
        if cfg.max_connections == 0 || cfg.max_message_chars == 0 || cfg.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "GATEWAY_MAX_CONNECTIONS, MAX_MESSAGE_CHARS and MAX_BODY_BYTES must be > 0".into(),
            ));
        }
        if cfg.block_duration.is_zero() {
            return Err(ConfigError::Invalid(
                "AUTO_BLOCK_DURATION_MS must be > 0".into(),
            ));
        }
        for o in &cfg.cors_origins {
            if !(o.starts_with("http://") || o.starts_with("https://")) || o == "*" {
                return Err(ConfigError::Invalid(format!(
                    "GATEWAY_CORS_ORIGINS: {o:?} is not an origin like https://panel.example.com (wildcards are not allowed)"
                )));
            }
        }
        Ok(cfg)
    }
}

impl SecurityConfig {
    /// The request firewall this config asks for (`None`: it is off).
    pub fn firewall_config(&self) -> Option<moltguard_waf::FirewallConfig> {
        self.firewall.then(|| moltguard_waf::FirewallConfig {
            strict: self.strict,
            paranoia: self.paranoia,
            max_body_bytes: self.max_body_bytes,
            ..Default::default()
        })
    }
}

/// An IP address or a CIDR block.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env;

    #[test]
    fn the_firewall_settings_are_read_strictly_and_reach_the_firewall() {
        let load =
            |vars: &[(&str, &str)]| SecurityConfig::load(FileSecurity::default(), &env(vars));
        let fw = load(&[]).unwrap().firewall_config().unwrap();
        assert_eq!((fw.strict, fw.paranoia), (false, 1));
        let c = load(&[
            ("SECURITY_PARANOIA_LEVEL", "3"),
            ("SECURITY_STRICT_MODE", "on"),
        ])
        .unwrap();
        let fw = c.firewall_config().unwrap();
        assert_eq!(
            (fw.strict, fw.paranoia, fw.max_body_bytes),
            (true, 3, c.max_body_bytes)
        );
        assert!(load(&[("SECURITY_FIREWALL", "off")])
            .unwrap()
            .firewall_config()
            .is_none());
        // A typo is an error naming the variable, never a silent default.
        for (var, bad) in [
            ("SECURITY_PARANOIA_LEVEL", "0"),
            ("SECURITY_PARANOIA_LEVEL", "5"),
            ("SECURITY_PARANOIA_LEVEL", "high"),
            ("SECURITY_FIREWALL", "of"),
            ("SECURITY_STRICT_MODE", "sure"),
        ] {
            let e = load(&[(var, bad)]).unwrap_err().to_string();
            assert!(e.contains(var), "{var}={bad}: {e}");
        }
        let file: FileSecurity = toml::from_str("paranoia_level = 2").unwrap();
        assert_eq!(SecurityConfig::load(file, &env(&[])).unwrap().paranoia, 2);
    }

    #[test]
    fn defaults_are_the_designs() {
        let c = SecurityConfig::load(FileSecurity::default(), &env(&[])).unwrap();
        assert!(c.auth_required && c.firewall && !c.lockdown && !c.emergency);
        assert_eq!(c.api_per_minute, 60);
        assert_eq!(c.login_per_hour, 5);
        assert_eq!(c.ws_per_ip, 3);
        assert_eq!(c.max_connections, 1000);
        assert_eq!(c.max_failed_auth, 5);
        assert_eq!(c.block_duration, Duration::from_secs(1800));
        assert_eq!(c.max_message_chars, 4_000_000);
    }

    #[test]
    fn environment_overrides_and_validates() {
        let c = SecurityConfig::load(
            FileSecurity::default(),
            &env(&[
                ("KILL_SWITCH", "1"),
                ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7"),
                (
                    "GATEWAY_CORS_ORIGINS",
                    "https://a.example/,http://b.example",
                ),
            ]),
        )
        .unwrap();
        assert!(c.emergency);
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.cors_origins, ["https://a.example", "http://b.example"]);
        for bad in [
            ("RATE_LIMIT_API_PER_MINUTE", "0"),
            ("TRUSTED_PROXIES", "nginx"),
            ("GATEWAY_CORS_ORIGINS", "*"),
            ("SECURITY_LOCKDOWN", "perhaps"),
        ] {
            let e = SecurityConfig::load(FileSecurity::default(), &env(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(bad.0), "{e}");
        }
    }
}
