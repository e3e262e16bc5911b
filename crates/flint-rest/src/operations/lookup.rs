//! `CodeSystem/$lookup` (type and instance level, GET or POST; OperationDefinition
//! `CodeSystem-lookup`): a code's name, version, display, definition, designations and
//! properties (`parent` and `child` from the hierarchy) in a stored, built-in or
//! `tx-resource` CodeSystem, as a `Parameters`. See docs/terminology.md.
//!
//! Parameters: `code` + `system` (+ `version`), or `coding` (`system|code` in a query);
//! `CodeSystem/[id]/$lookup` takes the code only. `property` (repeatable) limits the
//! properties (and `designation`, `definition`) shown; `displayLanguage` picks the display
//! among the designations; `date` is accepted and ignored. Errors: no code 400 at `code`;
//! an unknown system or a code it lacks 404 `not-found` at `system` or `code`.

use super::terminology::{Params, canonical, code_system, reply, session, tx_error};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};

/// The registration of `CodeSystem/$lookup`.
pub const OPERATION: Operation = Operation {
    name: "lookup",
    definition: "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    levels: &[Level::Type, Level::Instance],
    types: &["CodeSystem"],
    methods: &["GET", "POST"],
    run,
};

const PARAMS: [&str; 8] = [
    "code",
    "system",
    "version",
    "coding",
    "date",
    "displayLanguage",
    "property",
    "tx-resource",
];

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(lookup(ctx, target, req))
}

async fn lookup(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &PARAMS, "lookup")?;
    let (system, code, code_at) = match (params.text("code")?, params.coding("coding")?) {
        (Some(code), _) => (params.text("system")?, code, "code"),
        (None, Some(c)) => (c.system, c.code, "coding"),
        (None, None) => {
            return Err(
                FhirError::invalid("`$lookup` needs the parameter `code` or `coding`.").at("code"),
            );
        }
    };
    let version = params.text("version")?;
    let url = system.map(|s| canonical(&s, version.as_deref()));
    let system_at = if code_at == "coding" {
        "coding"
    } else {
        "system"
    };
    let properties = params.texts("property")?;
    let language = params.text("displayLanguage")?;
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?;
    let cs = code_system(&s, &db, target, &params, url, system_at).await?;
    let out = s
        .lookup(&cs, &code, &properties, language.as_deref(), code_at)
        .map_err(|e| tx_error(e, &params, system_at))?;
    Ok(reply(out))
}
