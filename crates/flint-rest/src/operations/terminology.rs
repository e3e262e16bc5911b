//! What the terminology operations (`$expand`, `$validate-code`, `$lookup`, `$subsumes`,
//! `$translate`; answered by [`flint_terminology`]) share: reading their parameters from the
//! query or a `Parameters` body, finding the resource an instance-level call names, and
//! turning terminology errors into OperationOutcomes.
//!
//! All of them are offered only with `RestConfig::enable_terminology_service`
//! (`ENABLE_TERMINOLOGY_SERVICE`, off by default as in Blaze). Parameters of a GET are
//! query parameters; a Coding in a query is `system|code` (`coding=http://loinc.org|1234-5`).
//! A POST takes a `Parameters` body (and query parameters). An unknown parameter, a
//! repeated one that takes one value, a value of the wrong type: 400 `invalid` with the
//! parameter (or `Parameters.parameter[i]`) as `expression`.

use crate::api::{FhirRequest, Payload};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use crate::resource;
use axum::http::StatusCode;
use flint_db::Db;
use flint_terminology::{CodeSystem, CodingInput, Error as TxError, Session};
use serde_json::{Value, json};
use std::sync::Arc;

/// One parameter value: text (a primitive), a complex value (a Coding, a
/// CodeableConcept) or a resource.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Text(String),
    Complex(Value),
    Resource(Value),
}

/// The parameters of one invocation, with where each came from (a query parameter's name,
/// or `Parameters.parameter[i]`).
#[derive(Debug, Default)]
pub(super) struct Params {
    items: Vec<(String, Param, String)>,
}

impl Params {
    /// Reads the parameters of operation `op`, allowing `names` (and `_format`-style
    /// parameters, which the router handles).
    pub(super) fn read(req: &FhirRequest, names: &[&str], op: &str) -> FhirResult<Params> {
        let mut out = Params::default();
        let unknown = |name: &str, at: String| {
            FhirError::invalid(format!("Unknown parameter `{name}` of `${op}`.")).at(at)
        };
        for (k, v) in &req.query {
            if names.contains(&k.as_str()) {
                out.items
                    .push((k.clone(), Param::Text(v.clone()), k.clone()));
            } else if !k.starts_with('_') {
                return Err(unknown(k, k.clone()));
            }
        }
        let body = match &req.payload {
            Payload::None => return Ok(out),
            p => crate::context::payload_resource("Parameters", p)?,
        };
        if resource::type_of(&body) != "Parameters" {
            return Err(FhirError::invalid(format!(
                "The body of `${op}` must be a Parameters resource."
            )));
        }
        for (i, p) in body["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("Parameters.parameter[{i}]");
            let Some(name) = p["name"].as_str() else {
                return Err(FhirError::invalid("A parameter has no name.").at(format!("{at}.name")));
            };
            if !names.contains(&name) {
                return Err(unknown(name, format!("{at}.name")));
            }
            let value = if let Some(r) = p.get("resource") {
                Param::Resource(r.clone())
            } else {
                let v = p.as_object().and_then(|o| {
                    o.iter()
                        .find(|(k, _)| k.starts_with("value"))
                        .map(|(_, v)| v.clone())
                });
                match v {
                    Some(Value::String(s)) => Param::Text(s),
                    Some(v @ (Value::Bool(_) | Value::Number(_))) => Param::Text(v.to_string()),
                    Some(v) => Param::Complex(v),
                    None => {
                        return Err(FhirError::invalid(format!(
                            "The parameter `{name}` has no value."
                        ))
                        .at(at));
                    }
                }
            };
            out.items.push((name.to_string(), value, at));
        }
        Ok(out)
    }

    /// Every value of `name`, with where it came from.
    pub(super) fn all(&self, name: &str) -> Vec<(&Param, &str)> {
        self.items
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, p, at)| (p, at.as_str()))
            .collect()
    }

    /// The one value of `name`, if given (given twice: 400).
    pub(super) fn one(&self, name: &str) -> FhirResult<Option<(&Param, &str)>> {
        let all = self.all(name);
        if let Some((_, at)) = all.get(1) {
            return Err(FhirError::invalid(format!(
                "The parameter `{name}` is given more than once."
            ))
            .at(*at));
        }
        Ok(all.first().copied())
    }

    /// Where `name` came from (`name` when not given).
    pub(super) fn at(&self, name: &str) -> String {
        self.all(name)
            .first()
            .map_or_else(|| name.to_string(), |(_, at)| at.to_string())
    }

    /// The text value of `name`, if given.
    pub(super) fn text(&self, name: &str) -> FhirResult<Option<String>> {
        match self.one(name)? {
            None => Ok(None),
            Some((Param::Text(s), _)) => Ok(Some(s.clone())),
            Some((_, at)) => Err(FhirError::invalid(format!(
                "The parameter `{name}` needs a primitive value."
            ))
            .at(at)),
        }
    }

    /// The text values of `name`.
    pub(super) fn texts(&self, name: &str) -> FhirResult<Vec<String>> {
        self.all(name)
            .into_iter()
            .map(|(p, at)| match p {
                Param::Text(s) => Ok(s.clone()),
                _ => Err(FhirError::invalid(format!(
                    "The parameter `{name}` needs a primitive value."
                ))
                .at(at)),
            })
            .collect()
    }

    /// The boolean value of `name`, `default` when not given.
    pub(super) fn boolean(&self, name: &str, default: bool) -> FhirResult<bool> {
        match self.text(name)?.as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(FhirError::invalid(format!(
                "The parameter `{name}` must be true or false, not `{v}`."
            ))
            .at(self.at(name))),
        }
    }

    /// The non-negative integer value of `name`, if given.
    pub(super) fn count(&self, name: &str) -> FhirResult<Option<usize>> {
        match self.text(name)? {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                FhirError::invalid(format!(
                    "The parameter `{name}` must be a non-negative integer, not `{v}`."
                ))
                .at(self.at(name))
            }),
        }
    }

    /// The resource of `name` (of type `type_name`), if given.
    pub(super) fn resource(&self, name: &str, type_name: &str) -> FhirResult<Option<Value>> {
        match self.one(name)? {
            None => Ok(None),
            Some((Param::Resource(r), at)) => {
                if resource::type_of(r) != type_name {
                    return Err(FhirError::invalid(format!(
                        "The parameter `{name}` needs a {type_name} resource."
                    ))
                    .at(at));
                }
                Ok(Some(r.clone()))
            }
            Some((_, at)) => Err(FhirError::invalid(format!(
                "The parameter `{name}` needs a {type_name} resource (a POST `resource`)."
            ))
            .at(at)),
        }
    }

    /// The `tx-resource` resources (CodeSystems, ValueSets, ConceptMaps the request brings).
    pub(super) fn tx_resources(&self) -> FhirResult<Vec<Value>> {
        self.all("tx-resource")
            .into_iter()
            .map(|(p, at)| match p {
                Param::Resource(r)
                    if matches!(
                        resource::type_of(r),
                        "CodeSystem" | "ValueSet" | "ConceptMap"
                    ) =>
                {
                    Ok(r.clone())
                }
                _ => Err(FhirError::invalid(
                    "The parameter `tx-resource` needs a CodeSystem, ValueSet or ConceptMap \
                     resource.",
                )
                .at(at)),
            })
            .collect()
    }

    /// The Coding of `name` (a `valueCoding`, or `system|code` text), if given.
    pub(super) fn coding(&self, name: &str) -> FhirResult<Option<CodingInput>> {
        let Some((p, at)) = self.one(name)? else {
            return Ok(None);
        };
        let bad = || {
            FhirError::invalid(format!(
                "The parameter `{name}` needs a Coding with a code (or `system|code`)."
            ))
            .at(at)
        };
        match p {
            Param::Complex(c) => CodingInput::of_coding(c).map(Some).ok_or_else(bad),
            Param::Text(s) => {
                let (system, code) = match s.split_once('|') {
                    Some((sys, code)) => ((!sys.is_empty()).then(|| sys.to_string()), code),
                    None => (None, s.as_str()),
                };
                if code.is_empty() {
                    return Err(bad());
                }
                Ok(Some(CodingInput {
                    system,
                    code: code.to_string(),
                    ..Default::default()
                }))
            }
            Param::Resource(_) => Err(bad()),
        }
    }

    /// The codings of the CodeableConcept `name`, if given.
    pub(super) fn codeable_concept(&self, name: &str) -> FhirResult<Option<Vec<CodingInput>>> {
        let Some((p, at)) = self.one(name)? else {
            return Ok(None);
        };
        let Param::Complex(cc) = p else {
            return Err(FhirError::invalid(format!(
                "The parameter `{name}` needs a CodeableConcept (a POST `valueCodeableConcept`)."
            ))
            .at(at));
        };
        let codings: Vec<CodingInput> = cc["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(CodingInput::of_coding)
            .collect();
        if codings.is_empty() {
            return Err(FhirError::invalid(format!(
                "The CodeableConcept of `{name}` has no coding with a code."
            ))
            .at(at));
        }
        Ok(Some(codings))
    }

    /// The codings to validate: `code` (with `system`, `system_version`, `display`), or
    /// `coding`, or `codeableConcept`; none of them: 400 at `code`.
    pub(super) fn codings(
        &self,
        system: &str,
        system_version: &str,
    ) -> FhirResult<Vec<CodingInput>> {
        if let Some(code) = self.text("code")? {
            return Ok(vec![CodingInput {
                system: self.text(system)?,
                version: self.text(system_version)?,
                code,
                display: self.text("display")?,
            }]);
        }
        if let Some(mut c) = self.coding("coding")? {
            if let Some(d) = self.text("display")? {
                c.display.get_or_insert(d);
            }
            return Ok(vec![c]);
        }
        if let Some(cs) = self.codeable_concept("codeableConcept")? {
            return Ok(cs);
        }
        Err(
            FhirError::invalid("One of `code`, `coding` or `codeableConcept` is required.")
                .at("code"),
        )
    }
}

/// The current resource `type_name/id` of an instance-level call: 404 when missing, 410
/// when deleted.
pub(super) async fn instance(db: &Db, type_name: &str, id: &str) -> FhirResult<Value> {
    let h = db.resource(type_name, id)?.ok_or_else(|| {
        FhirError::not_found(format!("Resource `{type_name}/{id}` was not found."))
    })?;
    if h.is_deleted() {
        return Err(crate::interaction::gone(db, &h));
    }
    let bytes = db.pull(&h).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        FhirError::from(flint_db::DbError::fault(format!(
            "stored resource is not JSON: {e}"
        )))
    })
}

/// The CodeSystem an operation works on: `CodeSystem/[id]` at the instance level, else the
/// one with canonical `url` (named by parameter `at`; unknown: 404 `not-found` there).
pub(super) async fn code_system(
    s: &Session<'_, flint_search::Engine>,
    db: &Db,
    target: super::Target<'_>,
    params: &Params,
    url: Option<String>,
    at: &str,
) -> FhirResult<Arc<CodeSystem>> {
    if let super::Target::Instance(ty, id) = target {
        return Ok(Arc::new(CodeSystem::of(&instance(db, ty, id).await?)));
    }
    let Some(url) = url else {
        return Err(FhirError::invalid(format!("The parameter `{at}` is required.")).at(at));
    };
    let found = s
        .code_system(&url)
        .await
        .map_err(|e| tx_error(e, params, at))?;
    found.ok_or_else(|| {
        FhirError::not_found(format!("No CodeSystem with url `{url}` is known.")).at(params.at(at))
    })
}

/// The ValueSet an operation works on: `ValueSet/[id]` at the instance level, else the one
/// given inline (`valueSet`) or by canonical `url` (`valueSetVersion`; unknown: 404 there);
/// without either, 400 `{op} needs ...`.
pub(super) async fn value_set(
    s: &Session<'_, flint_search::Engine>,
    db: &Db,
    target: super::Target<'_>,
    params: &Params,
    op: &str,
) -> FhirResult<Arc<Value>> {
    if let super::Target::Instance(ty, id) = target {
        return Ok(Arc::new(instance(db, ty, id).await?));
    }
    if let Some(vs) = params.resource("valueSet", "ValueSet")? {
        return Ok(Arc::new(vs));
    }
    let Some(url) = params.text("url")? else {
        return Err(FhirError::invalid(format!(
            "{op} needs the parameter `url` or `valueSet` (or a ValueSet/[id])."
        ))
        .at("url"));
    };
    let url = canonical(&url, params.text("valueSetVersion")?.as_deref());
    let found = s
        .value_set(&url)
        .await
        .map_err(|e| tx_error(e, params, "url"))?;
    found.ok_or_else(|| {
        FhirError::not_found(format!("No ValueSet with url `{url}` is known.")).at(params.at("url"))
    })
}

/// `url|version`, or `url` without a version.
pub(super) fn canonical(url: &str, version: Option<&str>) -> String {
    match version {
        Some(v) if !v.is_empty() => format!("{url}|{v}"),
        _ => url.to_string(),
    }
}

/// The OperationOutcome of a terminology error: unknown resources and codes 404
/// `not-found`, invalid requests 400 `invalid`, unsupported filters 422 `not-supported`, a
/// too large expansion 409 `too-costly`, storage faults 503. `at` is the parameter an
/// unknown resource was named by.
pub(super) fn tx_error(e: TxError, params: &Params, at: &str) -> FhirError {
    let message = format!("{e}.");
    match e {
        TxError::Storage(e) => e.into(),
        TxError::UnknownValueSet(_)
        | TxError::UnknownCodeSystem(_)
        | TxError::UnknownConceptMap(_)
        | TxError::UnknownFilterSystem { .. } => FhirError::not_found(message).at(params.at(at)),
        TxError::UnknownCode { parameter, .. } => {
            FhirError::not_found(message).at(params.at(&parameter))
        }
        TxError::UnsupportedFilter { .. } => FhirError::unsupported(message),
        TxError::TooCostly { .. } => FhirError::new(StatusCode::CONFLICT, "too-costly", message),
        TxError::Invalid { expression, .. } => {
            let e = FhirError::invalid(message);
            match expression {
                Some(x) => e.at(x),
                None => e,
            }
        }
        TxError::InvalidUrl(_) => FhirError::invalid(message).at(params.at(at)),
    }
}

/// The service of the state with the request's `tx-resource`s.
pub(super) fn session<'a>(
    ctx: &'a Ctx,
    db: &'a Db,
    params: &Params,
) -> FhirResult<flint_terminology::Session<'a, flint_search::Engine>> {
    Ok(ctx
        .state
        .terminology_service()
        .at(db, params.tx_resources()?))
}

/// A `Parameters` answer.
pub(super) fn reply(v: Value) -> crate::api::Reply {
    crate::api::Reply::new(200, crate::api::Body::Resource(v))
}

/// A primitive parameter echoed in an expansion: `(name, {"value[x]": value})`.
pub(super) fn echo(name: &str, key: &str, value: Value) -> (String, Value) {
    (name.to_string(), json!({ key: value }))
}
