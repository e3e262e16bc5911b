//! Search execution over a database value: the indexer hook that writes index entries and
//! value blobs at indexing time, and the evaluation of parsed queries with index scans.
//!
//! Evaluation at one database value `t` (so every page of a search sees the same data):
//! 1. each clause becomes a sorted list of the ids of current resources: parameter clauses by
//!    scans of the SearchParamValue index with exact filters ([`crate::keys`]), chains by
//!    evaluating the target clause and looking up references to its results, `_has` by
//!    evaluating the referencing type and reading its references from the value blobs, `_id`
//!    by direct lookups, `_lastUpdated` from the transaction instants;
//! 2. selective clauses are intersected first; clauses that would read a whole parameter
//!    (`:not`, `:missing`, open date ranges, numbers, quantities) are checked against the
//!    candidates' value blobs when the candidates are few, else intersected as sets;
//! 3. `_sort` keys come from the value blobs ([`crate::sort`]), ties and the default order
//!    are by id.
//!
//! Not answered here (an `Unsupported` [`Error::Search`]): token `:in`, `:not-in`, `:above`, `:below`
//! and `_list` need stored ValueSets, CodeSystems and Lists; the REST layer rewrites them into
//! plain token and `_id` clauses before execution. Reference `:above`/`:below` are not
//! supported.

use crate::date::DateRange;
use crate::error::Error;
use crate::keys::{self, Scan};
use crate::query::{
    Clause, Include, Modifier, ParamClause, Query, QueryValue, ReferenceQuery, SortKey,
};
use crate::registry::{ParamRef, ParamType, Registry, SearchParam};
use crate::sort::{SortValue, sort_value};
use crate::value::{IndexValue, ReferenceValue};
use flint_db::codec::param_hash;
use flint_db::search::ValueScan;
use flint_db::{
    CompartmentEntry, Db, DbError, IdList, Indexed, ResourceHandle, ResourceIndexer, ValueMatch,
};
use flint_search_core::Error as SearchError;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Candidates up to this many are checked against value blobs instead of scanning a broad
/// clause's whole parameter.
const VERIFY_LIMIT: usize = 4096;
/// Index entries a broad clause's scan may read per candidate before the candidates are
/// checked against their value blobs instead. A blob check costs about as much as a dozen
/// entries of a scan (10,000 patients: ~20 µs against ~1.7 µs), so giving up on the scan at
/// that ratio costs at most twice the cheaper plan.
const BROAD_SCAN_FACTOR: usize = 12;
/// Inner chain results above this many are joined by one filtered reference scan instead of
/// one lookup per target.
const CHAIN_LOOKUP_LIMIT: usize = 256;
/// Rounds of `:iterate` includes.
const MAX_ITERATE: usize = 8;
/// Most combinations a pair of clauses may turn into as values of one composite clause.
const MAX_PAIRED_VALUES: usize = 64;

/// Composite parameters whose values on a resource are exactly every combination of the
/// values of two standalone parameters, so that `a=X&b=Y` selects what `composite=X$Y` does
/// and one scan of the composite's rows (led by the code) answers both clauses. Each entry
/// pins the definitions that make this true: the composite's URL and expression, then per
/// component its parameter's URL, its expression within the composite, and that parameter's
/// own expression's parts for the composite's resource type. A registry whose definitions
/// differ (a custom bundle) is left alone.
///
/// `Observation-code-value-quantity`: the composite's base is the Observation itself, `code`
/// is `Observation.code`, and `value.as(Quantity)` gives the same values as
/// `Observation.value as Quantity | Observation.value as SampledData` (a SampledData is not a
/// quantity and has none). `value[x]` is single, so the combinations are never capped.
const PAIRED_COMPOSITES: &[PairedComposite] = &[PairedComposite {
    url: "http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity",
    expression: "Observation",
    components: [
        Pinned {
            definition: "http://hl7.org/fhir/SearchParameter/clinical-code",
            expression: "code",
            param_expression: "Observation.code",
        },
        Pinned {
            definition: "http://hl7.org/fhir/SearchParameter/Observation-value-quantity",
            expression: "value.as(Quantity)",
            param_expression: "(Observation.value as Quantity) | (Observation.value as SampledData)",
        },
    ],
}];

/// An entry of [`PAIRED_COMPOSITES`].
struct PairedComposite {
    url: &'static str,
    expression: &'static str,
    components: [Pinned; 2],
}

/// A component of a [`PairedComposite`] as the pairing relies on it.
struct Pinned {
    definition: &'static str,
    expression: &'static str,
    param_expression: &'static str,
}

/// The values of one resource version, decoded from its blob: `(param hash, value)`.
pub type BlobValues = Vec<(u32, IndexValue)>;

/// The search hook for [`flint_db::NodeConfig::resource_indexer`]: extracts every parameter's
/// values with the registry and encodes them as index entries plus one value blob.
pub struct SearchIndexer {
    registry: Arc<Registry>,
    /// The engine that re-checks conditional writes ([`ResourceIndexer::condition_matches`]).
    engine: std::sync::OnceLock<Engine>,
}

impl SearchIndexer {
    /// An indexer for the parameters of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        SearchIndexer {
            registry,
            engine: std::sync::OnceLock::new(),
        }
    }
}

impl ResourceIndexer for SearchIndexer {
    fn condition_matches(
        &self,
        db: &Db,
        type_name: &str,
        query: &str,
    ) -> flint_db::error::Result<Vec<String>> {
        let invalid = |m: String| DbError::new(flint_db::ErrorKind::Invalid, m);
        let params: Vec<(String, String)> = serde_json::from_str(query)
            .map_err(|e| invalid(format!("malformed condition `{query}`: {e}")))?;
        let q = crate::QueryParser::new(&self.registry)
            .parse(type_name, &params)
            .and_then(|q| q.strict())
            .map_err(|e| invalid(format!("condition `{query}`: {e}")))?;
        let engine = self
            .engine
            .get_or_init(|| Engine::new(self.registry.clone()));
        match engine.execute(db, &q) {
            Ok(hits) => Ok(hits.into_iter().map(|h| h.id).collect()),
            Err(Error::Storage(e)) => Err(e),
            Err(e) => Err(invalid(format!("condition `{query}`: {e}"))),
        }
    }

    fn index(&self, type_name: &str, content: &[u8]) -> flint_db::error::Result<Indexed> {
        let resource: serde_json::Value =
            serde_json::from_slice(content).map_err(|e| DbError::fault(e.to_string()))?;
        self.index_json(type_name, &resource)
    }

    fn index_json(
        &self,
        type_name: &str,
        resource: &serde_json::Value,
    ) -> flint_db::error::Result<Indexed> {
        let values = match self.registry.extract(resource) {
            Ok(v) => v,
            // One failing expression must not hide the resource from every other parameter.
            Err(_) => {
                let mut out = Vec::new();
                for p in self.registry.params_of(type_name) {
                    if let Ok(vs) = self.registry.extract_param(p, resource) {
                        out.extend(vs.into_iter().map(|v| (p.clone(), v)));
                    }
                }
                out
            }
        };
        let mut entries = Vec::with_capacity(values.len() * 2);
        let mut buf = Vec::new();
        let mut blob: BlobValues = Vec::with_capacity(values.len());
        for (p, v) in values {
            let h = param_hash(&p.code);
            buf.clear();
            keys::entries(&v, keys::Rows::Written(&p.target), &mut buf);
            entries.extend(buf.drain(..).map(|k| (h, k)));
            blob.push((h, v));
        }
        entries.sort_unstable();
        entries.dedup();
        let compartment_entries = self.compartment_entries(type_name, &blob, &entries);
        Ok(Indexed {
            entries,
            values: encode_blob(&blob),
            compartment_entries,
        })
    }

    fn entries_of_values(&self, values: &[u8]) -> Vec<flint_db::IndexEntry> {
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for (h, v) in decode_blob(values) {
            buf.clear();
            keys::entries(&v, keys::Rows::Any, &mut buf);
            out.extend(buf.drain(..).map(|k| (h, k)));
        }
        out
    }

    fn compartment_entries_of_values(
        &self,
        type_name: &str,
        values: &[u8],
    ) -> Vec<CompartmentEntry> {
        let blob = decode_blob(values);
        let entries = self.entries_of_values(values);
        self.compartment_entries(type_name, &blob, &entries)
    }
}

/// The parameters whose entries the indexer writes again under each Patient compartment the
/// resource is in (the CompartmentSearchParamValue index): the code parameters CQL retrieves
/// filter by (`[Observation: "Weight"]` searches `code` inside the patient's compartment), as
/// Blaze does for `code`. Only token parameters of these codes are written.
pub const COMPARTMENT_CODE_PARAMS: &[&str] = &["code", "vaccine-code", "type"];

impl SearchIndexer {
    /// The compartment entries of a version of `type_name` with value blob `blob` and index
    /// entries `entries`: each code entry of a [`COMPARTMENT_CODE_PARAMS`] token parameter
    /// (not its text or of-type entries), under every Patient its Patient-compartment
    /// parameters reference.
    fn compartment_entries(
        &self,
        type_name: &str,
        blob: &[(u32, IndexValue)],
        entries: &[flint_db::IndexEntry],
    ) -> Vec<CompartmentEntry> {
        let links: Vec<u32> = self
            .registry
            .compartment_params("Patient", type_name)
            .iter()
            .map(|c| param_hash(c))
            .collect();
        if links.is_empty() {
            return Vec::new();
        }
        let mut patients: Vec<&str> = blob
            .iter()
            .filter(|(h, _)| links.contains(h))
            .filter_map(|(_, v)| match v {
                IndexValue::Reference(ReferenceValue::Local { type_name, id, .. })
                    if type_name == "Patient" =>
                {
                    Some(id.as_str())
                }
                _ => None,
            })
            .collect();
        if patients.is_empty() {
            return Vec::new();
        }
        patients.sort_unstable();
        patients.dedup();
        let codes: Vec<u32> = COMPARTMENT_CODE_PARAMS
            .iter()
            .filter(|c| {
                self.registry
                    .param(type_name, c)
                    .is_some_and(|p| p.kind == ParamType::Token)
            })
            .map(|c| param_hash(c))
            .collect();
        let patient_tid = flint_db::codec::tid("Patient");
        let mut out = Vec::new();
        // Only the code entries (`c code US system`): every token scan without a modifier
        // reads those, and the compartment index answers nothing else.
        let code_entries = entries
            .iter()
            .filter(|(h, v)| codes.contains(h) && v.first() == Some(&b'c'));
        for (h, value) in code_entries {
            for p in &patients {
                out.push(CompartmentEntry {
                    compartment_tid: patient_tid,
                    compartment_id: p.to_string(),
                    param: *h,
                    value: value.clone(),
                });
            }
        }
        out
    }
}

/// Encodes a value blob: per parameter (in the order given, consecutive values of one
/// parameter together) a frame `param hash(4) · length(4) · postcard(values)`, so a reader
/// decodes only the parameters it needs.
pub fn encode_blob(values: &[(u32, IndexValue)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let h = values[i].0;
        let j = values[i..]
            .iter()
            .position(|(x, _)| *x != h)
            .map_or(values.len(), |n| i + n);
        let group: Vec<&IndexValue> = values[i..j].iter().map(|(_, v)| v).collect();
        if let Ok(b) = postcard::to_stdvec(&group) {
            out.extend_from_slice(&h.to_be_bytes());
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(&b);
        }
        i = j;
    }
    out
}

/// The frames of a blob: `(param hash, encoded values)`.
fn frames(bytes: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let h = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        let n = u32::from_be_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
        let body = rest.get(8..8 + n)?;
        rest = &rest[8 + n..];
        Some((h, body))
    })
}

/// Decodes a whole value blob written by [`SearchIndexer`].
pub fn decode_blob(bytes: &[u8]) -> BlobValues {
    let mut out = Vec::new();
    for (h, body) in frames(bytes) {
        let vs: Vec<IndexValue> = postcard::from_bytes(body).unwrap_or_default();
        out.extend(vs.into_iter().map(|v| (h, v)));
    }
    out
}

/// The values of one parameter (by hash) in a value blob, decoding nothing else.
pub fn blob_values(bytes: &[u8], param: u32) -> Vec<IndexValue> {
    let mut out = Vec::new();
    for (h, body) in frames(bytes) {
        if h == param {
            let vs: Vec<IndexValue> = postcard::from_bytes(body).unwrap_or_default();
            out.extend(vs);
        }
    }
    out
}

/// Executes queries against database values.
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    /// The composites of [`PAIRED_COMPOSITES`] whose definitions in `registry` are the pinned
    /// ones, with the resource type each applies to (checked once, not per query).
    paired: Arc<Vec<(String, ParamRef)>>,
    /// The service bases of this server (`http://host/fhir`): an absolute reference
    /// `[base]/Patient/x` makes its resource a member of `Patient/x`'s compartment.
    local_bases: Arc<Vec<String>>,
}

/// A set of current resources of one type: their ids (versions are looked up only where a
/// clause needs their value blobs, and for the page served).
type Set = IdList;

/// The matches of a query at a database value: ids in id order, resolved to versions page by
/// page, or versions in `_sort` order (sorting reads every match's values anyway).
#[derive(Debug, Clone)]
pub enum Matches {
    /// Current resources of one type, in id order.
    Ids {
        /// Their resource type.
        type_name: String,
        /// Their ids.
        ids: IdList,
    },
    /// Resource versions in the order to serve them.
    Handles(Vec<ResourceHandle>),
}

impl Matches {
    /// Number of matches.
    pub fn len(&self) -> usize {
        match self {
            Matches::Ids { ids, .. } => ids.len(),
            Matches::Handles(h) => h.len(),
        }
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The versions of matches `offset..offset + count` at `db` (the value the matches were
    /// computed at).
    pub fn page(&self, db: &Db, offset: usize, count: usize) -> Result<Vec<ResourceHandle>, Error> {
        Ok(match self {
            Matches::Ids { type_name, ids } => {
                let end = offset.saturating_add(count).min(ids.len());
                db.resources(type_name, (offset.min(end)..end).map(|i| ids.get(i)))?
            }
            Matches::Handles(h) => h.iter().skip(offset).take(count).cloned().collect(),
        })
    }

    /// The versions of all matches.
    pub fn into_handles(self, db: &Db) -> Result<Vec<ResourceHandle>, Error> {
        Ok(match self {
            Matches::Ids { type_name, ids } => db.resources(&type_name, ids.iter())?,
            Matches::Handles(h) => h,
        })
    }

    /// Approximate heap bytes held (for bounding caches of result lists).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Matches::Ids { ids, .. } => ids.heap_bytes(),
            Matches::Handles(h) => h.len() * 160,
        }
    }
}

impl Engine {
    /// An engine over the parameters of `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let paired = Arc::new(paired_composites(&registry));
        Engine {
            registry,
            paired,
            local_bases: Arc::new(Vec::new()),
        }
    }

    /// The engine with `bases` as this server's service bases (trailing `/` ignored): a
    /// compartment search also finds the resources that refer to the compartment's resource
    /// by an absolute URL on one of them (`http://host/fhir/Patient/x`).
    pub fn with_local_bases(mut self, bases: Vec<String>) -> Self {
        let mut bases: Vec<String> = bases
            .into_iter()
            .map(|b| b.trim_end_matches('/').to_string())
            .filter(|b| !b.is_empty())
            .collect();
        bases.sort();
        bases.dedup();
        self.local_bases = Arc::new(bases);
        self
    }

    /// The ids of the resources of type `ty` that refer to `compartment/id` through a
    /// compartment parameter by an absolute URL on one of this server's bases.
    fn absolute_members(
        &self,
        db: &Db,
        compartment: &str,
        id: &str,
        ty: &str,
    ) -> Result<IdList, Error> {
        let mut members = IdList::new();
        if self.local_bases.is_empty() {
            return Ok(members);
        }
        let codes: Vec<u32> = self
            .registry
            .compartment_params(compartment, ty)
            .iter()
            .filter(|code| self.registry.param(ty, code).is_some())
            .map(|code| param_hash(code))
            .collect();
        for base in self.local_bases.iter() {
            let exact =
                ValueMatch::Exact(keys::url_key(&format!("{base}/{compartment}/{id}"), None));
            for h in &codes {
                members = members.union(&db.search_ids(ty, *h, &[(&exact, &accept_all)])?);
            }
        }
        Ok(members)
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The indexer hook writing what this engine reads.
    pub fn indexer(&self) -> Arc<dyn ResourceIndexer> {
        Arc::new(SearchIndexer::new(self.registry.clone()))
    }

    /// The fingerprint an index built by [`Engine::indexer`] carries: the registry's
    /// parameters, the zone of zone-less dates and the derived index layout
    /// ([`COMPARTMENT_CODE_PARAMS`], relative canonicals as `r` entries); an index built
    /// with another one is re-indexed at start-up (`Node::reindex_if_changed`).
    pub fn index_fingerprint(&self) -> [u8; 32] {
        let codes = format!(
            "compartment-code-params v1 {}",
            COMPARTMENT_CODE_PARAMS.join(",")
        );
        // v1: relative canonicals also written as `r Type/id` entries (issue 19).
        self.registry
            .fingerprint_with(&[&codes, "relative-canonical-references v1"])
    }

    /// All matches of `query` at `db`, in `_sort` order (by id without `_sort`).
    pub fn execute(&self, db: &Db, query: &Query) -> Result<Vec<ResourceHandle>, Error> {
        self.matches(db, query)?.into_handles(db)
    }

    /// Like [`Engine::execute`], resolving versions only when sorting needs them.
    pub fn matches(&self, db: &Db, query: &Query) -> Result<Matches, Error> {
        let set = self.evaluate(db, &query.resource_type, &query.clauses, None)?;
        self.sorted(db, &query.resource_type, set, &query.result.sort)
    }

    /// Number of matches of `query` at `db` (what `_summary=count` reports). A query of one
    /// parameter clause is counted from the index without building handles; others count
    /// [`Engine::execute`]'s result.
    pub fn count(&self, db: &Db, query: &Query) -> Result<usize, Error> {
        let ty = &query.resource_type;
        match query.clauses.as_slice() {
            [] => return Ok(db.type_total(ty)? as usize),
            [Clause::Param(p)]
                if !matches!(p.param.code.as_str(), "_id" | "_lastUpdated")
                    && !matches!(p.modifier, Some(Modifier::Not | Modifier::Missing))
                    && !is_hierarchy(p) =>
            {
                check_supported(p)?;
                let plans = plan_values(&p.param, &p.values, p.modifier.as_ref());
                let scans = value_scans(&plans);
                return Ok(db.count_search(ty, param_hash(&p.param.code), &scans)?);
            }
            _ => {}
        }
        Ok(self
            .evaluate(db, &query.resource_type, &query.clauses, None)?
            .len())
    }

    /// All matches of `query` inside the compartment `compartment/id` (e.g. `Patient/p1`), in
    /// `_sort` order. Resource types that are not members of the compartment match nothing.
    pub fn execute_in_compartment(
        &self,
        db: &Db,
        compartment: &str,
        id: &str,
        query: &Query,
    ) -> Result<Vec<ResourceHandle>, Error> {
        let ty = &query.resource_type;
        if let Some((_, p)) = self.compartment_indexed_clause(compartment, ty, &query.clauses)
            && query.clauses.len() == 1
            && query.result.sort.is_empty()
            && self.absolute_members(db, compartment, id, ty)?.is_empty()
        {
            // One code clause: the versions straight from the compartment index scan.
            let plans = plan_values(&p.param, &p.values, None);
            let scans = value_scans(&plans);
            return Ok(db.compartment_search_handles(
                (compartment, id),
                ty,
                param_hash(&p.param.code),
                &scans,
            )?);
        }
        self.matches_in_compartment(db, compartment, id, query)?
            .into_handles(db)
    }

    /// Like [`Engine::execute_in_compartment`], resolving versions only when sorting needs
    /// them.
    pub fn matches_in_compartment(
        &self,
        db: &Db,
        compartment: &str,
        id: &str,
        query: &Query,
    ) -> Result<Matches, Error> {
        let ty = &query.resource_type;
        if let Some((i, p)) = self.compartment_indexed_clause(compartment, ty, &query.clauses) {
            // A code clause answered by the CompartmentSearchParamValue index: only this
            // compartment's hits are read; the other clauses narrow them down.
            let plans = plan_values(&p.param, &p.values, None);
            let scans = value_scans(&plans);
            let base = db.compartment_search_ids(
                (compartment, id),
                ty,
                param_hash(&p.param.code),
                &scans,
            )?;
            let rest: Vec<Clause> = query
                .clauses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, c)| c.clone())
                .collect();
            let mut set = self.evaluate(db, ty, &rest, Some(base))?;
            // Members by absolute URL are not in the compartment index (it is written from
            // local references only): they are checked against every clause.
            let absolute = self.absolute_members(db, compartment, id, ty)?;
            if !absolute.is_empty() {
                set = set.union(&self.evaluate(db, ty, &query.clauses, Some(absolute))?);
            }
            return self.sorted(db, ty, set, &query.result.sort);
        }
        let key = keys::reference_key(compartment, id);
        let codes: Vec<u32> = self
            .registry
            .compartment_params(compartment, ty)
            .iter()
            .filter(|code| self.registry.param(ty, code).is_some())
            .map(|code| param_hash(code))
            .collect();
        let exact = ValueMatch::Exact(key);
        let mut members = IdList::new();
        for h in codes {
            members = members.union(&db.search_ids(ty, h, &[(&exact, &accept_all)])?);
        }
        members = members.union(&self.absolute_members(db, compartment, id, ty)?);
        if ty == compartment && db.resource(ty, id)?.is_some_and(|h| !h.is_deleted()) {
            members = members.union(&IdList::from_sorted([id]));
        }
        let set = self.evaluate(db, ty, &query.clauses, Some(members))?;
        self.sorted(db, ty, set, &query.result.sort)
    }

    /// The position of a clause of `clauses` (on `ty`, searched inside `compartment`) that
    /// the CompartmentSearchParamValue index answers: a token clause without modifier on a
    /// [`COMPARTMENT_CODE_PARAMS`] parameter, in the Patient compartment of another type.
    fn compartment_indexed_clause<'q>(
        &self,
        compartment: &str,
        ty: &str,
        clauses: &'q [Clause],
    ) -> Option<(usize, &'q ParamClause)> {
        if compartment != "Patient" || ty == compartment {
            return None;
        }
        if self.registry.compartment_params(compartment, ty).is_empty() {
            return None;
        }
        clauses.iter().enumerate().find_map(|(i, c)| match c {
            Clause::Param(p)
                if p.modifier.is_none()
                    && p.param.kind == ParamType::Token
                    && COMPARTMENT_CODE_PARAMS.contains(&p.param.code.as_str())
                    && p.values.iter().all(|q| matches!(q, QueryValue::Token(_))) =>
            {
                Some((i, p))
            }
            _ => None,
        })
    }

    /// Evaluates AND-ed clauses on `ty`, optionally within `base`.
    fn evaluate(
        &self,
        db: &Db,
        ty: &str,
        clauses: &[Clause],
        base: Option<Set>,
    ) -> Result<Set, Error> {
        let paired = self.pair_composites(ty, clauses);
        let clauses = paired.as_deref().unwrap_or(clauses);
        let (selective, broad): (Vec<&Clause>, Vec<&Clause>) =
            clauses.iter().partition(|c| self.is_selective(c));
        let mut acc = base;
        for c in selective {
            if acc.as_ref().is_some_and(IdList::is_empty) {
                return Ok(IdList::new());
            }
            let s = self.clause_set(db, ty, c)?;
            acc = Some(match acc {
                Some(a) => a.intersect(&s),
                None => s,
            });
        }
        for c in broad {
            if matches!(c, Clause::Or(_) | Clause::Not(_)) {
                acc = Some(self.combination_set(db, ty, c, acc)?);
                continue;
            }
            acc = Some(match acc {
                Some(a) if a.len() <= VERIFY_LIMIT => self.verify(db, ty, a, c)?,
                Some(a) => {
                    let limit = a.len().saturating_mul(BROAD_SCAN_FACTOR);
                    match self.bounded_clause_set(db, ty, c, limit)? {
                        Some(s) => a.intersect(&s),
                        None => self.verify(db, ty, a, c)?,
                    }
                }
                None => self.clause_set(db, ty, c)?,
            });
        }
        Ok(match acc {
            Some(a) => a,
            None => db.type_ids(ty)?,
        })
    }

    /// `clauses` with each pair of clauses that a composite of [`PAIRED_COMPOSITES`] answers
    /// replaced by one clause on the composite (a token clause with codes and a clause of
    /// the second component, both without modifier); `None` when there is no such pair.
    fn pair_composites(&self, ty: &str, clauses: &[Clause]) -> Option<Vec<Clause>> {
        let mut out: Option<Vec<Clause>> = None;
        for (_, composite) in self.paired.iter().filter(|(t, _)| t == ty) {
            let [lead, second] = [&composite.components[0], &composite.components[1]];
            loop {
                let current = out.as_deref().unwrap_or(clauses);
                let find = |url: &str, ok: fn(&QueryValue) -> bool| {
                    current.iter().position(|c| {
                        matches!(c, Clause::Param(p) if p.param.url == url
                            && p.modifier.is_none()
                            && !p.values.is_empty()
                            && p.values.iter().all(ok))
                    })
                };
                let codes = find(
                    &lead.param.url,
                    |q| matches!(q, QueryValue::Token(t) if t.code.is_some()),
                );
                let values = find(&second.param.url, |q| {
                    !matches!(q, QueryValue::Missing(_) | QueryValue::Composite(_))
                });
                let (Some(i), Some(j)) = (codes, values) else {
                    break;
                };
                let (Clause::Param(a), Clause::Param(b)) = (&current[i], &current[j]) else {
                    break;
                };
                if a.values.len() * b.values.len() > MAX_PAIRED_VALUES {
                    break;
                }
                let values = a
                    .values
                    .iter()
                    .flat_map(|x| {
                        b.values
                            .iter()
                            .map(|y| QueryValue::Composite(vec![x.clone(), y.clone()]))
                    })
                    .collect();
                let pair = Clause::Param(ParamClause {
                    param: composite.clone(),
                    modifier: None,
                    values,
                });
                let mut next: Vec<Clause> = current
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| *k != i && *k != j)
                    .map(|(_, c)| c.clone())
                    .collect();
                next.push(pair);
                out = Some(next);
            }
        }
        out
    }

    fn is_selective(&self, c: &Clause) -> bool {
        match c {
            Clause::Param(p) => {
                if p.param.code == "_id" {
                    return true;
                }
                if p.param.code == "_lastUpdated" {
                    return false;
                }
                if is_hierarchy(p) {
                    return true;
                }
                match &p.modifier {
                    Some(Modifier::Not | Modifier::Missing) => false,
                    m => p
                        .values
                        .iter()
                        .all(|q| keys::plan(q, m.as_ref()).is_none_or(|s| s.selective)),
                }
            }
            Clause::Chain { .. } | Clause::Has { .. } | Clause::List(_) => true,
            // Evaluated within what the selective clauses left (see `combination_set`).
            Clause::Or(_) | Clause::Not(_) => false,
        }
    }

    /// The resources of `base` (all current `ty` resources without one) matching `_filter`'s
    /// `or` (the union of each alternative's matches) or `not` (`base` without the matches of
    /// the negated clauses). Each alternative is evaluated within `base`, so a selective clause
    /// AND-ed with a combination bounds the work of the combination.
    fn combination_set(
        &self,
        db: &Db,
        ty: &str,
        c: &Clause,
        base: Option<Set>,
    ) -> Result<Set, Error> {
        match c {
            Clause::Or(alternatives) => {
                let mut out = IdList::new();
                for clauses in alternatives {
                    out = out.union(&self.evaluate(db, ty, clauses, base.clone())?);
                }
                Ok(out)
            }
            Clause::Not(clauses) => {
                let within = match base {
                    Some(b) => b,
                    None => db.type_ids(ty)?,
                };
                let matching = self.evaluate(db, ty, clauses, Some(within.clone()))?;
                Ok(within.difference(&matching))
            }
            _ => {
                let s = self.clause_set(db, ty, c)?;
                Ok(match base {
                    Some(b) => b.intersect(&s),
                    None => s,
                })
            }
        }
    }

    /// Keeps the resources of `set` (of type `ty`) matching broad clause `c`, reading their
    /// value blobs.
    fn verify(&self, db: &Db, ty: &str, set: Set, c: &Clause) -> Result<Set, Error> {
        let Clause::Param(p) = c else {
            return Ok(set.intersect(&self.clause_set(db, ty, c)?));
        };
        let handles = db.resources(ty, set.iter())?;
        if p.param.code == "_lastUpdated" {
            return last_updated_set(db, p, &handles);
        }
        check_supported(p)?;
        let h = param_hash(&p.param.code);
        let mut out = Vec::with_capacity(handles.len());
        for (handle, blob) in handles.iter().zip(db.index_values_many(&handles)?) {
            let values = blob.map(|b| blob_values(&b, h)).unwrap_or_default();
            if p.matches(&values).map_err(|e| unsupported(p, e.reason))? {
                out.push(handle.id.as_str());
            }
        }
        Ok(IdList::from_sorted(out))
    }

    /// [`Engine::clause_set`] of a broad clause, or `None` when it would read more than
    /// `limit` index entries.
    fn bounded_clause_set(
        &self,
        db: &Db,
        ty: &str,
        c: &Clause,
        limit: usize,
    ) -> Result<Option<Set>, Error> {
        let Clause::Param(p) = c else {
            return self.clause_set(db, ty, c).map(Some);
        };
        let whole_type = p.param.code == "_lastUpdated"
            || matches!(p.modifier, Some(Modifier::Not | Modifier::Missing));
        if whole_type {
            // These read every resource of the type.
            if db.type_total(ty)? as usize > limit {
                return Ok(None);
            }
            return self.clause_set(db, ty, c).map(Some);
        }
        check_supported(p)?;
        let plans = plan_values(&p.param, &p.values, p.modifier.as_ref());
        let scans = value_scans(&plans);
        Ok(db.search_ids_bounded(ty, param_hash(&p.param.code), &scans, limit)?)
    }

    /// The set of current `ty` resources matching one clause.
    fn clause_set(&self, db: &Db, ty: &str, c: &Clause) -> Result<Set, Error> {
        match c {
            Clause::Param(p) => self.param_set(db, ty, p),
            Clause::Chain { param, targets } => {
                let h = param_hash(&param.code);
                let mut out = IdList::new();
                for (target_type, inner) in targets {
                    let inner_set = self.clause_set(db, target_type, inner)?;
                    if inner_set.is_empty() {
                        continue;
                    }
                    let found = if inner_set.len() <= CHAIN_LOOKUP_LIMIT {
                        let matches: Vec<ValueMatch> = inner_set
                            .iter()
                            .map(|id| ValueMatch::Exact(keys::reference_key(target_type, id)))
                            .collect();
                        let scans: Vec<ValueScan<'_>> =
                            matches.iter().map(|m| (m, &accept_all as _)).collect();
                        db.search_ids(ty, h, &scans)?
                    } else {
                        let ids: HashSet<&str> = inner_set.iter().collect();
                        let mut pre = b"r".to_vec();
                        pre.extend_from_slice(target_type.as_bytes());
                        pre.push(b'/');
                        let tt = target_type.as_str();
                        let of_inner = |v: &[u8]| {
                            keys::parse_reference_key(v)
                                .is_some_and(|(t, id)| t == tt && ids.contains(id))
                        };
                        db.search_ids(ty, h, &[(&ValueMatch::Prefix(pre), &of_inner)])?
                    };
                    out = out.union(&found);
                }
                Ok(out)
            }
            Clause::Has {
                source_type,
                reference,
                inner,
            } => {
                let sources = self.clause_set(db, source_type, inner)?;
                let sources = db.resources(source_type, sources.iter())?;
                let h = param_hash(&reference.code);
                let mut ids = HashSet::new();
                for blob in db.index_values_many(&sources)? {
                    for v in blob.map(|b| blob_values(&b, h)).unwrap_or_default() {
                        if let IndexValue::Reference(ReferenceValue::Local {
                            type_name, id, ..
                        }) = v
                            && type_name == ty
                        {
                            ids.insert(id);
                        }
                    }
                }
                lookup(db, ty, ids)
            }
            Clause::Or(_) | Clause::Not(_) => self.combination_set(db, ty, c, None),
            Clause::List(_) => Err(SearchError::Unsupported {
                code: "_list".into(),
                reason: "list membership is not supported yet".into(),
            }
            .into()),
        }
    }

    fn param_set(&self, db: &Db, ty: &str, p: &ParamClause) -> Result<Set, Error> {
        if p.param.code == "_id" && p.modifier.is_none() {
            let ids = p.values.iter().filter_map(|q| match q {
                QueryValue::Token(t) => t.code.clone(),
                _ => None,
            });
            return lookup(db, ty, ids);
        }
        if p.param.code == "_lastUpdated" {
            let all = db.type_list(ty, None, usize::MAX)?;
            return last_updated_set(db, p, &all);
        }
        if is_hierarchy(p) {
            let values = self.hierarchy_values(db, p)?;
            return self.union_of_values(db, ty, &p.param, &values, None);
        }
        check_supported(p)?;
        let h = param_hash(&p.param.code);
        match &p.modifier {
            Some(Modifier::Missing) => {
                let mut out = IdList::new();
                for q in &p.values {
                    let QueryValue::Missing(missing) = q else {
                        continue;
                    };
                    let s = keys::any_value();
                    let has = db.search_ids(ty, h, &[(&s.range, &*s.filter)])?;
                    let part = if *missing {
                        db.type_ids(ty)?.difference(&has)
                    } else {
                        has
                    };
                    out = out.union(&part);
                }
                Ok(out)
            }
            Some(Modifier::Not) => {
                let positive = self.union_of_values(db, ty, &p.param, &p.values, None)?;
                Ok(db.type_ids(ty)?.difference(&positive))
            }
            m => self.union_of_values(db, ty, &p.param, &p.values, m.as_ref()),
        }
    }

    /// The plain reference values a reference `:above`/`:below` clause stands for: each
    /// value's target with its ancestors (`:above`) or descendants (`:below`) along the
    /// target type's circular reference parameters (those referencing only their own type:
    /// `Location.partof`, `Organization.partof`); cycles in the data end the walk.
    fn hierarchy_values(&self, db: &Db, p: &ParamClause) -> Result<Vec<QueryValue>, Error> {
        let below = p.modifier == Some(Modifier::Below);
        let mut out = Vec::new();
        for v in &p.values {
            let QueryValue::Reference(ReferenceQuery::Local {
                type_name,
                id,
                version: None,
            }) = v
            else {
                return Err(unsupported(
                    p,
                    "a hierarchy search takes `Type/id` or `id` (versions only on canonicals)",
                ));
            };
            let types: Vec<String> = match type_name {
                Some(t) => vec![t.clone()],
                None => p
                    .param
                    .target
                    .iter()
                    .filter(|t| !self.circular(t).is_empty())
                    .cloned()
                    .collect(),
            };
            if types.is_empty() {
                return Err(unsupported(
                    p,
                    "no target type has a hierarchy (a reference parameter to its own type only)",
                ));
            }
            for t in types {
                let circular = self.circular(&t);
                if circular.is_empty() {
                    return Err(unsupported(
                        p,
                        &format!(
                            "`{t}` has no hierarchy (no reference parameter of `{t}` to `{t}` only)"
                        ),
                    ));
                }
                let ids = if below {
                    descendants(db, &t, &circular, id)?
                } else {
                    ancestors(db, &t, &circular, id)?
                };
                out.extend(ids.into_iter().map(|id| {
                    QueryValue::Reference(ReferenceQuery::Local {
                        type_name: Some(t.clone()),
                        id,
                        version: None,
                    })
                }));
            }
        }
        Ok(out)
    }

    /// The circular reference parameters of `ty`: those whose only target is `ty`.
    fn circular(&self, ty: &str) -> Vec<ParamRef> {
        self.registry
            .params_of(ty)
            .filter(|q| q.kind == ParamType::Reference && q.target.len() == 1 && q.target[0] == ty)
            .cloned()
            .collect()
    }

    fn union_of_values(
        &self,
        db: &Db,
        ty: &str,
        param: &SearchParam,
        values: &[QueryValue],
        m: Option<&Modifier>,
    ) -> Result<Set, Error> {
        let plans = plan_values(param, values, m);
        let scans = value_scans(&plans);
        Ok(db.search_ids(ty, param_hash(&param.code), &scans)?)
    }

    /// The matches in `_sort` order (resources without a key last, then by id); in id order
    /// as ids without `_sort`.
    fn sorted(&self, db: &Db, ty: &str, set: Set, keys: &[SortKey]) -> Result<Matches, Error> {
        if keys.is_empty() {
            return Ok(Matches::Ids {
                type_name: ty.to_string(),
                ids: set,
            });
        }
        let handles = db.resources(ty, set.iter())?;
        // Blobs only when a key is a search parameter (not `_id` or `_lastUpdated`).
        let blobs = if keys.iter().any(|k| !is_meta_sort(&k.param)) {
            db.index_values_many(&handles)?
        } else {
            vec![None; handles.len()]
        };
        let mut keyed: Vec<(Vec<Option<SortValue>>, ResourceHandle)> = handles
            .into_iter()
            .zip(blobs)
            .map(|(h, blob)| {
                let blob = blob.unwrap_or_default();
                let ks = keys
                    .iter()
                    .map(|k| match k.param.code.as_str() {
                        "_id" => Some(SortValue::Text(h.id.clone())),
                        "_lastUpdated" => Some(SortValue::Instant(h.t as i64)),
                        code => sort_value(&blob_values(&blob, param_hash(code)), k.descending),
                    })
                    .collect();
                (ks, h)
            })
            .collect();
        keyed.sort_by(|(a, ha), (b, hb)| {
            for ((x, y), k) in a.iter().zip(b).zip(keys) {
                let o = match (x, y) {
                    (Some(x), Some(y)) if k.descending => y.cmp(x),
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            ha.id.cmp(&hb.id)
        });
        Ok(Matches::Handles(
            keyed.into_iter().map(|(_, h)| h).collect(),
        ))
    }

    /// The resources `_include` and `_revinclude` add to `page` (the page's matches), without
    /// duplicates and without the matches themselves, in discovery order.
    pub fn includes(
        &self,
        db: &Db,
        query: &Query,
        page: &[ResourceHandle],
    ) -> Result<Vec<ResourceHandle>, Error> {
        let r = &query.result;
        if r.include.is_empty() && r.revinclude.is_empty() {
            return Ok(Vec::new());
        }
        let mut seen: HashSet<(String, String)> = page
            .iter()
            .map(|h| (h.type_name.clone(), h.id.clone()))
            .collect();
        let mut out = Vec::new();
        let mut frontier: Vec<ResourceHandle> = page.to_vec();
        for round in 0..=MAX_ITERATE {
            let mut next = Vec::new();
            for inc in r.include.iter().filter(|i| round == 0 || i.iterate) {
                for h in frontier.iter().filter(|h| h.type_name == inc.source_type) {
                    for target in self.forward(db, h, inc)? {
                        if seen.insert((target.type_name.clone(), target.id.clone())) {
                            next.push(target);
                        }
                    }
                }
            }
            for inc in r.revinclude.iter().filter(|i| round == 0 || i.iterate) {
                for h in &frontier {
                    for source in self.reverse(db, h, inc)? {
                        if seen.insert((source.type_name.clone(), source.id.clone())) {
                            next.push(source);
                        }
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            out.extend(next.iter().cloned());
            frontier = next;
        }
        Ok(out)
    }

    /// Targets of `h`'s references through `inc`'s parameter (all reference parameters for `*`).
    fn forward(
        &self,
        db: &Db,
        h: &ResourceHandle,
        inc: &Include,
    ) -> Result<Vec<ResourceHandle>, Error> {
        let params: Vec<u32> = match &inc.param {
            Some(p) => vec![param_hash(&p.code)],
            None => self
                .registry
                .params_of(&h.type_name)
                .filter(|p| p.kind == ParamType::Reference)
                .map(|p| param_hash(&p.code))
                .collect(),
        };
        let mut out = Vec::new();
        for (ph, v) in db
            .index_values(h)?
            .map(|b| decode_blob(&b))
            .unwrap_or_default()
        {
            if !params.contains(&ph) {
                continue;
            }
            if let IndexValue::Reference(ReferenceValue::Local { type_name, id, .. }) = v
                && inc.target_type.as_ref().is_none_or(|t| *t == type_name)
                && let Some(t) = db.resource(&type_name, &id)?.filter(|t| !t.is_deleted())
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Resources of `inc.source_type` referencing `h` through `inc`'s parameter.
    fn reverse(
        &self,
        db: &Db,
        h: &ResourceHandle,
        inc: &Include,
    ) -> Result<Vec<ResourceHandle>, Error> {
        if inc.target_type.as_ref().is_some_and(|t| *t != h.type_name) {
            return Ok(Vec::new());
        }
        let params: Vec<&ParamRef> = match &inc.param {
            Some(p) => vec![p],
            None => self
                .registry
                .params_of(&inc.source_type)
                .filter(|p| p.kind == ParamType::Reference)
                .collect(),
        };
        let key = keys::reference_key(&h.type_name, &h.id);
        let mut out: BTreeMap<String, ResourceHandle> = BTreeMap::new();
        for p in params {
            for s in db.search(
                &inc.source_type,
                param_hash(&p.code),
                &ValueMatch::Exact(key.clone()),
            )? {
                out.insert(s.id.clone(), s);
            }
        }
        Ok(out.into_values().collect())
    }
}

/// The composites of [`PAIRED_COMPOSITES`] that `registry` defines as pinned, per resource
/// type of their base.
fn paired_composites(registry: &Registry) -> Vec<(String, ParamRef)> {
    let mut out = Vec::new();
    for pc in PAIRED_COMPOSITES {
        let Some(composite) = registry.by_url(pc.url) else {
            continue;
        };
        if composite.expression != pc.expression
            || composite.components.len() != pc.components.len()
        {
            continue;
        }
        for ty in &composite.base {
            let pinned = composite
                .components
                .iter()
                .zip(&pc.components)
                .all(|(c, p)| {
                    c.definition == p.definition
                        && c.expression == p.expression
                        && c.param.url == p.definition
                        && expression_for_type(&c.param.expression, ty) == p.param_expression
                });
            if pinned {
                out.push((ty.clone(), composite.clone()));
            }
        }
    }
    out
}

/// The parts of FHIRPath union `expression` (split at top-level ` | `) that start with
/// `ty.` or `(ty.`, joined again: a parameter's expression for one resource type.
fn expression_for_type(expression: &str, ty: &str) -> String {
    let dotted = format!("{ty}.");
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    let bytes = expression.as_bytes();
    for (k, b) in bytes.iter().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b'|' if depth == 0 => {
                parts.push(expression[start..k].trim());
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts
        .into_iter()
        .filter(|p| p.trim_start_matches('(').starts_with(&dotted))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Whether `p` is a reference `:above`/`:below` through a hierarchy (not on a canonical's
/// version).
fn is_hierarchy(p: &ParamClause) -> bool {
    p.param.kind == ParamType::Reference
        && matches!(p.modifier, Some(Modifier::Above | Modifier::Below))
        && !p.is_canonical_version_below()
}

/// `root` and the ids of the `ty` resources below it: those whose `circular` parameters
/// reference `root` or a resource below it (breadth first, each id once).
fn descendants(db: &Db, ty: &str, circular: &[ParamRef], root: &str) -> Result<Vec<String>, Error> {
    let mut seen: HashSet<String> = HashSet::from([root.to_string()]);
    let mut out = vec![root.to_string()];
    let mut frontier = vec![root.to_string()];
    while !frontier.is_empty() {
        let matches: Vec<ValueMatch> = frontier
            .iter()
            .map(|id| ValueMatch::Exact(keys::reference_key(ty, id)))
            .collect();
        let scans: Vec<ValueScan<'_>> = matches.iter().map(|m| (m, &accept_all as _)).collect();
        let mut next = Vec::new();
        for c in circular {
            for id in db.search_ids(ty, param_hash(&c.code), &scans)?.iter() {
                if seen.insert(id.to_string()) {
                    next.push(id.to_string());
                }
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    Ok(out)
}

/// `root` and the ids of the `ty` resources above it: those its `circular` parameters
/// reference, and theirs in turn (each id once).
fn ancestors(db: &Db, ty: &str, circular: &[ParamRef], root: &str) -> Result<Vec<String>, Error> {
    let mut seen: HashSet<String> = HashSet::from([root.to_string()]);
    let mut out = vec![root.to_string()];
    let mut frontier = vec![root.to_string()];
    while let Some(id) = frontier.pop() {
        let Some(h) = db.resource(ty, &id)?.filter(|h| !h.is_deleted()) else {
            continue;
        };
        let Some(blob) = db.index_values(&h)? else {
            continue;
        };
        for c in circular {
            for v in blob_values(&blob, param_hash(&c.code)) {
                if let IndexValue::Reference(ReferenceValue::Local { type_name, id, .. }) = v
                    && type_name == ty
                    && seen.insert(id.clone())
                {
                    out.push(id.clone());
                    frontier.push(id);
                }
            }
        }
    }
    Ok(out)
}

fn is_meta_sort(p: &ParamRef) -> bool {
    matches!(p.code.as_str(), "_id" | "_lastUpdated")
}

fn check_supported(p: &ParamClause) -> Result<(), Error> {
    match &p.modifier {
        Some(Modifier::In | Modifier::NotIn) => Err(unsupported(
            p,
            "value set membership needs a terminology service",
        )),
        Some(Modifier::Above | Modifier::Below)
            if p.param.kind != ParamType::Uri && !p.is_canonical_version_below() =>
        {
            Err(unsupported(
                p,
                "subsumption needs a terminology service or hierarchy",
            ))
        }
        _ => Ok(()),
    }
}

fn unsupported(p: &ParamClause, reason: &str) -> Error {
    SearchError::Unsupported {
        code: match &p.modifier {
            Some(m) => format!("{}:{}", p.param.code, m.as_str()),
            None => p.param.code.clone(),
        },
        reason: reason.to_string(),
    }
    .into()
}

fn last_updated_matches(db: &Db, p: &ParamClause, h: &ResourceHandle) -> Result<bool, Error> {
    let ms = db.instant(h.t)?;
    let v = IndexValue::Date(DateRange {
        start: ms,
        end: ms,
        floating: false,
    });
    Ok(p.matches(std::slice::from_ref(&v)).unwrap_or(false))
}

/// The ids of `handles` whose `_lastUpdated` matches `p`.
fn last_updated_set(db: &Db, p: &ParamClause, handles: &[ResourceHandle]) -> Result<Set, Error> {
    let mut ids = Vec::new();
    for h in handles {
        if last_updated_matches(db, p, h)? {
            ids.push(h.id.as_str());
        }
    }
    Ok(IdList::from_sorted(ids))
}

/// Current resources of `ty` with these ids.
fn lookup(db: &Db, ty: &str, ids: impl IntoIterator<Item = String>) -> Result<Set, Error> {
    let ids: Vec<String> = ids.into_iter().collect();
    let wanted = IdList::from_unsorted(ids.iter().map(String::as_str));
    let found = db.resources(ty, wanted.iter())?;
    Ok(IdList::from_sorted(found.iter().map(|h| h.id.as_str())))
}

/// The index scans of a clause's values under `modifier`.
fn plan_values(
    param: &SearchParam,
    values: &[QueryValue],
    modifier: Option<&Modifier>,
) -> Vec<Scan> {
    let mut out = Vec::with_capacity(values.len());
    for q in values {
        keys::plan_into(&param.target, q, modifier, &mut out);
    }
    out
}

/// Planned scans as the database's (value match, exact filter) pairs.
fn value_scans(plans: &[Scan]) -> Vec<ValueScan<'_>> {
    plans
        .iter()
        .map(|s| (&s.range, &*s.filter as &dyn Fn(&[u8]) -> bool))
        .collect()
}

/// The exact filter of a scan that keeps every value.
fn accept_all(_: &[u8]) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_query;

    fn paired(engine: &Engine, q: &str) -> Option<Vec<String>> {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let query = parse_query(engine.registry(), "Observation", &pairs).unwrap();
        let out = engine.pair_composites("Observation", &query.clauses)?;
        Some(
            out.iter()
                .map(|c| match c {
                    Clause::Param(p) => format!("{}:{}", p.param.code, p.values.len()),
                    _ => "other".into(),
                })
                .collect(),
        )
    }

    #[test]
    fn code_and_value_clauses_become_one_composite_clause() {
        let engine = Engine::new(Arc::new(Registry::r4()));
        assert_eq!(
            paired(&engine, "code=http://loinc.org|29463-7&value-quantity=lt60"),
            Some(vec!["code-value-quantity:1".into()])
        );
        assert_eq!(
            paired(&engine, "status=final&value-quantity=lt60,gt90&code=a,b,c"),
            Some(vec!["status:1".into(), "code-value-quantity:6".into()])
        );
        // Two pairs, each answered by the composite.
        assert_eq!(
            paired(&engine, "code=a&code=b&value-quantity=1&value-quantity=2"),
            Some(vec![
                "code-value-quantity:1".into(),
                "code-value-quantity:1".into()
            ])
        );
        // Left alone: no code, modifiers, one clause only, too many combinations.
        for q in [
            "code=http://loinc.org|&value-quantity=lt60",
            "code:not=a&value-quantity=lt60",
            "code=a&value-quantity:missing=true",
            "code=a",
            "value-quantity=1",
            "code=a,b,c,d,e,f,g,h,i&value-quantity=1,2,3,4,5,6,7,8",
        ] {
            assert_eq!(paired(&engine, q), None, "{q}");
        }
    }

    #[test]
    fn paired_composites_need_the_pinned_definitions() {
        // The core definitions still say what the pairing relies on.
        let engine = Engine::new(Arc::new(Registry::r4()));
        for pc in PAIRED_COMPOSITES {
            assert!(engine.registry().by_url(pc.url).is_some(), "{}", pc.url);
        }
        assert!(paired(&engine, "code=a&value-quantity=1").is_some());
        // A custom bundle that redefines the composite's value component switches it off.
        let mut reg = Registry::r4();
        let custom = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "SearchParameter", "id": "c",
                "url": "http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity",
                "code": "code-value-quantity", "base": ["Observation"], "type": "composite",
                "status": "active", "name": "c", "description": "c",
                "expression": "Observation | Observation.component",
                "component": [
                    {"definition": "http://hl7.org/fhir/SearchParameter/clinical-code",
                     "expression": "code"},
                    {"definition": "http://hl7.org/fhir/SearchParameter/Observation-value-quantity",
                     "expression": "value.as(Quantity)"}]}}]});
        reg.add_bundle(&serde_json::to_vec(&custom).unwrap())
            .unwrap();
        let engine = Engine::new(Arc::new(reg));
        assert_eq!(paired(&engine, "code=a&value-quantity=1"), None);
    }

    #[test]
    fn expression_for_type_keeps_the_parts_of_one_type() {
        assert_eq!(
            expression_for_type(
                "Condition.code | Observation.code | (X.y as Z)",
                "Observation"
            ),
            "Observation.code"
        );
        assert_eq!(
            expression_for_type(
                "(Observation.value as Quantity) | (Observation.value as SampledData)",
                "Observation"
            ),
            "(Observation.value as Quantity) | (Observation.value as SampledData)"
        );
        assert_eq!(
            expression_for_type("(A.b | Observation.c)", "Observation"),
            ""
        );
    }
}
