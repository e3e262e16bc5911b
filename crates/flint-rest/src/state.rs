//! The shared state of all requests: the database node, the settings, the search engine, the
//! CapabilityStatement built at startup, the cache of search result lists and that of
//! compiled definitions (GraphDefinitions).

use crate::capabilities::Capabilities;
use crate::config::RestConfig;
use crate::outcome::FhirResult;
use flint_db::Node;
use flint_search::Matches;
use std::sync::Arc;

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
    terminology_service: flint_terminology::TerminologyService<flint_search::Engine>,
    results: ResultCache,
    counts: CountCache,
    compiled: CompiledCache,
    capabilities: FhirResult<Capabilities>,
    profiled: std::sync::Mutex<Option<Profiled>>,
    measure: std::sync::OnceLock<MeasureEvaluation>,
    cql: std::sync::OnceLock<CqlEvaluation>,
    jobs: std::sync::OnceLock<flint_jobs::Scheduler>,
    admin: std::sync::OnceLock<AdminApi>,
}

/// The statement for the profiles stored at database value `t`.
struct Profiled {
    t: flint_db::T,
    profiles: Profiles,
    capabilities: Arc<Capabilities>,
}

/// Profile canonicals (`url|version`) by the resource type they constrain.
pub type Profiles = std::collections::BTreeMap<String, Vec<String>>;

/// What the admin API (`[base]/__admin`, `RestConfig::enable_admin_api`) shows and acts on:
/// the storage databases by name, the settings and the feature switches of the server.
#[derive(Clone, Default)]
pub struct AdminApi {
    /// The databases (`index`, `transaction`, `resource`, `admin-index`, ...) with their
    /// statistics and compaction.
    pub databases: Vec<(String, Arc<dyn flint_db::StoreAdmin>)>,
    /// The settings: `{"name", "value", "defaultValue"}` objects (secrets masked).
    pub settings: Vec<serde_json::Value>,
    /// The feature switches: `{"name", "toggle", "enabled"}` objects.
    pub features: Vec<serde_json::Value>,
}

impl AdminApi {
    /// The database named `name`.
    pub fn database(&self, name: &str) -> Option<&Arc<dyn flint_db::StoreAdmin>> {
        self.databases
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
    }
}

/// What `$evaluate-measure` evaluates with: the CQL engine and the settings.
#[derive(Clone)]
pub struct MeasureEvaluation {
    /// The expression evaluator (the CQL engine).
    pub evaluator: Arc<dyn flint_measure::ExpressionEvaluator>,
    /// Threads and report persistence.
    pub config: flint_measure::MeasureConfig,
}

/// What `$cql` and `Library/$evaluate` evaluate with: the CQL engine and the settings.
#[derive(Clone)]
pub struct CqlEvaluation {
    /// The CQL engine.
    pub service: Arc<dyn flint_measure::CqlService>,
    /// The time limit.
    pub config: flint_measure::CqlConfig,
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
        let capabilities = Capabilities::build(&config, engine.registry(), started_ms);
        if let Err(e) = &capabilities {
            tracing::error!(error = %e.message, "cannot build the CapabilityStatement");
        }
        AppState {
            inner: Arc::new(StateInner {
                node,
                config,
                terminology_service: flint_terminology::TerminologyService::new(engine.clone()),
                engine,
                terminology,
                results: result_cache(),
                counts: count_cache(),
                compiled: compiled_cache(),
                capabilities,
                profiled: std::sync::Mutex::new(None),
                measure: std::sync::OnceLock::new(),
                cql: std::sync::OnceLock::new(),
                jobs: std::sync::OnceLock::new(),
                admin: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The database node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The state with `jobs` running asynchronous requests over the admin database; without
    /// it `Prefer: respond-async` is answered synchronously. Only the first scheduler counts.
    pub fn with_jobs(self, jobs: flint_jobs::Scheduler) -> Self {
        let _ = self.inner.jobs.set(jobs);
        self
    }

    /// The state with `admin` behind the admin API (its databases, settings and features).
    /// Only the first one set counts.
    pub fn with_admin(self, admin: AdminApi) -> Self {
        let _ = self.inner.admin.set(admin);
        self
    }

    /// What the admin API shows (nothing when none was set).
    pub fn admin(&self) -> &AdminApi {
        static NONE: std::sync::OnceLock<AdminApi> = std::sync::OnceLock::new();
        self.inner
            .admin
            .get()
            .unwrap_or_else(|| NONE.get_or_init(AdminApi::default))
    }

    /// The job scheduler, if there is an admin database.
    pub fn jobs(&self) -> Option<&flint_jobs::Scheduler> {
        self.inner.jobs.get()
    }

    /// The state with `evaluator` answering `$evaluate-measure` with `config` (threads,
    /// report persistence); without one the operation answers 422 `not-supported`. Only the
    /// first evaluator set counts.
    pub fn with_measure_evaluator(
        self,
        evaluator: Arc<dyn flint_measure::ExpressionEvaluator>,
        config: flint_measure::MeasureConfig,
    ) -> Self {
        if self
            .inner
            .measure
            .set(MeasureEvaluation { evaluator, config })
            .is_err()
        {
            tracing::warn!("a measure evaluator was already set; the new one is ignored");
        }
        self
    }

    /// The evaluator of `$evaluate-measure`, if one was set.
    pub fn measure_evaluation(&self) -> Option<&MeasureEvaluation> {
        self.inner.measure.get()
    }

    /// The state with `service` answering `$cql` (when `RestConfig::enable_operation_cql`)
    /// and `Library/$evaluate` with `config` (the time limit); without one they answer 422
    /// `not-supported`. Only the first service set counts.
    pub fn with_cql_service(
        self,
        service: Arc<dyn flint_measure::CqlService>,
        config: flint_measure::CqlConfig,
    ) -> Self {
        if self
            .inner
            .cql
            .set(CqlEvaluation { service, config })
            .is_err()
        {
            tracing::warn!("a CQL service was already set; the new one is ignored");
        }
        self
    }

    /// The CQL engine of `$cql` and `Library/$evaluate`, if one was set.
    pub fn cql_evaluation(&self) -> Option<&CqlEvaluation> {
        self.inner.cql.get()
    }

    /// The settings.
    pub fn config(&self) -> &RestConfig {
        &self.inner.config
    }

    /// The search engine.
    pub fn engine(&self) -> &flint_search::Engine {
        &self.inner.engine
    }

    /// The terminology operations' service (stored, built-in and request CodeSystems,
    /// ValueSets and ConceptMaps).
    pub fn terminology_service(
        &self,
    ) -> &flint_terminology::TerminologyService<flint_search::Engine> {
        &self.inner.terminology_service
    }

    /// The terminology: ValueSet expansion and CodeSystem subsumption.
    pub fn terminology(&self) -> &dyn flint_terminology::Terminology {
        &*self.inner.terminology
    }

    /// Complete result lists of recent searches, by query and `t`.
    pub(crate) fn results(&self) -> &ResultCache {
        &self.inner.results
    }

    /// Totals of recent `_summary=count` searches, by query and `t`.
    pub(crate) fn counts(&self) -> &CountCache {
        &self.inner.counts
    }

    /// Compiled forms of stored definitions (GraphDefinitions of `$graph`), by the name of
    /// what compiled them and the content hash of the stored version.
    pub(crate) fn compiled(&self) -> &CompiledCache {
        &self.inner.compiled
    }

    /// The CapabilityStatement built when the state was created (dated then).
    pub fn capabilities(&self) -> FhirResult<&Capabilities> {
        self.inner.capabilities.as_ref().map_err(Clone::clone)
    }

    /// The statement kept for database value `t` by [`AppState::profiled_capabilities`], if
    /// that is the last one asked for.
    pub fn capabilities_at(&self, t: flint_db::T) -> Option<Arc<Capabilities>> {
        let kept = self
            .inner
            .profiled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        kept.as_ref()
            .filter(|p| p.t == t)
            .map(|p| p.capabilities.clone())
    }

    /// The statement listing `profiles`, those stored at database value `t`, as each type's
    /// `supportedProfile`; kept for `t` (and reused while the profiles stay the same).
    pub fn profiled_capabilities(
        &self,
        t: flint_db::T,
        profiles: Profiles,
    ) -> FhirResult<Arc<Capabilities>> {
        let reuse = {
            let kept = self
                .inner
                .profiled
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            kept.as_ref()
                .filter(|p| p.profiles == profiles)
                .map(|p| p.capabilities.clone())
        };
        let capabilities = match reuse {
            Some(c) => c,
            None if profiles.is_empty() => Arc::new(self.capabilities()?.clone()),
            None => Arc::new(self.capabilities()?.with_profiles(&profiles)?),
        };
        let mut kept = self
            .inner
            .profiled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if kept.as_ref().is_none_or(|p| p.t <= t) {
            *kept = Some(Profiled {
                t,
                profiles,
                capabilities: capabilities.clone(),
            });
        }
        Ok(capabilities)
    }

    /// The search parameter registry.
    pub fn registry(&self) -> &flint_search::Registry {
        self.inner.engine.registry()
    }
}

/// Complete result lists of searches (one segment per searched type), keyed by scope and
/// parameters (without the page size) and `t`; bounded by the memory they hold. A database
/// value never changes, so an entry is exact for as long as it lives; a write moves `t`.
pub(crate) type ResultCache = moka::sync::Cache<(String, flint_db::T), Arc<Vec<Matches>>>;

/// The cache of result lists: at most 128 MiB (about six million ids of 16 characters; every
/// list weighs at least 1 KiB with its key), idle ones dropped after ten minutes.
fn result_cache() -> ResultCache {
    moka::sync::Cache::builder()
        .weigher(|k: &(String, flint_db::T), v: &Arc<Vec<Matches>>| {
            let bytes: usize = v.iter().map(Matches::heap_bytes).sum::<usize>() + k.0.len();
            (bytes / 1024).clamp(1, u32::MAX as usize) as u32
        })
        .max_capacity(128 * 1024)
        .time_to_idle(std::time::Duration::from_secs(600))
        .build()
}

/// Totals of `_summary=count` searches, keyed like [`ResultCache`].
pub(crate) type CountCache = moka::sync::Cache<(String, flint_db::T), usize>;

/// The cache of totals: at most 100,000 queries, idle ones dropped after ten minutes.
fn count_cache() -> CountCache {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_idle(std::time::Duration::from_secs(600))
        .build()
}

/// Compiled forms of stored definition resources, kept per state because compiling may
/// depend on its settings (the search parameters): by the name of what compiled them (e.g.
/// `graph`) and the content hash of the stored version; each user downcasts its own values.
pub(crate) type CompiledCache =
    moka::sync::Cache<(&'static str, flint_db::ContentHash), Arc<dyn std::any::Any + Send + Sync>>;

/// The cache of compiled definitions: at most 1,024, idle ones dropped after an hour.
fn compiled_cache() -> CompiledCache {
    moka::sync::Cache::builder()
        .max_capacity(1024)
        .time_to_idle(std::time::Duration::from_secs(3600))
        .build()
}
