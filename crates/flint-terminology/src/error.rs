//! Errors of expanding ValueSets and walking CodeSystems.

use flint_db::DbError;

/// An error of a [`crate::Terminology`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No ValueSet with this canonical url is known.
    #[error("No ValueSet with url `{0}` is stored")]
    UnknownValueSet(String),
    /// A ValueSet's `compose.include` filters a CodeSystem that is not known.
    #[error("ValueSet `{value_set}` filters CodeSystem `{system}`, which is not stored")]
    UnknownFilterSystem {
        /// The ValueSet's url as asked for.
        value_set: String,
        /// The filtered system.
        system: String,
    },
    /// A ValueSet uses a filter operator this implementation does not evaluate.
    #[error(
        "ValueSet `{value_set}` uses the filter operator `{op}`; only is-a and descendent-of \
         are supported"
    )]
    UnsupportedFilter {
        /// The ValueSet's url as asked for.
        value_set: String,
        /// The operator.
        op: String,
    },
    /// The canonical url cannot be looked up (the resolver refused it).
    #[error("{0}")]
    InvalidUrl(String),
    /// No CodeSystem with this canonical url is stored, built in or given.
    #[error("No CodeSystem with url `{0}` is known")]
    UnknownCodeSystem(String),
    /// No ConceptMap with this canonical url is stored or given.
    #[error("No ConceptMap with url `{0}` is known")]
    UnknownConceptMap(String),
    /// A code is not in the CodeSystem asked about.
    #[error("The code `{code}` is not in the CodeSystem `{system}`")]
    UnknownCode {
        /// The CodeSystem's url.
        system: String,
        /// The code.
        code: String,
        /// The operation parameter that named the code.
        parameter: String,
    },
    /// A request or a resource it uses is malformed (a filter without a property, nested
    /// value sets including each other, ...); `expression` names the offending parameter or
    /// element when known.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The parameter or element at fault.
        expression: Option<String>,
    },
    /// An expansion is larger than the configured limit.
    #[error(
        "The expansion of ValueSet `{value_set}` has {size} concepts, more than the limit of \
         {limit}; page it with `count` or narrow it with `filter`"
    )]
    TooCostly {
        /// The ValueSet's url (or `(given)` for one in the request).
        value_set: String,
        /// The size of the expansion.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Reading the database failed (a storage fault: there is no answer, not an empty one).
    #[error("{0}")]
    Storage(#[from] DbError),
}
