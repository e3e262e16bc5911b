//! `Patient/[id]/$purge` (instance level, POST only; Blaze's OperationDefinition
//! `Patient-purge`; offered only with `ENABLE_OPERATION_PATIENT_PURGE`, off by default): erases
//! a patient's record, every current and historical version of the Patient and of each
//! resource of its compartment, from the index and (once no older database value is in use)
//! from the resource store. Answers an OperationOutcome naming how many resources went.
//!
//! What is purged, found at the database value the request reads (as conditional deletes are,
//! see ARCHITECTURE.md): the Patient (also when it is deleted); every resource currently in
//! its compartment (the search parameters of CompartmentDefinition `patient`); and every
//! deleted resource whose last version before the deletion was in the compartment (found
//! through the resources that ever referenced the patient). A resource that left the
//! compartment by an update (now another patient's) keeps its history; `DELETE
//! [type]/[id]/_history` removes that.
//!
//! The purge is one transaction of `purge` log commands, one per resource, each naming the
//! local references its versions held (the indexer deletes their referenced-by rows). Every
//! node's indexer applies it in log order. With referential integrity enforced
//! (`ENFORCE_REFERENTIAL_INTEGRITY`, as Blaze) a purged resource that a resource left alive
//! references makes the purge fail with 409 naming both, and nothing is removed; without it
//! such references dangle. More than `MAX_REMOVED_VERSIONS` (100,000) versions: 409
//! `too-costly`. An unknown patient: 404.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Handling, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult, info_outcome};
use crate::search::{self, search_error};
use axum::http::StatusCode;
use flint_db::index::MAX_REMOVED_VERSIONS;
use flint_db::{Db, TxCmd, TxOp};
use std::collections::{BTreeMap, BTreeSet};

/// The registration of `$purge`.
pub const OPERATION: Operation = Operation {
    name: "purge",
    definition: "https://samply.github.io/blaze/fhir/OperationDefinition/Patient-purge",
    levels: &[Level::Instance],
    types: &["Patient"],
    methods: &["POST"],
    run,
};

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, _req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(async move {
        let Target::Instance(_, id) = target else {
            return Err(FhirError::invalid("`$purge` is an instance operation."));
        };
        purge(ctx, id).await
    })
}

async fn purge(ctx: &Ctx, id: &str) -> FhirResult<Reply> {
    let db = ctx.read_db().await?;
    if db.resource("Patient", id)?.is_none() {
        return Err(FhirError::not_found(format!(
            "Resource `Patient/{id}` was not found."
        )));
    }
    let record = record(ctx, &db, id)?;
    let mut cmds = Vec::with_capacity(record.len());
    let mut versions = 0usize;
    for (ty, rid) in &record {
        let history = db.instance_history(ty, rid, None, 0, usize::MAX)?;
        versions += history.len();
        if versions > MAX_REMOVED_VERSIONS {
            return Err(FhirError::new(
                StatusCode::CONFLICT,
                "too-costly",
                format!(
                    "Purging `Patient/{id}` would remove more than {MAX_REMOVED_VERSIONS} \
                     resource versions."
                ),
            ));
        }
        let live: Vec<_> = history.into_iter().filter(|h| !h.is_deleted()).collect();
        let mut refs = BTreeSet::new();
        for content in db.pull_many(&live).await? {
            let v: serde_json::Value = serde_json::from_slice(&content).map_err(|e| {
                FhirError::from(flint_db::DbError::fault(format!(
                    "stored content of `{ty}/{rid}` is not JSON: {e}"
                )))
            })?;
            refs.extend(crate::resource::local_refs_with_carried(&v, &ctx.base));
        }
        let mut cmd = TxCmd::new(TxOp::Purge, ty, rid, None);
        cmd.refs = refs.into_iter().collect();
        cmd.check_refs = ctx.state.config().enforce_referential_integrity;
        cmds.push(cmd);
    }
    let n = cmds.len();
    // The request's database value must not hold back the erasure of what it purges.
    drop(db);
    ctx.state.node().transact(cmds, Vec::new()).await?;
    Ok(Reply::new(
        200,
        Body::Resource(info_outcome(&format!(
            "Purged `Patient/{id}` and {} resource(s) of its compartment, with all their versions.",
            n - 1
        ))),
    ))
}

/// The Patient and the resources its purge removes (see the module documentation), the
/// Patient first, then by type and id.
fn record(ctx: &Ctx, db: &Db, id: &str) -> FhirResult<Vec<(String, String)>> {
    let registry = ctx.state.registry();
    let engine = ctx.state.engine();
    let compartment_types: Vec<&str> = flint_model::defs::definitions()
        .resource_types()
        .iter()
        .map(String::as_str)
        .filter(|t| *t != "Patient" && !registry.compartment_params("Patient", t).is_empty())
        .collect();
    let mut members: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for ty in &compartment_types {
        let query = search::parse(ctx, ty, &[], Handling::Strict)?;
        let found = engine
            .matches_in_compartment(db, "Patient", id, &query)
            .and_then(|m| m.into_handles(db))
            .map_err(search_error)?;
        members
            .entry(ty)
            .or_default()
            .extend(found.into_iter().map(|h| h.id));
    }
    // Deleted resources that were members until their deletion: among those that ever
    // referenced the patient, each checked at the database value of its last version.
    for (ty, rid) in db.referencing_sources("Patient", id)? {
        let Some(ty) = compartment_types.iter().find(|t| **t == ty) else {
            continue;
        };
        if members.get(ty).is_some_and(|m| m.contains(&rid)) {
            continue;
        }
        let Some(current) = db.resource(ty, &rid)? else {
            continue;
        };
        if !current.is_deleted() {
            continue;
        }
        let Some(last) = db
            .instance_history(ty, &rid, None, 0, usize::MAX)?
            .into_iter()
            .find(|h| !h.is_deleted())
        else {
            continue;
        };
        let then = db.as_of(last.t);
        let query = search::parse(ctx, ty, &[("_id".into(), rid.clone())], Handling::Strict)?;
        let was_member = !engine
            .matches_in_compartment(&then, "Patient", id, &query)
            .and_then(|m| m.into_handles(&then))
            .map_err(search_error)?
            .is_empty();
        if was_member {
            members.entry(ty).or_default().insert(rid);
        }
    }
    let mut out = vec![("Patient".to_string(), id.to_string())];
    for (ty, ids) in members {
        out.extend(ids.into_iter().map(|i| (ty.to_string(), i)));
    }
    Ok(out)
}
