//! `[base]/$cql` (system level, POST only; OperationDefinition `cpg-cql`, as in Blaze):
//! evaluates one CQL expression over the database with the state's
//! [`flint_measure::CqlService`] and answers a `Parameters` resource with one `return`
//! parameter per result value (see [`flint_measure::cql`] for the shapes: a list gives one
//! `return` per element, null a `return` whose `_valueString` has the `data-absent-reason`
//! extension).
//!
//! Offered only when `RestConfig::enable_operation_cql` is on (`ENABLE_OPERATION_CQL`; it
//! runs any expression over all the data): the registry is a constant, so `invoke` leaves
//! the operation out of the registry it looks names up in when it is off, and the
//! CapabilityStatement does not list it; `$cql` then answers exactly as an unknown
//! operation (400 `not-supported`).
//!
//! Parameters (a `Parameters` body; query parameters of the POST count too):
//!
//! * `expression` (1..1, valueString): the CQL expression. `using FHIR version '4.0.1'`
//!   and `include FHIRHelpers version '4.0.1'` are implied.
//! * `subject` (valueString `Patient/123` or `123`, or valueReference): evaluates in the
//!   Patient context of that patient; without it the context is unfiltered.
//! * `parameters` (a nested `Parameters` resource): each entry a parameter the expression
//!   may name (a name given more than once is a list).
//! * `data`, `dataEndpoint`, `contentEndpoint`, `terminologyEndpoint`, `useServerData`,
//!   `prefetchData`: accepted and ignored (the server's data is always used).
//!
//! Errors: 400 `invalid` for a missing or repeated `expression`, an unknown parameter, a
//! syntax or semantic error (an unknown identifier or function, a type mismatch: line and
//! column in the message, `expression` pointing at the parameter's value); 404 for an unknown subject; 422 `processing` for an evaluation error (a step
//! budget stops runaway expressions); 503 for a storage fault and for an evaluation that
//! takes longer than the limit (`CqlConfig::timeout`); 422 `not-supported` when no CQL
//! engine is configured.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Payload, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use crate::resource;
use axum::http::StatusCode;
use flint_db::ErrorKind;
use flint_measure::{MeasureError, NamedParam, ResourceRef, ResultValue};
use serde_json::Value;

/// The registration of `$cql`.
pub const OPERATION: Operation = Operation {
    name: "cql",
    definition: "http://hl7.org/fhir/uv/cpg/OperationDefinition/cpg-cql",
    levels: &[Level::System],
    types: &[],
    methods: &["POST"],
    run,
};

/// Parameters of the CPG operations this server accepts and ignores.
pub(super) const IGNORED: [&str; 6] = [
    "data",
    "dataEndpoint",
    "contentEndpoint",
    "terminologyEndpoint",
    "useServerData",
    "prefetchData",
];

/// A CQL operation's parameters: the operation's own as text with the FHIRPath of where
/// each came from, and the nested `parameters` for the CQL.
#[derive(Default)]
pub(super) struct Input {
    own: Vec<(String, String, String)>,
    /// The CQL parameters.
    pub(super) named: Vec<NamedParam>,
    named_at: Option<String>,
}

impl Input {
    /// The values of `name`, with where each came from.
    pub(super) fn all(&self, name: &str) -> Vec<(&str, &str)> {
        self.own
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, v, at)| (v.as_str(), at.as_str()))
            .collect()
    }

    /// The one value of `name`, if given (given twice: 400).
    pub(super) fn one(&self, name: &str) -> FhirResult<Option<(&str, &str)>> {
        let all = self.all(name);
        if let Some((_, at)) = all.get(1) {
            return Err(FhirError::invalid(format!(
                "The parameter `{name}` is given more than once."
            ))
            .at(*at));
        }
        Ok(all.first().copied())
    }

    /// Where the parameter `name` came from (`name` itself when not given).
    fn path_of(&self, name: &str) -> String {
        if name == "parameters" {
            return self.named_at.clone().unwrap_or_else(|| name.to_string());
        }
        self.all(name)
            .first()
            .map_or_else(|| name.to_string(), |(_, at)| at.to_string())
    }

    /// The subject of `subject`, if given.
    pub(super) fn subject(&self) -> FhirResult<Option<ResourceRef>> {
        let Some((s, at)) = self.one("subject")? else {
            return Ok(None);
        };
        super::evaluate_measure::subject_of(s)
            .map(Some)
            .map_err(|e| e.at(at))
    }

    /// A service error as an answer: its `expression` (a parameter name) made the path of
    /// that parameter, an invalid one without an `expression` pointing at `default_at`'s
    /// parameter; an evaluation error (422) is a `processing` issue.
    pub(super) fn error(&self, e: MeasureError, default_at: &str) -> FhirError {
        let at = match (&e.expression, e.kind) {
            (Some(name), _) => Some(self.path_of(name)),
            (None, ErrorKind::Invalid) => Some(self.path_of(default_at)),
            _ => None,
        };
        let kind = e.kind;
        let mut f = FhirError::from(e);
        if let Some(at) = at {
            f = f.at(at);
        }
        if kind == ErrorKind::Unprocessable {
            f.code = "processing";
        }
        f
    }
}

/// The text of a parameter's value (`valueString`, `valueUri`, ..., a reference's
/// `reference`), if it has one.
fn text_of(p: &Value) -> Option<String> {
    let v = super::evaluate_measure::value_of(p)?;
    match (&v.value, v.fhir_type.as_str()) {
        (Value::String(s), _) => Some(s.clone()),
        (r, "Reference") => r
            .get("reference")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// Reads a CQL operation's parameters: `own` names from the query and the body, the nested
/// `parameters`, the [`IGNORED`] ones skipped, anything else 400.
pub(super) fn read(req: &FhirRequest, own: &[&str], op: &str) -> FhirResult<Input> {
    let mut input = Input::default();
    for (k, v) in &req.query {
        if own.contains(&k.as_str()) {
            input.own.push((k.clone(), v.clone(), k.clone()));
        } else if !k.starts_with('_') && !IGNORED.contains(&k.as_str()) {
            return Err(
                FhirError::invalid(format!("Unknown parameter `{k}` of `${op}`.")).at(k.as_str()),
            );
        }
    }
    let body = match &req.payload {
        Payload::None => return Ok(input),
        p => crate::context::payload_resource("Parameters", p)?,
    };
    if resource::type_of(&body) != "Parameters" {
        return Err(FhirError::invalid(format!(
            "The body of `${op}` must be a Parameters resource."
        )));
    }
    let empty = Vec::new();
    let entries = body
        .get("parameter")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for (i, p) in entries.iter().enumerate() {
        let at = format!("Parameters.parameter[{i}]");
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            return Err(FhirError::invalid("A parameter has no name.").at(format!("{at}.name")));
        };
        if own.contains(&name) {
            let text = text_of(p).ok_or_else(|| {
                FhirError::invalid(format!(
                    "The parameter `{name}` needs a string, uri, canonical or reference value."
                ))
                .at(format!("{at}.value"))
            })?;
            input
                .own
                .push((name.to_string(), text, format!("{at}.value")));
        } else if name == "parameters" {
            let nested = p
                .get("resource")
                .filter(|r| resource::type_of(r) == "Parameters");
            let Some(nested) = nested else {
                return Err(FhirError::invalid(
                    "The parameter `parameters` needs a Parameters resource.",
                )
                .at(format!("{at}.resource")));
            };
            input.named_at.get_or_insert(format!("{at}.resource"));
            let list = nested
                .get("parameter")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            for (j, q) in list.iter().enumerate() {
                let q_at = format!("{at}.resource.parameter[{j}]");
                let (Some(n), Some(value)) = (
                    q.get("name").and_then(Value::as_str),
                    super::evaluate_measure::value_of(q),
                ) else {
                    return Err(FhirError::invalid(
                        "Each entry of `parameters` needs a name and a value[x].",
                    )
                    .at(q_at));
                };
                match input.named.iter_mut().find(|p| p.name == n) {
                    Some(p) => p.values.push(value),
                    None => input.named.push(NamedParam {
                        name: n.to_string(),
                        values: vec![value],
                    }),
                }
            }
        } else if !IGNORED.contains(&name) {
            return Err(
                FhirError::invalid(format!("Unknown parameter `{name}` of `${op}`."))
                    .at(format!("{at}.name")),
            );
        }
    }
    Ok(input)
}

/// The CQL engine, or 422 `not-supported` naming `op`.
pub(super) fn evaluation<'a>(
    ctx: &'a Ctx,
    op: &str,
) -> FhirResult<&'a crate::state::CqlEvaluation> {
    ctx.state.cql_evaluation().ok_or_else(|| {
        FhirError::unsupported(format!(
            "CQL evaluation is not available on this server, so `${op}` can't evaluate."
        ))
    })
}

/// Awaits `f` within the time limit of `setup` (then 503 `timeout`).
pub(super) async fn limited<T>(
    setup: &crate::state::CqlEvaluation,
    f: impl std::future::Future<Output = T>,
) -> FhirResult<T> {
    match setup.config.timeout {
        None => Ok(f.await),
        Some(limit) => tokio::time::timeout(limit, f).await.map_err(|_| {
            FhirError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "The CQL evaluation took longer than the limit of {} ms.",
                    limit.as_millis()
                ),
            )
        }),
    }
}

fn run<'a>(ctx: &'a Ctx, _target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(cql(ctx, req))
}

async fn cql(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Reply> {
    let input = read(req, &["expression", "subject"], "cql")?;
    let Some((expression, _)) = input.one("expression")? else {
        return Err(
            FhirError::invalid("Missing required parameter `expression`.").at("expression"),
        );
    };
    let subject = input.subject()?;
    let setup = evaluation(ctx, "cql")?;
    let db = ctx.read_db().await?;
    let result = limited(
        setup,
        setup
            .service
            .evaluate_expression(&db, expression, subject.as_ref(), &input.named),
    )
    .await?
    .map_err(|e| input.error(e, "expression"))?;
    let out: [(String, ResultValue); 1] = [("return".to_string(), result)];
    Ok(Reply::new(
        200,
        Body::Resource(flint_measure::cql::parameters(&out)),
    ))
}
