//! `CodeSystem/$subsumes` (type and instance level, GET or POST; OperationDefinition
//! `CodeSystem-subsumes`): how two codes of a CodeSystem relate in its hierarchy, as a
//! `Parameters` with `outcome` `equivalent`, `subsumes` (A is above B), `subsumed-by` or
//! `not-subsumed`. Blaze lacks it. See docs/terminology.md.
//!
//! Parameters: `codeA` and `codeB` with `system` (+ `version`), or `codingA` and `codingB`
//! (their systems must be the system asked about); `CodeSystem/[id]/$subsumes` needs no
//! system. Errors: a missing code 400 at `codeA`/`codeB`, codings of two systems 400; an
//! unknown system or a code it lacks 404 `not-found` naming the parameter.

use super::terminology::{Params, canonical, code_system, reply, session, tx_error};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};

/// The registration of `CodeSystem/$subsumes`.
pub const OPERATION: Operation = Operation {
    name: "subsumes",
    definition: "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes",
    levels: &[Level::Type, Level::Instance],
    types: &["CodeSystem"],
    methods: &["GET", "POST"],
    run,
};

const PARAMS: [&str; 7] = [
    "codeA",
    "codeB",
    "system",
    "version",
    "codingA",
    "codingB",
    "tx-resource",
];

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(subsumes(ctx, target, req))
}

async fn subsumes(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &PARAMS, "subsumes")?;
    let mut system = params.text("system")?;
    let mut code = |name: &str, coding: &str| -> FhirResult<String> {
        if let Some(c) = params.text(name)? {
            return Ok(c);
        }
        let Some(c) = params.coding(coding)? else {
            return Err(FhirError::invalid(format!(
                "`$subsumes` needs the parameter `{name}` or `{coding}`."
            ))
            .at(name));
        };
        match (&system, c.system) {
            (Some(s), Some(cs)) if *s != cs => Err(FhirError::invalid(format!(
                "The system `{cs}` of `{coding}` is not the system `{s}` asked about."
            ))
            .at(params.at(coding))),
            (None, Some(cs)) => {
                system = Some(cs);
                Ok(c.code)
            }
            _ => Ok(c.code),
        }
    };
    let a = code("codeA", "codingA")?;
    let b = code("codeB", "codingB")?;
    let version = params.text("version")?;
    let url = system.map(|s| canonical(&s, version.as_deref()));
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?;
    let cs = code_system(&s, &db, target, &params, url, "system").await?;
    let out = s
        .subsumes(&cs, &a, &b)
        .map_err(|e| tx_error(e, &params, "system"))?;
    Ok(reply(out))
}
