//! The Flint server: reads the configuration, opens the storage variant, starts the database
//! node, the Prometheus exporter and the HTTP server, and shuts down gracefully on SIGTERM.
//! The `flint` binary is [`main`]; the end-to-end tests (crate `flint-e2e`) run the same
//! function as their server process.

mod config;

use config::{Config, Storage, VARIABLES};
use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{KvStore, Node, NodeConfig, ResourceStore, StoreAdmin, TxLog};
use flint_rest::{AppState, RestConfig};
use flint_rocksdb::{RocksConfig, RocksKv, RocksLog, RocksStore};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// mimalloc instead of the system allocator: search and indexing allocate many small, short-
/// lived values, and glibc's malloc showed up at 15–20 % of a counting profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn print_help() {
    println!("flint {}: a FHIR R4 server\n", env!("CARGO_PKG_VERSION"));
    println!("Configured with environment variables (blank or unset = default):\n");
    for (name, default, meaning) in VARIABLES {
        println!("  {name:<32} {meaning} (default: {default})");
    }
}

/// The opened storage: index, log, resource store, the page-link key, and the admin
/// database's index and log (it shares the resource store).
struct Parts {
    kv: Arc<dyn KvStore>,
    log: Arc<dyn TxLog>,
    store: Arc<dyn ResourceStore>,
    page_key: [u8; 32],
    admin_kv: Arc<dyn KvStore>,
    admin_log: Arc<dyn TxLog>,
    /// The databases the admin API shows (statistics, compaction), by name.
    databases: Vec<(String, Arc<dyn StoreAdmin>)>,
}

impl Parts {
    /// The parts of one storage variant.
    fn new(
        kv: Arc<dyn KvStore>,
        log: Arc<dyn TxLog>,
        store: Arc<dyn ResourceStore>,
        page_key: [u8; 32],
        admin_kv: Arc<dyn KvStore>,
        admin_log: Arc<dyn TxLog>,
    ) -> Parts {
        Parts {
            kv,
            log,
            store,
            page_key,
            admin_kv,
            admin_log,
            databases: Vec::new(),
        }
    }

    /// The parts with database `name` shown by the admin API.
    /// The parts of a variant whose five databases are all local (in-memory, standalone),
    /// each shown by the admin API.
    fn local<K, L, S>(
        kv: Arc<K>,
        log: Arc<L>,
        store: Arc<S>,
        page_key: [u8; 32],
        admin_kv: Arc<K>,
        admin_log: Arc<L>,
    ) -> Parts
    where
        K: KvStore + StoreAdmin + 'static,
        L: TxLog + StoreAdmin + 'static,
        S: ResourceStore + StoreAdmin + 'static,
    {
        Parts::new(
            kv.clone(),
            log.clone(),
            store.clone(),
            page_key,
            admin_kv.clone(),
            admin_log.clone(),
        )
        .show("index", kv)
        .show("transaction", log)
        .show("resource", store)
        .show("admin-index", admin_kv)
        .show("admin-transaction", admin_log)
    }

    fn show(mut self, name: &str, db: Arc<dyn StoreAdmin>) -> Parts {
        self.databases.push((name.to_string(), db));
        self
    }
}

/// The start-up error of a storage directory that does not open.
fn open_err(what: &str, dir: &std::path::Path, e: flint_db::DbError) -> String {
    format!("cannot open the {what} in {}: {e}", dir.display())
}

/// Opens the RocksDB index in `dir`; `what` names it and its variable in the error.
fn open_index(dir: &std::path::Path, rc: &RocksConfig, what: &str) -> Result<RocksKv, String> {
    RocksKv::open(dir, rc).map_err(|e| open_err(what, dir, e))
}

async fn open_storage(c: &Config) -> Result<Parts, String> {
    let key = page_key(c.page_secret.as_deref());
    match c.storage {
        Storage::InMemory => {
            let (kv, log, store) = (
                Arc::new(MemKv::new()),
                Arc::new(MemLog::new()),
                Arc::new(MemStore::new()),
            );
            let (admin_kv, admin_log) = (Arc::new(MemKv::new()), Arc::new(MemLog::new()));
            Ok(Parts::local(kv, log, store, key, admin_kv, admin_log))
        }
        Storage::Standalone => {
            let rc = RocksConfig::new(c.db_block_cache_size_mib * 1024 * 1024);
            let kv = Arc::new(open_index(&c.index_db_dir, &rc, "index (INDEX_DB_DIR)")?);
            let store = RocksStore::open(&c.resource_db_dir, &rc)
                .map_err(|e| open_err("resource store (RESOURCE_DB_DIR)", &c.resource_db_dir, e))?;
            // The log syncs the store's WAL before each append (one fsync per group commit).
            let log = Arc::new(
                RocksLog::open_syncing(&c.transaction_db_dir, &rc, &store).map_err(|e| {
                    open_err(
                        "transaction log (TRANSACTION_DB_DIR)",
                        &c.transaction_db_dir,
                        e,
                    )
                })?,
            );
            let admin_kv = Arc::new(open_index(
                &c.admin_index_db_dir,
                &rc,
                "admin index (ADMIN_INDEX_DB_DIR)",
            )?);
            let admin_log = Arc::new(
                RocksLog::open_syncing(&c.admin_transaction_db_dir, &rc, &store).map_err(|e| {
                    open_err(
                        "admin transaction log (ADMIN_TRANSACTION_DB_DIR)",
                        &c.admin_transaction_db_dir,
                        e,
                    )
                })?,
            );
            let store = Arc::new(store);
            Ok(Parts::local(kv, log, store, key, admin_kv, admin_log))
        }
        Storage::Distributed => {
            let rc = RocksConfig::new(c.db_block_cache_size_mib * 1024 * 1024);
            let kv = Arc::new(open_index(&c.index_db_dir, &rc, "index (INDEX_DB_DIR)")?);
            let log = flint_kafka::KafkaLog::open(c.kafka.clone())
                .await
                .map_err(|e| {
                    format!(
                        "Kafka (DB_KAFKA_BOOTSTRAP_SERVERS={}): {e}",
                        c.kafka.bootstrap_servers
                    )
                })?;
            let store = flint_cassandra::CassandraStore::open(&c.cassandra)
                .await
                .map_err(|e| {
                    format!(
                        "Cassandra (DB_CASSANDRA_CONTACT_POINTS={}): {e}",
                        c.cassandra.contact_points.join(",")
                    )
                })?;
            // Page links must open on every node: without PAGE_SECRET all nodes share a
            // random key kept in Cassandra.
            let key = match c.page_secret {
                Some(_) => key,
                None => store
                    .shared_secret("flint:page-key", rand::random())
                    .await
                    .map_err(|e| format!("Cassandra: cannot read the shared page key: {e}"))?,
            };
            let admin_kv = Arc::new(open_index(
                &c.admin_index_db_dir,
                &rc,
                "admin index (ADMIN_INDEX_DB_DIR)",
            )?);
            let admin_kafka = flint_kafka::KafkaConfig {
                topic: c.kafka_admin_topic.clone(),
                ..c.kafka.clone()
            };
            let admin_log = flint_kafka::KafkaLog::open(admin_kafka)
                .await
                .map_err(|e| {
                    format!(
                        "Kafka, admin topic (DB_KAFKA_ADMIN_TOPIC={}): {e}",
                        c.kafka_admin_topic
                    )
                })?;
            // Kafka and Cassandra keep their own statistics; the local indexes are shown.
            Ok(Parts::new(
                kv.clone(),
                Arc::new(log),
                Arc::new(store),
                key,
                admin_kv.clone(),
                Arc::new(admin_log),
            )
            .show("index", kv)
            .show("admin-index", admin_kv))
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// The search engine over the R4 parameters plus those of `DB_SEARCH_PARAM_BUNDLE`.
fn search_engine(c: &Config) -> Result<flint_search::Engine, String> {
    let mut registry = flint_search::Registry::r4();
    registry.set_zone(c.default_time_zone.clone());
    if let Some(path) = &c.search_param_bundle {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read {} (DB_SEARCH_PARAM_BUNDLE): {e}",
                path.display()
            )
        })?;
        let report = registry
            .add_bundle(&bytes)
            .map_err(|e| format!("{} (DB_SEARCH_PARAM_BUNDLE): {e}", path.display()))?;
        tracing::info!(
            added = report.added.len(),
            replaced = report.replaced.len(),
            unsupported = report.unsupported.len(),
            "custom search parameters loaded"
        );
    }
    // Absolute references on this server's base are compartment members too.
    Ok(flint_search::Engine::new(std::sync::Arc::new(registry))
        .with_local_bases(vec![format!("{}{}", c.base_url, c.context_path)]))
}

/// The page-link key: SHA-256 of `PAGE_SECRET`, or random (links then die with the process,
/// except in the distributed variant, where the nodes share one random key in Cassandra).
fn page_key(secret: Option<&str>) -> [u8; 32] {
    use sha2::Digest;
    match secret {
        Some(s) => sha2::Sha256::digest(s.as_bytes()).into(),
        None => rand::random(),
    }
}

async fn run(c: Config) -> Result<(), String> {
    let engine = search_engine(&c)?;
    let fingerprint = engine.index_fingerprint();
    let Parts {
        kv,
        log,
        store,
        page_key,
        admin_kv,
        admin_log,
        databases,
    } = open_storage(&c).await?;
    // The admin database (jobs, asynchronous requests) shares the resource store; it needs no
    // search index.
    let admin = Node::start(
        admin_kv,
        admin_log,
        store.clone(),
        NodeConfig {
            resource_cache_size: 1000,
            sync_timeout: c.db_sync_timeout,
            max_in_flight: c.db_max_in_flight_transactions,
            resource_indexer: None,
        },
    )
    .await
    .map_err(|e| format!("cannot start the admin database: {e}"))?;
    admin
        .sync()
        .await
        .map_err(|e| format!("cannot read the admin database: {e}"))?;
    let node = Node::start(
        kv,
        log,
        store,
        NodeConfig {
            resource_cache_size: c.db_resource_cache_size,
            sync_timeout: c.db_sync_timeout,
            max_in_flight: c.db_max_in_flight_transactions,
            resource_indexer: Some(engine.indexer()),
        },
    )
    .await
    .map_err(|e| format!("cannot start the database: {e}"))?;
    // Catch up with the log before serving (rebuilds a deleted index).
    let db = node.sync().await.or_else(|_| Ok::<_, String>(node.db()))?;
    // Search parameters changed since the index was built: re-index current resources.
    match node.reindex_if_changed(&fingerprint).await {
        Ok(Some(n)) => tracing::info!(
            resources = n,
            "search index rebuilt for changed search parameters"
        ),
        Ok(None) => {}
        Err(e) => return Err(format!("cannot re-index: {e}")),
    }
    // The base StructureDefinitions, once (later starts find them all and write nothing).
    if c.base_structure_definitions {
        let started = std::time::Instant::now();
        let base = format!("{}{}", c.base_url.trim_end_matches('/'), c.context_path);
        match flint_rest::definitions::install(&node, &base).await {
            Ok(n) => tracing::info!(
                written = n,
                ms = started.elapsed().as_millis() as u64,
                "base StructureDefinitions in place"
            ),
            Err(e) => return Err(format!("cannot write the base StructureDefinitions: {e}")),
        }
    }
    tracing::info!(t = db.t(), storage = c.storage.name(), "database ready");

    let metrics_addr = SocketAddr::from(([0, 0, 0, 0], c.metrics_server_port));
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(metrics_addr)
        .install()
        .map_err(|e| {
            format!("cannot start the metrics server on {metrics_addr} (METRICS_SERVER_PORT): {e}")
        })?;

    let measure_evaluator = Arc::new(
        flint_cql_db::CqlMeasureEvaluator::new(
            engine.clone(),
            Arc::new(flint_terminology::DbTerminology::new(engine.clone())),
        )
        .with_parsed_cache_size(c.cql_resource_cache_size),
    );
    // `$cql` and `Library/$evaluate` share the parsed resources of `$evaluate-measure`.
    let parsed = measure_evaluator.parsed_cache();
    let state = AppState::new(
        node.clone(),
        RestConfig {
            base_url: c.base_url.clone(),
            context_path: c.context_path.clone(),
            enforce_referential_integrity: c.enforce_referential_integrity,
            default_page_size: c.default_page_size,
            max_page_size: c.max_page_size,
            max_body_size: c.max_request_body_size,
            storage: c.storage.name().to_string(),
            allow_multiple_delete: c.allow_multiple_delete,
            page_key,
            enable_operation_cql: c.enable_operation_cql,
            everything_limit: flint_rest::config::EVERYTHING_LIMIT,
            enable_operation_graph: c.enable_operation_graph,
            export_file_size: c.export_max_file_resources,
            enable_admin_api: c.enable_admin_api,
            enable_operation_patient_purge: c.enable_operation_patient_purge,
            enable_interaction_delete_history: c.enable_interaction_delete_history,
            export_plan_delay: std::time::Duration::from_millis(c.export_plan_delay_ms),
            page_lifetime_ms: c.page_link_lifetime_ms,
            base_structure_definitions: c.base_structure_definitions,
            enable_terminology_service: c.enable_terminology_service,
            expand_max_size: c.expand_max_size,
        },
        engine.clone(),
    )
    .with_measure_evaluator(measure_evaluator, c.measure.clone())
    .with_cql_service(
        Arc::new(
            flint_cql_db::operations::CqlOperations::new(
                engine.clone(),
                Arc::new(flint_terminology::DbTerminology::new(engine)),
            )
            .with_timeout(c.measure.timeout)
            .with_parsed_cache(parsed),
        ),
        flint_measure::CqlConfig {
            timeout: c.measure.timeout,
        },
    )
    .with_jobs(flint_jobs::Scheduler::new(flint_jobs::JobStore::new(
        admin.clone(),
    )))
    .with_admin(flint_rest::state::AdminApi {
        databases,
        settings: config::settings(|n| std::env::var(n).ok()),
        features: c.features(),
    });
    // Asynchronous requests that were accepted or running when the server stopped run again.
    match flint_rest::http::resume_async_requests(&state).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(requests = n, "asynchronous requests resumed"),
        Err(e) => {
            return Err(format!(
                "cannot resume the asynchronous requests: {}",
                e.message
            ));
        }
    }
    let addr = SocketAddr::from(([0, 0, 0, 0], c.server_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (SERVER_PORT): {e}"))?;
    tracing::info!(%addr, base_url = %c.base_url, context_path = %c.context_path, "FHIR server listening");
    axum::serve(listener, flint_rest::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    node.shutdown().await;
    admin.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The whole server process: `--help`, configuration from the environment, logging, the
/// runtime and the server until shutdown; the exit code says how it ended (2: bad configuration).
pub fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        print_help();
        return ExitCode::SUCCESS;
    }
    let c = match Config::from_lookup(|n| std::env::var(n).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flint: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(format!(
                "{lvl},hyper=warn,h2=warn",
                lvl = c.log_level
            ))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flint: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(c)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("flint: {e}");
            ExitCode::FAILURE
        }
    }
}
