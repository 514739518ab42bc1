//! `moltgate check-config`: everything wrong with a configuration, precisely.

use crate::config::GatewayConfig;
use crate::outbound::routing::check_routes;
use crate::secrets::{SecretOrigin, SecretSource};

/// Everything `moltgate check-config` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Make the config unusable: exit non-zero.
    pub errors: Vec<String>,
    /// Works, but should be fixed (e.g. keys in the environment).
    pub warnings: Vec<String>,
    /// One line per provider.
    pub info: Vec<String>,
}

/// Structural problems that stop `serve` from starting (keys excluded).
pub fn structural_errors(cfg: &GatewayConfig) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = check_listen(cfg) {
        errors.push(e);
    }
    for p in &cfg.providers {
        if let Err(e) = check_url(&p.base_url) {
            errors.push(format!("provider {}: base_url {e}", p.name));
        } else if let Err(e) = check_provider_address(p) {
            errors.push(e);
        }
    }
    errors.extend(check_routes(cfg));
    errors
}

/// Loopback, unless auth is on *and* `GATEWAY_ALLOW_REMOTE` says the
/// operator means it: nginx on loopback is the intended front door.
pub fn check_listen(cfg: &GatewayConfig) -> Result<(), String> {
    let sec = &cfg.security;
    if cfg.listen.ip().is_loopback() {
        Ok(())
    } else if !sec.auth_required {
        Err(format!(
            "refusing to listen on {}: authentication is off (GATEWAY_AUTH_REQUIRED=false), so anyone who can reach the port could use your LLM keys. Listen on 127.0.0.1:PORT behind nginx, or turn authentication on",
            cfg.listen
        ))
    } else if !sec.allow_remote {
        Err(format!(
            "refusing to listen on {}: moltgate belongs behind nginx on loopback (use 127.0.0.1:PORT). If you really mean to expose it, set GATEWAY_ALLOW_REMOTE=true (authentication stays required)",
            cfg.listen
        ))
    } else {
        Ok(())
    }
}

/// Who can get in: keys, the password, the modes (read-only: the
/// database is opened, never changed beyond its creation).
fn check_security(cfg: &GatewayConfig, secrets: &SecretSource, r: &mut Report) {
    use crate::admin::store::{now_ms, Store};
    let sec = &cfg.security;
    if !sec.auth_required {
        r.warnings.push("authentication is off (GATEWAY_AUTH_REQUIRED=false): anyone who reaches the port can use your providers".into());
    }
    match Store::open(&cfg.state_dir) {
        Err(e) => r.errors.push(e.to_string()),
        Ok(store) => {
            let now = now_ms();
            let active = store
                .keys()
                .map(|k| {
                    k.iter()
                        .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|t| t > now))
                        .count()
                })
                .unwrap_or(0);
            r.info.push(format!(
                "security database {}: {active} active API key(s)",
                store.path().display()
            ));
            if active == 0 && sec.auth_required {
                r.warnings.push("no active API key: no client can call the gateway yet; create one with `moltguard keys create --label NAME --scopes operator.write`".into());
            }
            for (mode, what) in [
                (
                    "lockdown",
                    "lockdown is on: only admin keys from this machine are served",
                ),
                (
                    "emergency",
                    "the kill switch is on: no LLM call leaves the gateway",
                ),
            ] {
                if store.setting(mode).ok().flatten().as_deref() == Some("on")
                    || (mode == "lockdown" && sec.lockdown)
                    || (mode == "emergency" && sec.emergency)
                {
                    r.warnings.push(what.into());
                }
            }
        }
    }
    match secrets.resolve(&sec.password_ref) {
        Ok(Some(s)) => {
            if let Err(e) = crate::inbound::session::Password::new(s.value.expose()) {
                r.errors.push(e);
            } else if s.origin == crate::secrets::SecretOrigin::Environment {
                r.warnings.push(format!("the gateway password comes from the environment ({}); store it with `moltguard secrets set {}` instead", sec.password_ref, sec.password_ref));
            } else {
                r.info
                    .push(format!("gateway password: set ({})", s.origin.as_str()));
            }
        }
        Ok(None) => r.info.push(format!(
            "gateway password: not set (dashboard login off; `moltguard secrets set {}`)",
            sec.password_ref
        )),
        Err(e) => r.errors.push(format!("gateway password: {e}")),
    }
    r.info.push(format!(
        "firewall: {}; rate limits: {}/min per IP, {}/min per key, {} logins/hour per IP; bans after {} failures",
        if sec.firewall { if sec.strict { "on (strict)" } else { "on" } } else { "OFF" },
        sec.api_per_minute, sec.key_per_minute, sec.login_per_hour, sec.max_failed_auth
    ));
}

/// Remote providers on private addresses, and metadata addresses, are
/// refused at connect time; an IP literal can be refused right away.
fn check_provider_address(p: &crate::config::ProviderConfig) -> Result<(), String> {
    let Ok(url) = reqwest::Url::parse(&p.base_url) else {
        return Ok(());
    };
    let ip = url
        .host_str()
        .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok());
    match ip.and_then(|ip| crate::outbound::ssrf::refusal(&p.name, p.local, ip)) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

fn check_url(u: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(u)
        .map_err(|e| format!("{:?} is not a URL ({e})", redact_userinfo(u)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{:?} must use http or https, not {:?}",
            redact_userinfo(u),
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{:?} has no host", redact_userinfo(u)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not embed credentials (user:password@); use a key reference".into());
    }
    Ok(())
}

fn redact_userinfo(u: &str) -> String {
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}[redacted]{}", &u[..s + 3], &u[a..]),
        _ => u.to_string(),
    }
}

/// Checks `cfg` (and the keys it refers to, through `secrets`) without starting anything.
pub fn check(cfg: &GatewayConfig, secrets: &SecretSource) -> Report {
    let mut r = Report {
        errors: structural_errors(cfg),
        ..Default::default()
    };
    let mut usable = 0;
    for p in &cfg.providers {
        let key = match &p.key_ref {
            None => {
                usable += 1;
                "no key needed".to_string()
            }
            Some(k) => match secrets.resolve(k) {
                Ok(Some(s)) => {
                    usable += 1;
                    if s.origin == SecretOrigin::Environment {
                        r.warnings.push(format!(
                            "provider {}: key {k} comes from the environment; store it with `moltguard secrets set {k}` and unset the variable",
                            p.name
                        ));
                    }
                    format!("key {k} from {}", s.origin.as_str())
                }
                Ok(None) => {
                    r.errors.push(format!(
                        "provider {}: no API key {k} found (looked in {}, $CREDENTIALS_DIRECTORY, keychain, environment); run `moltguard secrets set {k}`",
                        p.name,
                        cfg.state_dir.join("secrets").display()
                    ));
                    format!("key {k} MISSING")
                }
                Err(e) => {
                    r.errors.push(format!("provider {}: {e}", p.name));
                    format!("key {k} unreadable")
                }
            },
        };
        let t = p.timeouts;
        r.info.push(format!(
            "provider {} ({}) {} — {key}; timeouts connect {} ms, ttfb {} ms, idle {} ms, total {} ms",
            p.name,
            p.kind.as_str(),
            redact_userinfo(&p.base_url),
            t.connect.as_millis(),
            t.ttfb.as_millis(),
            t.idle.as_millis(),
            t.total.as_millis()
        ));
    }
    check_security(cfg, secrets, &mut r);
    if cfg.providers.is_empty() {
        r.errors.push("no providers configured".into());
    } else if usable == 0 {
        r.errors
            .push("no provider is usable: every one lacks its API key".into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    #[test]
    fn reports_bad_urls_routes_keys_and_env_keys() {
        let toml = r#"
            listen = "0.0.0.0:8787"
            [providers.bad]
            base_url = "ftp://x"
            [providers.nohost]
            base_url = "http://"
            [providers.groq]
            [providers.openrouter]
            [aliases]
            a = ["nope/model"]
        "#;
        let env: Env = [("GROQ_API_KEY".to_string(), "gsk_secret_value_1".to_string())].into();
        let cfg = GatewayConfig::from_toml_str(toml, &env, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = check(&cfg, &SecretSource::new(dir.path(), &env));
        let all = r.errors.join("\n");
        assert!(all.contains("refusing to listen on 0.0.0.0:8787"), "{all}");
        assert!(
            all.contains("provider bad: base_url") && all.contains("http or https"),
            "{all}"
        );
        assert!(all.contains("provider nohost"), "{all}");
        assert!(
            all.contains("alias \"a\"") && all.contains("\"nope\" is not configured"),
            "{all}"
        );
        assert!(all.contains("OPENROUTER_API_KEY"), "{all}");
        assert!(r
            .warnings
            .join("\n")
            .contains("GROQ_API_KEY comes from the environment"));
        assert!(!format!("{r:?}").contains("gsk_secret_value_1"));
    }
}
