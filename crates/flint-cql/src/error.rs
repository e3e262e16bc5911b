//! Errors: syntax errors with their position, and evaluation errors.

use thiserror::Error;

/// A syntax error at a line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error at {line}:{column}: {message}")]
pub struct SyntaxError {
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

/// A semantic error of a library (an unknown identifier or function, no overload matching
/// the argument types, a type mismatch), found by the type checker ([`crate::check`]) before
/// evaluation, at a line and column (both 1-based) of the library's source.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}error at {line}:{column}: {message}", library.as_ref().map(|l| format!("library {l}: ")).unwrap_or_default())]
pub struct SemanticError {
    /// The library (`Name` or `Name version 'v'`), when the error is in a named library.
    pub library: Option<String>,
    /// Line, 1-based (0 when the position is not known, e.g. a library read from ELM).
    pub line: usize,
    /// Column, 1-based (0 when not known).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Any error of parsing or evaluating CQL.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// The source does not parse.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// The library parses but is not well-typed (see [`crate::check`]).
    #[error(transparent)]
    Semantic(#[from] SemanticError),
    /// A run-time error (invalid operation, overflow of a value that must raise, bad call).
    #[error("evaluation error: {0}")]
    Eval(String),
    /// An error raised by `Message` with severity `Error`.
    #[error("message {code}: {message}")]
    Message {
        /// The message code.
        code: String,
        /// The message text.
        message: String,
    },
    /// The data provider failed (a storage fault, an unknown value set): never an empty
    /// result.
    #[error("data error: {0}")]
    Data(String),
    /// An ELM document that cannot be read (not JSON, an unsupported node type, a missing
    /// field), with the node's `type` and its location when the ELM has one.
    #[error("ELM error: {0}")]
    Elm(String),
    /// The evaluation ran out of its step budget.
    #[error("evaluation budget exhausted")]
    Budget,
    /// The caller stopped the evaluation ([`crate::eval::Context::stop`]).
    #[error("evaluation stopped")]
    Stopped,
}

/// Shorthand for an evaluation error.
pub fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Eval(msg.into()))
}
