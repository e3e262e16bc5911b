//! `$everything` on Patient (instance and type level, GET or POST; OperationDefinition
//! `Patient-everything`): a patient's record as a `searchset` Bundle.
//!
//! The record of a patient is, each resource once and in this order: the Patient; then per
//! resource type of the Patient compartment (in type order) its members in id order, each
//! followed by the resources it references (through its reference search parameters) whose
//! type is outside the compartment and not a conformance or infrastructure type
//! ([`NOT_SUPPORTING`], as Blaze), e.g. Medication, Organization, Practitioner, Location.
//! `[base]/Patient/$everything` (which Blaze refuses) answers the records of all patients in
//! id order, each resource once.
//!
//! Parameters (query parameters of a GET, a `Parameters` body of a POST, whose query
//! parameters count too):
//!
//! * `start`, `end`: a date or dateTime; compartment members of the types the
//!   `clinical-date` search parameter applies to are kept only when their `date` is `ge`
//!   `start` and `le` `end` (as Blaze; members of other types are not filtered, and what a
//!   left-out member references is not reached through it);
//! * `_since`: an instant; only resources last updated at or after it are answered;
//! * `_type`: comma-separated resource types (repeatable); only resources of those types are
//!   answered (the record is reached the same way);
//! * `_count`: a positive page size (at most `RestConfig::max_page_size`). Every page is read
//!   at the database value `t` of the first: its links (`?__page=<token>` on the operation's
//!   URL) seal the parameters, `t` and the offset as search page links do, so writes between
//!   pages change nothing. Without `_count`, a record of more than
//!   `RestConfig::everything_limit` (10,000) resources is refused with 409 `too-costly`.
//!
//! Unknown parameters are ignored, or 400 with `Prefer: handling=strict`. Errors: 404 for an
//! unknown patient, 410 for a deleted one, 400 `invalid` with `expression` naming the
//! parameter for bad values, 400 for a changed page link, 410 for an expired one.

use super::evaluate_measure::value_of;
use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Handling, Payload, Reply, StreamedBundle, StreamedEntry};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use crate::search::{self, PAGE_LIFETIME_MS, search_error};
use axum::http::StatusCode;
use flint_db::{Db, ResourceHandle, T};
use flint_search::{Matches, Query};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// The registration of `$everything`.
pub const OPERATION: Operation = Operation {
    name: "everything",
    definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    levels: &[Level::Type, Level::Instance],
    types: &["Patient"],
    methods: &["GET", "POST"],
    run,
};

/// Types outside the Patient compartment that are never answered as referenced resources
/// (conformance and infrastructure types, Blaze's list).
pub const NOT_SUPPORTING: [&str; 14] = [
    "Bundle",
    "CapabilityStatement",
    "CompartmentDefinition",
    "ConceptMap",
    "GraphDefinition",
    "ImplementationGuide",
    "MessageDefinition",
    "MessageHeader",
    "OperationDefinition",
    "SearchParameter",
    "Subscription",
    "TerminologyCapabilities",
    "TestReport",
    "TestScript",
];

/// The canonical URL of the search parameter `start` and `end` filter by.
const CLINICAL_DATE: &str = "http://hl7.org/fhir/SearchParameter/clinical-date";

/// The parameters of an invocation, checked (and sealed in page links as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Params {
    start: Option<String>,
    end: Option<String>,
    /// `_since` as given, and as ms since the epoch.
    since: Option<(String, i64)>,
    /// `_type`, in the order given.
    types: Option<Vec<String>>,
    /// `_count`, at most the configured maximum page size.
    count: Option<usize>,
}

/// The sealed content of an `$everything` page link.
#[derive(Debug, Serialize, Deserialize)]
struct EverythingPage {
    /// Always `everything`: tells these links from search page links.
    op: String,
    /// The patient of an instance invocation, `None` at the type level.
    patient: Option<String>,
    params: Params,
    t: T,
    offset: usize,
    expires_ms: i64,
}

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(everything(ctx, target, req))
}

async fn everything(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let patient = match target {
        Target::Instance(_, id) => Some(id.to_string()),
        _ => None,
    };
    if let Some(token) = req.param("__page") {
        let page: EverythingPage = search::open_token(ctx, token)?;
        if page.op != "everything" || page.patient != patient {
            return Err(FhirError::invalid(
                "Invalid page link: it belongs to another invocation.",
            ));
        }
        crate::search::check_not_expired(page.expires_ms, "invoke the operation again")?;
        let db = ctx.state.node().sync_to(page.t).await?;
        return answer(ctx, &db, patient.as_deref(), &page.params, page.offset).await;
    }
    let params = parse_params(ctx, req)?;
    let db = ctx.read_db().await?;
    answer(ctx, &db, patient.as_deref(), &params, 0).await
}

/// The page at `offset` of the record(s) at `db`.
async fn answer(
    ctx: &Ctx,
    db: &Db,
    patient: Option<&str>,
    params: &Params,
    offset: usize,
) -> FhirResult<Reply> {
    let patients = match patient {
        Some(id) => {
            match db.resource("Patient", id)? {
                Some(h) if !h.is_deleted() => vec![h],
                // The read's 404 or 410 (with the deletion's version).
                _ => {
                    crate::interaction::read(db, "Patient", id).await?;
                    return Err(FhirError::not_found(format!(
                        "Resource `Patient/{id}` was not found."
                    )));
                }
            }
        }
        None => db.type_list("Patient", None, usize::MAX)?,
    };
    let key = (
        format!("$everything\u{0}{patient:?}\u{0}{params:?}"),
        db.t(),
    );
    let list: Arc<Vec<Matches>> = match ctx.state.results().get(&key) {
        Some(hit) => hit,
        None => {
            let limit = match params.count {
                Some(_) => None,
                None => Some(ctx.state.config().everything_limit),
            };
            let Some(found) = record(ctx, db, &patients, params, limit)? else {
                return Err(FhirError::new(
                    StatusCode::CONFLICT,
                    "too-costly",
                    format!(
                        "More than {} resources would be returned; page with `_count`.",
                        ctx.state.config().everything_limit
                    ),
                ));
            };
            let list = Arc::new(vec![Matches::Handles(found)]);
            if params
                .count
                .is_some_and(|c| list.iter().map(Matches::len).sum::<usize>() > c)
            {
                ctx.state.results().insert(key, list.clone());
            }
            list
        }
    };
    let none = Matches::Handles(Vec::new());
    let all = list.first().unwrap_or(&none);
    let total = all.len();
    let count = params.count.unwrap_or(total.max(1));
    let page = all.page(db, offset, count).map_err(search_error)?;
    let now = flint_db::mem::now_ms();
    let link = |off: usize| page_link(ctx, patient, params, db.t(), off, now);
    // A later page's self link is the (sealed) link to itself.
    let self_url = if offset > 0 {
        link(offset)?
    } else {
        invocation_url(ctx, patient, params)
    };
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if params.count.is_some() {
        links.push(json!({"relation": "first", "url": link(0)?}));
        if offset > 0 {
            links.push(json!({"relation": "previous", "url": link(offset.saturating_sub(count))?}));
        }
        if offset + count < total {
            links.push(json!({"relation": "next", "url": link(offset + count)?}));
        }
    }
    let head = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    });
    // Versions a purge or history deletion removed since the list was computed: left out.
    let page = if db.removals_after() {
        db.still_indexed(&page)?
    } else {
        page
    };
    let stored = search::stored_all(db, &page).await?;
    let entries = page
        .iter()
        .zip(stored)
        .map(|(h, s)| StreamedEntry::Stored(ctx.url(&h.type_name, &h.id), s, "match"))
        .collect();
    Ok(Reply::new(
        200,
        Body::Bundle(StreamedBundle { head, entries }),
    ))
}

/// The URL of the operation on `patient` (the type level without one).
fn operation_url(ctx: &Ctx, patient: Option<&str>) -> String {
    match patient {
        Some(id) => format!("{}/Patient/{id}/$everything", ctx.base),
        None => format!("{}/Patient/$everything", ctx.base),
    }
}

/// The invocation as a GET URL (the self link of a first page).
fn invocation_url(ctx: &Ctx, patient: Option<&str>, params: &Params) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = &params.start {
        ser.append_pair("start", s);
    }
    if let Some(e) = &params.end {
        ser.append_pair("end", e);
    }
    if let Some((s, _)) = &params.since {
        ser.append_pair("_since", s);
    }
    if let Some(ts) = &params.types {
        ser.append_pair("_type", &ts.join(","));
    }
    if let Some(c) = params.count {
        ser.append_pair("_count", &c.to_string());
    }
    let q = ser.finish();
    let url = operation_url(ctx, patient);
    if q.is_empty() {
        url
    } else {
        format!("{url}?{q}")
    }
}

/// The sealed link to the page at `offset` of the record(s) at `t`.
fn page_link(
    ctx: &Ctx,
    patient: Option<&str>,
    params: &Params,
    t: T,
    offset: usize,
    now_ms: i64,
) -> FhirResult<String> {
    let token = search::seal_token(
        ctx,
        &EverythingPage {
            op: "everything".into(),
            patient: patient.map(str::to_string),
            params: params.clone(),
            t,
            offset,
            expires_ms: now_ms + PAGE_LIFETIME_MS,
        },
    )?;
    Ok(format!("{}?__page={token}", operation_url(ctx, patient)))
}

/// The parameters of `req`, checked.
fn parse_params(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Params> {
    let mut given: Vec<(String, String)> = req
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .cloned()
        .collect();
    match &req.payload {
        Payload::None => {}
        p => {
            let body = crate::context::payload_resource("Parameters", p)?;
            if crate::resource::type_of(&body) != "Parameters" {
                return Err(FhirError::invalid(
                    "The body of a POST `$everything` must be a Parameters resource.",
                ));
            }
            for (i, p) in body
                .get("parameter")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    return Err(FhirError::invalid("A parameter has no name.")
                        .at(format!("Parameters.parameter[{i}].name")));
                };
                let text = value_of(p).and_then(|v| match v.value {
                    Value::String(s) => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                let Some(text) = text else {
                    return Err(FhirError::invalid(format!(
                        "The parameter `{name}` has no primitive value."
                    ))
                    .at(name));
                };
                given.push((name.to_string(), text));
            }
        }
    }
    let mut out = Params::default();
    let once = |slot: &Option<String>, name: &str| -> FhirResult<()> {
        if slot.is_some() {
            return Err(FhirError::invalid(format!(
                "The parameter `{name}` is given more than once."
            ))
            .at(name));
        }
        Ok(())
    };
    let mut since_text: Option<String> = None;
    let mut count_text: Option<String> = None;
    for (name, v) in &given {
        match name.as_str() {
            "start" => {
                once(&out.start, name)?;
                check_date(ctx, name, v)?;
                out.start = Some(v.clone());
            }
            "end" => {
                once(&out.end, name)?;
                check_date(ctx, name, v)?;
                out.end = Some(v.clone());
            }
            "_since" => {
                once(&since_text, name)?;
                let ms = crate::resource::parse_instant(v).ok_or_else(|| {
                    FhirError::invalid(format!(
                        "Invalid `_since` value `{v}`: expected an instant."
                    ))
                    .at("_since")
                })?;
                since_text = Some(v.clone());
                out.since = Some((v.clone(), ms));
            }
            "_type" => {
                super::add_types(out.types.get_or_insert_with(Vec::new), v)?;
            }
            "_count" => {
                once(&count_text, name)?;
                count_text = Some(v.clone());
                let n = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    FhirError::invalid(format!(
                        "Invalid `_count` value `{v}`: expected a positive integer."
                    ))
                    .at("_count")
                })?;
                out.count = Some(n.min(ctx.state.config().max_page_size.max(1)));
            }
            _ if req.handling == Handling::Strict => {
                return Err(FhirError::invalid(format!(
                    "Unknown parameter `{name}` of `$everything`."
                ))
                .at(name.as_str()));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Checks that `v` is a date the `date` search parameter takes, else 400 at `name`.
fn check_date(ctx: &Ctx, name: &str, v: &str) -> FhirResult<()> {
    let bad = || {
        FhirError::invalid(format!(
            "Invalid `{name}` value `{v}`: expected a date or dateTime."
        ))
        .at(name)
    };
    if !v.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    search::parse(
        ctx,
        "Encounter",
        &[("date".into(), format!("ge{v}"))],
        Handling::Strict,
    )
    .map_err(|_| bad())?;
    Ok(())
}

/// One type of the Patient compartment: the query its members are found with (`start`/`end`
/// clauses, all references included) and whether its members are answered (`_type`).
struct Member {
    query: Query,
    answered: bool,
}

/// The record(s) of `patients` at `db`, or `None` when it has more than `limit` resources.
fn record(
    ctx: &Ctx,
    db: &Db,
    patients: &[ResourceHandle],
    params: &Params,
    limit: Option<usize>,
) -> FhirResult<Option<Vec<ResourceHandle>>> {
    let registry = ctx.state.registry();
    let types = flint_model::defs::definitions().resource_types();
    let in_compartment =
        |t: &str| t == "Patient" || !registry.compartment_params("Patient", t).is_empty();
    let supporting: HashSet<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| !in_compartment(t) && !NOT_SUPPORTING.contains(t))
        .collect();
    let wanted = |t: &str| {
        params
            .types
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|x| x == t))
    };
    // Whether a referenced (supporting) resource may be answered at all.
    let any_supporting_wanted = params
        .types
        .as_ref()
        .is_none_or(|ts| ts.iter().any(|t| supporting.contains(t.as_str())));
    let mut members: Vec<Member> = Vec::new();
    for ty in types.iter().filter(|t| in_compartment(t)) {
        let answered = wanted(ty);
        if !answered && !any_supporting_wanted {
            continue;
        }
        let mut q: Vec<(String, String)> = vec![("_include".into(), format!("{ty}:*"))];
        if let Some(p) = registry.params_of(ty).find(|p| p.url == CLINICAL_DATE) {
            if let Some(s) = &params.start {
                q.push((p.code.clone(), format!("ge{s}")));
            }
            if let Some(e) = &params.end {
                q.push((p.code.clone(), format!("le{e}")));
            }
        }
        members.push(Member {
            query: search::parse(ctx, ty, &q, Handling::Strict)?,
            answered,
        });
    }
    let since_t = match &params.since {
        Some((_, ms)) => db.t_since(*ms)?,
        None => 0,
    };
    let engine = ctx.state.engine();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out: Vec<ResourceHandle> = Vec::new();
    // Adds `h` (once); false when the record grew past the limit.
    let mut add = |h: ResourceHandle, answered: bool, out: &mut Vec<ResourceHandle>| -> bool {
        if answered && h.t >= since_t && seen.insert((h.type_name.clone(), h.id.clone())) {
            out.push(h);
        }
        limit.is_none_or(|l| out.len() <= l)
    };
    for p in patients {
        if !add(p.clone(), wanted("Patient"), &mut out) {
            return Ok(None);
        }
        for m in &members {
            let found = engine
                .matches_in_compartment(db, "Patient", &p.id, &m.query)
                .and_then(|f| f.into_handles(db))
                .map_err(search_error)?;
            for h in found {
                let refs = if any_supporting_wanted {
                    engine
                        .includes(db, &m.query, std::slice::from_ref(&h))
                        .map_err(search_error)?
                } else {
                    Vec::new()
                };
                if !add(h, m.answered, &mut out) {
                    return Ok(None);
                }
                for r in refs {
                    let answered =
                        supporting.contains(r.type_name.as_str()) && wanted(&r.type_name);
                    if !add(r, answered, &mut out) {
                        return Ok(None);
                    }
                }
            }
        }
    }
    Ok(Some(out))
}
