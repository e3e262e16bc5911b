//! Configuration from environment variables, with Blaze's names and defaults. Every value is
//! checked at start-up; an invalid one stops the server with a message naming the variable.

use std::path::PathBuf;
use std::time::Duration;

/// The storage variant (`STORAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Everything in memory (the default).
    InMemory,
    /// Embedded RocksDB.
    Standalone,
    /// Kafka + Cassandra (not in this build yet).
    Distributed,
}

impl Storage {
    /// The variable's spelling of the variant.
    pub fn name(self) -> &'static str {
        match self {
            Storage::InMemory => "in-memory",
            Storage::Standalone => "standalone",
            Storage::Distributed => "distributed",
        }
    }
}

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `STORAGE`.
    pub storage: Storage,
    /// `BASE_URL`.
    pub base_url: String,
    /// `CONTEXT_PATH`.
    pub context_path: String,
    /// `SERVER_PORT`.
    pub server_port: u16,
    /// `METRICS_SERVER_PORT`.
    pub metrics_server_port: u16,
    /// `LOG_LEVEL`.
    pub log_level: String,
    /// `INDEX_DB_DIR`.
    pub index_db_dir: PathBuf,
    /// `TRANSACTION_DB_DIR`.
    pub transaction_db_dir: PathBuf,
    /// `ADMIN_INDEX_DB_DIR` (default: `admin-index` beside `INDEX_DB_DIR`).
    pub admin_index_db_dir: PathBuf,
    /// `ADMIN_TRANSACTION_DB_DIR` (default: `admin-transaction` beside `TRANSACTION_DB_DIR`).
    pub admin_transaction_db_dir: PathBuf,
    /// `DB_KAFKA_ADMIN_TOPIC`.
    pub kafka_admin_topic: String,
    /// `RESOURCE_DB_DIR`.
    pub resource_db_dir: PathBuf,
    /// `DB_BLOCK_CACHE_SIZE` in MiB.
    pub db_block_cache_size_mib: usize,
    /// `DB_RESOURCE_CACHE_SIZE`: number of resource contents cached.
    pub db_resource_cache_size: u64,
    /// `DB_SYNC_TIMEOUT` in ms.
    pub db_sync_timeout: Duration,
    /// `DB_MAX_IN_FLIGHT_TRANSACTIONS`.
    pub db_max_in_flight_transactions: usize,
    /// `ENFORCE_REFERENTIAL_INTEGRITY`.
    pub enforce_referential_integrity: bool,
    /// `ALLOW_MULTIPLE_DELETE`.
    pub allow_multiple_delete: bool,
    /// `DB_SEARCH_PARAM_BUNDLE`: a Bundle of custom SearchParameters, if set.
    pub search_param_bundle: Option<PathBuf>,
    /// `PAGE_SECRET`: seeds the page-link key; random per start when unset.
    pub page_secret: Option<String>,
    /// `MAX_REQUEST_BODY_SIZE` in bytes.
    pub max_request_body_size: usize,
    /// `FHIR_DEFAULT_PAGE_SIZE`.
    pub default_page_size: usize,
    /// `FHIR_MAX_PAGE_SIZE`.
    pub max_page_size: usize,
    /// `FHIR_DEFAULT_TIME_ZONE`: the zone date values without one are read in (search).
    pub default_time_zone: flint_search::Zone,
    /// Kafka settings (`DB_KAFKA_*`), used for `STORAGE=distributed`.
    pub kafka: flint_kafka::KafkaConfig,
    /// Cassandra settings (`DB_CASSANDRA_*`), used for `STORAGE=distributed`.
    pub cassandra: flint_cassandra::CassandraConfig,
    /// `$evaluate-measure` settings (`FHIR_OPERATION_EVALUATE_MEASURE_*`).
    pub measure: flint_measure::MeasureConfig,
    /// Parsed resources CQL evaluation keeps across requests (`CQL_RESOURCE_CACHE_SIZE`).
    pub cql_resource_cache_size: usize,
    /// `ENABLE_OPERATION_CQL`: offer `[base]/$cql`.
    pub enable_operation_cql: bool,
    /// `ENABLE_OPERATION_GRAPH`: offer `[base]/[type]/[id]/$graph`.
    pub enable_operation_graph: bool,
    /// `ENABLE_ADMIN_API`: offer `[base]/__admin` and `$compact`.
    pub enable_admin_api: bool,
    /// `ENABLE_OPERATION_PATIENT_PURGE`: offer `Patient/[id]/$purge`.
    pub enable_operation_patient_purge: bool,
    /// `ENABLE_INTERACTION_DELETE_HISTORY`: allow `DELETE [type]/[id]/_history`.
    pub enable_interaction_delete_history: bool,
    /// `PAGE_LINK_LIFETIME` in ms: how long search page links (and the kept parameters of
    /// long searches) live.
    pub page_link_lifetime_ms: i64,
    /// `FHIR_BASE_STRUCTURE_DEFINITIONS`: install the base StructureDefinitions, read-only.
    pub base_structure_definitions: bool,
    /// `FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES`: the most resources one `$export` file holds.
    pub export_max_file_resources: usize,
    /// `FLINT_TEST_EXPORT_PLAN_DELAY_MS` (a test hook, not listed among the settings): how
    /// long an `$export` job waits before planning; 0 by default.
    pub export_plan_delay_ms: u64,
    /// `ENABLE_TERMINOLOGY_SERVICE`: offer `$expand`, `$validate-code`, `$lookup`,
    /// `$subsumes` and `$translate`.
    pub enable_terminology_service: bool,
    /// `FHIR_OPERATION_EXPAND_MAX_SIZE`: the most members `ValueSet/$expand` answers without
    /// `count`.
    pub expand_max_size: usize,
}

/// Every variable the server reads, with its default and meaning (for `flint --help`).
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES",
        "100000",
        "the most resources one $export output file holds (more: Type.1.ndjson, Type.2.ndjson, ...)",
    ),
    (
        "FHIR_OPERATION_EVALUATE_MEASURE_THREADS",
        "",
        "subjects $evaluate-measure evaluates at once (blank: the number of CPUs)",
    ),
    (
        "FHIR_OPERATION_EVALUATE_MEASURE_TIMEOUT",
        "3600000",
        "ms one $evaluate-measure may take (then 503)",
    ),
    (
        "FHIR_OPERATION_EVALUATE_MEASURE_REPORT_PERSISTENCE",
        "true",
        "a POST $evaluate-measure stores its MeasureReport (201) instead of returning it (200)",
    ),
    (
        "CQL_RESOURCE_CACHE_SIZE",
        "200000",
        "parsed resources CQL evaluation keeps across requests (by content hash; 0 keeps one)",
    ),
    (
        "ENABLE_OPERATION_CQL",
        "false",
        "offer [base]/$cql, which evaluates any CQL expression over all data",
    ),
    (
        "ENABLE_OPERATION_GRAPH",
        "false",
        "offer [base]/[type]/[id]/$graph, which follows a stored GraphDefinition",
    ),
    (
        "ENABLE_ADMIN_API",
        "false",
        "offer the admin API [base]/__admin (settings, database statistics, jobs) and $compact",
    ),
    (
        "ENABLE_OPERATION_PATIENT_PURGE",
        "false",
        "offer Patient/[id]/$purge, which erases a patient's record with all its versions",
    ),
    (
        "ENABLE_INTERACTION_DELETE_HISTORY",
        "false",
        "allow DELETE [type]/[id]/_history, which erases every version but the current one",
    ),
    (
        "PAGE_LINK_LIFETIME",
        "86400000",
        "ms a search page link stays valid; parameters of searches too long for a link are kept that long",
    ),
    (
        "FHIR_BASE_STRUCTURE_DEFINITIONS",
        "true",
        "write the base StructureDefinitions of R4 into the database at first start, read-only",
    ),
    (
        "ENABLE_TERMINOLOGY_SERVICE",
        "false",
        "offer ValueSet/$expand, $validate-code, CodeSystem/$lookup, $subsumes, ConceptMap/$translate",
    ),
    (
        "FHIR_OPERATION_EXPAND_MAX_SIZE",
        "10000",
        "the most members ValueSet/$expand answers without count (more: 409 too-costly)",
    ),
    (
        "STORAGE",
        "in-memory",
        "in-memory | standalone | distributed",
    ),
    (
        "BASE_URL",
        "http://localhost:8080",
        "public base URL (X-Forwarded-* and Forwarded override it per request)",
    ),
    ("CONTEXT_PATH", "/fhir", "path of the FHIR API"),
    (
        "SERVER_PORT",
        "8080",
        "HTTP port of the FHIR API and /health",
    ),
    (
        "METRICS_SERVER_PORT",
        "8081",
        "HTTP port of the Prometheus /metrics endpoint",
    ),
    ("LOG_LEVEL", "info", "trace | debug | info | warn | error"),
    (
        "INDEX_DB_DIR",
        "data/index",
        "RocksDB directory of the index (standalone)",
    ),
    (
        "TRANSACTION_DB_DIR",
        "data/transaction",
        "RocksDB directory of the transaction log (standalone)",
    ),
    (
        "RESOURCE_DB_DIR",
        "data/resource",
        "RocksDB directory of the resource store (standalone)",
    ),
    (
        "ADMIN_INDEX_DB_DIR",
        "admin-index beside INDEX_DB_DIR",
        "RocksDB directory of the admin database's index (jobs, asynchronous requests)",
    ),
    (
        "ADMIN_TRANSACTION_DB_DIR",
        "admin-transaction beside TRANSACTION_DB_DIR",
        "RocksDB directory of the admin database's transaction log (standalone)",
    ),
    ("DB_BLOCK_CACHE_SIZE", "128", "RocksDB block cache in MiB"),
    (
        "DB_RESOURCE_CACHE_SIZE",
        "100000",
        "number of resource contents kept in memory",
    ),
    (
        "DB_SYNC_TIMEOUT",
        "10000",
        "ms a request waits for the index (then 503)",
    ),
    (
        "DB_MAX_IN_FLIGHT_TRANSACTIONS",
        "1024",
        "submitted but unindexed transactions per node (then 503)",
    ),
    (
        "ENFORCE_REFERENTIAL_INTEGRITY",
        "true",
        "refuse dangling local references and deletes of referenced resources",
    ),
    (
        "ALLOW_MULTIPLE_DELETE",
        "false",
        "conditional delete may delete several resources (at most 10,000)",
    ),
    (
        "DB_SEARCH_PARAM_BUNDLE",
        "",
        "JSON Bundle of custom SearchParameter resources",
    ),
    (
        "PAGE_SECRET",
        "",
        "secret sealing page links (same on every node; random per start if unset)",
    ),
    (
        "MAX_REQUEST_BODY_SIZE",
        "67108864",
        "largest request body in bytes (then 413)",
    ),
    ("FHIR_DEFAULT_PAGE_SIZE", "50", "page size without _count"),
    ("FHIR_MAX_PAGE_SIZE", "10000", "largest _count"),
    (
        "FHIR_DEFAULT_TIME_ZONE",
        "UTC",
        "zone of dates without one in resources and searches (IANA name or ±hh:mm)",
    ),
    (
        "DB_KAFKA_BOOTSTRAP_SERVERS",
        "localhost:9092",
        "Kafka brokers (distributed)",
    ),
    (
        "DB_KAFKA_TOPIC",
        "flint-tx",
        "the transaction-log topic: 1 partition, LogAppendTime, retention.ms=-1",
    ),
    (
        "DB_KAFKA_ADMIN_TOPIC",
        "flint-tx-admin",
        "the admin database's transaction-log topic (distributed; created like DB_KAFKA_TOPIC)",
    ),
    (
        "DB_KAFKA_MAX_REQUEST_SIZE",
        "1048576",
        "largest encoded transaction in bytes",
    ),
    (
        "DB_KAFKA_COMPRESSION_TYPE",
        "snappy",
        "none | gzip | snappy | lz4 | zstd",
    ),
    ("DB_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT | SSL"),
    (
        "DB_KAFKA_SSL_CA_LOCATION",
        "",
        "the CA that signed the broker certificates (SSL): PEM, JKS or PKCS#12",
    ),
    (
        "DB_KAFKA_SSL_CERTIFICATE_LOCATION",
        "",
        "PEM client certificate (SSL client authentication; or DB_KAFKA_SSL_KEYSTORE_LOCATION)",
    ),
    ("DB_KAFKA_SSL_KEY_LOCATION", "", "PEM client private key"),
    (
        "DB_KAFKA_SSL_KEY_PASSWORD",
        "",
        "password of the client key (a JKS key entry's or an encrypted PEM key's)",
    ),
    (
        "DB_KAFKA_SSL_TRUSTSTORE_LOCATION",
        "",
        "trust store of the broker CA: JKS, PKCS#12 or PEM (Blaze's name for DB_KAFKA_SSL_CA_LOCATION)",
    ),
    (
        "DB_KAFKA_SSL_TRUSTSTORE_PASSWORD",
        "",
        "password of the trust store (checks a JKS store, opens a PKCS#12 one)",
    ),
    (
        "DB_KAFKA_DELIVERY_TIMEOUT",
        "30000",
        "ms a write waits for the log to take its transaction (then 503)",
    ),
    (
        "DB_KAFKA_SSL_KEYSTORE_LOCATION",
        "",
        "client key store: JKS, PKCS#12 or PEM, by content (instead of the PEM pair)",
    ),
    (
        "DB_KAFKA_SSL_KEYSTORE_PASSWORD",
        "",
        "password of the client key store",
    ),
    (
        "DB_CASSANDRA_CONTACT_POINTS",
        "localhost:9042",
        "comma-separated host:port list (distributed)",
    ),
    ("DB_CASSANDRA_USERNAME", "cassandra", "Cassandra user"),
    ("DB_CASSANDRA_PASSWORD", "cassandra", "Cassandra password"),
    (
        "DB_CASSANDRA_KEY_SPACE",
        "flint",
        "keyspace with the resources and clauses tables",
    ),
    (
        "DB_CASSANDRA_PUT_CONSISTENCY_LEVEL",
        "TWO",
        "write consistency (ONE on a non-replicated keyspace)",
    ),
    (
        "DB_CASSANDRA_REQUEST_TIMEOUT",
        "2000",
        "ms per Cassandra request",
    ),
    (
        "DB_CASSANDRA_MAX_CONCURRENT_REQUESTS",
        "1024",
        "Cassandra requests in flight per node; more wait",
    ),
    (
        "DB_CASSANDRA_MAX_REQUEST_QUEUE_SIZE",
        "100000",
        "Cassandra requests waiting per node; more get 503",
    ),
];

/// The directory `name` in the parent directory of `dir` (`data/index` → `data/admin-index`).
fn beside(dir: &str, name: &str) -> PathBuf {
    match std::path::Path::new(dir).parent() {
        Some(p) => p.join(name),
        None => PathBuf::from(name),
    }
}

fn bad(name: &str, value: &str, expected: &str) -> String {
    format!("invalid value `{value}` of environment variable {name}: expected {expected}")
}

impl Config {
    /// Reads the configuration through `get` (normally `std::env::var`); blank means default.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |name: &str| -> String {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| {
                    VARIABLES
                        .iter()
                        .find(|(n, _, _)| *n == name)
                        .map(|(_, d, _)| d.to_string())
                        .unwrap_or_default()
                })
        };
        fn num<T: std::str::FromStr>(name: &str, v: String, expected: &str) -> Result<T, String> {
            v.parse().map_err(|_| bad(name, &v, expected))
        }
        let storage = match var("STORAGE").as_str() {
            "in-memory" => Storage::InMemory,
            "standalone" => Storage::Standalone,
            "distributed" => Storage::Distributed,
            v => return Err(bad("STORAGE", v, "in-memory, standalone or distributed")),
        };
        let base_url = var("BASE_URL");
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(bad("BASE_URL", &base_url, "an http:// or https:// URL"));
        }
        let context_path = var("CONTEXT_PATH");
        if context_path.contains(['?', '#', ' ']) {
            return Err(bad(
                "CONTEXT_PATH",
                &context_path,
                "a URL path such as /fhir",
            ));
        }
        let log_level = var("LOG_LEVEL").to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "error"].contains(&log_level.as_str()) {
            return Err(bad(
                "LOG_LEVEL",
                &log_level,
                "trace, debug, info, warn or error",
            ));
        }
        let boolean = |name: &str| -> Result<bool, String> {
            match var(name).to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                v => Err(bad(name, v, "true or false")),
            }
        };
        let enforce = boolean("ENFORCE_REFERENTIAL_INTEGRITY")?;
        let optional = |name: &str| Some(var(name)).filter(|v| !v.is_empty());
        // A variable whose default is derived from another one: only its given value.
        let given = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let positive = |name: &str| -> Result<usize, String> {
            let v: usize = num(name, var(name), "a positive integer")?;
            if v == 0 {
                return Err(bad(name, "0", "a positive integer"));
            }
            Ok(v)
        };
        let port =
            |name: &str| -> Result<u16, String> { num(name, var(name), "a port number 0-65535") };
        let measure = flint_measure::MeasureConfig {
            threads: match optional("FHIR_OPERATION_EVALUATE_MEASURE_THREADS") {
                Some(_) => positive("FHIR_OPERATION_EVALUATE_MEASURE_THREADS")?,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            report_persistence: boolean("FHIR_OPERATION_EVALUATE_MEASURE_REPORT_PERSISTENCE")?,
            timeout: Some(Duration::from_millis(
                positive("FHIR_OPERATION_EVALUATE_MEASURE_TIMEOUT")? as u64,
            )),
        };
        Ok(Config {
            measure,
            export_max_file_resources: positive("FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES")?,
            export_plan_delay_ms: match given("FLINT_TEST_EXPORT_PLAN_DELAY_MS") {
                Some(v) => num(
                    "FLINT_TEST_EXPORT_PLAN_DELAY_MS",
                    v.trim().to_string(),
                    "a number of milliseconds",
                )?,
                None => 0,
            },
            cql_resource_cache_size: num(
                "CQL_RESOURCE_CACHE_SIZE",
                var("CQL_RESOURCE_CACHE_SIZE"),
                "a number of resources",
            )?,
            enable_operation_cql: boolean("ENABLE_OPERATION_CQL")?,
            enable_operation_graph: boolean("ENABLE_OPERATION_GRAPH")?,
            enable_admin_api: boolean("ENABLE_ADMIN_API")?,
            enable_operation_patient_purge: boolean("ENABLE_OPERATION_PATIENT_PURGE")?,
            enable_interaction_delete_history: boolean("ENABLE_INTERACTION_DELETE_HISTORY")?,
            page_link_lifetime_ms: positive("PAGE_LINK_LIFETIME")? as i64,
            base_structure_definitions: boolean("FHIR_BASE_STRUCTURE_DEFINITIONS")?,
            enable_terminology_service: boolean("ENABLE_TERMINOLOGY_SERVICE")?,
            expand_max_size: positive("FHIR_OPERATION_EXPAND_MAX_SIZE")?,
            storage,
            base_url,
            context_path,
            server_port: port("SERVER_PORT")?,
            metrics_server_port: port("METRICS_SERVER_PORT")?,
            log_level,
            index_db_dir: PathBuf::from(var("INDEX_DB_DIR")),
            transaction_db_dir: PathBuf::from(var("TRANSACTION_DB_DIR")),
            resource_db_dir: PathBuf::from(var("RESOURCE_DB_DIR")),
            admin_index_db_dir: given("ADMIN_INDEX_DB_DIR").map_or_else(
                || beside(&var("INDEX_DB_DIR"), "admin-index"),
                PathBuf::from,
            ),
            admin_transaction_db_dir: given("ADMIN_TRANSACTION_DB_DIR").map_or_else(
                || beside(&var("TRANSACTION_DB_DIR"), "admin-transaction"),
                PathBuf::from,
            ),
            kafka_admin_topic: var("DB_KAFKA_ADMIN_TOPIC"),
            db_block_cache_size_mib: num(
                "DB_BLOCK_CACHE_SIZE",
                var("DB_BLOCK_CACHE_SIZE"),
                "a size in MiB",
            )?,
            db_resource_cache_size: num(
                "DB_RESOURCE_CACHE_SIZE",
                var("DB_RESOURCE_CACHE_SIZE"),
                "a number of resources",
            )?,
            db_sync_timeout: Duration::from_millis(positive("DB_SYNC_TIMEOUT")? as u64),
            db_max_in_flight_transactions: positive("DB_MAX_IN_FLIGHT_TRANSACTIONS")?,
            enforce_referential_integrity: enforce,
            allow_multiple_delete: boolean("ALLOW_MULTIPLE_DELETE")?,
            search_param_bundle: optional("DB_SEARCH_PARAM_BUNDLE").map(PathBuf::from),
            page_secret: optional("PAGE_SECRET"),
            max_request_body_size: positive("MAX_REQUEST_BODY_SIZE")?,
            default_page_size: positive("FHIR_DEFAULT_PAGE_SIZE")?,
            max_page_size: positive("FHIR_MAX_PAGE_SIZE")?,
            default_time_zone: flint_search::Zone::parse(&var("FHIR_DEFAULT_TIME_ZONE")).map_err(
                |e| {
                    bad(
                        "FHIR_DEFAULT_TIME_ZONE",
                        &var("FHIR_DEFAULT_TIME_ZONE"),
                        &format!("UTC, an IANA time zone or ±hh:mm ({e})"),
                    )
                },
            )?,
            kafka: flint_kafka::KafkaConfig {
                bootstrap_servers: var("DB_KAFKA_BOOTSTRAP_SERVERS"),
                topic: var("DB_KAFKA_TOPIC"),
                max_request_size: positive("DB_KAFKA_MAX_REQUEST_SIZE")?,
                compression_type: match var("DB_KAFKA_COMPRESSION_TYPE")
                    .to_ascii_lowercase()
                    .as_str()
                {
                    c @ ("none" | "gzip" | "snappy" | "lz4") => c.to_string(),
                    "zstd" if cfg!(feature = "kafka-zstd") => "zstd".to_string(),
                    c => {
                        return Err(bad(
                            "DB_KAFKA_COMPRESSION_TYPE",
                            c,
                            if cfg!(feature = "kafka-zstd") {
                                "none, gzip, snappy, lz4 or zstd"
                            } else {
                                "none, gzip, snappy or lz4 (built without kafka-zstd)"
                            },
                        ));
                    }
                },
                security_protocol: match var("DB_KAFKA_SECURITY_PROTOCOL")
                    .to_ascii_uppercase()
                    .as_str()
                {
                    p @ ("PLAINTEXT" | "SSL") => p.to_string(),
                    p => return Err(bad("DB_KAFKA_SECURITY_PROTOCOL", p, "PLAINTEXT or SSL")),
                },
                ssl: flint_kafka::KafkaSsl {
                    ca_location: var("DB_KAFKA_SSL_CA_LOCATION"),
                    truststore_location: var("DB_KAFKA_SSL_TRUSTSTORE_LOCATION"),
                    truststore_password: var("DB_KAFKA_SSL_TRUSTSTORE_PASSWORD"),
                    certificate_location: var("DB_KAFKA_SSL_CERTIFICATE_LOCATION"),
                    key_location: var("DB_KAFKA_SSL_KEY_LOCATION"),
                    key_password: var("DB_KAFKA_SSL_KEY_PASSWORD"),
                    keystore_location: var("DB_KAFKA_SSL_KEYSTORE_LOCATION"),
                    keystore_password: var("DB_KAFKA_SSL_KEYSTORE_PASSWORD"),
                },
                request_timeout: Duration::from_millis(
                    positive("DB_KAFKA_DELIVERY_TIMEOUT")? as u64
                ),
                end_offset_timeout: Duration::from_millis(positive("DB_SYNC_TIMEOUT")? as u64),
            },
            cassandra: flint_cassandra::CassandraConfig {
                contact_points: var("DB_CASSANDRA_CONTACT_POINTS")
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                username: var("DB_CASSANDRA_USERNAME"),
                password: var("DB_CASSANDRA_PASSWORD"),
                keyspace: {
                    let ks = var("DB_CASSANDRA_KEY_SPACE");
                    if ks.is_empty() || !ks.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(bad(
                            "DB_CASSANDRA_KEY_SPACE",
                            &ks,
                            "a keyspace name of letters, digits and _",
                        ));
                    }
                    ks
                },
                put_consistency: {
                    let c = var("DB_CASSANDRA_PUT_CONSISTENCY_LEVEL");
                    if flint_cassandra::parse_consistency(&c).is_none() {
                        return Err(bad(
                            "DB_CASSANDRA_PUT_CONSISTENCY_LEVEL",
                            &c,
                            "ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM or LOCAL_ONE",
                        ));
                    }
                    c
                },
                request_timeout: Duration::from_millis(
                    positive("DB_CASSANDRA_REQUEST_TIMEOUT")? as u64
                ),
                max_concurrent_requests: positive("DB_CASSANDRA_MAX_CONCURRENT_REQUESTS")?,
                max_request_queue_size: num(
                    "DB_CASSANDRA_MAX_REQUEST_QUEUE_SIZE",
                    var("DB_CASSANDRA_MAX_REQUEST_QUEUE_SIZE"),
                    "a number of requests",
                )?,
            },
        })
    }
}

/// The settings the admin API lists: every variable of [`VARIABLES`] with its value as read
/// through `get` (absent or blank: none) and its default; values of variables whose name
/// contains `SECRET` or `PASSWORD` are masked.
pub fn settings(get: impl Fn(&str) -> Option<String>) -> Vec<serde_json::Value> {
    VARIABLES
        .iter()
        .map(|(name, default, _)| {
            let secret = name.contains("SECRET") || name.contains("PASSWORD");
            let value = get(name).filter(|v| !v.trim().is_empty());
            let shown = |v: &str| {
                if secret && !v.is_empty() {
                    "[hidden]".to_string()
                } else {
                    v.to_string()
                }
            };
            let mut s = serde_json::json!({"name": name, "defaultValue": shown(default)});
            if let Some(v) = value {
                s["value"] = serde_json::json!(shown(&v));
            }
            s
        })
        .collect()
}

impl Config {
    /// The feature switches the admin API lists: name, variable and whether it is on.
    pub fn features(&self) -> Vec<serde_json::Value> {
        [
            ("Admin API", "ENABLE_ADMIN_API", self.enable_admin_api),
            (
                "Operation $cql",
                "ENABLE_OPERATION_CQL",
                self.enable_operation_cql,
            ),
            (
                "Operation $graph",
                "ENABLE_OPERATION_GRAPH",
                self.enable_operation_graph,
            ),
            (
                "Operation Patient $purge",
                "ENABLE_OPERATION_PATIENT_PURGE",
                self.enable_operation_patient_purge,
            ),
            (
                "Interaction Delete History",
                "ENABLE_INTERACTION_DELETE_HISTORY",
                self.enable_interaction_delete_history,
            ),
            (
                "Terminology Service",
                "ENABLE_TERMINOLOGY_SERVICE",
                self.enable_terminology_service,
            ),
            (
                "Referential Integrity",
                "ENFORCE_REFERENTIAL_INTEGRITY",
                self.enforce_referential_integrity,
            ),
            (
                "Multiple Delete",
                "ALLOW_MULTIPLE_DELETE",
                self.allow_multiple_delete,
            ),
        ]
        .iter()
        .map(
            |(name, toggle, on)| serde_json::json!({"name": name, "toggle": toggle, "enabled": on}),
        )
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_show_values_and_defaults_and_mask_secrets() {
        let env: HashMap<&str, &str> = [
            ("STORAGE", "standalone"),
            ("PAGE_SECRET", "s3cret"),
            ("DB_CASSANDRA_PASSWORD", "pw"),
        ]
        .into_iter()
        .collect();
        let s = settings(|n| env.get(n).map(|v| v.to_string()));
        assert_eq!(s.len(), VARIABLES.len());
        let find = |n: &str| s.iter().find(|x| x["name"] == n).unwrap().clone();
        assert_eq!(find("STORAGE")["value"], "standalone");
        assert_eq!(find("STORAGE")["defaultValue"], "in-memory");
        assert_eq!(find("PAGE_SECRET")["value"], "[hidden]");
        assert_eq!(find("DB_CASSANDRA_PASSWORD")["value"], "[hidden]");
        assert_eq!(find("DB_CASSANDRA_PASSWORD")["defaultValue"], "[hidden]");
        assert!(find("BASE_URL").get("value").is_none());
        assert!(
            !serde_json::Value::Array(s.clone())
                .to_string()
                .contains("s3cret")
        );
        let c = cfg(&[("ENABLE_ADMIN_API", "true")]).unwrap();
        assert!(c.enable_admin_api && !cfg(&[]).unwrap().enable_admin_api);
        let f = c.features();
        assert!(
            f.iter()
                .any(|x| x["toggle"] == "ENABLE_ADMIN_API" && x["enabled"] == true)
        );
    }

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|n| m.get(n).cloned())
    }

    #[test]
    fn defaults_match_blaze() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.storage, Storage::InMemory);
        assert_eq!((c.server_port, c.metrics_server_port), (8080, 8081));
        assert_eq!(c.context_path, "/fhir");
        assert!(c.enforce_referential_integrity);
        assert_eq!(c.db_sync_timeout, Duration::from_secs(10));
        assert!(!c.enable_operation_cql);
        assert_eq!(c.admin_index_db_dir, PathBuf::from("data/admin-index"));
        assert_eq!(
            c.admin_transaction_db_dir,
            PathBuf::from("data/admin-transaction")
        );
        assert_eq!(c.kafka_admin_topic, "flint-tx-admin");
        let moved = cfg(&[
            ("INDEX_DB_DIR", "/var/flint/ix"),
            ("ADMIN_TRANSACTION_DB_DIR", "/tx"),
        ])
        .unwrap();
        assert_eq!(
            moved.admin_index_db_dir,
            PathBuf::from("/var/flint/admin-index")
        );
        assert_eq!(moved.admin_transaction_db_dir, PathBuf::from("/tx"));
        assert!(
            cfg(&[("ENABLE_OPERATION_CQL", "true")])
                .unwrap()
                .enable_operation_cql
        );
        assert!(!c.enable_operation_graph);
        assert!(
            cfg(&[("ENABLE_OPERATION_GRAPH", "true")])
                .unwrap()
                .enable_operation_graph
        );
        assert!(!c.enable_operation_patient_purge);
        assert!(!c.enable_interaction_delete_history);
        let on = cfg(&[
            ("ENABLE_OPERATION_PATIENT_PURGE", "true"),
            ("ENABLE_INTERACTION_DELETE_HISTORY", "true"),
        ])
        .unwrap();
        assert!(on.enable_operation_patient_purge && on.enable_interaction_delete_history);
        assert_eq!(c.default_time_zone, flint_search::Zone::utc());
        assert_eq!(
            cfg(&[("FHIR_DEFAULT_TIME_ZONE", "Europe/Berlin")])
                .unwrap()
                .default_time_zone
                .name(),
            "Europe/Berlin"
        );
        assert_eq!(c.export_max_file_resources, 100_000);
        let small = cfg(&[("FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES", "7")]).unwrap();
        assert_eq!(small.export_max_file_resources, 7);
        assert!(!c.enable_terminology_service);
        assert_eq!(c.expand_max_size, flint_rest::config::EXPAND_MAX_SIZE);
        let tx = cfg(&[
            ("ENABLE_TERMINOLOGY_SERVICE", "true"),
            ("FHIR_OPERATION_EXPAND_MAX_SIZE", "5"),
        ])
        .unwrap();
        assert!(tx.enable_terminology_service);
        assert_eq!(tx.expand_max_size, 5);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (k, v) in [
            ("STORAGE", "sqlite"),
            ("SERVER_PORT", "80800"),
            ("ENFORCE_REFERENTIAL_INTEGRITY", "yes"),
            ("DB_SYNC_TIMEOUT", "0"),
            ("BASE_URL", "localhost"),
            ("LOG_LEVEL", "loud"),
            ("ENABLE_OPERATION_CQL", "on"),
            ("ENABLE_OPERATION_GRAPH", "1"),
            ("ENABLE_ADMIN_API", "yes"),
            ("FHIR_DEFAULT_TIME_ZONE", "Mars/Olympus"),
            ("FHIR_DEFAULT_TIME_ZONE", "+25:00"),
            ("FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES", "0"),
            ("FHIR_OPERATION_EXPORT_MAX_FILE_RESOURCES", "many"),
            ("ENABLE_TERMINOLOGY_SERVICE", "yes"),
            ("FHIR_OPERATION_EXPAND_MAX_SIZE", "0"),
        ] {
            let e = cfg(&[(k, v)]).unwrap_err();
            assert!(e.contains(k) && e.contains(v), "{e}");
        }
        assert_eq!(
            cfg(&[("STORAGE", "  ")]).unwrap().storage,
            Storage::InMemory
        );
    }
}
