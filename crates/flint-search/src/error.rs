//! Errors of search over a database value: a problem of the search itself (registry,
//! extraction or query, [`flint_search_core::Error`]) or a storage fault.

/// An error of searching a database value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A search problem: the registry, a resource's values or the query (see
    /// [`flint_search_core::Error`] for which ones a lenient server may ignore).
    #[error(transparent)]
    Search(#[from] flint_search_core::Error),
    /// Reading the database failed (a storage fault: the search has no answer, not an empty
    /// one).
    #[error("{0}")]
    Storage(#[from] flint_db::DbError),
}

impl Error {
    /// Whether a lenient server may ignore the parameter causing this error (never for
    /// storage faults).
    pub fn is_ignorable(&self) -> bool {
        matches!(self, Error::Search(e) if e.is_ignorable())
    }
}
