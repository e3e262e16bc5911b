//! The CapabilityStatement (`GET [base]/metadata`): states exactly what this build supports.

use crate::api::{Body, Reply};
use crate::interaction::Ctx;
use crate::outcome::FhirResult;
use serde_json::{Value, json};

/// The interactions every resource type supports.
const TYPE_INTERACTIONS: [&str; 8] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

/// Builds the CapabilityStatement for `ctx`'s base URL.
pub fn statement(ctx: &Ctx) -> FhirResult<Value> {
    let cfg = ctx.state.config();
    let mut policy = vec!["literal", "local"];
    if cfg.enforce_referential_integrity {
        policy.push("enforced");
    }
    let resources: Vec<Value> = flint_model::defs::definitions()
        .resource_types()
        .iter()
        .map(|ty| {
            json!({
                "type": ty,
                "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": false,
                "conditionalRead": "not-supported",
                "conditionalUpdate": false,
                "conditionalDelete": "not-supported",
                "referencePolicy": policy,
            })
        })
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
            ],
        }],
    });
    Ok(flint_model::validate::resource(v)?)
}

/// `GET [base]/metadata`.
pub fn capabilities(ctx: &Ctx) -> FhirResult<Reply> {
    Ok(Reply::new(200, Body::Read(statement(ctx)?)))
}
