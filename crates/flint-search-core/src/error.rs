//! Errors of building the registry, extracting index values and parsing queries.
//!
//! [`Error::is_ignorable`] tells which query errors a server may drop in lenient handling
//! (`Prefer: handling=lenient`): unknown or unsupported parameters and modifiers. All other
//! errors (malformed values, bad bundles, invalid resources) are always errors.
//!
//! Storage faults are not errors of this crate (it reads no database): the engine's error
//! (`flint_search::Error`) wraps this one next to its `Storage` variant.

/// An error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A query names a parameter the resource type does not have.
    #[error("unknown search parameter `{code}` for resource type `{resource_type}`")]
    UnknownParameter {
        /// The resource type searched.
        resource_type: String,
        /// The parameter name as given.
        code: String,
    },
    /// A query uses a modifier that does not exist or does not apply to the parameter type.
    #[error("unknown modifier `{modifier}` on search parameter `{code}`")]
    UnknownModifier {
        /// The parameter code.
        code: String,
        /// The modifier as given.
        modifier: String,
    },
    /// A parameter or feature is known but not supported by this server.
    #[error("search parameter `{code}` is not supported: {reason}")]
    Unsupported {
        /// The parameter name (with modifier, if any).
        code: String,
        /// Why it is unsupported.
        reason: String,
    },
    /// A parameter value is malformed.
    #[error("invalid value `{value}` of search parameter `{code}`: {reason}")]
    InvalidValue {
        /// The parameter name as given.
        code: String,
        /// The offending value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The resource type is not a FHIR R4 resource type.
    #[error("unknown resource type `{0}`")]
    UnknownResourceType(String),
    /// A resource given for extraction is not a resource object.
    #[error("invalid resource: {0}")]
    InvalidResource(String),
    /// A search parameter expression failed on a resource.
    #[error("search parameter `{url}` failed on the resource: {message}")]
    Evaluation {
        /// Canonical URL of the parameter.
        url: String,
        /// The FHIRPath error.
        message: String,
    },
    /// A custom SearchParameter bundle is malformed.
    #[error("invalid search parameter bundle: {0}")]
    InvalidBundle(String),
}

impl Error {
    /// Whether a lenient server may ignore the parameter causing this error (unknown or
    /// unsupported parameters and modifiers) instead of failing the request with 400.
    pub fn is_ignorable(&self) -> bool {
        matches!(
            self,
            Error::UnknownParameter { .. }
                | Error::UnknownModifier { .. }
                | Error::Unsupported { .. }
        )
    }

    pub(crate) fn invalid(code: &str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            code: code.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
