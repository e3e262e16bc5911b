//! Errors of compiling and evaluating FHIRPath expressions.

use std::fmt;

/// What kind of failure an [`Error`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The expression text is not valid FHIRPath.
    Syntax,
    /// The expression is well formed but meaningless (unknown function or type, wrong
    /// argument count, an element name that cannot exist).
    Semantic,
    /// Evaluation failed (a singleton was required, incompatible operand types, ...).
    Execution,
    /// The expression uses a feature this engine does not provide (e.g. `memberOf`).
    Unsupported,
}

/// A FHIRPath compilation or evaluation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The kind of failure.
    pub kind: ErrorKind,
    /// A human-readable description.
    pub message: String,
}

impl Error {
    /// A syntax error at byte offset `pos`.
    pub fn syntax(pos: usize, msg: impl fmt::Display) -> Error {
        Error {
            kind: ErrorKind::Syntax,
            message: format!("{msg} (at offset {pos})"),
        }
    }

    /// A semantic error.
    pub fn semantic(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Semantic,
            message: msg.into(),
        }
    }

    /// A semantic error at byte offset `pos` of the expression.
    pub fn semantic_at(pos: usize, msg: impl fmt::Display) -> Error {
        Error::semantic(format!("{msg} (at offset {pos})"))
    }

    /// An execution error.
    pub fn execution(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Execution,
            message: msg.into(),
        }
    }

    /// An unsupported-feature error.
    pub fn unsupported(msg: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Unsupported,
            message: msg.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Semantic => "semantic error",
            ErrorKind::Execution => "evaluation error",
            ErrorKind::Unsupported => "unsupported",
        };
        write!(f, "FHIRPath {kind}: {}", self.message)
    }
}

impl std::error::Error for Error {}
