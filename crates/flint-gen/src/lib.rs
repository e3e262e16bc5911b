//! `flint-gen`: a deterministic generator of synthetic patient populations shaped like
//! Synthea's output (FHIR R4), written as one transaction bundle per patient and/or as NDJSON.
//!
//! Everything is a pure function of the seed and the patient index: each patient draws from its
//! own ChaCha8 stream, so patients can be generated in any order, on any number of threads, or
//! as a subset, and the bytes do not change.

#![warn(missing_docs)]

pub mod catalog;
pub mod codes;
pub mod compare;
pub mod json;
pub mod output;
pub mod patient;
pub mod rng;
pub mod time;
