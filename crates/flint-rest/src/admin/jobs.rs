//! Jobs through the admin API: `Task` resources of the admin database ([`flint_jobs`]) listed,
//! read, created, paused, resumed and cancelled; and the work of the job types created here.
//!
//! Job types (codes of [`JOB_TYPE_SYSTEM`], Blaze's, with Blaze's input and output codes):
//!
//! * `re-index` (input `search-param-url`): writes the search-index entries of that parameter
//!   again for every current resource of its base types, at one database value read when the
//!   job (re)starts, page by page as the indexer writes them (`Node::reindex_params`).
//!   Outputs: `total-resources`, `resources-processed`, `processing-duration` and, while
//!   running, `next-resource` (`Type/id` or `Type`: where it goes on), updated after every
//!   page, so a paused job (or one interrupted by a restart) goes on from there. A storage
//!   fault is retried (backing off to one second), never taken for "done".
//! * `compact` (inputs `database`, `column-family`): compacts the column family's whole key
//!   range ([`flint_db::StoreAdmin::compact`]). Output: `processing-duration`.
//! * `async-interaction`: created by `Prefer: respond-async` requests
//!   ([`crate::async_request`]); listed here, not created here.
//!
//! Only `re-index` jobs pause (`ready`/`in-progress` → `on-hold`); `$resume` runs an
//! `on-hold` job again; `$cancel` stops any unfinished job. A transition from a state that
//! does not allow it is 409 with the state in the message.

use crate::api::{Body, FhirRequest, Reply};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use crate::state::AppState;
use axum::http::StatusCode;
use flint_jobs::{Cancelled, JOB_TYPE_SYSTEM, Job, Outputs, Scheduler, Status, parameter};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The job type of search-parameter re-indexing.
pub const RE_INDEX: &str = "re-index";
/// The job type of manual compaction.
pub const COMPACT: &str = "compact";
/// The code system of the re-index job's input.
pub const RE_INDEX_PARAMETER_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/ReIndexJobParameter";
/// The code system of the re-index job's outputs.
pub const RE_INDEX_OUTPUT_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/ReIndexJobOutput";
/// The code system of the compact job's inputs.
pub const COMPACT_PARAMETER_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/CompactJobParameter";
/// The code system of the compact job's output.
pub const COMPACT_OUTPUT_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/CompactJobOutput";

/// Resources a re-index job indexes between two progress reports.
const PAGE: usize = 500;

/// The job scheduler, or 422 when the server has no admin database.
fn scheduler(ctx: &Ctx) -> FhirResult<&Scheduler> {
    ctx.state
        .jobs()
        .ok_or_else(|| FhirError::unsupported("This server has no admin database for jobs."))
}

fn unknown(id: &str) -> FhirError {
    FhirError::not_found(format!("There is no job (Task) with id `{id}`."))
}

/// The Task of `job` as answered: with `meta.versionId`.
fn rendered(job: &Job) -> Value {
    let mut task = job.task.clone();
    if !task["meta"].is_object() {
        task["meta"] = json!({});
    }
    task["meta"]["versionId"] = json!(job.version.to_string());
    task
}

fn task_reply(status: u16, job: &Job) -> Reply {
    let mut r = Reply::new(status, Body::Resource(rendered(job)));
    r.etag = Some(job.version);
    r
}

/// `GET __admin/Task`: the jobs as a searchset Bundle, in id order, filtered by `status`
/// (codes, comma-separated) and `code` (job type, `code` or `system|code`), paged by
/// `_count` (default and limit as for searches) and `_offset`.
pub async fn search(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Reply> {
    let jobs = scheduler(ctx)?;
    let cfg = ctx.state.config();
    let (mut statuses, mut codes) = (None::<Vec<Status>>, None::<Vec<String>>);
    let (mut count, mut offset) = (cfg.default_page_size, 0usize);
    for (k, v) in &req.query {
        match k.as_str() {
            "status" => {
                let list = v
                    .split(',')
                    .map(|s| {
                        Status::parse(s).ok_or_else(|| {
                            FhirError::invalid(format!("Unknown job status `{s}`.")).at("status")
                        })
                    })
                    .collect::<FhirResult<Vec<_>>>()?;
                statuses.get_or_insert_with(Vec::new).extend(list);
            }
            "code" => {
                let list = v.split(',').map(|c| match c.split_once('|') {
                    Some((sys, code)) if sys == JOB_TYPE_SYSTEM || sys.is_empty() => {
                        code.to_string()
                    }
                    Some(_) => String::new(),
                    None => c.to_string(),
                });
                codes.get_or_insert_with(Vec::new).extend(list);
            }
            "_count" => {
                count = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= cfg.max_page_size)
                    .ok_or_else(|| {
                        FhirError::invalid(format!(
                            "`_count` must be a number from 0 to {}, not `{v}`.",
                            cfg.max_page_size
                        ))
                        .at("_count")
                    })?
            }
            "_offset" => {
                offset = v.parse().map_err(|_| {
                    FhirError::invalid(format!("`_offset` must be a number, not `{v}`."))
                        .at("_offset")
                })?
            }
            "_format" | "_pretty" => {}
            other => {
                return Err(FhirError::invalid(format!(
                    "Unknown search parameter `{other}` of jobs (supported: status, code, \
                     _count, _offset)."
                ))
                .at(other));
            }
        }
    }
    let all: Vec<Job> = jobs
        .store()
        .list()
        .await?
        .into_iter()
        .filter(|j| statuses.as_ref().is_none_or(|s| s.contains(&j.status())))
        .filter(|j| {
            codes
                .as_ref()
                .is_none_or(|c| j.job_type().is_some_and(|t| c.iter().any(|x| x == t)))
        })
        .collect();
    let total = all.len();
    let base = format!("{}/__admin/Task", ctx.base);
    let link = |off: usize| {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "_offset" && k != "_count")
            .cloned()
            .collect();
        q.push(("_count".into(), count.to_string()));
        q.push(("_offset".into(), off.to_string()));
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&q)
            .finish();
        format!("{base}?{q}")
    };
    let mut links = vec![json!({"relation": "self", "url": link(offset)})];
    if offset.saturating_add(count) < total {
        links.push(json!({"relation": "next", "url": link(offset.saturating_add(count))}));
    }
    let entries: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(count)
        .map(|j| {
            json!({"fullUrl": format!("{base}/{}", j.id), "resource": rendered(j),
                   "search": {"mode": "match"}})
        })
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset", "total": total,
                            "link": links});
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Reply::new(200, Body::Resource(bundle)))
}

/// `GET __admin/Task/_history` (every job's versions) and `GET __admin/Task/{id}/_history`
/// (one job's; 404 for an unknown one): a `history` Bundle, newest first, with `total`, paged
/// by `_count` and `_offset` at one database value of the admin database (`__t` in the page
/// links). Each entry is a version of the Task as it was stored (`meta.versionId`,
/// `meta.lastUpdated`), its `request` (`POST` for the first version, `PUT` after) and
/// `response` (status, `etag`, `lastModified`).
pub async fn history(ctx: &Ctx, id: Option<&str>, req: &FhirRequest) -> FhirResult<Reply> {
    let jobs = scheduler(ctx)?;
    if let Some(id) = id {
        crate::context::check_type_and_id("Task", id)?;
    }
    let cfg = ctx.state.config();
    let (mut count, mut offset, mut at) = (cfg.default_page_size, 0usize, None::<u64>);
    for (k, v) in &req.query {
        let number = || {
            v.parse::<u64>().map_err(|_| {
                FhirError::invalid(format!("`{k}` must be a number, not `{v}`.")).at(k)
            })
        };
        match k.as_str() {
            "_count" => {
                count = number()?
                    .try_into()
                    .ok()
                    .filter(|n| *n <= cfg.max_page_size)
                    .ok_or_else(|| {
                        FhirError::invalid(format!(
                            "`_count` must be a number from 0 to {}, not `{v}`.",
                            cfg.max_page_size
                        ))
                        .at("_count")
                    })?
            }
            "_offset" => offset = number()?.try_into().unwrap_or(usize::MAX),
            "__t" => at = Some(number()?),
            "_format" | "_pretty" => {}
            other => {
                return Err(FhirError::invalid(format!(
                    "Unknown parameter `{other}` of the job history (supported: _count, _offset)."
                ))
                .at(other));
            }
        }
    }
    let now = jobs.store().node().sync().await?;
    let db = match at {
        None => now,
        Some(t) if t <= now.t() => now.as_of(t),
        Some(t) => {
            return Err(FhirError::invalid(format!(
                "The page link's database value {t} is not known here."
            ))
            .at("__t"));
        }
    };
    let versions = match id {
        Some(id) => db.instance_history("Task", id, None, 0, usize::MAX)?,
        None => db.type_history("Task", None, 0, usize::MAX)?,
    };
    if let Some(id) = id
        && versions.is_empty()
    {
        return Err(unknown(id));
    }
    let total = versions.len();
    let base = format!("{}/__admin/Task", ctx.base);
    let path = match id {
        Some(id) => format!("{base}/{id}/_history"),
        None => format!("{base}/_history"),
    };
    let link = |off: usize| format!("{path}?_count={count}&_offset={off}&__t={}", db.t());
    let mut links = vec![json!({"relation": "self", "url": link(offset)})];
    if offset.saturating_add(count) < total {
        links.push(json!({"relation": "next", "url": link(offset.saturating_add(count))}));
    }
    let mut entries = Vec::new();
    for h in versions.iter().skip(offset).take(count) {
        let instant = crate::resource::format_instant(db.instant(h.t)?);
        let mut e = json!({"fullUrl": format!("{base}/{}", h.id)});
        let (method, url, status) = if h.is_deleted() {
            ("DELETE", format!("Task/{}", h.id), "204")
        } else if h.num_changes <= 1 {
            ("POST", "Task".to_string(), "201")
        } else {
            ("PUT", format!("Task/{}", h.id), "200")
        };
        if !h.is_deleted() {
            e["resource"] = crate::interaction::materialize(&db, h).await?;
        }
        e["request"] = json!({"method": method, "url": url});
        e["response"] = json!({"status": status, "etag": format!("W/\"{}\"", h.t),
                               "lastModified": instant});
        entries.push(e);
    }
    let mut bundle =
        json!({"resourceType": "Bundle", "type": "history", "total": total, "link": links});
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(Reply::new(200, Body::Resource(bundle)))
}

/// `GET __admin/Task/{id}`.
pub async fn read(ctx: &Ctx, id: &str) -> FhirResult<Reply> {
    let jobs = scheduler(ctx)?;
    crate::context::check_type_and_id("Task", id)?;
    let job = jobs.store().get(id).await?.ok_or_else(|| unknown(id))?;
    Ok(task_reply(200, &job))
}

/// The `value[x]` of the input of `task` whose type is `system|code`, with its index.
fn input<'a>(task: &'a Value, system: &str, code: &str) -> Option<(usize, &'a str, &'a Value)> {
    task["input"]
        .as_array()?
        .iter()
        .enumerate()
        .find_map(|(i, p)| {
            let typed = p["type"]["coding"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["system"] == system && c["code"] == code)
            });
            if !typed {
                return None;
            }
            p.as_object()?
                .iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(k, v)| (i, k.as_str(), v))
        })
}

/// The string value of the required input `code` of `system`, or 400 naming `Task.input`.
fn string_input<'a>(task: &'a Value, system: &str, code: &str) -> FhirResult<(String, &'a str)> {
    let Some((i, key, v)) = input(task, system, code) else {
        return Err(FhirError::invalid(format!(
            "The job needs the input `{code}` (type {system}|{code})."
        ))
        .at("Task.input"));
    };
    let at = format!("Task.input[{i}].{key}");
    match v.as_str() {
        Some(s) => Ok((at, s)),
        None => {
            Err(FhirError::invalid(format!("The input `{code}` must be a string value.")).at(at))
        }
    }
}

/// Checks the inputs of a new job of type `job_type`; the error names the offending input.
fn validate(ctx: &Ctx, job_type: &str, task: &Value) -> FhirResult<()> {
    match job_type {
        RE_INDEX => {
            let (at, url) = string_input(task, RE_INDEX_PARAMETER_SYSTEM, "search-param-url")?;
            if ctx.state.registry().by_url(url).is_none() {
                return Err(FhirError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not-found",
                    format!("There is no supported search parameter with the url `{url}`."),
                )
                .at(at));
            }
            Ok(())
        }
        COMPACT => {
            let (at, db) = string_input(task, COMPACT_PARAMETER_SYSTEM, "database")?;
            let (cf_at, cf) = string_input(task, COMPACT_PARAMETER_SYSTEM, "column-family")?;
            check_column_family(ctx, db, &at, cf, &cf_at)
        }
        other => Err(FhirError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-supported",
            format!(
                "Jobs of type `{other}` cannot be created here (supported: {RE_INDEX}, \
                 {COMPACT}; asynchronous requests create their own)."
            ),
        )
        .at("Task.code")),
    }
}

/// 400 unless `db` is a database and `cf` one of its column families (expressions `db_at`
/// and `cf_at` name the parameters).
pub(crate) fn check_column_family(
    ctx: &Ctx,
    db: &str,
    db_at: &str,
    cf: &str,
    cf_at: &str,
) -> FhirResult<()> {
    let admin = ctx.state.admin();
    let Some(store) = admin.database(db) else {
        let names: Vec<&str> = admin.databases.iter().map(|(n, _)| n.as_str()).collect();
        return Err(FhirError::invalid(format!(
            "Unknown database `{db}` (known: {}).",
            names.join(", ")
        ))
        .at(db_at));
    };
    let cfs = store.column_families()?;
    if !cfs.iter().any(|c| c.name == cf) {
        let names: Vec<&str> = cfs.iter().map(|c| c.name.as_str()).collect();
        return Err(FhirError::invalid(format!(
            "Unknown column family `{cf}` of database `{db}` (known: {}).",
            names.join(", ")
        ))
        .at(cf_at));
    }
    Ok(())
}

/// `POST __admin/Task`: creates a job from the Task sent (its type in `Task.code`, its
/// inputs checked), stores it `ready` and starts it; 201 with the stored Task.
pub async fn create(ctx: &Ctx, req: &FhirRequest) -> FhirResult<Reply> {
    let jobs = scheduler(ctx)?;
    let sent = crate::context::payload_resource("Task", &req.payload)?;
    if crate::resource::type_of(&sent) != "Task" {
        return Err(FhirError::invalid(format!(
            "Expected a Task resource, not `{}`.",
            crate::resource::type_of(&sent)
        )));
    }
    let job_type = sent["code"]["coding"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["system"] == JOB_TYPE_SYSTEM))
        .and_then(|c| c["code"].as_str())
        .ok_or_else(|| {
            FhirError::invalid(format!(
                "The Task names no job type (a `code` coding of system {JOB_TYPE_SYSTEM})."
            ))
            .at("Task.code")
        })?
        .to_string();
    validate(ctx, &job_type, &sent)?;
    let mut task = flint_jobs::new_task(
        &job_type,
        sent["input"].as_array().cloned().unwrap_or_default(),
    );
    task["code"] = sent["code"].clone();
    if let Some(p) = sent["meta"].get("profile") {
        task["meta"] = json!({"profile": p});
    }
    let job = jobs.store().create(task).await?;
    start(&ctx.state, jobs, &job).await?;
    let mut r = task_reply(201, &job);
    r.location = Some(format!("{}/__admin/Task/{}", ctx.base, job.id));
    Ok(r)
}

/// `POST __admin/Task/{id}/$pause`, `$resume` or `$cancel` (`op`, without `$`).
pub async fn transition(ctx: &Ctx, id: &str, op: &str) -> FhirResult<Reply> {
    let jobs = scheduler(ctx)?;
    crate::context::check_type_and_id("Task", id)?;
    let conflict = |m: String| FhirError::new(StatusCode::CONFLICT, "conflict", m);
    let job = jobs.store().get(id).await?.ok_or_else(|| unknown(id))?;
    match op {
        "pause" => {
            let ty = job.job_type().unwrap_or("unknown");
            if ty != RE_INDEX {
                return Err(conflict(format!(
                    "Job `{id}` of type `{ty}` cannot be paused (only {RE_INDEX} jobs can)."
                )));
            }
            match jobs.pause(id).await? {
                None => Err(unknown(id)),
                Some(Ok(j)) => Ok(task_reply(200, &j)),
                Some(Err(j)) => Err(conflict(format!(
                    "Job `{id}` is {} and cannot be paused (only ready or in-progress jobs can).",
                    j.status().as_str()
                ))),
            }
        }
        "resume" => match jobs.resume(id).await? {
            None => Err(unknown(id)),
            Some(Ok(j)) => {
                start(&ctx.state, jobs, &j).await?;
                let now = jobs.store().get(id).await?.unwrap_or(j);
                Ok(task_reply(200, &now))
            }
            Some(Err(j)) => Err(conflict(format!(
                "Job `{id}` is {} and cannot be resumed (only on-hold jobs can).",
                j.status().as_str()
            ))),
        },
        "cancel" => match jobs.cancel(id).await? {
            Cancelled::Now => {
                let now = jobs.store().get(id).await?.ok_or_else(|| unknown(id))?;
                Ok(task_reply(200, &now))
            }
            Cancelled::AlreadyFinished => Err(conflict(format!(
                "Job `{id}` is {} and cannot be cancelled.",
                jobs.store()
                    .get(id)
                    .await?
                    .map_or("finished", |j| j.status().as_str())
            ))),
            Cancelled::Before => Err(conflict(format!("Job `{id}` is already cancelled."))),
            Cancelled::Unknown => Err(unknown(id)),
        },
        other => Err(FhirError::new(
            StatusCode::BAD_REQUEST,
            "not-supported",
            format!(
                "Operation `${other}` is not supported on jobs (only $pause, $resume, $cancel)."
            ),
        )),
    }
}

/// Runs job `job` again after a restart if its type is one of this module's (`re-index` goes
/// on from its `next-resource`, `compact` starts over); whether it did.
pub async fn restart(state: &AppState, jobs: &Scheduler, job: &Job) -> FhirResult<bool> {
    match job.job_type() {
        Some(RE_INDEX | COMPACT) => {
            start(state, jobs, job).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Starts the work of `job` (a `re-index` or `compact` job).
async fn start(state: &AppState, jobs: &Scheduler, job: &Job) -> FhirResult<()> {
    match job.job_type() {
        Some(RE_INDEX) => {
            let work = re_index(state.clone(), jobs.clone(), job.id.clone());
            jobs.run(job, work).await?;
        }
        Some(COMPACT) => {
            let text = |code| {
                input(&job.task, COMPACT_PARAMETER_SYSTEM, code)
                    .and_then(|(_, _, v)| v.as_str())
                    .map(str::to_string)
            };
            let (db, cf) = (text("database"), text("column-family"));
            let store = db
                .as_deref()
                .and_then(|d| state.admin().database(d).cloned());
            let work = async move {
                let (Some(store), Some(db), Some(cf)) = (store, db, cf) else {
                    return Err("the job names no known database or no column family".to_string());
                };
                let started = Instant::now();
                let name = cf.clone();
                match tokio::task::spawn_blocking(move || store.compact(&name)).await {
                    Ok(Ok(true)) => Ok(vec![duration_output(
                        COMPACT_OUTPUT_SYSTEM,
                        started.elapsed().as_secs_f64(),
                    )]),
                    Ok(Ok(false)) => Err(format!("database `{db}` has no column family `{cf}`")),
                    Ok(Err(e)) => Err(format!("compaction failed: {e}")),
                    Err(e) => Err(format!("compaction failed: {e}")),
                }
            };
            jobs.run(job, work).await?;
        }
        other => {
            return Err(FhirError::from(flint_db::DbError::fault(format!(
                "job {} of type {other:?} has no work here",
                job.id
            ))));
        }
    }
    Ok(())
}

/// A `processing-duration` output of `seconds`.
fn duration_output(system: &str, seconds: f64) -> Value {
    parameter(
        system,
        "processing-duration",
        "valueQuantity",
        json!({"value": seconds, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"}),
    )
}

/// Calls `f` until it succeeds, backing off from 50 ms to 1 s after each storage error (a
/// paused or cancelled job's work is dropped meanwhile).
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = flint_db::error::Result<T>>,
{
    let mut wait = Duration::from_millis(50);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, "re-index: {what} failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// The resource types a parameter with bases `base` applies to, sorted.
fn base_types(base: &[String]) -> Vec<String> {
    let all = flint_model::defs::definitions().resource_types();
    let mut out: Vec<String> = if base
        .iter()
        .any(|b| b == "Resource" || b == "DomainResource")
    {
        all.to_vec()
    } else {
        base.iter().filter(|b| all.contains(*b)).cloned().collect()
    };
    out.sort();
    out.dedup();
    out
}

/// The work of re-index job `id`: see the module documentation.
async fn re_index(state: AppState, jobs: Scheduler, id: String) -> Result<Outputs, String> {
    let store = jobs.store().clone();
    let job = retrying("reading the job", || store.get(&id))
        .await
        .ok_or_else(|| format!("the job {id} is gone"))?;
    let url = input(&job.task, RE_INDEX_PARAMETER_SYSTEM, "search-param-url")
        .and_then(|(_, _, v)| v.as_str())
        .ok_or("the job names no search-param-url")?
        .to_string();
    let param = state
        .registry()
        .by_url(&url)
        .ok_or_else(|| format!("there is no supported search parameter with the url `{url}`"))?
        .clone();
    let hashes = [flint_db::codec::param_hash(&param.code)];
    let types = base_types(&param.base);
    let out = |code: &str| {
        job.parameter("output", RE_INDEX_OUTPUT_SYSTEM, code)
            .cloned()
    };
    let node = state.node().clone();
    let db = retrying("reading the database", || node.sync()).await;
    let total = match out("total-resources").and_then(|v| v.as_u64()) {
        Some(n) => n,
        None => {
            let mut n = 0;
            for ty in &types {
                n += retrying("counting resources", || async { db.type_total(ty) }).await;
            }
            n
        }
    };
    let mut processed = out("resources-processed")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let mut seconds = out("processing-duration")
        .and_then(|v| v["value"].as_f64())
        .unwrap_or(0.0);
    // Where to go on: `Type/id` (that resource first) or `Type` (from its start).
    let (mut ty_index, mut start_id) = match out("next-resource")
        .and_then(|v| v.as_str().map(str::to_string))
    {
        Some(next) => {
            let (ty, id) = match next.split_once('/') {
                Some((t, i)) => (t.to_string(), Some(i.to_string())),
                None => (next, None),
            };
            match types.iter().position(|t| *t == ty) {
                Some(i) => (i, id),
                None => return Err(format!("the job's next-resource `{ty}` is not a base type")),
            }
        }
        None => (0, None),
    };
    let progress = |processed: u64, seconds: f64, next: Option<String>| {
        let mut outs = vec![
            parameter(
                RE_INDEX_OUTPUT_SYSTEM,
                "total-resources",
                "valueUnsignedInt",
                json!(total),
            ),
            parameter(
                RE_INDEX_OUTPUT_SYSTEM,
                "resources-processed",
                "valueUnsignedInt",
                json!(processed),
            ),
            duration_output(RE_INDEX_OUTPUT_SYSTEM, seconds),
        ];
        if let Some(n) = next {
            outs.push(parameter(
                RE_INDEX_OUTPUT_SYSTEM,
                "next-resource",
                "valueString",
                json!(n),
            ));
        }
        outs
    };
    // Stores the progress; `false` when the job is no longer in progress (paused, cancelled).
    let report = |outs: Vec<Value>, done: bool| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let r = retrying("storing the progress", || {
                let outs = outs.clone();
                let store = store.clone();
                let id = id.clone();
                async move {
                    store
                        .update(
                            &id,
                            |s| s == Status::InProgress,
                            move |t| {
                                if done && let Some(list) = t["output"].as_array_mut() {
                                    list.retain(|o| {
                                        o["type"]["coding"][0]["code"] != "next-resource"
                                    });
                                }
                                for o in &outs {
                                    flint_jobs::set_output(t, o.clone());
                                }
                            },
                        )
                        .await
                }
            })
            .await;
            matches!(r, Some(Ok(_)))
        }
    };
    let first = types.get(ty_index).cloned();
    if !report(progress(processed, seconds, first), false).await {
        return Err("the job is no longer in progress".into());
    }
    while ty_index < types.len() {
        let ty = &types[ty_index];
        let started = Instant::now();
        let mut page = retrying("listing resources", || async {
            db.type_list(ty, start_id.as_deref(), PAGE + 1)
        })
        .await;
        let next = if page.len() > PAGE {
            page.pop().map(|h| format!("{ty}/{}", h.id))
        } else {
            ty_index += 1;
            types.get(ty_index).cloned()
        };
        if !page.is_empty() {
            processed += retrying("writing index entries", || {
                node.reindex_params(&db, ty, &page, &hashes)
            })
            .await;
        }
        start_id = next
            .as_deref()
            .and_then(|n| n.split_once('/'))
            .map(|(_, i)| i.to_string());
        seconds += started.elapsed().as_secs_f64();
        metrics::counter!("flint_jobs_reindexed_resources_total").increment(page.len() as u64);
        if next.is_some() && !report(progress(processed, seconds, next), false).await {
            return Err("the job is no longer in progress".into());
        }
    }
    if !report(progress(processed, seconds, None), true).await {
        return Err("the job is no longer in progress".into());
    }
    Ok(progress(processed, seconds, None))
}
