//! Asynchronous requests: the FHIR asynchronous request pattern as Blaze answers it.
//!
//! A request sent with `Prefer: respond-async` that may run long (a type search with
//! `_summary=count`, `$evaluate-measure`, `$cql`, `$export`, `$compact`, a batch Bundle) is
//! accepted with **202** and `Content-Location: [base]/__async-status/{id}`; the others are
//! answered as usual. Accepting it writes, to the admin database ([`flint_jobs`]), the request as a
//! batch Bundle of one entry (a batch Bundle as sent) and a `Task` job of type
//! `async-interaction` naming that Bundle and the database value `t` the request was
//! received at. The job runs the Bundle as of that `t` (whatever is written meanwhile) and
//! keeps the `batch-response` Bundle as its output.
//!
//! `GET [base]/__async-status/{id}` answers 202 with `X-Progress` while the job runs, 200 with
//! the `batch-response` Bundle when it is done (an entry with the error's OperationOutcome
//! when it failed) and 404 once it is cancelled; `DELETE` cancels it (202, or 409 when it had
//! finished). A job that was running when the server stopped runs again at start
//! ([`resume`]), at its `t`.
//!
//! `$export` kick-offs are accepted here too, but as jobs of their own
//! ([`crate::operations::export`]): their status answers the Bulk Data manifest.

use crate::api::{Body, FhirRequest, Payload, Reply, Return};
use crate::bundle::Dispatch;
use crate::context::Ctx;
use crate::operations::export;
use crate::outcome::{FhirError, FhirResult};
use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use flint_jobs::{
    ASYNC_OUTPUT_SYSTEM, ASYNC_PARAMETER_SYSTEM, Cancelled, Job, Scheduler, Status, new_task,
    parameter,
};
use serde_json::{Value, json};

/// The job type of asynchronous requests.
pub const JOB_TYPE: &str = "async-interaction";

/// The operations that run asynchronously when asked to.
const ASYNC_OPERATIONS: &[&str] = &["$evaluate-measure", "$cql", "$export", "$compact"];

/// Whether the headers ask for an asynchronous answer (`Prefer: respond-async`).
pub fn prefers_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

/// Whether `req` is one of the requests that run asynchronously when asked to.
pub fn eligible(req: &FhirRequest) -> bool {
    if export::is_kick_off(req) {
        return true;
    }
    let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
    match (req.method.as_str(), p.as_slice()) {
        ("GET", [_ty]) => req.param("_summary") == Some("count"),
        (_, [op] | [_, op] | [_, _, op]) => ASYNC_OPERATIONS.contains(op),
        ("POST", []) => true,
        _ => false,
    }
}

/// The request as the batch Bundle the job runs; `None` for a Bundle that is not a batch
/// (a transaction is answered synchronously).
fn request_bundle(req: &FhirRequest) -> FhirResult<Option<Value>> {
    let body = match &req.payload {
        Payload::None => None,
        p => Some(crate::context::payload_resource("Parameters", p)?),
    };
    if req.path.is_empty() {
        let bundle = body.ok_or_else(|| FhirError::invalid("The request has no body."))?;
        let batch = crate::resource::type_of(&bundle) == "Bundle"
            && bundle.get("type").and_then(Value::as_str) == Some("batch");
        return Ok(batch.then_some(bundle));
    }
    let path: Vec<String> = req
        .path
        .iter()
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect();
    let mut url = path.join("/");
    if !req.query.is_empty() {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&req.query)
            .finish();
        url = format!("{url}?{q}");
    }
    let mut entry = json!({"request": {"method": req.method, "url": url}});
    if let Some(b) = body {
        entry["resource"] = b;
    }
    Ok(Some(
        json!({"resourceType": "Bundle", "type": "batch", "entry": [entry]}),
    ))
}

/// Accepts `req` as an asynchronous request: `None` when it runs synchronously after all (no
/// admin database, or a transaction Bundle), else the 202 answer.
pub async fn submit(ctx: &Ctx, req: &FhirRequest, dispatch: Dispatch) -> FhirResult<Option<Reply>> {
    if crate::operations::export::is_kick_off(req) {
        return crate::operations::export::kick_off(ctx, req)
            .await
            .map(Some);
    }
    let Some(jobs) = ctx.state.jobs() else {
        return Ok(None);
    };
    let Some(bundle) = request_bundle(req)? else {
        return Ok(None);
    };
    let t = ctx.read_db().await?.t();
    let store = jobs.store();
    let bundle_id = store.keep(bundle).await?;
    let mut task = new_task(
        JOB_TYPE,
        vec![
            parameter(
                ASYNC_PARAMETER_SYSTEM,
                "bundle",
                "valueReference",
                json!({"reference": format!("Bundle/{bundle_id}")}),
            ),
            parameter(ASYNC_PARAMETER_SYSTEM, "t", "valueUnsignedInt", json!(t)),
        ],
    );
    task["meta"] = json!({"profile": ["https://samply.github.io/blaze/fhir/StructureDefinition/AsyncInteractionJob"]});
    let job = store.create(task).await?;
    start(&ctx.state, &ctx.base, jobs, &job, dispatch).await?;
    metrics::counter!("flint_async_requests_total").increment(1);
    let mut reply = Reply::new(
        202,
        Body::Resource(information(&format!(
            "Accepted as the asynchronous request {}; poll its status URL.",
            job.id
        ))),
    );
    reply.headers.push((
        "content-location",
        format!("{}/__async-status/{}", ctx.base, job.id),
    ));
    Ok(Some(reply))
}

fn information(text: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": "information", "code": "informational", "diagnostics": text}]})
}

/// Runs the request of `job` (as of its `t`, with links on `base`).
async fn start(
    state: &AppState,
    base: &str,
    jobs: &Scheduler,
    job: &Job,
    dispatch: Dispatch,
) -> FhirResult<()> {
    let t = job
        .parameter("input", ASYNC_PARAMETER_SYSTEM, "t")
        .and_then(Value::as_u64);
    let bundle_ref = job
        .parameter("input", ASYNC_PARAMETER_SYSTEM, "bundle")
        .and_then(|r| r["reference"].as_str())
        .and_then(|r| r.strip_prefix("Bundle/"))
        .map(str::to_string);
    let store = jobs.store().clone();
    let ctx = Ctx {
        state: state.clone(),
        base: base.to_string(),
        at: t,
    };
    let work = async move {
        let (Some(_), Some(bundle_id)) = (t, bundle_ref) else {
            return Err("the job names no request Bundle or no database value t".to_string());
        };
        let started = std::time::Instant::now();
        let bundle = match store.resource("Bundle", &bundle_id).await {
            Ok(Some((_, b))) => b,
            Ok(None) => return Err(format!("the request Bundle/{bundle_id} is gone")),
            Err(e) => return Err(format!("cannot read the request Bundle/{bundle_id}: {e}")),
        };
        let reply =
            crate::bundle::process(&ctx, bundle, Some(Return::Representation), dispatch).await;
        let response = match reply {
            Ok(Reply {
                body: Body::Resource(v),
                ..
            }) => v,
            Ok(_) => return Err("the request answered no Bundle".to_string()),
            Err(e) => crate::bundle::error_response(&e),
        };
        let id = store
            .keep(response)
            .await
            .map_err(|e| format!("cannot keep the response: {e}"))?;
        Ok(vec![
            parameter(
                ASYNC_OUTPUT_SYSTEM,
                "bundle",
                "valueReference",
                json!({"reference": format!("Bundle/{id}")}),
            ),
            parameter(
                ASYNC_OUTPUT_SYSTEM,
                "processing-duration",
                "valueQuantity",
                json!({"value": started.elapsed().as_secs_f64(), "unit": "s",
                       "system": "http://unitsofmeasure.org", "code": "s"}),
            ),
        ])
    };
    jobs.run(job, work).await?;
    Ok(())
}

/// Runs again, at their `t`, the asynchronous requests that were accepted or running when the
/// server stopped, and the admin API's jobs ([`crate::admin::jobs::restart`]: a re-index goes
/// on from its cursor); fails the unfinished jobs of other types, with the reason. Returns
/// how many jobs run again. `dispatch` answers the requests' entries.
pub async fn resume(state: &AppState, dispatch: Dispatch) -> FhirResult<usize> {
    let Some(jobs) = state.jobs() else {
        return Ok(0);
    };
    let base = format!("{}{}", state.config().base_url, state.config().context_path);
    let mut n = 0;
    for job in jobs.store().unfinished().await? {
        if job.job_type() == Some(JOB_TYPE) {
            start(state, &base, jobs, &job, dispatch).await?;
            n += 1;
        } else if job.job_type() == Some(export::JOB_TYPE) {
            export::start(state, jobs, &job).await?;
            n += 1;
        } else if crate::admin::jobs::restart(state, jobs, &job).await? {
            n += 1;
        } else {
            jobs.store()
                .update(
                    &job.id,
                    |s| !s.is_final(),
                    |t| {
                        t["status"] = json!("failed");
                        t["statusReason"] =
                            json!({"text": "interrupted by a restart; this job type does not resume"});
                    },
                )
                .await?;
        }
    }
    Ok(n)
}

fn unknown(id: &str) -> FhirError {
    FhirError::not_found(format!("There is no asynchronous request with id `{id}`."))
}

/// `GET [base]/__async-status/{id}`.
pub async fn status(ctx: &Ctx, id: &str) -> FhirResult<Reply> {
    let jobs = ctx.state.jobs().ok_or_else(|| unknown(id))?;
    let job = match jobs.store().get(id).await? {
        Some(j) if j.job_type() == Some(JOB_TYPE) => j,
        Some(j) if j.job_type() == Some(export::JOB_TYPE) => return export::status(ctx, &j).await,
        _ => return Err(unknown(id)),
    };
    match job.status() {
        Status::Cancelled => Err(FhirError::not_found(format!(
            "The asynchronous request `{id}` was cancelled."
        ))),
        Status::Completed => {
            let bundle_id = job
                .parameter("output", ASYNC_OUTPUT_SYSTEM, "bundle")
                .and_then(|r| r["reference"].as_str())
                .and_then(|r| r.strip_prefix("Bundle/"))
                .ok_or_else(|| {
                    FhirError::from(flint_db::DbError::fault(format!(
                        "the completed job {id} names no response Bundle"
                    )))
                })?;
            match jobs.store().resource("Bundle", bundle_id).await? {
                Some((_, b)) => Ok(Reply::new(200, Body::Resource(b))),
                None => Err(FhirError::from(flint_db::DbError::fault(format!(
                    "the response Bundle/{bundle_id} of job {id} is gone"
                )))),
            }
        }
        Status::Failed => {
            let e = FhirError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                job.failure().unwrap_or("the request failed").to_string(),
            );
            Ok(Reply::new(
                200,
                Body::Resource(crate::bundle::error_response(&e)),
            ))
        }
        s @ (Status::Ready | Status::InProgress | Status::OnHold) => {
            let mut r = Reply::new(
                202,
                Body::Resource(information(&format!(
                    "The asynchronous request `{id}` is {}.",
                    s.as_str()
                ))),
            );
            r.headers.push(("x-progress", s.as_str().to_string()));
            Ok(r)
        }
    }
}

/// `DELETE [base]/__async-status/{id}`: cancels the request.
pub async fn cancel(ctx: &Ctx, id: &str) -> FhirResult<Reply> {
    let jobs = ctx.state.jobs().ok_or_else(|| unknown(id))?;
    match jobs.store().get(id).await? {
        Some(j) if j.job_type() == Some(JOB_TYPE) => {}
        Some(j) if j.job_type() == Some(export::JOB_TYPE) => return export::cancel(jobs, id).await,
        _ => return Err(unknown(id)),
    }
    match jobs.cancel(id).await? {
        Cancelled::Now => Ok(Reply::new(
            202,
            Body::Resource(information(&format!(
                "The asynchronous request `{id}` is cancelled."
            ))),
        )),
        Cancelled::AlreadyFinished => Err(FhirError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("The asynchronous request `{id}` has already finished."),
        )),
        Cancelled::Before => Err(FhirError::not_found(format!(
            "The asynchronous request `{id}` was cancelled."
        ))),
        Cancelled::Unknown => Err(unknown(id)),
    }
}

/// Whether the status of asynchronous requests may be read through this server (for the
/// CapabilityStatement and tests).
pub fn available(state: &AppState) -> bool {
    state.jobs().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &[&str], query: &[(&str, &str)]) -> FhirRequest {
        crate::context::http_request(
            method,
            path.iter().map(|s| s.to_string()).collect(),
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            &HeaderMap::new(),
            bytes::Bytes::new(),
        )
    }

    #[test]
    fn respond_async_is_read_from_any_prefer_value() {
        let mut h = HeaderMap::new();
        assert!(!prefers_async(&h));
        h.append("prefer", "return=minimal".parse().unwrap());
        assert!(!prefers_async(&h));
        h.append("prefer", "handling=strict, Respond-Async".parse().unwrap());
        assert!(prefers_async(&h));
    }

    #[test]
    fn only_long_running_requests_are_eligible() {
        assert!(eligible(&req(
            "GET",
            &["Patient"],
            &[("_summary", "count")]
        )));
        assert!(!eligible(&req("GET", &["Patient"], &[("gender", "male")])));
        assert!(eligible(&req(
            "POST",
            &["Measure", "m", "$evaluate-measure"],
            &[]
        )));
        assert!(eligible(&req(
            "GET",
            &["Measure", "$evaluate-measure"],
            &[]
        )));
        assert!(eligible(&req("POST", &["$cql"], &[])));
        assert!(eligible(&req("POST", &[], &[])));
        assert!(!eligible(&req("GET", &["Patient", "p1"], &[])));
        assert!(!eligible(&req("POST", &["Patient"], &[])));
        assert!(!eligible(&req("GET", &["$versions"], &[])));
    }

    #[test]
    fn a_request_becomes_a_batch_of_one_entry() {
        let b = request_bundle(&req(
            "GET",
            &["Observation"],
            &[("code", "http://loinc.org|8480-6"), ("_summary", "count")],
        ))
        .unwrap()
        .unwrap();
        assert_eq!(b["type"], "batch");
        let url = b["entry"][0]["request"]["url"].as_str().unwrap();
        assert_eq!(
            crate::context::query_pairs(url.split_once('?').unwrap().1),
            [
                ("code".to_string(), "http://loinc.org|8480-6".to_string()),
                ("_summary".to_string(), "count".to_string())
            ]
        );
        assert!(url.starts_with("Observation?"));
        assert_eq!(b["entry"][0]["request"]["method"], "GET");
        assert!(b["entry"][0].get("resource").is_none());
    }
}
