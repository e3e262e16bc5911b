//! The conditional interactions, which search before they write: create with
//! `If-None-Exist` (`POST [type]`), update and delete by search (`PUT [type]?…`,
//! `DELETE [type]?…`), and the condition checks transaction bundles share.

use crate::api::{Body, FhirRequest, Reply, Return};
use crate::context::{Ctx, check_type, condition_params, payload_resource};
use crate::interaction;
use crate::outcome::{FhirError, FhirResult};
use crate::resource;
use crate::search;
use axum::http::StatusCode;
use flint_db::Db;
use serde_json::Value;

/// `POST [type]`: with `If-None-Exist`, the single current match answers (200) instead of a
/// create; several matches are a 412. The create carries its condition to the indexer, which
/// rejects it if a match was written meanwhile (a concurrent conditional create): then the
/// condition is evaluated again and answers with that match.
pub async fn create(ctx: &Ctx, type_name: &str, req: &FhirRequest) -> FhirResult<Reply> {
    check_type(type_name)?;
    let v = payload_resource(type_name, &req.payload)?;
    let params = req.if_none_exist.as_deref().map(condition_params);
    let (Some(cond), Some(params)) = (&req.if_none_exist, params) else {
        return interaction::create(ctx, type_name, v, req.prefer_return).await;
    };
    if !search::has_criteria(ctx, type_name, &params)? {
        return interaction::create(ctx, type_name, v, req.prefer_return).await;
    }
    // Terminology and `_list` resolved once: the indexer checks the same codes and ids.
    let db = ctx.state.node().sync().await?;
    let params = search::resolve_condition(ctx, &db, type_name, &params).await?;
    let condition = search::condition(ctx, type_name, &params);
    let ret = req.prefer_return.unwrap_or(Return::Representation);
    let mut attempt = 0;
    loop {
        if let Some(existing) = existing(ctx, type_name, cond).await? {
            return Ok(existing);
        }
        let mut p = interaction::prepare_create(ctx, type_name, v.clone(), resource::new_id())?;
        p.cmd.condition = Some(condition.clone());
        match interaction::commit_one(ctx, p, ret).await {
            Err(e) if e.status == StatusCode::CONFLICT && attempt < DELETE_CONDITION_RETRIES => {
                attempt += 1
            }
            r => return r,
        }
    }
}

/// How often a conditional write whose condition the indexer found matched meanwhile is
/// evaluated again (each time a newer database value sees the match that rejected it).
pub const CONDITION_RETRIES: usize = 2;

/// The single current match of a conditional create's condition, as its 200 reply; `None` if
/// nothing matches; 412 for several matches.
pub async fn existing(ctx: &Ctx, type_name: &str, cond: &str) -> FhirResult<Option<Reply>> {
    let db = ctx.state.node().sync().await?;
    Ok(existing_at(ctx, &db, type_name, cond)
        .await?
        .map(|(_, r)| r))
}

/// Like [`existing`] at `db`, with the matching id.
pub async fn existing_at(
    ctx: &Ctx,
    db: &Db,
    type_name: &str,
    cond: &str,
) -> FhirResult<Option<(String, Reply)>> {
    let params = condition_params(cond);
    if !search::has_criteria(ctx, type_name, &params)? {
        return Ok(None);
    }
    let params = search::resolve_condition(ctx, db, type_name, &params).await?;
    let found = search::matches(ctx, db, type_name, &params)?;
    match found.as_slice() {
        [] => Ok(None),
        [h] => {
            let reply = interaction::stored_reply(db, h).await?;
            Ok(Some((h.id.clone(), reply)))
        }
        more => Err(precondition_failed(type_name, cond, more.len())),
    }
}

/// The id a conditional update writes: the body's (or a new one) without a match, the
/// match's with one; 412 for several.
pub fn update_id(
    ctx: &Ctx,
    db: &Db,
    type_name: &str,
    v: &Value,
    query: &[(String, String)],
) -> FhirResult<String> {
    if !search::has_criteria(ctx, type_name, query)? {
        return Err(FhirError::invalid(
            "A conditional update needs search parameters that select the resource.",
        ));
    }
    let found = search::matches(ctx, db, type_name, query)?;
    let body_id = v.get("id").and_then(Value::as_str).map(str::to_string);
    match found.as_slice() {
        [] => Ok(body_id.unwrap_or_else(resource::new_id)),
        [h] => {
            if let Some(b) = &body_id
                && *b != h.id
            {
                return Err(FhirError::invalid(format!(
                    "The resource id `{b}` differs from the id `{}` of the resource matching the condition.",
                    h.id
                ))
                .at("id"));
            }
            Ok(h.id.clone())
        }
        more => Err(precondition_failed(
            type_name,
            &query_text(query),
            more.len(),
        )),
    }
}

/// The ids a conditional delete removes (limits as [`delete`]).
pub fn delete_ids(
    ctx: &Ctx,
    db: &Db,
    type_name: &str,
    query: &[(String, String)],
) -> FhirResult<Vec<String>> {
    // Counted before versions are resolved: a condition matching millions is refused cheaply.
    let found = search::match_list(ctx, db, type_name, query)?;
    let n = found.len();
    if n > 1 && !ctx.state.config().allow_multiple_delete {
        return Err(precondition_failed(type_name, &query_text(query), n));
    }
    if n > MAX_CONDITIONAL_DELETE {
        let what = if query.is_empty() {
            format!("`DELETE {type_name}` would delete {n} resources")
        } else {
            format!("The condition matches {n} resources")
        };
        return Err(FhirError::new(
            StatusCode::CONFLICT,
            "too-costly",
            format!("{what}; a conditional delete deletes at most {MAX_CONDITIONAL_DELETE}."),
        ));
    }
    let handles = found.into_handles(db).map_err(search::search_error)?;
    Ok(handles.into_iter().map(|h| h.id).collect())
}

fn query_text(query: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter())
        .finish()
}

fn precondition_failed(type_name: &str, cond: &str, n: usize) -> FhirError {
    FhirError::new(
        StatusCode::PRECONDITION_FAILED,
        "multiple-matches",
        format!("The condition `{type_name}?{cond}` matches {n} resources; expected at most one."),
    )
}

/// `PUT [type]?[search]`: no match creates (with the body's id, if any), one match updates
/// it, several are a 412.
pub async fn update(ctx: &Ctx, type_name: &str, req: &FhirRequest) -> FhirResult<Reply> {
    check_type(type_name)?;
    let v = payload_resource(type_name, &req.payload)?;
    let ret = req.prefer_return.unwrap_or(Return::Representation);
    let mut attempt = 0;
    loop {
        let db = ctx.state.node().sync().await?;
        let query = search::resolve_condition(ctx, &db, type_name, &req.query).await?;
        let condition = search::condition(ctx, type_name, &query);
        let id = update_id(ctx, &db, type_name, &v, &query)?;
        let mut v = v.clone();
        resource::set_id(&mut v, &id);
        let mut p = interaction::prepare_update(
            ctx,
            type_name,
            &id,
            v,
            req.if_match.as_deref(),
            req.if_none_match.as_deref(),
        )?;
        // The indexer rejects the write if another resource matches by then.
        p.cmd.condition = Some(condition.clone());
        match interaction::commit_one(ctx, p, ret).await {
            Err(e) if e.status == StatusCode::CONFLICT && attempt < CONDITION_RETRIES => {
                attempt += 1
            }
            r => return r,
        }
    }
}

/// `DELETE [type]?[search]`: deletes the match (all matches up to 10,000 with
/// `ALLOW_MULTIPLE_DELETE`, then 409 `too-costly`); no match is a success. Without criteria
/// (`DELETE [type]`) every resource of the type matches, as in Blaze. One transaction, which
/// carries the condition to the indexer: if a match was written meanwhile, the indexer
/// rejects it and the condition is evaluated again, so the delete removes exactly what its
/// condition selects at its place in the log.
pub async fn delete(ctx: &Ctx, type_name: &str, req: &FhirRequest) -> FhirResult<Reply> {
    check_type(type_name)?;
    let mut attempt = 0;
    let ids = loop {
        let db = ctx.state.node().sync().await?;
        // `:in`, `:below`, `_list` resolved to plain codes and ids at this database value;
        // the indexer re-checks the resolved search.
        let query = search::resolve_condition(ctx, &db, type_name, &req.query).await?;
        let ids = delete_ids(ctx, &db, type_name, &query)?;
        drop(db);
        if ids.is_empty() {
            break ids;
        }
        let condition = search::condition(ctx, type_name, &query);
        let mut prepared = ids
            .iter()
            .map(|id| interaction::prepare_delete(ctx, type_name, id))
            .collect::<FhirResult<Vec<_>>>()?;
        // On one command: the indexer evaluates it once for the whole transaction.
        prepared[0].cmd.condition = Some(condition.clone());
        match interaction::commit(ctx, &prepared).await {
            Ok(_) => break ids,
            Err(e) if e.status == StatusCode::CONFLICT && attempt < CONDITION_RETRIES => {
                attempt += 1
            }
            Err(e) => return Err(e),
        }
    };
    if req.prefer_return == Some(Return::OperationOutcome) {
        return Ok(Reply::new(
            200,
            Body::Resource(serde_json::json!({
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "information", "code": "success",
                    "diagnostics": format!("Successfully deleted {} {type_name} resources.", ids.len())}]
            })),
        ));
    }
    Ok(Reply::new(204, Body::None))
}

/// How often a conditional delete that the indexer rejected (a match was written after the
/// condition was evaluated) is evaluated again: unlike a create, which then finds the match,
/// a delete can lose again to every new match, so it tries more often.
pub const DELETE_CONDITION_RETRIES: usize = 10;

/// Most resources one conditional delete removes (as Blaze).
pub const MAX_CONDITIONAL_DELETE: usize = 10_000;
