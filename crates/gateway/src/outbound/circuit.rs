//! Circuit breakers of the providers: after `failure_threshold` consecutive
//! failures a circuit is skipped for `cooldown`, then one probe request is
//! let through; success closes it, failure re-opens it.
//!
//! Each provider has one circuit for itself and one per model
//! ([`Circuits`]). A provider that cannot be reached (refused, reset before
//! any byte, connect timeout) fails for every model; a model that answers
//! badly (5xx, 429, a timeout, a cut or malformed answer) fails alone, so
//! three 503s on one model leave the provider's other models in service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use crate::config::CircuitConfig;

/// Where a circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests pass.
    Closed,
    /// Requests are refused until the cooldown ends.
    Open,
    /// One probe request passes; its outcome closes or opens the circuit again.
    HalfOpen,
}

impl CircuitState {
    /// The name, as status and the docs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
    /// Gauge value for `/metrics`: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probe_started: Option<Instant>,
}

/// One circuit: a provider's or one model's at a provider.
#[derive(Debug)]
pub struct Circuit {
    cfg: CircuitConfig,
    inner: Mutex<Inner>,
}

/// Why a request may not use the provider right now.
#[derive(Debug, Clone, Copy)]
pub struct Rejected {
    /// When the circuit may let a probe through.
    pub retry_in: Duration,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(cfg: CircuitConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                consecutive_failures: 0,
                open_until: None,
                probe_started: None,
            }),
        }
    }

    /// Current state, moving Open -> HalfOpen once the cool-down has passed.
    pub fn state(&self) -> CircuitState {
        let mut g = self.inner.lock().unwrap();
        Self::advance(&mut g);
        g.state
    }

    fn advance(g: &mut Inner) {
        if g.state == CircuitState::Open && g.open_until.is_some_and(|t| Instant::now() >= t) {
            g.state = CircuitState::HalfOpen;
            g.probe_started = None;
        }
    }

    /// Ask to send a request: `Ok(true)` when it is the half-open probe.
    /// In half-open state only one probe at a time; a probe whose outcome
    /// is never recorded expires after the cool-down (see [`Permit`] for
    /// the client that goes away, which frees it at once).
    pub fn try_acquire(&self) -> Result<bool, Rejected> {
        let mut g = self.inner.lock().unwrap();
        Self::advance(&mut g);
        let now = Instant::now();
        match g.state {
            CircuitState::Closed => Ok(false),
            CircuitState::Open => Err(Rejected {
                retry_in: g.open_until.map(|t| t - now).unwrap_or_default(),
            }),
            CircuitState::HalfOpen => match g.probe_started {
                Some(t) if now.duration_since(t) < self.cfg.cooldown => Err(Rejected {
                    retry_in: self.cfg.cooldown - now.duration_since(t),
                }),
                _ => {
                    g.probe_started = Some(now);
                    Ok(true)
                }
            },
        }
    }

    /// The probe ended with no verdict (its client went away): the next
    /// request may probe at once, without a new cool-down.
    fn release_probe(&self) {
        let mut g = self.inner.lock().unwrap();
        if g.state == CircuitState::HalfOpen {
            g.probe_started = None;
        }
    }

    /// The provider answered: the circuit closes.
    pub fn record_success(&self) {
        let mut g = self.inner.lock().unwrap();
        g.state = CircuitState::Closed;
        g.consecutive_failures = 0;
        g.open_until = None;
        g.probe_started = None;
    }

    /// A failure: the circuit opens at the threshold, or at once when half-open.
    pub fn record_failure(&self) {
        let mut g = self.inner.lock().unwrap();
        g.consecutive_failures = g.consecutive_failures.saturating_add(1);
        let trip = g.state == CircuitState::HalfOpen
            || g.consecutive_failures >= self.cfg.failure_threshold;
        if trip {
            g.state = CircuitState::Open;
            g.open_until = Some(Instant::now() + self.cfg.cooldown);
            g.probe_started = None;
        }
    }

    /// Failures in a row since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.inner.lock().unwrap().consecutive_failures
    }
}

/// Models with a circuit at most per provider: model names come from
/// requests, so a flood of names must not grow memory without bound.
const MAX_MODEL_CIRCUITS: usize = 256;

/// Where a failure belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The provider cannot be reached: every model fails.
    Provider,
    /// This model answered badly.
    Model,
}

/// A provider's circuit and its models' circuits.
#[derive(Debug)]
pub struct Circuits {
    cfg: CircuitConfig,
    provider: Circuit,
    models: Mutex<HashMap<String, Arc<Circuit>>>,
}

/// Leave to send one request for a model. Record its outcome with
/// [`Permit::success`] or [`Permit::failure`]; dropped without one (the
/// client went away mid-attempt), a half-open probe it held is freed.
#[must_use]
pub struct Permit<'a> {
    circuits: &'a Circuits,
    model: Arc<Circuit>,
    probes: Option<Blame>,
}

impl Circuits {
    /// A provider's circuits: its own, and one per model as models are asked for.
    pub fn new(cfg: CircuitConfig) -> Self {
        Self {
            cfg,
            provider: Circuit::new(cfg),
            models: Mutex::default(),
        }
    }

    /// The provider-wide circuit (what readiness looks at).
    pub fn provider(&self) -> &Circuit {
        &self.provider
    }

    fn model(&self, model: &str) -> Arc<Circuit> {
        let mut m = self.models.lock().unwrap();
        if let Some(b) = m.get(model) {
            return b.clone();
        }
        if m.len() >= MAX_MODEL_CIRCUITS {
            // Healthy circuits hold nothing worth keeping.
            m.retain(|_, b| b.state() != CircuitState::Closed || b.consecutive_failures() > 0);
        }
        let b = Arc::new(Circuit::new(self.cfg));
        if m.len() < MAX_MODEL_CIRCUITS {
            m.insert(model.to_string(), b.clone());
        }
        b
    }

    /// Ask to send a request for `model`: the provider's circuit first,
    /// then the model's.
    pub fn try_acquire(&self, model: &str) -> Result<Permit<'_>, Rejected> {
        let provider_probe = self.provider.try_acquire()?;
        let model_circuit = self.model(model);
        let model_probe = match model_circuit.try_acquire() {
            Ok(p) => p,
            Err(r) => {
                if provider_probe {
                    self.provider.release_probe();
                }
                return Err(r);
            }
        };
        Ok(Permit {
            circuits: self,
            model: model_circuit,
            probes: if provider_probe {
                Some(Blame::Provider)
            } else if model_probe {
                Some(Blame::Model)
            } else {
                None
            },
        })
    }

    /// A failure after the attempt was recorded a success (a stream that
    /// broke after its first content).
    pub fn record_failure(&self, model: &str, blame: Blame) {
        match blame {
            Blame::Provider => self.provider.record_failure(),
            Blame::Model => self.model(model).record_failure(),
        }
    }

    /// The worst state of the provider and its models (for the gauge).
    pub fn worst(&self) -> CircuitState {
        let mut worst = self.provider.state();
        for b in self.models.lock().unwrap().values() {
            if b.state().gauge() > worst.gauge() {
                worst = b.state();
            }
        }
        worst
    }

    /// Models whose circuit is not closed or has failures, by name.
    pub fn troubled_models(&self) -> Vec<(String, CircuitState, u32)> {
        let mut v: Vec<_> = self
            .models
            .lock()
            .unwrap()
            .iter()
            .map(|(m, b)| (m.clone(), b.state(), b.consecutive_failures()))
            .filter(|(_, s, n)| *s != CircuitState::Closed || *n > 0)
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl Permit<'_> {
    /// The model answered (whatever it said): both circuits are healthy.
    pub fn success(mut self) {
        self.probes = None;
        self.circuits.provider.record_success();
        self.model.record_success();
    }

    /// The attempt failed in a way that speaks of the provider's or the
    /// model's health.
    pub fn failure(mut self, blame: Blame) {
        self.probes = None;
        match blame {
            Blame::Provider => self.circuits.provider.record_failure(),
            Blame::Model => {
                // The provider answered: it is reachable.
                self.circuits.provider.record_success();
                self.model.record_failure();
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        match self.probes {
            Some(Blame::Provider) => self.circuits.provider.release_probe(),
            Some(Blame::Model) => self.model.release_probe(),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_probes_and_recovers() {
        let b = Circuit::new(CircuitConfig {
            failure_threshold: 2,
            cooldown: Duration::from_secs(5),
        });
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Closed);
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire().is_err());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire().is_ok());
        assert!(b.try_acquire().is_err(), "only one probe at a time");
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.try_acquire().is_ok());
        b.record_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.try_acquire().is_ok());
    }

    fn circuits() -> Circuits {
        Circuits::new(CircuitConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(30),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_model_opens_only_its_own_circuit() {
        let c = circuits();
        for _ in 0..3 {
            c.try_acquire("big").unwrap().failure(Blame::Model);
        }
        assert!(
            c.try_acquire("big").is_err(),
            "the failing model is skipped"
        );
        c.try_acquire("small")
            .expect("the provider's other models are served")
            .success();
        assert_eq!(c.provider().state(), CircuitState::Closed);
        assert_eq!(c.worst(), CircuitState::Open);
        assert_eq!(c.troubled_models()[0].0, "big");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_provider_opens_for_every_model() {
        let c = circuits();
        for m in ["a", "b", "c"] {
            c.try_acquire(m).unwrap().failure(Blame::Provider);
        }
        assert!(c.try_acquire("d").is_err());
        assert_eq!(c.provider().state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_its_client_abandons_frees_the_circuit_at_once() {
        let c = circuits();
        for _ in 0..3 {
            c.try_acquire("m").unwrap().failure(Blame::Model);
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        let probe = c.try_acquire("m").expect("half-open: one probe");
        assert!(c.try_acquire("m").is_err(), "one probe at a time");
        drop(probe); // the client disconnected mid-attempt
        let probe = c
            .try_acquire("m")
            .expect("the next request probes without a new cool-down");
        probe.success();
        assert_eq!(c.worst(), CircuitState::Closed);
        // The same for the provider's own probe.
        for _ in 0..3 {
            c.try_acquire("m").unwrap().failure(Blame::Provider);
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        drop(c.try_acquire("m").unwrap());
        assert!(c.try_acquire("m").is_ok());
    }

    #[test]
    fn model_circuits_are_bounded() {
        let c = circuits();
        for i in 0..1000 {
            c.try_acquire(&format!("m{i}")).unwrap().success();
        }
        assert!(c.models.lock().unwrap().len() <= MAX_MODEL_CIRCUITS);
    }
}
