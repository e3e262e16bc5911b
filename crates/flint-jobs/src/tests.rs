use super::*;
use flint_db::NodeConfig;
use flint_db::mem::{MemKv, MemLog, MemStore};
use std::sync::atomic::{AtomicBool, Ordering};

async fn node_over(kv: Arc<MemKv>, log: Arc<MemLog>, store: Arc<MemStore>) -> Node {
    Node::start(kv, log, store, NodeConfig::default())
        .await
        .unwrap()
}

async fn store() -> JobStore {
    JobStore::new(flint_db::testing::plain_node().await)
}

fn input(code: &str, v: u64) -> Value {
    parameter(ASYNC_PARAMETER_SYSTEM, code, "valueUnsignedInt", json!(v))
}

async fn wait_for(store: &JobStore, id: &str, status: Status) -> Job {
    for _ in 0..500 {
        let job = store.get(id).await.unwrap().unwrap();
        if job.status() == status {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never became {}", status.as_str());
}

#[test]
fn instants_are_utc_with_milliseconds() {
    assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_instant(951_782_400_123), "2000-02-29T00:00:00.123Z");
    assert_eq!(
        format_instant(1_796_387_045_006),
        "2026-12-04T12:24:05.006Z"
    );
    assert_eq!(now_instant().len(), 24);
}

#[test]
fn statuses_round_trip() {
    for s in [
        Status::Ready,
        Status::InProgress,
        Status::OnHold,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ] {
        assert_eq!(Status::parse(s.as_str()), Some(s));
    }
    assert_eq!(Status::parse("draft"), None);
    assert!(Status::Cancelled.is_final() && !Status::OnHold.is_final());
}

#[tokio::test]
async fn a_job_is_stored_read_and_updated() {
    let s = store().await;
    let job = s
        .create(new_task("async-interaction", vec![input("t", 42)]))
        .await
        .unwrap();
    assert_eq!(job.status(), Status::Ready);
    let read = s.get(&job.id).await.unwrap().unwrap();
    assert_eq!(read.job_type(), Some("async-interaction"));
    assert_eq!(
        read.parameter("input", ASYNC_PARAMETER_SYSTEM, "t"),
        Some(&json!(42))
    );
    assert_eq!(
        read.parameter("input", ASYNC_PARAMETER_SYSTEM, "bundle"),
        None
    );
    let updated = s
        .update(&job.id, |_| true, |t| t["status"] = json!("on-hold"))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(updated.version > job.version);
    assert_eq!(
        s.get(&job.id).await.unwrap().unwrap().status(),
        Status::OnHold
    );
    // A refused update leaves the job as it is and answers it.
    let refused = s
        .update(
            &job.id,
            |s| s == Status::Ready,
            |t| t["status"] = json!("failed"),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.status(), Status::OnHold);
    assert!(s.get("nope").await.unwrap().is_none());
    assert!(s.update("nope", |_| true, |_| {}).await.unwrap().is_none());
    // Kept resources come back as written.
    let bundle = json!({"resourceType": "Bundle", "type": "batch-response", "entry": []});
    let id = s.keep(bundle.clone()).await.unwrap();
    let (_, back) = s.resource("Bundle", &id).await.unwrap().unwrap();
    assert_eq!(back["type"], "batch-response");
    assert_eq!(back["id"], json!(id));
}

#[tokio::test]
async fn work_completes_or_fails_the_job() {
    let s = store().await;
    let sched = Scheduler::new(s.clone());
    let ok = s
        .create(new_task("async-interaction", vec![]))
        .await
        .unwrap();
    sched
        .run(&ok, async { Ok(vec![input("processing-duration", 7)]) })
        .await
        .unwrap();
    let done = wait_for(&s, &ok.id, Status::Completed).await;
    assert_eq!(
        done.parameter("output", ASYNC_PARAMETER_SYSTEM, "processing-duration"),
        Some(&json!(7))
    );
    let bad = s
        .create(new_task("async-interaction", vec![]))
        .await
        .unwrap();
    sched
        .run(&bad, async { Err("it broke".to_string()) })
        .await
        .unwrap();
    let failed = wait_for(&s, &bad.id, Status::Failed).await;
    assert_eq!(failed.failure(), Some("it broke"));
    // Finished jobs cannot be cancelled; unknown ones are unknown.
    assert_eq!(
        sched.cancel(&ok.id).await.unwrap(),
        Cancelled::AlreadyFinished
    );
    assert_eq!(
        sched.cancel(&bad.id).await.unwrap(),
        Cancelled::AlreadyFinished
    );
    assert_eq!(sched.cancel("nope").await.unwrap(), Cancelled::Unknown);
    assert_eq!(sched.running(), 0);
}

/// Work that runs until it is dropped, and says whether it was.
struct Endless(Arc<AtomicBool>);
impl Drop for Endless {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn cancelling_stops_the_work_here_and_from_another_node() {
    let (kv, log, st) = (
        Arc::new(MemKv::new()),
        Arc::new(MemLog::new()),
        Arc::new(MemStore::new()),
    );
    let s = JobStore::new(node_over(kv, log.clone(), st.clone()).await);
    let sched = Scheduler::new(s.clone());
    let endless = |dropped: Arc<AtomicBool>| async move {
        let _guard = Endless(dropped);
        std::future::pending::<()>().await;
        Ok(vec![])
    };
    // On this node: the work is dropped at once.
    let here = s
        .create(new_task("async-interaction", vec![]))
        .await
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    sched.run(&here, endless(dropped.clone())).await.unwrap();
    assert_eq!(
        s.get(&here.id).await.unwrap().unwrap().status(),
        Status::InProgress
    );
    assert_eq!(sched.running(), 1);
    assert_eq!(sched.cancel(&here.id).await.unwrap(), Cancelled::Now);
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(dropped.load(Ordering::SeqCst), "the work was stopped");
    assert_eq!(sched.cancel(&here.id).await.unwrap(), Cancelled::Before);
    assert_eq!(
        s.get(&here.id).await.unwrap().unwrap().status(),
        Status::Cancelled
    );

    // From another node over the same admin log and store: seen within the poll interval.
    let other = Scheduler::new(JobStore::new(
        node_over(Arc::new(MemKv::new()), log, st).await,
    ));
    let there = s
        .create(new_task("async-interaction", vec![]))
        .await
        .unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    sched.run(&there, endless(dropped.clone())).await.unwrap();
    assert_eq!(other.cancel(&there.id).await.unwrap(), Cancelled::Now);
    for _ in 0..200 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        dropped.load(Ordering::SeqCst),
        "the other node's cancel stopped the work"
    );
    assert_eq!(
        s.get(&there.id).await.unwrap().unwrap().status(),
        Status::Cancelled,
        "the cancelled job did not complete afterwards"
    );
}

#[tokio::test]
async fn unfinished_jobs_are_found_after_a_restart() {
    let (log, st) = (Arc::new(MemLog::new()), Arc::new(MemStore::new()));
    let s = JobStore::new(node_over(Arc::new(MemKv::new()), log.clone(), st.clone()).await);
    let mut ids = Vec::new();
    for i in 0..1203 {
        let job = s
            .create(new_task("async-interaction", vec![]))
            .await
            .unwrap();
        if i % 3 == 0 {
            s.update(&job.id, |_| true, |t| t["status"] = json!("completed"))
                .await
                .unwrap();
        } else {
            ids.push(job.id);
        }
    }
    // A new node (a fresh index rebuilt from the log) finds the same unfinished jobs.
    let again = JobStore::new(node_over(Arc::new(MemKv::new()), log, st).await);
    let mut found: Vec<String> = again
        .unfinished()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    found.sort();
    ids.sort();
    assert_eq!(found, ids);
}

#[tokio::test]
async fn pausing_stops_the_work_and_resuming_runs_it_again() {
    let s = store().await;
    let sched = Scheduler::new(s.clone());
    let job = s.create(new_task("re-index", vec![])).await.unwrap();
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = Endless(dropped.clone());
    sched
        .run(&job, async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(vec![])
        })
        .await
        .unwrap();
    let paused = sched.pause(&job.id).await.unwrap().unwrap().unwrap();
    assert_eq!(paused.status(), Status::OnHold);
    for _ in 0..100 {
        if dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(dropped.load(Ordering::SeqCst), "the work was stopped");
    assert_eq!(sched.running(), 0);
    // Pausing twice, or resuming what is not paused, is refused with the job as it is.
    let again = sched.pause(&job.id).await.unwrap().unwrap().unwrap_err();
    assert_eq!(again.status(), Status::OnHold);
    assert!(sched.pause("nope").await.unwrap().is_none());
    assert!(sched.resume("nope").await.unwrap().is_none());
    let resumed = sched.resume(&job.id).await.unwrap().unwrap().unwrap();
    assert_eq!(resumed.status(), Status::Ready);
    let refused = sched.resume(&job.id).await.unwrap().unwrap().unwrap_err();
    assert_eq!(refused.status(), Status::Ready);
    sched
        .run(&resumed, async {
            Ok(vec![input("resources-processed", 3)])
        })
        .await
        .unwrap();
    let done = wait_for(&s, &job.id, Status::Completed).await;
    assert_eq!(
        done.parameter("output", ASYNC_PARAMETER_SYSTEM, "resources-processed"),
        Some(&json!(3))
    );
    assert!(done.task.get("statusReason").is_none());
    assert!(sched.pause(&job.id).await.unwrap().unwrap().is_err());
}

#[tokio::test]
async fn work_ending_after_a_pause_does_not_finish_the_job() {
    let s = store().await;
    let sched = Scheduler::new(s.clone());
    let job = s.create(new_task("re-index", vec![])).await.unwrap();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let store2 = s.clone();
    let id = job.id.clone();
    sched
        .run(&job, async move {
            let _ = wait.await;
            // Paused by another node meanwhile: the pause below happened first.
            let _ = store2.get(&id).await;
            Ok(vec![])
        })
        .await
        .unwrap();
    // Paused through a second scheduler (another node): this one's work is not aborted.
    let other = Scheduler::new(s.clone());
    other.pause(&job.id).await.unwrap().unwrap().unwrap();
    let _ = go.send(());
    for _ in 0..50 {
        if sched.running() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sched.running(), 0);
    assert_eq!(
        s.get(&job.id).await.unwrap().unwrap().status(),
        Status::OnHold
    );
}

#[test]
fn outputs_replace_those_of_the_same_type() {
    let mut task = new_task("re-index", vec![]);
    set_output(&mut task, input("a", 1));
    set_output(&mut task, input("b", 2));
    set_output(&mut task, input("a", 3));
    let out = task["output"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["valueUnsignedInt"], 3);
    assert_eq!(out[1]["valueUnsignedInt"], 2);
}
