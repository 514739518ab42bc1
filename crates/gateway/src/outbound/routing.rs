//! Turning a requested model name into an ordered chain of (provider, model).
//!
//! - an alias expands to its configured chain;
//! - `provider/model` (provider configured) goes to that provider;
//! - anything else goes unchanged to the default provider, followed by the
//!   configured global fallbacks;
//! - the request's own `fallbacks` (LiteLLM style) come next, resolved the same way.

use crate::config::GatewayConfig;

/// One step of a chain: a model at a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The provider's configured name.
    pub provider: String,
    /// The model, as the provider names it.
    pub model: String,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Parse a configured route string, which must name a configured provider.
pub fn parse_configured(cfg: &GatewayConfig, s: &str) -> Result<Route, String> {
    match s.split_once('/') {
        Some((p, m)) if !m.is_empty() && cfg.provider(p).is_some() => Ok(Route {
            provider: p.to_string(),
            model: m.to_string(),
        }),
        Some((p, _)) => Err(format!(
            "route {s:?}: provider {p:?} is not configured (known: {})",
            known(cfg)
        )),
        None => Err(format!("route {s:?} must be \"provider/model\"")),
    }
}

fn known(cfg: &GatewayConfig) -> String {
    let v: Vec<_> = cfg.providers.iter().map(|p| p.name.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Resolve one requested name (alias, `provider/model` or bare model).
fn resolve_one(
    cfg: &GatewayConfig,
    name: &str,
    out: &mut Vec<Route>,
    with_globals: bool,
) -> Result<(), String> {
    if let Some(chain) = cfg.aliases.get(name) {
        for r in chain {
            out.push(parse_configured(cfg, r)?);
        }
        return Ok(());
    }
    if let Some((p, m)) = name.split_once('/') {
        if !m.is_empty() && cfg.provider(p).is_some() {
            out.push(Route {
                provider: p.into(),
                model: m.into(),
            });
            return push_globals(cfg, out, with_globals);
        }
    }
    if cfg.provider(&cfg.default_provider).is_none() {
        return Err(format!(
            "model {name:?} is not an alias and the default provider {:?} is not configured (known providers: {})",
            cfg.default_provider,
            known(cfg)
        ));
    }
    out.push(Route {
        provider: cfg.default_provider.clone(),
        model: name.into(),
    });
    push_globals(cfg, out, with_globals)
}

fn push_globals(
    cfg: &GatewayConfig,
    out: &mut Vec<Route>,
    with_globals: bool,
) -> Result<(), String> {
    if with_globals {
        for f in &cfg.fallbacks {
            out.push(parse_configured(cfg, f)?);
        }
    }
    Ok(())
}

/// Build the full chain for a request. Duplicates are removed, first wins.
pub fn resolve_chain(
    cfg: &GatewayConfig,
    model: &str,
    request_fallbacks: &[String],
) -> Result<Vec<Route>, String> {
    let mut out = Vec::new();
    resolve_one(cfg, model, &mut out, true)?;
    for f in request_fallbacks {
        resolve_one(cfg, f, &mut out, false)?;
    }
    // Drop later duplicates in place (chains are a handful of routes).
    let mut i = 1;
    while i < out.len() {
        if out[..i].contains(&out[i]) {
            out.remove(i);
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// Every alias/fallback route in the config, for `check-config`.
pub fn check_routes(cfg: &GatewayConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for (alias, chain) in &cfg.aliases {
        if chain.is_empty() {
            problems.push(format!("alias {alias:?} has an empty chain"));
        }
        for r in chain {
            if let Err(e) = parse_configured(cfg, r) {
                problems.push(format!("alias {alias:?}: {e}"));
            }
        }
    }
    for r in &cfg.fallbacks {
        if let Err(e) = parse_configured(cfg, r) {
            problems.push(format!("fallbacks: {e}"));
        }
    }
    if cfg.provider(&cfg.default_provider).is_none() {
        problems.push(format!(
            "default provider {:?} (DEFAULT_LLM_PROVIDER / default_provider) is not configured (known: {})",
            cfg.default_provider,
            known(cfg)
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Env;

    fn cfg() -> GatewayConfig {
        let toml = r#"
            default_provider = "groq"
            fallbacks = ["local/llama3"]
            [providers.groq]
            [providers.local]
            preset = "ollama"
            [providers.openrouter]
            [aliases]
            fast = ["groq/llama-3.1-8b-instant", "openrouter/meta-llama/llama-3.1-8b-instruct"]
        "#;
        GatewayConfig::from_toml_str(toml, &Env::new(), "t").unwrap()
    }

    fn names(v: Vec<Route>) -> Vec<String> {
        v.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn alias_prefix_wildcard_and_request_fallbacks() {
        let c = cfg();
        assert_eq!(
            names(resolve_chain(&c, "fast", &[]).unwrap()),
            [
                "groq/llama-3.1-8b-instant",
                "openrouter/meta-llama/llama-3.1-8b-instruct"
            ]
        );
        assert_eq!(
            names(resolve_chain(&c, "openrouter/anthropic/claude", &[]).unwrap()),
            ["openrouter/anthropic/claude", "local/llama3"]
        );
        assert_eq!(
            names(resolve_chain(&c, "mixtral", &["fast".into(), "local/llama3".into()]).unwrap()),
            [
                "groq/mixtral",
                "local/llama3",
                "groq/llama-3.1-8b-instant",
                "openrouter/meta-llama/llama-3.1-8b-instruct"
            ]
        );
        // Unknown prefix: the whole name is a model for the default provider.
        assert_eq!(
            names(resolve_chain(&c, "meta/x", &[]).unwrap())[0],
            "groq/meta/x"
        );
        assert!(check_routes(&c).is_empty());
    }
}
