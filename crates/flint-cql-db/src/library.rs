//! What `$evaluate-measure`, `$cql` and `Library/$evaluate` share: stored Libraries found by
//! a search (`url`, `version`, `name`, `_id`), their content compiled (the
//! `application/elm+json` attachment when there is one, else the `text/cql` one parsed;
//! compiled once per Library version: the cache is keyed by the stored version's content
//! hash, so it never goes stale), includes resolved to any depth (FHIRHelpers 4.0.1 built
//! in, others stored Libraries by `name` and `version`; a cycle or more than
//! [`MAX_INCLUDE_DEPTH`] levels is an error), `Parameters` values converted to CQL values,
//! and CQL errors mapped to error kinds.

use base64::Engine as _;
use flint_cql::{Library, Value};
use flint_db::{Db, DbError, ErrorKind};
use flint_measure::{MeasureError, NamedParam};
use flint_search::{Engine as Search, parse_query};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// An `Unprocessable` (422) error.
pub(crate) fn unprocessable(msg: impl Into<String>) -> MeasureError {
    DbError::new(ErrorKind::Unprocessable, msg)
}

/// A CQL evaluation error as a measure error: faults of the data keep their 503, everything
/// else (a broken library, a type error) is the library's problem (422).
pub(crate) fn cql_error(library: &str, e: flint_cql::Error) -> MeasureError {
    match e {
        flint_cql::Error::Data(m) => DbError::unavailable(m),
        e => unprocessable(format!("CQL library `{library}`: {e}")),
    }
}

/// Type-checks `resolved` (the library and, to any depth, its includes; see
/// [`flint_cql::check`]): a semantic error (an unknown identifier or function, no matching
/// overload, a type mismatch) is an error of `kind` naming the library (name and version),
/// the line and the column; when there are several, the first and how many more.
pub(crate) fn check(resolved: &flint_cql::Resolved, kind: ErrorKind) -> Result<(), MeasureError> {
    let errors = flint_cql::check::check_resolved(resolved);
    let Some(first) = errors.first() else {
        return Ok(());
    };
    Err(DbError::new(
        kind,
        semantic_message(first, errors.len() - 1),
    ))
}

/// The message of semantic error `e` with `more` others after it.
pub(crate) fn semantic_message(e: &flint_cql::SemanticError, more: usize) -> String {
    let what = match &e.library {
        Some(l) => format!("CQL library `{l}`"),
        None => "The CQL expression".to_string(),
    };
    let at = if e.line > 0 {
        format!(" at line {}, column {}", e.line, e.column)
    } else {
        String::new()
    };
    let more = match more {
        0 => String::new(),
        1 => " (and 1 more error)".to_string(),
        n => format!(" (and {n} more errors)"),
    };
    format!("{what}: error{at}: {}{more}", e.message)
}

/// FHIRHelpers 4.0.1, parsed once.
pub(crate) fn fhir_helpers() -> Result<&'static Library, MeasureError> {
    static LIB: OnceLock<Result<Library, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        flint_cql::parse_library(flint_model::defs::FHIR_HELPERS_4_0_1).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| unprocessable(format!("FHIRHelpers 4.0.1 does not parse: {e}")))
}

/// A stored Library: the content hash of its current version and its JSON.
pub(crate) struct Stored {
    /// The content hash of the version (the compile cache's key).
    pub hash: flint_db::ContentHash,
    /// The resource.
    pub json: serde_json::Value,
}

impl std::ops::Index<&str> for Stored {
    type Output = serde_json::Value;

    fn index(&self, key: &str) -> &serde_json::Value {
        &self.json[key]
    }
}

/// The current stored Library found by the search `params` (e.g. `url`, `version`), if
/// any; of several, the first by id.
pub(crate) async fn library_resource(
    search: &Search,
    db: &Db,
    params: &[(String, String)],
) -> Result<Option<Stored>, MeasureError> {
    let mut params = params.to_vec();
    params.push(("_sort".into(), "_id".into()));
    let query = parse_query(search.registry(), "Library", &params)
        .map_err(|e| unprocessable(e.to_string()))?;
    let found = search
        .execute(db, &query)
        .map_err(|e| DbError::unavailable(e.to_string()))?;
    let Some(h) = found.first() else {
        return Ok(None);
    };
    let bytes = db.pull(h).await?;
    let json = serde_json::from_slice(&bytes)
        .map_err(|e| DbError::fault(format!("stored Library does not parse: {e}")))?;
    Ok(Some(Stored { hash: h.hash, json }))
}

/// How deep includes of includes may go.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// Compiled libraries by the content hash of the stored Library version.
fn compiled_cache() -> &'static flint_db::cache::Cache<flint_db::ContentHash, Arc<Library>> {
    static CACHE: OnceLock<flint_db::cache::Cache<flint_db::ContentHash, Arc<Library>>> =
        OnceLock::new();
    CACHE.get_or_init(|| flint_db::cache::new(1024))
}

/// The content attachment of `library` with content type `ct` (base64 `data` decoded).
fn attachment(
    library: &serde_json::Value,
    ct: &str,
    name: &str,
) -> Result<Option<Vec<u8>>, MeasureError> {
    let content = library["content"].as_array().into_iter().flatten();
    for c in content {
        let this = c["contentType"].as_str().unwrap_or("");
        if this.split(';').next().map(str::trim) != Some(ct) {
            continue;
        }
        let data = c["data"].as_str().ok_or_else(|| {
            unprocessable(format!("Library `{name}` has a {ct} content without data"))
        })?;
        return base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(Some)
            .map_err(|e| unprocessable(format!("Library `{name}`: content is not base64: {e}")));
    }
    Ok(None)
}

/// The compiled form of stored Library `name`: its ELM (`application/elm+json`) when it has
/// one, else its CQL (`text/cql`) parsed; compiled once per version. A library that does
/// not compile is an error of `kind` naming the position (CQL line and column, ELM locator).
pub(crate) fn compile(
    stored: &Stored,
    name: &str,
    kind: ErrorKind,
) -> Result<Arc<Library>, MeasureError> {
    if let Some(lib) = compiled_cache().get(&stored.hash) {
        return Ok(lib);
    }
    let lib = match attachment(&stored.json, "application/elm+json", name)? {
        Some(elm) => flint_cql::elm::library_from_elm_bytes(&elm)
            .map_err(|e| DbError::new(kind, format!("ELM library `{name}`: {e}")))?,
        None => parse(&cql_source(&stored.json, name)?, name, kind)?,
    };
    let lib = Arc::new(lib);
    compiled_cache().insert(stored.hash, lib.clone());
    Ok(lib)
}

/// The search of the Library with canonical `url|version` (or `url`).
pub(crate) fn canonical_query(canonical: &str) -> Vec<(String, String)> {
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) if !v.is_empty() => (u, Some(v)),
        Some((u, _)) => (u, None),
        None => (canonical, None),
    };
    let mut q = vec![("url".to_string(), url.to_string())];
    if let Some(v) = version {
        q.push(("version".into(), v.into()));
    }
    q
}

/// The CQL source of a stored Library (`content` with `contentType` `text/cql`).
pub(crate) fn cql_source(library: &serde_json::Value, name: &str) -> Result<String, MeasureError> {
    let Some(bytes) = attachment(library, "text/cql", name)? else {
        return Err(unprocessable(format!(
            "Library `{name}` has neither application/elm+json nor text/cql content"
        )));
    };
    String::from_utf8(bytes)
        .map_err(|_| unprocessable(format!("Library `{name}`: CQL is not UTF-8")))
}

/// Parses the CQL of Library `name`; a syntax error is an error of `kind` naming its line
/// and column.
pub(crate) fn parse(src: &str, name: &str, kind: ErrorKind) -> Result<Library, MeasureError> {
    flint_cql::parse_library(src)
        .map_err(|e| DbError::new(kind, format!("CQL library `{name}`: {e}")))
}

/// `lib` (named `library` in messages) with its includes resolved, and theirs, by their
/// aliases: FHIRHelpers built in, the others stored Libraries by `name` (and `version`),
/// whose compile errors are errors of `kind`. An include cycle or includes deeper than
/// [`MAX_INCLUDE_DEPTH`] are errors of `kind`.
pub(crate) async fn resolve(
    search: &Search,
    db: &Db,
    lib: Arc<Library>,
    library: &str,
    kind: ErrorKind,
) -> Result<Arc<flint_cql::Resolved>, MeasureError> {
    resolve_at(
        search,
        db,
        lib,
        library,
        kind,
        &mut vec![library.to_string()],
    )
    .await
}

fn resolve_at<'f>(
    search: &'f Search,
    db: &'f Db,
    lib: Arc<Library>,
    library: &'f str,
    kind: ErrorKind,
    path: &'f mut Vec<String>,
) -> std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Arc<flint_cql::Resolved>, MeasureError>>
            + Send
            + 'f,
    >,
> {
    Box::pin(async move {
        let mut includes = Vec::new();
        for (name, version, alias) in &lib.includes {
            if name == "FHIRHelpers" {
                includes.push((alias.clone(), fhir_helpers_resolved()?));
                continue;
            }
            let key = match version {
                Some(v) => format!("{name}|{v}"),
                None => name.clone(),
            };
            if path.contains(&key) || path.iter().any(|p| p.split('|').next() == Some(name)) {
                return Err(DbError::new(
                    kind,
                    format!(
                        "Library `{library}`: the include of `{key}` is a cycle ({} → {key})",
                        path.join(" → ")
                    ),
                ));
            }
            if path.len() > MAX_INCLUDE_DEPTH {
                return Err(DbError::new(
                    kind,
                    format!(
                        "Library `{library}`: includes nest deeper than {MAX_INCLUDE_DEPTH} levels"
                    ),
                ));
            }
            let mut q = vec![("name".to_string(), name.clone())];
            if let Some(v) = version {
                q.push(("version".into(), v.clone()));
            }
            let stored = library_resource(search, db, &q).await?.ok_or_else(|| {
                unprocessable(format!(
                    "Library `{library}` includes `{key}`, which is not stored"
                ))
            })?;
            let inc = compile(&stored, name, kind)?;
            path.push(key);
            let resolved = resolve_at(search, db, inc, library, kind, path).await;
            path.pop();
            includes.push((alias.clone(), resolved?));
        }
        Ok(Arc::new(flint_cql::Resolved {
            library: lib,
            includes,
        }))
    })
}

/// FHIRHelpers 4.0.1 as a resolved library (it includes nothing).
pub(crate) fn fhir_helpers_resolved() -> Result<Arc<flint_cql::Resolved>, MeasureError> {
    static LIB: OnceLock<Arc<flint_cql::Resolved>> = OnceLock::new();
    if let Some(r) = LIB.get() {
        return Ok(r.clone());
    }
    let r = Arc::new(flint_cql::Resolved {
        library: Arc::new(fhir_helpers()?.clone()),
        includes: Vec::new(),
    });
    Ok(LIB.get_or_init(|| r).clone())
}

/// The CQL values of named parameters (a name given more than once is a list).
pub(crate) fn parameter_values(
    named: &[NamedParam],
) -> Result<HashMap<String, Value>, MeasureError> {
    let mut parameters = HashMap::new();
    for p in named {
        let mut values = Vec::new();
        for v in &p.values {
            values.push(param_value(&p.name, &v.fhir_type, &v.value)?);
        }
        let value = match values.len() {
            1 => values.remove(0),
            _ => Value::List(values),
        };
        parameters.insert(p.name.clone(), value);
    }
    Ok(parameters)
}

/// A parameter value of a POST `Parameters` entry as a CQL value: boolean, integer,
/// decimal, string-like, date/dateTime/instant, and the complex types FHIRHelpers converts
/// (Quantity, Coding, CodeableConcept, Period, Range, Ratio).
pub(crate) fn param_value(
    name: &str,
    ty: &str,
    v: &serde_json::Value,
) -> Result<Value, MeasureError> {
    let bad = || unprocessable(format!("parameter `{name}`: unsupported {ty} value {v}"));
    Ok(match (ty, v) {
        ("boolean", serde_json::Value::Bool(b)) => Value::Bool(*b),
        ("integer" | "positiveInt" | "unsignedInt", n) => Value::Int(
            n.as_i64()
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(bad)?,
        ),
        ("decimal", n @ serde_json::Value::Number(_)) => {
            flint_cql::evaluate_expression(&n.to_string()).map_err(|_| bad())?
        }
        (
            "string" | "code" | "uri" | "id" | "url" | "canonical" | "markdown",
            serde_json::Value::String(s),
        ) => Value::Str(s.clone()),
        ("date" | "dateTime" | "instant", serde_json::Value::String(s))
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-:.+".contains(c)) =>
        {
            flint_cql::evaluate_expression(&format!("@{s}")).map_err(|_| bad())?
        }
        ("time", serde_json::Value::String(s))
            if s.chars().all(|c| c.is_ascii_digit() || ":.".contains(c)) =>
        {
            flint_cql::evaluate_expression(&format!("@T{s}")).map_err(|_| bad())?
        }
        (
            "Quantity" | "Age" | "Duration" | "Distance" | "Count" | "Coding" | "CodeableConcept"
            | "Period" | "Range" | "Ratio",
            serde_json::Value::Object(_),
        ) => {
            let ty: &'static str = match ty {
                "Quantity" => "Quantity",
                "Age" => "Age",
                "Duration" => "Duration",
                "Distance" => "Distance",
                "Count" => "Count",
                "Coding" => "Coding",
                "CodeableConcept" => "CodeableConcept",
                "Period" => "Period",
                "Range" => "Range",
                _ => "Ratio",
            };
            let f = flint_cql::fhir::FhirValue::new(Arc::new(v.clone()), ty);
            flint_cql::fhir::to_system(Value::Fhir(f)).map_err(|_| bad())?
        }
        _ => return Err(bad()),
    })
}
