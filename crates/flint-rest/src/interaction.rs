//! The single-resource interactions: read, vread, create, update, delete and patch, split into
//! *prepare* (validation, hashing, transaction command) and *reply* (outcome at `t`) so that
//! transaction bundles can combine many writes into one transaction. The conditional forms
//! (which search first) are in the `conditional` module.

use crate::api::{Body, FhirRequest, Payload, Reply, Return, Stored};
use crate::context::{
    Ctx, check_id, check_type, parse_if_match, parse_if_none_match, payload_resource,
};
use crate::outcome::{FhirError, FhirResult, info_outcome};
use crate::resource::{self, content_of, set_version_meta, strip_version_meta};
use axum::http::StatusCode;
use bytes::Bytes;
use flint_db::{ContentHash, Db, ResourceHandle, T, TxCmd, TxOp, TxOutcome};
use serde_json::Value;

/// The stored content of `handle` with its version.
pub async fn pull(db: &Db, handle: &ResourceHandle) -> FhirResult<Stored> {
    Ok(Stored {
        bytes: db.pull(handle).await?,
        t: handle.t,
        instant_ms: db.instant(handle.t)?,
    })
}

/// The stored resource of `handle` with its version metadata.
pub async fn materialize(db: &Db, handle: &ResourceHandle) -> FhirResult<Value> {
    pull(db, handle).await?.to_value()
}

/// The 410 of a deleted resource, or the storage error that kept its version from being read.
pub(crate) fn gone(db: &Db, h: &ResourceHandle) -> FhirError {
    let instant = match db.instant(h.t) {
        Ok(ms) => ms,
        Err(e) => return e.into(),
    };
    let mut e = FhirError::new(
        StatusCode::GONE,
        "deleted",
        format!("Resource `{}/{}` was deleted.", h.type_name, h.id),
    );
    e.version = Some((h.t, instant));
    e
}

fn ok_reply(db: &Db, h: &ResourceHandle, status: u16, body: Body) -> FhirResult<Reply> {
    Ok(Reply {
        status,
        etag: Some(h.t),
        last_modified: Some(db.instant(h.t)?),
        location: None,
        headers: Vec::new(),
        body,
    })
}

/// The 200 reply of the stored version `h`: its bytes, `ETag` and `Last-Modified`.
pub async fn stored_reply(db: &Db, h: &ResourceHandle) -> FhirResult<Reply> {
    let s = pull(db, h).await?;
    ok_reply(db, h, 200, Body::Stored(s))
}

/// `GET [type]/[id]`.
pub async fn read(db: &Db, type_name: &str, id: &str) -> FhirResult<Reply> {
    check_type(type_name)?;
    check_id(id)?;
    let h = db.resource(type_name, id)?.ok_or_else(|| {
        FhirError::not_found(format!("Resource `{type_name}/{id}` was not found."))
    })?;
    if h.is_deleted() {
        return Err(gone(db, &h));
    }
    stored_reply(db, &h).await
}

/// `GET [type]/[id]/_history/[vid]`.
pub async fn vread(db: &Db, type_name: &str, id: &str, vid: &str) -> FhirResult<Reply> {
    check_type(type_name)?;
    check_id(id)?;
    let not_found = || {
        FhirError::not_found(format!(
            "Version `{vid}` of resource `{type_name}/{id}` was not found."
        ))
    };
    let vt: T = vid.parse().map_err(|_| not_found())?;
    let h = db.version(type_name, id, vt)?.ok_or_else(not_found)?;
    if h.is_deleted() {
        return Err(gone(db, &h));
    }
    stored_reply(db, &h).await
}

/// The current version of `type/id` as a tree, with its `t` (404/410 errors as for read).
pub async fn current(db: &Db, type_name: &str, id: &str) -> FhirResult<(Value, T)> {
    let r = read(db, type_name, id).await?;
    match r.body {
        Body::Stored(s) => Ok((s.to_value()?, s.t)),
        _ => Err(FhirError::not_found(format!(
            "Resource `{type_name}/{id}` was not found."
        ))),
    }
}

/// What a prepared write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// POST.
    Create,
    /// PUT (or PATCH).
    Update,
    /// DELETE.
    Delete,
}

/// A validated write, ready to become one command of a transaction.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What it does.
    pub kind: WriteKind,
    /// The command for the transaction log.
    pub cmd: TxCmd,
    /// Canonical content to store first.
    pub content: Option<(ContentHash, Bytes)>,
    /// The resource as written (without version metadata).
    pub resource: Option<Value>,
}

fn check_body_type(v: &Value, type_name: &str) -> FhirResult<()> {
    let body_type = resource::type_of(v);
    if body_type != type_name {
        return Err(FhirError::invalid(format!(
            "Resource type `{body_type}` doesn't match the endpoint type `{type_name}`."
        ))
        .at(format!("{body_type}.resourceType")));
    }
    Ok(())
}

fn check_not_subsetted(v: &Value) -> FhirResult<()> {
    let subsetted = v
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter()
                .any(|t| t.get("code").and_then(Value::as_str) == Some("SUBSETTED"))
        });
    if subsetted {
        return Err(FhirError::invalid(
            "Resources tagged SUBSETTED are incomplete and can't be written.",
        ));
    }
    Ok(())
}

fn finish(ctx: &Ctx, kind: WriteKind, op: TxOp, mut v: Value, id: &str) -> Prepared {
    strip_version_meta(&mut v);
    resource::set_id(&mut v, id);
    let (hash, bytes) = content_of(&v);
    let type_name = resource::type_of(&v).to_string();
    let mut cmd = TxCmd::new(op, &type_name, id, Some(hash));
    let enforce = ctx.state.config().enforce_referential_integrity;
    cmd.refs = resource::local_refs(&v, &ctx.base);
    cmd.check_refs = enforce;
    Prepared {
        kind,
        cmd,
        content: Some((hash, bytes)),
        resource: Some(v),
    }
}

/// Validates a create of `v` as `type_name`; `id` is the server-assigned id.
pub fn prepare_create(ctx: &Ctx, type_name: &str, v: Value, id: String) -> FhirResult<Prepared> {
    check_type(type_name)?;
    check_body_type(&v, type_name)?;
    check_not_subsetted(&v)?;
    Ok(finish(ctx, WriteKind::Create, TxOp::Create, v, &id))
}

/// Validates an update of `type/id` with `v`.
pub fn prepare_update(
    ctx: &Ctx,
    type_name: &str,
    id: &str,
    v: Value,
    if_match: Option<&str>,
    if_none_match: Option<&str>,
) -> FhirResult<Prepared> {
    check_type(type_name)?;
    check_id(id)?;
    check_body_type(&v, type_name)?;
    let read_only = ctx.state.config().base_structure_definitions;
    crate::definitions::check_writable(read_only, type_name, id, "update")?;
    match resource::id_of(&v) {
        None => {
            return Err(FhirError::invalid(
                "The resource has no id; an update needs the id of the URL in the body.",
            )
            .at(format!("{type_name}.id")));
        }
        Some(body_id) if body_id != id => {
            return Err(FhirError::invalid(format!(
                "The resource id `{body_id}` doesn't match the URL id `{id}`."
            ))
            .at(format!("{type_name}.id")));
        }
        _ => {}
    }
    check_not_subsetted(&v)?;
    let mut p = finish(ctx, WriteKind::Update, TxOp::Put, v, id);
    if let Some(h) = if_match {
        p.cmd.if_match = parse_if_match(h)?;
    }
    if let Some(h) = if_none_match {
        p.cmd.if_none_match = Some(parse_if_none_match(h)?);
    }
    Ok(p)
}

/// Prepares a delete of `type/id`.
pub fn prepare_delete(ctx: &Ctx, type_name: &str, id: &str) -> FhirResult<Prepared> {
    check_type(type_name)?;
    check_id(id)?;
    let read_only = ctx.state.config().base_structure_definitions;
    crate::definitions::check_writable(read_only, type_name, id, "delete")?;
    let mut cmd = TxCmd::new(TxOp::Delete, type_name, id, None);
    cmd.check_refs = ctx.state.config().enforce_referential_integrity;
    Ok(Prepared {
        kind: WriteKind::Delete,
        cmd,
        content: None,
        resource: None,
    })
}

/// Commits prepared writes as one transaction.
pub async fn commit<'a>(
    ctx: &Ctx,
    prepared: impl IntoIterator<Item = &'a Prepared>,
) -> FhirResult<TxOutcome> {
    let mut cmds = Vec::new();
    let mut contents: Vec<(ContentHash, Bytes)> = Vec::new();
    let mut parsed = Vec::new();
    for p in prepared {
        cmds.push(p.cmd.clone());
        contents.extend(p.content.clone());
        if let (Some((h, _)), Some(v)) = (&p.content, &p.resource) {
            parsed.push((*h, p.cmd.type_name.as_str(), v));
        }
    }
    contents.sort_by_key(|(h, _)| *h);
    contents.dedup_by_key(|(h, _)| *h);
    let node = ctx.state.node();
    // The search values come from the resources at hand rather than from parsing the stored
    // bytes again in the indexer.
    Ok(node.transact_parsed(cmds, contents, parsed).await?)
}

/// The reply to a committed write.
pub fn write_reply(ctx: &Ctx, p: &Prepared, out: &TxOutcome, ret: Return) -> FhirResult<Reply> {
    let db = &out.db;
    // A committed create made a new resource at the transaction's `t` (the transaction fails
    // if the resource exists), so only updates and deletes look their version up.
    let h = match p.kind {
        WriteKind::Create => None,
        _ => db.resource(&p.cmd.type_name, &p.cmd.id)?,
    };
    let (t, created) = match (&h, p.kind) {
        (_, WriteKind::Create) => (out.t, true),
        (Some(h), _) => (h.t, h.t == out.t && h.op.is_create()),
        (None, _) => (out.t, false),
    };
    if p.kind == WriteKind::Delete {
        let mut r = Reply::new(204, Body::None);
        if ret == Return::OperationOutcome {
            r = Reply::new(
                200,
                Body::Resource(info_outcome(&format!(
                    "Successfully deleted resource `{}/{}`.",
                    p.cmd.type_name, p.cmd.id
                ))),
            );
        }
        if let Some(h) = h.filter(|h| h.is_deleted()) {
            r.etag = Some(h.t);
            r.last_modified = Some(db.instant(h.t)?);
        }
        return Ok(r);
    }
    let status = if created { 201 } else { 200 };
    let body = match ret {
        Return::Minimal => Body::None,
        Return::OperationOutcome => Body::Resource(info_outcome(if created {
            "Resource created."
        } else {
            "Resource updated."
        })),
        Return::Representation => match &p.resource {
            Some(v) => {
                let mut v = v.clone();
                set_version_meta(&mut v, t, db.instant(t)?);
                Body::Resource(v)
            }
            None => Body::None,
        },
    };
    Ok(Reply {
        status,
        etag: Some(t),
        last_modified: Some(db.instant(t)?),
        location: created.then(|| ctx.version_url(&p.cmd.type_name, &p.cmd.id, t)),
        headers: Vec::new(),
        body,
    })
}

/// `POST [type]` of the resource `v` (the request's parsed body), with a server-assigned id;
/// `prefer` is the request's `Prefer: return=`.
pub async fn create(
    ctx: &Ctx,
    type_name: &str,
    v: Value,
    prefer: Option<Return>,
) -> FhirResult<Reply> {
    let p = prepare_create(ctx, type_name, v, resource::new_id())?;
    commit_one(ctx, p, prefer.unwrap_or(Return::Representation)).await
}

/// Commits one prepared write as its own transaction and builds its reply.
pub async fn commit_one(ctx: &Ctx, p: Prepared, ret: Return) -> FhirResult<Reply> {
    let out = commit(ctx, [&p]).await?;
    write_reply(ctx, &p, &out, ret)
}

/// `PUT [type]/[id]`.
pub async fn update(ctx: &Ctx, type_name: &str, id: &str, req: &FhirRequest) -> FhirResult<Reply> {
    check_type(type_name)?;
    let mut v = payload_resource(type_name, &req.payload)?;
    if type_name == "Binary" && matches!(req.payload, Payload::Raw(..)) {
        resource::set_id(&mut v, id);
    }
    let p = prepare_update(
        ctx,
        type_name,
        id,
        v,
        req.if_match.as_deref(),
        req.if_none_match.as_deref(),
    )?;
    commit_one(ctx, p, req.prefer_return.unwrap_or(Return::Representation)).await
}

/// `DELETE [type]/[id]`.
pub async fn delete(ctx: &Ctx, type_name: &str, id: &str, req: &FhirRequest) -> FhirResult<Reply> {
    let p = prepare_delete(ctx, type_name, id)?;
    commit_one(ctx, p, req.prefer_return.unwrap_or(Return::Minimal)).await
}

/// Applies a PATCH document to the current resource and validates the result.
pub fn apply_patch(current: &Value, payload: &Payload) -> FhirResult<Value> {
    let patched = match payload {
        Payload::Raw(ct, bytes) if ct.eq_ignore_ascii_case("application/json-patch+json") => {
            let ops: Value = serde_json::from_slice(bytes)
                .map_err(|e| FhirError::invalid(format!("Invalid JSON Patch document: {e}")))?;
            flint_fhirpath::patch::json_patch(current, &ops).map_err(patch_error)?
        }
        Payload::Fhir(format, bytes) => {
            let params = format.decode(bytes)?;
            if resource::type_of(&params) != "Parameters" {
                return Err(FhirError::invalid(
                    "A FHIRPath Patch body must be a Parameters resource.",
                ));
            }
            flint_fhirpath::patch::fhirpath_patch(current, &params).map_err(patch_error)?
        }
        Payload::Resource(params) if resource::type_of(params) == "Parameters" => {
            flint_fhirpath::patch::fhirpath_patch(current, params).map_err(patch_error)?
        }
        Payload::None => return Err(FhirError::invalid("The PATCH request has no body.")),
        _ => {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                "PATCH accepts application/json-patch+json (JSON Patch) or a FHIRPath Patch \
                 Parameters resource in application/fhir+json or application/fhir+xml.",
            ));
        }
    };
    let v = flint_model::validate::resource(patched).map_err(|e| {
        let mut fe = FhirError::from(e);
        fe.status = StatusCode::UNPROCESSABLE_ENTITY;
        fe.message = format!("The patched resource is invalid: {}", fe.message);
        fe
    })?;
    Ok(v)
}

fn patch_error(e: flint_fhirpath::patch::PatchError) -> FhirError {
    let mut fe = FhirError::new(StatusCode::UNPROCESSABLE_ENTITY, "processing", e.message);
    fe.expression = e.expression;
    fe
}

/// `PATCH [type]/[id]`: JSON Patch or FHIRPath Patch. Without `If-Match` the patch is applied
/// to the current version and retried if another write intervened, so it never loses an update.
pub async fn patch(ctx: &Ctx, type_name: &str, id: &str, req: &FhirRequest) -> FhirResult<Reply> {
    check_type(type_name)?;
    check_id(id)?;
    for _attempt in 0..5 {
        let db = ctx.state.node().sync().await?;
        let (mut current, current_t) = current(&db, type_name, id).await?;
        strip_version_meta(&mut current);
        let patched = apply_patch(&current, &req.payload)?;
        if resource::id_of(&patched) != Some(id) || resource::type_of(&patched) != type_name {
            return Err(FhirError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "processing",
                "A patch must not change the resource type or id.",
            ));
        }
        let implicit = current_t.to_string();
        let if_match = req.if_match.as_deref().unwrap_or(&implicit);
        let p = prepare_update(ctx, type_name, id, patched, Some(if_match), None)?;
        match commit(ctx, [&p]).await {
            Ok(out) => {
                return write_reply(
                    ctx,
                    &p,
                    &out,
                    req.prefer_return.unwrap_or(Return::Representation),
                );
            }
            Err(e) if e.status == StatusCode::PRECONDITION_FAILED && req.if_match.is_none() => {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
    Err(FhirError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!("Resource `{type_name}/{id}` changed concurrently too often; retry the patch."),
    ))
}

/// A raw Binary reply when the client asked for a non-FHIR media type.
pub fn binary_raw(v: &Value) -> Option<Body> {
    use base64::Engine;
    let ct = v
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    let data = match v.get("data").and_then(Value::as_str) {
        Some(d) => base64::engine::general_purpose::STANDARD.decode(d).ok()?,
        None => Vec::new(),
    };
    Some(Body::Raw(ct.to_string(), Bytes::from(data)))
}
