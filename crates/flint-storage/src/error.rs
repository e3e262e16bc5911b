//! Errors of the database layer, with the category the REST layer maps to an HTTP status.

use serde::{Deserialize, Serialize};

/// The category of a database error; decides the HTTP status of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Malformed input (400).
    Invalid,
    /// Something does not exist (404).
    NotFound,
    /// Conflicting state, e.g. referential integrity or id collision (409).
    Conflict,
    /// A precondition such as `If-Match` failed (412).
    PreconditionFailed,
    /// The request is valid but too costly or not supported (422).
    Unprocessable,
    /// The storage is unavailable or overloaded (503).
    Unavailable,
    /// A storage fault that should not happen (500).
    Fault,
}

/// A database error: a category, a message and optionally the FHIRPath of the element at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// The category.
    pub kind: ErrorKind,
    /// A human-readable explanation.
    pub message: String,
    /// The offending element (e.g. `Bundle.entry[2].resource.subject`), if any.
    pub expression: Option<String>,
}

impl DbError {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        DbError {
            kind,
            message: message.into(),
            expression: None,
        }
    }

    /// The same error pointing at `expression`.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }

    /// A storage fault.
    pub fn fault(message: impl std::fmt::Display) -> Self {
        DbError::new(ErrorKind::Fault, message.to_string())
    }

    /// Storage unavailable.
    pub fn unavailable(message: impl std::fmt::Display) -> Self {
        DbError::new(ErrorKind::Unavailable, message.to_string())
    }
}

/// Result type of the database layer.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
