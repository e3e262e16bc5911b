//! `$evaluate-measure` (Measure type and instance level, GET or POST; OperationDefinition
//! `Measure-evaluate-measure`): evaluates a Measure over the database with the state's
//! [`flint_measure::ExpressionEvaluator`] and answers a `MeasureReport`.
//!
//! Parameters (query parameters of a GET, a `Parameters` body of a POST, whose query
//! parameters count too):
//!
//! * `periodStart`, `periodEnd` (1..1): a year (`2020` is the whole year), year-month, date
//!   or dateTime; the measurement period runs from the first instant of the start to the
//!   last of the end.
//! * `measure` (type level, 1..1): the Measure's canonical url, optionally `url|version`.
//! * `reportType`: `population`, `subject` or `subject-list` (default `subject` with a
//!   subject, else `population`). `subject-list` stores one `List` per population, so it
//!   needs a POST (as in Blaze); the Lists are stored whether or not the report is.
//! * `subject`: `Patient/id` or `id`.
//! * any other name (POST only; also the parts of an R5-style `parameters` resource): a
//!   named parameter of the library, repeated names as a list.
//!
//! Errors: 400 `invalid` with `expression` naming the parameter, 400 `invalid` for an error
//! in the measure's library or its includes (syntax, unknown identifier or function, type
//! mismatch, include cycle: the message names the library, its version, the line and the
//! column), 404 for an unknown Measure or subject, 422 for a Measure that can't be evaluated (no library, a criteria without
//! expression) and 422 `not-supported` when no evaluator (CQL engine) is configured.
//!
//! An evaluation longer than [`flint_measure::MeasureConfig::timeout`] is abandoned: 503
//! `timeout`.
//!
//! A POST stores the MeasureReport and answers 201 with `Location`, unless the evaluator's
//! [`flint_measure::MeasureConfig::report_persistence`] is off; a GET answers the report
//! inline (200).

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Payload, Reply, Return};
use crate::context::Ctx;
use crate::interaction::{commit, prepare_create, write_reply};
use crate::outcome::{FhirError, FhirResult};
use crate::resource;
use axum::http::StatusCode;
use flint_measure::{
    EvaluationParams, EvaluationRequest, NamedParam, ParamValue, ReportType, ResourceRef,
};
use serde_json::Value;

/// The registration of `$evaluate-measure`.
pub const OPERATION: Operation = Operation {
    name: "evaluate-measure",
    definition: "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
    levels: &[Level::Type, Level::Instance],
    types: &["Measure"],
    methods: &["GET", "POST"],
    run,
};

/// The parameters the operation defines (everything else of a POST goes to the library).
const OWN: [&str; 5] = [
    "periodStart",
    "periodEnd",
    "measure",
    "reportType",
    "subject",
];

/// The request's parameters: the operation's own as text, the others for the library.
#[derive(Default)]
struct Params {
    own: Vec<(String, String)>,
    named: Vec<NamedParam>,
}

impl Params {
    fn one(&self, name: &str) -> FhirResult<Option<&str>> {
        let mut values = self.own.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(FhirError::invalid(format!(
                "The parameter `{name}` is given more than once."
            ))
            .at(name));
        }
        Ok(first)
    }

    fn required(&self, name: &str) -> FhirResult<&str> {
        self.one(name)?.ok_or_else(|| {
            FhirError::invalid(format!("Missing required parameter `{name}`.")).at(name)
        })
    }

    fn add_named(&mut self, name: &str, value: ParamValue) {
        match self.named.iter_mut().find(|p| p.name == name) {
            Some(p) => p.values.push(value),
            None => self.named.push(NamedParam {
                name: name.to_string(),
                values: vec![value],
            }),
        }
    }
}

/// The `value[x]` of a parameter: its type (`valueDateTime` → `dateTime`) and value.
pub(super) fn value_of(p: &Value) -> Option<ParamValue> {
    let obj = p.as_object()?;
    obj.iter().find_map(|(k, v)| {
        let ty = k.strip_prefix("value")?;
        let fhir_type = if PRIMITIVES.contains(&ty) {
            let mut chars = ty.chars();
            let first = chars.next()?;
            format!("{}{}", first.to_ascii_lowercase(), chars.as_str())
        } else {
            ty.to_string()
        };
        Some(ParamValue {
            fhir_type,
            value: v.clone(),
        })
    })
}

/// The primitive types, as `value[x]` suffixes.
const PRIMITIVES: [&str; 18] = [
    "Base64Binary",
    "Boolean",
    "Canonical",
    "Code",
    "Date",
    "DateTime",
    "Decimal",
    "Id",
    "Instant",
    "Integer",
    "Markdown",
    "Oid",
    "PositiveInt",
    "String",
    "Time",
    "UnsignedInt",
    "Uri",
    "Url",
];

/// The text of one of the operation's own parameters in a `Parameters` entry.
fn own_text(name: &str, p: &Value) -> FhirResult<String> {
    let v = value_of(p).ok_or_else(|| {
        FhirError::invalid(format!("The parameter `{name}` has no value.")).at(name)
    })?;
    let text = match (&v.value, v.fhir_type.as_str()) {
        (Value::String(s), _) => Some(s.clone()),
        (r, "Reference") => r
            .get("reference")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    text.ok_or_else(|| {
        FhirError::invalid(format!(
            "The parameter `{name}` has a value of type `{}`, expected a string, date, code, \
             canonical or reference.",
            v.fhir_type
        ))
        .at(name)
    })
}

fn params(req: &FhirRequest) -> FhirResult<Params> {
    let mut out = Params::default();
    for (k, v) in &req.query {
        if OWN.contains(&k.as_str()) {
            out.own.push((k.clone(), v.clone()));
        }
    }
    let body = match &req.payload {
        Payload::None => None,
        p => Some(crate::context::payload_resource("Parameters", p)?),
    };
    match &body {
        None => {}
        Some(v) if resource::type_of(v) == "Parameters" => {
            let empty = Vec::new();
            let entries = v
                .get("parameter")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            for (i, p) in entries.iter().enumerate() {
                let Some(name) = p.get("name").and_then(Value::as_str) else {
                    return Err(FhirError::invalid("A parameter has no name.")
                        .at(format!("Parameters.parameter[{i}].name")));
                };
                if OWN.contains(&name) {
                    out.own.push((name.to_string(), own_text(name, p)?));
                } else if name == "parameters" {
                    let nested = p
                        .get("resource")
                        .and_then(|r| r.get("parameter"))
                        .and_then(Value::as_array)
                        .unwrap_or(&empty);
                    for q in nested {
                        if let (Some(n), Some(val)) =
                            (q.get("name").and_then(Value::as_str), value_of(q))
                        {
                            out.add_named(n, val);
                        }
                    }
                } else {
                    let val = value_of(p).ok_or_else(|| {
                        FhirError::invalid(format!(
                            "The parameter `{name}` has no value[x]; only values are \
                             passed to the library."
                        ))
                        .at(name)
                    })?;
                    out.add_named(name, val);
                }
            }
        }
        Some(_) => {
            return Err(FhirError::invalid(
                "The body of a POST `$evaluate-measure` must be a Parameters resource.",
            ));
        }
    }
    Ok(out)
}

/// The subject of `subject`: `Type/id` or a bare Patient id.
pub(super) fn subject_of(s: &str) -> FhirResult<ResourceRef> {
    let r = if s.contains('/') {
        ResourceRef::parse(s)
    } else {
        Some(ResourceRef::new("Patient", s))
    };
    r.filter(|r| crate::context::check_type_and_id(&r.type_name, &r.id).is_ok())
        .ok_or_else(|| {
            FhirError::invalid(format!(
                "Invalid parameter `subject`: `{s}` is not `Patient/id` or an id."
            ))
            .at("subject")
        })
}

/// The current Measure whose `url` (and `version`, when `canonical` has one) match.
async fn measure_by_canonical(db: &flint_db::Db, canonical: &str) -> FhirResult<Value> {
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (canonical, None),
    };
    let handles = db.type_list("Measure", None, usize::MAX)?;
    let mut found: Option<Value> = None;
    for h in handles {
        let m = crate::interaction::materialize(db, &h).await?;
        if m.get("url").and_then(Value::as_str) != Some(url) {
            continue;
        }
        let v = m.get("version").and_then(Value::as_str);
        if version.is_some_and(|want| Some(want) != v) {
            continue;
        }
        // Without a version, the newest version wins (compared as text).
        let newer = found.as_ref().is_none_or(|f| {
            f.get("version").and_then(Value::as_str).unwrap_or("") < v.unwrap_or("")
        });
        if newer {
            found = Some(m);
        }
    }
    found.ok_or_else(|| {
        FhirError::not_found(format!("The Measure `{canonical}` was not found.")).at("measure")
    })
}

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(evaluate_measure(ctx, target, req))
}

async fn evaluate_measure(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let p = params(req)?;
    let start = p.required("periodStart")?.to_string();
    let end = p.required("periodEnd")?.to_string();
    let period = flint_measure::period::interval(&start, &end)?;
    let subject = p.one("subject")?.map(subject_of).transpose()?;
    let report_type = match p.one("reportType")? {
        Some(t) => ReportType::parse(t).ok_or_else(|| {
            FhirError::invalid(format!(
                "Invalid parameter `reportType`: `{t}` is not one of population, subject, \
                 subject-list."
            ))
            .at("reportType")
        })?,
        None if subject.is_some() => ReportType::Subject,
        None => ReportType::Population,
    };
    if report_type == ReportType::SubjectList && req.method == "GET" {
        return Err(FhirError::invalid(
            "The report type `subject-list` stores Lists, so it needs a POST.",
        )
        .at("reportType"));
    }
    if req.method == "GET"
        && let Some((name, _)) = req
            .query
            .iter()
            .find(|(k, _)| !k.starts_with('_') && !OWN.contains(&k.as_str()))
    {
        return Err(FhirError::invalid(format!(
            "Unknown parameter `{name}` (library parameters need a POST with a Parameters body)."
        ))
        .at(name.as_str()));
    }
    let db = ctx.read_db().await?;
    let measure = match target {
        Target::Instance(_, id) => crate::interaction::current(&db, "Measure", id).await?.0,
        _ => {
            let canonical = p.required("measure")?.to_string();
            measure_by_canonical(&db, &canonical).await?
        }
    };
    let Some(setup) = ctx.state.measure_evaluation() else {
        return Err(FhirError::unsupported(
            "CQL evaluation is not available on this server, so `$evaluate-measure` can't \
             evaluate Measures.",
        ));
    };
    let request = EvaluationRequest {
        params: EvaluationParams {
            period,
            named: p.named,
        },
        report_period: (start, end),
        report_type,
        subject,
        date: resource::format_instant(now_ms()),
    };
    let mut new_id = resource::new_id;
    let evaluation = flint_measure::evaluate(
        &*setup.evaluator,
        &db,
        &measure,
        &request,
        &setup.config,
        &mut new_id,
    );
    let evaluation = match setup.config.timeout {
        None => evaluation.await?,
        Some(limit) => tokio::time::timeout(limit, evaluation)
            .await
            .map_err(|_| {
                FhirError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    format!(
                        "The evaluation of the Measure took longer than the limit of {} ms.",
                        limit.as_millis()
                    ),
                )
            })??,
    };
    let mut writes = Vec::new();
    for list in evaluation.lists {
        let id = resource::id_of(&list).unwrap_or_default().to_string();
        writes.push(prepare_create(ctx, "List", list, id)?);
    }
    let persist = req.method == "POST" && setup.config.report_persistence;
    if !persist {
        if !writes.is_empty() {
            commit(ctx, &writes).await?;
        }
        return Ok(Reply::new(200, Body::Resource(evaluation.report)));
    }
    let p = prepare_create(ctx, "MeasureReport", evaluation.report, resource::new_id())?;
    writes.push(p.clone());
    let out = commit(ctx, &writes).await?;
    write_reply(
        ctx,
        &p,
        &out,
        req.prefer_return.unwrap_or(Return::Representation),
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
