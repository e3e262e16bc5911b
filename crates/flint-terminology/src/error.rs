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
    /// Reading the database failed (a storage fault: there is no answer, not an empty one).
    #[error("{0}")]
    Storage(#[from] DbError),
}
