//! FHIR R4 search, the storage-independent half: the search parameter registry, extraction
//! of typed index values from resources, parsing of search URLs into typed clauses and a
//! reference implementation of matching.

#![warn(missing_docs)]

mod error;
pub mod normalize;
pub mod registry;

pub use error::Error;
pub use registry::{
    BundleReport, Component, ParamRef, ParamType, Registry, SearchParam, Unsupported,
};
