//! FHIR R4 model: generated type tables, JSON and XML codecs, validation.
//!
//! A resource is a `serde_json::Value` object in *canonical form*: elements in the order the FHIR
//! definitions give (the XML order), primitive extensions in `_name` companions, decimals keeping
//! their text (serde_json's `arbitrary_precision`). The JSON and XML parsers validate against the
//! definitions in [`defs`] and produce this form; the writers take it.

pub mod defs;
