//! FHIR R4 model: generated type tables, JSON and XML codecs, validation.
//!
//! A resource is a `serde_json::Value` object in *canonical form*: `resourceType` first, then
//! elements in the order the FHIR definitions give (the XML order), each primitive's `_name`
//! companion (its id and extensions) right after it, decimals keeping their text (serde_json's
//! `arbitrary_precision`). The JSON and XML parsers validate against the definitions in [`defs`]
//! and produce this form; the writers take it. Canonical JSON bytes are what the database
//! hashes and stores, so equal content gives equal bytes whatever the input format or order.

pub mod defs;
pub mod json;
pub mod refs;
pub mod subset;
pub mod validate;
pub mod xml;

/// A structural error in a resource: what is wrong and where (FHIRPath-style, e.g.
/// `Patient.name[0].given[1]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// Human-readable explanation.
    pub message: String,
    /// The offending element, if known.
    pub expression: Option<String>,
}

impl ModelError {
    /// An error at `expression`.
    pub fn at(message: impl Into<String>, expression: impl Into<String>) -> Self {
        ModelError {
            message: message.into(),
            expression: Some(expression.into()),
        }
    }

    /// An error not tied to an element.
    pub fn new(message: impl Into<String>) -> Self {
        ModelError {
            message: message.into(),
            expression: None,
        }
    }
}

/// Whether `s` is a valid resource id: 1 to 64 characters of `[A-Za-z0-9\-.]`.
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
