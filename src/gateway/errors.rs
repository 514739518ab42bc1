//! Errors in the OpenAI shape (`{"error": {"message", "type", "param", "code"}}`)
//! with a message that names provider, model, what happened and what was tried.
//! An extra `attempts` array lists every attempt; SDKs ignore unknown fields.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::retry::Failure;

/// One attempt (or skipped route) in a request's chain.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    pub provider: String,
    pub model: String,
    /// Failure class, or "ok".
    pub outcome: &'static str,
    pub detail: String,
    pub elapsed_ms: u64,
    /// False for routes skipped without contacting the provider.
    pub sent: bool,
}

impl AttemptReport {
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
    pub fn line(&self) -> String {
        format!("{}/{}: {}", self.provider, self.model, self.detail)
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// OpenAI `type`: invalid_request_error, rate_limit_error, api_error, ...
    pub kind: &'static str,
    pub code: Option<String>,
    pub param: Option<String>,
    pub message: String,
    pub attempts: Vec<AttemptReport>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
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
