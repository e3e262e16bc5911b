//! The HTTP surface: one handler parses every request under the context path into a
//! [`FhirRequest`], [`dispatch`] routes it to an interaction (or a `$name` path to
//! [`crate::operations`]), and the [`Reply`] is rendered in the negotiated format. `/health`
//! answers liveness checks.

use crate::api::{Body, FhirRequest, Payload, Reply};
use crate::async_request;
use crate::context::{self, Ctx, check_type_and_id, header_str, path_segments, query_pairs};
use crate::format::{self, Accept, Format, apply_subset};
use crate::history::{self, Scope};
use crate::interaction;
use crate::operations::{self, Target};
use crate::outcome::{FhirError, FhirResult};
use crate::search::SearchRequest;
use crate::state::AppState;
use crate::{bundle, capabilities, conditional, search};
use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The application's router: `/health` and everything under the context path.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health).head(health))
        .fallback(handle)
        .with_state(state)
}

/// `/health`: `OK` as text (liveness, as Blaze answers). With `?detail` (or `Accept:
/// application/json`) a JSON report of the node: storage variant, indexed `t`, log end, lag in
/// transactions and seconds, recent log and indexer errors; status 503 and `"status":
/// "DEGRADED"` when the log end cannot be read, the indexer is failing or the lag exceeds the
/// sync timeout.
async fn health(State(state): State<AppState>, req: Request) -> Response {
    let wants_detail = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "detail" || p.starts_with("detail="))
    }) || header_str(req.headers(), "accept")
        .is_some_and(|a| a.contains("application/json"));
    if !wants_detail {
        return ([(header::CONTENT_TYPE, "text/plain")], "OK").into_response();
    }
    let node = state.node();
    let st = node.status();
    let degraded = st.log_error.is_some()
        || st.indexer_error.is_some()
        || st.lag_seconds > node.sync_timeout().as_secs_f64();
    let body = serde_json::json!({
        "status": if degraded { "DEGRADED" } else { "UP" },
        "storage": state.config().storage,
        "node": st,
    });
    let code = if degraded {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Which interaction a request is, for metrics.
fn interaction_name(req: &FhirRequest) -> &'static str {
    let p: Vec<&str> = req.path.iter().map(String::as_str).collect();
    match (req.method.as_str(), p.as_slice()) {
        (_, [op] | [_, op] | [_, _, op]) if op.starts_with('$') => "operation",
        ("GET", ["metadata"]) => "capabilities",
        ("POST", []) => "transaction",
        ("GET", ["_history"]) => "history-system",
        ("GET", []) => "search-system",
        ("GET", ["__page", _]) => "search-page",
        (_, ["__async-status", _]) => "async-status",
        (_, ["__export", _, _]) => "export-file",
        (_, ["__admin", ..]) => "admin",
        ("POST", [_, "_search"]) => "search-type",
        ("GET", [_, _, t]) if *t != "_history" => "search-compartment",
        ("GET", [_]) => "search-type",
        ("POST", [_]) => "create",
        ("GET", [_, "_history"]) => "history-type",
        ("GET", [_, _]) => "read",
        ("PUT", [_, _]) => "update",
        ("PATCH", [_, _]) => "patch",
        ("DELETE", [_, _]) => "delete",
        ("GET", [_, _, "_history"]) => "history-instance",
        ("DELETE", [_, _, "_history"]) => "delete-history",
        ("GET", [_, _, "_history", _]) => "vread",
        _ => "other",
    }
}

async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let cfg = state.config();
    let ctx = Ctx::new(state.clone(), &parts.headers);
    let query = query_pairs(parts.uri.query().unwrap_or(""));
    let param = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let pretty = param("_pretty") == Some("true");
    let accept = match format::negotiate(param("_format"), header_str(&parts.headers, "accept")) {
        Ok(a) => a,
        Err(e) => {
            return render(
                Reply::error(&e),
                Format::Json,
                false,
                &Accept::Fhir(Format::Json),
                &[],
            );
        }
    };
    let out_format = match accept {
        Accept::Fhir(f) => f,
        Accept::Other(_) => Format::Json,
    };
    let path = parts.uri.path();
    let Some(rest) = path
        .strip_prefix(cfg.context_path.as_str())
        .filter(|r| r.is_empty() || r.starts_with('/'))
    else {
        let e = FhirError::not_found(format!("No FHIR endpoint at `{path}`."));
        return render(Reply::error(&e), out_format, pretty, &accept, &[]);
    };
    let segments = path_segments(rest);
    let bytes = match axum::body::to_bytes(body, cfg.max_body_size).await {
        Ok(b) => b,
        Err(_) => {
            let e = FhirError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-costly",
                format!(
                    "The request body is larger than the limit of {} bytes.",
                    cfg.max_body_size
                ),
            );
            return render(Reply::error(&e), out_format, pretty, &accept, &[]);
        }
    };
    let req = context::http_request(
        parts.method.as_str(),
        segments,
        query,
        &parts.headers,
        bytes,
    );
    if let Accept::Other(m) = &accept
        && !produces_other_media_types(&req.path)
    {
        let e = FhirError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-supported",
            format!(
                "Cannot answer in `{m}` (Accept): the server answers application/fhir+json or \
                 application/fhir+xml."
            ),
        );
        return render(Reply::error(&e), out_format, pretty, &accept, &[]);
    }
    let interaction = interaction_name(&req);
    let subset = subset_params(&req);
    let response = if operations::export::is_file_path(&req.path) {
        operations::export::download(&ctx, &req.method, &parts.headers, &req.path).await
    } else if interaction == "capabilities" {
        metadata(
            current_capabilities(&ctx).await,
            &ctx.base,
            out_format,
            pretty,
            &accept,
            &subset,
            &parts.headers,
        )
    } else if async_request::prefers_async(&parts.headers) && async_request::eligible(&req) {
        let reply = match async_request::submit(&ctx, &req, dispatch_entry).await {
            Ok(Some(accepted)) => accepted,
            Ok(None) => dispatch(&ctx, req).await,
            Err(e) => Reply::error(&e),
        };
        render(reply, out_format, pretty, &accept, &subset)
    } else {
        let reply = dispatch(&ctx, req).await;
        render(reply, out_format, pretty, &accept, &subset)
    };
    let status = response.status().as_u16();
    metrics::counter!("http_fhir_requests_total", "interaction" => interaction, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_fhir_request_duration_seconds", "interaction" => interaction)
        .record(start.elapsed().as_secs_f64());
    response
}

/// `_summary`/`_elements` of a request, applied to read replies.
fn subset_params(req: &FhirRequest) -> Vec<(String, String)> {
    req.query
        .iter()
        .filter(|(k, _)| k == "_summary" || k == "_elements")
        .cloned()
        .collect()
}

/// The CapabilityStatement with the profiles stored now (`supportedProfile`), computed once
/// per database value.
async fn current_capabilities(ctx: &Ctx) -> FhirResult<Arc<capabilities::Capabilities>> {
    let db = ctx.read_db().await?;
    if let Some(c) = ctx.state.capabilities_at(db.t()) {
        return Ok(c);
    }
    let profiles = search::supported_profiles(ctx, &db).await?;
    ctx.state.profiled_capabilities(db.t(), profiles)
}

/// `GET [base]/metadata`: the statement built at startup in the negotiated format, subsetted
/// by `_summary`/`_elements`, with a weak `ETag`; `304 Not Modified` without a body when an
/// `If-None-Match` header matches it.
fn metadata(
    capabilities: FhirResult<Arc<capabilities::Capabilities>>,
    base: &str,
    format: Format,
    pretty: bool,
    accept: &Accept,
    subset: &[(String, String)],
    headers: &HeaderMap,
) -> Response {
    let rendered = match capabilities.and_then(|c| c.render(base, format, pretty, subset)) {
        Ok(r) => r,
        Err(e) => return render(Reply::error(&e), format, pretty, accept, &[]),
    };
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&rendered.etag) {
        out.insert(header::ETAG, v);
    }
    // The same URL answers JSON or XML depending on `Accept`.
    out.insert(header::VARY, HeaderValue::from_static("Accept"));
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|h| capabilities::if_none_match(h, &rendered.etag));
    if not_modified {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    (StatusCode::OK, out, AxumBody::from(rendered.bytes)).into_response()
}

fn render(
    reply: Reply,
    format: Format,
    pretty: bool,
    accept: &Accept,
    subset: &[(String, String)],
) -> Response {
    let mut status =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if let Some(t) = reply.etag
        && let Ok(v) = HeaderValue::from_str(&format!("W/\"{t}\""))
    {
        headers.insert(header::ETAG, v);
    }
    if let Some(ms) = reply.last_modified
        && let Ok(v) = HeaderValue::from_str(&crate::resource::http_date(ms))
    {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if let Some(l) = &reply.location
        && let Ok(v) = HeaderValue::from_str(l)
    {
        headers.insert(header::LOCATION, v);
    }
    for (name, value) in &reply.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(*name, v);
        }
    }
    let paged = match &reply.body {
        Body::Bundle(b) => link_header(&b.head),
        Body::Resource(v) => link_header(v),
        _ => None,
    };
    if let Some(v) = paged.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LINK, v);
    }
    let body = match reply.body {
        Body::None => Bytes::new(),
        Body::Raw(ct, b) => {
            if let Ok(v) = HeaderValue::from_str(&ct) {
                headers.insert(header::CONTENT_TYPE, v);
            }
            b
        }
        Body::Stored(s)
            if format == Format::Json
                && !pretty
                && subset.is_empty()
                && !matches!(accept, Accept::Other(_)) =>
        {
            match s.to_json() {
                Ok(b) => {
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(format.content_type()),
                    );
                    Bytes::from(b)
                }
                Err(e) => {
                    status = e.status;
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(format.content_type()),
                    );
                    Bytes::from(format.encode(&e.to_outcome(), pretty))
                }
            }
        }
        Body::Stored(s) => {
            let reply_body = match s.to_value() {
                Ok(v) => Body::Read(v),
                Err(e) => {
                    status = e.status;
                    Body::Resource(e.to_outcome())
                }
            };
            let mut r = Reply::new(status.as_u16(), reply_body);
            r.etag = reply.etag;
            r.last_modified = reply.last_modified;
            r.location = reply.location;
            r.headers = reply.headers;
            return render(r, format, pretty, accept, subset);
        }
        Body::Bundle(b) if format == Format::Json && !pretty => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            match b.to_json() {
                Ok(bytes) => Bytes::from(bytes),
                Err(e) => {
                    status = e.status;
                    Bytes::from(format.encode(&e.to_outcome(), pretty))
                }
            }
        }
        Body::Bundle(b) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            match b.to_value() {
                Ok(v) => Bytes::from(format.encode(&v, pretty)),
                Err(e) => {
                    status = e.status;
                    Bytes::from(format.encode(&e.to_outcome(), pretty))
                }
            }
        }
        Body::Read(v) => {
            let raw_binary = matches!(accept, Accept::Other(_))
                && crate::resource::type_of(&v) == "Binary"
                && subset.is_empty();
            if raw_binary && let Some(Body::Raw(ct, b)) = interaction::binary_raw(&v) {
                if let Ok(h) = HeaderValue::from_str(&ct) {
                    headers.insert(header::CONTENT_TYPE, h);
                }
                b
            } else {
                let v = match apply_subset(&v, subset) {
                    Ok(Some(s)) => s,
                    Ok(None) => v,
                    Err(e) => {
                        status = e.status;
                        e.to_outcome()
                    }
                };
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                Bytes::from(format.encode(&v, pretty))
            }
        }
        Body::Resource(v) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            Bytes::from(format.encode(&v, pretty))
        }
    };
    (status, headers, AxumBody::from(body)).into_response()
}

/// The most bytes of a `Link` header (as Blaze: proxies' header buffers are small).
pub const LINK_HEADER_LIMIT: usize = 2048;

/// The RFC 8288 `Link` header of a searchset or history Bundle: its links as
/// `<url>;rel="relation"`, URLs percent-encoded where a header cannot carry them. Longer than
/// [`LINK_HEADER_LIMIT`], the `previous`, `first` and `self` links are left out in that order
/// (as Blaze), never `next`. `None` for other bodies and Bundles without links.
pub fn link_header(bundle: &serde_json::Value) -> Option<String> {
    if bundle["resourceType"] != "Bundle"
        || !matches!(bundle["type"].as_str(), Some("searchset" | "history"))
    {
        return None;
    }
    let mut links: Vec<(&str, String)> = bundle["link"]
        .as_array()?
        .iter()
        .filter_map(|l| Some((l["relation"].as_str()?, header_url(l["url"].as_str()?))))
        .collect();
    let render = |links: &[(&str, String)]| {
        links
            .iter()
            .map(|(rel, url)| format!("<{url}>;rel=\"{rel}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = render(&links);
    for dropped in ["previous", "first", "self"] {
        if out.len() <= LINK_HEADER_LIMIT {
            break;
        }
        links.retain(|(rel, _)| *rel != dropped);
        out = render(&links);
    }
    (!out.is_empty()).then_some(out)
}

/// `url` with every byte a `Link` header value cannot hold inside `<>` percent-encoded
/// (non-ASCII such as `ó`, spaces, quotes, angle brackets); `%` sequences stay as they are.
fn header_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for b in url.bytes() {
        if b.is_ascii_graphic()
            && !matches!(
                b,
                b'<' | b'>' | b'"' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
            )
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Routes a request to its interaction. Used by the HTTP handler and by bundle entries.
pub async fn dispatch(ctx: &Ctx, req: FhirRequest) -> Reply {
    Reply::from_result(dispatch_inner(ctx, req).await)
}

/// Runs again the asynchronous requests that were unfinished when the server stopped (see
/// [`async_request::resume`]); how many.
pub async fn resume_async_requests(state: &AppState) -> FhirResult<usize> {
    async_request::resume(state, dispatch_entry).await
}

/// [`dispatch`] as the [`bundle::Dispatch`] that answers bundle entries.
fn dispatch_entry(ctx: &Ctx, req: FhirRequest) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
    Box::pin(dispatch(ctx, req))
}

/// Answers the search `req` asks for in `scope` (a `POST` is a `POST _search`).
async fn search_in(ctx: &Ctx, scope: search::Scope, req: &FhirRequest) -> FhirResult<Reply> {
    search::search(ctx, SearchRequest::of(scope, req)?).await
}

async fn dispatch_inner(ctx: &Ctx, mut req: FhirRequest) -> Result<Reply, FhirError> {
    let path: Vec<String> = req.path.clone();
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = req.method.clone();
    let not_allowed = || Err(FhirError::method_not_allowed(&method, &p.join("/")));
    match p.as_slice() {
        ["__admin", rest @ ..] => crate::admin::dispatch(ctx, rest, &req).await,
        // `$name` operations, at each level (`$` never starts a type or an id).
        [op] if op.starts_with('$') => {
            operations::invoke(ctx, Target::System, &op[1..], &req).await
        }
        [ty, op] if op.starts_with('$') => {
            operations::invoke(ctx, Target::Type(ty), &op[1..], &req).await
        }
        [ty, id, op] if op.starts_with('$') => {
            operations::invoke(ctx, Target::Instance(ty, id), &op[1..], &req).await
        }
        [] => match method.as_str() {
            "POST" => {
                let bundle = context::payload_resource("Bundle", &req.payload)?;
                bundle::process(ctx, bundle, req.prefer_return, dispatch_entry).await
            }
            "GET" => search_in(ctx, search::Scope::System, &req).await,
            _ => not_allowed(),
        },
        ["metadata"] => match method.as_str() {
            "GET" => Ok(current_capabilities(ctx).await?.reply(&ctx.base)),
            _ => not_allowed(),
        },
        ["_history"] => match method.as_str() {
            "GET" => history::history(ctx, Scope::System, &req).await,
            _ => not_allowed(),
        },
        [ty] => match method.as_str() {
            "POST" => conditional::create(ctx, ty, &req).await,
            "GET" => search_in(ctx, search::Scope::Type(ty.to_string()), &req).await,
            "PUT" => conditional::update(ctx, ty, &req).await,
            "DELETE" => conditional::delete(ctx, ty, &req).await,
            _ => not_allowed(),
        },
        ["__async-status", id] => match method.as_str() {
            "GET" => async_request::status(ctx, id).await,
            "DELETE" => async_request::cancel(ctx, id).await,
            _ => not_allowed(),
        },
        ["__page", token] => match method.as_str() {
            "GET" | "POST" => search::page(ctx, token).await,
            _ => not_allowed(),
        },
        [ty, "_search"] => match method.as_str() {
            "POST" => search_in(ctx, search::Scope::Type(ty.to_string()), &req).await,
            _ => not_allowed(),
        },
        [ty, "_history"] => match method.as_str() {
            "GET" => history::history(ctx, Scope::Type(ty), &req).await,
            _ => not_allowed(),
        },
        [ty, id] => match method.as_str() {
            "GET" => {
                check_type_and_id(ty, id)?;
                interaction::read(&ctx.read_db().await?, ty, id).await
            }
            "PUT" => interaction::update(ctx, ty, id, &req).await,
            "DELETE" => interaction::delete(ctx, ty, id, &req).await,
            "PATCH" => {
                if let Payload::Fhir(Format::Json, b) = &req.payload {
                    // JSON Patch documents are JSON arrays, FHIRPath Patch is a Parameters object.
                    if b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[') {
                        req.payload = Payload::Raw("application/json-patch+json".into(), b.clone());
                    }
                }
                interaction::patch(ctx, ty, id, &req).await
            }
            _ => not_allowed(),
        },
        [comp, id, ty] if *ty != "_history" => match method.as_str() {
            "GET" => {
                let scope =
                    search::Scope::Compartment(comp.to_string(), id.to_string(), ty.to_string());
                search_in(ctx, scope, &req).await
            }
            _ => not_allowed(),
        },
        [ty, id, "_history"] => match method.as_str() {
            "GET" => history::history(ctx, Scope::Instance(ty, id), &req).await,
            "DELETE" => history::delete_history(ctx, ty, id).await,
            _ => not_allowed(),
        },
        [ty, id, "_history", vid] => match method.as_str() {
            "GET" => {
                check_type_and_id(ty, id)?;
                interaction::vread(&ctx.read_db().await?, ty, id, vid).await
            }
            _ => not_allowed(),
        },
        _ => Err(FhirError::not_found(format!(
            "No FHIR endpoint at `{}`.",
            p.join("/")
        ))),
    }
}

/// Whether a request to `path` may be answered in a media type that is not a FHIR format
/// (an `Accept` such as `text/plain` is 406 elsewhere, as in Blaze): Binary (its raw content),
/// `$export` files (NDJSON), the admin API, asynchronous status URLs and `$graphql` (plain
/// JSON).
fn produces_other_media_types(path: &[String]) -> bool {
    matches!(
        path.first().map(String::as_str),
        Some("Binary" | "__export" | "__admin" | "__async-status")
    ) || path.last().is_some_and(|l| l == "$graphql")
}
