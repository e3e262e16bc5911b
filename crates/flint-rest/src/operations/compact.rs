//! `$compact` (system level, POST; Blaze's OperationDefinition `compact`, offered with the
//! admin API, `ENABLE_ADMIN_API`): compacts one column family of one database. Always
//! asynchronous: it needs `Prefer: respond-async` (202 with the `__async-status` URL; the
//! request runs as an asynchronous request job, whose result is an OperationOutcome telling
//! what was compacted and how long it took). Parameters (a `Parameters` body, `valueCode`
//! or any string value): `database` (a database of `GET __admin/dbs`) and `column-family`
//! (one of its column families); a missing or unknown one is 400 naming the parameter.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Payload, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use serde_json::Value;

/// The registration of `$compact`.
pub const OPERATION: Operation = Operation {
    name: "compact",
    definition: "https://samply.github.io/blaze/fhir/OperationDefinition/compact",
    levels: &[Level::System],
    types: &[],
    methods: &["POST"],
    run,
};

fn run<'a>(ctx: &'a Ctx, _target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(compact(ctx, req))
}

/// The string value of parameter `name` of `params` with its expression, or 400.
fn param(params: &Value, name: &str) -> FhirResult<(String, String)> {
    let list = params["parameter"].as_array().cloned().unwrap_or_default();
    let Some((i, p)) = list.iter().enumerate().find(|(_, p)| p["name"] == name) else {
        return Err(FhirError::invalid(format!("Missing parameter `{name}`.")).at(name));
    };
    let value = p.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.starts_with("value"))
            .and_then(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
    });
    match value {
        Some((key, v)) => Ok((v, format!("Parameters.parameter[{i}].{key}"))),
        None => Err(FhirError::invalid(format!(
            "The parameter `{name}` needs a code value (valueCode)."
        ))
        .at(format!("Parameters.parameter[{i}]"))),
    }
}

async fn compact(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Reply> {
    let params = match &req.payload {
        Payload::None => {
            return Err(FhirError::invalid(
                "`$compact` needs a Parameters body with `database` and `column-family`.",
            ));
        }
        p => crate::context::payload_resource("Parameters", p)?,
    };
    if crate::resource::type_of(&params) != "Parameters" {
        return Err(FhirError::invalid(
            "`$compact` takes a Parameters resource.",
        ));
    }
    let (db, db_at) = param(&params, "database")?;
    let (cf, cf_at) = param(&params, "column-family")?;
    crate::admin::jobs::check_column_family(ctx, &db, &db_at, &cf, &cf_at)?;
    // A request answered in the request itself did not ask for an asynchronous answer (an
    // asynchronous request's job runs it at its `t`).
    if ctx.at.is_none() {
        return Err(FhirError::invalid(
            "`$compact` runs asynchronously only: send it with `Prefer: respond-async` \
             (and an admin database).",
        ));
    }
    let store = crate::admin::database(ctx, &db)?;
    let started = std::time::Instant::now();
    let name = cf.clone();
    crate::admin::blocking(move || store.compact(&name)).await?;
    Ok(Reply::new(
        200,
        Body::Resource(crate::outcome::info_outcome(&format!(
            "Compacted the column family `{cf}` of the database `{db}` in {:.3} s.",
            started.elapsed().as_secs_f64()
        ))),
    ))
}
