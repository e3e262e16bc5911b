//! `$graphql` (system, type and instance level of every type, GET or POST; OperationDefinition
//! `Resource-graphql`): the FHIR GraphQL interface (hl7.org/fhir/R4/graphql.html), evaluated
//! on one database value.
//!
//! The query is parsed by `graphql-parser`; the FHIR schema is dynamic (every resource type and
//! element), so the query is checked against the model's element definitions
//! ([`flint_model::defs`]) and executed over the resources' JSON here.
//!
//! # Requests
//!
//! * `GET` with the query in `query` (and optionally `variables`, a JSON object, and
//!   `operationName`);
//! * `POST` with `Content-Type: application/graphql` (the body is the query, `variables` and
//!   `operationName` may be query parameters), `application/json` (a body
//!   `{"query": ..., "variables": ..., "operationName": ...}`) or a form
//!   (`application/x-www-form-urlencoded`, the parameters of a GET).
//!
//! At the system and type level the query selects resources (the type level answers the same
//! queries as the system level); at the instance level the query selects fields of the
//! resource itself (404 or 410 as a read when there is none).
//!
//! # Queries
//!
//! * `Patient(id: "x") { ... }`: a read;
//! * `PatientList(name: "smith", _count: 10, _offset: 0) { ... }`: a search, every search
//!   parameter of the type as an argument (`-` in a parameter name written `_`, e.g.
//!   `general_practitioner`), a list argument for several values (OR); `_count` and `_offset`
//!   page the list (all matches without `_count`);
//! * `PatientConnection(...) { count offset pagesize first previous next last edges { mode
//!   score resource { ... } } }`: a search as a connection; `_count` is the page size (the
//!   server's default page size without it), the cursors (`first`, `previous`, `next`, `last`)
//!   are sealed (as page links are) and passed back as `_cursor` for that page, which is read at
//!   the database value of the first one (a query whose cursors come from different database
//!   values is refused);
//! * inside a resource, `ObservationList(_reference: subject, code: "...")` (and
//!   `ObservationConnection`): the resources whose parameter `_reference` refers to it;
//! * element fields by their JSON names (`valueQuantity` for a choice), with arguments that
//!   filter list items: `name(use: official)` (a child property equal to the value),
//!   `fhirpath: "..."` (a FHIRPath expression true on the item), `_count`, `_offset`;
//! * `resource` on a `Reference` resolves it (`#id` in the resource's `contained`), with an
//!   optional `type: Patient` (null when the target is of another type) and `optional: true`
//!   (null instead of an error when it does not resolve); `... on Patient { ... }` selects by
//!   type;
//! * aliases, fragments (named and inline), variables (with defaults), `__typename`,
//!   `resourceType`, `@include`/`@skip`, and the FHIR directives `@flatten` (the field's
//!   children are added to its parent; children of a flattened list become lists), `@first`
//!   (only the first item), `@singleton` (a single value, not a list) and `@slice(path:
//!   "...")` (one output field per item, named with the FHIRPath `path`'s value on the item,
//!   or its index for `$index`, after a `.`).
//!
//! # Answers
//!
//! `200` with `{"data": ...}` (content type `application/json`), with an `errors` entry (its
//! `message`, `locations` and `path`) and `null` in place for a read of an unknown or deleted
//! resource or a reference that does not resolve. A query that does not parse or names
//! unknown types, fields, arguments, fragments, variables or search parameters is `400` with
//! `{"errors": [...]}` and no data; a mutation or subscription is `422`; more than
//! `RestConfig::everything_limit` (10,000) resources in one answer is `409` with an error
//! whose `extensions.code` is `too-costly`. A storage fault is `503` (an OperationOutcome),
//! never a shorter answer.

use super::{Level, OpFuture, Operation, Target};
use crate::api::{Body, FhirRequest, Handling, Payload, Reply};
use crate::context::Ctx;
use crate::format::Format;
use crate::outcome::{FhirError, FhirResult};
use crate::search::{PAGE_LIFETIME_MS, search_error};
use axum::http::StatusCode;
use bytes::Bytes;
use flint_db::{Db, T};
use flint_model::defs::definitions;
use graphql_parser::Pos;
use graphql_parser::query as q;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[path = "graphql_schema.rs"]
mod schema;

/// The registration of `$graphql`.
pub const OPERATION: Operation = Operation {
    name: "graphql",
    definition: "http://hl7.org/fhir/OperationDefinition/Resource-graphql",
    levels: &[Level::System, Level::Type, Level::Instance],
    types: &[],
    methods: &["GET", "POST"],
    run,
};

/// The most fields one answer may evaluate (a guard against fragment bombs).
const MAX_STEPS: usize = 2_000_000;

/// How deep fragment spreads may nest (checking and evaluation recurse through them).
const MAX_FRAGMENT_DEPTH: usize = 32;

type Doc = q::Document<'static, String>;
type GValue = q::Value<'static, String>;
type Field = q::Field<'static, String>;
type SelSet = q::SelectionSet<'static, String>;
type Directive = q::Directive<'static, String>;

/// One GraphQL error: its message, where in the query it is and the answer's path to it.
#[derive(Debug, Clone)]
struct GqlError {
    message: String,
    locations: Vec<Pos>,
    path: Vec<Value>,
}

impl GqlError {
    fn new(message: impl Into<String>, at: Option<Pos>) -> Self {
        GqlError {
            message: message.into(),
            locations: at.into_iter().collect(),
            path: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut e = json!({"message": self.message});
        if !self.locations.is_empty() {
            e["locations"] = self
                .locations
                .iter()
                .map(|p| json!({"line": p.line, "column": p.column}))
                .collect();
        }
        if !self.path.is_empty() {
            e["path"] = Value::Array(self.path.clone());
        }
        e
    }
}

/// Why a query has no answer.
#[derive(Debug)]
enum Fail {
    /// The query is invalid: 400 with the error.
    Query(GqlError),
    /// The query is not supported (mutations): 422.
    Unsupported(GqlError),
    /// The answer would hold too many resources: 409 `too-costly`.
    Costly(GqlError),
    /// A FHIR error (storage faults: 503).
    Fhir(FhirError),
}

impl From<FhirError> for Fail {
    fn from(e: FhirError) -> Self {
        Fail::Fhir(e)
    }
}

impl From<GqlError> for Fail {
    fn from(e: GqlError) -> Self {
        Fail::Query(e)
    }
}

type Res<X> = Result<X, Fail>;

/// A JSON reply of `status`.
fn json_reply(status: u16, v: &Value) -> Reply {
    Reply::new(
        status,
        Body::Raw(
            "application/json".into(),
            Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
        ),
    )
}

/// The reply of a failure.
fn fail_reply(f: Fail) -> FhirResult<Reply> {
    let (status, e, code) = match f {
        Fail::Fhir(e) => return Err(e),
        Fail::Query(e) => (400, e, None),
        Fail::Unsupported(e) => (422, e, None),
        Fail::Costly(e) => (409, e, Some("too-costly")),
    };
    let mut err = e.to_json();
    if let Some(c) = code {
        err["extensions"] = json!({"code": c});
    }
    Ok(json_reply(status, &json!({"errors": [err]})))
}

fn run<'a>(ctx: &'a Ctx, target: Target<'a>, req: &'a FhirRequest) -> OpFuture<'a> {
    Box::pin(async move {
        match graphql(ctx, target, req).await {
            Ok(r) => Ok(r),
            Err(f) => fail_reply(f),
        }
    })
}

/// A GraphQL request: the query, its variables and the operation to run.
#[derive(Debug, Default)]
struct GqlRequest {
    query: String,
    variables: Map<String, Value>,
    operation_name: Option<String>,
}

/// Reads the request: GET parameters, an `application/graphql` body or a JSON body.
fn request_of(req: &FhirRequest) -> Res<GqlRequest> {
    let bad = |m: String| Fail::Query(GqlError::new(m, None));
    let variables = |v: Option<&Value>| -> Res<Map<String, Value>> {
        match v {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Map::new()),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(Value::Null) => Ok(Map::new()),
                _ => Err(bad("`variables` must be a JSON object.".into())),
            },
            Some(_) => Err(bad("`variables` must be a JSON object.".into())),
        }
    };
    let mut out = GqlRequest {
        query: req.param("query").unwrap_or_default().to_string(),
        variables: variables(
            req.param("variables")
                .map(|s| Value::String(s.into()))
                .as_ref(),
        )?,
        operation_name: req
            .param("operationName")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    match &req.payload {
        Payload::None => {}
        Payload::Raw(ct, b) if ct == "application/graphql" => {
            out.query =
                String::from_utf8(b.to_vec()).map_err(|_| bad("The query is not UTF-8.".into()))?;
        }
        Payload::Raw(ct, b) if ct == "application/x-www-form-urlencoded" => {
            // A form (`curl -d query=...`): the same parameters as a GET.
            for (k, v) in form_urlencoded::parse(b) {
                match k.as_ref() {
                    "query" => out.query = v.into_owned(),
                    "variables" => out.variables = variables(Some(&Value::String(v.into_owned())))?,
                    "operationName" if !v.is_empty() => out.operation_name = Some(v.into_owned()),
                    _ => {}
                }
            }
        }
        Payload::Fhir(Format::Json, b) => {
            let v: Value = serde_json::from_slice(b)
                .map_err(|e| bad(format!("The request body is not JSON: {e}.")))?;
            if v["resourceType"] == "Parameters" {
                let p = parameters_query(&v)?;
                out.query = p;
            } else {
                let Value::Object(o) = &v else {
                    return Err(bad("The request body must be a JSON object.".into()));
                };
                out.query = match o.get("query") {
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err(bad("The request body has no `query` string.".into())),
                };
                out.variables = variables(o.get("variables"))?;
                out.operation_name = match o.get("operationName") {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    Some(Value::String(_) | Value::Null) | None => None,
                    Some(_) => return Err(bad("`operationName` must be a string.".into())),
                };
            }
        }
        Payload::Resource(v) if v["resourceType"] == "Parameters" => {
            out.query = parameters_query(v)?;
        }
        Payload::Raw(ct, _) => {
            return Err(Fail::Fhir(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                format!(
                    "Unsupported media type `{ct}` for `$graphql`: send application/graphql or \
                     application/json."
                ),
            )));
        }
        Payload::Fhir(..) | Payload::Resource(_) => {
            return Err(Fail::Fhir(FhirError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-supported",
                "The body of a POST `$graphql` is a query (application/graphql) or JSON \
                 (application/json).",
            )));
        }
    }
    if out.query.trim().is_empty() {
        return Err(bad("Missing the GraphQL `query`.".into()));
    }
    Ok(out)
}

/// The `query` of a `Parameters` body (a bundle entry's POST).
fn parameters_query(v: &Value) -> Res<String> {
    v["parameter"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "query")
        .and_then(|p| p["valueString"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Fail::Query(GqlError::new(
                "The Parameters have no `query` string.",
                None,
            ))
        })
}

/// The parse error as a GraphQL error, with its position when the parser gives one.
fn parse_error(e: graphql_parser::query::ParseError) -> GqlError {
    let text = e.to_string();
    let body = text.strip_prefix("query parse error: ").unwrap_or(&text);
    let mut pos = None;
    let mut rest = body;
    if let Some(after) = body.strip_prefix("Parse error at ") {
        let (lc, tail) = after.split_once('\n').unwrap_or((after, ""));
        if let Some((l, c)) = lc.split_once(':')
            && let (Ok(line), Ok(column)) = (l.trim().parse(), c.trim().parse())
        {
            pos = Some(Pos { line, column });
            rest = tail;
        }
    }
    let detail: Vec<&str> = rest.lines().filter(|l| !l.trim().is_empty()).collect();
    GqlError::new(format!("Syntax error: {}.", detail.join("; ")), pos)
}

async fn graphql(ctx: &Ctx, target: Target<'_>, req: &FhirRequest) -> Res<Reply> {
    let request = request_of(req)?;
    let doc: Doc = q::parse_query::<String>(&request.query)
        .map_err(parse_error)?
        .into_static();
    let mut operations = Vec::new();
    let mut fragments = HashMap::new();
    for d in &doc.definitions {
        match d {
            q::Definition::Operation(o) => operations.push(o),
            q::Definition::Fragment(f) => {
                if fragments.insert(f.name.clone(), f).is_some() {
                    return Err(GqlError::new(
                        format!("The fragment `{}` is defined twice.", f.name),
                        Some(f.position),
                    )
                    .into());
                }
            }
        }
    }
    let op = choose_operation(&operations, request.operation_name.as_deref())?;
    let (set, var_defs): (&SelSet, &[q::VariableDefinition<'static, String>]) = match op {
        q::OperationDefinition::SelectionSet(s) => (s, &[]),
        q::OperationDefinition::Query(qd) => (&qd.selection_set, &qd.variable_definitions),
        q::OperationDefinition::Mutation(m) => {
            return Err(Fail::Unsupported(GqlError::new(
                "Mutations are not supported by `$graphql` on this server: use the RESTful API \
                 to create, update or delete resources.",
                Some(m.position),
            )));
        }
        q::OperationDefinition::Subscription(s) => {
            return Err(Fail::Unsupported(GqlError::new(
                "Subscriptions are not supported by `$graphql`.",
                Some(s.position),
            )));
        }
    };
    let vars = variable_values(var_defs, &request.variables)?;
    let root = match target {
        Target::Instance(ty, _) => Ty::Resource(ty.to_string()),
        _ => Ty::Query,
    };
    let mut exec = Exec {
        ctx,
        db: None,
        fragments,
        vars,
        declared: var_defs.iter().map(|v| v.name.clone()).collect(),
        errors: Vec::new(),
        loaded: 0,
        limit: ctx.state.config().everything_limit,
        steps: 0,
        cursors: Vec::new(),
        checked: HashSet::new(),
    };
    exec.check_set(&root, set, &mut Vec::new())?;
    // One database value for the whole answer: the cursors' when the query pages.
    let db = match exec.cursors.first() {
        Some(c) => {
            if exec.cursors.iter().any(|x| x.t != c.t) {
                return Err(GqlError::new(
                    "The cursors of this query come from different database values: page one \
                     connection at a time.",
                    None,
                )
                .into());
            }
            ctx.state
                .node()
                .sync_to(c.t)
                .await
                .map_err(FhirError::from)?
        }
        None => ctx.read_db().await?,
    };
    exec.db = Some(db.clone());
    let mut out = Out::default();
    match target {
        Target::Instance(ty, id) => {
            let h = match db.resource(ty, id).map_err(FhirError::from)? {
                Some(h) if !h.is_deleted() => h,
                Some(h) => return Err(crate::interaction::gone(&db, &h).into()),
                None => {
                    return Err(FhirError::not_found(format!(
                        "Resource `{ty}/{id}` was not found."
                    ))
                    .into());
                }
            };
            let v = Arc::new(crate::interaction::materialize(&db, &h).await?);
            exec.count(1, None)?;
            let ty = Ty::Resource(ty.to_string());
            exec.object(
                &ty,
                &v.clone(),
                &v,
                set,
                &mut out,
                false,
                "",
                &mut Vec::new(),
            )
            .await?;
        }
        _ => {
            let v = Arc::new(Value::Object(Map::new()));
            exec.object(
                &Ty::Query,
                &v.clone(),
                &v,
                set,
                &mut out,
                false,
                "",
                &mut Vec::new(),
            )
            .await?;
        }
    }
    let mut body = json!({"data": out.render()});
    if !exec.errors.is_empty() {
        body["errors"] = exec.errors.iter().map(GqlError::to_json).collect();
    }
    Ok(json_reply(200, &body))
}

/// The operation to run: the one named `name`, or the only one.
fn choose_operation<'d>(
    operations: &[&'d q::OperationDefinition<'static, String>],
    name: Option<&str>,
) -> Res<&'d q::OperationDefinition<'static, String>> {
    fn name_of<'o>(o: &'o q::OperationDefinition<'static, String>) -> Option<&'o str> {
        match o {
            q::OperationDefinition::SelectionSet(_) => None,
            q::OperationDefinition::Query(x) => x.name.as_deref(),
            q::OperationDefinition::Mutation(x) => x.name.as_deref(),
            q::OperationDefinition::Subscription(x) => x.name.as_deref(),
        }
    }
    match name {
        Some(n) => operations
            .iter()
            .find(|o| name_of(o) == Some(n))
            .copied()
            .ok_or_else(|| GqlError::new(format!("Unknown operation `{n}`."), None).into()),
        None => match operations {
            [one] => Ok(*one),
            [] => Err(GqlError::new("The document has no operation.", None).into()),
            _ => Err(GqlError::new(
                "The document has several operations: name one with `operationName`.",
                None,
            )
            .into()),
        },
    }
}

/// The values of the declared variables: given, else their defaults; a missing non-null
/// variable is an error.
fn variable_values(
    defs: &[q::VariableDefinition<'static, String>],
    given: &Map<String, Value>,
) -> Res<Map<String, Value>> {
    let mut out = Map::new();
    for d in defs {
        let v = match given.get(&d.name) {
            Some(v) if !v.is_null() => v.clone(),
            _ => match &d.default_value {
                Some(dv) => literal_json(dv).ok_or_else(|| {
                    GqlError::new(
                        format!("The default of `${}` must be a constant.", d.name),
                        Some(d.position),
                    )
                })?,
                None if matches!(d.var_type, q::Type::NonNullType(_)) => {
                    return Err(GqlError::new(
                        format!("The variable `${}` is required.", d.name),
                        Some(d.position),
                    )
                    .into());
                }
                None => Value::Null,
            },
        };
        out.insert(d.name.clone(), v);
    }
    Ok(out)
}

/// A constant GraphQL value as JSON (`None` when it holds a variable).
fn literal_json(v: &GValue) -> Option<Value> {
    Some(match v {
        q::Value::Variable(_) => return None,
        q::Value::Int(n) => json!(n.as_i64()?),
        q::Value::Float(f) => json!(f),
        q::Value::String(s) => json!(s),
        q::Value::Boolean(b) => json!(b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => json!(e),
        q::Value::List(l) => Value::Array(l.iter().map(literal_json).collect::<Option<_>>()?),
        q::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| Some((k.clone(), literal_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// The type a selection set is evaluated on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Ty {
    /// The root of a system or type level query.
    Query,
    /// A resource of a known type.
    Resource(String),
    /// A resource of any type (`Reference.resource`, `contained`).
    AnyResource,
    /// A complex type or backbone element (named by its path, `Patient.contact`).
    Complex(String),
    /// A search of a type as a connection.
    Connection(String),
    /// One entry of a connection.
    Edge(String),
}

impl Ty {
    /// The type's name for `__typename`.
    fn typename(&self, value: &Value) -> String {
        match self {
            Ty::Query => "Query".into(),
            Ty::Resource(t) => t.clone(),
            Ty::AnyResource => value["resourceType"].as_str().unwrap_or("Resource").into(),
            Ty::Complex(t) => t.replace('.', "_"),
            Ty::Connection(t) => format!("{t}Connection"),
            Ty::Edge(t) => format!("{t}Edge"),
        }
    }

    /// The name of the type definition holding its elements.
    fn def_name(&self) -> Option<&str> {
        match self {
            Ty::Resource(t) | Ty::Complex(t) => Some(t),
            Ty::AnyResource => Some("Resource"),
            _ => None,
        }
    }

    /// The type of a value of FHIR type `t`; `None` for primitives.
    fn of(t: &str) -> Option<Ty> {
        let defs = definitions();
        if defs.is_primitive(t) || t.starts_with("System.") {
            None
        } else if defs.is_resource_type(t) {
            Some(Ty::Resource(t.into()))
        } else if t == "Resource" || t == "DomainResource" {
            Some(Ty::AnyResource)
        } else {
            Some(Ty::Complex(t.into()))
        }
    }
}

/// What a field of a type is.
#[derive(Debug, Clone)]
enum Kind {
    /// `__typename`.
    Typename,
    /// `resourceType` of a resource.
    ResourceType,
    /// A read (`Patient(id: ...)`) at the root.
    Read(String),
    /// A search list (`PatientList`), at the root or reverse inside a resource.
    List(String),
    /// A search connection (`PatientConnection`).
    Connection(String),
    /// An element: its JSON name, FHIR type and whether it repeats.
    Element { ty: String, many: bool },
    /// `resource` of a Reference.
    RefResource,
    /// A scalar field of a connection or edge.
    Meta,
    /// `edges` of a connection of a type.
    Edges(String),
    /// `resource` of an edge of a type.
    EdgeResource(String),
    /// `__schema` at the root (introspection).
    Schema,
    /// `__type(name: ...)` at the root (introspection).
    TypeByName,
}

/// The kind of field `name` of `ty`.
fn field_kind(ty: &Ty, name: &str) -> Option<Kind> {
    if name == "__typename" {
        return Some(Kind::Typename);
    }
    let defs = definitions();
    let search = |name: &str| {
        if let Some(t) = name.strip_suffix("List")
            && defs.is_resource_type(t)
        {
            return Some(Kind::List(t.into()));
        }
        if let Some(t) = name.strip_suffix("Connection")
            && defs.is_resource_type(t)
        {
            return Some(Kind::Connection(t.into()));
        }
        None
    };
    match ty {
        Ty::Query => {
            if name == "__schema" {
                Some(Kind::Schema)
            } else if name == "__type" {
                Some(Kind::TypeByName)
            } else if defs.is_resource_type(name) {
                Some(Kind::Read(name.into()))
            } else {
                search(name)
            }
        }
        Ty::Resource(_) | Ty::AnyResource | Ty::Complex(_) => {
            if name == "resourceType" && !matches!(ty, Ty::Complex(_)) {
                return Some(Kind::ResourceType);
            }
            if name == "resource" && *ty == Ty::Complex("Reference".into()) {
                return Some(Kind::RefResource);
            }
            let element = defs
                .type_def(ty.def_name()?)
                .and_then(|d| d.resolve_property(name))
                .map(|(e, t)| Kind::Element {
                    ty: t.to_string(),
                    many: e.is_array(),
                });
            match (element, ty) {
                (Some(e), _) => Some(e),
                (None, Ty::Resource(_)) => search(name),
                _ => None,
            }
        }
        Ty::Connection(t) => match name {
            "count" | "offset" | "pagesize" | "first" | "previous" | "next" | "last" => {
                Some(Kind::Meta)
            }
            "edges" => Some(Kind::Edges(t.clone())),
            _ => None,
        },
        Ty::Edge(t) => match name {
            "mode" | "score" => Some(Kind::Meta),
            "resource" => Some(Kind::EdgeResource(t.clone())),
            _ => None,
        },
    }
}

/// The sealed content of a connection cursor: the search, its database value and the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cursor {
    /// Always `graphql`: tells cursors from other sealed tokens.
    op: String,
    /// The searched type.
    ty: String,
    /// The search parameters (the reverse reference included).
    params: Vec<(String, String)>,
    t: T,
    offset: usize,
    count: usize,
    expires_ms: i64,
}

/// An output object: its fields in order, each with its values (see [`Out::render`]).
#[derive(Debug, Default)]
struct Out {
    slots: Vec<Slot>,
}

/// One output field.
#[derive(Debug)]
struct Slot {
    name: String,
    list: ListStatus,
    values: Vec<Value>,
}

/// How an output field is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStatus {
    /// A value (null without one; a list when several arrived through `@flatten`).
    Single,
    /// A list.
    Repeating,
    /// `@singleton`: the first value.
    Singleton,
}

impl Out {
    /// The slot `name` (added with `list` when new; a repeating status wins).
    fn slot(&mut self, name: &str, list: ListStatus) -> &mut Slot {
        let i = match self.slots.iter().position(|s| s.name == name) {
            Some(i) => {
                if list == ListStatus::Repeating && self.slots[i].list == ListStatus::Single {
                    self.slots[i].list = list;
                }
                i
            }
            None => {
                self.slots.push(Slot {
                    name: name.to_string(),
                    list,
                    values: Vec::new(),
                });
                self.slots.len() - 1
            }
        };
        &mut self.slots[i]
    }

    /// The object.
    fn render(self) -> Value {
        let mut m = Map::new();
        for s in self.slots {
            let v = match s.list {
                ListStatus::Repeating => Value::Array(s.values),
                ListStatus::Singleton => s.values.into_iter().next().unwrap_or(Value::Null),
                ListStatus::Single => {
                    let mut vs = s.values;
                    match vs.len() {
                        0 => Value::Null,
                        1 => vs.pop().unwrap_or(Value::Null),
                        _ => Value::Array(vs),
                    }
                }
            };
            m.insert(s.name, v);
        }
        Value::Object(m)
    }
}

/// The future of a recursive evaluation step.
type Step<'b> = Pin<Box<dyn Future<Output = Res<()>> + Send + 'b>>;

/// The checking and evaluation of one query.
struct Exec<'c> {
    ctx: &'c Ctx,
    /// The database value the answer is read at (set after checking).
    db: Option<Db>,
    fragments: HashMap<String, &'c q::FragmentDefinition<'static, String>>,
    /// The values of the variables.
    vars: Map<String, Value>,
    /// The declared variables.
    declared: HashSet<String>,
    /// Field errors (the answer has data beside them).
    errors: Vec<GqlError>,
    /// Resources read so far.
    loaded: usize,
    /// The most resources one answer may read.
    limit: usize,
    /// Fields evaluated so far.
    steps: usize,
    /// The connection cursors the query passes (opened while checking).
    cursors: Vec<Cursor>,
    /// The (fragment, type) pairs already checked.
    checked: HashSet<(String, Ty)>,
}

/// Adds field `name` to `out`; a field selected twice has its objects merged.
fn merge_into(out: &mut Map<String, Value>, name: String, v: Value) {
    match (out.get_mut(&name), v) {
        (Some(Value::Object(a)), Value::Object(b)) => {
            for (k, x) in b {
                merge_into(a, k, x);
            }
        }
        (Some(Value::Array(a)), Value::Array(b)) if a.len() == b.len() => {
            for (x, y) in a.iter_mut().zip(b) {
                if let (Value::Object(xm), Value::Object(ym)) = (x, y) {
                    for (k, z) in ym {
                        merge_into(xm, k, z);
                    }
                }
            }
        }
        (_, v) => {
            out.insert(name, v);
        }
    }
}

/// A value as a search parameter value: lists joined with `,` (OR).
fn search_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().filter_map(search_value).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

/// The text of a primitive JSON value (for comparisons and slice names).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// The value of a FHIRPath result item as text.
fn item_text(item: &flint_fhirpath::Item) -> Option<String> {
    match item {
        flint_fhirpath::Item::String(s) => Some(s.to_string()),
        flint_fhirpath::Item::Boolean(b) => Some(b.to_string()),
        flint_fhirpath::Item::Integer(i) => Some(i.to_string()),
        flint_fhirpath::Item::Node(n) => n.value().and_then(text_of),
        _ => None,
    }
}

/// Whether a FHIRPath result is `true`.
fn is_true(items: &[flint_fhirpath::Item]) -> bool {
    match items {
        [flint_fhirpath::Item::Boolean(b)] => *b,
        [flint_fhirpath::Item::Node(n)] => n.value() == Some(&Value::Bool(true)),
        _ => false,
    }
}

/// How a search field's arguments split: search parameters, and the ones of `$graphql`.
#[derive(Debug, Default)]
struct SearchArgs {
    params: Vec<(String, String)>,
    count: Option<usize>,
    offset: usize,
    cursor: Option<String>,
    reference: Option<String>,
}

impl<'c> Exec<'c> {
    /// The value of argument value `v` (variables substituted).
    fn value(&self, v: &GValue, at: Pos) -> Result<Value, GqlError> {
        Ok(match v {
            q::Value::Variable(name) => {
                if !self.declared.contains(name) {
                    return Err(GqlError::new(
                        format!("The variable `${name}` is not declared."),
                        Some(at),
                    ));
                }
                self.vars.get(name).cloned().unwrap_or(Value::Null)
            }
            q::Value::List(l) => Value::Array(
                l.iter()
                    .map(|x| self.value(x, at))
                    .collect::<Result<_, _>>()?,
            ),
            q::Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.value(x, at)?)))
                    .collect::<Result<_, GqlError>>()?,
            ),
            other => literal_json(other).unwrap_or(Value::Null),
        })
    }

    /// The argument `name` of `field`, if given (and not null).
    fn arg(&self, field: &Field, name: &str) -> Result<Option<Value>, GqlError> {
        match field.arguments.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Ok(Some(self.value(v, field.position)?).filter(|v| !v.is_null())),
            None => Ok(None),
        }
    }

    /// A non-negative integer argument.
    fn int_arg(&self, field: &Field, name: &str) -> Result<Option<usize>, GqlError> {
        match self.arg(field, name)? {
            None => Ok(None),
            Some(v) => {
                let n = match &v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                n.map(|n| Some(n as usize)).ok_or_else(|| {
                    GqlError::new(
                        format!(
                            "The argument `{name}` of `{}` must be a non-negative integer, not {v}.",
                            field.name
                        ),
                        Some(field.position),
                    )
                })
            }
        }
    }

    /// The directive `name` of `field`, if present.
    fn directive<'f>(field: &'f Field, name: &str) -> Option<&'f Directive> {
        field.directives.iter().find(|d| d.name == name)
    }

    /// Whether `@skip`/`@include` leave the selection out.
    fn skipped(&self, directives: &[Directive]) -> Result<bool, GqlError> {
        for d in directives {
            let want = match d.name.as_str() {
                "skip" => true,
                "include" => false,
                _ => continue,
            };
            let cond = match d.arguments.iter().find(|(k, _)| k == "if") {
                Some((_, v)) => self.value(v, d.position)?,
                None => Value::Null,
            };
            let Value::Bool(b) = cond else {
                return Err(GqlError::new(
                    format!("`@{}` needs a boolean argument `if`.", d.name),
                    Some(d.position),
                ));
            };
            if b == want {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The search parameter name of argument `arg` on type `ty` (`_` for `-`).
    fn param_name(&self, ty: &str, arg: &str) -> String {
        if arg.starts_with('_') || self.ctx.state.registry().param(ty, arg).is_some() {
            arg.to_string()
        } else {
            arg.replace('_', "-")
        }
    }

    /// The arguments of search field `field` on `ty`, the search parameters checked (with
    /// `context` standing for the resource a reverse search refers to).
    fn search_args(
        &self,
        field: &Field,
        ty: &str,
        connection: bool,
        context: Option<&str>,
    ) -> Result<SearchArgs, GqlError> {
        let mut out = SearchArgs::default();
        let at = Some(field.position);
        for (name, v) in &field.arguments {
            let value = self.value(v, field.position)?;
            match name.as_str() {
                "_count" | "_offset" => {
                    let n = self.int_arg(field, name)?;
                    if name == "_count" {
                        out.count = n;
                    } else {
                        out.offset = n.unwrap_or(0);
                    }
                }
                "_cursor" if connection => {
                    out.cursor = value.as_str().map(str::to_string);
                }
                "_reference" => {
                    let Some(r) = value.as_str() else {
                        return Err(GqlError::new("`_reference` names a search parameter.", at));
                    };
                    out.reference = Some(self.param_name(ty, r));
                }
                _ => {
                    if let Some(s) = search_value(&value) {
                        out.params.push((self.param_name(ty, name), s));
                    }
                }
            }
        }
        match (&out.reference, context) {
            (Some(_), None) => {
                return Err(GqlError::new(
                    format!(
                        "`_reference` is for searches inside a resource, not for `{}` at the root.",
                        field.name
                    ),
                    at,
                ));
            }
            (None, Some(_)) => {
                return Err(GqlError::new(
                    format!(
                        "`{}` inside a resource needs `_reference`: the search parameter that \
                         refers to the resource.",
                        field.name
                    ),
                    at,
                ));
            }
            (Some(r), Some(c)) => {
                let context_type = c.split('/').next().unwrap_or_default();
                let refers = self.ctx.state.registry().param(ty, r).is_some_and(|p| {
                    p.kind == flint_search::ParamType::Reference
                        && (p.target.is_empty() || p.target.iter().any(|t| t == context_type))
                });
                if !refers {
                    return Err(GqlError::new(
                        format!(
                            "`_reference: {r}` is not a reference search parameter of `{ty}` \
                             that can refer to a `{context_type}`."
                        ),
                        at,
                    ));
                }
                out.params.push((r.clone(), c.to_string()));
            }
            (None, None) => {}
        }
        let max = self.ctx.state.config().max_page_size;
        if connection && out.count.is_some_and(|c| c == 0 || c > max) {
            return Err(GqlError::new(
                format!("`_count` of a connection must be between 1 and {max}."),
                at,
            ));
        }
        Ok(out)
    }

    /// Parses the search `params` on `ty` strictly (an unknown parameter is an error).
    fn parse_search(
        &self,
        field: &Field,
        ty: &str,
        params: &[(String, String)],
    ) -> Res<flint_search::Query> {
        crate::search::parse(self.ctx, ty, params, Handling::Strict).map_err(|e| {
            if e.status == StatusCode::SERVICE_UNAVAILABLE
                || e.status == StatusCode::INTERNAL_SERVER_ERROR
            {
                Fail::Fhir(e)
            } else {
                Fail::Query(GqlError::new(
                    format!("`{}`: {}", field.name, e.message),
                    Some(field.position),
                ))
            }
        })
    }

    // ---------------------------------------------------------------- checking

    /// Checks `set` on `ty`: fields, arguments, directives and fragments.
    fn check_set(&mut self, ty: &Ty, set: &'c SelSet, stack: &mut Vec<String>) -> Res<()> {
        for sel in &set.items {
            match sel {
                q::Selection::Field(f) => self.check_field(ty, f, stack)?,
                q::Selection::InlineFragment(i) => {
                    self.check_directives(&i.directives, None)?;
                    let inner = match &i.type_condition {
                        Some(q::TypeCondition::On(t)) => condition_type(ty, t, i.position)?,
                        None => ty.clone(),
                    };
                    self.check_set(&inner, &i.selection_set, stack)?;
                }
                q::Selection::FragmentSpread(s) => {
                    self.check_directives(&s.directives, None)?;
                    let Some(frag) = self.fragments.get(&s.fragment_name).copied() else {
                        return Err(GqlError::new(
                            format!("Unknown fragment `{}`.", s.fragment_name),
                            Some(s.position),
                        )
                        .into());
                    };
                    if stack.len() >= MAX_FRAGMENT_DEPTH {
                        return Err(GqlError::new(
                            format!("Fragments nest deeper than {MAX_FRAGMENT_DEPTH} levels."),
                            Some(s.position),
                        )
                        .into());
                    }
                    if stack.contains(&s.fragment_name) {
                        return Err(GqlError::new(
                            format!("The fragment `{}` spreads itself.", s.fragment_name),
                            Some(s.position),
                        )
                        .into());
                    }
                    let q::TypeCondition::On(t) = &frag.type_condition;
                    let inner = condition_type(ty, t, frag.position)?;
                    if self
                        .checked
                        .insert((s.fragment_name.clone(), inner.clone()))
                    {
                        stack.push(s.fragment_name.clone());
                        self.check_set(&inner, &frag.selection_set, stack)?;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks directives: known ones with their arguments.
    fn check_directives(&self, directives: &[Directive], field: Option<&Field>) -> Res<()> {
        self.skipped(directives)?;
        for d in directives {
            let ok = match d.name.as_str() {
                "skip" | "include" => true,
                "flatten" | "first" | "singleton" => field.is_some() && d.arguments.is_empty(),
                "slice" => {
                    field.is_some()
                        && matches!(d.arguments.as_slice(), [(k, v)] if k == "path"
                            && self.value(v, d.position).is_ok_and(|v| v.is_string()))
                }
                _ => {
                    return Err(GqlError::new(
                        format!("Unknown directive `@{}`.", d.name),
                        Some(d.position),
                    )
                    .into());
                }
            };
            if !ok {
                return Err(GqlError::new(
                    format!(
                        "`@{}` is not allowed here or has wrong arguments (`@slice(path: \"...\")`, \
                         the others on fields without arguments).",
                        d.name
                    ),
                    Some(d.position),
                )
                .into());
            }
            if d.name == "slice"
                && let Some((_, v)) = d.arguments.first()
                && let Ok(Value::String(p)) = self.value(v, d.position)
                && p != "$index"
                && let Err(e) = flint_fhirpath::compile(&p)
            {
                return Err(GqlError::new(
                    format!("The `@slice` path `{p}` does not parse: {}.", e.message),
                    Some(d.position),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Checks one field of `ty`.
    fn check_field(&mut self, ty: &Ty, f: &'c Field, stack: &mut Vec<String>) -> Res<()> {
        let at = Some(f.position);
        self.check_directives(&f.directives, Some(f))?;
        let Some(kind) = field_kind(ty, &f.name) else {
            let on = match ty {
                Ty::Query => "the query root".to_string(),
                t => format!("`{}`", t.typename(&Value::Null)),
            };
            return Err(GqlError::new(format!("Unknown field `{}` on {on}.", f.name), at).into());
        };
        let no_args = |what: &str| -> Res<()> {
            match f.arguments.first() {
                Some((a, _)) => Err(GqlError::new(
                    format!("Unknown argument `{a}` of {what} `{}`.", f.name),
                    at,
                )
                .into()),
                None => Ok(()),
            }
        };
        let leaf = || -> Res<()> {
            if f.selection_set.items.is_empty() {
                Ok(())
            } else {
                Err(GqlError::new(
                    format!("`{}` is a scalar: it has no fields to select.", f.name),
                    at,
                )
                .into())
            }
        };
        let needs_fields = || -> Res<()> {
            if f.selection_set.items.is_empty() {
                Err(GqlError::new(
                    format!("`{}` is an object: select some of its fields.", f.name),
                    at,
                )
                .into())
            } else {
                Ok(())
            }
        };
        let connection = matches!(kind, Kind::Connection(_));
        match kind {
            Kind::Typename | Kind::ResourceType | Kind::Meta => {
                no_args("the field")?;
                leaf()
            }
            Kind::Read(t) => {
                for (a, _) in &f.arguments {
                    if a != "id" {
                        return Err(GqlError::new(
                            format!("Unknown argument `{a}` of `{}`: a read takes `id`.", f.name),
                            at,
                        )
                        .into());
                    }
                }
                match self.arg(f, "id")? {
                    Some(Value::String(id)) if flint_model::is_valid_id(&id) => {}
                    Some(Value::String(id)) => {
                        return Err(GqlError::new(
                            format!(
                                "Invalid resource id `{id}`: ids are 1 to 64 characters of A-Z, \
                                 a-z, 0-9, '-' and '.'."
                            ),
                            at,
                        )
                        .into());
                    }
                    _ => {
                        return Err(GqlError::new(
                            format!("`{}` needs the argument `id` (a string).", f.name),
                            at,
                        )
                        .into());
                    }
                }
                needs_fields()?;
                self.check_set(&Ty::Resource(t), &f.selection_set, stack)
            }
            Kind::List(t) | Kind::Connection(t) => {
                let context = match ty {
                    Ty::Resource(c) => Some(format!("{c}/graphql-check")),
                    _ => None,
                };
                let args = self.search_args(f, &t, connection, context.as_deref())?;
                if let Some(c) = &args.cursor {
                    let cursor: Cursor = crate::search::open_token(self.ctx, c).map_err(|_| {
                        GqlError::new("Invalid `_cursor`: it was changed or made elsewhere.", at)
                    })?;
                    if cursor.op != "graphql" || cursor.ty != t {
                        return Err(GqlError::new(
                            format!("The `_cursor` is not one of a `{t}` connection."),
                            at,
                        )
                        .into());
                    }
                    crate::search::check_not_expired(cursor.expires_ms, "run the query again")?;
                    self.cursors.push(cursor);
                } else {
                    self.parse_search(f, &t, &args.params)?;
                }
                needs_fields()?;
                let inner = if connection {
                    Ty::Connection(t)
                } else {
                    Ty::Resource(t)
                };
                self.check_set(&inner, &f.selection_set, stack)
            }
            Kind::Element { ty: et, .. } => {
                let child = Ty::of(&et);
                for (a, v) in &f.arguments {
                    let value = self.value(v, f.position)?;
                    match a.as_str() {
                        "_count" | "_offset" => {
                            self.int_arg(f, a)?;
                        }
                        "fhirpath" => {
                            let Some(p) = value.as_str() else {
                                return Err(
                                    GqlError::new("`fhirpath` must be a string.", at).into()
                                );
                            };
                            flint_fhirpath::compile(p).map_err(|e| {
                                GqlError::new(
                                    format!("The FHIRPath `{p}` does not parse: {}.", e.message),
                                    at,
                                )
                            })?;
                        }
                        name => {
                            let known = child
                                .as_ref()
                                .and_then(Ty::def_name)
                                .and_then(|d| definitions().type_def(d))
                                .and_then(|d| d.resolve_property(name))
                                .is_some();
                            if !known {
                                return Err(GqlError::new(
                                    format!(
                                        "Unknown argument `{name}` of `{}`: filters name a \
                                         property of `{et}`, or are `fhirpath`, `_count`, \
                                         `_offset`.",
                                        f.name
                                    ),
                                    at,
                                )
                                .into());
                            }
                        }
                    }
                }
                if Self::directive(f, "flatten").is_some() && child.is_none() {
                    return Err(GqlError::new(
                        format!("`@flatten` needs an object: `{}` is a scalar.", f.name),
                        at,
                    )
                    .into());
                }
                match child {
                    None => leaf(),
                    Some(c) => {
                        needs_fields()?;
                        self.check_set(&c, &f.selection_set, stack)
                    }
                }
            }
            Kind::RefResource => {
                for (a, v) in &f.arguments {
                    let value = self.value(v, f.position)?;
                    match a.as_str() {
                        "type" => {
                            if !value
                                .as_str()
                                .is_some_and(|t| definitions().is_resource_type(t))
                            {
                                return Err(GqlError::new(
                                    format!("`type` must be a resource type, not {value}."),
                                    at,
                                )
                                .into());
                            }
                        }
                        "optional" => {
                            if !value.is_boolean() {
                                return Err(
                                    GqlError::new("`optional` must be a boolean.", at).into()
                                );
                            }
                        }
                        other => {
                            return Err(GqlError::new(
                                format!(
                                    "Unknown argument `{other}` of `resource` (`type`, `optional`)."
                                ),
                                at,
                            )
                            .into());
                        }
                    }
                }
                needs_fields()?;
                let inner = match self.arg(f, "type")? {
                    Some(Value::String(t)) => Ty::Resource(t),
                    _ => Ty::AnyResource,
                };
                self.check_set(&inner, &f.selection_set, stack)
            }
            Kind::Edges(t) => {
                no_args("the field")?;
                needs_fields()?;
                self.check_set(&Ty::Edge(t), &f.selection_set, stack)
            }
            Kind::EdgeResource(t) => {
                no_args("the field")?;
                needs_fields()?;
                self.check_set(&Ty::Resource(t), &f.selection_set, stack)
            }
            Kind::Schema => {
                no_args("the field")?;
                needs_fields()?;
                self.check_meta("__Schema", &f.selection_set, stack)
            }
            Kind::TypeByName => {
                for (a, _) in &f.arguments {
                    if a != "name" {
                        return Err(GqlError::new(
                            format!("Unknown argument `{a}` of `__type`: it takes `name`."),
                            at,
                        )
                        .into());
                    }
                }
                if !matches!(self.arg(f, "name")?, Some(Value::String(_))) {
                    return Err(GqlError::new(
                        "`__type` needs the argument `name` (a string).",
                        at,
                    )
                    .into());
                }
                needs_fields()?;
                self.check_meta("__Type", &f.selection_set, stack)
            }
        }
    }

    /// Checks a selection on the introspection type `meta` (`__Schema`, `__Type`, ...).
    fn check_meta(&mut self, meta: &str, set: &'c SelSet, stack: &mut Vec<String>) -> Res<()> {
        for sel in &set.items {
            match sel {
                q::Selection::Field(f) => {
                    let at = Some(f.position);
                    self.check_directives(&f.directives, None)?;
                    if f.name == "__typename" {
                        continue;
                    }
                    let Some(ty) = schema::meta_field(meta, &f.name) else {
                        return Err(GqlError::new(
                            format!("Unknown field `{}` on `{meta}`.", f.name),
                            at,
                        )
                        .into());
                    };
                    for (a, _) in &f.arguments {
                        if a != "includeDeprecated" {
                            return Err(GqlError::new(
                                format!("Unknown argument `{a}` of `{meta}.{}`.", f.name),
                                at,
                            )
                            .into());
                        }
                    }
                    let inner = schema::named(ty);
                    match (
                        schema::is_meta_object(inner),
                        f.selection_set.items.is_empty(),
                    ) {
                        (true, true) => {
                            return Err(GqlError::new(
                                format!("`{}` is an object: select some of its fields.", f.name),
                                at,
                            )
                            .into());
                        }
                        (false, false) => {
                            return Err(GqlError::new(
                                format!("`{}` is a scalar: it has no fields to select.", f.name),
                                at,
                            )
                            .into());
                        }
                        (true, false) => self.check_meta(inner, &f.selection_set, stack)?,
                        (false, true) => {}
                    }
                }
                q::Selection::InlineFragment(i) => {
                    self.check_directives(&i.directives, None)?;
                    let inner = match &i.type_condition {
                        Some(q::TypeCondition::On(t)) => t.as_str(),
                        None => meta,
                    };
                    if !schema::is_meta_object(inner) {
                        return Err(GqlError::new(
                            format!("Unknown type `{inner}` in a fragment on `{meta}`."),
                            Some(i.position),
                        )
                        .into());
                    }
                    self.check_meta(inner, &i.selection_set, stack)?;
                }
                q::Selection::FragmentSpread(sp) => {
                    self.check_directives(&sp.directives, None)?;
                    let Some(frag) = self.fragments.get(&sp.fragment_name).copied() else {
                        return Err(GqlError::new(
                            format!("Unknown fragment `{}`.", sp.fragment_name),
                            Some(sp.position),
                        )
                        .into());
                    };
                    if stack.len() >= MAX_FRAGMENT_DEPTH || stack.contains(&sp.fragment_name) {
                        return Err(GqlError::new(
                            format!(
                                "The fragment `{}` spreads itself or nests too deep.",
                                sp.fragment_name
                            ),
                            Some(sp.position),
                        )
                        .into());
                    }
                    let q::TypeCondition::On(t) = &frag.type_condition;
                    if !schema::is_meta_object(t) {
                        return Err(GqlError::new(
                            format!("Unknown type `{t}` in a fragment on `{meta}`."),
                            Some(frag.position),
                        )
                        .into());
                    }
                    let key = (sp.fragment_name.clone(), Ty::Complex(t.clone()));
                    if self.checked.insert(key) {
                        stack.push(sp.fragment_name.clone());
                        self.check_meta(t, &frag.selection_set, stack)?;
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates a selection on `value`, a value of the introspection type `meta`, into
    /// `out` (fields selected twice are merged).
    fn meta_object(
        &mut self,
        schema: &schema::Schema,
        meta: &str,
        value: &Value,
        set: &SelSet,
        out: &mut Map<String, Value>,
    ) -> Res<()> {
        let value = schema.resolve(value);
        for sel in &set.items {
            match sel {
                q::Selection::Field(f) => {
                    if self.skipped(&f.directives)? {
                        continue;
                    }
                    self.steps += 1;
                    if self.steps > MAX_STEPS {
                        return Err(Fail::Costly(GqlError::new(
                            format!("The answer would evaluate more than {MAX_STEPS} fields."),
                            Some(f.position),
                        )));
                    }
                    let name = f.alias.clone().unwrap_or_else(|| f.name.clone());
                    let v = if f.name == "__typename" {
                        json!(meta)
                    } else {
                        let inner = schema::meta_field(meta, &f.name).map(schema::named);
                        let raw = &value[f.name.as_str()];
                        match inner {
                            Some(inner) if schema::is_meta_object(inner) => match raw {
                                Value::Array(items) => {
                                    let mut list = Vec::with_capacity(items.len());
                                    for item in items {
                                        let mut m = Map::new();
                                        self.meta_object(
                                            schema,
                                            inner,
                                            item,
                                            &f.selection_set,
                                            &mut m,
                                        )?;
                                        list.push(Value::Object(m));
                                    }
                                    Value::Array(list)
                                }
                                Value::Null => Value::Null,
                                one => {
                                    let mut m = Map::new();
                                    self.meta_object(schema, inner, one, &f.selection_set, &mut m)?;
                                    Value::Object(m)
                                }
                            },
                            _ => raw.clone(),
                        }
                    };
                    merge_into(out, name, v);
                }
                q::Selection::InlineFragment(i) => {
                    if self.skipped(&i.directives)? {
                        continue;
                    }
                    let applies = match &i.type_condition {
                        Some(q::TypeCondition::On(t)) => t == meta,
                        None => true,
                    };
                    if applies {
                        self.meta_object(schema, meta, value, &i.selection_set, out)?;
                    }
                }
                q::Selection::FragmentSpread(sp) => {
                    if self.skipped(&sp.directives)? {
                        continue;
                    }
                    let Some(frag) = self.fragments.get(&sp.fragment_name).copied() else {
                        continue;
                    };
                    let q::TypeCondition::On(t) = &frag.type_condition;
                    if t == meta {
                        self.meta_object(schema, meta, value, &frag.selection_set, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- evaluation

    /// Counts `n` more resources read; past the limit the answer is too costly.
    fn count(&mut self, n: usize, at: Option<Pos>) -> Res<()> {
        self.loaded += n;
        if self.loaded > self.limit {
            return Err(Fail::Costly(GqlError::new(
                format!(
                    "The answer would hold more than {} resources: page with `_count` or use a \
                     connection.",
                    self.limit
                ),
                at,
            )));
        }
        Ok(())
    }

    fn db(&self) -> Res<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| Fail::Fhir(FhirError::from(flint_db::DbError::fault("no database"))))
    }

    /// Evaluates `set` on `value` (of type `ty`, inside the resource `root`) into `out`;
    /// `inherited` makes every field a list (children of a flattened list), `suffix` is
    /// appended to the field names (`@slice`).
    #[allow(clippy::too_many_arguments)]
    fn object<'b>(
        &'b mut self,
        ty: &'b Ty,
        value: &'b Value,
        root: &'b Arc<Value>,
        set: &'c SelSet,
        out: &'b mut Out,
        inherited: bool,
        suffix: &'b str,
        path: &'b mut Vec<Value>,
    ) -> Step<'b>
    where
        'c: 'b,
    {
        Box::pin(async move {
            for sel in &set.items {
                match sel {
                    q::Selection::Field(f) => {
                        if self.skipped(&f.directives)? {
                            continue;
                        }
                        self.steps += 1;
                        if self.steps > MAX_STEPS {
                            return Err(Fail::Costly(GqlError::new(
                                format!("The answer would evaluate more than {MAX_STEPS} fields."),
                                Some(f.position),
                            )));
                        }
                        self.field(ty, value, root, f, out, inherited, suffix, path)
                            .await?;
                    }
                    q::Selection::InlineFragment(i) => {
                        if self.skipped(&i.directives)? {
                            continue;
                        }
                        let applies = match &i.type_condition {
                            Some(q::TypeCondition::On(t)) => condition_applies(ty, value, t),
                            None => true,
                        };
                        if applies {
                            let inner = narrowed(ty, value);
                            self.object(
                                &inner,
                                value,
                                root,
                                &i.selection_set,
                                out,
                                inherited,
                                suffix,
                                path,
                            )
                            .await?;
                        }
                    }
                    q::Selection::FragmentSpread(s) => {
                        if self.skipped(&s.directives)? {
                            continue;
                        }
                        let Some(frag) = self.fragments.get(&s.fragment_name).copied() else {
                            continue;
                        };
                        let q::TypeCondition::On(t) = &frag.type_condition;
                        if condition_applies(ty, value, t) {
                            let inner = narrowed(ty, value);
                            self.object(
                                &inner,
                                value,
                                root,
                                &frag.selection_set,
                                out,
                                inherited,
                                suffix,
                                path,
                            )
                            .await?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Evaluates field `f` of `value` (of type `ty`) into `out`.
    #[allow(clippy::too_many_arguments)]
    async fn field(
        &mut self,
        ty: &Ty,
        value: &Value,
        root: &Arc<Value>,
        f: &'c Field,
        out: &mut Out,
        inherited: bool,
        suffix: &str,
        path: &mut Vec<Value>,
    ) -> Res<()> {
        let name = format!("{}{suffix}", f.alias.as_deref().unwrap_or(&f.name));
        let Some(kind) = field_kind(ty, &f.name) else {
            return Err(
                GqlError::new(format!("Unknown field `{}`.", f.name), Some(f.position)).into(),
            );
        };
        let single = if inherited {
            ListStatus::Repeating
        } else {
            ListStatus::Single
        };
        let status = |many: bool| {
            if Self::directive(f, "singleton").is_some() {
                ListStatus::Singleton
            } else if (many || inherited) && Self::directive(f, "first").is_none() {
                ListStatus::Repeating
            } else {
                ListStatus::Single
            }
        };
        if !inherited {
            // A field selected again (same name or alias) answers once.
            out.slots.retain(|s| s.name != name);
        }
        path.push(json!(name));
        let r = match kind {
            Kind::Typename => {
                out.slot(&name, single)
                    .values
                    .push(json!(ty.typename(value)));
                Ok(())
            }
            Kind::ResourceType | Kind::Meta => {
                let v = value[f.name.as_str()].clone();
                out.slot(&name, single)
                    .values
                    .extend(Some(v).filter(|v| !v.is_null()));
                Ok(())
            }
            Kind::Element { ty: et, many } => {
                self.element(
                    value, root, f, &name, &et, many, out, inherited, suffix, path,
                )
                .await
            }
            Kind::Read(t) => {
                let id = match self.arg(f, "id")? {
                    Some(Value::String(id)) => id,
                    _ => String::new(),
                };
                let db = self.db()?.clone();
                let found = match db.resource(&t, &id).map_err(FhirError::from)? {
                    Some(h) if !h.is_deleted() => Some(h),
                    Some(_) => {
                        self.field_error(format!("Resource `{t}/{id}` was deleted."), f, path);
                        None
                    }
                    None => {
                        self.field_error(format!("Resource `{t}/{id}` was not found."), f, path);
                        None
                    }
                };
                match found {
                    Some(h) => {
                        self.count(1, Some(f.position))?;
                        let v = Arc::new(crate::interaction::materialize(&db, &h).await?);
                        let rt = Ty::Resource(t);
                        self.emit_objects(f, &name, status(false), &rt, vec![v], out, path)
                            .await
                    }
                    None => {
                        out.slot(&name, status(false));
                        Ok(())
                    }
                }
            }
            Kind::List(t) => {
                let context = reverse_context(ty, value);
                let args = self.search_args(f, &t, false, context.as_deref())?;
                let (handles, _) = self
                    .search(f, &t, &args.params, args.offset, args.count)
                    .await?;
                let resources = self.load(&handles).await?;
                let rt = Ty::Resource(t);
                self.emit_objects(f, &name, status(true), &rt, resources, out, path)
                    .await
            }
            Kind::Connection(t) => {
                let context = reverse_context(ty, value);
                let args = self.search_args(f, &t, true, context.as_deref())?;
                let conn = self.connection(f, &t, args).await?;
                let ct = Ty::Connection(t);
                self.emit_objects(
                    f,
                    &name,
                    status(false),
                    &ct,
                    vec![Arc::new(conn)],
                    out,
                    path,
                )
                .await
            }
            Kind::Edges(t) => {
                let edges: Vec<Arc<Value>> = value["edges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| Arc::new(e.clone()))
                    .collect();
                let et = Ty::Edge(t);
                self.emit_objects(f, &name, status(true), &et, edges, out, path)
                    .await
            }
            Kind::EdgeResource(t) => {
                let r = Arc::new(value["resource"].clone());
                let rt = Ty::Resource(t);
                self.emit_objects(f, &name, status(false), &rt, vec![r], out, path)
                    .await
            }
            Kind::RefResource => {
                self.reference(value, root, f, &name, status(false), out, path)
                    .await
            }
            k @ (Kind::Schema | Kind::TypeByName) => {
                let schema = schema::build(self.ctx.state.registry());
                let found = if matches!(k, Kind::Schema) {
                    schema.schema_value()
                } else {
                    match self.arg(f, "name")? {
                        Some(Value::String(n)) => {
                            schema.types.get(&n).cloned().unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    }
                };
                let meta = if matches!(k, Kind::Schema) {
                    "__Schema"
                } else {
                    "__Type"
                };
                let v = if found.is_null() {
                    Value::Null
                } else {
                    let mut m = Map::new();
                    self.meta_object(&schema, meta, &found, &f.selection_set, &mut m)?;
                    Value::Object(m)
                };
                out.slot(&name, single).values.push(v);
                Ok(())
            }
        };
        path.pop();
        r
    }

    /// Records a field error (the field is null in the answer).
    fn field_error(&mut self, message: String, f: &Field, path: &[Value]) {
        let mut e = GqlError::new(message, Some(f.position));
        e.path = path.to_vec();
        self.errors.push(e);
    }

    /// Evaluates the selection of `f` on each of `objects` (resources, connections, edges)
    /// into slot `name` (or into `out` itself with `@flatten`).
    #[allow(clippy::too_many_arguments)]
    async fn emit_objects(
        &mut self,
        f: &'c Field,
        name: &str,
        status: ListStatus,
        ty: &Ty,
        objects: Vec<Arc<Value>>,
        out: &mut Out,
        path: &mut Vec<Value>,
    ) -> Res<()> {
        let flatten = Self::directive(f, "flatten").is_some();
        let first = Self::directive(f, "first").is_some();
        let many = status == ListStatus::Repeating;
        if !flatten {
            out.slot(name, status);
        }
        for (i, v) in objects.iter().enumerate() {
            let root = if matches!(ty, Ty::Resource(_)) {
                v.clone()
            } else {
                Arc::new(Value::Null)
            };
            if many {
                path.push(json!(i));
            }
            let r = if flatten {
                self.object(ty, v, &root, &f.selection_set, out, many, "", path)
                    .await
            } else {
                let mut child = Out::default();
                let r = self
                    .object(ty, v, &root, &f.selection_set, &mut child, false, "", path)
                    .await;
                out.slot(name, status).values.push(child.render());
                r
            };
            if many {
                path.pop();
            }
            r?;
            if first {
                break;
            }
        }
        Ok(())
    }

    /// Evaluates element field `f` (of FHIR type `et`) of `value` into `out`.
    #[allow(clippy::too_many_arguments)]
    async fn element(
        &mut self,
        value: &Value,
        root: &Arc<Value>,
        f: &'c Field,
        name: &str,
        et: &str,
        many: bool,
        out: &mut Out,
        inherited: bool,
        suffix: &str,
        path: &mut Vec<Value>,
    ) -> Res<()> {
        let items: Vec<&Value> = match &value[f.name.as_str()] {
            Value::Null => Vec::new(),
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        let items = self.filter(f, items)?;
        let flatten = Self::directive(f, "flatten").is_some();
        let first = Self::directive(f, "first").is_some();
        let singleton = Self::directive(f, "singleton").is_some();
        let slice = match Self::directive(f, "slice") {
            Some(d) => match d.arguments.first() {
                Some((_, v)) => match self.value(v, d.position)? {
                    Value::String(p) if p == "$index" => Some(None),
                    Value::String(p) => {
                        Some(Some(flint_fhirpath::compile(&p).map_err(|e| {
                            GqlError::new(e.message.to_string(), Some(d.position))
                        })?))
                    }
                    _ => None,
                },
                None => None,
            },
            None => None,
        };
        // Children of a flattened list are lists themselves.
        let child_inherited = flatten && many && !first;
        let status = if singleton {
            ListStatus::Singleton
        } else if (many || inherited) && !first {
            ListStatus::Repeating
        } else {
            ListStatus::Single
        };
        let base = f.alias.as_deref().unwrap_or(&f.name);
        if !flatten && slice.is_none() {
            out.slot(name, status);
        }
        let child_ty = Ty::of(et);
        for (i, item) in items.iter().enumerate() {
            let item_suffix = match &slice {
                None => suffix.to_string(),
                Some(None) => format!("{suffix}.{i}"),
                Some(Some(expr)) => {
                    let items = expr.evaluate(item).map_err(|e| {
                        GqlError::new(
                            format!("The `@slice` path fails: {}", e.message),
                            Some(f.position),
                        )
                    })?;
                    let key = items.first().and_then(item_text).unwrap_or_default();
                    format!("{suffix}.{key}")
                }
            };
            let slot_name = if slice.is_some() {
                format!("{base}{item_suffix}")
            } else {
                name.to_string()
            };
            if many {
                path.push(json!(i));
            }
            let r = match &child_ty {
                None => {
                    let slot_status = if slice.is_some() && !singleton {
                        ListStatus::Single
                    } else {
                        status
                    };
                    out.slot(&slot_name, slot_status)
                        .values
                        .push((*item).clone());
                    Ok(())
                }
                Some(ct) => {
                    let ct = narrowed(ct, item);
                    if flatten {
                        let sfx = if slice.is_some() {
                            item_suffix.as_str()
                        } else {
                            suffix
                        };
                        self.object(
                            &ct,
                            item,
                            root,
                            &f.selection_set,
                            out,
                            child_inherited,
                            sfx,
                            path,
                        )
                        .await
                    } else {
                        let mut child = Out::default();
                        let r = self
                            .object(
                                &ct,
                                item,
                                root,
                                &f.selection_set,
                                &mut child,
                                false,
                                "",
                                path,
                            )
                            .await;
                        let slot_status = if slice.is_some() && !singleton {
                            ListStatus::Single
                        } else {
                            status
                        };
                        out.slot(&slot_name, slot_status)
                            .values
                            .push(child.render());
                        r
                    }
                }
            };
            if many {
                path.pop();
            }
            r?;
            if first {
                break;
            }
        }
        Ok(())
    }

    /// The items of a list element that pass `f`'s filter arguments, then `_offset` and
    /// `_count`.
    fn filter<'v>(&self, f: &Field, items: Vec<&'v Value>) -> Res<Vec<&'v Value>> {
        let mut items = items;
        for (a, v) in &f.arguments {
            let want = self.value(v, f.position)?;
            match a.as_str() {
                "_count" | "_offset" => {}
                "fhirpath" => {
                    let Some(p) = want.as_str() else { continue };
                    let expr = flint_fhirpath::compile(p)
                        .map_err(|e| GqlError::new(e.message.to_string(), Some(f.position)))?;
                    let mut kept = Vec::new();
                    for item in items {
                        let r = expr.evaluate(item).map_err(|e| {
                            GqlError::new(
                                format!("The FHIRPath `{p}` fails: {}", e.message),
                                Some(f.position),
                            )
                        })?;
                        if is_true(&r) {
                            kept.push(item);
                        }
                    }
                    items = kept;
                }
                prop => {
                    let wanted: Vec<String> = match &want {
                        Value::Array(a) => a.iter().filter_map(text_of).collect(),
                        Value::Null => continue,
                        v => text_of(v).into_iter().collect(),
                    };
                    items.retain(|item| {
                        let have: Vec<String> = match &item[prop] {
                            Value::Array(a) => a.iter().filter_map(text_of).collect(),
                            v => text_of(v).into_iter().collect(),
                        };
                        have.iter().any(|h| wanted.contains(h))
                    });
                }
            }
        }
        let offset = self.int_arg(f, "_offset")?.unwrap_or(0);
        let count = self.int_arg(f, "_count")?;
        Ok(items
            .into_iter()
            .skip(offset)
            .take(count.unwrap_or(usize::MAX))
            .collect())
    }

    /// Resolves the Reference `value` for `f` (`resource`) into slot `name`.
    #[allow(clippy::too_many_arguments)]
    async fn reference(
        &mut self,
        value: &Value,
        root: &Arc<Value>,
        f: &'c Field,
        name: &str,
        status: ListStatus,
        out: &mut Out,
        path: &mut Vec<Value>,
    ) -> Res<()> {
        let want_type = match self.arg(f, "type")? {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        let optional = self.arg(f, "optional")? == Some(Value::Bool(true));
        let Some(reference) = value["reference"].as_str() else {
            out.slot(name, status);
            return Ok(());
        };
        let target: Option<Arc<Value>> = if let Some(local) = reference.strip_prefix('#') {
            root["contained"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["id"].as_str() == Some(local))
                .map(|c| Arc::new(c.clone()))
        } else {
            match crate::resource::local_ref(reference, &self.ctx.base) {
                Some((t, id))
                    if definitions().is_resource_type(t) && flint_model::is_valid_id(id) =>
                {
                    let db = self.db()?.clone();
                    match db.resource(t, id).map_err(FhirError::from)? {
                        Some(h) if !h.is_deleted() => {
                            self.count(1, Some(f.position))?;
                            Some(Arc::new(crate::interaction::materialize(&db, &h).await?))
                        }
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        let Some(target) = target else {
            if !optional {
                self.field_error(
                    format!("The reference `{reference}` can't be resolved."),
                    f,
                    path,
                );
            }
            out.slot(name, status);
            return Ok(());
        };
        let rt = target["resourceType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if want_type.as_ref().is_some_and(|w| *w != rt) || !definitions().is_resource_type(&rt) {
            out.slot(name, status);
            return Ok(());
        }
        let ty = Ty::Resource(rt);
        self.emit_objects(f, name, status, &ty, vec![target], out, path)
            .await
    }

    /// The page `offset..offset + count` of the search `params` on `ty` (all from `offset`
    /// without `count`), and the number of matches.
    async fn search(
        &mut self,
        f: &Field,
        ty: &str,
        params: &[(String, String)],
        offset: usize,
        count: Option<usize>,
    ) -> Res<(Vec<flint_db::ResourceHandle>, usize)> {
        let db = self.db()?.clone();
        let mut query = self.parse_search(f, ty, params)?;
        if crate::search::needs_stored(&query) {
            crate::search::resolve_stored(self.ctx, &db, &mut query).await?;
        }
        let matches = self
            .ctx
            .state
            .engine()
            .matches(&db, &query)
            .map_err(search_error)?;
        let total = matches.len();
        let n = total
            .saturating_sub(offset)
            .min(count.unwrap_or(usize::MAX));
        // Counted before the versions are read.
        self.count(n, Some(f.position))?;
        let page = matches.page(&db, offset, n).map_err(search_error)?;
        let page = if db.removals_after() {
            db.still_indexed(&page).map_err(FhirError::from)?
        } else {
            page
        };
        Ok((page, total))
    }

    /// The resources of `handles`, in order.
    async fn load(&mut self, handles: &[flint_db::ResourceHandle]) -> Res<Vec<Arc<Value>>> {
        let db = self.db()?.clone();
        let stored = crate::search::stored_all(&db, handles).await?;
        stored
            .iter()
            .map(|s| s.to_value().map(Arc::new).map_err(Fail::Fhir))
            .collect()
    }

    /// A connection: its counts, cursors and edges (a JSON object its fields read).
    async fn connection(&mut self, f: &Field, ty: &str, args: SearchArgs) -> Res<Value> {
        let (params, offset, count) = match &args.cursor {
            Some(_) => {
                // Checked and opened while checking, in query order.
                let token = args.cursor.clone().unwrap_or_default();
                let c: Cursor = crate::search::open_token(self.ctx, &token)?;
                (c.params, c.offset, c.count)
            }
            None => (
                args.params,
                args.offset,
                args.count
                    .unwrap_or(self.ctx.state.config().default_page_size)
                    .max(1),
            ),
        };
        let (handles, total) = self.search(f, ty, &params, offset, Some(count)).await?;
        let resources = self.load(&handles).await?;
        let t = self.db()?.t();
        let expires_ms = flint_db::mem::now_ms() + PAGE_LIFETIME_MS;
        let cursor = |offset: usize| -> Res<Value> {
            let c = Cursor {
                op: "graphql".into(),
                ty: ty.to_string(),
                params: params.clone(),
                t,
                offset,
                count,
                expires_ms,
            };
            Ok(json!(crate::search::seal_token(self.ctx, &c)?))
        };
        let last_offset = if total == 0 {
            0
        } else {
            (total - 1) / count * count
        };
        Ok(json!({
            "count": total,
            "offset": offset,
            "pagesize": count,
            "first": cursor(0)?,
            "previous": if offset > 0 { cursor(offset.saturating_sub(count))? } else { Value::Null },
            "next": if offset + count < total { cursor(offset + count)? } else { Value::Null },
            "last": cursor(last_offset)?,
            "edges": resources
                .iter()
                .map(|r| json!({"mode": "match", "score": Value::Null, "resource": r.as_ref()}))
                .collect::<Vec<_>>(),
        }))
    }
}

/// The `Type/id` a reverse search inside resource `value` refers to.
fn reverse_context(ty: &Ty, value: &Value) -> Option<String> {
    match ty {
        Ty::Resource(t) => Some(format!("{t}/{}", value["id"].as_str().unwrap_or_default())),
        _ => None,
    }
}

/// The type a fragment on `cond` selects inside `ty` (checked).
fn condition_type(ty: &Ty, cond: &str, at: Pos) -> Res<Ty> {
    let defs = definitions();
    let ok = match ty {
        Ty::Query => cond == "Query",
        Ty::Resource(t) => cond == t || cond == "Resource" || cond == "DomainResource",
        Ty::AnyResource => {
            defs.is_resource_type(cond) || cond == "Resource" || cond == "DomainResource"
        }
        Ty::Complex(t) => *cond == t.replace('.', "_") || cond == t,
        Ty::Connection(t) => *cond == format!("{t}Connection"),
        Ty::Edge(t) => *cond == format!("{t}Edge"),
    };
    if !ok {
        return Err(GqlError::new(
            format!(
                "A fragment on `{cond}` can't apply to `{}`.",
                ty.typename(&Value::Null)
            ),
            Some(at),
        )
        .into());
    }
    Ok(match ty {
        Ty::AnyResource if defs.is_resource_type(cond) => Ty::Resource(cond.to_string()),
        t => t.clone(),
    })
}

/// Whether a fragment on `cond` applies to `value` of type `ty`.
fn condition_applies(ty: &Ty, value: &Value, cond: &str) -> bool {
    match ty {
        Ty::AnyResource | Ty::Resource(_) => {
            cond == "Resource"
                || cond == "DomainResource"
                || value["resourceType"].as_str() == Some(cond)
        }
        _ => true,
    }
}

/// `ty` narrowed to the concrete type of `value` (a resource of any type).
fn narrowed(ty: &Ty, value: &Value) -> Ty {
    match (ty, value["resourceType"].as_str()) {
        (Ty::AnyResource, Some(t)) if definitions().is_resource_type(t) => {
            Ty::Resource(t.to_string())
        }
        (t, _) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_have_positions() {
        let e = parse_error(q::parse_query::<String>("{ Patient(id: \"x\") { id }").unwrap_err());
        assert_eq!(e.locations.len(), 1, "{e:?}");
        assert!(e.message.starts_with("Syntax error"), "{}", e.message);
        let e = parse_error(q::parse_query::<String>("\n\n  }").unwrap_err());
        assert_eq!((e.locations[0].line, e.locations[0].column), (3, 3));
    }

    #[test]
    fn fields_resolve_by_the_definitions() {
        assert!(matches!(
            field_kind(&Ty::Query, "PatientList"),
            Some(Kind::List(t)) if t == "Patient"
        ));
        assert!(matches!(
            field_kind(&Ty::Query, "ObservationConnection"),
            Some(Kind::Connection(t)) if t == "Observation"
        ));
        assert!(matches!(
            field_kind(&Ty::Query, "Patient"),
            Some(Kind::Read(_))
        ));
        assert!(field_kind(&Ty::Query, "Nothing").is_none());
        let p = Ty::Resource("Patient".into());
        assert!(matches!(
            field_kind(&p, "name"),
            Some(Kind::Element { ty, many: true }) if ty == "HumanName"
        ));
        assert!(matches!(
            field_kind(&p, "deceasedBoolean"),
            Some(Kind::Element { ty, many: false }) if ty == "boolean"
        ));
        assert!(field_kind(&p, "deceased").is_none());
        assert!(matches!(
            field_kind(&p, "ObservationList"),
            Some(Kind::List(_))
        ));
        let r = Ty::Complex("Reference".into());
        assert!(matches!(
            field_kind(&r, "resource"),
            Some(Kind::RefResource)
        ));
        assert!(field_kind(&Ty::Complex("HumanName".into()), "resource").is_none());
        assert_eq!(Ty::of("Resource"), Some(Ty::AnyResource));
        assert_eq!(Ty::of("string"), None);
        assert_eq!(
            Ty::of("Patient.contact"),
            Some(Ty::Complex("Patient.contact".into()))
        );
    }

    #[test]
    fn output_slots_render_by_status() {
        let mut o = Out::default();
        o.slot("a", ListStatus::Single);
        o.slot("b", ListStatus::Single).values.push(json!(1));
        o.slot("c", ListStatus::Repeating);
        let s = o.slot("d", ListStatus::Single);
        s.values.extend([json!(1), json!(2)]);
        o.slot("e", ListStatus::Singleton)
            .values
            .extend([json!("x"), json!("y")]);
        assert_eq!(
            o.render(),
            json!({"a": null, "b": 1, "c": [], "d": [1, 2], "e": "x"})
        );
    }

    #[test]
    fn search_values_join_lists() {
        assert_eq!(
            search_value(&json!(["a", 1, true])),
            Some("a,1,true".into())
        );
        assert_eq!(search_value(&json!(null)), None);
        assert_eq!(search_value(&json!("x")), Some("x".into()));
    }
}
