//! FHIR RESTful API over HTTP (axum): interactions, batch/transaction bundles, history,
//! capabilities, content negotiation and `OperationOutcome` errors.
//!
//! Requests are parsed once into a [`api::FhirRequest`] and answered by interaction functions
//! that return an [`api::Reply`]; the same functions answer the entries of batch and
//! transaction bundles. Writes are split into *prepare* (validate, hash, build the transaction
//! command) and *reply* (read the outcome from the database value at the transaction's `t`), so
//! a transaction bundle becomes one transaction-log entry.
//!
//! # Module layering
//!
//! Modules only use modules of lower layers, so the module graph has no cycles
//! (`tests/layering.rs` checks it from the sources):
//!
//! 1. [`outcome`] (errors and their OperationOutcomes), [`resource`] (helpers on resources);
//!    above them [`definitions`] (the read-only base StructureDefinitions).
//! 2. [`format`](mod@format): content negotiation, encoding, `_summary`/`_elements`.
//! 3. [`api`] (the request and reply model), [`config`] (settings).
//! 4. [`capabilities`]: the CapabilityStatement, built from the settings.
//! 5. [`state`]: the shared state ([`AppState`]): node, settings, engine, statement, caches.
//! 6. [`context`]: the request context ([`context::Ctx`]), request parsing and checks.
//! 7. [`interaction`]: the single-resource interactions and the write pipeline.
//! 8. [`search`] and [`history`]: search and history, over the interactions' reads.
//! 9. [`conditional`]: conditional create, update and delete, over search and interactions.
//! 10. [`bundle`]: batch and transaction bundles; entries are routed through a dispatcher the
//!     caller passes in, so bundles do not depend on the routing above them.
//! 11. [`admin`]: the admin API under `__admin` and the jobs created through it (below
//!     the operations, since `$compact` uses its databases).
//! 12. [`operations`]: the `$name` operations, one file each, and their registry.
//! 13. [`http`]: the HTTP surface on top: request parsing, routing ([`http::dispatch`]) and
//!     rendering.
//!
//! The crate root only declares the modules and re-exports [`AppState`], [`RestConfig`] and
//! [`router`].

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod async_request;
pub mod bundle;
pub mod capabilities;
pub mod conditional;
pub mod config;
pub mod context;
pub mod definitions;
pub mod format;
pub mod history;
pub mod http;
pub mod interaction;
pub mod operations;
pub mod outcome;
pub mod resource;
pub mod search;
pub mod state;

pub use config::RestConfig;
pub use http::router;
pub use state::AppState;
