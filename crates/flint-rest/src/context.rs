//! The request context and the request checks: [`Ctx`] (shared state and the request's public
//! base URL), the parsing of request URLs, headers and bodies into a [`FhirRequest`], and the
//! checks of resource types, ids and precondition headers that interactions start with.
//!
//! Everything here is below the interactions: it knows requests, not what they do.

use crate::api::{FhirRequest, Handling, Payload, Return};
use crate::format;
use crate::outcome::{FhirError, FhirResult};
use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use flint_db::{IfNoneMatch, T};
use serde_json::Value;

/// Per-request context: shared state and the request's public base URL (with context path).
#[derive(Clone)]
pub struct Ctx {
    /// Shared state.
    pub state: AppState,
    /// Base URL for links and `Location` (e.g. `http://localhost:8080/fhir`).
    pub base: String,
    /// The database value reads use: `None` for the newest, `Some(t)` for an asynchronous
    /// request, which answers as of the `t` it was submitted at.
    pub at: Option<T>,
}

impl Ctx {
    /// The context of a request with `headers`, its base URL resolved by [`request_base`].
    pub fn new(state: AppState, headers: &HeaderMap) -> Ctx {
        let base = request_base(&state, headers);
        Ctx {
            state,
            base,
            at: None,
        }
    }

    /// The database value this request reads: the newest one (synced with the log), or the
    /// one as of [`Ctx::at`].
    pub async fn read_db(&self) -> FhirResult<flint_db::Db> {
        Ok(match self.at {
            Some(t) => self.state.node().sync_to(t).await?,
            None => self.state.node().sync().await?,
        })
    }

    /// The absolute URL of `Type/id`.
    pub fn url(&self, type_name: &str, id: &str) -> String {
        format!("{}/{type_name}/{id}", self.base)
    }

    /// The absolute URL of a version.
    pub fn version_url(&self, type_name: &str, id: &str, t: T) -> String {
        format!("{}/{type_name}/{id}/_history/{t}", self.base)
    }
}

/// The value of header `name`, if it is present and visible ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The public base URL of a request: `BASE_URL` unless `X-Forwarded-Host`/`-Proto` or
/// `Forwarded` say otherwise; with the context path.
pub fn request_base(state: &AppState, headers: &HeaderMap) -> String {
    let cfg = state.config();
    let mut host = header_str(headers, "x-forwarded-host").map(str::to_string);
    let mut proto = header_str(headers, "x-forwarded-proto").map(str::to_string);
    if let Some(fwd) = header_str(headers, "forwarded") {
        for part in fwd.split(',').next().unwrap_or("").split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                match k.trim().to_ascii_lowercase().as_str() {
                    "host" => host = Some(v),
                    "proto" => proto = Some(v),
                    _ => {}
                }
            }
        }
    }
    let origin = match host {
        Some(h) => format!("{}://{h}", proto.as_deref().unwrap_or("http")),
        None => cfg.base_url.clone(),
    };
    format!("{origin}{}", cfg.context_path)
}

/// Splits a URL path into percent-decoded segments (empty segments dropped).
pub fn path_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Parses a query string into name/value pairs in order.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The query pairs of a condition (`If-None-Exist` value or URL query).
pub fn condition_params(cond: &str) -> Vec<(String, String)> {
    query_pairs(cond.trim_start_matches('?'))
}

/// The `Prefer: return=` preference, if one is given.
pub fn parse_prefer(headers: &HeaderMap) -> Option<Return> {
    let prefer = header_str(headers, "prefer")?;
    prefer.split([',', ';']).find_map(|p| {
        match p.trim().strip_prefix("return=")?.trim_matches('"') {
            "minimal" => Some(Return::Minimal),
            "representation" => Some(Return::Representation),
            "OperationOutcome" => Some(Return::OperationOutcome),
            _ => None,
        }
    })
}

/// The `Prefer: handling=` preference: strict only when `handling=strict` was sent.
pub fn parse_handling(headers: &HeaderMap) -> Handling {
    let strict = headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|p| {
            p.split([',', ';'])
                .any(|x| x.trim().eq_ignore_ascii_case("handling=strict"))
        })
    });
    if strict {
        Handling::Strict
    } else {
        Handling::Lenient
    }
}

/// The payload of a request body: FHIR (by `Content-Type`, or sniffed without one) or raw
/// bytes of another media type (lower case, without parameters).
pub fn payload(content_type: Option<&str>, bytes: Bytes) -> Payload {
    if bytes.is_empty() {
        return Payload::None;
    }
    match format::request_format(content_type, &bytes) {
        Some(f) => Payload::Fhir(f, bytes),
        None => Payload::Raw(
            content_type
                .and_then(|c| c.split(';').next())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase(),
            bytes,
        ),
    }
}

/// The FHIR request of an HTTP request: `method`, the path `segments` after the context path,
/// the `query` pairs, the headers that matter and the body.
pub fn http_request(
    method: &str,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    headers: &HeaderMap,
    body: Bytes,
) -> FhirRequest {
    FhirRequest {
        method: method.to_ascii_uppercase(),
        path: segments,
        query,
        if_match: header_str(headers, "if-match").map(str::to_string),
        if_none_match: header_str(headers, "if-none-match").map(str::to_string),
        if_none_exist: header_str(headers, "if-none-exist").map(str::to_string),
        prefer_return: parse_prefer(headers),
        handling: parse_handling(headers),
        payload: payload(header_str(headers, "content-type"), body),
    }
}

/// Turns a request payload into a resource for create/update (Binary raw content included).
pub fn payload_resource(type_name: &str, payload: &Payload) -> FhirResult<Value> {
    match payload {
        Payload::Resource(v) => Ok(v.clone()),
        Payload::Fhir(f, b) => f.decode(b),
        Payload::Raw(ct, bytes) if type_name == "Binary" => {
            use base64::Engine;
            let mut v = serde_json::json!({"resourceType": "Binary", "contentType": ct});
            if !bytes.is_empty() {
                v["data"] = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            Ok(flint_model::validate::resource(v)?)
        }
        Payload::Raw(ct, _) => Err(FhirError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            format!(
                "Unsupported media type `{ct}`: use application/fhir+json or application/fhir+xml."
            ),
        )),
        Payload::None => Err(FhirError::invalid("The request has no body.")),
    }
}

/// Checks that `type_name` is a known concrete resource type.
pub fn check_type(type_name: &str) -> FhirResult<()> {
    if flint_model::defs::definitions().is_resource_type(type_name) {
        Ok(())
    } else {
        Err(FhirError::not_found(format!(
            "Unknown resource type `{type_name}`."
        )))
    }
}

/// Checks that `id` is a valid resource id.
pub fn check_id(id: &str) -> FhirResult<()> {
    if flint_model::is_valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::invalid(format!(
            "Invalid resource id `{id}`: ids are 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'."
        )))
    }
}

/// Checks a resource type, then an id ([`check_type`], [`check_id`]).
pub fn check_type_and_id(type_name: &str, id: &str) -> FhirResult<()> {
    check_type(type_name)?;
    check_id(id)
}

/// Parses `If-Match` (`W/"1"`, `"1"`, comma lists) into version numbers.
pub fn parse_if_match(h: &str) -> FhirResult<Vec<T>> {
    let ts: Option<Vec<T>> = h
        .split(',')
        .map(|p| {
            let p = p.trim();
            let p = p.strip_prefix("W/").unwrap_or(p);
            p.trim_matches('"').parse().ok()
        })
        .collect();
    match ts {
        Some(ts) if !ts.is_empty() => Ok(ts),
        _ => Err(FhirError::new(
            StatusCode::PRECONDITION_FAILED,
            "conflict",
            format!("Invalid If-Match header `{h}`: expected W/\"<versionId>\"."),
        )),
    }
}

/// Parses `If-None-Match` (`*` or `W/"1"`).
pub fn parse_if_none_match(h: &str) -> FhirResult<IfNoneMatch> {
    let h = h.trim();
    if h == "*" {
        return Ok(IfNoneMatch::Any);
    }
    let p = h.strip_prefix("W/").unwrap_or(h).trim_matches('"');
    p.parse().map(IfNoneMatch::Version).map_err(|_| {
        FhirError::new(
            StatusCode::PRECONDITION_FAILED,
            "conflict",
            format!("Invalid If-None-Match header `{h}`: expected * or W/\"<versionId>\"."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn prefer_headers_give_return_and_handling() {
        let h = headers(&[("prefer", "handling=strict; return=OperationOutcome")]);
        assert_eq!(parse_prefer(&h), Some(Return::OperationOutcome));
        assert_eq!(parse_handling(&h), Handling::Strict);
        let h = headers(&[("prefer", "return=minimal"), ("prefer", "HANDLING=STRICT")]);
        assert_eq!(parse_prefer(&h), Some(Return::Minimal));
        assert_eq!(parse_handling(&h), Handling::Strict);
        let h = headers(&[("prefer", "handling=lenient")]);
        assert_eq!(parse_prefer(&h), None);
        assert_eq!(parse_handling(&h), Handling::Lenient);
        assert_eq!(parse_handling(&HeaderMap::new()), Handling::Lenient);
    }

    #[test]
    fn paths_queries_and_payloads_parse() {
        assert_eq!(path_segments("/Patient//a%20b/"), ["Patient", "a b"]);
        assert_eq!(
            condition_params("?identifier=x%7Cy&name=a+b"),
            [
                ("identifier".to_string(), "x|y".to_string()),
                ("name".to_string(), "a b".to_string())
            ]
        );
        assert!(matches!(payload(None, Bytes::new()), Payload::None));
        assert!(matches!(
            payload(Some("Text/Plain; charset=utf-8"), Bytes::from_static(b"hi")),
            Payload::Raw(ct, _) if ct == "text/plain"
        ));
        assert!(matches!(
            payload(None, Bytes::from_static(b" <Patient/>")),
            Payload::Fhir(crate::format::Format::Xml, _)
        ));
    }

    #[test]
    fn types_ids_and_preconditions_are_checked() {
        assert!(check_type_and_id("Patient", "a-1.b").is_ok());
        assert_eq!(
            check_type("Patint").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            check_type_and_id("Patient", "$op").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(parse_if_match("W/\"3\", \"4\"").unwrap(), [3, 4]);
        assert_eq!(
            parse_if_match("W/\"x\"").unwrap_err().status,
            StatusCode::PRECONDITION_FAILED
        );
        assert!(matches!(parse_if_none_match(" * "), Ok(IfNoneMatch::Any)));
        assert!(matches!(
            parse_if_none_match("W/\"7\""),
            Ok(IfNoneMatch::Version(7))
        ));
    }
}
