//! Batch and transaction bundles.
//!
//! A batch answers each entry on its own (each write its own transaction). A transaction is
//! all-or-nothing and becomes one transaction-log entry: server ids are assigned, references
//! between entries (`urn:uuid:`/`urn:oid:` full URLs, absolute and relative RESTful URLs) are
//! rewritten, all writes are prepared and committed together, and GET entries are answered
//! afterwards against the database value of the transaction.

use crate::api::{Body, FhirRequest, Handling, Payload, Reply, Return};
use crate::conditional;
use crate::context::{Ctx, condition_params, path_segments, query_pairs};
use crate::interaction::{self, Prepared, WriteKind};
use crate::outcome::{FhirError, FhirResult};
use crate::resource::{self, format_instant, strip_version_meta};
use crate::search;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// Answers an entry's request as the server answers it over HTTP: the router's dispatch,
/// passed in by the router so that bundles do not depend on the routing above them. It
/// answers every batch entry and the reads of a transaction.
pub type Dispatch =
    for<'a> fn(&'a Ctx, FhirRequest) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>>;

/// An entry's request, parsed.
struct EntryRequest {
    method: String,
    path: Vec<String>,
    query: Vec<(String, String)>,
    url: String,
}

fn entry_path(i: usize) -> String {
    format!("Bundle.entry[{i}]")
}

fn parse_entry_request(ctx: &Ctx, i: usize, entry: &Value) -> FhirResult<EntryRequest> {
    let req = entry.get("request").ok_or_else(|| {
        FhirError::invalid("Missing request in bundle entry.")
            .at(format!("{}.request", entry_path(i)))
    })?;
    let method = req
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            FhirError::invalid("Missing request method.")
                .at(format!("{}.request.method", entry_path(i)))
        })?
        .to_ascii_uppercase();
    let url = req.get("url").and_then(Value::as_str).ok_or_else(|| {
        FhirError::invalid("Missing request url.").at(format!("{}.request.url", entry_path(i)))
    })?;
    let rel = url
        .strip_prefix(&ctx.base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(url)
        .trim_start_matches('/');
    // A URL in the query (`code=http://loinc.org|…`) is a search value, not a server.
    if rel.split('?').next().unwrap_or(rel).contains("://") {
        return Err(FhirError::invalid(format!(
            "The request url `{url}` points to another server."
        ))
        .at(format!("{}.request.url", entry_path(i))));
    }
    let (path, query) = rel.split_once('?').unwrap_or((rel, ""));
    Ok(EntryRequest {
        method,
        path: path_segments(path),
        query: query_pairs(query),
        url: url.to_string(),
    })
}

fn header(entry: &Value, name: &str) -> Option<String> {
    entry
        .get("request")
        .and_then(|r| r.get(name))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// `POST [base]` with a Bundle of type batch or transaction; `dispatch` answers the entries
/// that are routed like requests of their own.
pub async fn process(
    ctx: &Ctx,
    bundle: Value,
    prefer: Option<Return>,
    dispatch: Dispatch,
) -> FhirResult<Reply> {
    if resource::type_of(&bundle) != "Bundle" {
        return Err(FhirError::invalid(format!(
            "Expected a Bundle but got `{}`.",
            resource::type_of(&bundle)
        ))
        .at("resourceType"));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => batch(ctx, bundle, prefer, dispatch).await,
        Some("transaction") => transaction(ctx, bundle, prefer, dispatch).await,
        other => Err(FhirError::invalid(format!(
            "Expected a Bundle of type batch or transaction but got `{}`.",
            other.unwrap_or("none")
        ))
        .at("Bundle.type")),
    }
}

/// Takes the entries out of `bundle` (which is not used afterwards).
fn entries(bundle: &mut Value) -> Vec<Value> {
    match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    }
}

/// The request of entry `i`; its resource is moved out of `entry`.
fn entry_request(
    ctx: &Ctx,
    i: usize,
    entry: &mut Value,
    prefer: Option<Return>,
) -> FhirResult<FhirRequest> {
    let er = parse_entry_request(ctx, i, entry)?;
    Ok(FhirRequest {
        method: er.method,
        path: er.path,
        query: er.query,
        if_match: header(entry, "ifMatch"),
        if_none_match: header(entry, "ifNoneMatch"),
        if_none_exist: header(entry, "ifNoneExist"),
        prefer_return: prefer,
        handling: Handling::Lenient,
        payload: match entry.get_mut("resource") {
            Some(r) => Payload::Resource(r.take()),
            None => Payload::None,
        },
    })
}

async fn batch(
    ctx: &Ctx,
    mut bundle: Value,
    prefer: Option<Return>,
    dispatch: Dispatch,
) -> FhirResult<Reply> {
    let mut out = Vec::new();
    for (i, entry) in entries(&mut bundle).iter_mut().enumerate() {
        let reply = match entry_request(ctx, i, entry, Some(prefer.unwrap_or(Return::Minimal))) {
            Ok(req) if req.method == "POST" && req.path.is_empty() => Reply::error(
                &FhirError::unsupported("Nested batch or transaction bundles are not supported.")
                    .at(format!("{}.request", entry_path(i))),
            ),
            Ok(req) => dispatch(ctx, req).await,
            Err(e) => Reply::error(&e),
        };
        out.push(response_entry(reply));
    }
    Ok(response_bundle("batch-response", out))
}

/// Turns a reply into a response bundle entry; `response.status` is the bare code (`"201"`),
/// as Blaze answers (the spec allows a reason phrase after it).
fn response_entry(reply: Reply) -> Value {
    let mut response = Map::new();
    response.insert("status".into(), json!(reply.status.to_string()));
    if let Some(l) = &reply.location {
        response.insert("location".into(), json!(l));
    }
    if let Some(t) = reply.etag {
        response.insert("etag".into(), json!(format!("W/\"{t}\"")));
    }
    if let Some(ms) = reply.last_modified {
        response.insert("lastModified".into(), json!(format_instant(ms)));
    }
    let mut entry = Map::new();
    match reply.body {
        Body::Stored(s) => match s.to_value() {
            Ok(v) => {
                entry.insert("resource".into(), v);
            }
            Err(e) => {
                response.insert("outcome".into(), e.to_outcome());
            }
        },
        Body::Resource(v) | Body::Read(v) => {
            if reply.status >= 400 || resource::type_of(&v) == "OperationOutcome" {
                response.insert("outcome".into(), v);
            } else {
                entry.insert("resource".into(), v);
            }
        }
        Body::Bundle(b) => match b.to_value() {
            Ok(v) => {
                entry.insert("resource".into(), v);
            }
            Err(e) => {
                response.insert("outcome".into(), e.to_outcome());
            }
        },
        Body::Raw(..) | Body::None => {}
    }
    entry.insert("response".into(), Value::Object(response));
    Value::Object(entry)
}

/// A `batch-response` Bundle of one entry answering the error `e` (the answer of an
/// asynchronous request that failed as a whole).
pub fn error_response(e: &FhirError) -> Value {
    json!({"resourceType": "Bundle", "type": "batch-response",
           "entry": [response_entry(Reply::error(e))]})
}

fn response_bundle(ty: &str, entries: Vec<Value>) -> Reply {
    let mut b = json!({"resourceType": "Bundle", "type": ty});
    if !entries.is_empty() {
        b["entry"] = Value::Array(entries);
    }
    Reply::new(200, Body::Resource(b))
}

/// The base of an absolute RESTful URL `.../Type/id` (everything before `/Type/id`).
fn restful_base(full_url: &str) -> Option<&str> {
    let (rest, _id) = full_url.rsplit_once('/')?;
    let (base, ty) = rest.rsplit_once('/')?;
    flint_model::defs::definitions()
        .is_resource_type(ty)
        .then_some(base)
}

/// What a transaction does for an entry (by entry index).
enum Planned {
    /// A prepared write with its own response entry.
    Write(usize, Prepared),
    /// A read, answered after the commit.
    Read(usize, FhirRequest),
    /// A conditional create that matched an existing resource.
    Existing(usize, Reply),
    /// A conditional delete (its deletions are `Silent`).
    Deleted(usize),
    /// A write without its own response entry.
    Silent(Prepared),
}

/// Whether a reference is a conditional one (`Type?params`).
fn is_conditional_reference(reference: &str) -> bool {
    reference.split_once('?').is_some_and(|(ty, _)| {
        !ty.contains('/') && flint_model::defs::definitions().is_resource_type(ty)
    })
}

/// Resolves `Type?params` to the `Type/id` of its single match.
fn resolve_conditional(ctx: &Ctx, db: &flint_db::Db, reference: &str) -> FhirResult<String> {
    let (ty, q) = reference.split_once('?').unwrap_or((reference, ""));
    let params = condition_params(q);
    let found = search::matches(ctx, db, ty, &params)?;
    match found.as_slice() {
        [h] => Ok(format!("{ty}/{}", h.id)),
        [] => Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "not-found",
            format!("The conditional reference `{reference}` matches no resource."),
        )),
        more => Err(FhirError::new(
            StatusCode::PRECONDITION_FAILED,
            "multiple-matches",
            format!(
                "The conditional reference `{reference}` matches {} resources; expected one.",
                more.len()
            ),
        )),
    }
}

/// A transaction, in phases: [`assign`] (parse the entries' requests, assign ids, match
/// conditional creates), [`rewrite_references`] (between entries, and conditional ones),
/// [`plan_writes`] (prepare every write; any error fails the whole transaction),
/// [`commit_writes`] (one transaction) and [`answer`] (the response entries in entry order;
/// reads see the transaction's result).
async fn transaction(
    ctx: &Ctx,
    mut bundle: Value,
    prefer: Option<Return>,
    dispatch: Dispatch,
) -> FhirResult<Reply> {
    // The indexer rejects (409) a transaction whose conditional create, update or delete
    // another write matched meanwhile: the conditions are then evaluated again on a newer
    // database.
    let conditional = has_conditional_writes(&bundle);
    let mut attempt = 0;
    loop {
        let retry = conditional && attempt < conditional::CONDITION_RETRIES;
        let b = if retry {
            bundle.clone()
        } else {
            std::mem::take(&mut bundle)
        };
        match transaction_once(ctx, b, prefer, dispatch).await {
            Err(e) if retry && e.status == StatusCode::CONFLICT => attempt += 1,
            r => return r,
        }
    }
}

/// Whether a transaction Bundle has a conditional create, update or delete entry.
fn has_conditional_writes(bundle: &Value) -> bool {
    bundle["entry"].as_array().is_some_and(|es| {
        es.iter().any(|e| {
            let r = &e["request"];
            let url = r["url"].as_str().unwrap_or("");
            let path = url.split('?').next().unwrap_or("").trim_matches('/');
            r.get("ifNoneExist").is_some()
                || (r["method"] == "PUT" && url.contains('?'))
                || (r["method"] == "DELETE" && (url.contains('?') || !path.contains('/')))
        })
    })
}

/// One attempt of [`transaction`].
async fn transaction_once(
    ctx: &Ctx,
    mut bundle: Value,
    prefer: Option<Return>,
    dispatch: Dispatch,
) -> FhirResult<Reply> {
    let mut entries = entries(&mut bundle);
    let db = ctx.state.node().sync().await?;
    let assigned = assign(ctx, &db, &entries).await?;
    rewrite_references(ctx, &db, &mut entries, &assigned.urls)?;
    let planned = plan_writes(ctx, &db, &mut entries, assigned).await?;
    let out = commit_writes(ctx, &planned).await?;
    let ret = prefer.unwrap_or(Return::Minimal);
    answer(ctx, planned, out.as_ref(), ret, dispatch).await
}

/// A transaction's entries after [`assign`].
struct Assigned {
    /// Each entry's request, in entry order.
    requests: Vec<EntryRequest>,
    /// The server-assigned ids of creates, by entry index.
    ids: HashMap<usize, String>,
    /// The replies of conditional creates that matched an existing resource, by entry index.
    existing: HashMap<usize, Reply>,
    /// The local references (`Type/id`) the entries' full URLs stand for.
    urls: HashMap<String, String>,
}

/// Parses each entry's request, assigns ids to creates and maps full URLs to their new local
/// references; conditional creates matching an existing resource refer to it and write
/// nothing.
async fn assign(ctx: &Ctx, db: &flint_db::Db, entries: &[Value]) -> FhirResult<Assigned> {
    let mut ids: HashMap<usize, String> = HashMap::new();
    let mut existing: HashMap<usize, Reply> = HashMap::new();
    let mut map: HashMap<String, String> = HashMap::new();
    let mut requests = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let er = parse_entry_request(ctx, i, entry)?;
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        match (er.method.as_str(), er.path.as_slice()) {
            ("POST", [ty]) => {
                let found = match header(entry, "ifNoneExist") {
                    Some(cond) => conditional::existing_at(ctx, db, ty, &cond)
                        .await
                        .map_err(|e| e.at(format!("{}.request.ifNoneExist", entry_path(i))))?,
                    None => None,
                };
                match found {
                    Some((id, reply)) => {
                        if let Some(f) = full_url {
                            map.insert(f.to_string(), format!("{ty}/{id}"));
                        }
                        existing.insert(i, reply);
                    }
                    None => {
                        let id = resource::new_id();
                        if let Some(f) = full_url {
                            map.insert(f.to_string(), format!("{ty}/{id}"));
                        }
                        ids.insert(i, id);
                    }
                }
            }
            ("PUT", [ty, id]) | ("PATCH", [ty, id]) => {
                if let Some(f) = full_url {
                    map.insert(f.to_string(), format!("{ty}/{id}"));
                }
            }
            _ => {}
        }
        requests.push(er);
    }
    Ok(Assigned {
        requests,
        ids,
        existing,
        urls: map,
    })
}

/// Rewrites references between entries (full URLs, and relative references under an entry's
/// RESTful base) to the local references of `map`, and resolves conditional references
/// (`Patient?identifier=...`) against `db` before the transaction; only each resource's own
/// references (a Bundle stored by an entry keeps its entries' references as written).
fn rewrite_references(
    ctx: &Ctx,
    db: &flint_db::Db,
    entries: &mut [Value],
    map: &HashMap<String, String>,
) -> FhirResult<()> {
    let mut conditional: HashMap<String, FhirResult<String>> = HashMap::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        let full_url = entry
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_string);
        let base = full_url
            .as_deref()
            .and_then(restful_base)
            .map(str::to_string);
        if let Some(r) = entry.get_mut("resource") {
            let mut pending = Vec::new();
            flint_model::refs::for_each_own_reference_mut(r, |reference| {
                if let Some(new) = map.get(reference.as_str()) {
                    *reference = new.clone();
                } else if let Some(b) = &base
                    && !reference.contains(':')
                    && !reference.starts_with('#')
                    && let Some(new) = map.get(&format!("{b}/{reference}"))
                {
                    *reference = new.clone();
                } else if is_conditional_reference(reference) {
                    pending.push(reference.clone());
                }
            });
            for c in pending {
                if !conditional.contains_key(&c) {
                    let resolved = resolve_conditional(ctx, db, &c);
                    conditional.insert(c.clone(), resolved);
                }
                if let Some(Err(e)) = conditional.get(&c) {
                    return Err(e.clone().at(format!("{}.resource", entry_path(i))));
                }
            }
            if !conditional.is_empty() {
                flint_model::refs::for_each_own_reference_mut(r, |reference| {
                    if let Some(Ok(new)) = conditional.get(reference.as_str()) {
                        *reference = new.clone();
                    }
                });
            }
        }
    }
    Ok(())
}

/// Prepares every write of the transaction (and plans its reads), in entry order; any error
/// fails the whole transaction, pointing at its entry.
async fn plan_writes(
    ctx: &Ctx,
    db: &flint_db::Db,
    entries: &mut [Value],
    assigned: Assigned,
) -> FhirResult<Vec<Planned>> {
    let Assigned {
        requests,
        mut ids,
        mut existing,
        ..
    } = assigned;
    let mut planned = Vec::with_capacity(entries.len());
    for (i, (entry, er)) in entries.iter_mut().zip(requests).enumerate() {
        let at = |e: FhirError| {
            if e.expression.is_some() && e.status == StatusCode::BAD_REQUEST {
                e.within(&format!("{}.resource", entry_path(i)))
            } else if e.expression.is_none() {
                e.at(format!("{}.request.url", entry_path(i)))
            } else {
                e
            }
        };
        let resource_of = |entry: &mut Value| -> FhirResult<Value> {
            let mut v = entry.get_mut("resource").map(Value::take).ok_or_else(|| {
                FhirError::invalid("Missing resource in bundle entry.")
                    .at(format!("{}.resource", entry_path(i)))
            })?;
            // The bundle was validated as a whole; rewriting references keeps it valid.
            strip_version_meta(&mut v);
            Ok(v)
        };
        let p = match (er.method.as_str(), er.path.as_slice()) {
            ("POST", [_]) if existing.contains_key(&i) => {
                if let Some(r) = existing.remove(&i) {
                    planned.push(Planned::Existing(i, r));
                }
                continue;
            }
            ("POST", [ty]) => {
                let v = resource_of(entry).map_err(at)?;
                let id = ids.remove(&i).unwrap_or_else(resource::new_id);
                let mut p = interaction::prepare_create(ctx, ty, v, id).map_err(at)?;
                if let Some(cond) = header(entry, "ifNoneExist") {
                    let params = condition_params(&cond);
                    if search::has_criteria(ctx, ty, &params).map_err(at)? {
                        let params = search::resolve_condition(ctx, db, ty, &params)
                            .await
                            .map_err(at)?;
                        p.cmd.condition = Some(search::condition(ctx, ty, &params));
                    }
                }
                p
            }
            ("PUT", [ty, id]) => {
                let v = resource_of(entry).map_err(at)?;
                interaction::prepare_update(
                    ctx,
                    ty,
                    id,
                    v,
                    header(entry, "ifMatch").as_deref(),
                    header(entry, "ifNoneMatch").as_deref(),
                )
                .map_err(at)?
            }
            ("PUT", [ty]) => {
                let mut v = resource_of(entry).map_err(at)?;
                let query = search::resolve_condition(ctx, db, ty, &er.query)
                    .await
                    .map_err(at)?;
                let id = conditional::update_id(ctx, db, ty, &v, &query).map_err(at)?;
                resource::set_id(&mut v, &id);
                let mut p = interaction::prepare_update(
                    ctx,
                    ty,
                    &id,
                    v,
                    header(entry, "ifMatch").as_deref(),
                    header(entry, "ifNoneMatch").as_deref(),
                )
                .map_err(at)?;
                p.cmd.condition = Some(search::condition(ctx, ty, &query));
                p
            }
            ("DELETE", [ty, id]) => interaction::prepare_delete(ctx, ty, id).map_err(at)?,
            ("DELETE", [ty]) => {
                let query = search::resolve_condition(ctx, db, ty, &er.query)
                    .await
                    .map_err(at)?;
                let ids = conditional::delete_ids(ctx, db, ty, &query).map_err(at)?;
                for (n, id) in ids.iter().enumerate() {
                    let mut p = interaction::prepare_delete(ctx, ty, id).map_err(at)?;
                    if n == 0 {
                        // The indexer checks that the transaction deletes every match.
                        p.cmd.condition = Some(search::condition(ctx, ty, &query));
                    }
                    planned.push(Planned::Silent(p));
                }
                planned.push(Planned::Deleted(i));
                continue;
            }
            ("PATCH", [ty, id]) => {
                let req = entry_request(ctx, i, entry, None)?;
                prepare_patch(ctx, db, ty, id, &req).await.map_err(at)?
            }
            ("GET", _) => {
                planned.push(Planned::Read(i, entry_request(ctx, i, entry, None)?));
                continue;
            }
            (m, _) => {
                return Err(at(FhirError::unsupported(format!(
                    "Unsupported request `{m} {}` in a transaction.",
                    er.url
                ))));
            }
        };
        planned.push(Planned::Write(i, p));
    }
    Ok(planned)
}

/// The writes of a plan, in order.
fn writes(planned: &[Planned]) -> impl Iterator<Item = &Prepared> {
    planned.iter().filter_map(|p| match p {
        Planned::Write(_, w) | Planned::Silent(w) => Some(w),
        _ => None,
    })
}

/// Commits all planned writes as one transaction; `None` when there are none.
async fn commit_writes(ctx: &Ctx, planned: &[Planned]) -> FhirResult<Option<flint_db::TxOutcome>> {
    if writes(planned).next().is_none() {
        return Ok(None);
    }
    Ok(Some(interaction::commit(ctx, writes(planned)).await?))
}

/// The transaction-response Bundle: one entry per request entry, in entry order; writes are
/// answered from the transaction's outcome `out`, reads by `dispatch` after the commit.
async fn answer(
    ctx: &Ctx,
    planned: Vec<Planned>,
    out: Option<&flint_db::TxOutcome>,
    ret: Return,
    dispatch: Dispatch,
) -> FhirResult<Reply> {
    let mut replies: Vec<(usize, Value)> = Vec::with_capacity(planned.len());
    for p in planned {
        match p {
            Planned::Existing(i, r) => replies.push((i, response_entry(r))),
            Planned::Deleted(i) => replies.push((i, response_entry(Reply::new(204, Body::None)))),
            Planned::Silent(_) => {}
            Planned::Write(i, w) => {
                if let Some(out) = out {
                    let mut r = interaction::write_reply(ctx, &w, out, ret)?;
                    if w.kind == WriteKind::Delete {
                        r.status = 204;
                        r.body = Body::None;
                    }
                    replies.push((i, response_entry(r)));
                }
            }
            Planned::Read(i, req) => {
                let r = dispatch(ctx, req).await;
                replies.push((i, response_entry(r)));
            }
        }
    }
    replies.sort_by_key(|(i, _)| *i);
    Ok(response_bundle(
        "transaction-response",
        replies.into_iter().map(|(_, v)| v).collect(),
    ))
}

async fn prepare_patch(
    ctx: &Ctx,
    db: &flint_db::Db,
    ty: &str,
    id: &str,
    req: &FhirRequest,
) -> FhirResult<Prepared> {
    let (mut v, current_t) = interaction::current(db, ty, id).await?;
    strip_version_meta(&mut v);
    let patched = interaction::apply_patch(&v, &req.payload)?;
    let if_match = req
        .if_match
        .clone()
        .unwrap_or_else(|| current_t.to_string());
    interaction::prepare_update(ctx, ty, id, patched, Some(&if_match), None)
}
