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
//! Modules only use modules of lower layers (or of their own layer, as listed), so the module
//! graph has no cycles:
//!
//! 1. Foundations: [`outcome`] (errors), [`resource`] (resource helpers), [`format`]
//!    (content negotiation, encoding, `_summary`/`_elements`), [`api`] (the request and
//!    reply model), [`config`] (settings).
//! 2. [`capabilities`]: the CapabilityStatement, built from the settings.
//! 3. [`state`]: the shared state ([`AppState`]): node, settings, engine, statement, caches.
//! 4. [`context`]: the request context ([`context::Ctx`]), request parsing and checks.
//! 5. [`interaction`]: the single-resource interactions and the write pipeline.
//! 6. [`search`] and [`history`]: search and history, over the interactions' reads.
//! 7. [`conditional`]: conditional create, update and delete, over search and interactions.
//! 8. [`bundle`]: batch and transaction bundles; entries are routed through a dispatcher the
//!    caller passes in, so bundles do not depend on the routing above them.
//! 9. [`operations`]: the `$name` operations, one file each, and their registry.
//! 10. [`http`]: the HTTP surface on top: request parsing, routing ([`http::dispatch`]) and
//!     rendering.
//!
//! The crate root only declares the modules and re-exports [`AppState`], [`RestConfig`] and
//! [`router`].

pub mod api;
pub mod bundle;
pub mod capabilities;
pub mod conditional;
pub mod config;
pub mod context;
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
