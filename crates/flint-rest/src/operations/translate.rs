//! `ConceptMap/$translate` (type and instance level, GET or POST; OperationDefinition
//! `ConceptMap-translate`) over stored (or `tx-resource`) ConceptMaps: the mappings of a
//! code as a `Parameters` with `result`, `message` and one `match` (`equivalence`,
//! `concept`, `source`) per target. Blaze lacks it. See docs/terminology.md.
//!
//! Parameters: the map by `url` (+ `conceptMapVersion`) or `conceptMap` (POST), or
//! `ConceptMap/[id]`; without one, every stored map with the code among its source codes
//! (`source-code`; target codes when reversed; the first 100 per code); the code by `code` + `system` (+ `version`), `coding` or
//! `codeableConcept` (each coding translated); `targetsystem` keeps the groups of that
//! target system; `source`/`target` (value set urls) must be the map's (else `result`
//! false); `reverse` maps targets back to sources. Errors: no code 400 at `code`; an unknown map
//! 404 `not-found` at `url`.

use super::terminology::{Params, canonical, instance, reply, session, tx_error};
use super::{Level, OpFuture, Operation, Target};
use crate::api::{FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use serde_json::{Value, json};

/// The registration of `ConceptMap/$translate`.
pub const OPERATION: Operation = Operation {
    name: "translate",
    definition: "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate",
    levels: &[Level::Type, Level::Instance],
    types: &["ConceptMap"],
    methods: &["GET", "POST"],
    run,
};

const PARAMS: [&str; 15] = [
    "url",
    "conceptMap",
    "conceptMapVersion",
    "code",
    "system",
    "version",
    "source",
    "coding",
    "codeableConcept",
    "target",
    "targetsystem",
    "reverse",
    "dependency",
    "tx-resource",
    "display",
];

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(translate(ctx, target, req))
}

async fn translate(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let params = Params::read(req, &PARAMS, "translate")?;
    let codings = params.codings("system", "version")?;
    let reverse = params.boolean("reverse", false)?;
    let target_system = params.text("targetsystem")?;
    let db = ctx.read_db().await?;
    let s = session(ctx, &db, &params)?;
    // The maps: the one named, or (type level without one) every stored map that has a
    // coding's code among its sources (targets when reversed).
    let (maps, named) = match target {
        Target::Instance(ty, id) => (vec![instance(&db, ty, id).await?], true),
        _ => {
            if let Some(cm) = params.resource("conceptMap", "ConceptMap")? {
                (vec![cm], true)
            } else if let Some(url) = params.text("url")? {
                let url = canonical(&url, params.text("conceptMapVersion")?.as_deref());
                let cm = s
                    .concept_map(&url)
                    .await
                    .map_err(|e| tx_error(e, &params, "url"))?
                    .ok_or_else(|| {
                        FhirError::not_found(format!("No ConceptMap with url `{url}` is known."))
                            .at(params.at("url"))
                    })?;
                (vec![cm], true)
            } else {
                (stored_maps(ctx, &db, &codings, reverse).await?, false)
            }
        }
    };
    // The map's value sets must be those asked for.
    let scope = |v: &Value, uri: &str, canon: &str| {
        v[uri].as_str().or(v[canon].as_str()).map(str::to_string)
    };
    let mut kept = Vec::new();
    let mut refusal = None;
    'maps: for cm in maps {
        for (name, uri, canon) in [
            ("source", "sourceUri", "sourceCanonical"),
            ("target", "targetUri", "targetCanonical"),
        ] {
            if let Some(asked) = params.text(name)? {
                let (a, b) = if reverse && name == "source" {
                    ("targetUri", "targetCanonical")
                } else if reverse {
                    ("sourceUri", "sourceCanonical")
                } else {
                    (uri, canon)
                };
                if scope(&cm, a, b).as_deref() != Some(asked.as_str()) {
                    refusal = Some(format!(
                        "The ConceptMap `{}` does not map {} the value set `{asked}`.",
                        cm["url"].as_str().unwrap_or("(given)"),
                        if name == "source" { "from" } else { "to" }
                    ));
                    continue 'maps;
                }
            }
        }
        kept.push(cm);
    }
    if kept.is_empty() {
        let message = match refusal {
            Some(m) if named => m,
            _ => "No stored ConceptMap maps the code.".to_string(),
        };
        return Ok(reply(flint_terminology::ops::parameters(vec![
            ("result", json!({"valueBoolean": false})),
            ("message", json!({"valueString": message})),
        ])));
    }
    let mut out: Option<Value> = None;
    for cm in &kept {
        for c in &codings {
            let one = s
                .translate(cm, c, target_system.as_deref(), reverse)
                .map_err(|e| tx_error(e, &params, "url"))?;
            out = Some(match out {
                None => one,
                Some(mut prev) => {
                    merge(&mut prev, one);
                    prev
                }
            });
        }
    }
    Ok(reply(out.unwrap_or(Value::Null)))
}

/// The most stored maps a type-level `$translate` without `url` consults.
const MAX_MAPS: usize = 100;

/// The current stored ConceptMaps (the first [`MAX_MAPS`] per code, in id order) that have
/// one of `codings`' codes as a source code (`source-code`; `target-code` when `reverse`).
async fn stored_maps(
    ctx: &Ctx,
    db: &flint_db::Db,
    codings: &[flint_terminology::CodingInput],
    reverse: bool,
) -> FhirResult<Vec<Value>> {
    let param = if reverse {
        "target-code"
    } else {
        "source-code"
    };
    let mut seen = std::collections::HashSet::new();
    let mut maps = Vec::new();
    for c in codings {
        let value: String = c
            .code
            .chars()
            .flat_map(|ch| {
                let escape = matches!(ch, '\\' | ',' | '$' | '|');
                escape.then_some('\\').into_iter().chain([ch])
            })
            .collect();
        let query = flint_search::QueryParser::new(ctx.state.registry())
            .parse("ConceptMap", &[(param.to_string(), value)])
            .and_then(|q| q.strict())
            .map_err(crate::search::search_error)?;
        let hits = ctx
            .state
            .engine()
            .matches(db, &query)
            .and_then(|m| m.page(db, 0, MAX_MAPS))
            .map_err(crate::search::search_error)?;
        for h in hits {
            if !seen.insert(h.id.clone()) {
                continue;
            }
            let bytes = db.pull(&h).await?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                FhirError::from(flint_db::DbError::fault(format!(
                    "stored resource is not JSON: {e}"
                )))
            })?;
            maps.push(v);
        }
    }
    Ok(maps)
}

/// Adds the matches of `more` to `into` (a codeableConcept's codings translated in turn);
/// `result` is true when either is.
fn merge(into: &mut Value, more: Value) {
    let ok = |v: &Value| v["parameter"][0]["valueBoolean"].as_bool().unwrap_or(false);
    let result = ok(into) || ok(&more);
    let mut params: Vec<Value> = into["parameter"].as_array().cloned().unwrap_or_default();
    params.extend(
        more["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == "match")
            .cloned(),
    );
    if result {
        params.retain(|p| p["name"] != "message");
    }
    params[0] = json!({"name": "result", "valueBoolean": result});
    into["parameter"] = Value::Array(params);
}
