//! Prometheus metrics, one registry per gateway instance (tests run several).
//! Labels carry provider names, model names and error classes only — never
//! keys, URLs or message text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_requests: IntCounterVec,
    pub upstream_latency: HistogramVec,
    pub errors: IntCounterVec,
    pub retries: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub breaker_state: IntGaugeVec,
    pub stream_aborts: IntCounterVec,
}

const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0,
];

/// Bound label values so a client cannot blow up cardinality with huge names.
pub fn label(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
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
        let breaker_state = IntGaugeVec::new(
            Opts::new(
                "moltgate_breaker_state",
                "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open",
            ),
            &["provider"],
        )
        .expect("metric");
        registry
            .register(Box::new(breaker_state.clone()))
            .expect("register");
        let stream_aborts = counter(
            "moltgate_stream_aborts_total",
            "Streams ended with an error event after content had started",
            &["provider", "reason"],
        );
        Self {
            registry,
            requests,
            request_duration,
            upstream_requests,
            upstream_latency,
            errors,
            retries,
            fallbacks,
            breaker_state,
            stream_aborts,
        }
    }

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
