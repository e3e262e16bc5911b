//! CQL over the FHIR data stored in Flint: [`PatientData`], a [`flint_cql::DataProvider`]
//! over one database value (`Db` at its `t`) for one subject, the Patient of `context
//! Patient`.
//!
//! * `[Patient]` is the context patient (read by id).
//! * `[T]` is the Patient compartment's resources of type `T` (the compartment search of
//!   `flint-search`: an index scan of the compartment's reference parameters, never a read
//!   of every `T`).
//! * `[T: "VS"]`, `[T: code in "VS"]`, `[T: Code 'x' from "LOINC"]`, `[T: "Concept"]` add a
//!   token clause on the code path's search parameter (`code`, or the parameter of
//!   [`CODE_PARAMS`]) with the codes of the value set (expanded through
//!   `flint_terminology::Terminology`) or of the codes given, so a code-filtered retrieve
//!   is one index scan inside the compartment.
//! * `code in "VS"` and `code in "CodeSystem"` are answered from the expansion (cached per
//!   provider) and from the code's system.
//!
//! Every storage or terminology fault is an [`Error::Data`], never an empty list.
//!
//! The database and the terminology are async; the provider runs their futures on the
//! runtime handle it was given (`block_in_place` + `Handle::block_on`), so evaluate from a
//! blocking thread (`tokio::task::spawn_blocking`) or a multi-threaded runtime's worker.

use flint_cql::fhir::resource_value;
use flint_cql::{DataProvider, Error, Value};
use flint_db::Db;
use flint_search::{Engine as Search, parse_query};
use flint_terminology::{Coding, Terminology};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The search parameter of a retrieve's code path where it is not the path itself
/// (type, path, parameter); every other path is searched by the parameter of its name.
pub const CODE_PARAMS: &[(&str, &str, &str)] = &[
    ("MedicationRequest", "medication", "code"),
    ("MedicationAdministration", "medication", "code"),
    ("MedicationStatement", "medication", "code"),
    ("MedicationDispense", "medication", "code"),
    ("Immunization", "vaccineCode", "vaccine-code"),
    ("Encounter", "type", "type"),
    ("Procedure", "code", "code"),
];

/// The primary code path of a type (as the FHIR model info names it), for retrieves that
/// filter by code without naming a path.
pub fn primary_code_path(type_name: &str) -> &'static str {
    match type_name {
        "MedicationRequest"
        | "MedicationAdministration"
        | "MedicationStatement"
        | "MedicationDispense" => "medication",
        "Immunization" => "vaccineCode",
        "Encounter" => "type",
        _ => "code",
    }
}

/// The data of one patient at one database value, for CQL evaluation.
pub struct PatientData<'a> {
    db: &'a Db,
    search: &'a Search,
    terminology: &'a dyn Terminology,
    patient_id: String,
    runtime: tokio::runtime::Handle,
    expansions: Mutex<HashMap<String, Arc<Vec<Coding>>>>,
}

fn data_err(e: impl std::fmt::Display) -> Error {
    Error::Data(e.to_string())
}

impl<'a> PatientData<'a> {
    /// The data of `Patient/patient_id` in `db`, searched by `search`, value sets expanded
    /// by `terminology`, async reads run on `runtime`.
    pub fn new(
        db: &'a Db,
        search: &'a Search,
        terminology: &'a dyn Terminology,
        patient_id: impl Into<String>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        PatientData {
            db,
            search,
            terminology,
            patient_id: patient_id.into(),
            runtime,
            expansions: Mutex::new(HashMap::new()),
        }
    }

    /// The context patient's id.
    pub fn patient_id(&self) -> &str {
        &self.patient_id
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::task::block_in_place(|| self.runtime.block_on(f))
    }

    /// The members of the value set `url` (expanded once per provider).
    fn expansion(&self, url: &str) -> Result<Arc<Vec<Coding>>, Error> {
        if let Some(e) = self.lock().get(url) {
            return Ok(e.clone());
        }
        let codings = self
            .block_on(self.terminology.expand(self.db, url))
            .map_err(data_err)?;
        let codings = Arc::new(codings);
        self.lock().insert(url.to_string(), codings.clone());
        Ok(codings)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<Coding>>>> {
        self.expansions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token search values (`system|code`, `system|`, `code`) a retrieve's codes stand
    /// for.
    fn tokens(&self, codes: &Value) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut add_code = |c: &flint_cql::value::Code| {
            out.push(match &c.system {
                Some(s) => format!("{}|{}", esc(s), esc(&c.code)),
                None => esc(&c.code),
            })
        };
        match codes {
            Value::Null => {}
            Value::Code(c) => add_code(c),
            Value::Concept(cs, _) => cs.iter().for_each(add_code),
            Value::List(xs) => {
                for x in xs {
                    match x {
                        Value::Code(c) => add_code(c),
                        Value::Concept(cs, _) => cs.iter().for_each(&mut add_code),
                        Value::Null => {}
                        o => {
                            return Err(data_err(format!(
                                "cannot retrieve by a {}",
                                o.type_name()
                            )));
                        }
                    }
                }
            }
            Value::Str(url) | Value::Vocabulary("ValueSet", url, _) => {
                for c in self.expansion(url)?.iter() {
                    out.push(match (&c.system, &c.code) {
                        (Some(s), Some(c)) => format!("{}|{}", esc(s), esc(c)),
                        (Some(s), None) => format!("{}|", esc(s)),
                        (None, Some(c)) => esc(c),
                        (None, None) => continue,
                    });
                }
            }
            Value::Vocabulary(_, url, _) => out.push(format!("{}|", esc(url))),
            o => return Err(data_err(format!("cannot retrieve by a {}", o.type_name()))),
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn patient(&self) -> Result<Vec<Value>, Error> {
        let Some(h) = self
            .db
            .resource("Patient", &self.patient_id)
            .map_err(data_err)?
        else {
            return Ok(Vec::new());
        };
        if h.is_deleted() {
            return Ok(Vec::new());
        }
        let bytes = self.block_on(self.db.pull(&h)).map_err(data_err)?;
        Ok(vec![parse(&bytes)?])
    }
}

/// Escapes a token search value's `,`, `|` and `$` (FHIR search escaping).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | '|' | '$' | '\\') {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn parse(bytes: &[u8]) -> Result<Value, Error> {
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| data_err(format!("stored resource is not JSON: {e}")))?;
    resource_value(json)
}

impl DataProvider for PatientData<'_> {
    fn retrieve(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        if !flint_model::defs::definitions().is_resource_type(data_type) {
            return Err(data_err(format!("unknown resource type {data_type}")));
        }
        if data_type == "Patient" && codes.is_none() {
            return self.patient();
        }
        let mut params = Vec::new();
        if let Some(codes) = codes {
            let path = code_path.unwrap_or_else(|| primary_code_path(data_type));
            let param = CODE_PARAMS
                .iter()
                .find(|(t, p, _)| *t == data_type && *p == path)
                .map(|(_, _, s)| *s)
                .unwrap_or(path);
            if self.search.registry().param(data_type, param).is_none() {
                return Err(data_err(format!(
                    "no search parameter for the code path {data_type}.{path}"
                )));
            }
            let tokens = self.tokens(codes)?;
            if tokens.is_empty() {
                return Ok(Vec::new());
            }
            params.push((param.to_string(), tokens.join(",")));
        }
        let registry = self.search.registry();
        let handles = if data_type == "Patient" {
            // `[Patient: ...]`: the context patient, when it matches.
            params.push(("_id".into(), esc(&self.patient_id)));
            let query = parse_query(registry, data_type, &params).map_err(data_err)?;
            self.search.execute(self.db, &query).map_err(data_err)?
        } else {
            let query = parse_query(registry, data_type, &params).map_err(data_err)?;
            self.search
                .execute_in_compartment(self.db, "Patient", &self.patient_id, &query)
                .map_err(data_err)?
        };
        let contents = self
            .block_on(self.db.pull_many(&handles))
            .map_err(data_err)?;
        contents.iter().map(|b| parse(b)).collect()
    }

    fn in_vocabulary(&self, code: &Value, vocabulary: &Value) -> Result<Option<bool>, Error> {
        let codes: Vec<(Option<&str>, &str)> = match code {
            Value::Code(c) => vec![(c.system.as_deref(), c.code.as_str())],
            Value::Concept(cs, _) => cs
                .iter()
                .map(|c| (c.system.as_deref(), c.code.as_str()))
                .collect(),
            Value::Str(s) => vec![(None, s.as_str())],
            Value::List(_) => return Err(data_err("membership of a list: use 'in' per element")),
            Value::Null => return Ok(None),
            o => return Err(data_err(format!("membership of a {}", o.type_name()))),
        };
        match vocabulary {
            Value::Vocabulary("ValueSet", url, _) => {
                let members = self.expansion(url)?;
                Ok(Some(codes.iter().any(|(sys, code)| {
                    members.iter().any(|m| {
                        m.code.as_deref().is_none_or(|c| c == *code)
                            && match (sys, &m.system) {
                                (Some(s), Some(ms)) => s == ms,
                                // A String is a code of any system; a ValueSet naming no
                                // system holds the code in every system.
                                _ => true,
                            }
                    })
                })))
            }
            Value::Vocabulary(_, url, _) => Ok(Some(
                codes
                    .iter()
                    .any(|(sys, _)| sys.is_none_or(|s| s == url.as_str())),
            )),
            o => Err(data_err(format!("membership in a {}", o.type_name()))),
        }
    }
}
