//! Errors of the REST layer and their `OperationOutcome` form.

use axum::http::StatusCode;
use flint_db::{DbError, ErrorKind};
use flint_model::ModelError;
use serde_json::{Value, json};

/// An error answered to the client as an `OperationOutcome` with an HTTP status.
#[derive(Debug, Clone)]
pub struct FhirError {
    /// HTTP status of the answer.
    pub status: StatusCode,
    /// The OperationOutcome issue code (`invalid`, `not-found`, `conflict`, ...).
    pub code: &'static str,
    /// Human-readable explanation (`diagnostics`).
    pub message: String,
    /// FHIRPath of the offending element, if any.
    pub expression: Option<String>,
    /// Version `(t, instant)` to report in `ETag`/`Last-Modified` (410 Gone of a deletion).
    pub version: Option<(flint_db::T, i64)>,
}

impl FhirError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        FhirError {
            status,
            code,
            message: message.into(),
            expression: None,
            version: None,
        }
    }

    /// The same error pointing at `expression`.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// 400 `invalid`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 404 `not-found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    /// 422 `not-supported`: a valid request this server does not support.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "not-supported", message)
    }

    /// 405 for a method not allowed on a path.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "not-supported",
            format!("Method {method} is not allowed on `{path}`."),
        )
    }

    /// Prefixes the expression (e.g. with `Bundle.entry[3].resource`), replacing the resource
    /// type at the start of the element path.
    pub fn within(mut self, prefix: &str) -> Self {
        self.expression = Some(match self.expression.take() {
            Some(e) => match e.split_once('.') {
                Some((_, rest)) => format!("{prefix}.{rest}"),
                None => prefix.to_string(),
            },
            None => prefix.to_string(),
        });
        self
    }

    /// The error as an OperationOutcome resource.
    pub fn to_outcome(&self) -> Value {
        let mut issue = json!({
            "severity": "error",
            "code": self.code,
            "diagnostics": self.message,
        });
        if let Some(e) = &self.expression {
            issue["expression"] = json!([e]);
        }
        json!({"resourceType": "OperationOutcome", "issue": [issue]})
    }
}

impl From<DbError> for FhirError {
    fn from(e: DbError) -> Self {
        let (status, code) = match e.kind {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not-found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "conflict"),
            ErrorKind::Unprocessable => (StatusCode::UNPROCESSABLE_ENTITY, "not-supported"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "transient"),
            ErrorKind::Fault => (StatusCode::INTERNAL_SERVER_ERROR, "exception"),
        };
        match e.kind {
            ErrorKind::Fault => {
                metrics::counter!("flint_storage_errors_total", "kind" => "fault").increment(1);
                tracing::error!(error = %e.message, "storage fault");
            }
            ErrorKind::Unavailable => {
                metrics::counter!("flint_storage_errors_total", "kind" => "unavailable")
                    .increment(1);
                tracing::warn!(error = %e.message, "storage unavailable; answering 503");
            }
            _ => {}
        }
        FhirError {
            status,
            code,
            message: e.message,
            expression: e.expression,
            version: None,
        }
    }
}

impl From<ModelError> for FhirError {
    fn from(e: ModelError) -> Self {
        FhirError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            message: e.message,
            expression: e.expression,
            version: None,
        }
    }
}

/// A successful OperationOutcome with one informational issue.
pub fn info_outcome(message: &str) -> Value {
    json!({"resourceType": "OperationOutcome", "issue": [{
        "severity": "information", "code": "informational", "diagnostics": message
    }]})
}

/// Result type of the REST layer.
pub type FhirResult<T> = Result<T, FhirError>;
