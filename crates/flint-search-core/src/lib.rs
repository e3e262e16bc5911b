//! FHIR R4 search, the storage-independent half: the search parameter registry, extraction
//! of typed index values from resources, parsing of search URLs into typed clauses and a
//! reference implementation of matching. This crate reads no database (it does not depend on
//! flint-db): the engine (`flint-search`) stores the values [`Registry::extract`] yields in
//! its index keys and answers [`Query`] clauses with scans; [`Clause::matches`] states what
//! those scans must return.
//!
//! ```
//! use flint_search_core::{Registry, parse_query};
//! let registry = Registry::r4();
//! let patient = serde_json::json!({"resourceType": "Patient", "id": "p1", "birthDate": "2000-12-31"});
//! let values = registry.extract(&patient).unwrap();
//! let query = parse_query(&registry, "Patient", &[("birthdate".into(), "eq2000".into())]).unwrap();
//! let clause = &query.clauses[0];
//! let birthdate: Vec<_> = values.iter().filter(|(p, _)| p.code == "birthdate").map(|(_, v)| v.clone()).collect();
//! assert_eq!(clause.matches(&birthdate), Ok(true));
//! ```
//!
//! Modules, each documenting what it supports and what not:
//! - [`registry`]: all R4 parameters by type and code, custom bundles, compartments;
//! - [`value`] and [`date`]: the typed index values ([`IndexValue`]) and date intervals;
//! - extraction ([`Registry::extract`]): FHIRPath results to index values;
//! - [`query`]: URL parameters to clauses and result parameters ([`parse_query`]);
//! - [`matching`]: clause semantics over index values ([`Clause::matches`]);
//! - [`sort`]: sort keys for `_sort`;
//! - [`normalize`]: string normalisation.
//!
//! Index key encodings, scans and execution over a database value live in `flint-search`.
//!
//! `_lastUpdated` is registered and extracted from `meta.lastUpdated` when present; stored
//! resources carry no `meta.lastUpdated` (the database adds it from the transaction), so the
//! database answers it from its own time index, as Blaze does.

#![warn(missing_docs)]

pub mod date;
mod error;
mod extract;
pub mod matching;
pub mod normalize;
pub mod query;
pub mod registry;
pub mod sort;
pub mod value;

pub use date::{DateRange, Zone};
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
