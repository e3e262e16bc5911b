//! `ValueSet/$expand` (type and instance level, GET or POST; OperationDefinition
//! `ValueSet-expand`): the members of a ValueSet as a ValueSet with an `expansion`,
//! computed by [`flint_terminology`] (compose with include/exclude, concept lists,
//! CodeSystem filters and nested value sets; stored, built-in R4 core and `tx-resource`
//! CodeSystems and ValueSets). See docs/terminology.md.
//!
//! Parameters: `url` (+ `valueSetVersion`) or `valueSet` (a POST resource) at the type
//! level, the ValueSet `[id]` at the instance level; `filter` (every word must prefix a word
//! of the display or of a designation), `offset`, `count`, `includeDefinition`,
//! `includeDesignations`, `activeOnly`, `excludeNested` (expansions are always flat),
//! `displayLanguage`, `system-version` (`url|version`: the version of that system where an
//! include names none), `tx-resource`; `property`, `excludeNotForUI` and `context` are
//! accepted and ignored.
//!
//! More members than `RestConfig::expand_max_size` (`FHIR_OPERATION_EXPAND_MAX_SIZE`)
//! without `count` (or with a larger one): 409 `too-costly`. An unknown ValueSet, or a
//! CodeSystem a compose needs that is not known: 404 `not-found`.

use super::terminology::{Params, echo, reply, session, tx_error, value_set};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::FhirResult;
use flint_terminology::ExpandParams;
use serde_json::json;

/// The registration of `ValueSet/$expand`.
pub const OPERATION: Operation = Operation {
    name: "expand",
    definition: "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
    levels: &[Level::Type, Level::Instance],
    types: &["ValueSet"],
    methods: &["GET", "POST"],
    run,
};

const PARAMS: [&str; 16] = [
    "url",
    "valueSet",
    "valueSetVersion",
    "filter",
    "offset",
    "count",
    "includeDefinition",
    "includeDesignations",
    "activeOnly",
    "excludeNested",
    "excludeNotForUI",
    "displayLanguage",
    "property",
    "system-version",
    "tx-resource",
    "context",
];

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(expand(ctx, target, req))
}

async fn expand(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &PARAMS, "expand")?;
    let mut p = ExpandParams {
        filter: params.text("filter")?,
        offset: params.count("offset")?.unwrap_or(0),
        count: params.count("count")?,
        include_definition: params.boolean("includeDefinition", false)?,
        include_designations: params.boolean("includeDesignations", false)?,
        active_only: params.boolean("activeOnly", false)?,
        display_language: params.text("displayLanguage")?,
        max_size: ctx.state.config().expand_max_size,
        timestamp: now(),
        echo: Vec::new(),
    };
    params.boolean("excludeNested", true)?;
    if let Some(f) = &p.filter {
        p.echo.push(echo("filter", "valueString", json!(f)));
    }
    if p.offset > 0 {
        p.echo.push(echo("offset", "valueInteger", json!(p.offset)));
    }
    if let Some(c) = p.count {
        p.echo.push(echo("count", "valueInteger", json!(c)));
    }
    if p.active_only {
        p.echo.push(echo("activeOnly", "valueBoolean", json!(true)));
    }
    if let Some(l) = &p.display_language {
        p.echo.push(echo("displayLanguage", "valueCode", json!(l)));
    }
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?.with_system_versions(&params.texts("system-version")?);
    let vs = value_set(&s, &db, target, &params, "`$expand`").await?;
    let out = s
        .expand(&vs, &p)
        .await
        .map_err(|e| tx_error(e, &params, "url"))?;
    Ok(reply(out))
}

/// The current instant in RFC 3339 (the expansion's `timestamp`).
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}
