//! FHIR R4 search over a database value: the index key encodings and the scans answering each
//! query value ([`keys`]), the indexer hook that writes index entries and value blobs
//! ([`SearchIndexer`]), and query planning and execution, includes and sorting ([`Engine`]).
//! The engine is also the [`flint_terminology::CanonicalResolver`] of stored terminology: it
//! finds ValueSets and CodeSystems by their `url` parameter ([`canonical`]).
//!
//! The search semantics without a database (registry, extraction, query parsing, matching,
//! sort keys) are the crate `flint-search-core`; its modules and main types are re-exported
//! here under their usual paths (`flint_search::query`, `flint_search::Registry`, ...), so
//! users of search need one crate. Its error is wrapped in [`Error::Search`], next to
//! [`Error::Storage`] for storage faults.
//!
//! Where the split falls: the key encodings produce flint-db's `ValueMatch` scans and the
//! indexer hook implements flint-db's `ResourceIndexer` (returning `Indexed` entries), so both
//! are engine code here; those types stay in flint-db as the contract its search index
//! answers, and the core needs no flint-db at all. Sort keys ([`sort`]) and matching are pure
//! and stay in the core; the value-blob encoding is the engine's (it is an index format).

#![warn(missing_docs)]

pub mod canonical;
pub mod engine;
mod error;
pub mod keys;

pub use engine::{Engine, Matches, SearchIndexer};
pub use error::Error;

pub use flint_search_core::{
    BundleReport, Clause, Component, DateRange, GeoPoint, Include, IndexValue, Modifier,
    NeedsDatabase, NumberValue, ParamClause, ParamRef, ParamType, Prefix, QuantityValue, Query,
    QueryParser, QueryValue, ReferenceValue, Registry, ResultParams, SearchParam, SortKey,
    StringValue, TokenValue, Unsupported, Zone, parse_query,
};
pub use flint_search_core::{date, matching, normalize, query, registry, sort, value};
