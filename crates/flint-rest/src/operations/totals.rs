//! `$totals` (system level, GET or POST; Blaze's OperationDefinition `totals`): the number
//! of current (not deleted) resources of each resource type that has at least one, as a
//! `Parameters` resource with one `valueUnsignedInt` parameter per type, sorted by type name.
//!
//! The counts are the database's per-type statistics at one database value
//! ([`flint_db::Db::type_total`]): one index read per type, no resource is read.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::FhirResult;
use serde_json::{Value, json};

/// The registration of `$totals`.
pub const OPERATION: Operation = Operation {
    name: "totals",
    definition: "https://samply.github.io/blaze/fhir/OperationDefinition/totals",
    levels: &[Level::System],
    types: &[],
    methods: &["GET", "POST"],
    run,
};

fn run<'a>(ctx: &'a Ctx, _target: Target<'a>, _req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(totals(ctx))
}

async fn totals(ctx: &Ctx) -> FhirResult<Reply> {
    let db = ctx.read_db().await?;
    let mut types: Vec<&String> = flint_model::defs::definitions()
        .resource_types()
        .iter()
        .collect();
    types.sort();
    let mut parameters: Vec<Value> = Vec::new();
    for ty in types {
        let n = db.type_total(ty)?;
        if n > 0 {
            parameters.push(json!({"name": ty, "valueUnsignedInt": n}));
        }
    }
    let mut out = json!({"resourceType": "Parameters"});
    if !parameters.is_empty() {
        out["parameter"] = Value::Array(parameters);
    }
    Ok(Reply::new(200, Body::Resource(out)))
}
