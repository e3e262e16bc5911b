//! CQL over the FHIR data stored in Flint: [`PatientData`], a [`flint_cql::DataProvider`]
//! over one database value (`Db` at its `t`) for one subject, the Patient of `context
//! Patient`.
//!
//! * `[Patient]` is the context patient (read by id).
//! * `[T]` is the Patient compartment's resources of type `T` (the compartment search of
//!   `flint-search`: an index scan of the compartment's reference parameters, never a read
//!   of every `T`). The compartment is wider than the FHIR model info's context path
//!   (`Observation.subject`): it also holds resources that name the patient as performer,
//!   author or the like.
//! * `[T: "VS"]`, `[T: code in "VS"]`, `[T: Code 'x' from "LOINC"]`, `[T: "Concept"]` add a
//!   token clause on the code path's search parameter (`code`, or the parameter of
//!   [`CODE_PARAMS`]) with the codes of the value set (expanded through
//!   `flint_terminology::Terminology`) or of the codes given, so a code-filtered retrieve
//!   is one index scan inside the compartment. A code path without a search parameter
//!   (`[Observation: interpretation ~ "High"]`) reads the compartment's `T` and checks the
//!   element's codes in memory.
//! * [`PatientData::unfiltered`] answers `context Unfiltered`: `[T]` is every current `T`.
//! * `code in "VS"` and `code in "CodeSystem"` are answered from the expansion (cached per
//!   provider) and from the code's system.
//!
//! Every storage or terminology fault is an [`Error::Data`], never an empty list.
//!
//! ```text
//! let search = flint_search::Engine::new(registry);
//! let terminology = flint_terminology::DbTerminology::new(search.clone());
//! let db = node.sync().await?;                      // one database value
//! let lib = flint_cql::parse_library(src)?;
//! tokio::task::spawn_blocking(move || {
//!     let data = PatientData::new(&db, &search, &terminology, "p1", handle);
//!     let engine = flint_cql::Engine::new(&lib).with_data(&data);
//!     engine.eval_define("Initial Population", &mut flint_cql::Context::default())
//! });
//! ```
//!
//! The database and the terminology are async; the provider runs their futures on the
//! runtime handle it was given (`block_in_place` + `Handle::block_on`), so evaluate from a
//! blocking thread (`tokio::task::spawn_blocking`) or a multi-threaded runtime's worker.

mod library;
pub mod measure;
pub mod operations;

pub use measure::CqlMeasureEvaluator;

use flint_cql::{DataProvider, Error, Value};
use flint_db::Db;
use flint_search::{Engine as Search, parse_query};
use flint_terminology::{Coding, Terminology};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Parsed resources by content hash, shared by evaluations (a resource many measures
/// retrieve is parsed once while it stays cached).
pub type ParsedCache = flint_db::cache::Cache<flint_db::ContentHash, Arc<serde_json::Value>>;

/// A [`ParsedCache`] of at most `capacity` resources.
pub fn parsed_cache(capacity: usize) -> ParsedCache {
    flint_db::cache::new(capacity)
}

/// The data of one patient at one database value, for CQL evaluation.
pub struct PatientData<'a> {
    db: &'a Db,
    search: &'a Search,
    terminology: &'a dyn Terminology,
    patient_id: Option<String>,
    runtime: tokio::runtime::Handle,
    expansions: Mutex<HashMap<String, Arc<Vec<Coding>>>>,
    /// Retrieves already answered (the same retrieve in several defines is read once).
    retrieved: Mutex<HashMap<String, Vec<Value>>>,
    parsed: Option<&'a ParsedCache>,
    read: AtomicU64,
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
            patient_id: Some(patient_id.into()),
            runtime,
            expansions: Mutex::new(HashMap::new()),
            retrieved: Mutex::new(HashMap::new()),
            parsed: None,
            read: AtomicU64::new(0),
        }
    }

    /// The data of the whole database (`context Unfiltered`): `[T]` is every current `T`,
    /// `[Patient]` every Patient.
    pub fn unfiltered(
        db: &'a Db,
        search: &'a Search,
        terminology: &'a dyn Terminology,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        PatientData {
            db,
            search,
            terminology,
            patient_id: None,
            runtime,
            expansions: Mutex::new(HashMap::new()),
            retrieved: Mutex::new(HashMap::new()),
            parsed: None,
            read: AtomicU64::new(0),
        }
    }

    /// The same provider, taking parsed resources from `cache` (and adding those it parses).
    pub fn with_parsed_cache(mut self, cache: &'a ParsedCache) -> Self {
        self.parsed = Some(cache);
        self
    }

    /// The resources of `handles` as CQL values, from the parsed cache where it has them
    /// (the others are read in one batch and parsed).
    fn values_of(&self, handles: &[flint_db::ResourceHandle]) -> Result<Vec<Value>, Error> {
        let mut out: Vec<Option<Value>> = Vec::with_capacity(handles.len());
        let mut missing = Vec::new();
        for h in handles {
            match self.parsed.and_then(|c| c.get(&h.hash)) {
                Some(json) => out.push(Some(shared_value(json)?)),
                None => {
                    missing.push(h.clone());
                    out.push(None);
                }
            }
        }
        if !missing.is_empty() {
            let contents = self
                .block_on(self.db.pull_many(&missing))
                .map_err(data_err)?;
            self.read
                .fetch_add(contents.len() as u64, Ordering::Relaxed);
            let mut parsed = missing.iter().zip(contents);
            for slot in out.iter_mut().filter(|s| s.is_none()) {
                let Some((h, bytes)) = parsed.next() else {
                    return Err(data_err("fewer contents than resources read"));
                };
                let json: Arc<serde_json::Value> = Arc::new(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| data_err(format!("stored resource is not JSON: {e}")))?,
                );
                if let Some(c) = self.parsed {
                    c.insert(h.hash, json.clone());
                }
                *slot = Some(shared_value(json)?);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// How many resources the retrieves of this provider have read so far (a code-filtered
    /// retrieve reads only the matches of its index scan).
    pub fn resources_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The context patient's id (`None` when unfiltered).
    pub fn patient_id(&self) -> Option<&str> {
        self.patient_id.as_deref()
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

    fn retrieved_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Value>>> {
        self.retrieved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The codings a retrieve's codes stand for (a value set's expansion, the codes given,
    /// every code of a code system), sorted and distinct.
    fn codings(&self, codes: &Value) -> Result<Vec<Coding>, Error> {
        let mut out = Vec::new();
        let mut add_code = |c: &flint_cql::value::Code| {
            out.push(Coding {
                system: c.system.clone(),
                code: Some(c.code.clone()),
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
            Value::Str(url) => out.extend(self.expansion(url)?.iter().cloned()),
            Value::Vocabulary("ValueSet", url, v) => {
                out.extend(self.expansion(&versioned(url, v))?.iter().cloned())
            }
            Value::Vocabulary(_, url, _) => out.push(Coding {
                system: Some(url.clone()),
                code: None,
            }),
            o => return Err(data_err(format!("cannot retrieve by a {}", o.type_name()))),
        }
        out.retain(|c| c.system.is_some() || c.code.is_some());
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// `[Patient]` in the Patient context: the context patient by id.
    fn patient(&self, id: &str) -> Result<Vec<Value>, Error> {
        Ok(self.read("Patient", id)?.into_iter().collect())
    }

    /// The current version of `type_name/id` as a CQL value (`None` if it does not exist or
    /// is deleted).
    pub fn read(&self, type_name: &str, id: &str) -> Result<Option<Value>, Error> {
        let Some(h) = self.db.resource(type_name, id).map_err(data_err)? else {
            return Ok(None);
        };
        if h.is_deleted() {
            return Ok(None);
        }
        Ok(self.values_of(&[h])?.pop())
    }
}

/// `url|version` when a version is given.
fn versioned(url: &str, version: &Option<String>) -> String {
    match version {
        Some(v) => format!("{url}|{v}"),
        None => url.to_string(),
    }
}

/// The token search value of a coding (`system|code`, `system|`, `code`).
fn token(c: &Coding) -> String {
    match (&c.system, &c.code) {
        (Some(s), Some(c)) => format!("{}|{}", esc(s), esc(c)),
        (Some(s), None) => format!("{}|", esc(s)),
        (None, Some(c)) => esc(c),
        (None, None) => String::new(),
    }
}

/// Whether a code (system, code) is one of `codings`.
fn matches_any(codings: &[Coding], system: Option<&str>, code: &str) -> bool {
    codings.iter().any(|m| {
        m.code.as_deref().is_none_or(|c| c == code)
            && match (system, &m.system) {
                (Some(s), Some(ms)) => s == ms,
                // A String is a code of any system; a coding naming no system matches the
                // code in every system.
                _ => true,
            }
    })
}

/// The codes of a System value (Code, Concept, String, lists of them) as (system, code).
fn codes_in(v: &Value, out: &mut Vec<(Option<String>, String)>) {
    match v {
        Value::Code(c) => out.push((c.system.clone(), c.code.clone())),
        Value::Concept(cs, _) => out.extend(cs.iter().map(|c| (c.system.clone(), c.code.clone()))),
        Value::Str(s) => out.push((None, s.clone())),
        Value::List(xs) => xs.iter().for_each(|x| codes_in(x, out)),
        _ => {}
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

/// A parsed resource as a CQL value.
fn shared_value(json: Arc<serde_json::Value>) -> Result<Value, Error> {
    flint_cql::fhir::FhirValue::shared(json)
        .map(Value::Fhir)
        .ok_or_else(|| data_err("stored resource is not a FHIR resource of a known type"))
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
        let key = match codes {
            Some(c) => format!("{data_type}\u{0}{}\u{0}{c}", code_path.unwrap_or("")),
            None => data_type.to_string(),
        };
        if let Some(hit) = self.retrieved_lock().get(&key) {
            return Ok(hit.clone());
        }
        let (handles, filter) = match self.plan(data_type, code_path, codes, true)? {
            Plan::Patient(id) => return self.patient(&id),
            Plan::Empty => return Ok(Vec::new()),
            Plan::Matches(m, f) => (m.into_handles(self.db).map_err(data_err)?, f),
        };
        let values = self.values_of(&handles)?;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            if let (Some((path, codings)), Value::Fhir(f)) = (&filter, &v) {
                let at = flint_cql::fhir::to_system(flint_cql::fhir::member(f, path)?)?;
                let mut codes = Vec::new();
                codes_in(&at, &mut codes);
                if !codes
                    .iter()
                    .any(|(s, c)| matches_any(codings, s.as_deref(), c))
                {
                    continue;
                }
            }
            out.push(v);
        }
        self.retrieved_lock().insert(key, out.clone());
        Ok(out)
    }

    fn retrieve_exists(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<bool, Error> {
        if !flint_model::defs::definitions().is_resource_type(data_type) {
            return Err(data_err(format!("unknown resource type {data_type}")));
        }
        match self.plan(data_type, code_path, codes, false)? {
            Plan::Empty => Ok(false),
            // Answered by the index: no resource is read, no version looked up.
            Plan::Matches(m, None) => Ok(!m.is_empty()),
            _ => Ok(!self.retrieve(data_type, code_path, codes)?.is_empty()),
        }
    }

    /// `ExpandValueSet`: the value set's expansion as Codes (an include of a whole code system,
    /// which has no list of codes here, is an error).
    fn expand_vocabulary(&self, vocabulary: &Value) -> Result<Vec<flint_cql::value::Code>, Error> {
        let Value::Vocabulary("ValueSet", url, v) = vocabulary else {
            return Err(data_err(format!("expanding a {}", vocabulary.type_name())));
        };
        let members = self.expansion(&versioned(url, v))?;
        members
            .iter()
            .map(|c| match &c.code {
                Some(code) => Ok(flint_cql::value::Code {
                    code: code.clone(),
                    system: c.system.clone(),
                    version: None,
                    display: None,
                }),
                None => Err(data_err(format!(
                    "value set {url} includes all of code system {}: its codes cannot be listed",
                    c.system.as_deref().unwrap_or("?")
                ))),
            })
            .collect()
    }

    /// `[Pat -> T]`: the retrieve in the compartment of the Patient `context` (a Patient
    /// resource, or its id as a String).
    fn retrieve_related(
        &self,
        context: &Value,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        let id = match context {
            Value::Fhir(f) if f.ty == "Patient" => match flint_cql::fhir::member(f, "id")? {
                Value::Str(id) => id,
                _ => return Err(data_err("the related Patient has no id")),
            },
            Value::Str(id) => id.clone(),
            o => {
                return Err(data_err(format!(
                    "a retrieve in the context of a {}: only a Patient is supported",
                    o.type_name()
                )));
            }
        };
        if self.patient_id.as_deref() == Some(id.as_str()) {
            return self.retrieve(data_type, code_path, codes);
        }
        let related = PatientData {
            db: self.db,
            search: self.search,
            terminology: self.terminology,
            patient_id: Some(id),
            runtime: self.runtime.clone(),
            expansions: Mutex::new(self.lock().clone()),
            retrieved: Mutex::new(HashMap::new()),
            parsed: self.parsed,
            read: AtomicU64::new(0),
        };
        let out = related.retrieve(data_type, code_path, codes);
        self.read
            .fetch_add(related.read.load(Ordering::Relaxed), Ordering::Relaxed);
        out
    }

    /// By the stored CodeSystem's hierarchy (the terminology's closure of `ancestor`
    /// downwards); `None` when no CodeSystem of that url is stored.
    fn subsumes(
        &self,
        ancestor: &flint_cql::value::Code,
        code: &flint_cql::value::Code,
    ) -> Result<Option<bool>, Error> {
        let Some(system) = ancestor.system.as_deref() else {
            return Ok(None);
        };
        if code.system.as_deref() != Some(system) {
            return Ok(Some(false));
        }
        let below = self
            .block_on(self.terminology.closure(
                self.db,
                system,
                &ancestor.code,
                flint_terminology::Direction::Descendants,
            ))
            .map_err(data_err)?;
        Ok(below.map(|codes| codes.contains(&code.code)))
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
            Value::Vocabulary("ValueSet", url, v) => {
                let members = self.expansion(&versioned(url, v))?;
                Ok(Some(
                    codes
                        .iter()
                        .any(|(sys, code)| matches_any(&members, *sys, code)),
                ))
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

/// How a retrieve is answered: the context patient itself, nothing (no codes), or index hits
/// (with the codes to check in memory when the code path has no search parameter).
enum Plan<'c> {
    Patient(String),
    Empty,
    Matches(flint_search::Matches, Option<(&'c str, Vec<Coding>)>),
}

impl PatientData<'_> {
    /// The plan of a retrieve of `data_type` (codes at `code_path`); `read`: the resources
    /// will be read (else only whether there are any matters).
    fn plan<'c>(
        &self,
        data_type: &'c str,
        code_path: Option<&'c str>,
        codes: Option<&Value>,
        read: bool,
    ) -> Result<Plan<'c>, Error> {
        if let (Some(id), "Patient", None) = (&self.patient_id, data_type, codes) {
            return Ok(Plan::Patient(id.clone()));
        }
        let mut params = Vec::new();
        // Codes to check in memory: the code path has no search parameter.
        let mut filter = None;
        if let Some(codes) = codes {
            let path = code_path.unwrap_or_else(|| primary_code_path(data_type));
            let param = CODE_PARAMS
                .iter()
                .find(|(t, p, _)| *t == data_type && *p == path)
                .map(|(_, _, s)| *s)
                .unwrap_or(path);
            let codings = self.codings(codes)?;
            if codings.is_empty() {
                return Ok(Plan::Empty);
            }
            if self.search.registry().param(data_type, param).is_some() {
                let tokens: Vec<String> = codings.iter().map(token).collect();
                params.push((param.to_string(), tokens.join(",")));
            } else {
                filter = Some((path, codings));
            }
        }
        let registry = self.search.registry();
        let query = |params: &[(String, String)]| {
            parse_query(registry, data_type, params).map_err(data_err)
        };
        let matches = match (&self.patient_id, data_type) {
            (Some(id), "Patient") => {
                // `[Patient: ...]`: the context patient, when it matches.
                params.push(("_id".into(), esc(id)));
                self.search.matches(self.db, &query(&params)?)
            }
            // Resources are read: their versions straight from the index scan.
            (Some(id), _) if read => self
                .search
                .execute_in_compartment(self.db, "Patient", id, &query(&params)?)
                .map(flint_search::Matches::Handles),
            (Some(id), _) => {
                self.search
                    .matches_in_compartment(self.db, "Patient", id, &query(&params)?)
            }
            (None, _) => self.search.matches(self.db, &query(&params)?),
        }
        .map_err(data_err)?;
        Ok(Plan::Matches(matches, filter))
    }
}
