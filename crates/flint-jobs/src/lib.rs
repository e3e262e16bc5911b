//! Jobs: work that runs longer than one request (asynchronous requests first), kept as FHIR
//! `Task` resources in the **admin database**, a database node of its own beside the main one
//! (as Blaze keeps them). A job is durable from the moment it is accepted: its Task (with
//! the request it runs and the database value `t` it runs at) is written before the client
//! hears of it, its result is written before the Task says `completed`, and a job that was
//! running when the process stopped is found again at start ([`JobStore::unfinished`]).
//!
//! * [`JobStore`]: Tasks and the resources jobs keep (request and result Bundles) in the admin
//!   node; updates are optimistic (`If-Match` on the Task version), so two nodes sharing one
//!   admin database never overwrite each other's state changes.
//! * [`Scheduler`]: runs a job's work on the runtime, marks it completed or failed, and stops
//!   it promptly when it is cancelled, on this node (the future is dropped at once) or on
//!   another one sharing the admin database (seen within [`CANCEL_POLL`]).

use bytes::Bytes;
use flint_db::error::Result;
use flint_db::{ContentHash, DbError, ErrorKind, Node, T, TxCmd, TxOp};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The code system of job types (Blaze's, so that its tools read Flint's jobs).
pub const JOB_TYPE_SYSTEM: &str = "https://samply.github.io/blaze/fhir/CodeSystem/JobType";
/// The code system of the inputs and outputs of an asynchronous-interaction job.
pub const ASYNC_PARAMETER_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/AsyncInteractionJobParameter";
/// The code system of the outputs of an asynchronous-interaction job.
pub const ASYNC_OUTPUT_SYSTEM: &str =
    "https://samply.github.io/blaze/fhir/CodeSystem/AsyncInteractionJobOutput";
/// How often a running job checks whether another node cancelled it.
pub const CANCEL_POLL: Duration = Duration::from_millis(200);

/// The state of a job: the `Task.status` codes jobs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted, not started.
    Ready,
    /// Running.
    InProgress,
    /// Paused.
    OnHold,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled by a client.
    Cancelled,
}

impl Status {
    /// The `Task.status` code.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::InProgress => "in-progress",
            Status::OnHold => "on-hold",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The status of a `Task.status` code.
    pub fn parse(code: &str) -> Option<Status> {
        Some(match code {
            "ready" => Status::Ready,
            "in-progress" => Status::InProgress,
            "on-hold" => Status::OnHold,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether the job has ended (completed, failed or cancelled).
    pub fn is_final(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// A job: its Task as stored, and the Task's version.
#[derive(Debug, Clone)]
pub struct Job {
    /// The Task id (also the id of the asynchronous-request status URL).
    pub id: String,
    /// The Task's version (`t` of the admin database that wrote it).
    pub version: T,
    /// The Task resource (without version metadata).
    pub task: Value,
}

impl Job {
    /// The job's status (`failed` for a Task whose status is not a job status).
    pub fn status(&self) -> Status {
        self.task["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or(Status::Failed)
    }

    /// The job type code (`Task.code` in [`JOB_TYPE_SYSTEM`]).
    pub fn job_type(&self) -> Option<&str> {
        self.task["code"]["coding"]
            .as_array()?
            .iter()
            .find(|c| c["system"] == JOB_TYPE_SYSTEM)?["code"]
            .as_str()
    }

    /// The value element (`value[x]`) of the input or output (`list`: `input`, `output`)
    /// whose type is `system|code`.
    pub fn parameter(&self, list: &str, system: &str, code: &str) -> Option<&Value> {
        let p = self.task[list].as_array()?.iter().find(|p| {
            p["type"]["coding"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["system"] == system && c["code"] == code)
            })
        })?;
        p.as_object()?
            .iter()
            .find(|(k, _)| k.starts_with("value"))
            .map(|(_, v)| v)
    }

    /// Why the job failed (`Task.statusReason.text`), if it did.
    pub fn failure(&self) -> Option<&str> {
        self.task["statusReason"]["text"].as_str()
    }
}

/// A Task input or output entry of type `system|code` with `value[x]` `key: value`.
pub fn parameter(system: &str, code: &str, key: &str, value: Value) -> Value {
    json!({"type": {"coding": [{"system": system, "code": code}]}, key: value})
}

/// Puts `output` into `task.output`, replacing the output of the same type (its first coding)
/// if there is one: progress outputs are updated in place, never repeated.
pub fn set_output(task: &mut Value, output: Value) {
    let ty = output["type"]["coding"][0].clone();
    let same = |o: &Value| {
        let c = &o["type"]["coding"][0];
        c["system"] == ty["system"] && c["code"] == ty["code"]
    };
    if !task["output"].is_array() {
        task["output"] = json!([]);
    }
    if let Some(list) = task["output"].as_array_mut() {
        match list.iter_mut().find(|o| same(o)) {
            Some(slot) => *slot = output,
            None => list.push(output),
        }
    }
}

/// A new Task for a job of type `job_type` with `inputs`, status `ready`.
pub fn new_task(job_type: &str, inputs: Vec<Value>) -> Value {
    json!({
        "resourceType": "Task",
        "status": "ready",
        "intent": "order",
        "code": {"coding": [{"system": JOB_TYPE_SYSTEM, "code": job_type}]},
        "authoredOn": now_instant(),
        "input": inputs,
    })
}

/// The current time as a FHIR instant with milliseconds.
pub fn now_instant() -> String {
    format_instant(flint_db::mem::now_ms())
}

fn format_instant(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// A new id for a Task or a kept resource: 20 lowercase hex characters of randomness.
fn new_id() -> String {
    format!("{:020x}", rand::random::<u128>() >> 48)
}

/// The jobs and their resources in the admin database.
#[derive(Clone)]
pub struct JobStore {
    node: Node,
}

impl JobStore {
    /// The store over the admin database `node`.
    pub fn new(node: Node) -> JobStore {
        JobStore { node }
    }

    /// The admin database node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    async fn write(&self, mut v: Value, op: TxOp, if_match: Option<T>) -> Result<(String, T)> {
        let ty = v["resourceType"]
            .as_str()
            .ok_or_else(|| DbError::fault("a job resource without resourceType"))?
            .to_string();
        let id = match v["id"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let id = new_id();
                v["id"] = json!(id);
                id
            }
        };
        if let Some(meta) = v.get_mut("meta").and_then(Value::as_object_mut) {
            meta.remove("versionId");
            meta.remove("lastUpdated");
        }
        let bytes = Bytes::from(flint_model::json::to_vec(&v, false));
        let hash = ContentHash::of(&bytes);
        let mut cmd = TxCmd::new(op, &ty, &id, Some(hash));
        cmd.if_match = if_match.into_iter().collect();
        let out = self
            .node
            .transact_parsed(vec![cmd], vec![(hash, bytes)], [(hash, ty.as_str(), &v)])
            .await?;
        Ok((id, out.t))
    }

    /// Stores a new job's Task (an id is assigned when it has none).
    pub async fn create(&self, task: Value) -> Result<Job> {
        let (id, version) = self.write(task.clone(), TxOp::Create, None).await?;
        let mut task = task;
        task["id"] = json!(id);
        let job = Job { id, version, task };
        let ty = job.job_type().unwrap_or("unknown").to_string();
        metrics::counter!("flint_jobs_created_total", "type" => ty).increment(1);
        Ok(job)
    }

    /// Keeps `resource` (a request or result Bundle) in the admin database; its id.
    pub async fn keep(&self, resource: Value) -> Result<String> {
        Ok(self.write(resource, TxOp::Create, None).await?.0)
    }

    /// The resource `type/id` kept in the admin database, newest state.
    pub async fn resource(&self, type_name: &str, id: &str) -> Result<Option<(T, Value)>> {
        let db = self.node.sync().await?;
        let Some(h) = db.resource(type_name, id)? else {
            return Ok(None);
        };
        if h.is_deleted() {
            return Ok(None);
        }
        let bytes = db.pull(&h).await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| DbError::fault(format!("{type_name}/{id} in the admin database: {e}")))?;
        Ok(Some((h.t, v)))
    }

    /// The job `id`, newest state (synced with the admin log, so a change another node made
    /// is seen).
    pub async fn get(&self, id: &str) -> Result<Option<Job>> {
        Ok(self.resource("Task", id).await?.map(|(version, task)| Job {
            id: id.to_string(),
            version,
            task,
        }))
    }

    /// Applies `change` to the newest state of job `id` and stores it if `allow(status)`
    /// holds for the status it had; retries when another writer got in between. `None`: the
    /// job does not exist; `Some(Err(job))`: `allow` refused, with the job as it is.
    pub async fn update(
        &self,
        id: &str,
        allow: impl Fn(Status) -> bool,
        change: impl Fn(&mut Value),
    ) -> Result<Option<std::result::Result<Job, Job>>> {
        loop {
            let Some(job) = self.get(id).await? else {
                return Ok(None);
            };
            if !allow(job.status()) {
                return Ok(Some(Err(job)));
            }
            let mut task = job.task.clone();
            change(&mut task);
            task["lastModified"] = json!(now_instant());
            match self.write(task.clone(), TxOp::Put, Some(job.version)).await {
                Ok((_, version)) => {
                    return Ok(Some(Ok(Job {
                        id: job.id,
                        version,
                        task,
                    })));
                }
                Err(e) if e.kind == ErrorKind::PreconditionFailed => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Every job whose Task is `ready` or `in-progress`: what was accepted or running when
    /// the process stopped.
    pub async fn unfinished(&self) -> Result<Vec<Job>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|j| matches!(j.status(), Status::Ready | Status::InProgress))
            .collect())
    }

    /// Every job, newest state, in id order (synced with the admin log).
    pub async fn list(&self) -> Result<Vec<Job>> {
        let db = self.node.sync().await?;
        let mut out = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let page = db.type_list("Task", start.as_deref(), 1000)?;
            let last = page.len() < 1000;
            for h in &page {
                if start.as_deref() == Some(h.id.as_str()) {
                    continue;
                }
                let bytes = db.pull(h).await?;
                let task: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| DbError::fault(format!("Task/{}: {e}", h.id)))?;
                out.push(Job {
                    id: h.id.clone(),
                    version: h.t,
                    task,
                });
            }
            match page.last() {
                Some(h) if !last => start = Some(h.id.clone()),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// What a finished piece of work reports: the Task outputs to add.
pub type Outputs = Vec<Value>;

/// The outcome of [`Scheduler::cancel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// The job was running or waiting and is cancelled now.
    Now,
    /// The job had already finished (completed or failed): nothing to cancel.
    AlreadyFinished,
    /// The job was cancelled before.
    Before,
    /// No such job.
    Unknown,
}

/// Runs jobs on the runtime and stops them when they are cancelled.
#[derive(Clone)]
pub struct Scheduler {
    store: JobStore,
    running: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl Scheduler {
    /// A scheduler over `store`.
    pub fn new(store: JobStore) -> Scheduler {
        Scheduler {
            store,
            running: Arc::default(),
        }
    }

    /// The job store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// Marks `job` in progress and runs `work` for it: its outputs complete the job, its error
    /// fails it (with the message as `statusReason`). Work stops when the job is cancelled,
    /// here or on another node. Returns once the job is marked in progress.
    pub async fn run<F>(&self, job: &Job, work: F) -> Result<()>
    where
        F: Future<Output = std::result::Result<Outputs, String>> + Send + 'static,
    {
        let started = self
            .store
            .update(
                &job.id,
                |s| matches!(s, Status::Ready | Status::InProgress),
                |t| t["status"] = json!("in-progress"),
            )
            .await?;
        if !matches!(started, Some(Ok(_))) {
            return Ok(());
        }
        let store = self.store.clone();
        let running = self.running.clone();
        let id = job.id.clone();
        let job_type = job.job_type().unwrap_or("unknown").to_string();
        let started = std::time::Instant::now();
        // Registered before the task can finish, so the entry is always removed by it.
        let mut guard = self.running.lock();
        let handle = tokio::spawn(async move {
            let watch = watch_stop(&store, &id);
            let outcome = tokio::select! {
                out = work => Some(out),
                () = watch => None,
            };
            if let Some(out) = outcome {
                finish(&store, &id, &job_type, out).await;
            }
            metrics::histogram!("flint_jobs_duration_seconds", "type" => job_type)
                .record(started.elapsed().as_secs_f64());
            running.lock().remove(&id);
        });
        if !handle.is_finished() {
            guard.insert(job.id.clone(), handle.abort_handle());
        }
        drop(guard);
        Ok(())
    }

    /// Cancels job `id`: marks it cancelled (unless it had finished) and stops its work if it
    /// runs on this node (other nodes see the status within [`CANCEL_POLL`]).
    pub async fn cancel(&self, id: &str) -> Result<Cancelled> {
        let out = self
            .store
            .update(id, |s| !s.is_final(), |t| t["status"] = json!("cancelled"))
            .await?;
        Ok(match out {
            None => Cancelled::Unknown,
            Some(Ok(_)) => {
                if let Some(h) = self.running.lock().remove(id) {
                    h.abort();
                }
                metrics::counter!("flint_jobs_cancelled_total").increment(1);
                Cancelled::Now
            }
            Some(Err(job)) if job.status() == Status::Cancelled => Cancelled::Before,
            Some(Err(_)) => Cancelled::AlreadyFinished,
        })
    }

    /// Pauses job `id` (`ready` or `in-progress` → `on-hold`) and stops its work if it runs
    /// on this node (other nodes stop it within [`CANCEL_POLL`]); the work must have kept
    /// what it needs to go on ([`Scheduler::resume`]). `None`: no such job; `Some(Err(job))`:
    /// the job was in another state.
    pub async fn pause(&self, id: &str) -> Result<Option<std::result::Result<Job, Job>>> {
        let out = self
            .store
            .update(
                id,
                |s| matches!(s, Status::Ready | Status::InProgress),
                |t| {
                    t["status"] = json!("on-hold");
                    t["statusReason"] = json!({"text": "paused"});
                },
            )
            .await?;
        if let Some(Ok(_)) = &out {
            if let Some(h) = self.running.lock().remove(id) {
                h.abort();
            }
            metrics::counter!("flint_jobs_paused_total").increment(1);
        }
        Ok(out)
    }

    /// Marks the paused job `id` ready again (`on-hold` → `ready`); the caller then
    /// [`Scheduler::run`]s its work, which goes on from what it kept. `None`: no such job;
    /// `Some(Err(job))`: the job was not paused.
    pub async fn resume(&self, id: &str) -> Result<Option<std::result::Result<Job, Job>>> {
        self.store
            .update(
                id,
                |s| s == Status::OnHold,
                |t| {
                    t["status"] = json!("ready");
                    t["statusReason"] = json!({"text": "resumed"});
                },
            )
            .await
    }

    /// Number of jobs running on this node.
    pub fn running(&self) -> usize {
        self.running.lock().len()
    }
}

/// Resolves when job `id` is cancelled or paused (or gone); a storage error is retried, never
/// taken for either.
async fn watch_stop(store: &JobStore, id: &str) {
    loop {
        tokio::time::sleep(CANCEL_POLL).await;
        match store.get(id).await {
            Ok(Some(job)) if !matches!(job.status(), Status::Cancelled | Status::OnHold) => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(job = id, error = %e, "cannot read the job's status; retrying")
            }
        }
    }
}

/// Stores the end of job `id` (of type `job_type`): completed with `outputs` or failed with the
/// reason, unless it is no longer in progress (paused or cancelled meanwhile: then the work
/// stopped on purpose); retried while the admin database is unavailable (the work is done;
/// its result must not be lost).
async fn finish(
    store: &JobStore,
    id: &str,
    job_type: &str,
    out: std::result::Result<Outputs, String>,
) {
    let status = if out.is_ok() { "completed" } else { "failed" };
    loop {
        let r = store
            .update(
                id,
                |s| s == Status::InProgress,
                |t| {
                    t["status"] = json!(status);
                    match &out {
                        Ok(outputs) => {
                            for o in outputs {
                                set_output(t, o.clone());
                            }
                            if let Some(m) = t.as_object_mut() {
                                m.remove("statusReason");
                            }
                        }
                        Err(reason) => t["statusReason"] = json!({"text": reason}),
                    }
                },
            )
            .await;
        match r {
            Ok(done) => {
                if let Some(Ok(_)) = done {
                    metrics::counter!("flint_jobs_finished_total", "status" => status,
                        "type" => job_type.to_string())
                    .increment(1);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(job = id, error = %e, "cannot store the job's end; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
