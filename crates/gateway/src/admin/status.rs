//! `providers.status` and `providers.test` (REST today, WebSocket RPC later),
//! plus the non-blocking startup health check.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::api::errors::ApiError;
use crate::outbound::deadline::Deadline;
use crate::outbound::provider::{upstream_body, Provider, Streamed};
use crate::Gateway;

/// One provider, as `providers.status` shows it (never its key).
#[derive(Debug, Serialize)]
pub struct ProviderStatus {
    /// Its configured name.
    pub name: String,
    /// Its preset (`groq`, `ollama`, ...).
    pub kind: &'static str,
    /// Its base URL.
    pub base_url: String,
    /// The name of the secret holding its key.
    pub key_ref: Option<String>,
    /// Whether the key was found.
    pub key_present: bool,
    /// Where it was found (`file`, `environment`, ...).
    pub key_source: Option<&'static str>,
    /// Why the key could not be read, if it could not.
    pub key_problem: Option<String>,
    /// The provider-wide circuit (it cannot be reached).
    pub circuit: &'static str,
    /// Failures in a row of the provider-wide circuit.
    pub consecutive_failures: u32,
    /// Models whose own circuit is open, half-open or has failures.
    pub model_circuits: Vec<ModelCircuit>,
    /// The latency of the last answer.
    pub last_latency_ms: Option<u64>,
    /// The last failure, in words (secrets redacted).
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// Latency percentiles over the recent successful samples.
    pub latency_ms: Percentiles,
    /// Recent samples, oldest first, for the dashboard's chart.
    pub history: Vec<crate::outbound::provider::Sample>,
}

/// A model's own circuit at a provider.
#[derive(Debug, Serialize)]
pub struct ModelCircuit {
    /// The model.
    pub model: String,
    /// Its circuit's state.
    pub circuit: &'static str,
    /// Its failures in a row.
    pub consecutive_failures: u32,
}

/// Nearest-rank latency percentiles, in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// How many samples they are taken over.
    pub samples: usize,
    /// The median.
    pub p50: Option<u64>,
    /// The 90th percentile.
    pub p90: Option<u64>,
    /// The 99th percentile.
    pub p99: Option<u64>,
}

/// Nearest-rank percentiles over successful samples.
pub fn percentiles(mut v: Vec<u64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        samples: v.len(),
        p50: Some(at(0.50)),
        p90: Some(at(0.90)),
        p99: Some(at(0.99)),
    }
}

/// A base URL fit to show: no userinfo, no query.
fn display_url(u: &str) -> String {
    match reqwest::Url::parse(u) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.to_string().trim_end_matches('/').to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// The status of `p` now.
pub fn provider_status(p: &Provider) -> ProviderStatus {
    let s = p.stats.lock().unwrap();
    ProviderStatus {
        name: p.name().to_string(),
        kind: p.cfg.kind.as_str(),
        base_url: display_url(&p.cfg.base_url),
        key_ref: p.cfg.key_ref.clone(),
        key_present: p.key.is_some(),
        key_source: p.key_origin.map(|o| o.as_str()),
        key_problem: p.key_error.clone(),
        circuit: p.circuits.provider().state().as_str(),
        consecutive_failures: p.circuits.provider().consecutive_failures(),
        model_circuits: p
            .circuits
            .troubled_models()
            .into_iter()
            .map(|(model, state, consecutive_failures)| ModelCircuit {
                model,
                circuit: state.as_str(),
                consecutive_failures,
            })
            .collect(),
        last_latency_ms: s.last_latency_ms,
        last_error: s.last_error.clone(),
        last_error_at: s.last_error_at.map(|t| t.to_rfc3339()),
        latency_ms: percentiles(s.history.iter().filter(|x| x.ok).map(|x| x.ms).collect()),
        history: s.history.iter().rev().take(100).rev().cloned().collect(),
    }
}

/// `providers.status`: configured providers, key present or not (never
/// the key), circuit state, last latency and error, percentiles.
pub fn status_json(gw: &Gateway) -> Value {
    let providers: Vec<_> = gw.providers.iter().map(|p| provider_status(p)).collect();
    json!({
        "default_provider": gw.cfg.default_provider,
        "default_model": gw.cfg.default_model,
        "streaming": gw.cfg.streaming,
        "stream_upstream": gw.cfg.stream_upstream,
        "providers": providers,
    })
}

/// What `providers.test` is asked.
#[derive(Debug, Default, Deserialize)]
pub struct TestRequest {
    /// One provider by name; all when absent.
    pub provider: Option<String>,
    /// Override the probe model.
    pub model: Option<String>,
}

/// The outcome of one provider test.
#[derive(Debug, Serialize)]
pub struct TestResult {
    /// The provider tested.
    pub provider: String,
    /// The model asked (`None` when it has no probe model).
    pub model: Option<String>,
    /// Whether it answered.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: u64,
    /// What happened, in words.
    pub verdict: String,
}

/// Send a tiny completion (`max_tokens: 1`) to one provider.
pub async fn test_provider(gw: &Gateway, p: &Provider, model: Option<String>) -> TestResult {
    let model = model.or_else(|| p.cfg.default_model.clone());
    let Some(m) = model.clone() else {
        return TestResult {
            provider: p.name().into(),
            model,
            ok: false,
            latency_ms: 0,
            verdict: "no model to test with: set `model` for this provider in the config".into(),
        };
    };
    if p.key_missing() || p.key_error.is_some() {
        return TestResult {
            provider: p.name().into(),
            model,
            ok: false,
            latency_ms: 0,
            verdict: p.key_error.clone().unwrap_or_else(|| {
                format!(
                    "no API key: run `moltguard secrets set {}`",
                    p.cfg.key_ref.as_deref().unwrap_or("?")
                )
            }),
        };
    }
    let raw = json!({"messages": [{"role": "user", "content": "Reply with OK."}], "max_tokens": 1})
        .to_string();
    let fields = crate::api::json::parse_fields(raw.as_bytes()).expect("static JSON object");
    let body = upstream_body(&fields, &m, Streamed::No);
    let t0 = Instant::now();
    let r = p
        .attempt(
            crate::api::endpoint::Endpoint::Chat,
            body,
            &m,
            false,
            Deadline::after(p.cfg.timeouts.total.min(gw.cfg.request_timeout)),
            &gw.redactor,
        )
        .await;
    let ms = t0.elapsed().as_millis() as u64;
    let (ok, verdict) = match r {
        Ok(_) => (true, format!("OK: answered in {ms} ms")),
        Err(f) => (false, format!("FAILED: {}", f.describe())),
    };
    p.record(ms, if ok { Ok(()) } else { Err(verdict.clone()) });
    TestResult {
        provider: p.name().into(),
        model,
        ok,
        latency_ms: ms,
        verdict,
    }
}

/// `providers.test`: a tiny request to one provider or all of them.
pub async fn run_tests(gw: &Gateway, req: TestRequest) -> Result<Value, ApiError> {
    let targets: Vec<_> = match &req.provider {
        Some(n) => match gw.provider(n) {
            Some(p) => vec![p.clone()],
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    "unknown_provider",
                    format!("provider {n:?} is not configured"),
                ))
            }
        },
        None => gw.providers.clone(),
    };
    let futs = targets
        .iter()
        .map(|p| test_provider(gw, p, req.model.clone()));
    let results = futures_util::future::join_all(futs).await;
    Ok(json!({"results": results}))
}

/// Log every provider's state at startup without delaying it.
pub fn spawn_startup_check(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        if gw.security.mode(crate::inbound::Mode::Emergency) {
            tracing::warn!("kill switch is on: no provider is contacted, not even to check it");
            return;
        }
        for p in &gw.providers {
            if let Some(e) = &p.key_error {
                tracing::warn!(provider = p.name(), "key problem: {e}");
                continue;
            }
            if p.key_missing() {
                tracing::warn!(
                    provider = p.name(),
                    key = p.cfg.key_ref.as_deref().unwrap_or("-"),
                    "no API key found; this provider will be skipped"
                );
                continue;
            }
            let within = p.cfg.timeouts.connect + Duration::from_secs(3);
            match p.probe_models(within).await {
                Ok(ms) => {
                    tracing::info!(
                        provider = p.name(),
                        latency_ms = ms,
                        key_source = p.key_origin.map_or("-", |o| o.as_str()),
                        "provider reachable"
                    )
                }
                Err(e) => {
                    let e = gw.redactor.redact(&e);
                    tracing::warn!(provider = p.name(), "provider check failed: {e}");
                    p.stats.lock().unwrap().last_error = Some(format!("startup check: {e}"));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let p = percentiles((1..=100).collect());
        assert_eq!((p.p50, p.p90, p.p99), (Some(50), Some(90), Some(99)));
        assert_eq!(percentiles(vec![]).p50, None);
        assert_eq!(
            display_url("https://u:p@h.example/v1?x=1"),
            "https://h.example/v1"
        );
    }
}
