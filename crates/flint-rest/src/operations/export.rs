//! `$export` (FHIR Bulk Data Access 2.0): `[base]/$export` (every resource), `Patient/$export`
//! (the Patient compartments of all patients) and `Group/[id]/$export` (those of the Group's
//! member Patients), GET or POST (a `Parameters` body), always asynchronous.
//!
//! The kick-off (sent with `Prefer: respond-async`; without it 400) is checked at once and
//! stored as a job (a `Task` of type [`JOB_TYPE`] in the admin database, [`flint_jobs`]) with
//! the database value `t` it was received at. The job plans the output at that `t`: per
//! resource type the number of resources and the first id of each file (at most
//! `RestConfig::export_file_size` resources a file). Nothing is copied: a file download reads
//! its resources at `t` again, in id order, straight from their stored bytes with the version
//! metadata spliced in (as a read answers), so writes after the kick-off change nothing and
//! every resource current at `t` appears once. The status (`[base]/__async-status/{id}`,
//! shared with the other asynchronous requests) answers 202 while planning, then the manifest;
//! `DELETE` cancels (a finished export too: its files are gone, 404).
//!
//! Parameters: `_outputFormat` (`application/fhir+ndjson`, `application/ndjson`, `ndjson`),
//! `_type` (comma-separated, repeatable), `_since` (an instant: resources changed after it),
//! `_typeFilter` (`Type?search`, repeatable or comma-separated; a type's resources are those
//! matching any of its filters, evaluated by the search engine at `t`), `patient` (Patient
//! references: only their compartments, at the Patient and Group levels), `_elements`
//! (`Type.element` or `element`: top-level elements kept besides the mandatory ones, the
//! resources tagged `SUBSETTED`), `includeAssociatedData` (`LatestProvenanceResources`,
//! `RelevantProvenanceResources`: the Provenance resources naming exported resources in their
//! `target`). A Group's members may be Groups (each read once). Others are ignored, or 400
//! with `Prefer: handling=strict`.
//!
//! A storage fault while a file streams cannot change the status already sent: the body
//! ends without its last chunk (the connection is closed), which every HTTP client reports as
//! an error, never a short file that looks complete. Before the first byte it is a 503.

use super::evaluate_measure::value_of;
use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Handling, Payload, Reply};
use crate::context::{Ctx, check_type, check_type_and_id, header_str};
use crate::outcome::{FhirError, FhirResult};
use crate::search::{self, search_error};
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flint_db::ids::IdList;
use flint_db::{Db, DbError, ResourceHandle, T};
use flint_jobs::{Cancelled, Job, Scheduler, Status, new_task, parameter};
use flint_search::{Matches, Query};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;

/// The registration of `$export` (system level, `Patient` type level, `Group` instance level).
pub const OPERATION: Operation = Operation {
    name: "export",
    definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    levels: &[Level::System, Level::Type, Level::Instance],
    types: &["Patient", "Group"],
    methods: &["GET", "POST"],
    run,
};

/// The job type of bulk exports.
pub const JOB_TYPE: &str = "bulk-export";

/// The code system of the inputs and outputs of an export job.
pub const PARAMETER_SYSTEM: &str = "urn:flint:CodeSystem:bulk-export-job-parameter";

/// The accepted `_outputFormat` values (all mean NDJSON of FHIR JSON resources).
pub const OUTPUT_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// The path segment of output files: `[base]/__export/{job}/{file}`.
pub const FILES_PATH: &str = "__export";

/// Resources read (index and resource store) in one step of planning or streaming.
const BATCH: usize = 1000;

/// A checked kick-off: what to export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Spec {
    /// The Group of a `Group/[id]/$export`.
    group: Option<String>,
    /// Whether the export is of Patient compartments (`Patient/$export`, `Group/$export`).
    patients: bool,
    /// `_type`, in the order given (`None`: every type).
    types: Option<Vec<String>>,
    /// `_since` as given and as ms since the epoch.
    since: Option<(String, i64)>,
    /// `_typeFilter`: the type and its search parameters, in the order given.
    filters: Vec<(String, Vec<(String, String)>)>,
    /// The kick-off URL (the manifest's `request`).
    request: String,
    /// `patient`: the ids of the only Patients whose compartments are exported (Patient and
    /// Group levels), sorted.
    #[serde(default)]
    patient: Option<Vec<String>>,
    /// `_elements`: the elements to keep, by type (`None`: of every type that has it).
    #[serde(default)]
    elements: Vec<(Option<String>, String)>,
    /// `includeAssociatedData`: the Provenance resources of the exported resources, all of
    /// them (`RelevantProvenanceResources`) or the latest per resource
    /// (`LatestProvenanceResources`).
    #[serde(default)]
    associated: Option<Associated>,
}

/// What `includeAssociatedData` adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Associated {
    /// Per exported resource, the Provenance targeting it with the latest `recorded`.
    Latest,
    /// Every Provenance targeting an exported resource.
    Relevant,
}

/// One output file: `count` resources of `type` in id order from `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FilePart {
    /// The file name (`Patient.ndjson`, `Observation.2.ndjson`).
    name: String,
    /// The resource type.
    #[serde(rename = "type")]
    ty: String,
    /// The first id (`None`: the type's first).
    from: Option<String>,
    /// The number of resources.
    count: u64,
}

fn run<'a>(_: &'a Ctx, target: Target<'a>, _: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(async move {
        check_target(target)?;
        Err(FhirError::invalid(
            "`$export` is asynchronous: send the kick-off request with `Prefer: respond-async`.",
        ))
    })
}

/// Refuses the levels and types `$export` is not defined for: a type level other than
/// `Patient`, an instance level other than `Group`.
fn check_target(target: Target<'_>) -> FhirResult<()> {
    let refuse = |m: String| Err(FhirError::new(StatusCode::BAD_REQUEST, "not-supported", m));
    match target {
        Target::System | Target::Type("Patient") | Target::Instance("Group", _) => Ok(()),
        Target::Type(ty) => refuse(format!(
            "Operation `$export` is not supported for the type `{ty}` (type level: Patient only)."
        )),
        Target::Instance(ty, _) => refuse(format!(
            "Operation `$export` is not supported on a `{ty}` (instance level: Group only)."
        )),
    }
}

/// Whether `req` is an `$export` kick-off (any level).
pub fn is_kick_off(req: &FhirRequest) -> bool {
    req.path.last().is_some_and(|s| s == "$export") && req.path.len() <= 3
}

/// The 202 of an accepted kick-off with `Prefer: respond-async`: checks the request, stores
/// the job at the current `t` and starts planning it.
pub async fn kick_off(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Reply> {
    let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
    let target = match p.as_slice() {
        [_] => Target::System,
        [ty, _] => Target::Type(ty),
        [ty, id, _] => Target::Instance(ty, id),
        _ => return Err(FhirError::not_found("No FHIR endpoint.")),
    };
    match target {
        Target::System => {}
        Target::Type(ty) => check_type(ty)?,
        Target::Instance(ty, id) => check_type_and_id(ty, id)?,
    }
    super::find(
        &super::offered(ctx.state.config()),
        "export",
        target.level(),
        &req.method,
    )?;
    check_target(target)?;
    let jobs = ctx.state.jobs().ok_or_else(|| {
        FhirError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            "`$export` needs the admin database, which this server has not opened.",
        )
    })?;
    let mut spec = parse_spec(ctx, req)?;
    spec.patients = target != Target::System;
    if let Target::Instance(_, id) = target {
        spec.group = Some(id.to_string());
    }
    if spec.patient.is_some() && !spec.patients {
        return Err(FhirError::invalid(
            "The parameter `patient` applies to `Patient/$export` and `Group/[id]/$export` only.",
        )
        .at("patient"));
    }
    spec.request = format!("{}/{}", ctx.base, req.path.join("/"));
    if req.method == "GET" && !req.query.is_empty() {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&req.query)
            .finish();
        spec.request = format!("{}?{q}", spec.request);
    }
    let db = ctx.read_db().await?;
    if let Some(id) = &spec.group {
        match db.resource("Group", id)? {
            Some(h) if !h.is_deleted() => {}
            // The read's 404, or its 410 for a deleted Group.
            _ => {
                crate::interaction::read(&db, "Group", id).await?;
                return Err(FhirError::not_found(format!(
                    "Resource `Group/{id}` was not found."
                )));
            }
        }
    }
    if let Some(given) = &spec.patient {
        // Every patient asked for must be exportable: current, and a member of the Group.
        let all = Spec {
            patient: None,
            ..spec.clone()
        };
        let members = patients(ctx, &db, &all).await?.unwrap_or_default();
        for id in given {
            if !members.contains(id) {
                let why = match &spec.group {
                    Some(g) => format!("is not a current member of `Group/{g}`"),
                    None => "is not a current Patient".to_string(),
                };
                return Err(FhirError::invalid(format!(
                    "Invalid `patient`: `Patient/{id}` {why}."
                ))
                .at("patient"));
            }
        }
    }
    let spec_text = serde_json::to_string(&spec)
        .map_err(|e| FhirError::from(DbError::fault(format!("export request: {e}"))))?;
    let task = new_task(
        JOB_TYPE,
        vec![
            parameter(PARAMETER_SYSTEM, "t", "valueUnsignedInt", json!(db.t())),
            parameter(PARAMETER_SYSTEM, "request", "valueString", json!(spec_text)),
        ],
    );
    let job = jobs.store().create(task).await?;
    start(&ctx.state, jobs, &job).await?;
    metrics::counter!("flint_bulk_exports_total").increment(1);
    let mut reply = Reply::new(
        202,
        Body::Resource(crate::outcome::info_outcome(&format!(
            "Accepted as the bulk export {}; poll its status URL.",
            job.id
        ))),
    );
    reply.headers.push((
        "content-location",
        format!("{}/__async-status/{}", ctx.base, job.id),
    ));
    Ok(reply)
}

/// The parameters of a kick-off (query parameters and a POST's `Parameters`), checked.
fn parse_spec(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Spec> {
    let mut given: Vec<(String, Option<String>)> = req
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    if !matches!(req.payload, Payload::None) {
        let body = crate::context::payload_resource("Parameters", &req.payload)?;
        if crate::resource::type_of(&body) != "Parameters" {
            return Err(FhirError::invalid(
                "The body of a POST `$export` must be a Parameters resource.",
            ));
        }
        for (i, p) in body["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(name) = p["name"].as_str() else {
                return Err(FhirError::invalid("A parameter has no name.")
                    .at(format!("Parameters.parameter[{i}].name")));
            };
            let text = value_of(p).and_then(|v| match v.value {
                Value::String(s) => Some(s),
                Value::Object(o) if v.fhir_type == "Reference" => o
                    .get("reference")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            });
            given.push((name.to_string(), text));
        }
    }
    let mut spec = Spec::default();
    let mut format_seen = false;
    let mut filters: Vec<String> = Vec::new();
    for (name, value) in &given {
        let known = matches!(
            name.as_str(),
            "_outputFormat"
                | "_type"
                | "_since"
                | "_typeFilter"
                | "patient"
                | "_elements"
                | "includeAssociatedData"
        );
        if !known {
            if req.handling == Handling::Strict {
                return Err(FhirError::new(
                    StatusCode::BAD_REQUEST,
                    "not-supported",
                    format!("The parameter `{name}` of `$export` is not supported."),
                )
                .at(name.as_str()));
            }
            continue;
        }
        let Some(v) = value else {
            return Err(
                FhirError::invalid(format!("The parameter `{name}` has no string value."))
                    .at(name.as_str()),
            );
        };
        match name.as_str() {
            "_outputFormat" => {
                if format_seen {
                    return Err(twice(name));
                }
                format_seen = true;
                if !OUTPUT_FORMATS.contains(&v.as_str()) {
                    return Err(FhirError::invalid(format!(
                        "Unsupported `_outputFormat` `{v}`: use one of {}.",
                        OUTPUT_FORMATS.join(", ")
                    ))
                    .at("_outputFormat"));
                }
            }
            "_type" => {
                super::add_types(spec.types.get_or_insert_with(Vec::new), v)?;
            }
            "_since" => {
                if spec.since.is_some() {
                    return Err(twice(name));
                }
                let ms = crate::resource::parse_instant(v).ok_or_else(|| {
                    FhirError::invalid(format!(
                        "Invalid `_since` value `{v}`: expected an instant."
                    ))
                    .at("_since")
                })?;
                spec.since = Some((v.clone(), ms));
            }
            "patient" => {
                let ids = spec.patient.get_or_insert_with(Vec::new);
                for r in v.split(',').map(str::trim) {
                    match crate::resource::local_ref(r, &ctx.base) {
                        Some(("Patient", id)) if !r.contains("/_history/") => {
                            ids.push(id.to_string())
                        }
                        _ => {
                            return Err(FhirError::invalid(format!(
                                "Invalid `patient` value `{r}`: expected a reference `Patient/[id]`."
                            ))
                            .at("patient"));
                        }
                    }
                }
            }
            "_elements" => {
                for e in v.split(',').map(str::trim) {
                    spec.elements.push(parse_element(e)?);
                }
            }
            "includeAssociatedData" => {
                for code in v.split(',').map(str::trim) {
                    let a = match code {
                        "LatestProvenanceResources" => Associated::Latest,
                        "RelevantProvenanceResources" => Associated::Relevant,
                        _ => return Err(associated_data(code)),
                    };
                    // Every relevant one includes the latest ones.
                    if spec.associated != Some(Associated::Relevant) {
                        spec.associated = Some(a);
                    }
                }
            }
            _ => filters.extend(split_type_filters(v)),
        }
    }
    if let Some(ids) = &mut spec.patient {
        ids.sort();
        ids.dedup();
    }
    if let Some(types) = &spec.types {
        for (ty, e) in &spec.elements {
            let applies = match ty {
                Some(ty) => types.contains(ty),
                None => types.iter().any(|t| has_element(t, e)),
            };
            if !applies {
                return Err(FhirError::invalid(format!(
                    "Invalid `_elements` value `{}`: no type of `_type` has it.",
                    ty.as_ref().map_or(e.clone(), |t| format!("{t}.{e}"))
                ))
                .at("_elements"));
            }
        }
    }
    for f in filters {
        let bad = |m: String| FhirError::invalid(m).at("_typeFilter");
        let Some((ty, query)) = f.split_once('?') else {
            return Err(bad(format!(
                "Invalid `_typeFilter` `{f}`: expected `Type?search-parameters`."
            )));
        };
        if !flint_model::defs::definitions().is_resource_type(ty) {
            return Err(bad(format!(
                "Invalid `_typeFilter` `{f}`: `{ty}` is not a resource type."
            )));
        }
        if let Some(types) = &spec.types
            && !types.iter().any(|t| t == ty)
        {
            return Err(bad(format!(
                "Invalid `_typeFilter` `{f}`: the type `{ty}` is not in `_type`."
            )));
        }
        let params = crate::context::query_pairs(query);
        if params.is_empty() {
            return Err(bad(format!(
                "Invalid `_typeFilter` `{f}`: it has no search parameters."
            )));
        }
        search::parse(ctx, ty, &params, Handling::Strict)
            .map_err(|e| bad(format!("Invalid `_typeFilter` `{f}`: {}", e.message)))?;
        spec.filters.push((ty.to_string(), params));
    }
    Ok(spec)
}

/// Whether resource type `ty` has the top-level element `name` (its base name).
fn has_element(ty: &str, name: &str) -> bool {
    flint_model::defs::definitions()
        .type_def(ty)
        .is_some_and(|td| td.element(name).is_some())
}

/// One `_elements` value: `Type.element` or `element` (top-level elements only; a choice
/// element by its base name, `value`, or a typed name, `valueQuantity`), as the type and the
/// element's base name.
fn parse_element(e: &str) -> FhirResult<(Option<String>, String)> {
    let defs = flint_model::defs::definitions();
    let bad = |why: &str| {
        FhirError::invalid(format!("Invalid `_elements` value `{e}`: {why}")).at("_elements")
    };
    let (ty, name) = match e.split_once('.') {
        Some((ty, name)) => {
            if !defs.is_resource_type(ty) {
                return Err(bad(&format!("`{ty}` is not a resource type.")));
            }
            (Some(ty), name)
        }
        None => (None, e),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad(
            "expected `Type.element` or `element` naming a top-level element.",
        ));
    }
    let base = |ty: &str| -> Option<String> {
        let td = defs.type_def(ty)?;
        td.element(name)
            .or_else(|| td.resolve_property(name).map(|(el, _)| el))
            .map(|el| el.name.clone())
    };
    match ty {
        Some(ty) => base(ty)
            .map(|n| (Some(ty.to_string()), n))
            .ok_or_else(|| bad(&format!("`{ty}` has no element `{name}`."))),
        None => defs
            .resource_types()
            .iter()
            .find_map(|t| base(t))
            .map(|n| (None, n))
            .ok_or_else(|| bad(&format!("no resource type has an element `{name}`."))),
    }
}

/// The elements `_elements` keeps of `ty`'s resources (`None`: the whole resources). With an
/// element given without a type every type is subsetted; else only the types named.
fn elements_of(spec: &Spec, ty: &str) -> Option<Vec<String>> {
    if spec.elements.is_empty() {
        return None;
    }
    let untyped = spec.elements.iter().any(|(t, _)| t.is_none());
    let names: Vec<String> = spec
        .elements
        .iter()
        .filter(|(t, _)| t.as_deref().is_none_or(|t| t == ty))
        .map(|(_, n)| n.clone())
        .collect();
    (untyped || !names.is_empty()).then_some(names)
}

/// The 400 of an `includeAssociatedData` value Flint does not offer.
fn associated_data(code: &str) -> FhirError {
    const SPEC: [&str; 2] = ["LatestProvenanceResources", "RelevantProvenanceResources"];
    let why = if code.starts_with('_') {
        format!("The custom `includeAssociatedData` value `{code}` is not supported.")
    } else {
        format!(
            "Unknown `includeAssociatedData` value `{code}`: the specification defines {}.",
            SPEC.join(" and ")
        )
    };
    FhirError::new(StatusCode::BAD_REQUEST, "not-supported", why).at("includeAssociatedData")
}

fn twice(name: &str) -> FhirError {
    FhirError::invalid(format!("The parameter `{name}` is given more than once.")).at(name)
}

/// The queries of one `_typeFilter` value: comma-separated `Type?…` queries (a comma inside a
/// query, between OR values, stays in it: a new query starts only at `Type?`).
fn split_type_filters(v: &str) -> Vec<String> {
    let starts_query = |s: &str| {
        s.split_once('?').is_some_and(|(ty, _)| {
            ty.starts_with(|c: char| c.is_ascii_uppercase())
                && ty.chars().all(|c| c.is_ascii_alphabetic())
        })
    };
    let mut out: Vec<String> = Vec::new();
    for seg in v.split(',') {
        match out.last_mut() {
            Some(last) if !starts_query(seg) => {
                last.push(',');
                last.push_str(seg);
            }
            _ => out.push(seg.to_string()),
        }
    }
    out
}

/// Plans the job `job` (its files at its `t`) on the runtime; the manifest is its output.
pub async fn start(state: &AppState, jobs: &Scheduler, job: &Job) -> FhirResult<()> {
    let t = job
        .parameter("input", PARAMETER_SYSTEM, "t")
        .and_then(Value::as_u64);
    let spec: Option<Spec> = job
        .parameter("input", PARAMETER_SYSTEM, "request")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok());
    let base = format!("{}{}", state.config().base_url, state.config().context_path);
    let state = state.clone();
    let work = async move {
        let (Some(t), Some(spec)) = (t, spec) else {
            return Err("the job names no database value t or no export request".to_string());
        };
        let ctx = Ctx {
            state,
            base,
            at: Some(t),
        };
        let delay = ctx.state.config().export_plan_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // A transient storage fault is retried a few times before the job fails.
        let mut attempt = 0;
        let (files, instant) = loop {
            match plan_at(&ctx, t, &spec).await {
                Ok(out) => break out,
                Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e.message),
            }
        };
        let files = serde_json::to_string(&files).map_err(|e| e.to_string())?;
        Ok(vec![
            parameter(PARAMETER_SYSTEM, "files", "valueString", json!(files)),
            parameter(
                PARAMETER_SYSTEM,
                "transaction-time",
                "valueInstant",
                json!(crate::resource::format_instant(instant)),
            ),
        ])
    };
    jobs.run(job, work).await?;
    Ok(())
}

/// The files of `spec` at `t` and the instant of `t` (the manifest's `transactionTime`).
async fn plan_at(ctx: &Ctx, t: T, spec: &Spec) -> FhirResult<(Vec<FilePart>, i64)> {
    let db = ctx.read_db().await?;
    let instant = if t == 0 {
        flint_db::mem::now_ms()
    } else {
        db.instant(t)?
    };
    Ok((plan(ctx, &db, spec).await?, instant))
}

/// The files of `spec` at `db`: per exported type (in type order) the first id and the count
/// of each file of at most `export_file_size` resources; types without resources have none.
async fn plan(ctx: &Ctx, db: &Db, spec: &Spec) -> FhirResult<Vec<FilePart>> {
    let size = ctx.state.config().export_file_size.max(1) as u64;
    let since_t = since_t(db, spec)?;
    let patients = patients(ctx, db, spec).await?;
    let mut out = Vec::new();
    for ty in exported_types(ctx, db, spec)? {
        let source = source(ctx, db, spec, &ty, patients.as_ref()).await?;
        let mut parts: Vec<(Option<String>, u64)> = Vec::new();
        if matches!(source, Source::Scan) && since_t == 0 {
            // Every current resource of the type: the count is the type's statistics.
            let total = db.type_total(&ty)?;
            if total <= size {
                if total > 0 {
                    parts.push((None, total));
                }
            } else {
                parts = split(db, &ty, source, since_t, size).await?;
            }
        } else {
            parts = split(db, &ty, source, since_t, size).await?;
        }
        let n = parts.len();
        for (k, (from, count)) in parts.into_iter().enumerate() {
            let name = if n == 1 {
                format!("{ty}.ndjson")
            } else {
                format!("{ty}.{}.ndjson", k + 1)
            };
            out.push(FilePart {
                name,
                ty: ty.clone(),
                from,
                count,
            });
        }
    }
    Ok(out)
}

/// Walks the type's exported resources (index only) and cuts them into files of `size`.
async fn split(
    db: &Db,
    ty: &str,
    source: Source,
    since_t: T,
    size: u64,
) -> FhirResult<Vec<(Option<String>, u64)>> {
    let mut parts: Vec<(Option<String>, u64)> = Vec::new();
    let mut cursor = Cursor::new(ty, source, None);
    loop {
        let batch = cursor.next(db, BATCH, since_t)?;
        if batch.is_empty() {
            return Ok(parts);
        }
        for h in batch {
            match parts.last_mut() {
                Some((_, n)) if *n < size => *n += 1,
                _ => parts.push((Some(h.id), 1)),
            }
        }
        tokio::task::yield_now().await;
    }
}

/// The first `t` of the versions `_since` selects (changed after it); 0 without `_since`.
fn since_t(db: &Db, spec: &Spec) -> FhirResult<T> {
    Ok(match &spec.since {
        Some((_, ms)) => db.t_since(ms.saturating_add(1))?,
        None => 0,
    })
}

/// The types an export covers at `db`, in type order: those of `_type` (or every type; the
/// Patient compartment's at the Patient and Group levels) that have current resources.
fn exported_types(ctx: &Ctx, db: &Db, spec: &Spec) -> FhirResult<Vec<String>> {
    let registry = ctx.state.registry();
    let mut out = Vec::new();
    for ty in flint_model::defs::definitions().resource_types() {
        if spec
            .types
            .as_ref()
            .is_some_and(|ts| !ts.iter().any(|t| t == ty))
            && !(spec.associated.is_some() && ty == "Provenance")
        {
            continue;
        }
        let associated = spec.associated.is_some() && ty == "Provenance";
        if spec.patients
            && ty != "Patient"
            && registry.compartment_params("Patient", ty).is_empty()
            && !associated
        {
            continue;
        }
        if db.type_total(ty)? > 0 {
            out.push(ty.clone());
        }
    }
    Ok(out)
}

/// The patients of a Patient or Group export at `db` (current ones only): every Patient, or
/// the Group's `member.entity` Patients (members with `inactive: true` left out).
async fn patients(ctx: &Ctx, db: &Db, spec: &Spec) -> FhirResult<Option<IdList>> {
    if !spec.patients {
        return Ok(None);
    }
    let listed = match (&spec.group, &spec.patient) {
        (None, None) => return Ok(Some(db.type_ids("Patient")?)),
        (None, Some(given)) => IdList::from_sorted(given.iter().map(String::as_str)),
        (Some(group), given) => {
            let members = group_members(ctx, db, group).await?;
            match given {
                Some(g) => members.intersect(&IdList::from_sorted(g.iter().map(String::as_str))),
                None => members,
            }
        }
    };
    let current: Vec<String> = db
        .resources("Patient", listed.iter())?
        .into_iter()
        .map(|h| h.id)
        .collect();
    Ok(Some(IdList::from_sorted(
        current.iter().map(String::as_str),
    )))
}

/// The Patient ids of a Group's active members at `db`: its `member.entity` Patients and,
/// through members that are Groups, theirs (each Group once, so cycles end).
async fn group_members(ctx: &Ctx, db: &Db, group: &str) -> FhirResult<IdList> {
    let h = db
        .resource("Group", group)?
        .filter(|h| !h.is_deleted())
        .ok_or_else(|| FhirError::not_found(format!("Resource `Group/{group}` was not found.")))?;
    let mut seen: std::collections::BTreeSet<String> = [group.to_string()].into();
    let mut todo = vec![h];
    let mut ids: Vec<String> = Vec::new();
    // A member may name this server by the request's base or by the configured one.
    let configured = format!(
        "{}{}",
        ctx.state.config().base_url,
        ctx.state.config().context_path
    );
    while let Some(h) = todo.pop() {
        let g = crate::interaction::materialize(db, &h).await?;
        for m in g["member"].as_array().into_iter().flatten() {
            if m["inactive"] == json!(true) {
                continue;
            }
            match m["entity"]["reference"].as_str().and_then(|r| {
                crate::resource::local_ref(r, &ctx.base)
                    .or_else(|| crate::resource::local_ref(r, &configured))
            }) {
                Some(("Patient", id)) => ids.push(id.to_string()),
                Some(("Group", id)) if seen.insert(id.to_string()) => {
                    if let Some(inner) = db.resource("Group", id)?.filter(|h| !h.is_deleted()) {
                        todo.push(inner);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(IdList::from_unsorted(ids.iter().map(String::as_str)))
}

/// The source of `ty`'s resources, with the associated Provenance resources
/// (`includeAssociatedData`) for `Provenance`.
async fn source(
    ctx: &Ctx,
    db: &Db,
    spec: &Spec,
    ty: &str,
    patients: Option<&IdList>,
) -> FhirResult<Source> {
    let Some(mode) = spec.associated.filter(|_| ty == "Provenance") else {
        return base_source(ctx, db, spec, ty, patients).await;
    };
    let key = (
        format!(
            "$export-provenance\u{0}{mode:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            spec.group, spec.patients, spec.patient, spec.types, spec.since, spec.filters
        ),
        db.t(),
    );
    if let Some(hit) = ctx.state.results().get(&key)
        && let Some(Matches::Ids { ids, .. }) = hit.first()
    {
        return Ok(Source::List(Arc::new(ids.clone())));
    }
    // The other exported types' sources, to tell whether a target is exported.
    let since_t = since_t(db, spec)?;
    let own = spec
        .types
        .as_ref()
        .is_none_or(|ts| ts.iter().any(|t| t == "Provenance"));
    let mut sources: std::collections::BTreeMap<String, Source> = Default::default();
    for t in exported_types(ctx, db, spec)? {
        if t != "Provenance" {
            let src = base_source(ctx, db, spec, &t, patients).await?;
            sources.insert(t, src);
        }
    }
    let mut chosen: Vec<String> = Vec::new();
    // Latest: per target, the Provenance with the latest `recorded` (then the greatest id).
    let mut latest: std::collections::BTreeMap<(String, String), (i64, String)> =
        Default::default();
    let mut cursor = Cursor::new("Provenance", Source::Scan, None);
    loop {
        let batch = cursor.next(db, BATCH, 0)?;
        if batch.is_empty() {
            break;
        }
        for h in batch {
            let p = crate::interaction::materialize(db, &h).await?;
            let recorded = p["recorded"]
                .as_str()
                .and_then(crate::resource::parse_instant)
                .unwrap_or(i64::MIN);
            for target in p["target"].as_array().into_iter().flatten() {
                let Some((tty, tid)) = target["reference"]
                    .as_str()
                    .and_then(|r| crate::resource::local_ref(r, &ctx.base))
                else {
                    continue;
                };
                let exported = match sources.get(tty) {
                    None => false,
                    Some(Source::List(ids)) => ids.contains(tid),
                    Some(Source::Scan) => db
                        .resource(tty, tid)?
                        .is_some_and(|v| !v.is_deleted() && v.t >= since_t),
                };
                if !exported {
                    continue;
                }
                match mode {
                    Associated::Relevant => chosen.push(h.id.clone()),
                    Associated::Latest => {
                        let e = latest
                            .entry((tty.to_string(), tid.to_string()))
                            .or_insert((i64::MIN, String::new()));
                        if (recorded, &h.id) > (e.0, &e.1) {
                            *e = (recorded, h.id.clone());
                        }
                    }
                }
            }
        }
        tokio::task::yield_now().await;
    }
    chosen.extend(latest.into_values().map(|(_, id)| id));
    let mut ids = IdList::from_unsorted(chosen.iter().map(String::as_str));
    if own {
        let regular = match base_source(ctx, db, spec, "Provenance", patients).await? {
            Source::List(regular) => (*regular).clone(),
            Source::Scan => db.type_ids("Provenance")?,
        };
        ids = ids.union(&regular);
    }
    ctx.state.results().insert(
        key,
        Arc::new(vec![Matches::Ids {
            type_name: "Provenance".to_string(),
            ids: ids.clone(),
        }]),
    );
    Ok(Source::List(Arc::new(ids)))
}

/// Where a type's exported resources come from.
#[derive(Clone)]
enum Source {
    /// Every current resource of the type (a scan of the index).
    Scan,
    /// These ids (current at the export's `t`, in id order).
    List(Arc<IdList>),
}

/// The source of `ty`'s resources: a scan at the system level without filters, else the ids
/// of the type's `_typeFilter` queries and, at the Patient and Group levels, of the patients'
/// compartments. The id lists are kept in the result cache (by request and `t`), so the
/// downloads of one export compute them once.
async fn base_source(
    ctx: &Ctx,
    db: &Db,
    spec: &Spec,
    ty: &str,
    patients: Option<&IdList>,
) -> FhirResult<Source> {
    let filters: Vec<&Vec<(String, String)>> = spec
        .filters
        .iter()
        .filter(|(t, _)| t == ty)
        .map(|(_, q)| q)
        .collect();
    if !spec.patients && filters.is_empty() {
        return Ok(Source::Scan);
    }
    let key = (
        format!(
            "$export\u{0}{ty}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            spec.group, spec.patients, spec.patient, filters
        ),
        db.t(),
    );
    if let Some(hit) = ctx.state.results().get(&key)
        && let Some(Matches::Ids { ids, .. }) = hit.first()
    {
        return Ok(Source::List(Arc::new(ids.clone())));
    }
    let engine = ctx.state.engine();
    let mut queries: Vec<Query> = Vec::new();
    for params in &filters {
        let mut q = search::parse(ctx, ty, params, Handling::Strict)?;
        search::resolve_stored(ctx, db, &mut q).await?;
        queries.push(q);
    }
    let ids_of = |m: Matches| -> IdList {
        match m {
            Matches::Ids { ids, .. } => ids,
            Matches::Handles(hs) => IdList::from_unsorted(hs.iter().map(|h| h.id.as_str())),
        }
    };
    let filtered = |db: &Db| -> FhirResult<IdList> {
        let mut acc = IdList::new();
        for q in &queries {
            acc = acc.union(&ids_of(engine.matches(db, q).map_err(search_error)?));
        }
        Ok(acc)
    };
    let ids = match patients {
        None => filtered(db)?,
        Some(ps) if ty == "Patient" => {
            if queries.is_empty() {
                ps.clone()
            } else {
                ps.intersect(&filtered(db)?)
            }
        }
        Some(ps) => {
            if queries.is_empty() {
                queries.push(search::parse(ctx, ty, &[], Handling::Strict)?);
            }
            let mut all: Vec<String> = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                for q in &queries {
                    let m = engine
                        .matches_in_compartment(db, "Patient", p, q)
                        .map_err(search_error)?;
                    all.extend(ids_of(m).iter().map(str::to_string));
                }
                if i % 64 == 63 {
                    tokio::task::yield_now().await;
                }
            }
            IdList::from_unsorted(all.iter().map(String::as_str))
        }
    };
    ctx.state.results().insert(
        key,
        Arc::new(vec![Matches::Ids {
            type_name: ty.to_string(),
            ids: ids.clone(),
        }]),
    );
    Ok(Source::List(Arc::new(ids)))
}

/// Reads a type's exported resources in id order, a batch at a time.
struct Cursor {
    ty: String,
    source: Source,
    /// Scan: the id to continue at (`inclusive`: with it); List: unused.
    next_id: Option<String>,
    inclusive: bool,
    /// List: the position to continue at.
    pos: usize,
    done: bool,
}

impl Cursor {
    /// A cursor over `source` from id `from` (the first resource with an id at or after it).
    fn new(ty: &str, source: Source, from: Option<&str>) -> Cursor {
        let pos = match (&source, from) {
            (Source::List(ids), Some(f)) => {
                let (mut lo, mut hi) = (0, ids.len());
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if ids.get(mid) < f {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
            _ => 0,
        };
        Cursor {
            ty: ty.to_string(),
            source,
            next_id: from.map(str::to_string),
            inclusive: true,
            pos,
            done: false,
        }
    }

    /// The next versions (at most `n`, changed at or after `since_t`); empty at the end.
    fn next(&mut self, db: &Db, n: usize, since_t: T) -> FhirResult<Vec<ResourceHandle>> {
        loop {
            if self.done {
                return Ok(Vec::new());
            }
            let mut page = match &self.source {
                Source::Scan => {
                    let mut page = db.type_list(&self.ty, self.next_id.as_deref(), n + 1)?;
                    if !self.inclusive
                        && page.first().map(|h| Some(&h.id)) == Some(self.next_id.as_ref())
                    {
                        page.remove(0);
                    }
                    page.truncate(n);
                    if page.len() < n {
                        self.done = true;
                    }
                    if let Some(last) = page.last() {
                        self.next_id = Some(last.id.clone());
                        self.inclusive = false;
                    }
                    page
                }
                Source::List(ids) => {
                    let end = (self.pos + n).min(ids.len());
                    let page = db.resources(&self.ty, (self.pos..end).map(|i| ids.get(i)))?;
                    if page.len() != end - self.pos {
                        return Err(DbError::fault(format!(
                            "{} of the {} exported {} resources are no longer current at t = {}",
                            end - self.pos - page.len(),
                            end - self.pos,
                            self.ty,
                            db.t()
                        ))
                        .into());
                    }
                    self.pos = end;
                    self.done = end == ids.len();
                    page
                }
            };
            page.retain(|h| h.t >= since_t);
            if !page.is_empty() || self.done {
                return Ok(page);
            }
        }
    }
}

/// The job of `id` if it is an export, for the status and file URLs.
async fn export_job(state: &AppState, id: &str) -> FhirResult<Option<(Scheduler, Job)>> {
    let Some(jobs) = state.jobs() else {
        return Ok(None);
    };
    Ok(match jobs.store().get(id).await? {
        Some(j) if j.job_type() == Some(JOB_TYPE) => Some((jobs.clone(), j)),
        _ => None,
    })
}

/// The planned files of a completed export job.
fn files_of(job: &Job) -> FhirResult<Vec<FilePart>> {
    job.parameter("output", PARAMETER_SYSTEM, "files")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            DbError::fault(format!("the completed export {} names no files", job.id)).into()
        })
}

/// `GET [base]/__async-status/{id}` of an export job: 202 with `X-Progress` while it is
/// planned, 200 with the manifest when done, 500 with the reason when it failed, 404 once
/// cancelled.
pub async fn status(ctx: &Ctx, job: &Job) -> FhirResult<Reply> {
    let id = &job.id;
    match job.status() {
        Status::Cancelled => Err(FhirError::not_found(format!(
            "The bulk export `{id}` was cancelled."
        ))),
        Status::Failed => Err(FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!(
                "The bulk export `{id}` failed: {}",
                job.failure().unwrap_or("no reason given")
            ),
        )),
        Status::Completed => {
            let files = files_of(job)?;
            let spec: Spec = job
                .parameter("input", PARAMETER_SYSTEM, "request")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default();
            let time = job
                .parameter("output", PARAMETER_SYSTEM, "transaction-time")
                .cloned()
                .unwrap_or(Value::Null);
            let output: Vec<Value> = files
                .iter()
                .map(|f| {
                    json!({"type": f.ty,
                           "url": format!("{}/{FILES_PATH}/{id}/{}", ctx.base, f.name),
                           "count": f.count})
                })
                .collect();
            let manifest = json!({
                "transactionTime": time,
                "request": spec.request,
                "requiresAccessToken": false,
                "output": output,
                "error": [],
            });
            Ok(Reply::new(
                200,
                Body::Raw(
                    "application/json".into(),
                    Bytes::from(flint_model::json::to_vec(&manifest, false)),
                ),
            ))
        }
        s @ (Status::Ready | Status::InProgress | Status::OnHold) => {
            let mut r = Reply::new(
                202,
                Body::Resource(crate::outcome::info_outcome(&format!(
                    "The bulk export `{id}` is {}.",
                    s.as_str()
                ))),
            );
            r.headers.push(("x-progress", s.as_str().to_string()));
            r.headers.push(("retry-after", "1".to_string()));
            Ok(r)
        }
    }
}

/// `DELETE [base]/__async-status/{id}` of an export job: cancels it, running or finished
/// (202; its files are gone), 404 when it was cancelled before.
pub async fn cancel(jobs: &Scheduler, id: &str) -> FhirResult<Reply> {
    let cancelled = || {
        Ok(Reply::new(
            202,
            Body::Resource(crate::outcome::info_outcome(&format!(
                "The bulk export `{id}` is cancelled."
            ))),
        ))
    };
    match jobs.cancel(id).await? {
        Cancelled::Now => cancelled(),
        Cancelled::AlreadyFinished => {
            let out = jobs
                .store()
                .update(
                    id,
                    |s| s.is_final() && s != Status::Cancelled,
                    |t| t["status"] = json!("cancelled"),
                )
                .await?;
            match out {
                Some(Ok(_)) => cancelled(),
                _ => Err(FhirError::not_found(format!(
                    "The bulk export `{id}` was cancelled."
                ))),
            }
        }
        Cancelled::Before | Cancelled::Unknown => Err(FhirError::not_found(format!(
            "The bulk export `{id}` was cancelled."
        ))),
    }
}

/// Whether `path` (segments after the context path) is an output file URL.
pub fn is_file_path(path: &[String]) -> bool {
    path.len() == 3 && path[0] == FILES_PATH
}

/// `GET [base]/__export/{job}/{file}`: the file's NDJSON, streamed (gzip when the request
/// accepts it). 404 for an unknown, unfinished or cancelled export or an unknown file; 503
/// when storage fails before the first byte, a broken-off body after it.
pub async fn download(ctx: &Ctx, method: &str, headers: &HeaderMap, path: &[String]) -> Response {
    match file_response(ctx, method, headers, path).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

fn error_response(e: &FhirError) -> Response {
    (
        e.status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        flint_model::json::to_vec(&e.to_outcome(), false),
    )
        .into_response()
}

/// Whether `Accept-Encoding` accepts gzip (a `gzip` coding whose `q` is not 0).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    header_str(headers, "accept-encoding").is_some_and(|v| {
        v.split(',').any(|c| {
            let mut parts = c.split(';').map(str::trim);
            parts.next().is_some_and(|n| n.eq_ignore_ascii_case("gzip"))
                && parts.all(|p| {
                    p.strip_prefix("q=")
                        .is_none_or(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
                })
        })
    })
}

async fn file_response(
    ctx: &Ctx,
    method: &str,
    headers: &HeaderMap,
    path: &[String],
) -> FhirResult<Response> {
    let (id, name) = (&path[1], &path[2]);
    if method != "GET" {
        return Err(FhirError::method_not_allowed(method, &path.join("/")));
    }
    let gone = || FhirError::not_found(format!("There is no bulk export file `{id}/{name}`."));
    let Some((_, job)) = export_job(&ctx.state, id).await? else {
        return Err(gone());
    };
    if job.status() != Status::Completed {
        return Err(gone());
    }
    let files = files_of(&job)?;
    let k = files
        .iter()
        .position(|f| &f.name == name)
        .ok_or_else(gone)?;
    let last = files.get(k + 1).is_none_or(|next| next.ty != files[k].ty);
    let file = files[k].clone();
    let t = job
        .parameter("input", PARAMETER_SYSTEM, "t")
        .and_then(Value::as_u64)
        .ok_or_else(|| FhirError::from(DbError::fault(format!("the export {id} has no t"))))?;
    let spec: Spec = job
        .parameter("input", PARAMETER_SYSTEM, "request")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| {
            FhirError::from(DbError::fault(format!("the export {id} has no request")))
        })?;
    let fctx = Ctx {
        state: ctx.state.clone(),
        base: format!(
            "{}{}",
            ctx.state.config().base_url,
            ctx.state.config().context_path
        ),
        at: Some(t),
    };
    let db = fctx.read_db().await?;
    let patients = patients(&fctx, &db, &spec).await?;
    let source = source(&fctx, &db, &spec, &file.ty, patients.as_ref()).await?;
    let gzip = accepts_gzip(headers);
    let mut stream = FileStream {
        since_t: since_t(&db, &spec)?,
        cursor: Cursor::new(&file.ty, source, file.from.as_deref()),
        db,
        left: file.count,
        elements: elements_of(&spec, &file.ty),
        last,
        instants: None,
        gzip: gzip.then(|| {
            flate2::write::GzEncoder::new(Vec::with_capacity(1 << 16), flate2::Compression::fast())
        }),
        finished: false,
    };
    // The first chunk before the status: a fault this early is still a 503.
    let first = stream.chunk().await?;
    let body = futures_util::stream::iter(first.map(Ok::<Bytes, std::io::Error>)).chain(
        futures_util::stream::try_unfold(stream, |mut s| async move {
            match s.chunk().await {
                Ok(Some(b)) => Ok(Some((b, s))),
                Ok(None) => Ok(None),
                Err(e) => {
                    tracing::warn!(error = %e.message, "bulk export file broken off");
                    metrics::counter!("flint_bulk_export_files_broken_total").increment(1);
                    Err(std::io::Error::other(e.message))
                }
            }
        }),
    );
    let mut out = HeaderMap::new();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzip {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok((
        StatusCode::OK,
        out,
        axum::body::Body::from_stream(futures_util::StreamExt::boxed(body)),
    )
        .into_response())
}

/// The state of one streamed file.
struct FileStream {
    db: Db,
    cursor: Cursor,
    since_t: T,
    /// Resources still to write.
    left: u64,
    /// The elements `_elements` keeps (`None`: whole resources).
    elements: Option<Vec<String>>,
    /// Whether this is the type's last file (then nothing may follow its `count`).
    last: bool,
    /// The last formatted instant.
    instants: Option<(i64, String)>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    finished: bool,
}

impl FileStream {
    /// The next chunk of the body: a batch of NDJSON lines (compressed), the gzip trailer at
    /// the end, then `None`. A file that ends before its planned count is an error.
    async fn chunk(&mut self) -> FhirResult<Option<Bytes>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if self.left == 0 {
                if self.last && !self.cursor.next(&self.db, 1, self.since_t)?.is_empty() {
                    return Err(DbError::fault(
                        "the export file has more resources than its planned count",
                    )
                    .into());
                }
                self.finished = true;
                return match self.gzip.take() {
                    Some(gz) => gz
                        .finish()
                        .map(|b| Some(Bytes::from(b)))
                        .map_err(|e| DbError::fault(format!("gzip: {e}")).into()),
                    None => Ok(None),
                };
            }
            let n = (self.left.min(BATCH as u64)) as usize;
            let handles = self.cursor.next(&self.db, n, self.since_t)?;
            if handles.is_empty() {
                return Err(DbError::fault(format!(
                    "the export file ended {} resources early",
                    self.left
                ))
                .into());
            }
            self.left -= handles.len() as u64;
            let stored = search::stored_all(&self.db, &handles).await?;
            let mut out = Vec::with_capacity(stored.iter().map(|s| s.bytes.len() + 80).sum());
            for s in &stored {
                match &self.elements {
                    None => s.write_json(&mut out, &mut self.instants)?,
                    Some(names) => {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        let v = flint_model::subset::elements(&s.to_value()?, &names);
                        out.extend_from_slice(&flint_model::json::to_vec(&v, false));
                    }
                }
                out.push(b'\n');
            }
            if let Some(gz) = &mut self.gzip {
                gz.write_all(&out)
                    .map_err(|e| FhirError::from(DbError::fault(format!("gzip: {e}"))))?;
                out = std::mem::take(gz.get_mut());
            }
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_split_at_each_query() {
        assert_eq!(
            split_type_filters("Observation?code=a,b&status=final,Patient?gender=male"),
            ["Observation?code=a,b&status=final", "Patient?gender=male"]
        );
        assert_eq!(split_type_filters("x"), ["x"]);
    }

    #[test]
    fn gzip_is_accepted_unless_q_is_zero() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert("accept-encoding", v.parse().unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip"));
        assert!(h("br, GZIP;q=0.5"));
        assert!(!h("gzip;q=0"));
        assert!(!h("deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
