//! Prometheus metrics, one registry per gateway instance (tests run several).
//! Labels carry provider names, model names and error classes only — never
//! keys, URLs or message text.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The token counts of an OpenAI `usage` object (the Responses API names
/// them `input_tokens` and `output_tokens`; embeddings have no output).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Usage {
    /// Tokens in (`prompt_tokens`, or `input_tokens`).
    #[serde(alias = "input_tokens")]
    pub prompt_tokens: Option<u64>,
    /// Tokens out (`completion_tokens`, or `output_tokens`).
    #[serde(alias = "output_tokens")]
    pub completion_tokens: Option<u64>,
}

impl Usage {
    /// From the raw `usage` value, if it is one.
    pub fn parse(raw: &str) -> Option<Usage> {
        serde_json::from_str(raw).ok()
    }
}

/// Outcome of a chat completion request (`outcome` label of the request metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Failed upstream (or in the gateway).
    Error,
    /// Refused as the client's fault (a 4xx before any upstream).
    ClientError,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::ClientError => "client_error",
        }
    }
}

/// Resolved children of the per-request metrics. `with_label_values` hashes
/// the labels and takes a lock on every call; the hot path resolves each
/// child once and keeps it. Children are still created on first use, so
/// `/metrics` shows exactly the series it showed before.
struct Outcomes {
    requests: [OnceLock<IntCounter>; 3],
    duration: [OnceLock<Histogram>; 3],
}

/// A successful route's children: `upstream_requests{provider,model,"ok"}`
/// and `upstream_latency{provider,model}`.
struct RouteOk {
    provider: String,
    model: String,
    requests: IntCounter,
    latency: Histogram,
}

/// Most (provider, model) pairs remembered per serving thread; past that,
/// children are looked up each time (still correct, only slower).
const ROUTE_CACHE: usize = 64;

/// moltgate's Prometheus registry and the series it serves at `/metrics`.
pub struct Metrics {
    registry: Registry,
    /// `moltgate_requests_total{outcome}`.
    pub requests: IntCounterVec,
    /// `moltgate_request_duration_seconds{outcome}`.
    pub request_duration: HistogramVec,
    /// `moltgate_upstream_requests_total{provider, model, outcome}`.
    pub upstream_requests: IntCounterVec,
    /// `moltgate_upstream_latency_seconds{provider, model}`.
    pub upstream_latency: HistogramVec,
    /// `moltgate_upstream_errors_total{provider, class}`.
    pub errors: IntCounterVec,
    /// `moltgate_retries_total{provider}`.
    pub retries: IntCounterVec,
    /// `moltgate_fallbacks_total{from_provider}`: moves past a failed route.
    pub fallbacks: IntCounterVec,
    /// `moltgate_breaker_state{provider}`: its worst circuit (0 closed, 1 half-open, 2 open).
    pub circuit_state: IntGaugeVec,
    /// `moltgate_stream_aborts_total{provider, reason}`.
    pub stream_aborts: IntCounterVec,
    /// Broken streams continued on a fallback (`outcome`: resumed, failed).
    pub stream_resumes: IntCounterVec,
    /// Security incidents by kind (auth_failure, firewall_block, auto_block, ...).
    pub security_incidents: IntCounterVec,
    /// Security state at scrape time (open connections, active bans, modes).
    pub security_state: IntGaugeVec,
    /// Tokens the providers reported (`usage`), by provider, model, key
    /// label and kind (input, output).
    pub tokens: IntCounterVec,
    /// From the request's arrival to the first content chunk of a stream.
    pub time_to_first_token: HistogramVec,
    /// The gateway's own time on a successful request: from admission to
    /// the response's start, minus the time spent waiting on upstreams.
    pub overhead: Histogram,
    outcomes: Outcomes,
    /// One list per serving thread (no contention), see [`crate::workers`].
    routes_ok: Box<[Mutex<Vec<RouteOk>>]>,
}

const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

/// The gateway's own time is microseconds to milliseconds.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// Bound label values so a client cannot blow up cardinality with huge names.
pub fn label(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Metrics {
    /// An empty registry with every series.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let histo = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
                labels,
            )
            .expect("metric");
            registry.register(Box::new(h.clone())).expect("register");
            h
        };
        let requests = counter(
            "moltgate_requests_total",
            "Chat completion requests by outcome (ok, error, client_error)",
            &["outcome"],
        );
        let request_duration = histo(
            "moltgate_request_duration_seconds",
            "Time until the response started (headers sent), by outcome",
            &["outcome"],
        );
        let upstream_requests = counter(
            "moltgate_upstream_requests_total",
            "Upstream attempts by provider, model and outcome (ok or error class)",
            &["provider", "model", "outcome"],
        );
        let upstream_latency = histo(
            "moltgate_upstream_latency_seconds",
            "Successful upstream attempt latency (full answer, or first content chunk when streaming)",
            &["provider", "model"],
        );
        let errors = counter(
            "moltgate_upstream_errors_total",
            "Upstream failures by provider and error class",
            &["provider", "class"],
        );
        let retries = counter(
            "moltgate_retries_total",
            "Retries of the same route",
            &["provider"],
        );
        let fallbacks = counter(
            "moltgate_fallbacks_total",
            "Moves from a failed route to the next one",
            &["from_provider"],
        );
        // The series keeps its first name: dashboards and alerts query it.
        let circuit_state = gauge(
            "moltgate_breaker_state",
            "Worst circuit state of a provider and its models: 0 closed, 1 half-open, 2 open",
            &["provider"],
        );
        let stream_aborts = counter(
            "moltgate_stream_aborts_total",
            "Streams ended with an error event after content had started",
            &["provider", "reason"],
        );
        let stream_resumes = counter(
            "moltgate_stream_resumes_total",
            "Streams that broke after content had started and were continued on a fallback (outcome: resumed, failed)",
            &["provider", "outcome"],
        );
        let security_incidents = counter(
            "moltgate_security_incidents_total",
            "Security incidents by kind (auth_failure, login_failure, firewall_block, auto_block, mode_change, ...)",
            &["kind"],
        );
        let security_state = gauge(
            "moltgate_security_state",
            "open_connections, active_bans, lockdown (0/1), kill_switch (0/1), dropped_incidents",
            &["what"],
        );
        let tokens = counter(
            "moltgate_tokens_total",
            "Tokens reported by providers (usage), by provider, model, key label and kind (input, output)",
            &["provider", "model", "key", "kind"],
        );
        let time_to_first_token = histo(
            "moltgate_time_to_first_token_seconds",
            "From the request's arrival to the first content chunk of a streamed answer",
            &["provider"],
        );
        let overhead = Histogram::with_opts(
            HistogramOpts::new(
                "moltgate_gateway_overhead_seconds",
                "The gateway's own time on a successful request (admission, firewall, parsing, routing), upstream waits excluded",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )
        .expect("metric");
        registry
            .register(Box::new(overhead.clone()))
            .expect("register");
        // CPU, memory, open files and threads of this process.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        Self {
            registry,
            security_incidents,
            security_state,
            tokens,
            time_to_first_token,
            overhead,
            requests,
            request_duration,
            upstream_requests,
            upstream_latency,
            errors,
            retries,
            fallbacks,
            circuit_state,
            stream_aborts,
            stream_resumes,
            outcomes: Outcomes {
                requests: Default::default(),
                duration: Default::default(),
            },
            routes_ok: (0..crate::workers::count())
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// Count a finished chat request, and observe how long it took to start
    /// answering (`None` for client errors, which are only counted).
    pub fn request_done(&self, outcome: Outcome, elapsed_secs: Option<f64>) {
        let i = outcome as usize;
        self.outcomes.requests[i]
            .get_or_init(|| self.requests.with_label_values(&[outcome.as_str()]))
            .inc();
        if let Some(secs) = elapsed_secs {
            self.outcomes.duration[i]
                .get_or_init(|| self.request_duration.with_label_values(&[outcome.as_str()]))
                .observe(secs);
        }
    }

    /// A successful upstream attempt: `upstream_requests{provider, model, "ok"}`
    /// and its latency. `model` is already bounded by [`label`].
    pub fn upstream_ok(&self, provider: &str, model: &str, secs: f64) {
        let slot = &self.routes_ok[crate::workers::index() % self.routes_ok.len()];
        let mut routes = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = routes
            .iter()
            .find(|r| r.model == model && r.provider == provider)
        {
            r.requests.inc();
            r.latency.observe(secs);
            return;
        }
        let requests = self
            .upstream_requests
            .with_label_values(&[provider, model, "ok"]);
        let latency = self.upstream_latency.with_label_values(&[provider, model]);
        requests.inc();
        latency.observe(secs);
        if routes.len() < ROUTE_CACHE {
            routes.push(RouteOk {
                provider: provider.to_owned(),
                model: model.to_owned(),
                requests,
                latency,
            });
        }
    }

    /// Counts the tokens of an OpenAI `usage` object (`prompt_tokens`,
    /// `completion_tokens`); nothing when absent.
    pub fn count_tokens(&self, provider: &str, model: &str, key: &str, usage: &Usage) {
        for (kind, n) in [
            ("input", usage.prompt_tokens),
            ("output", usage.completion_tokens),
        ] {
            if let Some(n) = n.filter(|n| *n > 0) {
                self.tokens
                    .with_label_values(&[provider, model, key, kind])
                    .inc_by(n);
            }
        }
    }

    /// Tokens counted so far, summed per provider: `(input, output)`.
    pub fn tokens_by_provider(&self) -> HashMap<String, (u64, u64)> {
        use prometheus::core::Collector;
        let mut out: HashMap<String, (u64, u64)> = HashMap::new();
        for family in self.tokens.collect() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.get_name() == name)
                        .map(|l| l.get_value().to_string())
                        .unwrap_or_default()
                };
                let n = m.get_counter().get_value().max(0.0) as u64;
                let e = out.entry(label("provider")).or_default();
                match label("kind").as_str() {
                    "input" => e.0 += n,
                    _ => e.1 += n,
                }
            }
        }
        out
    }

    /// The exposition text of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_summed_per_provider_over_models_and_keys() {
        let m = Metrics::new();
        let u = |i, o| Usage {
            prompt_tokens: Some(i),
            completion_tokens: o,
        };
        m.count_tokens("groq", "llama", "key-a", &u(10, Some(3)));
        m.count_tokens("groq", "mixtral", "key-b", &u(5, Some(2)));
        m.count_tokens("ollama", "qwen", "key-a", &u(7, None));
        let t = m.tokens_by_provider();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t["groq"], (15, 5));
        assert_eq!(t["ollama"], (7, 0));
    }
}
