//! [`TerminologyService`]: CodeSystems, ValueSets and ConceptMaps by canonical url (those a
//! request brings along as `tx-resource`, then the stored ones, then the built-in R4 core
//! ones), the evaluation of a ValueSet's `compose` (as a whole: [`Session::expand_members`];
//! for one code: [`Session::member`]) and the CodeSystem filters.
//!
//! # Compose
//!
//! A ValueSet with an `expansion.contains` stands for those members (nested entries
//! included, as search's `:in` has it); otherwise for the union of its `compose.include`s
//! minus the union of its `compose.exclude`s. An include (or exclude) is the intersection of
//!
//! * its system part, when it has a `system` (and maybe a `version`): the listed `concept`s
//!   (a code a `complete` CodeSystem lacks is left out; in an unknown or incomplete system
//!   the code is taken as stated), else the concepts matching every `filter`, else every
//!   concept of the system. Filters and whole systems need the CodeSystem
//!   ([`Error::UnknownCodeSystem`] otherwise);
//! * each ValueSet of its `valueSet` list, expanded in turn (nesting deeper than
//!   [`MAX_DEPTH`] is an error: value sets that include each other).
//!
//! Members keep the order of their first appearance; a `(system, code)` appears once.
//!
//! # Filters
//!
//! `property` `op` `value`, where the property `concept` (or `code`) is the code itself,
//! `display` its display, `parent`/`child` its direct parents/children in the hierarchy
//! and any other name the concept's property of that code:
//!
//! | op | a concept matches when |
//! |---|---|
//! | `is-a` | it is `value` or below it (on `concept`; on another property: that property equals `value`) |
//! | `descendent-of` | it is below `value` |
//! | `is-not-a` | it is neither `value` nor below it |
//! | `generalizes` | it is `value` or above it |
//! | `=` | a value of the property equals `value` |
//! | `in` / `not-in` | a value of the property is (is not) one of the comma-separated `value`s |
//! | `regex` | a value of the property matches `value` as a whole (Rust regex syntax) |
//! | `exists` | the property has a value (`value` `true`) or has none (`false`) |

use crate::codesystem::{CodeSystem, Designation};
use crate::{CanonicalResolver, DbTerminology, Error, Result, builtin};
use flint_db::{ContentHash, Db, DbError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// How deep ValueSets may include ValueSets.
pub const MAX_DEPTH: usize = 16;

/// How many stored CodeSystems stay indexed in memory (by content hash).
const CACHE_SIZE: usize = 64;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The terminology operations' source of CodeSystems, ValueSets and ConceptMaps: the ones
/// stored in a database (found through `R`) and the built-in R4 core ones, with the stored
/// CodeSystems indexed once per content.
pub struct TerminologyService<R> {
    stored: DbTerminology<R>,
    cache: Mutex<HashMap<ContentHash, Arc<CodeSystem>>>,
}

impl<R: CanonicalResolver> TerminologyService<R> {
    /// The service over the resources `resolver` finds.
    pub fn new(resolver: R) -> Self {
        TerminologyService {
            stored: DbTerminology::new(resolver),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A session answering at database value `db`, with `tx_resources` (CodeSystems,
    /// ValueSets and ConceptMaps the request brings along) found before any other.
    pub fn at<'a>(&'a self, db: &'a Db, tx_resources: Vec<Value>) -> Session<'a, R> {
        Session {
            service: self,
            db,
            tx: tx_resources,
            system_versions: Vec::new(),
        }
    }
}

/// One request's view of the terminology: a database value and the request's own
/// resources.
pub struct Session<'a, R> {
    service: &'a TerminologyService<R>,
    db: &'a Db,
    tx: Vec<Value>,
    system_versions: Vec<(String, String)>,
}

/// A member of an expansion: a concept of a system with what the expansion shows of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The system's canonical url.
    pub system: String,
    /// The system's version, if known.
    pub version: Option<String>,
    /// The code.
    pub code: String,
    /// The display.
    pub display: Option<String>,
    /// The definition (from the CodeSystem).
    pub definition: Option<String>,
    /// The designations.
    pub designations: Vec<Designation>,
    /// Whether the concept is inactive.
    pub inactive: bool,
    /// Whether the concept is abstract (not selectable).
    pub is_abstract: bool,
}

impl Member {
    /// The member of concept `i` of `cs`.
    pub fn of(cs: &CodeSystem, i: usize) -> Member {
        let c = &cs.concepts[i];
        Member {
            system: cs.url.clone(),
            version: cs.version.clone(),
            code: c.code.clone(),
            display: c.display.clone(),
            definition: c.definition.clone(),
            designations: c.designations.clone(),
            inactive: c.inactive(),
            is_abstract: c.is_abstract(),
        }
    }

    fn key(&self) -> (String, String) {
        (self.system.clone(), self.code.clone())
    }
}

/// The invalid-request error with `message` at `expression`.
pub(crate) fn invalid(message: impl Into<String>, expression: Option<&str>) -> Error {
    Error::Invalid {
        message: message.into(),
        expression: expression.map(str::to_string),
    }
}

/// Whether `resource` is a `type_name` with canonical `url` (`url|version`).
fn is_canonical(resource: &Value, type_name: &str, url: &str) -> bool {
    let (url, version) = builtin::split_version(url);
    resource["resourceType"].as_str() == Some(type_name)
        && resource["url"].as_str() == Some(url)
        && (version.is_none() || resource["version"].as_str() == version)
}

impl<'a, R: CanonicalResolver> Session<'a, R> {
    /// The session with default versions of systems (`$expand`'s `system-version`, each a
    /// canonical `url|version`): an include of one of these systems without a `version`
    /// takes that version.
    pub fn with_system_versions(mut self, canonicals: &[String]) -> Self {
        self.system_versions = canonicals
            .iter()
            .filter_map(|c| {
                let (u, v) = c.split_once('|')?;
                Some((u.to_string(), v.to_string()))
            })
            .collect();
        self
    }

    /// The version an include of `system` asks for: its own, else the session's default.
    fn version_of<'v>(&'v self, inc: &'v Value, system: &str) -> Option<&'v str> {
        inc["version"].as_str().or_else(|| {
            self.system_versions
                .iter()
                .find(|(u, _)| u == system)
                .map(|(_, v)| v.as_str())
        })
    }

    /// The database value the session answers at.
    pub fn db(&self) -> &Db {
        self.db
    }

    /// The stored resource of `type_name` with canonical `url`, with its content hash.
    async fn stored(&self, type_name: &str, url: &str) -> Result<Option<(ContentHash, Value)>> {
        let Some(h) = self
            .service
            .stored
            .resolver()
            .resolve(self.db, type_name, url)?
        else {
            return Ok(None);
        };
        let bytes = self.db.pull(&h).await?;
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| DbError::fault(format!("stored resource is not JSON: {e}")))?;
        Ok(Some((h.hash, v)))
    }

    /// The CodeSystem with canonical `url` (`url|version`): a `tx-resource`, a stored one
    /// or a built-in one.
    pub async fn code_system(&self, url: &str) -> Result<Option<Arc<CodeSystem>>> {
        if let Some(r) = self.tx.iter().find(|r| is_canonical(r, "CodeSystem", url)) {
            return Ok(Some(Arc::new(CodeSystem::of(r))));
        }
        if let Some(h) = self
            .service
            .stored
            .resolver()
            .resolve(self.db, "CodeSystem", url)?
        {
            if let Some(cs) = self.cached(&h.hash) {
                return Ok(Some(cs));
            }
            let bytes = self.db.pull(&h).await?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| DbError::fault(format!("stored resource is not JSON: {e}")))?;
            let cs = Arc::new(CodeSystem::of(&v));
            let mut cache = self.service.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_SIZE {
                cache.clear();
            }
            cache.insert(h.hash, cs.clone());
            return Ok(Some(cs));
        }
        Ok(builtin::code_system(url))
    }

    fn cached(&self, hash: &ContentHash) -> Option<Arc<CodeSystem>> {
        self.service
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    /// The CodeSystem resource with canonical `url`: a `tx-resource`, a stored one or a
    /// built-in one.
    pub async fn code_system_resource(&self, url: &str) -> Result<Option<Value>> {
        if let Some(r) = self.tx.iter().find(|r| is_canonical(r, "CodeSystem", url)) {
            return Ok(Some(r.clone()));
        }
        if let Some((_, v)) = self.stored("CodeSystem", url).await? {
            return Ok(Some(v));
        }
        Ok(builtin::code_system_resource(url).cloned())
    }

    /// The ValueSet with canonical `url` (`url|version`): a `tx-resource`, a stored one or
    /// a built-in one.
    pub async fn value_set(&self, url: &str) -> Result<Option<Arc<Value>>> {
        if let Some(r) = self.tx.iter().find(|r| is_canonical(r, "ValueSet", url)) {
            return Ok(Some(Arc::new(r.clone())));
        }
        if let Some((_, v)) = self.stored("ValueSet", url).await? {
            return Ok(Some(Arc::new(v)));
        }
        Ok(builtin::value_set(url))
    }

    /// The ConceptMap with canonical `url` (`url|version`): a `tx-resource` or a stored one.
    pub async fn concept_map(&self, url: &str) -> Result<Option<Value>> {
        if let Some(r) = self.tx.iter().find(|r| is_canonical(r, "ConceptMap", url)) {
            return Ok(Some(r.clone()));
        }
        Ok(self.stored("ConceptMap", url).await?.map(|(_, v)| v))
    }

    /// Every member of ValueSet `vs`, in order, each `(system, code)` once.
    pub async fn expand_members(&self, vs: &Value) -> Result<Vec<Member>> {
        self.expand_at(vs, 0).await
    }

    fn expand_at<'s>(&'s self, vs: &'s Value, depth: usize) -> BoxFuture<'s, Result<Vec<Member>>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(nesting(vs));
            }
            let Some(compose) = vs.get("compose").filter(|_| !has_expansion(vs)) else {
                return Ok(expansion_members(vs));
            };
            let mut out = Vec::new();
            let mut seen = HashSet::new();
            for inc in compose["include"].as_array().into_iter().flatten() {
                for m in self.concept_set(vs, inc, depth).await? {
                    if seen.insert(m.key()) {
                        out.push(m);
                    }
                }
            }
            let mut excluded = HashSet::new();
            for exc in compose["exclude"].as_array().into_iter().flatten() {
                excluded.extend(
                    self.concept_set(vs, exc, depth)
                        .await?
                        .iter()
                        .map(Member::key),
                );
            }
            if !excluded.is_empty() {
                out.retain(|m| !excluded.contains(&m.key()));
            }
            Ok(out)
        })
    }

    /// The members of one `include` or `exclude` of `vs`.
    async fn concept_set(&self, vs: &Value, inc: &Value, depth: usize) -> Result<Vec<Member>> {
        let mut base: Option<Vec<Member>> = None;
        if let Some(sys) = inc["system"].as_str() {
            let canon = canonical(sys, self.version_of(inc, sys));
            let cs = self.code_system(&canon).await?;
            let members = if let Some(listed) = inc["concept"].as_array() {
                listed
                    .iter()
                    .filter_map(|c| listed_member(cs.as_deref(), sys, inc, c))
                    .collect()
            } else {
                let cs = cs.ok_or_else(|| Error::UnknownCodeSystem(canon.clone()))?;
                let filters = compile_filters(vs, inc, &cs)?;
                cs.concepts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| filters.iter().all(|f| f.matches(&cs, *i)))
                    .map(|(i, _)| Member::of(&cs, i))
                    .collect()
            };
            base = Some(members);
        }
        for url in inc["valueSet"].as_array().into_iter().flatten() {
            let Some(url) = url.as_str() else { continue };
            let nested = self
                .value_set(url)
                .await?
                .ok_or_else(|| Error::UnknownValueSet(url.to_string()))?;
            let members = self.expand_at(&nested, depth + 1).await?;
            base = Some(match base {
                None => members,
                Some(b) => {
                    let keys: HashSet<_> = members.iter().map(Member::key).collect();
                    b.into_iter().filter(|m| keys.contains(&m.key())).collect()
                }
            });
        }
        Ok(base.unwrap_or_default())
    }

    /// The member of ValueSet `vs` with `code` (in `system`, or in any system when `None`),
    /// if it has one, found without expanding the whole ValueSet.
    pub async fn member(
        &self,
        vs: &Value,
        system: Option<&str>,
        code: &str,
    ) -> Result<Option<Member>> {
        self.member_at(vs, system, code, 0).await
    }

    fn member_at<'s>(
        &'s self,
        vs: &'s Value,
        system: Option<&'s str>,
        code: &'s str,
        depth: usize,
    ) -> BoxFuture<'s, Result<Option<Member>>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(nesting(vs));
            }
            let Some(compose) = vs.get("compose").filter(|_| !has_expansion(vs)) else {
                return Ok(expansion_members(vs)
                    .into_iter()
                    .find(|m| m.code == code && system.is_none_or(|s| s == m.system)));
            };
            let mut found = None;
            for inc in compose["include"].as_array().into_iter().flatten() {
                if let Some(m) = self.member_of_set(vs, inc, system, code, depth).await? {
                    found = Some(m);
                    break;
                }
            }
            let Some(m) = found else { return Ok(None) };
            for exc in compose["exclude"].as_array().into_iter().flatten() {
                if self
                    .member_of_set(vs, exc, Some(&m.system), &m.code, depth)
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
            }
            Ok(Some(m))
        })
    }

    /// The member with `code` of one `include` or `exclude` of `vs`.
    async fn member_of_set(
        &self,
        vs: &Value,
        inc: &Value,
        system: Option<&str>,
        code: &str,
        depth: usize,
    ) -> Result<Option<Member>> {
        let mut found = None;
        if let Some(sys) = inc["system"].as_str() {
            if system.is_some_and(|s| s != sys) {
                return Ok(None);
            }
            let canon = canonical(sys, self.version_of(inc, sys));
            let cs = self.code_system(&canon).await?;
            if let Some(listed) = inc["concept"].as_array() {
                let same = |c: &&Value| {
                    c["code"].as_str().is_some_and(|x| match cs.as_deref() {
                        Some(cs) if !cs.case_sensitive => x.eq_ignore_ascii_case(code),
                        _ => x == code,
                    })
                };
                let Some(c) = listed.iter().find(same) else {
                    return Ok(None);
                };
                let Some(m) = listed_member(cs.as_deref(), sys, inc, c) else {
                    return Ok(None);
                };
                found = Some(m);
            } else {
                let cs = cs.ok_or_else(|| Error::UnknownCodeSystem(canon.clone()))?;
                let Some(i) = cs.find(code) else {
                    return Ok(None);
                };
                let filters = compile_filters(vs, inc, &cs)?;
                if !filters.iter().all(|f| f.matches(&cs, i)) {
                    return Ok(None);
                }
                found = Some(Member::of(&cs, i));
            }
        }
        for url in inc["valueSet"].as_array().into_iter().flatten() {
            let Some(url) = url.as_str() else { continue };
            let nested = self
                .value_set(url)
                .await?
                .ok_or_else(|| Error::UnknownValueSet(url.to_string()))?;
            let sys = found.as_ref().map(|m: &Member| m.system.clone());
            let sys = sys.as_deref().or(system);
            match self.member_at(&nested, sys, code, depth + 1).await? {
                None => return Ok(None),
                Some(m) => {
                    found.get_or_insert(m);
                }
            }
        }
        Ok(found)
    }
}

/// `url|version`, or `url` without a version.
fn canonical(url: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("{url}|{v}"),
        None => url.to_string(),
    }
}

fn nesting(vs: &Value) -> Error {
    invalid(
        format!(
            "ValueSet `{}` includes value sets more than {MAX_DEPTH} deep (do they include \
             each other?)",
            vs["url"].as_str().unwrap_or("(given)")
        ),
        None,
    )
}

/// Whether a ValueSet states its members (`expansion.contains`), which then win over its
/// `compose` (as search's `:in` has them).
fn has_expansion(vs: &Value) -> bool {
    vs["expansion"]["contains"].is_array()
}

/// The members stated in a ValueSet's `expansion.contains`, nested ones included.
fn expansion_members(vs: &Value) -> Vec<Member> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = vs["expansion"]["contains"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .collect();
    while let Some(c) = stack.pop() {
        if let (Some(system), Some(code)) = (c["system"].as_str(), c["code"].as_str()) {
            out.push(Member {
                system: system.to_string(),
                version: c["version"].as_str().map(str::to_string),
                code: code.to_string(),
                display: c["display"].as_str().map(str::to_string),
                definition: None,
                designations: Designation::all_of(&c["designation"]),
                inactive: c["inactive"].as_bool().unwrap_or(false),
                is_abstract: c["abstract"].as_bool().unwrap_or(false),
            });
        }
        stack.extend(c["contains"].as_array().into_iter().flatten().rev());
    }
    out
}

/// The member of a concept listed in an include: the CodeSystem's concept (with the listed
/// display, if any, preferred), or the concept as listed when the system is unknown or
/// incomplete; `None` for a code a complete CodeSystem lacks.
fn listed_member(cs: Option<&CodeSystem>, system: &str, inc: &Value, c: &Value) -> Option<Member> {
    let code = c["code"].as_str()?;
    let listed_display = c["display"].as_str().map(str::to_string);
    let listed_designations = Designation::all_of(&c["designation"]);
    match cs {
        Some(cs) => match cs.find(code) {
            Some(i) => {
                let mut m = Member::of(cs, i);
                if listed_display.is_some() {
                    m.display = listed_display;
                }
                m.designations.extend(listed_designations);
                Some(m)
            }
            None if cs.is_complete() => None,
            None => Some(Member {
                system: system.to_string(),
                version: cs.version.clone(),
                code: code.to_string(),
                display: listed_display,
                definition: None,
                designations: listed_designations,
                inactive: false,
                is_abstract: false,
            }),
        },
        None => Some(Member {
            system: system.to_string(),
            version: inc["version"].as_str().map(str::to_string),
            code: code.to_string(),
            display: listed_display,
            definition: None,
            designations: listed_designations,
            inactive: false,
            is_abstract: false,
        }),
    }
}

/// A filter operator, compiled.
#[derive(Debug)]
enum Op {
    IsA,
    DescendentOf,
    IsNotA,
    Generalizes,
    Eq,
    In(HashSet<String>),
    NotIn(HashSet<String>),
    Regex(regex::Regex),
    Exists(bool),
}

/// One `compose.include.filter`, compiled against its CodeSystem.
#[derive(Debug)]
pub struct Filter {
    property: String,
    op: Op,
    value: String,
}

/// The filters of one include of `vs`, compiled against `cs`.
fn compile_filters(vs: &Value, inc: &Value, cs: &CodeSystem) -> Result<Vec<Filter>> {
    inc["filter"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| Filter::compile(vs, f, cs))
        .collect()
}

impl Filter {
    /// Compiles a filter (`property`, `op`, `value`) of ValueSet `vs`.
    pub fn compile(vs: &Value, f: &Value, _cs: &CodeSystem) -> Result<Filter> {
        let url = vs["url"].as_str().unwrap_or("(given)");
        let (Some(property), Some(op), Some(value)) = (
            f["property"].as_str(),
            f["op"].as_str(),
            f["value"].as_str(),
        ) else {
            return Err(invalid(
                format!("ValueSet `{url}` has a filter without a property, an op or a value"),
                Some("ValueSet.compose.include.filter"),
            ));
        };
        let list =
            || -> HashSet<String> { value.split(',').map(|v| v.trim().to_string()).collect() };
        let op = match op {
            "is-a" => Op::IsA,
            "descendent-of" => Op::DescendentOf,
            "is-not-a" => Op::IsNotA,
            "generalizes" => Op::Generalizes,
            "=" => Op::Eq,
            "in" => Op::In(list()),
            "not-in" => Op::NotIn(list()),
            "exists" => Op::Exists(match value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(invalid(
                        format!(
                            "ValueSet `{url}`: the value of an `exists` filter must be true or \
                             false, not `{value}`"
                        ),
                        Some("ValueSet.compose.include.filter.value"),
                    ));
                }
            }),
            "regex" => Op::Regex(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                invalid(
                    format!("ValueSet `{url}`: the regex filter value `{value}` is invalid: {e}"),
                    Some("ValueSet.compose.include.filter.value"),
                )
            })?),
            other => {
                return Err(Error::UnsupportedFilter {
                    value_set: url.to_string(),
                    op: other.to_string(),
                });
            }
        };
        Ok(Filter {
            property: property.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Whether the filter is on the hierarchy of codes (`concept` or `code`).
    fn on_concept(&self) -> bool {
        self.property == "concept" || self.property == "code"
    }

    /// The values of the filter's property for concept `i` of `cs`.
    fn values<'c>(&self, cs: &'c CodeSystem, i: usize) -> Vec<std::borrow::Cow<'c, str>> {
        use std::borrow::Cow;
        let c = &cs.concepts[i];
        match self.property.as_str() {
            "concept" | "code" => vec![Cow::Borrowed(c.code.as_str())],
            "display" => c
                .display
                .iter()
                .map(|d| Cow::Borrowed(d.as_str()))
                .collect(),
            "parent" => cs
                .hierarchy
                .parents(&c.code)
                .into_iter()
                .map(Cow::Borrowed)
                .collect(),
            "child" => cs
                .hierarchy
                .children(&c.code)
                .into_iter()
                .map(Cow::Borrowed)
                .collect(),
            p => c.property_values(p).into_iter().map(Cow::Owned).collect(),
        }
    }

    /// Whether concept `i` of `cs` passes the filter.
    pub fn matches(&self, cs: &CodeSystem, i: usize) -> bool {
        let code = cs.concepts[i].code.as_str();
        let h = &cs.hierarchy;
        match &self.op {
            Op::IsA if self.on_concept() => h.subsumes(&self.value, code),
            Op::DescendentOf if self.on_concept() => {
                code != self.value && h.subsumes(&self.value, code)
            }
            Op::IsNotA if self.on_concept() => !h.subsumes(&self.value, code),
            Op::Generalizes if self.on_concept() => h.subsumes(code, &self.value),
            Op::IsA | Op::Eq | Op::Generalizes => {
                self.values(cs, i).iter().any(|v| v == &self.value)
            }
            Op::DescendentOf => false,
            Op::IsNotA => !self.values(cs, i).iter().any(|v| v == &self.value),
            Op::In(set) => self.values(cs, i).iter().any(|v| set.contains(v.as_ref())),
            Op::NotIn(set) => !self.values(cs, i).iter().any(|v| set.contains(v.as_ref())),
            Op::Regex(re) => self.values(cs, i).iter().any(|v| re.is_match(v)),
            Op::Exists(yes) => self.values(cs, i).is_empty() != *yes,
        }
    }
}
