//! Helpers of the router tests: requests through the real router and their answers.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An HTTP answer.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The single issue of an OperationOutcome answered with `status`.
    pub fn issue(&self, status: u16) -> Value {
        let v = self.json();
        assert_eq!(self.status.as_u16(), status, "{v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        v["issue"][0].clone()
    }

    /// The body of a 200 answer.
    pub fn ok(&self) -> Value {
        let v = self.json();
        assert_eq!(self.status, StatusCode::OK, "{v}");
        v
    }
}

/// Sends `method` `/fhir/{path}` with a FHIR JSON `body` (none when empty) to `router`.
pub async fn send(router: &Router, method: &str, path: &str, body: &str) -> Answer {
    send_with(router, method, path, body, &[]).await
}

/// [`send`] with extra request `headers`.
pub async fn send_with(
    router: &Router,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut all = headers.to_vec();
    if !body.is_empty() {
        all.push(("content-type", "application/fhir+json"));
    }
    send_raw(router, method, path, body, &all).await
}

/// Sends `method` `/fhir/{path}` with `body` and exactly `headers` (no content type of its own).
pub async fn send_raw(
    router: &Router,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/fhir/{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A router over `kv` and `store` with the R4 search parameters, base URL
/// `http://flint.test/fhir` and the configuration `adjust` makes of the default.
pub async fn router_over(
    kv: std::sync::Arc<dyn flint_db::KvStore>,
    store: std::sync::Arc<dyn flint_db::ResourceStore>,
    adjust: impl FnOnce(&mut flint_rest::RestConfig),
) -> Router {
    let engine = flint_search::Engine::new(std::sync::Arc::new(flint_search::Registry::r4()));
    let node = flint_db::testing::node_over(engine.indexer(), kv, store).await;
    let mut config = flint_rest::RestConfig {
        base_url: "http://flint.test".into(),
        context_path: "/fhir".into(),
        ..flint_rest::RestConfig::default()
    };
    adjust(&mut config);
    flint_rest::router(flint_rest::AppState::new(node, config, engine))
}
