//! The request and reply model shared by HTTP handlers and bundle entries.

use crate::format::Format;
use crate::outcome::{FhirError, FhirResult};
use bytes::Bytes;
use flint_db::T;
use serde_json::Value;

/// The `Prefer: return=` preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// No body.
    Minimal,
    /// The resource.
    Representation,
    /// An OperationOutcome.
    OperationOutcome,
}

/// The `Prefer: handling=` preference: what a search does with unknown or unsupported
/// parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    /// Ignore them, reporting them in an OperationOutcome entry (the default).
    #[default]
    Lenient,
    /// Refuse the search (400).
    Strict,
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Payload {
    /// No body.
    None,
    /// A parsed and validated FHIR resource.
    Resource(Value),
    /// A body in a FHIR format that is not (yet) parsed as a resource (PATCH documents).
    Fhir(Format, Bytes),
    /// Raw bytes of a non-FHIR media type (Binary content, JSON Patch).
    Raw(String, Bytes),
}

/// A FHIR request, independent of whether it came over HTTP or in a bundle entry.
#[derive(Debug, Clone)]
pub struct FhirRequest {
    /// HTTP method (upper case).
    pub method: String,
    /// Path segments after the context path.
    pub path: Vec<String>,
    /// Query parameters in order.
    pub query: Vec<(String, String)>,
    /// `If-Match`.
    pub if_match: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-None-Exist`.
    pub if_none_exist: Option<String>,
    /// `Prefer: return=`; `None` when absent.
    pub prefer_return: Option<Return>,
    /// `Prefer: handling=`: lenient unless `handling=strict` was sent.
    pub handling: Handling,
    /// The body.
    pub payload: Payload,
}

impl FhirRequest {
    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A stored resource version, kept as the stored canonical JSON bytes until it is rendered.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Canonical JSON bytes without version metadata.
    pub bytes: Bytes,
    /// The version's `t` (`meta.versionId`).
    pub t: T,
    /// The version's instant (`meta.lastUpdated`, ms since the epoch).
    pub instant_ms: i64,
}

impl Stored {
    /// The resource with its version metadata, as a tree.
    pub fn to_value(&self) -> FhirResult<Value> {
        let mut v: Value = serde_json::from_slice(&self.bytes).map_err(|e| {
            FhirError::from(flint_db::DbError::fault(format!(
                "stored resource is not JSON: {e}"
            )))
        })?;
        crate::resource::set_version_meta(&mut v, self.t, self.instant_ms);
        Ok(v)
    }

    /// Appends compact FHIR JSON with version metadata to `out`, spliced into the stored
    /// bytes when possible; `instants` remembers the last formatted instant.
    pub(crate) fn write_json(
        &self,
        out: &mut Vec<u8>,
        instants: &mut Option<(i64, String)>,
    ) -> FhirResult<()> {
        let instant = match instants {
            Some((ms, s)) if *ms == self.instant_ms => s,
            _ => {
                let s = crate::resource::format_instant(self.instant_ms);
                &instants.insert((self.instant_ms, s)).1
            }
        };
        if !crate::resource::splice_version_meta_into(out, &self.bytes, self.t, instant) {
            out.extend_from_slice(&flint_model::json::to_vec(&self.to_value()?, false));
        }
        Ok(())
    }

    /// Compact FHIR JSON with version metadata, spliced into the stored bytes when possible.
    pub fn to_json(&self) -> FhirResult<Vec<u8>> {
        match crate::resource::splice_version_meta(&self.bytes, self.t, self.instant_ms) {
            Some(b) => Ok(b),
            None => Ok(flint_model::json::to_vec(&self.to_value()?, false)),
        }
    }
}

/// A reply body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// A resource (or Bundle/OperationOutcome) to encode in the negotiated format.
    Resource(Value),
    /// A resource whose `_summary`/`_elements` may be applied (reads).
    Read(Value),
    /// A stored resource version (reads): streamed from its stored bytes where possible.
    Stored(Stored),
    /// Raw bytes with a content type (Binary).
    Raw(String, Bytes),
    /// A Bundle whose entries hold stored resource versions: rendered as compact JSON by
    /// splicing the stored bytes, parsed only for other formats.
    Bundle(StreamedBundle),
}

/// A Bundle with stored entries (search results).
#[derive(Debug, Clone)]
pub struct StreamedBundle {
    /// The Bundle without `entry`.
    pub head: Value,
    /// The entries in order.
    pub entries: Vec<StreamedEntry>,
}

/// One entry of a [`StreamedBundle`].
#[derive(Debug, Clone)]
pub enum StreamedEntry {
    /// `fullUrl`, a stored resource and its `search.mode`.
    Stored(String, Stored, &'static str),
    /// An entry built as a tree.
    Value(Value),
}

impl StreamedEntry {
    fn to_value(&self) -> FhirResult<Value> {
        Ok(match self {
            StreamedEntry::Stored(url, s, mode) => serde_json::json!({
                "fullUrl": url, "resource": s.to_value()?, "search": {"mode": mode}
            }),
            StreamedEntry::Value(v) => v.clone(),
        })
    }
}

impl StreamedBundle {
    /// The whole Bundle as a tree.
    pub fn to_value(&self) -> FhirResult<Value> {
        let mut b = self.head.clone();
        if !self.entries.is_empty() {
            let entries = self
                .entries
                .iter()
                .map(StreamedEntry::to_value)
                .collect::<FhirResult<Vec<_>>>()?;
            b["entry"] = Value::Array(entries);
        }
        Ok(b)
    }

    /// Compact FHIR JSON, splicing version metadata into the stored bytes.
    pub fn to_json(&self) -> FhirResult<Vec<u8>> {
        let head = flint_model::json::to_vec(&self.head, false);
        if self.entries.is_empty() {
            return Ok(head);
        }
        let mut out = Vec::with_capacity(head.len() + self.entries.len() * 1024);
        let mut instants = None;
        out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
        out.extend_from_slice(b",\"entry\":[");
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match e {
                StreamedEntry::Stored(url, s, mode) => {
                    out.extend_from_slice(b"{\"fullUrl\":");
                    serde_json::to_writer(&mut out, url).map_err(|e| {
                        FhirError::from(flint_db::DbError::fault(format!("writing JSON: {e}")))
                    })?;
                    out.extend_from_slice(b",\"resource\":");
                    s.write_json(&mut out, &mut instants)?;
                    out.extend_from_slice(b",\"search\":{\"mode\":\"");
                    out.extend_from_slice(mode.as_bytes());
                    out.extend_from_slice(b"\"}}");
                }
                StreamedEntry::Value(v) => {
                    out.extend_from_slice(&flint_model::json::to_vec(v, false));
                }
            }
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }
}

/// A reply, independent of transport.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `ETag: W/"t"`.
    pub etag: Option<T>,
    /// `Last-Modified` (ms since the epoch).
    pub last_modified: Option<i64>,
    /// `Location`.
    pub location: Option<String>,
    /// Other headers (`Content-Location`, `X-Progress`, ...), lower-case names.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

impl Reply {
    /// A reply with a status and body only.
    pub fn new(status: u16, body: Body) -> Self {
        Reply {
            status,
            etag: None,
            last_modified: None,
            location: None,
            headers: Vec::new(),
            body,
        }
    }

    /// The OperationOutcome reply of an error.
    pub fn error(e: &FhirError) -> Self {
        let mut r = Reply::new(e.status.as_u16(), Body::Resource(e.to_outcome()));
        if let Some((t, ms)) = e.version {
            r.etag = Some(t);
            r.last_modified = Some(ms);
        }
        r
    }

    /// A reply from a result.
    pub fn from_result(r: FhirResult<Reply>) -> Self {
        r.unwrap_or_else(|e| Reply::error(&e))
    }
}
