//! moltgate: an OpenAI-compatible LLM gateway that never hangs.
//!
//! Every request gets one overall deadline; each attempt gets per-phase
//! deadlines capped by what is left of it. Failures are classified
//! ([`outbound::retry::Failure`]) into retry / next route / skip provider /
//! stop, each provider has a circuit, and streams are either complete or
//! end with an explicit error event.
//!
//! A request crosses four parts, in this order:
//! - [`inbound`]: accepting connections and admission, one function per
//!   documented step, each refusal a typed [`inbound::refusal::Refusal`];
//! - [`api`]: the one table of routes and RPC methods, the router, and the
//!   OpenAI endpoints (validation, JSON surgery, streams, assembly);
//! - [`outbound`]: routing, deadlines, attempts, retries, circuits and the
//!   SSRF guard, towards the providers;
//! - [`admin`]: the security database, the RPC methods, status, metrics
//!   and the dashboard.
//!
//! [`config`] (with [`check`]), [`secrets`] (API keys by reference) and
//! [`workers`] (thread-per-core serving) are shared by all four.

pub mod admin;
pub mod api;
pub mod check;
pub mod config;
pub mod inbound;
pub mod outbound;
pub mod secrets;
pub mod workers;

use std::sync::Arc;

pub use admin::metrics::Metrics;
pub use config::GatewayConfig;
use outbound::provider::{Provider, Redactor};
use secrets::SecretSource;

/// One running gateway: its configuration, its providers, and the state every request shares.
pub struct Gateway {
    /// The configuration it started with.
    pub cfg: GatewayConfig,
    /// The configured providers, each with its key, pooled clients and circuits.
    pub providers: Vec<Arc<Provider>>,
    /// Its Prometheus registry.
    pub metrics: Metrics,
    /// Every secret it holds, masked out of anything it says.
    pub redactor: Redactor,
    /// Admission's state: bans, limits, keys, sessions, modes and the store.
    pub security: Arc<inbound::Security>,
    /// The model names metrics may carry as a label: the configured ones.
    /// Anything a client makes up is counted as `other`, so the number of
    /// series stays bounded by the config, not by the clients.
    known_models: std::collections::HashSet<String>,
}

impl Gateway {
    /// Resolve keys and build one pooled HTTP client per provider.
    pub fn new(cfg: GatewayConfig, secrets: &SecretSource) -> anyhow::Result<Arc<Self>> {
        let mut redactor = Redactor::default();
        let mut providers = Vec::new();
        for pc in &cfg.providers {
            let (key, origin, key_error) = match &pc.key_ref {
                None => (None, None, None),
                Some(r) => match secrets.resolve(r) {
                    Ok(Some(s)) => {
                        redactor.add(&s.value);
                        (Some(s.value), Some(s.origin), None)
                    }
                    Ok(None) => (None, None, None),
                    Err(e) => (None, None, Some(e.to_string())),
                },
            };
            providers.push(Arc::new(Provider::new(
                pc.clone(),
                key,
                origin,
                key_error,
                cfg.circuit,
            )?));
        }
        let password = match secrets.resolve(&cfg.security.password_ref) {
            Ok(Some(s)) => {
                redactor.add(&s.value);
                Some(s.value.expose().to_string())
            }
            Ok(None) => None,
            Err(e) => anyhow::bail!("cannot read the gateway password: {e}"),
        };
        let metrics = Metrics::new();
        let security = inbound::Security::new(inbound::SecurityInit {
            cfg: cfg.security.clone(),
            state_dir: &cfg.state_dir,
            loopback: cfg.listen.ip().is_loopback(),
            password,
            incident_counter: Some(metrics.security_incidents.clone()),
        })?;
        let known_models = known_models(&cfg);
        let gw = Arc::new(Self {
            cfg,
            providers,
            metrics,
            redactor,
            security,
            known_models,
        });
        for p in &gw.providers {
            gw.refresh_circuit_gauge(p);
        }
        Ok(gw)
    }

    /// `model` as a metrics label: itself if configured, else `other`.
    pub fn model_label<'a>(&self, model: &'a str) -> &'a str {
        if self.known_models.contains(model) {
            admin::metrics::label(model)
        } else {
            "other"
        }
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// Circuit states change with time (open -> half-open), so the gauge is
    /// refreshed when scraped and on failures, not on every success.
    pub fn refresh_circuit_gauge(&self, p: &Provider) {
        self.metrics
            .circuit_state
            .with_label_values(&[p.name()])
            .set(p.circuits.worst().gauge());
    }

    /// Usable: key present (if one is needed) and circuit not open.
    pub fn ready(&self) -> bool {
        self.providers.iter().any(|p| {
            !p.key_missing()
                && p.key_error.is_none()
                && p.circuits.provider().state() != outbound::circuit::CircuitState::Open
        })
    }
}

/// Every model name the config mentions: aliases, their routes (with and
/// without the provider), each provider's default and the gateway's.
fn known_models(cfg: &GatewayConfig) -> std::collections::HashSet<String> {
    let mut known = std::collections::HashSet::new();
    known.insert(cfg.default_model.clone());
    for (alias, chain) in &cfg.aliases {
        known.insert(alias.clone());
        for route in chain {
            known.insert(route.clone());
            if let Some((_, model)) = route.split_once('/') {
                known.insert(model.to_string());
            }
        }
    }
    known.extend(cfg.providers.iter().filter_map(|p| p.default_model.clone()));
    known
}

/// Serve the gateway on an already bound listener until the future is dropped.
pub async fn serve(gw: Arc<Gateway>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_with_shutdown(gw, listener, std::future::pending()).await
}

/// Like [`serve`], stopping gracefully when `shutdown` resolves.
pub async fn serve_with_shutdown(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    inbound::listen::serve_with_shutdown(gw, listener, shutdown).await
}
