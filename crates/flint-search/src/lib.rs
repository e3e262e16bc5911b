//! FHIR R4 search, the storage-independent half: the search parameter registry, extraction
//! of typed index values from resources, parsing of search URLs into typed clauses and a
//! reference implementation of matching.

#![warn(missing_docs)]

pub mod date;
mod error;
mod extract;
pub mod matching;
pub mod normalize;
pub mod query;
pub mod registry;
pub mod value;

pub use date::DateRange;
pub use error::Error;
pub use matching::NeedsDatabase;
pub use query::{
    Clause, Include, Modifier, ParamClause, Prefix, Query, QueryParser, QueryValue, ResultParams,
    SortKey, parse_query,
};
pub use registry::{
    BundleReport, Component, ParamRef, ParamType, Registry, SearchParam, Unsupported,
};
pub use value::{
    GeoPoint, IndexValue, NumberValue, QuantityValue, ReferenceValue, StringValue, TokenValue,
};
