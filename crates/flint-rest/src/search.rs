//! Search interactions: type search (`GET [type]?…`, `POST [type]/_search`), system search
//! (`GET [base]?_type=…`), compartment search (`GET [base]/Patient/[id]/[type]?…`), page
//! links, and the searches behind conditional interactions.
//!
//! Every page of a search is computed at the database value `t` of its first page. Page links
//! (`[base]/__page/[token]`) carry the scope, the parameters, `t` and the offset sealed with
//! ChaCha20-Poly1305 under the server's page key: intermediaries never see the query (which
//! matters for `POST _search`), a changed link fails authentication (400) and links expire
//! after [`RestConfig::page_lifetime_ms`](crate::RestConfig::page_lifetime_ms) (410). Parameters
//! longer than [`PARAMS_INLINE_LIMIT`] are kept in the resource store for as long as their
//! links live (then deleted) and the token names their hash, so links stay short whatever the
//! search; a `POST _search` page's self link is its sealed link.

use crate::api::{
    Body, FhirRequest, Handling, Payload, Reply, Stored, StreamedBundle, StreamedEntry,
};
use crate::context::{Ctx, check_id, check_type};
use crate::outcome::{FhirError, FhirResult};
use axum::http::StatusCode;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use flint_db::{ContentHash, Db, ResourceHandle, T};
use flint_search::ParamType;
use flint_search::query::{
    Clause, Modifier, ParamClause, QueryValue, Summary, SystemMatch, TokenQuery, Total,
};
use flint_search::{Error as SearchError, Matches, Query, QueryParser};
use flint_search_core::Error as QueryError;
use flint_search_core::value::GeoPoint;
use flint_terminology::{Direction, Error as TerminologyError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

// The unit tests are in their own file, apart from the terminology functions at the end of
// this one.
#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;

pub use crate::config::PAGE_LIFETIME_MS;

/// Parameters that are not search criteria and never fail a search.
const TRANSPORT_PARAMS: [&str; 2] = ["_format", "_pretty"];

/// Where a search looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// One resource type.
    Type(String),
    /// All types, or those of `_type`.
    System,
    /// `[compartment]/[id]/[type]`.
    Compartment(String, String, String),
}

/// A search as the client asked for it: where it looks, with which parameters, what unknown
/// parameters do, and how it came. Every page of the search is answered from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// Where the search looks.
    pub scope: Scope,
    /// The search parameters in order (the URL's, then a `POST _search` form body's).
    pub params: Vec<(String, String)>,
    /// What unknown or unsupported parameters do (`Prefer: handling=`).
    pub handling: Handling,
    /// The search came as `POST [type]/_search`.
    pub post: bool,
}

impl SearchRequest {
    /// The search `req` asks for in `scope`: its parameters ([`request_params`]), its
    /// handling, and whether it came by POST.
    pub fn of(scope: Scope, req: &FhirRequest) -> FhirResult<SearchRequest> {
        Ok(SearchRequest {
            scope,
            params: request_params(req)?,
            handling: req.handling,
            post: req.method == "POST",
        })
    }
}

/// The sealed content of a page link. Its JSON form is what links carry, so it keeps its
/// field names and types (links made by other nodes or versions must open).
#[derive(Debug, Serialize, Deserialize)]
struct PageState {
    scope: Scope,
    params: Vec<(String, String)>,
    t: T,
    offset: usize,
    strict: bool,
    /// The search came as `POST _search`: links never show its parameters.
    #[serde(default)]
    post: bool,
    expires_ms: i64,
    /// The parameters were too long for a link ([`PARAMS_INLINE_LIMIT`]): they are kept in
    /// the resource store under this hash (hex) and `params` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kept: Option<String>,
}

impl PageState {
    /// The state of the link to `offset` of `req`'s results at `t`, valid until `expires_ms`;
    /// with `kept`, the hash under which the parameters are kept instead of the parameters.
    fn new(
        req: &SearchRequest,
        t: T,
        offset: usize,
        expires_ms: i64,
        kept: Option<&Kept>,
    ) -> PageState {
        PageState {
            scope: req.scope.clone(),
            params: if kept.is_some() {
                Vec::new()
            } else {
                req.params.clone()
            },
            t,
            offset,
            strict: req.handling == Handling::Strict,
            post: req.post,
            expires_ms,
            kept: kept.map(|k| k.hash.to_hex()),
        }
    }

    /// The search the link continues.
    fn request(&self) -> SearchRequest {
        SearchRequest {
            scope: self.scope.clone(),
            params: self.params.clone(),
            handling: if self.strict {
                Handling::Strict
            } else {
                Handling::Lenient
            },
            post: self.post,
        }
    }
}

/// The search parameters of a request: the URL's, plus a form body for `POST _search`.
pub fn request_params(req: &FhirRequest) -> FhirResult<Vec<(String, String)>> {
    let mut params = req.query.clone();
    match &req.payload {
        Payload::None => {}
        Payload::Raw(ct, bytes) if ct == "application/x-www-form-urlencoded" => {
            params.extend(form_urlencoded::parse(bytes).into_owned());
        }
        _ => {
            return Err(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                "A search with POST takes its parameters as application/x-www-form-urlencoded.",
            ));
        }
    }
    Ok(params)
}

/// Answers the first page of a search.
pub async fn search(ctx: &Ctx, req: SearchRequest) -> FhirResult<Reply> {
    match &req.scope {
        Scope::Type(ty) => check_type(ty)?,
        Scope::Compartment(c, id, ty) => {
            check_type(c)?;
            check_id(id)?;
            check_type(ty)?;
        }
        Scope::System => {}
    }
    let db = ctx.read_db().await?;
    run(ctx, &db, &req, 0, None).await
}

/// 410 `expired` once a page link's `expires_ms` has passed; `again` says what to redo.
pub(crate) fn check_not_expired(expires_ms: i64, again: &str) -> FhirResult<()> {
    if expires_ms < flint_db::mem::now_ms() {
        return Err(FhirError::new(
            StatusCode::GONE,
            "expired",
            format!("This page link has expired; {again}."),
        ));
    }
    Ok(())
}

/// `GET [base]/__page/[token]`.
pub async fn page(ctx: &Ctx, token: &str) -> FhirResult<Reply> {
    let state = open(ctx, token)?;
    check_not_expired(state.expires_ms, "run the search again")?;
    let mut req = state.request();
    let kept = match &state.kept {
        Some(hex) => {
            let (kept, params) = kept_params(ctx, hex, state.expires_ms).await?;
            req.params = params;
            Some(kept)
        }
        None => None,
    };
    let db = ctx.state.node().sync_to(state.t).await?;
    run(ctx, &db, &req, state.offset, kept).await
}

/// Parameter lists longer than this (as JSON bytes) are kept in the resource store and their
/// page links carry the hash, so that `next` links stay short however long the search (a
/// `POST _search` with thousands of references).
pub const PARAMS_INLINE_LIMIT: usize = 1024;

/// Parameters kept in the resource store for the page links of one search: their hash, and
/// when they are deleted (every link naming them expires then too).
#[derive(Debug, Clone, Copy)]
struct Kept {
    hash: ContentHash,
    until_ms: i64,
}

/// What is kept: the parameters and their expiry (so that a search kept again later, or by
/// another node, is kept apart, with its own deletion).
#[derive(Serialize, Deserialize)]
struct KeptParams {
    params: Vec<(String, String)>,
    until: i64,
}

/// Keeps `req`'s parameters in the resource store when they are too long for a page link,
/// until the links of this first page expire; `None` when links carry them.
async fn keep_params(ctx: &Ctx, req: &SearchRequest) -> FhirResult<Option<Kept>> {
    let len = serde_json::to_vec(&req.params).map_or(0, |b| b.len());
    if len <= PARAMS_INLINE_LIMIT {
        return Ok(None);
    }
    let until_ms = flint_db::mem::now_ms() + ctx.state.config().page_lifetime_ms;
    let kept = KeptParams {
        params: req.params.clone(),
        until: until_ms,
    };
    let bytes = serde_json::to_vec(&kept)
        .map_err(|e| FhirError::from(flint_db::DbError::fault(e.to_string())))?;
    let hash = ctx.state.node().keep_until(bytes.into(), until_ms).await?;
    Ok(Some(Kept { hash, until_ms }))
}

/// The parameters a page link's state names by hash: 410 when the store has them no more
/// (their time ran out, or a standalone server lost them in a crash before they were
/// synced). Parameters kept before they carried their expiry (a bare list) keep the link's.
async fn kept_params(
    ctx: &Ctx,
    hex: &str,
    link_expires_ms: i64,
) -> FhirResult<(Kept, Vec<(String, String)>)> {
    let gone = || {
        FhirError::new(
            StatusCode::GONE,
            "expired",
            "The parameters of this page link's search are gone; run the search again.",
        )
    };
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash).map_err(|_| gone())?;
    let hash = ContentHash(hash);
    let bytes = ctx.state.node().kept(&hash).await?.ok_or_else(gone)?;
    if ContentHash::of(&bytes) != hash {
        return Err(FhirError::from(flint_db::DbError::fault(format!(
            "the kept search parameters {} do not match their hash",
            hash.to_hex()
        ))));
    }
    let not_params = |e: serde_json::Error| {
        FhirError::from(flint_db::DbError::fault(format!(
            "the kept search parameters {} are not a parameter list: {e}",
            hash.to_hex()
        )))
    };
    let kept: KeptParams = if bytes.first() == Some(&b'[') {
        KeptParams {
            params: serde_json::from_slice(&bytes).map_err(not_params)?,
            until: link_expires_ms,
        }
    } else {
        serde_json::from_slice(&bytes).map_err(not_params)?
    };
    check_not_expired(kept.until, "run the search again")?;
    let k = Kept {
        hash,
        until_ms: kept.until,
    };
    Ok((k, kept.params))
}

/// The profiles stored in `db`: the canonical (`url|version`, or `url` without a version) of
/// every current StructureDefinition with `derivation` `constraint`, by its `type`, sorted.
pub async fn supported_profiles(ctx: &Ctx, db: &Db) -> FhirResult<crate::state::Profiles> {
    let params = [("derivation".to_string(), "constraint".to_string())];
    let found = matches(ctx, db, "StructureDefinition", &params)?;
    let mut out = crate::state::Profiles::new();
    for content in db.pull_many(&found).await? {
        let sd: Value = serde_json::from_slice(&content).map_err(|e| {
            FhirError::from(flint_db::DbError::fault(format!(
                "a stored StructureDefinition is not JSON: {e}"
            )))
        })?;
        let (Some(ty), Some(url)) = (sd["type"].as_str(), sd["url"].as_str()) else {
            continue;
        };
        let canonical = match sd["version"].as_str() {
            Some(v) => format!("{url}|{v}"),
            None => url.to_string(),
        };
        out.entry(ty.to_string()).or_default().push(canonical);
    }
    for list in out.values_mut() {
        list.sort();
        list.dedup();
    }
    Ok(out)
}

/// Parses `params` for `ty` (dropping transport parameters); strict handling turns the first
/// unknown or unsupported parameter into the error.
pub fn parse(
    ctx: &Ctx,
    ty: &str,
    params: &[(String, String)],
    handling: Handling,
) -> FhirResult<Query> {
    let params = query_params(ctx, ty, params);
    let q = QueryParser::new(ctx.state.registry())
        .parse(ty, &params)
        .map_err(search_error)?;
    if handling == Handling::Strict {
        q.strict().map_err(search_error)
    } else {
        Ok(q)
    }
}

/// The search parameters of `params` (without transport parameters and `_type`), references
/// to this server's own base URL made local.
fn query_params(ctx: &Ctx, ty: &str, params: &[(String, String)]) -> Vec<(String, String)> {
    let own = format!("{}/", ctx.base);
    params
        .iter()
        .filter(|(k, _)| !TRANSPORT_PARAMS.contains(&k.as_str()) && k != "_type")
        .map(|(k, v)| {
            // References to this server's own base URL are local references.
            if v.contains(&own) && is_reference_param(ctx, ty, k) {
                (k.clone(), v.replace(&own, ""))
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// A conditional write's search as its log command carries it ([`flint_db::TxCmd::condition`]:
/// the parameters [`parse`] reads, as a JSON array of pairs), for the indexer to check again.
pub fn condition(ctx: &Ctx, ty: &str, params: &[(String, String)]) -> String {
    serde_json::to_string(&query_params(ctx, ty, params)).unwrap_or_default()
}

/// Whether `key` (a parameter name with optional modifier) names a reference parameter of `ty`.
fn is_reference_param(ctx: &Ctx, ty: &str, key: &str) -> bool {
    let code = key.split([':', '.']).next().unwrap_or(key);
    ctx.state
        .registry()
        .param(ty, code)
        .is_some_and(|p| p.kind == flint_search::ParamType::Reference)
}

/// The OperationOutcome error of a search problem (400, with the parameter as expression).
pub fn search_error(e: impl Into<SearchError>) -> FhirError {
    let e = match e.into() {
        // A storage fault is the database's error (503), never a search problem.
        SearchError::Storage(e) => return e.into(),
        SearchError::Search(e) => e,
    };
    let at = match &e {
        QueryError::UnknownParameter { code, .. }
        | QueryError::UnknownModifier { code, .. }
        | QueryError::Unsupported { code, .. }
        | QueryError::InvalidValue { code, .. } => Some(code.clone()),
        _ => None,
    };
    let mut err = match &e {
        QueryError::UnknownResourceType(_) => FhirError::not_found(format!("{e}.")),
        _ => FhirError::invalid(format!("{e}.")),
    };
    if matches!(e, QueryError::Unsupported { .. }) {
        err.code = "not-supported";
    }
    match at {
        Some(a) => err.at(a),
        None => err,
    }
}

/// All current resources matching `params` on `ty` at `db` (strict parsing), for conditional
/// interactions.
pub fn matches(
    ctx: &Ctx,
    db: &Db,
    ty: &str,
    params: &[(String, String)],
) -> FhirResult<Vec<ResourceHandle>> {
    let q = parse(ctx, ty, params, Handling::Strict)?;
    if needs_stored(&q) {
        return Err(FhirError::unsupported(
            "Conditions with `:in`, `:not-in`, `:above`, `:below` or `_list` are not supported.",
        ));
    }
    ctx.state.engine().execute(db, &q).map_err(search_error)
}

/// `params` of a condition (conditional create, update or delete) with each parameter that
/// needs stored resources (token `:in`, `:not-in`, `:above`, `:below`, and `_list`) replaced
/// by the plain parameter it stands for at `db` (the value set's codes, the code system's
/// related codes, the lists' member ids), so [`matches`] and the indexer's second check
/// ([`condition`]) evaluate the same search. Such modifiers inside chains, `_has` or
/// `_filter` of a condition stay unsupported (422 from [`matches`]).
pub async fn resolve_condition(
    ctx: &Ctx,
    db: &Db,
    ty: &str,
    params: &[(String, String)],
) -> FhirResult<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(params.len());
    for (k, v) in params {
        let one = [(k.clone(), v.clone())];
        let mut q = parse(ctx, ty, &one, Handling::Strict)?;
        if !needs_stored(&q) {
            out.push((k.clone(), v.clone()));
            continue;
        }
        resolve_stored(ctx, db, &mut q).await?;
        let [Clause::Param(p)] = q.clauses.as_slice() else {
            out.push((k.clone(), v.clone()));
            continue;
        };
        let tokens: Vec<String> = p
            .values
            .iter()
            .filter_map(|q| match q {
                QueryValue::Token(t) => Some(token_text(t)),
                _ => None,
            })
            .collect();
        let not = p.modifier == Some(Modifier::Not);
        match (tokens.is_empty(), not) {
            // Excluding nothing: no constraint.
            (true, true) => {}
            // An empty value set or list: nothing matches (no id contains `#`).
            (true, false) => out.push(("_id".into(), "#none".into())),
            (false, _) => {
                let key = if not {
                    format!("{}:not", p.param.code)
                } else {
                    p.param.code.clone()
                };
                out.push((key, tokens.join(",")));
            }
        }
    }
    Ok(out)
}

/// A token query as a search value (`code`, `|code`, `system|code`, `system|`), escaped.
fn token_text(t: &TokenQuery) -> String {
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace(',', "\\,")
            .replace('|', "\\|")
            .replace('$', "\\$")
    };
    let code = t.code.as_deref().map(esc).unwrap_or_default();
    match &t.system {
        SystemMatch::Any => code,
        SystemMatch::None => format!("|{code}"),
        SystemMatch::Is(s) => format!("{}|{code}", esc(s)),
    }
}

/// Like [`matches`], without resolving versions yet (its length is cheap to know).
pub fn match_list(
    ctx: &Ctx,
    db: &Db,
    ty: &str,
    params: &[(String, String)],
) -> FhirResult<Matches> {
    let q = parse(ctx, ty, params, Handling::Strict)?;
    if needs_stored(&q) {
        return Err(FhirError::unsupported(
            "Conditions with `:in`, `:not-in`, `:above`, `:below` or `_list` are not supported.",
        ));
    }
    ctx.state.engine().matches(db, &q).map_err(search_error)
}

/// The versions of matches `offset..offset + count` of a result list's segments.
fn page_of(
    db: &Db,
    all: &[Matches],
    mut offset: usize,
    count: usize,
) -> FhirResult<Vec<ResourceHandle>> {
    let mut out = Vec::new();
    for m in all {
        if out.len() >= count {
            break;
        }
        if offset >= m.len() {
            offset -= m.len();
            continue;
        }
        out.extend(
            m.page(db, offset, count - out.len())
                .map_err(search_error)?,
        );
        offset = 0;
    }
    Ok(out)
}

/// The parameters that select the result list, in a canonical order (not the page size or
/// the result shape, which only change what a page shows).
fn cache_params(params: &[(String, String)]) -> String {
    let mut ps: Vec<&(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_count" | "_elements" | "_format" | "_pretty"))
        .collect();
    ps.sort();
    // Lengths first, so that no value (which may hold `&` or `=`) can make two different
    // parameter lists one key.
    let mut out = String::new();
    for (k, v) in ps {
        out.push_str(&format!("{}:{}:", k.len(), v.len()));
        out.push_str(k);
        out.push_str(v);
    }
    out
}

/// Whether a condition has search criteria (not only result parameters); conditional
/// interactions without criteria are refused.
pub fn has_criteria(ctx: &Ctx, ty: &str, params: &[(String, String)]) -> FhirResult<bool> {
    Ok(!parse(ctx, ty, params, Handling::Strict)?.clauses.is_empty())
}

/// Answers the page at `offset` of `req` at `db`, in phases: [`plan`] (parse one query per
/// searched type), [`result_list`] (resolve stored clauses, then compute the matches or reuse
/// those the first page computed), [`page_of`] (the page's versions), [`bundle_head`] (total
/// and links), [`page_entries`] (matches, then includes) and [`ignored_outcome`].
async fn run(
    ctx: &Ctx,
    db: &Db,
    req: &SearchRequest,
    offset: usize,
    kept: Option<Kept>,
) -> FhirResult<Reply> {
    let mut plan = plan(ctx, db, req)?;
    let (all, total) = result_list(ctx, db, req, &mut plan).await?;
    let page: Vec<ResourceHandle> = if plan.summary_count {
        Vec::new()
    } else {
        page_of(db, &all, offset, plan.count)?
    };
    // Later pages come with the hash their link carried; a first page keeps long parameters
    // once it has links to make.
    let kept = match kept {
        Some(h) => Some(h),
        None if needs_links(&plan) || req.post => keep_params(ctx, req).await?,
        None => None,
    };
    let head = bundle_head(ctx, db, req, &plan, offset, total, kept.as_ref())?;
    let mut entries = page_entries(ctx, db, &plan, &page).await?;
    if offset == 0 {
        entries.extend(ignored_outcome(&plan.queries));
    }
    Ok(Reply::new(
        200,
        Body::Bundle(StreamedBundle { head, entries }),
    ))
}

/// A search parsed at one database value: its queries and the shape of its pages.
struct Plan {
    /// One query per searched type (exactly one for type and compartment searches).
    queries: Vec<Query>,
    /// The result parameters (`_count`, `_summary`, `_elements`, `_total`) of the first query.
    result: flint_search::ResultParams,
    /// The page size: `_count` or the default, at most the configured maximum.
    count: usize,
    /// `_summary=count`: the bundle holds the total only.
    summary_count: bool,
}

/// Parses `req` into one query per searched type at `db`.
fn plan(ctx: &Ctx, db: &Db, req: &SearchRequest) -> FhirResult<Plan> {
    // Types named by `_type` are searched as asked (an inapplicable `_has` is an error).
    let typed = req.params.iter().any(|(k, _)| k == "_type");
    let queries = match &req.scope {
        Scope::Type(ty) | Scope::Compartment(_, _, ty) => {
            vec![parse(ctx, ty, &req.params, req.handling)?]
        }
        Scope::System => searched_types(db, &req.params)?
            .iter()
            .filter(|ty| typed || has_applies(ctx, ty, &req.params))
            .map(|ty| parse(ctx, ty, &req.params, req.handling))
            .collect::<FhirResult<Vec<_>>>()?,
    };
    let result = queries
        .first()
        .map(|q| q.result.clone())
        .unwrap_or_default();
    let cfg = ctx.state.config();
    let count = (result.count.map_or(cfg.default_page_size, |c| c as usize)).min(cfg.max_page_size);
    let summary_count = result.summary == Some(Summary::Count);
    Ok(Plan {
        queries,
        result,
        count,
        summary_count,
    })
}

/// Whether every `_has:[Type]:[reference]:...` parameter of a system search can hold for
/// resources of `ty`: its reference parameter may point at `ty`. The types it cannot are left
/// out of a search without `_type` (they match nothing) instead of failing it, so that
/// `[base]?_has:Observation:subject:code=x` finds the Patients, Groups, ... the Observations
/// point at (as Blaze). An unknown type or parameter is left to the parser to report.
fn has_applies(ctx: &Ctx, ty: &str, params: &[(String, String)]) -> bool {
    params.iter().all(|(k, _)| {
        let Some(rest) = k.strip_prefix("_has:") else {
            return true;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(src), Some(refp)) = (parts.next(), parts.next()) else {
            return true;
        };
        match ctx.state.registry().param(src, refp) {
            Some(p) if p.kind == ParamType::Reference => {
                p.target.is_empty() || p.target.iter().any(|t| t == ty)
            }
            _ => true,
        }
    })
}

/// The types a system search looks at: those of `_type` (each checked), else every type that
/// has resources at `db`.
fn searched_types(db: &Db, params: &[(String, String)]) -> FhirResult<Vec<String>> {
    match params.iter().find(|(k, _)| k == "_type") {
        Some((_, v)) => {
            let mut ts = Vec::new();
            for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                check_type(t).map_err(|e| e.at("_type"))?;
                ts.push(t.to_string());
            }
            Ok(ts)
        }
        None => {
            let mut present = Vec::new();
            for t in flint_model::defs::definitions().resource_types() {
                if db.type_total(t)? > 0 {
                    present.push(t.clone());
                }
            }
            Ok(present)
        }
    }
}

/// The complete result list of a search (one segment per query) and its total: reused from
/// the cache when an earlier request computed it at the same `t` (the list is immutable at
/// `t`; without it, paging through n results costs n²/count, and a repeated first page
/// searches again), else computed after [`resolve_stored`] rewrote the queries' stored
/// clauses. `_summary=count` searches only count (outside compartments, from the index
/// without handles) and keep their total in the count cache.
async fn result_list(
    ctx: &Ctx,
    db: &Db,
    req: &SearchRequest,
    plan: &mut Plan,
) -> FhirResult<(Arc<Vec<Matches>>, usize)> {
    let key = (
        format!("{:?}\u{0}{}", req.scope, cache_params(&req.params)),
        db.t(),
    );
    if plan.summary_count {
        if let Some(n) = ctx.state.counts().get(&key) {
            return Ok((Arc::new(Vec::new()), n));
        }
    } else if let Some(hit) = ctx.state.results().get(&key) {
        let n = hit.iter().map(Matches::len).sum();
        return Ok((hit, n));
    }
    for q in &mut plan.queries {
        if needs_stored(q) {
            resolve_stored(ctx, db, q).await?;
        }
    }
    let engine = ctx.state.engine();
    if plan.summary_count && !matches!(req.scope, Scope::Compartment(..)) {
        let mut n = 0;
        for q in &plan.queries {
            n += engine.count(db, q).map_err(search_error)?;
        }
        ctx.state.counts().insert(key, n);
        return Ok((Arc::new(Vec::new()), n));
    }
    let mut all: Vec<Matches> = Vec::new();
    for q in &plan.queries {
        let found = match &req.scope {
            Scope::Compartment(c, id, _) => engine.matches_in_compartment(db, c, id, q),
            _ => engine.matches(db, q),
        }
        .map_err(search_error)?;
        all.push(found);
    }
    let n = all.iter().map(Matches::len).sum();
    if plan.summary_count {
        ctx.state.counts().insert(key, n);
        return Ok((Arc::new(Vec::new()), n));
    }
    let all = Arc::new(all);
    ctx.state.results().insert(key, all.clone());
    Ok((all, n))
}

/// The searchset Bundle without entries: its total (unless `_total=none`) and its links
/// (self, and sealed first/previous/next page links unless only counting).
fn bundle_head(
    ctx: &Ctx,
    db: &Db,
    req: &SearchRequest,
    plan: &Plan,
    offset: usize,
    total: usize,
    kept: Option<&Kept>,
) -> FhirResult<Value> {
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset"});
    if plan.result.total != Some(Total::None) || plan.summary_count {
        bundle["total"] = json!(total);
    }
    // Links to kept parameters expire with them; the others live the configured time.
    let expires_ms = kept.map_or_else(
        || flint_db::mem::now_ms() + ctx.state.config().page_lifetime_ms,
        |k| k.until_ms,
    );
    let link = |off: usize| -> FhirResult<String> {
        seal(ctx, &PageState::new(req, db.t(), off, expires_ms, kept))
    };
    let count = plan.count;
    // A `POST _search` never shows its parameters: its self link is the sealed link of
    // this page.
    let self_url = if req.post {
        link(offset)?
    } else {
        self_link(ctx, &req.scope, &req.params, offset)
    };
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if needs_links(plan) {
        links.push(json!({"relation": "first", "url": link(0)?}));
        if offset > 0 {
            links.push(json!({"relation": "previous", "url": link(offset.saturating_sub(count))?}));
        }
        if offset + count < total {
            links.push(json!({"relation": "next", "url": link(offset + count)?}));
        }
    }
    bundle["link"] = Value::Array(links);
    Ok(bundle)
}

/// Whether a page has sealed page links (`first`, and `previous`/`next` where they apply):
/// all but `_summary=count` pages and `_count=0`.
fn needs_links(plan: &Plan) -> bool {
    !plan.summary_count && plan.count > 0
}

/// The entries of a page: its matches, then what each query includes for the matches of its
/// type; shaped by `_summary`/`_elements`.
async fn page_entries(
    ctx: &Ctx,
    db: &Db,
    plan: &Plan,
    page: &[ResourceHandle],
) -> FhirResult<Vec<StreamedEntry>> {
    let mut entries = Vec::with_capacity(page.len());
    let subset = Subset::of(&plan.result);
    let near = near_points(&plan.queries);
    let mut add = |handles: &[ResourceHandle], stored: Vec<Stored>, mode: &'static str| {
        for (h, s) in handles.iter().zip(stored) {
            let url = ctx.url(&h.type_name, &h.id);
            let distance = match near.get(h.type_name.as_str()) {
                Some(points) if mode == "match" => location_distance_km(&s, points),
                _ => None,
            };
            entries.push(match distance {
                None if subset.is_empty() => StreamedEntry::Stored(url, s, mode),
                None => StreamedEntry::Value(entry(&url, subset.apply(s.to_value()?), mode)),
                Some(km) => {
                    let mut e = entry(&url, subset.apply(s.to_value()?), mode);
                    e["search"] = json!({
                        "extension": [{
                            "url": LOCATION_DISTANCE,
                            "valueDistance": {"value": km, "unit": "km",
                                "system": "http://unitsofmeasure.org", "code": "km"}
                        }],
                        "mode": mode
                    });
                    StreamedEntry::Value(e)
                }
            });
        }
        Ok::<_, FhirError>(())
    };
    // A page of a list cached before a purge or history deletion may name versions that
    // are gone: they are left out (never read).
    let kept;
    let page = if db.removals_after() {
        kept = db.still_indexed(page)?;
        &kept[..]
    } else {
        page
    };
    add(page, stored_all(db, page).await?, "match")?;
    if !page.is_empty() {
        let engine = ctx.state.engine();
        for q in &plan.queries {
            let of_type: Vec<ResourceHandle> = page
                .iter()
                .filter(|h| h.type_name == q.resource_type)
                .cloned()
                .collect();
            let inc = engine.includes(db, q, &of_type).map_err(search_error)?;
            add(&inc, stored_all(db, &inc).await?, "include")?;
        }
    }
    Ok(entries)
}

/// The extension of a `near` match's `Bundle.entry.search` that gives its distance from the
/// searched point (R4 search, "near"; a `Distance` in km, as `near`'s default unit).
pub const LOCATION_DISTANCE: &str = "http://hl7.org/fhir/StructureDefinition/location-distance";

/// The points of each query's top-level `near` clauses, by resource type.
fn near_points(queries: &[Query]) -> std::collections::HashMap<&str, Vec<GeoPoint>> {
    let mut out: std::collections::HashMap<&str, Vec<GeoPoint>> = Default::default();
    for q in queries {
        for c in &q.clauses {
            if let Clause::Param(p) = c {
                for v in &p.values {
                    if let QueryValue::Near { point, .. } = v {
                        out.entry(q.resource_type.as_str())
                            .or_default()
                            .push(*point);
                    }
                }
            }
        }
    }
    out
}

/// The distance in km (to the metre) from the nearest of `points` to the resource's
/// `position`; `None` when it has none.
fn location_distance_km(s: &Stored, points: &[GeoPoint]) -> Option<f64> {
    let v: Value = serde_json::from_slice(&s.bytes).ok()?;
    let coordinate = |name: &str| -> Option<f64> {
        let n = &v["position"][name];
        n.as_f64().or_else(|| n.as_str()?.parse().ok())
    };
    let at = GeoPoint {
        latitude: coordinate("latitude")?,
        longitude: coordinate("longitude")?,
    };
    let m = points
        .iter()
        .map(|p| p.distance_m(&at))
        .fold(f64::INFINITY, f64::min);
    m.is_finite().then(|| m.round() / 1000.0)
}

/// The OperationOutcome entry warning about the parameters lenient handling ignored, if any
/// (first pages only).
fn ignored_outcome(queries: &[Query]) -> Option<StreamedEntry> {
    let ignored: Vec<String> = queries
        .iter()
        .flat_map(|q| q.ignored.iter().map(|e| e.to_string()))
        .collect();
    if ignored.is_empty() {
        return None;
    }
    let issues: Vec<Value> = ignored
        .iter()
        .map(|m| json!({"severity": "warning", "code": "not-supported", "diagnostics": format!("Ignored: {m}.")}))
        .collect();
    Some(StreamedEntry::Value(json!({
        "resource": {"resourceType": "OperationOutcome", "issue": issues},
        "search": {"mode": "outcome"}
    })))
}

fn entry(url: &str, resource: Value, mode: &str) -> Value {
    json!({
        "fullUrl": url,
        "resource": resource,
        "search": {"mode": mode}
    })
}

/// The stored versions of `handles`, in order.
pub(crate) async fn stored_all(db: &Db, handles: &[ResourceHandle]) -> FhirResult<Vec<Stored>> {
    let bytes = db.pull_many(handles).await?;
    // Results often come from a few transactions (bundles): look each instant up once.
    let mut last: Option<(flint_db::T, i64)> = None;
    let mut out = Vec::with_capacity(handles.len());
    for (h, b) in handles.iter().zip(bytes) {
        let instant_ms = match last {
            Some((t, ms)) if t == h.t => ms,
            _ => {
                let ms = db.instant(h.t)?;
                last = Some((h.t, ms));
                ms
            }
        };
        out.push(Stored {
            bytes: b,
            t: h.t,
            instant_ms,
        });
    }
    Ok(out)
}

/// `_summary` and `_elements` applied to each entry.
struct Subset {
    summary: Option<flint_model::subset::Summary>,
    elements: Vec<String>,
}

impl Subset {
    fn of(r: &flint_search::ResultParams) -> Subset {
        use flint_model::subset::Summary as S;
        Subset {
            summary: match r.summary {
                Some(Summary::True) => Some(S::True),
                Some(Summary::Text) => Some(S::Text),
                Some(Summary::Data) => Some(S::Data),
                _ => None,
            },
            elements: r.elements.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.summary.is_none() && self.elements.is_empty()
    }

    fn apply(&self, v: Value) -> Value {
        let mut v = v;
        if let Some(m) = self.summary {
            v = flint_model::subset::summary(&v, m);
        }
        if !self.elements.is_empty() {
            let names: Vec<&str> = self.elements.iter().map(String::as_str).collect();
            v = flint_model::subset::elements(&v, &names);
        }
        v
    }
}

/// The self link: the search as a GET URL (offset as `__offset` on later pages).
fn self_link(ctx: &Ctx, scope: &Scope, params: &[(String, String)], offset: usize) -> String {
    let path = match scope {
        Scope::Type(t) => t.clone(),
        Scope::System => String::new(),
        Scope::Compartment(c, id, t) => format!("{c}/{id}/{t}"),
    };
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.extend_pairs(params.iter());
    if offset > 0 {
        ser.append_pair("__offset", &offset.to_string());
    }
    let q = ser.finish();
    let base = if path.is_empty() {
        ctx.base.clone()
    } else {
        format!("{}/{path}", ctx.base)
    };
    if q.is_empty() {
        base
    } else {
        format!("{base}?{q}")
    }
}

fn cipher(ctx: &Ctx) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(Key::from_slice(&ctx.state.config().page_key))
}

fn seal(ctx: &Ctx, state: &PageState) -> FhirResult<String> {
    Ok(format!("{}/__page/{}", ctx.base, seal_token(ctx, state)?))
}

fn open(ctx: &Ctx, token: &str) -> FhirResult<PageState> {
    open_token(ctx, token)
}

/// `state` as JSON sealed with ChaCha20-Poly1305 under the server's page key, as URL-safe
/// Base64 (the token of a page link; operations that page use it too).
pub(crate) fn seal_token<S: Serialize>(ctx: &Ctx, state: &S) -> FhirResult<String> {
    let plain = serde_json::to_vec(state)
        .map_err(|e| FhirError::from(flint_db::DbError::fault(e.to_string())))?;
    let nonce: [u8; 12] = rand::random();
    let mut out = nonce.to_vec();
    let sealed = cipher(ctx)
        .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
        .map_err(|_| FhirError::from(flint_db::DbError::fault("cannot seal a page link")))?;
    out.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out))
}

/// The state [`seal_token`] sealed in `token`; 400 when the token was changed, made with
/// another key or holds another kind of state.
pub(crate) fn open_token<D: serde::de::DeserializeOwned>(ctx: &Ctx, token: &str) -> FhirResult<D> {
    let bad = || {
        FhirError::invalid(
            "Invalid page link: it was changed, or made by a server with another page key.",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    if raw.len() < 12 {
        return Err(bad());
    }
    let (nonce, sealed) = raw.split_at(12);
    let plain = cipher(ctx)
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| bad())?;
    serde_json::from_slice(&plain).map_err(|_| bad())
}

/// Whether a query has clauses that [`resolve_stored`] must rewrite.
pub(crate) fn needs_stored(q: &Query) -> bool {
    fn clause(c: &Clause) -> bool {
        match c {
            Clause::Param(p) => match p.modifier {
                Some(Modifier::In | Modifier::NotIn) => true,
                // Reference hierarchies are the engine's; uri `:above`/`:below` are prefixes.
                Some(Modifier::Above | Modifier::Below) => p.param.kind == ParamType::Token,
                _ => false,
            },
            Clause::Chain { targets, .. } => targets.iter().any(|(_, c)| clause(c)),
            Clause::Has { inner, .. } => clause(inner),
            Clause::List(_) => true,
            Clause::Or(alternatives) => alternatives.iter().flatten().any(clause),
            Clause::Not(clauses) => clauses.iter().any(clause),
        }
    }
    q.clauses.iter().any(clause)
}

/// Rewrites the clauses that need stored resources into plain ones before execution:
/// token `:in`/`:not-in` (the members of a ValueSet) and `:below`/`:above` (the code and its
/// descendants/ancestors in a CodeSystem), both from the state's terminology, and `_list`
/// (the members of stored Lists), recursively inside chains and `_has`.
pub async fn resolve_stored(ctx: &Ctx, db: &Db, query: &mut Query) -> FhirResult<()> {
    let ty = query.resource_type.clone();
    for c in &mut query.clauses {
        resolve_clause(ctx, db, &ty, c).await?;
    }
    Ok(())
}

fn resolve_clause<'a>(
    ctx: &'a Ctx,
    db: &'a Db,
    ty: &'a str,
    clause: &'a mut Clause,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = FhirResult<()>> + Send + 'a>> {
    Box::pin(async move {
        match clause {
            Clause::Param(p) => resolve_param(ctx, db, p).await,
            Clause::Chain { targets, .. } => {
                for (t, inner) in targets.iter_mut() {
                    resolve_clause(ctx, db, t, inner).await?;
                }
                Ok(())
            }
            Clause::Has {
                source_type, inner, ..
            } => {
                let st = source_type.clone();
                resolve_clause(ctx, db, &st, inner).await
            }
            Clause::Or(alternatives) => {
                for c in alternatives.iter_mut().flatten() {
                    resolve_clause(ctx, db, ty, c).await?;
                }
                Ok(())
            }
            Clause::Not(clauses) => {
                for c in clauses.iter_mut() {
                    resolve_clause(ctx, db, ty, c).await?;
                }
                Ok(())
            }
            Clause::List(ids) => {
                let mut members = Vec::new();
                for list_id in ids.iter() {
                    let Some(h) = db.resource("List", list_id)?.filter(|h| !h.is_deleted()) else {
                        continue;
                    };
                    let list = crate::interaction::materialize(db, &h).await?;
                    for e in list["entry"].as_array().into_iter().flatten() {
                        if let Some((t, id)) = e["item"]["reference"]
                            .as_str()
                            .and_then(|r| r.split_once('/'))
                            && t == ty
                            && !id.contains('/')
                        {
                            members.push(QueryValue::Token(TokenQuery {
                                system: SystemMatch::Any,
                                code: Some(id.to_string()),
                            }));
                        }
                    }
                }
                let param = ctx
                    .state
                    .registry()
                    .param(ty, "_id")
                    .cloned()
                    .ok_or_else(|| {
                        FhirError::invalid(format!("`_list` does not apply to `{ty}`.")).at("_list")
                    })?;
                *clause = Clause::Param(ParamClause {
                    param,
                    modifier: None,
                    values: members,
                });
                Ok(())
            }
        }
    })
}

async fn resolve_param(ctx: &Ctx, db: &Db, p: &mut ParamClause) -> FhirResult<()> {
    let code = |m: &str| format!("{}:{m}", p.param.code);
    match p.modifier.clone() {
        Some(m @ (Modifier::In | Modifier::NotIn)) => {
            let mut values = Vec::new();
            for v in &p.values {
                if let QueryValue::ValueSet(url) = v {
                    let members = ctx
                        .state
                        .terminology()
                        .expand(db, url)
                        .await
                        .map_err(|e| terminology_error(e).at(code(m.as_str())))?;
                    values.extend(members.into_iter().map(|c| {
                        QueryValue::Token(TokenQuery {
                            system: c.system.map_or(SystemMatch::Any, SystemMatch::Is),
                            code: c.code,
                        })
                    }));
                }
            }
            p.values = values;
            p.modifier = (m == Modifier::NotIn).then_some(Modifier::Not);
            Ok(())
        }
        Some(m @ (Modifier::Above | Modifier::Below)) if p.param.kind == ParamType::Token => {
            let mut values = Vec::new();
            for v in &p.values {
                let QueryValue::Token(TokenQuery {
                    system: SystemMatch::Is(system),
                    code: Some(c),
                }) = v
                else {
                    return Err(FhirError::invalid(format!(
                        "`:{}` needs a value `system|code`.",
                        m.as_str()
                    ))
                    .at(code(m.as_str())));
                };
                let direction = if m == Modifier::Below {
                    Direction::Descendants
                } else {
                    Direction::Ancestors
                };
                let related = ctx
                    .state
                    .terminology()
                    .closure(db, system, c, direction)
                    .await
                    .map_err(terminology_error)?
                    .ok_or_else(|| {
                        FhirError::invalid(format!(
                            "No CodeSystem with url `{system}` is stored, so `:{}` cannot be evaluated.",
                            m.as_str()
                        ))
                        .at(code(m.as_str()))
                    })?;
                values.extend(related.into_iter().map(|code| {
                    QueryValue::Token(TokenQuery {
                        system: SystemMatch::Is(system.clone()),
                        code: Some(code),
                    })
                }));
            }
            p.values = values;
            p.modifier = None;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The OperationOutcome error of a terminology problem: 400 for unknown ValueSets and
/// CodeSystems, 422 for unsupported filters, the database's error for storage faults.
fn terminology_error(e: TerminologyError) -> FhirError {
    match e {
        TerminologyError::Storage(e) => e.into(),
        TerminologyError::UnsupportedFilter { .. } => FhirError::unsupported(format!("{e}.")),
        _ => FhirError::invalid(format!("{e}.")),
    }
}
