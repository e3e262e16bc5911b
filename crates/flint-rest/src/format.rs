//! Content negotiation (`_format`, `Accept`, `Content-Type`) and encoding of resources.

use crate::outcome::{FhirError, FhirResult};
use axum::http::StatusCode;
use serde_json::Value;

/// A FHIR wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/fhir+json`.
    Json,
    /// `application/fhir+xml`.
    Xml,
}

impl Format {
    /// The `Content-Type` of answers in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json;charset=utf-8",
            Format::Xml => "application/fhir+xml;charset=utf-8",
        }
    }

    /// Encodes a resource in this format.
    pub fn encode(self, v: &Value, pretty: bool) -> Vec<u8> {
        match self {
            Format::Json => flint_model::json::to_vec(v, pretty),
            Format::Xml => flint_model::xml::to_vec(v, pretty),
        }
    }

    /// Parses and validates a resource in this format.
    pub fn decode(self, bytes: &[u8]) -> FhirResult<Value> {
        Ok(match self {
            Format::Json => flint_model::json::parse_resource(bytes)?,
            Format::Xml => flint_model::xml::parse_resource(bytes)?,
        })
    }
}

/// The format a media type (without parameters) names, if it is a FHIR format.
pub fn media_type_format(mt: &str) -> Option<Format> {
    match mt.trim().to_ascii_lowercase().as_str() {
        "application/fhir+json" | "application/json" | "text/json" | "json" => Some(Format::Json),
        "application/fhir+xml" | "application/xml" | "text/xml" | "xml" => Some(Format::Xml),
        _ => None,
    }
}

/// What the client asked to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    /// A FHIR format.
    Fhir(Format),
    /// Any non-FHIR media type (only meaningful for Binary; others fall back to JSON).
    Other(String),
}

/// Negotiates the response format from `_format` (wins) and the `Accept` header.
pub fn negotiate(format_param: Option<&str>, accept: Option<&str>) -> FhirResult<Accept> {
    if let Some(f) = format_param {
        let f = f.split(';').next().unwrap_or("");
        return media_type_format(f).map(Accept::Fhir).ok_or_else(|| {
            FhirError::new(
                StatusCode::NOT_ACCEPTABLE,
                "not-supported",
                format!("Unsupported _format `{f}`: use json or xml."),
            )
        });
    }
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Accept::Fhir(Format::Json));
    };
    let mut ranges: Vec<(f32, usize, &str)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, part)| {
            let mut it = part.split(';');
            let mt = it.next()?.trim();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            (q > 0.0 && !mt.is_empty()).then_some((q, i, mt))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut other = None;
    for (_, _, mt) in &ranges {
        if let Some(f) = media_type_format(mt) {
            return Ok(Accept::Fhir(f));
        }
        match mt.to_ascii_lowercase().as_str() {
            "*/*" | "application/*" => return Ok(Accept::Fhir(Format::Json)),
            "text/*" => return Ok(Accept::Fhir(Format::Json)),
            m => {
                if other.is_none() {
                    other = Some(m.to_string());
                }
            }
        }
    }
    match other {
        Some(m) => Ok(Accept::Other(m)),
        None => Ok(Accept::Fhir(Format::Json)),
    }
}

/// The format of a request body from its `Content-Type`; without one, the first non-blank
/// byte decides (`<` is XML, anything else JSON). `Ok(None)` for non-FHIR media types.
pub fn request_format(content_type: Option<&str>, body: &[u8]) -> Option<Format> {
    match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some(ct) if !ct.is_empty() => media_type_format(ct),
        _ => match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Some(Format::Xml),
            _ => Some(Format::Json),
        },
    }
}

/// Applies the `_summary`/`_elements` parameters `subset` to `v`; `None` when they ask for
/// the whole resource (none given, `_summary=false`, empty `_elements`).
pub fn apply_subset(
    v: &serde_json::Value,
    subset: &[(String, String)],
) -> FhirResult<Option<serde_json::Value>> {
    use flint_model::subset::{Summary, elements, summary};
    let mut out: Option<serde_json::Value> = None;
    for (k, val) in subset {
        if k == "_summary" {
            let mode = match val.as_str() {
                "true" => Some(Summary::True),
                "text" => Some(Summary::Text),
                "data" => Some(Summary::Data),
                "false" => None,
                other => {
                    return Err(FhirError::invalid(format!(
                        "Invalid `_summary` value `{other}`: expected true, text, data or false."
                    ))
                    .at("_summary"));
                }
            };
            if let Some(m) = mode {
                out = Some(summary(out.as_ref().unwrap_or(v), m));
            }
        } else {
            let names: Vec<&str> = val
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if !names.is_empty() {
                out = Some(elements(out.as_ref().unwrap_or(v), &names));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_param_wins_over_accept() {
        assert_eq!(
            negotiate(Some("xml"), Some("application/fhir+json")).unwrap(),
            Accept::Fhir(Format::Xml)
        );
        assert_eq!(
            negotiate(None, Some("text/html;q=0.9, application/fhir+xml")).unwrap(),
            Accept::Fhir(Format::Xml)
        );
        assert_eq!(negotiate(None, None).unwrap(), Accept::Fhir(Format::Json));
        assert_eq!(
            negotiate(None, Some("text/plain")).unwrap(),
            Accept::Other("text/plain".into())
        );
        assert_eq!(
            negotiate(Some("html"), None).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
    }

    #[test]
    fn request_format_sniffs_without_content_type() {
        assert_eq!(request_format(None, b"  <Patient/>"), Some(Format::Xml));
        assert_eq!(request_format(None, b"{}"), Some(Format::Json));
        assert_eq!(request_format(Some("text/plain"), b"{}"), None);
        assert_eq!(
            request_format(Some("application/fhir+json; charset=utf-8"), b""),
            Some(Format::Json)
        );
    }
}
