//! The admin API under `[base]/__admin` (`RestConfig::enable_admin_api`, `ENABLE_ADMIN_API`),
//! on Blaze's paths and shapes: plain JSON (camelCase keys) for the server and its databases,
//! FHIR `Task` resources for jobs.
//!
//! * `GET __admin`: `{"settings": [...], "features": [...]}`; `GET __admin/settings` and
//!   `GET __admin/features` each list alone.
//! * `GET __admin/openapi.json`: the OpenAPI 3 description of these paths.
//! * `GET __admin/dbs`: every database with its statistics; `GET __admin/dbs/{db}/stats` one;
//!   `GET __admin/dbs/{db}/column-families` its column families (unknown database: 404);
//!   `GET __admin/dbs/{db}/column-families/{cf}/metadata` (its SST files by level), `/tables`
//!   (each SST file) and `/state` (flush and compaction state): 404 for an unknown column
//!   family, 422 for a database without files (in memory).
//! * Jobs ([`jobs`]): `GET`/`POST __admin/Task`, `GET __admin/Task/{id}`, `POST
//!   __admin/Task/{id}/$pause`, `$resume`, `$cancel`; `GET __admin/Task/_history` and
//!   `GET __admin/Task/{id}/_history`.
//!
//! Switched off, every `__admin` path answers 404 naming the variable that turns it on.

pub mod jobs;

use crate::api::{Body, FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use bytes::Bytes;
use serde_json::{Value, json};

/// The OpenAPI description of the admin API (a static document).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Answers the request for `__admin/{rest}` (`rest`: the path segments after `__admin`).
pub async fn dispatch(ctx: &Ctx, rest: &[&str], req: &FhirRequest) -> FhirResult<Reply> {
    if !ctx.state.config().enable_admin_api {
        return Err(FhirError::not_found(
            "The admin API is not enabled on this server (set ENABLE_ADMIN_API=true).",
        ));
    }
    let method = req.method.as_str();
    let path = format!("__admin/{}", rest.join("/"));
    let only = |allowed: &str| -> FhirResult<()> {
        if method == allowed || (allowed == "GET" && method == "HEAD") {
            Ok(())
        } else {
            Err(FhirError::method_not_allowed(method, &path))
        }
    };
    let admin = ctx.state.admin();
    match rest {
        [] => {
            only("GET")?;
            Ok(json_reply(
                &json!({"settings": admin.settings, "features": admin.features}),
            ))
        }
        ["settings"] => {
            only("GET")?;
            Ok(json_reply(&Value::Array(admin.settings.clone())))
        }
        ["features"] => {
            only("GET")?;
            Ok(json_reply(&Value::Array(admin.features.clone())))
        }
        ["openapi.json"] => {
            only("GET")?;
            Ok(Reply::new(
                200,
                Body::Raw(
                    "application/json".into(),
                    Bytes::from_static(OPENAPI.as_bytes()),
                ),
            ))
        }
        ["dbs"] => {
            only("GET")?;
            let mut out = Vec::new();
            for (name, _) in &admin.databases {
                out.push(database_stats(ctx, name).await?);
            }
            Ok(json_reply(&Value::Array(out)))
        }
        ["dbs", db, "stats"] => {
            only("GET")?;
            Ok(json_reply(&database_stats(ctx, db).await?))
        }
        ["dbs", db, "column-families"] => {
            only("GET")?;
            let store = database(ctx, db)?;
            let cfs = blocking(move || store.column_families()).await?;
            Ok(json_reply(&serde_json::to_value(cfs).unwrap_or_default()))
        }
        [
            "dbs",
            db,
            "column-families",
            cf,
            view @ ("metadata" | "tables" | "state"),
        ] => {
            only("GET")?;
            column_family_view(ctx, db, cf, view).await
        }
        ["Task", "_history"] => {
            only("GET")?;
            jobs::history(ctx, None, req).await
        }
        ["Task", id, "_history"] => {
            only("GET")?;
            jobs::history(ctx, Some(id), req).await
        }
        ["Task"] => match method {
            "GET" => jobs::search(ctx, req).await,
            "POST" => jobs::create(ctx, req).await,
            _ => Err(FhirError::method_not_allowed(method, &path)),
        },
        ["Task", id] => {
            only("GET")?;
            jobs::read(ctx, id).await
        }
        ["Task", id, op] if op.starts_with('$') => {
            only("POST")?;
            jobs::transition(ctx, id, &op[1..]).await
        }
        _ => Err(FhirError::not_found(format!(
            "No admin API endpoint at `{path}`."
        ))),
    }
}

/// A plain JSON reply (not a FHIR resource).
fn json_reply(v: &Value) -> Reply {
    Reply::new(
        200,
        Body::Raw("application/json".into(), Bytes::from(v.to_string())),
    )
}

/// The database `name`, or 404.
pub(crate) fn database(
    ctx: &Ctx,
    name: &str,
) -> FhirResult<std::sync::Arc<dyn flint_db::StoreAdmin>> {
    ctx.state
        .admin()
        .database(name)
        .cloned()
        .ok_or_else(|| FhirError::not_found(format!("The database `{name}` was not found.")))
}

/// Runs `f` (RocksDB property reads, compaction) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> flint_db::error::Result<T> + Send + 'static,
) -> FhirResult<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(FhirError::from(flint_db::DbError::fault(format!(
            "the storage call failed: {e}"
        )))),
    }
}

/// `metadata`, `tables` or `state` of column family `cf` of database `db`: 404 for an
/// unknown database or column family, 422 when the database cannot tell (in memory).
async fn column_family_view(ctx: &Ctx, db: &str, cf: &str, view: &str) -> FhirResult<Reply> {
    let store = database(ctx, db)?;
    let (name, view_name) = (cf.to_string(), view.to_string());
    let answer = blocking(move || {
        if !store.column_families()?.iter().any(|c| c.name == name) {
            return Ok(None);
        }
        let v = match view_name.as_str() {
            "metadata" => store
                .column_family_metadata(&name)?
                .map(|m| serde_json::to_value(m).unwrap_or_default()),
            "tables" => store
                .tables(&name)?
                .map(|t| serde_json::to_value(t).unwrap_or_default()),
            _ => store
                .column_family_state(&name)?
                .map(|s| serde_json::to_value(s).unwrap_or_default()),
        };
        Ok(Some(v))
    })
    .await?;
    match answer {
        None => Err(FhirError::not_found(format!(
            "The database `{db}` has no column family `{cf}`."
        ))),
        Some(None) => Err(FhirError::unsupported(format!(
            "The database `{db}` keeps no SST files (it is in memory): it has no `{view}`."
        ))),
        Some(Some(v)) => Ok(json_reply(&v)),
    }
}

/// `{"name": db, ...statistics}` of database `name`.
async fn database_stats(ctx: &Ctx, name: &str) -> FhirResult<Value> {
    let store = database(ctx, name)?;
    let stats = blocking(move || store.stats()).await?;
    let mut v = json!({"name": name});
    if let (Some(o), Value::Object(s)) = (
        v.as_object_mut(),
        serde_json::to_value(stats).unwrap_or_default(),
    ) {
        o.extend(s);
    }
    Ok(v)
}
