//! FHIR operations (`$name`): a registry of the operations this server supports and the
//! dispatch of `[base]/$name`, `[base]/[type]/$name` and `[base]/[type]/[id]/$name` to them.
//!
//! The router ([`crate::http`]) sends every path whose last segment starts with `$` to
//! [`invoke`], which looks the operation up in [`OPERATIONS`] and answers:
//!
//! * an unknown resource type: 404 `not-found`, an invalid id: 400 `invalid` (as every
//!   interaction);
//! * an operation this server does not know: **400 `not-supported`** ("Operation `$name` is
//!   not supported."). The URL is a well-formed operation invocation, so it is not a missing
//!   endpoint (404); the request asks for something the server does not do, which the
//!   OperationOutcome issue type `not-supported` names;
//! * a known operation at a level it is not defined for (e.g. `[base]/Patient/$versions`):
//!   400 `not-supported`, naming the levels it has;
//! * a known operation with a method it does not allow: 405 `not-supported`. Operations that
//!   change state allow POST only; the others GET and POST.
//!
//! # Adding an operation
//!
//! 1. One file, `operations/<name>.rs`, with a `pub const OPERATION: Operation`: the name
//!    (without `$`), the canonical URL of its OperationDefinition, its levels, its methods
//!    and its handler (see [`versions`]). A handler gets the context, the [`Target`] and the
//!    request: GET parameters are in `req.query`, a POST body in `req.payload` (a
//!    `Parameters` resource, or the resource the operation takes).
//! 2. One line in [`OPERATIONS`] (and its `pub mod <name>;` below). The router needs nothing.
//!    A name may be registered once per resource type (`$validate-code` of ValueSet and of
//!    CodeSystem, each with its OperationDefinition): [`invoke`] picks the target type's.
//!    A type or instance operation names the resource `types` it is defined for (the router
//!    answers 400 `not-supported` for the others, see [`evaluate_measure`]).
//! 3. List it in the CapabilityStatement (`SYSTEM_OPERATIONS` in `capabilities.rs` for system
//!    operations, `TYPE_OPERATIONS` for type and instance ones of named types,
//!    `EVERY_TYPE_OPERATIONS` for those of every type, whose `types` is empty); a test here
//!    fails while the registry and the statement disagree.
//!
//! An operation that a setting turns off (`$cql`, `RestConfig::enable_operation_cql`;
//! `$graph`, `RestConfig::enable_operation_graph`; `$compact`, `RestConfig::enable_admin_api`;
//! `$purge`, `RestConfig::enable_operation_patient_purge`; the terminology operations
//! `$expand`, `$validate-code`, `$lookup`, `$subsumes`, `$translate`,
//! `RestConfig::enable_terminology_service`) stays in [`OPERATIONS`] (a
//! constant);
//! `capabilities::operation_enabled` decides, and [`invoke`] looks names up only among the
//! [`offered`] operations, so the CapabilityStatement does not list a disabled one and it
//! answers 400 `not-supported` naming the variable that enables it
//! (`capabilities::operation_switch`).

pub mod compact;
pub mod cql;
pub mod evaluate_measure;
pub mod everything;
pub mod expand;
pub mod export;
pub mod graph;
pub mod graphql;
pub mod library_evaluate;
pub mod lookup;
pub mod purge;
pub mod subsumes;
pub mod terminology;
pub mod totals;
pub mod translate;
pub mod validate_code;
pub mod versions;

use crate::api::{FhirRequest, Reply};
use crate::context::{Ctx, check_type, check_type_and_id};
use crate::outcome::{FhirError, FhirResult};
use axum::http::StatusCode;
use std::future::Future;
use std::pin::Pin;

/// Every operation this server supports, one line each.
pub const OPERATIONS: &[Operation] = &[
    versions::OPERATION,
    evaluate_measure::OPERATION,
    cql::OPERATION,
    library_evaluate::OPERATION,
    everything::OPERATION,
    totals::OPERATION,
    graph::OPERATION,
    export::OPERATION,
    compact::OPERATION,
    purge::OPERATION,
    graphql::OPERATION,
    expand::OPERATION,
    validate_code::VALUE_SET,
    validate_code::CODE_SYSTEM,
    lookup::OPERATION,
    subsumes::OPERATION,
    translate::OPERATION,
];

/// The operations of [`OPERATIONS`] offered with `config`: `$cql` only when
/// `enable_operation_cql` is on, `$graph` only when `enable_operation_graph` is (the rule the
/// CapabilityStatement lists by).
pub fn offered(config: &crate::config::RestConfig) -> Vec<Operation> {
    OPERATIONS
        .iter()
        .filter(|o| crate::capabilities::operation_enabled(o.name, config))
        .copied()
        .collect()
}

/// Adds the resource types of one `_type` value (comma-separated) to `types`, each once; a
/// name that is not a resource type is a 400 pointing at `_type`.
pub(crate) fn add_types(types: &mut Vec<String>, v: &str) -> FhirResult<()> {
    for t in v.split(',').map(str::trim) {
        if !flint_model::defs::definitions().is_resource_type(t) {
            return Err(FhirError::invalid(format!(
                "Invalid `_type` value: `{t}` is not a resource type."
            ))
            .at("_type"));
        }
        if !types.iter().any(|x| x == t) {
            types.push(t.to_string());
        }
    }
    Ok(())
}

/// The 400 `not-supported` of operation `name` when a setting turned it off, naming the
/// variable that turns it on.
fn disabled(name: &str, config: &crate::config::RestConfig) -> Option<FhirError> {
    let var = crate::capabilities::operation_switch(name)?;
    (!crate::capabilities::operation_enabled(name, config)).then(|| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!("Operation `${name}` is not enabled on this server (set {var}=true)."),
        )
    })
}

/// The level an operation is invoked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `[base]/$name`.
    System,
    /// `[base]/[type]/$name`.
    Type,
    /// `[base]/[type]/[id]/$name`.
    Instance,
}

impl Level {
    /// The level's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::System => "system",
            Level::Type => "type",
            Level::Instance => "instance",
        }
    }
}

/// What an operation is invoked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The whole system (`[base]/$name`).
    System,
    /// A resource type (`[base]/[type]/$name`).
    Type(&'a str),
    /// A resource (`[base]/[type]/[id]/$name`).
    Instance(&'a str, &'a str),
}

impl Target<'_> {
    /// The level of the invocation.
    pub fn level(&self) -> Level {
        match self {
            Target::System => Level::System,
            Target::Type(_) => Level::Type,
            Target::Instance(..) => Level::Instance,
        }
    }
}

/// The future an operation's handler returns.
pub type OpFuture<'a> = Pin<Box<dyn Future<Output = FhirResult<Reply>> + Send + 'a>>;

/// An operation's handler: answers an invocation on a target (whose type and id are checked).
pub type Handler = for<'a> fn(&'a Ctx, Target<'a>, &'a FhirRequest) -> OpFuture<'a>;

/// An operation this server supports.
#[derive(Clone, Copy)]
pub struct Operation {
    /// The name, without `$`.
    pub name: &'static str,
    /// The canonical URL of its OperationDefinition.
    pub definition: &'static str,
    /// The levels it is invoked at.
    pub levels: &'static [Level],
    /// The resource types of its type and instance levels (empty: every type).
    pub types: &'static [&'static str],
    /// The methods it allows (`GET` and `POST`, or only `POST` when it changes state).
    pub methods: &'static [&'static str],
    /// Its handler.
    pub run: Handler,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("levels", &self.levels)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

/// The operation `name` (without `$`) of `registry` that answers `method` at `level`, or the
/// error that answers instead (400 unknown or not at this level, 405 wrong method).
pub fn find<'r>(
    registry: &'r [Operation],
    name: &str,
    level: Level,
    method: &str,
) -> FhirResult<&'r Operation> {
    let not_supported = |m: String| FhirError::new(StatusCode::BAD_REQUEST, "not-supported", m);
    let op = registry
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| not_supported(format!("Operation `${name}` is not supported.")))?;
    if !op.levels.contains(&level) {
        let levels: Vec<&str> = op.levels.iter().map(|l| l.as_str()).collect();
        return Err(not_supported(format!(
            "Operation `${name}` is not supported at the {} level (only at: {}).",
            level.as_str(),
            levels.join(", ")
        )));
    }
    if !op.methods.contains(&method) {
        return Err(FhirError::method_not_allowed(method, &format!("${name}")));
    }
    Ok(op)
}

/// Invokes operation `name` (without `$`) on `target` for `req`.
pub async fn invoke(
    ctx: &Ctx,
    target: Target<'_>,
    name: &str,
    req: &FhirRequest,
) -> FhirResult<Reply> {
    match target {
        Target::System => {}
        Target::Type(ty) => check_type(ty)?,
        Target::Instance(ty, id) => check_type_and_id(ty, id)?,
    }
    if let Some(e) = disabled(name, ctx.state.config()) {
        return Err(e);
    }
    let mut registry = offered(ctx.state.config());
    // One name may be registered per type (`$validate-code` of ValueSet and of CodeSystem):
    // the registration of the target's type answers.
    if let Target::Type(ty) | Target::Instance(ty, _) = target
        && registry
            .iter()
            .any(|o| o.name == name && o.types.contains(&ty))
    {
        registry.retain(|o| o.name != name || o.types.contains(&ty));
    }
    let op = find(&registry, name, target.level(), &req.method)?;
    if let Target::Type(ty) | Target::Instance(ty, _) = target
        && !op.types.is_empty()
        && !op.types.contains(&ty)
    {
        return Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!(
                "Operation `${name}` is not supported for the type `{ty}` (only for: {}).",
                op.types.join(", ")
            ),
        ));
    }
    (op.run)(ctx, target, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing<'a>(_: &'a Ctx, _: Target<'a>, _: &'a FhirRequest) -> OpFuture<'a> {
        Box::pin(async { Err(FhirError::invalid("test only")) })
    }

    /// A registration for the tests only: an instance and type operation that changes state.
    const TEST_ONLY: Operation = Operation {
        name: "test-write",
        definition: "urn:flint:test-write",
        levels: &[Level::Type, Level::Instance],
        types: &[],
        methods: &["POST"],
        run: nothing,
    };

    #[test]
    fn find_answers_unknown_operations_levels_and_methods() {
        let registry = [TEST_ONLY, versions::OPERATION];
        let op = find(&registry, "test-write", Level::Instance, "POST").unwrap();
        assert_eq!(op.name, "test-write");
        assert_eq!(
            find(&registry, "versions", Level::System, "GET")
                .unwrap()
                .definition,
            versions::OPERATION.definition
        );

        let e = find(&registry, "evaluate-measure", Level::Type, "GET").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "not-supported")
        );
        assert!(e.message.contains("`$evaluate-measure`"), "{}", e.message);

        let e = find(&registry, "test-write", Level::System, "POST").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "not-supported")
        );
        assert!(
            e.message.contains("only at: type, instance"),
            "{}",
            e.message
        );

        let e = find(&registry, "test-write", Level::Type, "GET").unwrap_err();
        assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(e.code, "not-supported");
    }

    #[test]
    fn cql_and_graph_are_offered_only_when_enabled() {
        let mut cfg = crate::config::RestConfig::default();
        let names = |cfg: &crate::config::RestConfig| -> Vec<&str> {
            offered(cfg).iter().map(|o| o.name).collect()
        };
        assert_eq!(
            names(&cfg),
            [
                "versions",
                "evaluate-measure",
                "evaluate",
                "everything",
                "totals",
                "export",
                "graphql"
            ]
        );
        let e = find(&offered(&cfg), "cql", Level::System, "POST").unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "not-supported")
        );
        for (name, var) in [
            ("cql", "ENABLE_OPERATION_CQL"),
            ("graph", "ENABLE_OPERATION_GRAPH"),
            ("compact", "ENABLE_ADMIN_API"),
            ("purge", "ENABLE_OPERATION_PATIENT_PURGE"),
        ] {
            let e = disabled(name, &cfg).unwrap();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "not-supported")
            );
            assert!(e.message.contains(var), "{}", e.message);
        }
        assert!(disabled("versions", &cfg).is_none());
        cfg.enable_operation_cql = true;
        assert!(disabled("cql", &cfg).is_none());
        assert_eq!(
            names(&cfg),
            [
                "versions",
                "evaluate-measure",
                "cql",
                "evaluate",
                "everything",
                "totals",
                "export",
                "graphql"
            ]
        );
        cfg.enable_operation_graph = true;
        assert!(disabled("graph", &cfg).is_none());
        assert!(disabled("compact", &cfg).is_some());
        cfg.enable_admin_api = true;
        assert!(disabled("compact", &cfg).is_none());
        cfg.enable_operation_patient_purge = true;
        assert!(disabled("purge", &cfg).is_none());
        for name in ["expand", "validate-code", "lookup", "subsumes", "translate"] {
            let e = disabled(name, &cfg).unwrap();
            assert!(
                e.message.contains("ENABLE_TERMINOLOGY_SERVICE"),
                "{}",
                e.message
            );
        }
        cfg.enable_terminology_service = true;
        assert!(disabled("validate-code", &cfg).is_none());
        assert_eq!(names(&cfg).len(), OPERATIONS.len());
    }

    #[test]
    fn targets_have_levels() {
        assert_eq!(Target::System.level(), Level::System);
        assert_eq!(Target::Type("Patient").level(), Level::Type);
        assert_eq!(Target::Instance("Patient", "1").level(), Level::Instance);
    }

    #[test]
    fn registry_names_are_unique_and_the_statement_lists_them() {
        for (i, op) in OPERATIONS.iter().enumerate() {
            // A name twice only for disjoint resource types.
            assert!(
                OPERATIONS[..i].iter().all(|o| o.name != op.name
                    || (!o.types.is_empty()
                        && !op.types.is_empty()
                        && o.types.iter().all(|t| !op.types.contains(t)))),
                "{op:?} twice"
            );
            assert!(!op.name.starts_with('$') && !op.levels.is_empty(), "{op:?}");
            assert!(
                op.methods.iter().all(|m| *m == "GET" || *m == "POST"),
                "{op:?}"
            );
        }
        let system: Vec<(&str, &str)> = OPERATIONS
            .iter()
            .filter(|o| o.levels.contains(&Level::System))
            .map(|o| (o.name, o.definition))
            .collect();
        assert_eq!(
            system,
            crate::capabilities::SYSTEM_OPERATIONS,
            "the CapabilityStatement lists exactly the registered system operations"
        );
        let mut typed: Vec<(&str, &str, &str)> = Vec::new();
        let mut every: Vec<(&str, &str)> = Vec::new();
        for o in OPERATIONS.iter().filter(|o| o.levels != [Level::System]) {
            if o.types.is_empty() {
                every.push((o.name, o.definition));
            }
            typed.extend(o.types.iter().map(|t| (*t, o.name, o.definition)));
        }
        assert_eq!(
            every,
            crate::capabilities::EVERY_TYPE_OPERATIONS,
            "the CapabilityStatement lists the operations of every type for every type"
        );
        assert_eq!(
            typed,
            crate::capabilities::TYPE_OPERATIONS,
            "the CapabilityStatement lists exactly the registered type and instance operations"
        );
    }
}
