//! The settings of the REST layer.

/// The most resources `$everything` answers without `_count` (then 409 `too-costly`), as
/// Blaze.
pub const EVERYTHING_LIMIT: usize = 10_000;

/// The most resources one `$export` output file holds (more: several files of the type).
pub const EXPORT_FILE_SIZE: usize = 100_000;

/// How long a page link stays valid by default ([`RestConfig::page_lifetime_ms`] for
/// searches; `$everything` and `$graphql` cursors always use this).
pub const PAGE_LIFETIME_MS: i64 = 24 * 3_600_000;
/// The most members `ValueSet/$expand` answers without `count` (more: 409 `too-costly`).
pub const EXPAND_MAX_SIZE: usize = 10_000;

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
    /// Whether `[base]/$cql` is offered (`ENABLE_OPERATION_CQL`, off by default: it runs
    /// arbitrary expressions over all data).
    pub enable_operation_cql: bool,
    /// The most resources `Patient/$everything` answers in one Bundle without `_count`
    /// (more: 409 `too-costly`); [`EVERYTHING_LIMIT`] by default.
    pub everything_limit: usize,
    /// Whether `[base]/[type]/[id]/$graph` is offered (`ENABLE_OPERATION_GRAPH`, off by
    /// default, as in Blaze).
    pub enable_operation_graph: bool,
    /// The most resources one `$export` output file holds; [`EXPORT_FILE_SIZE`] by default.
    pub export_file_size: usize,
    /// Whether the admin API (`[base]/__admin`) and `$compact` are offered
    /// (`ENABLE_ADMIN_API`, off by default, as in Blaze).
    pub enable_admin_api: bool,
    /// Whether `Patient/[id]/$purge` is offered (`ENABLE_OPERATION_PATIENT_PURGE`, off by
    /// default, as in Blaze).
    pub enable_operation_patient_purge: bool,
    /// Whether `DELETE [type]/[id]/_history` is allowed (`ENABLE_INTERACTION_DELETE_HISTORY`,
    /// off by default, as in Blaze).
    pub enable_interaction_delete_history: bool,
    /// Test hook: how long an `$export` job waits before it plans its files
    /// (`FLINT_TEST_EXPORT_PLAN_DELAY_MS`, zero by default), so that tests can stop a node
    /// while a job runs.
    pub export_plan_delay: std::time::Duration,
    /// How long a search's page links stay valid, in ms (`PAGE_LINK_LIFETIME`,
    /// [`PAGE_LIFETIME_MS`] by default); parameters too long for a link are
    /// kept in the resource store that long, then deleted.
    pub page_lifetime_ms: i64,
    /// Whether the base StructureDefinitions of R4 are installed and read-only
    /// (`FHIR_BASE_STRUCTURE_DEFINITIONS`, on by default, as in Blaze): updates and deletes of
    /// them are 409 (see [`crate::definitions`]).
    pub base_structure_definitions: bool,
    /// Whether the terminology operations (`$expand`, `$validate-code`, `$lookup`,
    /// `$subsumes`, `$translate`) are offered (`ENABLE_TERMINOLOGY_SERVICE`, off by default,
    /// as in Blaze).
    pub enable_terminology_service: bool,
    /// The most members `ValueSet/$expand` answers without `count`
    /// (`FHIR_OPERATION_EXPAND_MAX_SIZE`); [`EXPAND_MAX_SIZE`] by default.
    pub expand_max_size: usize,
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
            enable_operation_cql: false,
            everything_limit: EVERYTHING_LIMIT,
            enable_operation_graph: false,
            export_file_size: EXPORT_FILE_SIZE,
            enable_admin_api: false,
            enable_operation_patient_purge: false,
            enable_interaction_delete_history: false,
            export_plan_delay: std::time::Duration::ZERO,
            page_lifetime_ms: PAGE_LIFETIME_MS,
            base_structure_definitions: true,
            enable_terminology_service: false,
            expand_max_size: EXPAND_MAX_SIZE,
        }
    }
}
