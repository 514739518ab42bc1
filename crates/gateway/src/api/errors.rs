//! Errors in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`)
//! with a message that names provider, model, what happened and what was tried.
//! An extra `attempts` array lists every attempt; SDKs ignore unknown fields.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::outbound::retry::{Failure, FailureClass};

/// One attempt (or skipped route) in a request's chain.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    /// The provider's configured name.
    pub provider: String,
    /// The model asked of it.
    pub model: String,
    /// What kind of failure it was.
    pub outcome: FailureClass,
    /// What happened, in words (secrets redacted).
    pub detail: String,
    /// How long it took.
    pub elapsed_ms: u64,
    /// False for routes skipped without contacting the provider.
    pub sent: bool,
}

impl AttemptReport {
    /// The report of an attempt that failed with `f`.
    pub fn failed(provider: &str, model: &str, f: &Failure, elapsed_ms: u64) -> Self {
        Self {
            provider: provider.to_string(),
            model: model.to_string(),
            outcome: f.class(),
            detail: f.describe(),
            elapsed_ms,
            sent: !matches!(f, Failure::CircuitOpen { .. } | Failure::KeyMissing { .. }),
        }
    }
    /// `provider/model: detail`, for the error message.
    pub fn line(&self) -> String {
        format!("{}/{}: {}", self.provider, self.model, self.detail)
    }
}

/// An error answer in the OpenAI shape, with the attempts behind it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI `type`: invalid_request_error, rate_limit_error, api_error, ...
    pub kind: &'static str,
    /// OpenAI `code`: a stable name for the error.
    pub code: Option<String>,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// What happened and what was tried, for people.
    pub message: String,
    /// Every attempt of the chain, in order.
    pub attempts: Vec<AttemptReport>,
    /// `Retry-After`, in seconds, when every provider is rate limiting.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `status`, OpenAI `kind` and `code`, and `message`.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code: Some(code.to_string()),
            param: None,
            message: message.into(),
            attempts: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid_request(param: Option<&str>, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        );
        e.param = param.map(str::to_string);
        e
    }

    /// The JSON body, also used as an SSE error event.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
                "attempts": self.attempts,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        let h = resp.headers_mut();
        h.insert(
            "x-moltgate-attempts",
            HeaderValue::from(self.attempts.iter().filter(|a| a.sent).count()),
        );
        if let Some(s) = self.retry_after_secs {
            h.insert("retry-after", HeaderValue::from(s));
        }
        resp
    }
}
