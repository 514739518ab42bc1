//! What went wrong with one upstream attempt, and what to do about it.
//!
//! | failure                         | action                              |
//! |---------------------------------|-------------------------------------|
//! | 5xx                             | retry (if retries left), else next  |
//! | refused / reset before any byte | retry (if retries left), else next  |
//! | 429 with short Retry-After      | wait, retry; long or none: next     |
//! | any timeout (silent upstream)   | next route, never the same one      |
//! | 400 context length / 413        | next route (maybe a bigger context) |
//! | 400 content policy              | stop, pass the reason on            |
//! | 401 / 403                       | skip every route on that provider   |
//! | 404 model not found             | next route                          |
//! | other 4xx                       | stop: the request itself is bad     |

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::circuit::Blame;

/// Which deadline of an attempt fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting.
    Connect,
    /// Waiting for the response headers (the first byte).
    Headers,
    /// Waiting between two pieces of the body.
    Idle,
    /// The attempt's whole time.
    Total,
}

impl Phase {
    fn describe(self) -> &'static str {
        match self {
            Phase::Connect => "could not connect",
            Phase::Headers => "sent no response headers",
            Phase::Idle => "went silent between chunks",
            Phase::Total => "did not finish",
        }
    }
}

/// What went wrong with one attempt (or why a route was not tried).
#[derive(Debug, Clone)]
pub enum Failure {
    /// A deadline fired. `overall` when the request's chain deadline was the binding one.
    Timeout {
        /// Which deadline.
        phase: Phase,
        /// After how long.
        ms: u64,
        /// The request's own deadline, not the attempt's.
        overall: bool,
    },
    /// Refused, reset or closed before any response byte.
    Connect {
        /// What the client library said (secrets redacted).
        detail: String,
    },
    /// The body was cut after it started.
    Cut {
        /// What the client library said (secrets redacted).
        detail: String,
    },
    /// 429.
    RateLimited {
        /// Its `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
        /// When that is, for messages.
        until: Option<DateTime<Utc>>,
    },
    /// 401 or 403: the key is wrong or lacks the right.
    Auth {
        /// The status.
        status: u16,
    },
    /// The prompt is too long for the model.
    ContextLength {
        /// The provider's message.
        message: String,
    },
    /// The provider's content policy refused the request.
    ContentPolicy {
        /// The provider's message.
        message: String,
    },
    /// 404: the provider has no such model.
    NotFound {
        /// The provider's message.
        message: String,
    },
    /// Another 4xx.
    BadRequest {
        /// The status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 5xx.
    Server {
        /// The status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// An answer that is not what the API promises (not JSON, no choices, ...).
    Malformed {
        /// What is wrong with it.
        detail: String,
    },
    /// Not sent: the circuit is open.
    CircuitOpen {
        /// When it lets a probe through.
        retry_in: Duration,
    },
    /// Not sent: the provider's key is missing or unreadable.
    KeyMissing {
        /// The name of the secret that should hold it.
        key_ref: String,
    },
}

/// What the chain does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The same route may succeed on another try.
    Retry,
    /// Go on with the next route.
    NextRoute,
    /// The provider's key is bad: skip all its routes.
    SkipProvider,
    /// Fail the request now (client-caused, retrying elsewhere won't help).
    Stop,
}

/// The kind of a [`Failure`], as attempt reports (`outcome`), metrics
/// (the error-class label) and logs name it; the final error is chosen by
/// the classes of every attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// A deadline fired.
    Timeout,
    /// No connection, or it closed before any response byte.
    Connect,
    /// The answer was cut after it started.
    Cut,
    /// 429.
    RateLimited,
    /// 401 or 403.
    Auth,
    /// The prompt is too long for the model.
    ContextLength,
    /// The provider's content policy refused it.
    ContentPolicy,
    /// 404: the provider has no such model.
    ModelNotFound,
    /// Another 4xx.
    BadRequest,
    /// 5xx.
    ServerError,
    /// An answer that is not what the API promises.
    Malformed,
    /// Skipped: the circuit is open.
    CircuitOpen,
    /// Skipped: the provider's key is missing or unreadable.
    KeyMissing,
}

impl FailureClass {
    /// Every class, in the order of the enum.
    pub const ALL: [FailureClass; 13] = [
        Self::Timeout,
        Self::Connect,
        Self::Cut,
        Self::RateLimited,
        Self::Auth,
        Self::ContextLength,
        Self::ContentPolicy,
        Self::ModelNotFound,
        Self::BadRequest,
        Self::ServerError,
        Self::Malformed,
        Self::CircuitOpen,
        Self::KeyMissing,
    ];

    /// The name, as a metrics label and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Cut => "cut",
            Self::RateLimited => "rate_limited",
            Self::Auth => "auth",
            Self::ContextLength => "context_length",
            Self::ContentPolicy => "content_policy",
            Self::ModelNotFound => "model_not_found",
            Self::BadRequest => "bad_request",
            Self::ServerError => "server_error",
            Self::Malformed => "malformed",
            Self::CircuitOpen => "circuit_open",
            Self::KeyMissing => "key_missing",
        }
    }

    /// What happened and what the chain does next, for people
    /// (docs/GATEWAY.md's table of outcomes is built from this).
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Timeout => "a deadline fired (connect, first byte, idle or total); next route, never the same one",
            Self::Connect => "refused, reset or closed before any byte; retried while retries last, then next route",
            Self::Cut => "the answer broke after it started; next route (a committed stream resumes there)",
            Self::RateLimited => "429; waited for and retried when `Retry-After` is short, else next route",
            Self::Auth => "401 or 403; every route on that provider is skipped",
            Self::ContextLength => "the prompt is too long for the model; next route (maybe a larger context)",
            Self::ContentPolicy => "the provider's content policy refused it; the request stops, with the reason",
            Self::ModelNotFound => "404, no such model at that provider; next route",
            Self::BadRequest => "another 4xx; the request stops: it is the request that is wrong",
            Self::ServerError => "5xx; retried while retries last, then next route",
            Self::Malformed => "an answer that is not what the API promises; next route",
            Self::CircuitOpen => "not sent: the circuit is open after repeated failures; next route",
            Self::KeyMissing => "not sent: the provider's key is missing or unreadable; its routes are skipped",
        }
    }
}

impl std::fmt::Display for FailureClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Failure {
    /// What kind of failure this is.
    pub fn class(&self) -> FailureClass {
        match self {
            Failure::Timeout { .. } => FailureClass::Timeout,
            Failure::Connect { .. } => FailureClass::Connect,
            Failure::Cut { .. } => FailureClass::Cut,
            Failure::RateLimited { .. } => FailureClass::RateLimited,
            Failure::Auth { .. } => FailureClass::Auth,
            Failure::ContextLength { .. } => FailureClass::ContextLength,
            Failure::ContentPolicy { .. } => FailureClass::ContentPolicy,
            Failure::NotFound { .. } => FailureClass::ModelNotFound,
            Failure::BadRequest { .. } => FailureClass::BadRequest,
            Failure::Server { .. } => FailureClass::ServerError,
            Failure::Malformed { .. } => FailureClass::Malformed,
            Failure::CircuitOpen { .. } => FailureClass::CircuitOpen,
            Failure::KeyMissing { .. } => FailureClass::KeyMissing,
        }
    }

    /// What to do next: a `Retry-After` over `max_retry_after` is not waited for.
    pub fn action(&self, max_retry_after: Duration) -> Action {
        match self {
            Failure::Server { .. } | Failure::Connect { .. } => Action::Retry,
            Failure::RateLimited {
                retry_after: Some(d),
                ..
            } if *d <= max_retry_after => Action::Retry,
            Failure::RateLimited { .. }
            | Failure::Timeout { .. }
            | Failure::Cut { .. }
            | Failure::Malformed { .. }
            | Failure::ContextLength { .. }
            | Failure::NotFound { .. }
            | Failure::CircuitOpen { .. } => Action::NextRoute,
            Failure::Auth { .. } | Failure::KeyMissing { .. } => Action::SkipProvider,
            Failure::ContentPolicy { .. } | Failure::BadRequest { .. } => Action::Stop,
        }
    }

    /// Whose health this failure speaks of (feeds the circuits): the
    /// provider's when it cannot be reached, else the model's; `None` when
    /// it answered (a 4xx is a healthy provider saying no).
    pub fn blame(&self) -> Option<Blame> {
        match self {
            Failure::Connect { .. }
            | Failure::Timeout {
                phase: Phase::Connect,
                ..
            } => Some(Blame::Provider),
            Failure::Timeout { .. }
            | Failure::Cut { .. }
            | Failure::Server { .. }
            | Failure::Malformed { .. }
            | Failure::RateLimited { .. } => Some(Blame::Model),
            _ => None,
        }
    }

    /// How long to wait before retrying the same route.
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        match self {
            Failure::RateLimited {
                retry_after: Some(d),
                ..
            } => *d,
            // Short jittered backoff: long enough to skip a blip, short
            // enough to leave budget for the fallbacks.
            _ => {
                let base = 50u64 << attempt.min(4);
                Duration::from_millis(base + rand::random::<u64>() % base)
            }
        }
    }

    /// One sentence a person can act on (no provider/model prefix).
    pub fn describe(&self) -> String {
        match self {
            Failure::Timeout { phase, ms, overall } => {
                if *overall {
                    format!("{} before the request's overall deadline ({ms} ms total budget left)", phase.describe())
                } else {
                    format!("{} within {ms} ms (timeout)", phase.describe())
                }
            }
            Failure::Connect { detail } => format!("connection failed before any response: {detail}"),
            Failure::Cut { detail } => format!("response was cut off: {detail}"),
            Failure::RateLimited { retry_after, until } => match (retry_after, until) {
                (_, Some(t)) => format!("rate limited (429) until {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                (Some(d), None) => format!("rate limited (429), retry after {} ms", d.as_millis()),
                _ => "rate limited (429), no Retry-After given".to_string(),
            },
            Failure::Auth { status } => format!(
                "API key rejected ({status}); check the key with `moltguard secrets set` and `moltgate check-config`"
            ),
            Failure::ContextLength { message } => format!("prompt too long for this model's context window: {message}"),
            Failure::ContentPolicy { message } => format!("refused by the provider's content policy: {message}"),
            Failure::NotFound { message } => format!("model not found: {message}"),
            Failure::BadRequest { status, message } => format!("rejected the request ({status}): {message}"),
            Failure::Server { status, message } => format!("server error ({status}): {message}"),
            Failure::Malformed { detail } => format!("sent a malformed response: {detail}"),
            Failure::CircuitOpen { retry_in } => format!(
                "skipped: circuit breaker open after repeated failures (next probe in {} ms)",
                retry_in.as_millis()
            ),
            Failure::KeyMissing { key_ref } => format!(
                "skipped: no API key found for {key_ref} (set it with `moltguard secrets set {key_ref}`)"
            ),
        }
    }
}

/// Parse `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<(Duration, DateTime<Utc>)> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            let d = Duration::from_secs_f64(secs.min(86_400.0));
            let until = Utc::now() + chrono::Duration::from_std(d).ok()?;
            return Some((d, until));
        }
        return None;
    }
    let t = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    let d = (t - Utc::now()).to_std().unwrap_or_default();
    Some((d, t))
}

/// Classify a non-2xx upstream answer from its status and (sanitised) message.
pub fn classify_status(
    status: u16,
    code: Option<&str>,
    message: String,
    retry_after: Option<&str>,
) -> Failure {
    let lower = message.to_ascii_lowercase();
    let code = code.unwrap_or("").to_ascii_lowercase();
    let context = code.contains("context_length")
        || lower.contains("context length")
        || lower.contains("context_length")
        || lower.contains("maximum context")
        || lower.contains("context window")
        || lower.contains("reduce the length")
        || lower.contains("too many tokens");
    let policy = code.contains("content_policy")
        || code.contains("content_filter")
        || lower.contains("content policy")
        || lower.contains("content management policy")
        || lower.contains("content_filter")
        || lower.contains("flagged");
    match status {
        401 | 403 => Failure::Auth { status },
        429 => {
            let parsed = retry_after.and_then(parse_retry_after);
            Failure::RateLimited {
                retry_after: parsed.map(|p| p.0),
                until: parsed.map(|p| p.1),
            }
        }
        413 => Failure::ContextLength { message },
        400..=499 if policy => Failure::ContentPolicy { message },
        400..=499 if context => Failure::ContextLength { message },
        404 => Failure::NotFound { message },
        400..=499 => Failure::BadRequest { status, message },
        _ => Failure::Server { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_classes_are_named_alike_in_json_and_labels() {
        for c in FailureClass::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, serde_json::json!(c.as_str()), "{c:?}");
        }
        let mut names: Vec<_> = FailureClass::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FailureClass::ALL.len(), "names are unique");
    }

    #[test]
    fn classification_and_actions() {
        let max = Duration::from_secs(2);
        let f = classify_status(
            400,
            Some("context_length_exceeded"),
            "too long".into(),
            None,
        );
        assert!(matches!(f, Failure::ContextLength { .. }));
        assert_eq!(f.action(max), Action::NextRoute);
        let f = classify_status(
            400,
            None,
            "Your request was flagged by our content policy".into(),
            None,
        );
        assert_eq!(f.action(max), Action::Stop);
        assert_eq!(
            classify_status(401, None, String::new(), None).action(max),
            Action::SkipProvider
        );
        assert_eq!(
            classify_status(503, None, String::new(), None).action(max),
            Action::Retry
        );
        assert_eq!(
            classify_status(429, None, String::new(), Some("1")).action(max),
            Action::Retry
        );
        assert_eq!(
            classify_status(429, None, String::new(), Some("60")).action(max),
            Action::NextRoute
        );
        assert_eq!(
            classify_status(429, None, String::new(), None).action(max),
            Action::NextRoute
        );
        let t = Failure::Timeout {
            phase: Phase::Headers,
            ms: 10,
            overall: false,
        };
        assert_eq!(t.action(max), Action::NextRoute);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2").unwrap().0, Duration::from_secs(2));
        let d = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(d.0, Duration::ZERO);
        assert!(parse_retry_after("soon").is_none());
    }
}
