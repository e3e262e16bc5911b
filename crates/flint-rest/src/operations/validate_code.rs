//! `ValueSet/$validate-code` and `CodeSystem/$validate-code` (type and instance level, GET
//! or POST; OperationDefinitions `ValueSet-validate-code` and `CodeSystem-validate-code`):
//! whether a code (`code` + `system` (+ `systemVersion`/`version`), a `coding` or a
//! `codeableConcept`) is in a ValueSet or a CodeSystem, as a `Parameters` with `result`,
//! `message`, `display`, `code` and `system`. See docs/terminology.md.
//!
//! * ValueSet: `url` (+ `valueSetVersion`) or `valueSet` (POST), or `ValueSet/[id]`;
//!   `inferSystem` finds the system of a bare code among the value set's systems.
//! * CodeSystem: `url` (+ `version`) or `codeSystem` (POST), or `CodeSystem/[id]`; without
//!   them the `coding`'s system.
//!
//! A wrong `display` is a warning (`result` stays true, `message` says it). An invalid code
//! is `result` false with a `message`, as is a code of a CodeSystem that is not known. An
//! unknown ValueSet or CodeSystem to validate against: 404 `not-found` at `url`. `date`,
//! `abstract`, `displayLanguage` and `context` are accepted and ignored.

use super::terminology::{Params, canonical, code_system, reply, session, tx_error, value_set};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use flint_terminology::CodeSystem;
use std::sync::Arc;

/// The registration of `ValueSet/$validate-code`.
pub const VALUE_SET: Operation = Operation {
    name: "validate-code",
    definition: "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
    levels: &[Level::Type, Level::Instance],
    types: &["ValueSet"],
    methods: &["GET", "POST"],
    run: run_value_set,
};

/// The registration of `CodeSystem/$validate-code`.
pub const CODE_SYSTEM: Operation = Operation {
    name: "validate-code",
    definition: "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code",
    levels: &[Level::Type, Level::Instance],
    types: &["CodeSystem"],
    methods: &["GET", "POST"],
    run: run_code_system,
};

const VALUE_SET_PARAMS: [&str; 15] = [
    "url",
    "valueSet",
    "valueSetVersion",
    "code",
    "system",
    "systemVersion",
    "display",
    "coding",
    "codeableConcept",
    "inferSystem",
    "tx-resource",
    "date",
    "abstract",
    "displayLanguage",
    "context",
];

const CODE_SYSTEM_PARAMS: [&str; 12] = [
    "url",
    "codeSystem",
    "version",
    "code",
    "display",
    "coding",
    "codeableConcept",
    "tx-resource",
    "date",
    "abstract",
    "displayLanguage",
    "system",
];

fn run_value_set<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(in_value_set(ctx, target, req))
}

fn run_code_system<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(in_code_system(ctx, target, req))
}

async fn in_value_set(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &VALUE_SET_PARAMS, "validate-code")?;
    let codings = params.codings("system", "systemVersion")?;
    let infer = params.boolean("inferSystem", false)?;
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?;
    let vs = value_set(&s, &db, target, &params, "`ValueSet/$validate-code`").await?;
    let out = s
        .validate_in_value_set(&vs, &codings, infer)
        .await
        .map_err(|e| tx_error(e, &params, "url"))?;
    Ok(reply(out))
}

async fn in_code_system(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &CODE_SYSTEM_PARAMS, "validate-code")?;
    let codings = params.codings("system", "version")?;
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?;
    let cs = match target {
        Target::Instance(..) => code_system(&s, &db, target, &params, None, "url").await?,
        _ => {
            if let Some(cs) = params.resource("codeSystem", "CodeSystem")? {
                Arc::new(CodeSystem::of(&cs))
            } else {
                let (url, at) = match params.text("url")? {
                    Some(u) => (u, "url"),
                    None => match codings.first().and_then(|c| c.system.clone()) {
                        Some(u) => (u, "system"),
                        None => {
                            return Err(FhirError::invalid(
                                "`CodeSystem/$validate-code` needs the parameter `url` or \
                                 `codeSystem` (or a CodeSystem/[id]).",
                            )
                            .at("url"));
                        }
                    },
                };
                let url = canonical(&url, params.text("version")?.as_deref());
                code_system(&s, &db, target, &params, Some(url), at).await?
            }
        }
    };
    Ok(reply(s.validate_in_code_system(&cs, &codings)))
}
