//! FHIR RESTful API over HTTP (axum): interactions, batch/transaction bundles, history,
//! capabilities, content negotiation and `OperationOutcome` errors.
//!
//! Requests are parsed once into a [`api::FhirRequest`] and answered by interaction functions
//! that return an [`api::Reply`]; the same functions answer the entries of batch and
//! transaction bundles. Writes are split into *prepare* (validate, hash, build the transaction
//! command) and *reply* (read the outcome from the database value at the transaction's `t`), so
//! a transaction bundle becomes one transaction-log entry.

pub mod api;
pub mod bundle;
pub mod capabilities;
pub mod format;
pub mod history;
pub mod http;
pub mod interaction;
pub mod outcome;
pub mod resource;
pub mod search;

use flint_db::Node;
use std::sync::Arc;

/// Settings of the REST layer.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// Public base URL without the context path (e.g. `http://localhost:8080`).
    pub base_url: String,
    /// Path of the FHIR API (e.g. `/fhir`).
    pub context_path: String,
    /// Refuse references to missing resources and deletes of referenced ones (409).
    pub enforce_referential_integrity: bool,
    /// Page size when `_count` is absent.
    pub default_page_size: usize,
    /// Largest accepted `_count`.
    pub max_page_size: usize,
    /// Largest accepted request body in bytes (then 413).
    pub max_body_size: usize,
    /// The storage variant's name, for the CapabilityStatement.
    pub storage: String,
    /// Conditional delete may delete more than one resource (`ALLOW_MULTIPLE_DELETE`).
    pub allow_multiple_delete: bool,
    /// Key sealing page links (all nodes serving one database need the same key).
    pub page_key: [u8; 32],
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            base_url: "http://localhost:8080".into(),
            context_path: "/fhir".into(),
            enforce_referential_integrity: true,
            default_page_size: 50,
            max_page_size: 10_000,
            max_body_size: 64 * 1024 * 1024,
            storage: "in-memory".into(),
            allow_multiple_delete: false,
            page_key: rand::random(),
        }
    }
}

/// Shared state of all requests.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    node: Node,
    config: RestConfig,
    engine: flint_search::Engine,
    terminology: Arc<dyn flint_terminology::Terminology>,
    results: search::ResultCache,
    capabilities: outcome::FhirResult<capabilities::Capabilities>,
}

impl AppState {
    /// State over a database node whose index was written by `engine`'s indexer; terminology
    /// comes from the ValueSets and CodeSystems stored in it.
    pub fn new(node: Node, config: RestConfig, engine: flint_search::Engine) -> Self {
        let terminology = Arc::new(flint_terminology::DbTerminology::new(engine.clone()));
        AppState::with_terminology(node, config, engine, terminology)
    }

    /// Like [`AppState::new`], with the terminology searches (`:in`, `:below`, ...) use.
    pub fn with_terminology(
        node: Node,
        mut config: RestConfig,
        engine: flint_search::Engine,
        terminology: Arc<dyn flint_terminology::Terminology>,
    ) -> Self {
        while config.base_url.ends_with('/') {
            config.base_url.pop();
        }
        let cp = config.context_path.trim_matches('/');
        config.context_path = if cp.is_empty() {
            String::new()
        } else {
            format!("/{cp}")
        };
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let capabilities =
            capabilities::Capabilities::build(&config, engine.registry(), started_ms);
        if let Err(e) = &capabilities {
            tracing::error!(error = %e.message, "cannot build the CapabilityStatement");
        }
        AppState {
            inner: Arc::new(StateInner {
                node,
                config,
                engine,
                terminology,
                results: search::result_cache(),
                capabilities,
            }),
        }
    }

    /// The database node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The settings.
    pub fn config(&self) -> &RestConfig {
        &self.inner.config
    }

    /// The search engine.
    pub fn engine(&self) -> &flint_search::Engine {
        &self.inner.engine
    }

    /// The terminology: ValueSet expansion and CodeSystem subsumption.
    pub fn terminology(&self) -> &dyn flint_terminology::Terminology {
        &*self.inner.terminology
    }

    /// Complete result lists of recent multi-page searches, by query and `t`.
    pub(crate) fn results(&self) -> &search::ResultCache {
        &self.inner.results
    }

    /// The CapabilityStatement built when the state was created (dated then).
    pub fn capabilities(&self) -> outcome::FhirResult<&capabilities::Capabilities> {
        self.inner.capabilities.as_ref().map_err(Clone::clone)
    }

    /// The search parameter registry.
    pub fn registry(&self) -> &flint_search::Registry {
        self.inner.engine.registry()
    }
}

pub use http::router;
