//! The CapabilityStatement (`GET [base]/metadata`): states exactly what this build supports.
//!
//! The statement depends on the settings and the search parameter registry, so it is built
//! once when the [`AppState`](crate::state::AppState) is created, dated with that moment, and
//! kept as compact JSON and XML bytes; and on the profiles stored (each type's
//! `supportedProfile`, [`Capabilities::with_profiles`]), so the state keeps the statement
//! for the current ones too. Its one per-request part, `implementation.url` (the base
//! URL the request resolves to), is spliced into the bytes around a placeholder.

use crate::api::{Body, Reply};
use crate::config::RestConfig;
use crate::format::{Format, apply_subset};
use crate::outcome::{FhirError, FhirResult};
use bytes::Bytes;
use serde_json::{Value, json};

/// The interactions every resource type supports.
const TYPE_INTERACTIONS: [&str; 9] = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// Common parameters every type supports, documented once.
const COMMON_PARAMS: [(&str, &str, &str); 9] = [
    (
        "_count",
        "number",
        "Page size (default and maximum configurable).",
    ),
    (
        "_sort",
        "string",
        "Any sortable parameter, several keys, `-` for descending.",
    ),
    ("_include", "special", "With `:iterate` and `*`."),
    ("_revinclude", "special", "With `:iterate` and `*`."),
    ("_summary", "token", "true, text, data, count, false."),
    ("_elements", "string", "Top-level elements to return."),
    (
        "_total",
        "token",
        "none, estimate or accurate (always accurate).",
    ),
    ("_has", "special", "Reverse chaining, nested."),
    ("_type", "special", "System search only."),
];

/// The system operations (name, OperationDefinition), as the operations registry has them (a
/// test of the operations module checks that the two agree). `cql` is listed only when
/// [`RestConfig::enable_operation_cql`] is on ([`operation_enabled`]).
pub(crate) const SYSTEM_OPERATIONS: [(&str, &str); 6] = [
    (
        "versions",
        "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions",
    ),
    (
        "cql",
        "http://hl7.org/fhir/uv/cpg/OperationDefinition/cpg-cql",
    ),
    (
        "totals",
        "https://samply.github.io/blaze/fhir/OperationDefinition/totals",
    ),
    (
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    ),
    (
        "compact",
        "https://samply.github.io/blaze/fhir/OperationDefinition/compact",
    ),
    (
        "graphql",
        "http://hl7.org/fhir/OperationDefinition/Resource-graphql",
    ),
];

/// The operations a setting turns on, with the environment variable that does.
const SWITCHED_OPERATIONS: [(&str, &str); 9] = [
    ("cql", "ENABLE_OPERATION_CQL"),
    ("graph", "ENABLE_OPERATION_GRAPH"),
    ("compact", "ENABLE_ADMIN_API"),
    ("purge", "ENABLE_OPERATION_PATIENT_PURGE"),
    ("expand", "ENABLE_TERMINOLOGY_SERVICE"),
    ("validate-code", "ENABLE_TERMINOLOGY_SERVICE"),
    ("lookup", "ENABLE_TERMINOLOGY_SERVICE"),
    ("subsumes", "ENABLE_TERMINOLOGY_SERVICE"),
    ("translate", "ENABLE_TERMINOLOGY_SERVICE"),
];

/// The environment variable that turns operation `name` on, if a setting switches it.
pub(crate) fn operation_switch(name: &str) -> Option<&'static str> {
    SWITCHED_OPERATIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, var)| *var)
}

/// Whether operation `name` is offered with `cfg` (`$cql` and `$graph` only when enabled).
pub(crate) fn operation_enabled(name: &str, cfg: &RestConfig) -> bool {
    match name {
        "cql" => cfg.enable_operation_cql,
        "graph" => cfg.enable_operation_graph,
        "compact" => cfg.enable_admin_api,
        "purge" => cfg.enable_operation_patient_purge,
        "expand" | "validate-code" | "lookup" | "subsumes" | "translate" => {
            cfg.enable_terminology_service
        }
        _ => true,
    }
}

/// The type and instance operations (type, name, OperationDefinition), as the operations
/// registry has them (a test of the operations module checks that the two agree).
pub(crate) const TYPE_OPERATIONS: [(&str, &str, &str); 12] = [
    (
        "Measure",
        "evaluate-measure",
        "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
    ),
    (
        "Library",
        "evaluate",
        "http://hl7.org/fhir/uv/cpg/OperationDefinition/cpg-library-evaluate",
    ),
    (
        "Patient",
        "everything",
        "http://hl7.org/fhir/OperationDefinition/Patient-everything",
    ),
    (
        "Patient",
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    ),
    (
        "Group",
        "export",
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    ),
    (
        "Patient",
        "purge",
        "https://samply.github.io/blaze/fhir/OperationDefinition/Patient-purge",
    ),
    (
        "ValueSet",
        "expand",
        "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
    ),
    (
        "ValueSet",
        "validate-code",
        "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
    ),
    (
        "CodeSystem",
        "validate-code",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code",
    ),
    (
        "CodeSystem",
        "lookup",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    ),
    (
        "CodeSystem",
        "subsumes",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes",
    ),
    (
        "ConceptMap",
        "translate",
        "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate",
    ),
];

/// The instance operations of every resource type (name, OperationDefinition), as the
/// operations registry has them; `graph` is listed only when
/// [`RestConfig::enable_operation_graph`] is on ([`operation_enabled`]).
pub(crate) const EVERY_TYPE_OPERATIONS: [(&str, &str); 2] = [
    (
        "graph",
        "http://hl7.org/fhir/OperationDefinition/Resource-graph",
    ),
    (
        "graphql",
        "http://hl7.org/fhir/OperationDefinition/Resource-graphql",
    ),
];

/// Stands for the request's base URL in the statement built at startup.
const BASE_PLACEHOLDER: &str = "urn:flint:capability-statement:base-url";

/// Builds the CapabilityStatement of `cfg` and `registry`, dated `date`, with `base` as
/// `implementation.url`.
fn build(
    cfg: &RestConfig,
    registry: &flint_search::Registry,
    date: &str,
    base: &str,
) -> FhirResult<Value> {
    let mut policy = vec!["literal", "local"];
    if cfg.enforce_referential_integrity {
        policy.push("enforced");
    }
    let resources: Vec<Value> = flint_model::defs::definitions()
        .resource_types()
        .iter()
        .map(|ty| {
            let params: Vec<Value> = registry
                .params_of(ty)
                .map(|p| {
                    json!({
                        "name": p.code,
                        "definition": p.url,
                        "type": p.kind.as_str(),
                    })
                })
                .chain(COMMON_PARAMS.iter().map(|(n, t, d)| {
                    json!({"name": n, "type": t, "documentation": d})
                }))
                .collect();
            let includes: Vec<String> = registry
                .params_of(ty)
                .filter(|p| p.kind == flint_search::ParamType::Reference)
                .map(|p| format!("{ty}:{}", p.code))
                .chain(std::iter::once("*".to_string()))
                .collect();
            let revincludes: Vec<String> = flint_model::defs::definitions()
                .resource_types()
                .iter()
                .flat_map(|src| {
                    registry
                        .params_of(src)
                        .filter(|p| {
                            p.kind == flint_search::ParamType::Reference
                                && (p.target.is_empty() || p.target.iter().any(|t| t == ty))
                        })
                        .map(move |p| format!("{src}:{}", p.code))
                })
                .collect();
            let operations: Vec<Value> = TYPE_OPERATIONS
                .iter()
                .filter(|(t, _, _)| t == ty)
                .map(|(_, name, definition)| (*name, *definition))
                .chain(EVERY_TYPE_OPERATIONS)
                .filter(|(name, _)| operation_enabled(name, cfg))
                .map(|(name, definition)| json!({"name": name, "definition": definition}))
                .collect();
            let mut entry = json!({
                "type": ty,
                "interaction": TYPE_INTERACTIONS.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": if cfg.allow_multiple_delete { "multiple" } else { "single" },
                "referencePolicy": policy,
                "searchInclude": includes,
                "searchRevInclude": revincludes,
                "searchParam": params,
            });
            if !operations.is_empty() {
                entry["operation"] = json!(operations);
            }
            entry
        })
        .collect();
    let unsupported: Vec<String> = registry
        .unsupported()
        .iter()
        .map(|u| format!("`{}` ({})", u.code, u.reason))
        .collect();
    let v = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "The Flint developers",
        "kind": "instance",
        "software": {"name": "Flint", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": format!("Flint FHIR server ({} storage)", cfg.storage),
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [
                {"code": "transaction"},
                {"code": "batch"},
                {"code": "history-system"},
                {"code": "search-system"},
            ],
            "operation": SYSTEM_OPERATIONS
                .iter()
                .filter(|(name, _)| operation_enabled(name, cfg))
                .map(|(name, definition)| json!({"name": name, "definition": definition}))
                .collect::<Vec<_>>(),
            "documentation": format!(
                "Search: all R4 parameters of the official definitions with every modifier and \
                 prefix. Token `:in`/`:not-in` use ValueSets stored here (expansion, or \
                 compose.include with concepts, is-a/descendent-of filters and whole systems; \
                 exclude is not applied), token `:above`/`:below` the concept hierarchy of a \
                 stored CodeSystem, `_list` stored Lists, reference `:above`/`:below` the \
                 hierarchy of a circular reference parameter (`partof`), `_filter` the FHIR \
                 filter language. Not supported: `_text`, `_content`, `_query`, \
                 `_contained=true|both`. \
                 `_total` is always accurate. Unsupported parameters: {}. Compartment search: \
                 GET [base]/[Compartment]/[id]/[type] for every R4 compartment. Conditional \
                 references in transactions are resolved before the transaction.",
                unsupported.join(", ")
            ),
            "compartment": [
                "http://hl7.org/fhir/CompartmentDefinition/patient",
                "http://hl7.org/fhir/CompartmentDefinition/encounter",
                "http://hl7.org/fhir/CompartmentDefinition/relatedPerson",
                "http://hl7.org/fhir/CompartmentDefinition/practitioner",
                "http://hl7.org/fhir/CompartmentDefinition/device",
            ],
        }],
    });
    Ok(flint_model::validate::resource(v)?)
}

/// Compact bytes of one format, split around the base URL placeholder.
#[derive(Debug, Clone)]
struct Spliced {
    before: Bytes,
    after: Bytes,
}

impl Spliced {
    /// Splits `bytes` at the first occurrence of the placeholder: `implementation` comes
    /// before `rest`, the only part holding registry data (custom search parameters), in both
    /// formats, so no definition URL can come first.
    fn new(bytes: Vec<u8>, what: &str) -> FhirResult<Spliced> {
        let p = BASE_PLACEHOLDER.as_bytes();
        let at = bytes.windows(p.len()).position(|w| w == p).ok_or_else(|| {
            FhirError::from(flint_db::DbError::fault(format!(
                "the {what} CapabilityStatement lost its base URL placeholder"
            )))
        })?;
        let bytes = Bytes::from(bytes);
        Ok(Spliced {
            before: bytes.slice(..at),
            after: bytes.slice(at + p.len()..),
        })
    }

    /// The bytes with `escaped` (the base URL escaped for the format) in place.
    fn with(&self, escaped: &str) -> Bytes {
        let mut out = Vec::with_capacity(self.before.len() + escaped.len() + self.after.len());
        out.extend_from_slice(&self.before);
        out.extend_from_slice(escaped.as_bytes());
        out.extend_from_slice(&self.after);
        Bytes::from(out)
    }
}

/// `s` escaped as the content of a JSON string.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// `s` escaped as an XML attribute value, as `flint_model::xml` writes attributes.
fn xml_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// Sets `implementation.url` of a statement (or of a subset that kept it) to `base`.
fn set_base(v: &mut Value, base: &str) {
    if let Some(url) = v.pointer_mut("/implementation/url") {
        *url = Value::String(base.to_string());
    }
}

/// The CapabilityStatement, built once at startup and kept serialized.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The statement with the placeholder as `implementation.url`.
    value: Value,
    /// Its `date`.
    date: String,
    /// Compact JSON around the placeholder.
    json: Spliced,
    /// Compact XML around the placeholder.
    xml: Spliced,
    /// The configured base URL (with the context path).
    default_base: String,
    /// Compact JSON for the configured base URL.
    default_json: Bytes,
    /// Compact XML for the configured base URL.
    default_xml: Bytes,
    /// Hex SHA-256 of the placeholder JSON: the content every entity tag derives from.
    digest: String,
}

/// One representation of the statement: its bytes and its entity tag.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The encoded statement (or subset).
    pub bytes: Bytes,
    /// The weak entity tag (`W/"…"`) of this content.
    pub etag: String,
}

impl Capabilities {
    /// Builds the statement of `cfg` and `registry`, dated `started_ms` (ms since the epoch).
    pub fn build(
        cfg: &RestConfig,
        registry: &flint_search::Registry,
        started_ms: i64,
    ) -> FhirResult<Capabilities> {
        let date = crate::resource::format_instant(started_ms);
        let value = build(cfg, registry, &date, BASE_PLACEHOLDER)?;
        let default_base = format!("{}{}", cfg.base_url, cfg.context_path);
        Capabilities::from_value(value, date, default_base)
    }

    /// The statement with `rest.resource.supportedProfile` of each type in `profiles` (type
    /// to canonical URLs, `url|version` when versioned), in place of any this one lists.
    pub fn with_profiles(
        &self,
        profiles: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> FhirResult<Capabilities> {
        let mut value = self.value.clone();
        if let Some(resources) = value
            .pointer_mut("/rest/0/resource")
            .and_then(Value::as_array_mut)
        {
            for r in resources {
                let listed = r["type"].as_str().and_then(|t| profiles.get(t));
                match (listed, r.as_object_mut()) {
                    (Some(ps), Some(o)) if !ps.is_empty() => {
                        o.insert("supportedProfile".into(), json!(ps));
                    }
                    (_, Some(o)) => {
                        o.remove("supportedProfile");
                    }
                    _ => {}
                }
            }
        }
        let value = flint_model::validate::resource(value)?;
        Capabilities::from_value(value, self.date.clone(), self.default_base.clone())
    }

    /// The serialized forms of the statement `value` (with the base URL placeholder).
    fn from_value(value: Value, date: String, default_base: String) -> FhirResult<Capabilities> {
        let json = Spliced::new(Format::Json.encode(&value, false), "JSON")?;
        let xml = Spliced::new(Format::Xml.encode(&value, false), "XML")?;
        let digest =
            flint_db::ContentHash::of(&[&json.before[..], &json.after[..]].concat()).to_hex();
        Ok(Capabilities {
            default_json: json.with(&json_escaped(&default_base)),
            default_xml: xml.with(&xml_escaped(&default_base)),
            value,
            date,
            json,
            xml,
            default_base,
            digest,
        })
    }

    /// The statement's `date`: when it was built.
    pub fn date(&self) -> &str {
        &self.date
    }

    /// The statement for base URL `base` as a tree.
    pub fn statement(&self, base: &str) -> Value {
        let mut v = self.value.clone();
        set_base(&mut v, base);
        v
    }

    /// `GET [base]/metadata` as a bundle entry answers it: the statement for `base`, to be
    /// subsetted like a read (over HTTP, [`crate::http`] serves the bytes built at startup).
    pub fn reply(&self, base: &str) -> Reply {
        Reply::new(200, Body::Read(self.statement(base)))
    }

    /// The weak entity tag of the statement for `base` under the `_summary`/`_elements`
    /// parameters `subset` (empty for the whole statement): a hash of the statement's content,
    /// the base URL and the subset, so stable for the process lifetime.
    pub fn etag(&self, base: &str, subset: &[(String, String)]) -> String {
        let mut key = format!("{}\n{base}", self.digest);
        for (k, v) in subset {
            key.push_str(&format!("\n{k}={v}"));
        }
        let hex = flint_db::ContentHash::of(key.as_bytes()).to_hex();
        format!("W/\"{}\"", &hex[..32])
    }

    /// The statement for `base` in `format`, subsetted by the request's `_summary`/`_elements`
    /// parameters `subset`; 400 for an invalid `_summary`.
    pub fn render(
        &self,
        base: &str,
        format: Format,
        pretty: bool,
        subset: &[(String, String)],
    ) -> FhirResult<Rendered> {
        if let Some(mut v) = apply_subset(&self.value, subset)? {
            set_base(&mut v, base);
            return Ok(Rendered {
                bytes: Bytes::from(format.encode(&v, pretty)),
                etag: self.etag(base, subset),
            });
        }
        let etag = self.etag(base, &[]);
        let bytes = match (format, pretty) {
            (_, true) => Bytes::from(format.encode(&self.statement(base), true)),
            (Format::Json, false) if base == self.default_base => self.default_json.clone(),
            (Format::Xml, false) if base == self.default_base => self.default_xml.clone(),
            (Format::Json, false) => self.json.with(&json_escaped(base)),
            (Format::Xml, false) => self.xml.with(&xml_escaped(base)),
        };
        Ok(Rendered { bytes, etag })
    }
}

/// Whether an `If-None-Match` header value matches `etag`: `*`, or a comma-separated list of
/// entity tags one of which equals `etag` by weak comparison (`W/` prefixes ignored).
pub fn if_none_match(header: &str, etag: &str) -> bool {
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        if let Some(r) = rest.strip_prefix('*') {
            if r.trim_start().is_empty() || r.trim_start().starts_with(',') {
                return true;
            }
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some(end) = tag.strip_prefix('"').and_then(|t| t.find('"')) else {
            // Not an entity tag: the header is malformed, so it matches nothing.
            return false;
        };
        if tag[..end + 2] == *ours {
            return true;
        }
        rest = &tag[end + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Capabilities {
        let cfg = RestConfig::default();
        Capabilities::build(&cfg, &flint_search::Registry::r4(), 1_700_000_000_123).unwrap()
    }

    #[test]
    fn spliced_bytes_equal_encoding_the_tree() {
        let c = caps();
        assert_eq!(c.date(), "2023-11-14T22:13:20.123Z");
        for base in ["http://localhost:8080/fhir", "https://proxy.example/r4"] {
            let v = c.statement(base);
            assert_eq!(v["implementation"]["url"], base);
            for f in [Format::Json, Format::Xml] {
                let r = c.render(base, f, false, &[]).unwrap();
                assert_eq!(&r.bytes[..], &f.encode(&v, false)[..], "{f:?} {base}");
            }
        }
    }

    #[test]
    fn bases_needing_escapes_splice_into_valid_documents() {
        let c = caps();
        let base = r#"http://a"<b>&c\d/fhir"#;
        let j = c.render(base, Format::Json, false, &[]).unwrap();
        let x = c.render(base, Format::Xml, false, &[]).unwrap();
        let jv = flint_model::json::parse_resource(&j.bytes).unwrap();
        let xv = flint_model::xml::parse_resource(&x.bytes).unwrap();
        assert_eq!(jv["implementation"]["url"], base);
        assert_eq!(xv["implementation"]["url"], base);
    }

    #[test]
    fn etags_depend_on_base_and_subset() {
        let c = caps();
        let a = c.etag("http://a/fhir", &[]);
        assert!(a.starts_with("W/\"") && a.ends_with('"'), "{a}");
        assert_eq!(a, c.etag("http://a/fhir", &[]));
        assert_ne!(a, c.etag("http://b/fhir", &[]));
        let sub = [("_summary".to_string(), "true".to_string())];
        assert_ne!(a, c.etag("http://a/fhir", &sub));
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_lists() {
        let e = "W/\"abc\"";
        assert!(if_none_match("W/\"abc\"", e));
        assert!(if_none_match("\"abc\"", e));
        assert!(if_none_match("*", e));
        assert!(if_none_match(" \"x\", W/\"y\" ,W/\"abc\"", e));
        assert!(if_none_match("\"a,b\", \"abc\"", e));
        assert!(!if_none_match("\"x\", W/\"y\"", e));
        assert!(!if_none_match("W/\"abcd\"", e));
        assert!(!if_none_match("abc", e));
        assert!(!if_none_match("", e));
    }
}
