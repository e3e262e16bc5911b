//! Asynchronous requests through the real router: `Prefer: respond-async` on the requests
//! that may run long is accepted with 202 and a status URL; the status answers 202 while the
//! job runs, the `batch-response` as of the request's `t` when it is done, and 404 once it is
//! cancelled; other requests are answered synchronously.

mod common;
use axum::Router;
use common::{Answer, send, send_with};
use flint_db::mem::MemKv;
use flint_measure::CqlConfig;
use flint_rest::{AppState, RestConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const ASYNC: (&str, &str) = ("prefer", "respond-async");

async fn api() -> Router {
    let engine = flint_search::Engine::new(Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    let admin = flint_db::testing::plain_node().await;
    let config = RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        enable_operation_cql: true,
        ..RestConfig::default()
    };
    let terminology = Arc::new(flint_terminology::DbTerminology::new(engine.clone()));
    // A budget large enough for the long-running expression below to run for seconds.
    let ops = flint_cql_db::operations::CqlOperations::new(engine.clone(), terminology)
        .with_budget(u64::MAX / 2);
    let state = AppState::new(node, config, engine)
        .with_cql_service(Arc::new(ops), CqlConfig::default())
        .with_jobs(flint_jobs::Scheduler::new(flint_jobs::JobStore::new(admin)));
    flint_rest::router(state)
}

async fn put_patient(api: &Router, id: &str, gender: &str) {
    let body = json!({"resourceType": "Patient", "id": id, "gender": gender}).to_string();
    let a = send(api, "PUT", &format!("Patient/{id}"), &body).await;
    assert!(a.status.is_success(), "{}", a.json());
}

/// The status path (after `/fhir/`) of an accepted request.
fn accepted(a: &Answer) -> String {
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let url = a.headers["content-location"].to_str().unwrap();
    let path = url
        .strip_prefix("http://flint.test/fhir/")
        .unwrap_or_else(|| panic!("status URL {url}"));
    assert!(path.starts_with("__async-status/"), "{path}");
    path.to_string()
}

/// Polls `status` until it is no longer 202; the final answer.
async fn wait(api: &Router, status: &str) -> Answer {
    for _ in 0..1000 {
        let a = send(api, "GET", status, "").await;
        if a.status != 202 {
            return a;
        }
        assert_eq!(a.headers["x-progress"], "in-progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{status} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_count_search_answers_as_of_the_request() {
    let api = api().await;
    for i in 0..5 {
        put_patient(&api, &format!("f{i}"), "female").await;
    }
    put_patient(&api, "m0", "male").await;
    let status = accepted(
        &send_with(
            &api,
            "GET",
            "Patient?gender=female&_summary=count",
            "",
            &[ASYNC],
        )
        .await,
    );
    // Written after the request was accepted: not counted, whenever the job runs.
    for i in 5..9 {
        put_patient(&api, &format!("f{i}"), "female").await;
    }
    let done = wait(&api, &status).await;
    let b = done.ok();
    assert_eq!(b["type"], "batch-response");
    let entry = &b["entry"][0];
    assert_eq!(entry["response"]["status"], "200", "{b}");
    assert_eq!(entry["resource"]["total"], 5, "{b}");
    // The same request without the preference counts now.
    let now = send(&api, "GET", "Patient?gender=female&_summary=count", "").await;
    assert_eq!(now.ok()["total"], 9);
    // A finished request cannot be cancelled; its result stays.
    let conflict = send(&api, "DELETE", &status, "").await;
    conflict.issue(409);
    assert_eq!(send(&api, "GET", &status, "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_requests_are_answered_synchronously() {
    let api = api().await;
    put_patient(&api, "p1", "female").await;
    let read = send_with(&api, "GET", "Patient/p1", "", &[ASYNC]).await;
    assert_eq!(read.ok()["id"], "p1");
    let search = send_with(&api, "GET", "Patient?gender=female", "", &[ASYNC]).await;
    assert_eq!(search.ok()["type"], "searchset");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "PUT", "url": "Patient/p2"},
         "resource": {"resourceType": "Patient", "id": "p2"}}]});
    let a = send_with(&api, "POST", "", &tx.to_string(), &[ASYNC]).await;
    assert_eq!(a.ok()["type"], "transaction-response");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_operations_run_asynchronously() {
    let api = api().await;
    put_patient(&api, "p1", "female").await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "GET", "url": "Patient/nope"}}]});
    let status = accepted(&send_with(&api, "POST", "", &batch.to_string(), &[ASYNC]).await);
    let b = wait(&api, &status).await.ok();
    assert_eq!(b["entry"][0]["resource"]["id"], "p1", "{b}");
    assert_eq!(b["entry"][1]["response"]["status"], "404", "{b}");

    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "expression", "valueString": "6 * 7"}]});
    let status = accepted(&send_with(&api, "POST", "$cql", &params.to_string(), &[ASYNC]).await);
    let b = wait(&api, &status).await.ok();
    let result = &b["entry"][0]["resource"];
    assert_eq!(result["parameter"][0]["valueInteger"], 42, "{b}");

    // An operation that fails is a completed request whose entry holds the error.
    let status = accepted(
        &send_with(
            &api,
            "GET",
            "Measure/missing/$evaluate-measure?periodStart=2020&periodEnd=2020",
            "",
            &[ASYNC],
        )
        .await,
    );
    let b = wait(&api, &status).await.ok();
    assert_eq!(b["entry"][0]["response"]["status"], "404", "{b}");
    assert_eq!(
        b["entry"][0]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_request_is_cancelled() {
    let api = api().await;
    // Hundreds of millions of steps (a list of 20,000 built and filtered 20,000 times, never
    // more than two such lists alive): runs until it is stopped.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "expression", "valueString":
            "Count((expand Interval[1, 20000]) A where Count((expand Interval[1, 20000]) B where B = A) = 1)"}]});
    let status = accepted(&send_with(&api, "POST", "$cql", &params.to_string(), &[ASYNC]).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let running = send(&api, "GET", &status, "").await;
    assert_eq!(running.status, 202);
    assert_eq!(running.headers["x-progress"], "in-progress");
    let cancel = send(&api, "DELETE", &status, "").await;
    assert_eq!(cancel.status, 202, "{}", cancel.json());
    send(&api, "GET", &status, "").await.issue(404);
    send(&api, "DELETE", &status, "").await.issue(404);
    // The status of an unknown request, and a method the status URL does not allow.
    send(&api, "GET", "__async-status/nope", "")
        .await
        .issue(404);
    send(&api, "DELETE", "__async-status/nope", "")
        .await
        .issue(404);
    assert_eq!(send(&api, "PUT", &status, "{}").await.status, 405);
    // The evaluation stopped: a short request is answered at once afterwards.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "expression", "valueString": "1 + 1"}]});
    let started = std::time::Instant::now();
    let a = send(&api, "POST", "$cql", &params.to_string()).await;
    assert_eq!(a.ok()["parameter"][0]["valueInteger"], 2);
    println!("answered after the cancel in {:?}", started.elapsed());
}
