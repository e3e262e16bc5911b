//! `[base]/[type]/[id]/$graph` (instance level of every type, GET or POST; OperationDefinition
//! `Resource-graph`): follows the links of a stored GraphDefinition from a resource and
//! answers a `searchset` Bundle with every resource reached, the start resource first, each
//! once. Off unless `ENABLE_OPERATION_GRAPH=true` (as in Blaze).
//!
//! Parameters (query parameters of a GET or POST, a `Parameters` body of a POST):
//!
//! * `graph` (1..1): the canonical url of a stored GraphDefinition, optionally
//!   `url|version`. Of several matching GraphDefinitions the one of the highest priority
//!   counts: status `active` before `draft` before `retired`, then the highest `version`
//!   (dot-separated parts, numeric parts compared as numbers), then the newest.
//!
//! # GraphDefinitions
//!
//! Two forms are read, also mixed in one GraphDefinition:
//!
//! * **R4**: `start` is the start resource's type; each `link` has a `path` (FHIRPath over
//!   the source resource yielding References, or reference strings) or, in each of its
//!   `target`s, `params` (a search on the target's `type` with `{ref}` replaced by the source
//!   resource's `Type/id`, e.g. `patient={ref}`); a `target`'s own `link`s continue from the
//!   resources it reached, recursively. References of a path link are followed only to
//!   resources of the target's `type` (when it has one).
//! * **R5 as extensions** (as Blaze reads them): the extension
//!   `http://hl7.org/fhir/5.0/StructureDefinition/extension-GraphDefinition.start`
//!   (`valueId`) names the start node and `….node` extensions (with `nodeId` and `type`
//!   extensions) define the nodes; a `link` carrying `….link.sourceId` and `….link.targetId`
//!   extensions goes from one node to another, by its `path` or by the search of a
//!   `….link.params` extension (`valueString`).
//!
//! The traversal is depth-first, all at one database value; a resource already reached is
//! not followed again (so cycles end). References to missing or deleted resources are
//! skipped. GraphDefinitions are compiled (paths parsed, searches checked) once per stored
//! version, by content hash.
//!
//! Errors: 400 `invalid` (expression `graph`) for a missing `graph`, and for a graph whose
//! start type is not the resource's; 404 for an unknown GraphDefinition (naming the url) or
//! start resource, 410 for a deleted start resource; 422 `processing` for a GraphDefinition
//! that can't be followed, naming the link (a path that does not parse or evaluate, a
//! search that does not parse, a link with both or neither of path and params, unknown
//! nodes); 503 for a storage fault.
//!
//! Compiled graphs are kept in the state's cache of compiled definitions (`AppState`), under
//! this operation's name and the content hash.

use super::{Level, OpFuture, Operation, Target};
use crate::api::StreamedEntry;
use crate::api::{Body, FhirRequest, Handling, Payload, Reply, Stored, StreamedBundle};
use crate::context::Ctx;
use crate::outcome::{FhirError, FhirResult};
use crate::resource;
use axum::http::StatusCode;
use flint_db::{ContentHash, Db, ResourceHandle};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The registration of `$graph`.
pub const OPERATION: Operation = Operation {
    name: "graph",
    definition: "http://hl7.org/fhir/OperationDefinition/Resource-graph",
    levels: &[Level::Instance],
    types: &[],
    methods: &["GET", "POST"],
    run,
};

/// The prefix of the extensions carrying R5 GraphDefinition elements in R4.
pub const EXTENSION_BASE: &str =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-GraphDefinition";

/// How deep R4 `target.link`s may nest.
const MAX_DEPTH: usize = 32;

/// A compiled GraphDefinition: nodes (resource types) and the links between them.
#[derive(Debug)]
pub struct Graph {
    /// The url of the GraphDefinition (for messages).
    url: String,
    /// The start node.
    start: usize,
    /// The nodes.
    nodes: Vec<GraphNode>,
}

/// A node: the type of the resources it stands for (any type when absent) and its links.
#[derive(Debug)]
struct GraphNode {
    /// The node's id (R5 `nodeId`, or the element of an R4 target).
    id: String,
    /// The resource type.
    type_name: Option<String>,
    /// The links from this node, in order.
    links: Vec<Link>,
}

/// A link from a node to a node.
#[derive(Debug)]
struct Link {
    /// The element that defines it (`GraphDefinition.link[0].target[1]`), for messages.
    name: String,
    /// The target node.
    target: usize,
    /// How the target resources are found.
    how: How,
}

/// How a link finds its target resources.
#[derive(Debug)]
enum How {
    /// A FHIRPath over the source resource yielding references.
    Path(flint_fhirpath::Expression),
    /// A search on the target type, `{ref}` in the values standing for the source's
    /// `Type/id`.
    Params(Vec<(String, String)>),
}

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(graph(ctx, target, req))
}

async fn graph(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> FhirResult<Reply> {
    let Target::Instance(ty, id) = target else {
        return Err(FhirError::invalid(
            "`$graph` is invoked on a resource: [type]/[id]/$graph.",
        ));
    };
    let canonical = graph_param(req)?;
    let db = ctx.read_db().await?;
    let start = db
        .resource(ty, id)?
        .ok_or_else(|| FhirError::not_found(format!("Resource `{ty}/{id}` was not found.")))?;
    if start.is_deleted() {
        return Err(crate::interaction::gone(&db, &start));
    }
    let (hash, definition) = graph_definition(ctx, &db, &canonical).await?;
    let compiled = compiled(ctx, hash, &definition);
    let graph = compiled.as_ref().as_ref().map_err(Clone::clone)?;
    if let Some(start_type) = &graph.nodes[graph.start].type_name
        && start_type != ty
    {
        return Err(FhirError::invalid(format!(
            "The GraphDefinition `{canonical}` starts at `{start_type}`, not at `{ty}`."
        ))
        .at("graph"));
    }
    let found = traverse(ctx, &db, graph, start).await?;
    let self_url = format!(
        "{}/{ty}/{id}/$graph?graph={}",
        ctx.base,
        form_urlencoded::byte_serialize(canonical.as_bytes()).collect::<String>()
    );
    let head = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": found.len(),
        "link": [{"relation": "self", "url": self_url}],
    });
    let entries = found
        .into_iter()
        .map(|(url, s)| StreamedEntry::Stored(url, s, "match"))
        .collect();
    Ok(Reply::new(
        200,
        Body::Bundle(StreamedBundle { head, entries }),
    ))
}

/// The compiled form of the stored GraphDefinition `definition` with content hash `hash`
/// (or the error that it can't be followed), from the state's cache or compiled now.
fn compiled(ctx: &Ctx, hash: ContentHash, definition: &Value) -> Arc<FhirResult<Graph>> {
    let key = (OPERATION.name, hash);
    if let Some(g) = ctx
        .state
        .compiled()
        .get(&key)
        .and_then(|v| v.downcast::<FhirResult<Graph>>().ok())
    {
        return g;
    }
    let g = Arc::new(compile(ctx, definition));
    ctx.state.compiled().insert(key, g.clone());
    g
}

/// The `graph` parameter: of the query, or of a POST's `Parameters` body.
fn graph_param(req: &FhirRequest) -> FhirResult<String> {
    let mut values: Vec<String> = req
        .query
        .iter()
        .filter(|(k, _)| k == "graph")
        .map(|(_, v)| v.clone())
        .collect();
    if !matches!(req.payload, Payload::None) {
        let body = crate::context::payload_resource("Parameters", &req.payload)?;
        if resource::type_of(&body) != "Parameters" {
            return Err(FhirError::invalid(
                "The body of a POST `$graph` must be a Parameters resource.",
            ));
        }
        for p in body["parameter"].as_array().into_iter().flatten() {
            if p["name"] != "graph" {
                continue;
            }
            let v = ["valueUri", "valueCanonical", "valueUrl", "valueString"]
                .iter()
                .find_map(|k| p[*k].as_str())
                .ok_or_else(|| {
                    FhirError::invalid("The parameter `graph` has no uri value.").at("graph")
                })?;
            values.push(v.to_string());
        }
    }
    match values.as_slice() {
        [] => Err(FhirError::invalid("Missing required parameter `graph`.").at("graph")),
        [one] if one.trim().is_empty() => {
            Err(FhirError::invalid("The parameter `graph` is empty.").at("graph"))
        }
        [one] => Ok(one.trim().to_string()),
        _ => Err(FhirError::invalid("The parameter `graph` is given more than once.").at("graph")),
    }
}

/// The stored GraphDefinition of canonical `url|version` (or `url`) of the highest priority
/// ([`priority`]), with the content hash of its version.
async fn graph_definition(ctx: &Ctx, db: &Db, canonical: &str) -> FhirResult<(ContentHash, Value)> {
    let (url, version) = match canonical.split_once('|') {
        Some((u, v)) if !v.is_empty() => (u, Some(v)),
        Some((u, _)) => (u, None),
        None => (canonical, None),
    };
    let mut params = vec![("url".to_string(), url.to_string())];
    if let Some(v) = version {
        params.push(("version".into(), v.into()));
    }
    let handles = crate::search::matches(ctx, db, "GraphDefinition", &params)?;
    let mut best: Option<(ResourceHandle, Value)> = None;
    for h in handles {
        let v = crate::interaction::materialize(db, &h).await?;
        // The search matches url and version; check them again for exactness.
        if v["url"].as_str() != Some(url)
            || version.is_some_and(|want| v["version"].as_str() != Some(want))
        {
            continue;
        }
        let better = match &best {
            None => true,
            Some((bh, bv)) => priority((&h, &v), (bh, bv)) == Ordering::Greater,
        };
        if better {
            best = Some((h, v));
        }
    }
    let (h, v) = best.ok_or_else(|| {
        FhirError::not_found(format!("The GraphDefinition `{canonical}` was not found."))
            .at("graph")
    })?;
    Ok((h.hash, v))
}

/// How two canonical resources of one url rank: status (`active`, `draft`, `retired`,
/// others), then version ([`version_cmp`]), then the newer `t`, then the greater id.
fn priority(a: (&ResourceHandle, &Value), b: (&ResourceHandle, &Value)) -> Ordering {
    fn status(v: &Value) -> u8 {
        match v["status"].as_str() {
            Some("active") => 3,
            Some("draft") => 2,
            Some("retired") => 1,
            _ => 0,
        }
    }
    status(a.1)
        .cmp(&status(b.1))
        .then_with(|| version_cmp(a.1["version"].as_str(), b.1["version"].as_str()))
        .then_with(|| a.0.t.cmp(&b.0.t))
        .then_with(|| a.0.id.cmp(&b.0.id))
}

/// Compares versions by their dot-separated parts: numeric parts as numbers and before
/// text parts, text parts as text; a version with more parts after an equal prefix is the
/// greater; no version is less than any.
fn version_cmp(a: Option<&str>, b: Option<&str>) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Less,
        (Some(_), None) => return Ordering::Greater,
        (Some(a), Some(b)) => (a, b),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let mut pa = a.split('.');
    let mut pb = b.split('.');
    loop {
        let o = match (pa.next(), pb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (numeric(x), numeric(y)) {
                (true, true) => {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => x.cmp(y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
}

/// A 422 about the GraphDefinition `url`'s element `at`.
fn unprocessable(url: &str, at: &str, message: impl std::fmt::Display) -> FhirError {
    FhirError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "processing",
        format!("The GraphDefinition `{url}` can't be followed: {message}."),
    )
    .at(at.to_string())
}

/// The value of extension `url` among `extensions` (its `value[x]`).
fn extension_value<'v>(extensions: &'v Value, url: &str) -> Option<&'v Value> {
    extensions
        .as_array()?
        .iter()
        .find(|e| e["url"] == url)
        .and_then(|e| {
            e.as_object()?
                .iter()
                .find_map(|(k, v)| k.starts_with("value").then_some(v))
        })
}

/// The string value of extension `url` among `extensions`.
fn extension_str<'v>(extensions: &'v Value, url: &str) -> Option<&'v str> {
    extension_value(extensions, url).and_then(Value::as_str)
}

/// Builds a [`Graph`] from a GraphDefinition.
struct Compiler<'c> {
    ctx: &'c Ctx,
    url: String,
    nodes: Vec<GraphNode>,
    by_id: HashMap<String, usize>,
}

/// Compiles a stored GraphDefinition (R4, with R5 elements as extensions).
fn compile(ctx: &Ctx, definition: &Value) -> FhirResult<Graph> {
    let url = definition["url"].as_str().unwrap_or_default().to_string();
    let mut c = Compiler {
        ctx,
        url: url.clone(),
        nodes: Vec::new(),
        by_id: HashMap::new(),
    };
    let ext = &definition["extension"];
    for (i, node) in ext
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, e)| e["url"] == format!("{EXTENSION_BASE}.node"))
    {
        let at = format!("GraphDefinition.extension[{i}]");
        let id = extension_str(&node["extension"], "nodeId")
            .ok_or_else(|| unprocessable(&url, &at, "a node has no `nodeId`"))?;
        let type_name = extension_str(&node["extension"], "type");
        if c.by_id.contains_key(id) {
            return Err(unprocessable(
                &url,
                &at,
                format!("the node `{id}` is defined twice"),
            ));
        }
        let n = c.node(id, type_name, &at)?;
        c.by_id.insert(id.to_string(), n);
    }
    let start = match extension_str(ext, &format!("{EXTENSION_BASE}.start")) {
        Some(id) => *c.by_id.get(id).ok_or_else(|| {
            unprocessable(
                &url,
                "GraphDefinition.extension",
                format!("the start node `{id}` is not a node"),
            )
        })?,
        None => {
            let ty = definition["start"].as_str().ok_or_else(|| {
                unprocessable(&url, "GraphDefinition.start", "it has no start type")
            })?;
            c.node("start", Some(ty), "GraphDefinition.start")?
        }
    };
    for (i, link) in definition["link"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("GraphDefinition.link[{i}]");
        let link_ext = &link["extension"];
        match extension_str(link_ext, &format!("{EXTENSION_BASE}.link.sourceId")) {
            Some(source) => {
                let node = |id: Option<&str>, what: &str| -> FhirResult<usize> {
                    let id = id.ok_or_else(|| {
                        unprocessable(&url, &at, format!("the link `{at}` has no {what}"))
                    })?;
                    c.by_id.get(id).copied().ok_or_else(|| {
                        unprocessable(
                            &url,
                            &at,
                            format!("the {what} `{id}` of the link `{at}` is not a node"),
                        )
                    })
                };
                let source = node(Some(source), "sourceId")?;
                let target = node(
                    extension_str(link_ext, &format!("{EXTENSION_BASE}.link.targetId")),
                    "targetId",
                )?;
                let params = extension_str(link_ext, &format!("{EXTENSION_BASE}.link.params"));
                let how = c.how(&at, link["path"].as_str(), params, source, target)?;
                c.nodes[source].links.push(Link {
                    name: at,
                    target,
                    how,
                });
            }
            None => c.r4_link(start, link, &at, 0)?,
        }
    }
    Ok(Graph {
        url,
        start,
        nodes: c.nodes,
    })
}

impl Compiler<'_> {
    /// Adds a node of `type_name` (a resource type, checked; any type when absent).
    fn node(&mut self, id: &str, type_name: Option<&str>, at: &str) -> FhirResult<usize> {
        if let Some(ty) = type_name
            && !flint_model::defs::definitions().is_resource_type(ty)
        {
            return Err(unprocessable(
                &self.url,
                at,
                format!("`{ty}` of `{at}` is not a resource type"),
            ));
        }
        self.nodes.push(GraphNode {
            id: id.to_string(),
            type_name: type_name.map(str::to_string),
            links: Vec::new(),
        });
        Ok(self.nodes.len() - 1)
    }

    /// Adds the R4 `link` (element `at`) from node `source`: one link per target, each
    /// target's links from its node, recursively.
    fn r4_link(&mut self, source: usize, link: &Value, at: &str, depth: usize) -> FhirResult<()> {
        if depth > MAX_DEPTH {
            return Err(unprocessable(
                &self.url,
                at,
                format!("links nest deeper than {MAX_DEPTH} levels"),
            ));
        }
        let path = link["path"].as_str();
        let targets = link["target"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        if targets.is_empty() {
            if path.is_none() {
                return Err(unprocessable(
                    &self.url,
                    at,
                    format!("the link `{at}` has neither a path nor a target"),
                ));
            }
            // A path without targets: its references to resources of any type.
            let target = self.node(at, None, at)?;
            let how = self.how(at, path, None, source, target)?;
            self.nodes[source].links.push(Link {
                name: at.to_string(),
                target,
                how,
            });
            return Ok(());
        }
        for (j, t) in targets.iter().enumerate() {
            let tat = format!("{at}.target[{j}]");
            let target = self.node(&tat, t["type"].as_str(), &tat)?;
            let how = self.how(&tat, path, t["params"].as_str(), source, target)?;
            self.nodes[source].links.push(Link {
                name: tat.clone(),
                target,
                how,
            });
            for (k, inner) in t["link"].as_array().into_iter().flatten().enumerate() {
                self.r4_link(target, inner, &format!("{tat}.link[{k}]"), depth + 1)?;
            }
        }
        Ok(())
    }

    /// How the link `at` from `source` to `target` finds its resources: by `path` or by the
    /// search `params` (exactly one of them).
    fn how(
        &self,
        at: &str,
        path: Option<&str>,
        params: Option<&str>,
        source: usize,
        target: usize,
    ) -> FhirResult<How> {
        match (path, params) {
            (Some(_), Some(_)) => Err(unprocessable(
                &self.url,
                at,
                format!("the link `{at}` has both a path and params"),
            )),
            (None, None) => Err(unprocessable(
                &self.url,
                at,
                format!("the link `{at}` has neither a path nor params"),
            )),
            (Some(p), None) => flint_fhirpath::compile(p).map(How::Path).map_err(|e| {
                unprocessable(
                    &self.url,
                    at,
                    format!(
                        "the path `{p}` of the link `{at}` does not parse: {}",
                        e.message
                    ),
                )
            }),
            (None, Some(q)) => {
                let Some(ty) = &self.nodes[target].type_name else {
                    return Err(unprocessable(
                        &self.url,
                        at,
                        format!(
                            "the link `{at}` searches, but its target `{}` has no type",
                            self.nodes[target].id
                        ),
                    ));
                };
                let pairs: Vec<(String, String)> = crate::context::query_pairs(q);
                if pairs.is_empty() {
                    return Err(unprocessable(
                        &self.url,
                        at,
                        format!("the params of the link `{at}` are empty"),
                    ));
                }
                // Checked once with a stand-in reference of the source's type.
                let source_type = self.nodes[source].type_name.as_deref().unwrap_or("Patient");
                let probe = substitute(&pairs, &format!("{source_type}/graph-probe"));
                crate::search::parse(self.ctx, ty, &probe, Handling::Strict).map_err(|e| {
                    unprocessable(
                        &self.url,
                        at,
                        format!(
                            "the params `{q}` of the link `{at}` are not a search of `{ty}`: {}",
                            e.message.trim_end_matches('.')
                        ),
                    )
                })?;
                Ok(How::Params(pairs))
            }
        }
    }
}

/// `params` with `{ref}` replaced by `reference`.
fn substitute(params: &[(String, String)], reference: &str) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| (k.clone(), v.replace("{ref}", reference)))
        .collect()
}

/// The resources reached from `start` (on the graph's start node) at `db`, depth-first,
/// each once: their URLs and stored versions, the start resource first.
async fn traverse(
    ctx: &Ctx,
    db: &Db,
    graph: &Graph,
    start: ResourceHandle,
) -> FhirResult<Vec<(String, Stored)>> {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![(graph.start, start)];
    while let Some((node, h)) = stack.pop() {
        if !seen.insert((h.type_name.clone(), h.id.clone())) {
            continue;
        }
        let stored = crate::interaction::pull(db, &h).await?;
        let links = &graph.nodes[node].links;
        if !links.is_empty() {
            let value = stored.to_value()?;
            let mut next = Vec::new();
            for link in links {
                for t in follow(ctx, db, graph, link, &h, &value).await? {
                    if !seen.contains(&(t.type_name.clone(), t.id.clone())) {
                        next.push((link.target, t));
                    }
                }
            }
            // The first link's first resource is visited next.
            stack.extend(next.into_iter().rev());
        }
        out.push((ctx.url(&h.type_name, &h.id), stored));
    }
    Ok(out)
}

/// The current resources `link` reaches from the resource `h` (whose content is `value`).
async fn follow(
    ctx: &Ctx,
    db: &Db,
    graph: &Graph,
    link: &Link,
    h: &ResourceHandle,
    value: &Value,
) -> FhirResult<Vec<ResourceHandle>> {
    let target_type = graph.nodes[link.target].type_name.as_deref();
    match &link.how {
        How::Path(expr) => {
            let items = expr.evaluate(value).map_err(|e| {
                unprocessable(
                    &graph.url,
                    &link.name,
                    format!(
                        "the path `{}` of the link `{}` fails on `{}/{}`: {}",
                        expr.source(),
                        link.name,
                        h.type_name,
                        h.id,
                        e.message
                    ),
                )
            })?;
            let mut out = Vec::new();
            for item in &items {
                let reference = match item {
                    flint_fhirpath::Item::String(s) => Some(s.as_ref()),
                    flint_fhirpath::Item::Node(n) => n.value().and_then(|v| match v {
                        Value::String(s) => Some(s.as_str()),
                        v => v["reference"].as_str(),
                    }),
                    _ => None,
                };
                let Some((ty, id)) = reference.and_then(|r| resource::local_ref(r, &ctx.base))
                else {
                    continue;
                };
                if target_type.is_some_and(|t| t != ty) {
                    continue;
                }
                if let Some(t) = db.resource(ty, id)?.filter(|t| !t.is_deleted()) {
                    out.push(t);
                }
            }
            Ok(out)
        }
        How::Params(params) => {
            // A params link always has a typed target (checked when compiled).
            let ty = target_type.unwrap_or(&h.type_name);
            let params = substitute(params, &format!("{}/{}", h.type_name, h.id));
            let mut query =
                crate::search::parse(ctx, ty, &params, Handling::Strict).map_err(|e| {
                    match e.status {
                        StatusCode::SERVICE_UNAVAILABLE | StatusCode::INTERNAL_SERVER_ERROR => e,
                        _ => unprocessable(&graph.url, &link.name, e.message.trim_end_matches('.')),
                    }
                })?;
            if crate::search::needs_stored(&query) {
                crate::search::resolve_stored(ctx, db, &mut query).await?;
            }
            ctx.state
                .engine()
                .execute(db, &query)
                .map_err(crate::search::search_error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_parts() {
        let c = |a, b| version_cmp(Some(a), Some(b));
        assert_eq!(c("1.10", "1.9"), Ordering::Greater);
        assert_eq!(c("2", "10"), Ordering::Less);
        assert_eq!(c("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(c("1.01", "1.1"), Ordering::Equal);
        assert_eq!(c("1.a", "1.2"), Ordering::Greater);
        assert_eq!(c("b", "a"), Ordering::Greater);
        assert_eq!(version_cmp(None, Some("0")), Ordering::Less);
        assert_eq!(version_cmp(None, None), Ordering::Equal);
        assert_eq!(
            c("99999999999999999999999", "99999999999999999999998"),
            Ordering::Greater
        );
    }

    #[test]
    fn extensions_give_their_values() {
        let ext = json!([{"url": "a", "valueId": "x"}, {"url": "b", "valueString": "y"}]);
        assert_eq!(extension_str(&ext, "b"), Some("y"));
        assert_eq!(extension_str(&ext, "a"), Some("x"));
        assert_eq!(extension_str(&ext, "c"), None);
        assert_eq!(extension_str(&json!(null), "a"), None);
    }

    #[test]
    fn refs_are_substituted() {
        let p = vec![("patient".to_string(), "{ref}".to_string())];
        assert_eq!(
            substitute(&p, "Patient/1"),
            [("patient".to_string(), "Patient/1".to_string())]
        );
    }
}
