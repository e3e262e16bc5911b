//! History interactions (instance, type, system) with `_since`, `_count` and stable paging:
//! every page is read from the database value `__t` of the first page, and the next link
//! names the first version of the next page, so writes between pages neither shift nor
//! duplicate entries.

use crate::api::{Body, FhirRequest, Reply};
use crate::context::{Ctx, check_id, check_type};
use crate::interaction::materialize;
use crate::outcome::{FhirError, FhirResult};
use crate::resource::{format_instant, parse_instant};
use flint_db::codec::VersionOp;
use flint_db::{Db, ResourceHandle, T};
use serde_json::{Value, json};

/// Which history.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// `GET [base]/_history`.
    System,
    /// `GET [base]/[type]/_history`.
    Type(&'a str),
    /// `GET [base]/[type]/[id]/_history`.
    Instance(&'a str, &'a str),
}

fn parse_t(req: &FhirRequest, name: &str) -> FhirResult<Option<T>> {
    req.param(name)
        .map(|v| {
            v.parse()
                .map_err(|_| FhirError::invalid(format!("Invalid paging parameter `{name}={v}`.")))
        })
        .transpose()
}

/// The page size from `_count` (clamped to the configured maximum).
pub fn page_size(ctx: &Ctx, req: &FhirRequest) -> FhirResult<usize> {
    let cfg = ctx.state.config();
    match req.param("_count") {
        None => Ok(cfg.default_page_size),
        Some(c) => c
            .parse::<usize>()
            .map(|n| n.min(cfg.max_page_size))
            .map_err(|_| {
                FhirError::invalid(format!("Invalid `_count` value `{c}`: expected a number."))
                    .at("_count")
            }),
    }
}

/// Answers a history request.
pub async fn history(ctx: &Ctx, scope: Scope<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    match scope {
        Scope::Type(ty) => check_type(ty)?,
        Scope::Instance(ty, id) => {
            check_type(ty)?;
            check_id(id)?;
        }
        Scope::System => {}
    }
    let count = page_size(ctx, req)?;
    let node = ctx.state.node();
    let db = match parse_t(req, "__t")? {
        Some(t) => node.sync_to(t).await?,
        None => node.sync().await?,
    };
    let since = match req.param("_since") {
        Some(s) => {
            let ms = parse_instant(s).ok_or_else(|| {
                FhirError::invalid(format!(
                    "Invalid `_since` value `{s}`: expected an instant."
                ))
                .at("_since")
            })?;
            Some((s, db.t_since(ms)?))
        }
        None => None,
    };
    let since_t = since.map_or(0, |(_, t)| t);
    let page_t = parse_t(req, "__page-t")?;
    let page_type = req.param("__page-type").unwrap_or("");
    let page_id = req.param("__page-id").unwrap_or("");
    let mut handles: Vec<ResourceHandle> = match scope {
        Scope::Instance(ty, id) => db.instance_history(ty, id, page_t, since_t, count + 1)?,
        Scope::Type(ty) => db.type_history(ty, page_t.map(|t| (t, page_id)), since_t, count + 1)?,
        Scope::System => {
            db.system_history(page_t.map(|t| (t, page_type, page_id)), since_t, count + 1)?
        }
    };
    if let Scope::Instance(ty, id) = scope
        && handles.is_empty()
        && page_t.is_none()
        && db.resource(ty, id)?.is_none()
    {
        return Err(FhirError::not_found(format!(
            "Resource `{ty}/{id}` was not found."
        )));
    }
    let next = if handles.len() > count {
        handles.pop()
    } else {
        None
    };
    let path = match scope {
        Scope::System => "_history".to_string(),
        Scope::Type(ty) => format!("{ty}/_history"),
        Scope::Instance(ty, id) => format!("{ty}/{id}/_history"),
    };
    let mut params = vec![("_count".to_string(), count.to_string())];
    if let Some((s, _)) = since {
        params.push(("_since".into(), s.to_string()));
    }
    params.push(("__t".into(), db.t().to_string()));
    let link = |extra: &[(String, String)]| -> String {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().chain(extra.iter()))
            .finish();
        format!("{}/{path}?{q}", ctx.base)
    };
    let mut links = vec![json!({"relation": "self", "url": link(&[])})];
    if let Some(n) = &next {
        let mut extra = vec![("__page-t".to_string(), n.t.to_string())];
        if matches!(scope, Scope::System) {
            extra.push(("__page-type".into(), n.type_name.clone()));
        }
        if !matches!(scope, Scope::Instance(..)) {
            extra.push(("__page-id".into(), n.id.clone()));
        }
        links.push(json!({"relation": "next", "url": link(&extra)}));
    }
    let mut entries = Vec::with_capacity(handles.len());
    for h in &handles {
        entries.push(history_entry(ctx, &db, h).await?);
    }
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
    });
    if since.is_none() {
        bundle["total"] = json!(total(&db, scope)?);
    }
    bundle["link"] = Value::Array(links);
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Reply::new(200, Body::Resource(bundle)))
}

/// `DELETE [base]/[type]/[id]/_history` (`ENABLE_INTERACTION_DELETE_HISTORY`, off by default,
/// as in Blaze): removes every version of the resource but the current one (a deletion, when
/// the resource is deleted), as one `delete-history` log command that every node's indexer
/// applies: vreads of the removed versions answer 404, the histories show only the current
/// version and the change counts drop by the versions removed; their contents leave the
/// resource store once no older database value is in use. 204 with the current version's
/// `ETag`; 404 for an unknown resource; off: 400 `not-supported` naming the variable; more
/// than 100,000 versions: 409.
pub async fn delete_history(ctx: &Ctx, ty: &str, id: &str) -> FhirResult<Reply> {
    check_type(ty)?;
    check_id(id)?;
    if !ctx.state.config().enable_interaction_delete_history {
        return Err(FhirError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "not-supported",
            "Deleting the history of a resource is not enabled on this server (set \
             ENABLE_INTERACTION_DELETE_HISTORY=true).",
        ));
    }
    let read_only = ctx.state.config().base_structure_definitions;
    crate::definitions::check_writable(read_only, ty, id, "history deletion")?;
    let db = ctx.read_db().await?;
    if db.resource(ty, id)?.is_none() {
        return Err(FhirError::not_found(format!(
            "Resource `{ty}/{id}` was not found."
        )));
    }
    // The request's database value must not hold back the erasure of what it removes.
    drop(db);
    let cmd = flint_db::TxCmd::new(flint_db::TxOp::DeleteHistory, ty, id, None);
    let out = ctx.state.node().transact(vec![cmd], Vec::new()).await?;
    let mut reply = Reply::new(204, Body::None);
    if let Some(h) = out.db.resource(ty, id)? {
        reply.etag = Some(h.t);
        reply.last_modified = Some(out.db.instant(h.t)?);
    }
    Ok(reply)
}

fn total(db: &Db, scope: Scope<'_>) -> FhirResult<u64> {
    Ok(match scope {
        Scope::System => db.system_changes()?,
        Scope::Type(ty) => db.type_changes(ty)?,
        Scope::Instance(ty, id) => db.resource(ty, id)?.map_or(0, |h| h.num_changes),
    })
}

async fn history_entry(ctx: &Ctx, db: &Db, h: &ResourceHandle) -> FhirResult<Value> {
    let instant = db.instant(h.t)?;
    let (method, url, status) = match h.op {
        VersionOp::Create => ("POST", h.type_name.clone(), "201"),
        VersionOp::UpdateCreate => ("PUT", format!("{}/{}", h.type_name, h.id), "201"),
        VersionOp::Put => ("PUT", format!("{}/{}", h.type_name, h.id), "200"),
        VersionOp::Delete => ("DELETE", format!("{}/{}", h.type_name, h.id), "204"),
    };
    let mut e = json!({"fullUrl": ctx.url(&h.type_name, &h.id)});
    if !h.is_deleted() {
        e["resource"] = materialize(db, h).await?;
    }
    e["request"] = json!({"method": method, "url": url});
    e["response"] = json!({
        "status": status,
        "etag": format!("W/\"{}\"", h.t),
        "lastModified": format_instant(instant),
    });
    Ok(e)
}
