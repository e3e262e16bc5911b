//! The CapabilityStatement (`GET [base]/metadata`): states exactly what this build supports.

use crate::api::{Body, Reply};
use crate::interaction::Ctx;
use crate::outcome::FhirResult;
use serde_json::{Value, json};

/// The interactions every resource type supports.
const TYPE_INTERACTIONS: [&str; 9] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// Common parameters every type supports, documented once.
const COMMON_PARAMS: [(&str, &str, &str); 9] = [
    (
        "_count",
        "number",
        "Page size (default and maximum configurable).",
    ),
    (
        "_sort",
        "string",
        "Any sortable parameter, several keys, `-` for descending.",
    ),
    ("_include", "special", "With `:iterate` and `*`."),
    ("_revinclude", "special", "With `:iterate` and `*`."),
    ("_summary", "token", "true, text, data, count, false."),
    ("_elements", "string", "Top-level elements to return."),
    (
        "_total",
        "token",
        "none, estimate or accurate (always accurate).",
    ),
    ("_has", "special", "Reverse chaining, nested."),
    ("_type", "special", "System search only."),
];

/// Builds the CapabilityStatement for `ctx`'s base URL.
pub fn statement(ctx: &Ctx) -> FhirResult<Value> {
    let cfg = ctx.state.config();
    let mut policy = vec!["literal", "local"];
    if cfg.enforce_referential_integrity {
        policy.push("enforced");
    }
    let registry = ctx.state.registry();
    let resources: Vec<Value> = flint_model::defs::definitions()
        .resource_types()
        .iter()
        .map(|ty| {
            let params: Vec<Value> = registry
                .params_of(ty)
                .map(|p| {
                    json!({
                        "name": p.code,
                        "definition": p.url,
                        "type": p.kind.as_str(),
                    })
                })
                .chain(COMMON_PARAMS.iter().map(|(n, t, d)| {
                    json!({"name": n, "type": t, "documentation": d})
                }))
                .collect();
            let includes: Vec<String> = registry
                .params_of(ty)
                .filter(|p| p.kind == flint_search::ParamType::Reference)
                .map(|p| format!("{ty}:{}", p.code))
                .chain(std::iter::once("*".to_string()))
                .collect();
            let revincludes: Vec<String> = flint_model::defs::definitions()
                .resource_types()
                .iter()
                .flat_map(|src| {
                    registry
                        .params_of(src)
                        .filter(|p| {
                            p.kind == flint_search::ParamType::Reference
                                && (p.target.is_empty() || p.target.iter().any(|t| t == ty))
                        })
                        .map(move |p| format!("{src}:{}", p.code))
                })
                .collect();
            json!({
                "type": ty,
                "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": if cfg.allow_multiple_delete { "multiple" } else { "single" },
                "referencePolicy": policy,
                "searchInclude": includes,
                "searchRevInclude": revincludes,
                "searchParam": params,
            })
        })
        .collect();
    let unsupported: Vec<String> = registry
        .unsupported()
        .iter()
        .map(|u| format!("`{}` ({})", u.code, u.reason))
        .collect();
    let v = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "The Flint developers",
        "kind": "instance",
        "software": {"name": "Flint", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": format!("Flint FHIR server ({} storage)", cfg.storage),
            "url": ctx.base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                {"code": "transaction"},
                {"code": "batch"},
                {"code": "history-system"},
                {"code": "search-system"},
            ],
            "documentation": format!(
                "Search: all R4 parameters of the official definitions with every modifier and \
                 prefix. Token `:in`/`:not-in` use ValueSets stored here (expansion, or \
                 compose.include with concepts, is-a/descendent-of filters and whole systems; \
                 exclude is not applied), token `:above`/`:below` the concept hierarchy of a \
                 stored CodeSystem, `_list` stored Lists. Not supported: reference \
                 `:above`/`:below`, `_text`, `_content`, `_filter`, `_query`, `_contained`. \
                 `_total` is always accurate. Unsupported parameters: {}. Compartment search: \
                 GET [base]/[Compartment]/[id]/[type] for every R4 compartment. Conditional \
                 references in transactions are resolved before the transaction.",
                unsupported.join(", ")
            ),
            "compartment": [
                "http://hl7.org/fhir/CompartmentDefinition/patient",
                "http://hl7.org/fhir/CompartmentDefinition/encounter",
                "http://hl7.org/fhir/CompartmentDefinition/relatedPerson",
                "http://hl7.org/fhir/CompartmentDefinition/practitioner",
                "http://hl7.org/fhir/CompartmentDefinition/device",
            ],
        }],
    });
    Ok(flint_model::validate::resource(v)?)
}

/// `GET [base]/metadata`.
pub fn capabilities(ctx: &Ctx) -> FhirResult<Reply> {
    Ok(Reply::new(200, Body::Read(statement(ctx)?)))
}
