//! The GraphQL schema of `$graphql`, for introspection (`__schema`, `__type`): built from the
//! FHIR model's type definitions ([`flint_model::defs`]) and the search registry, in the
//! shapes of the GraphQL introspection system, so that GraphiQL-style clients can load it.
//!
//! * `Query`: per resource type `T`, the read `T(id: ID!)`, the search list
//!   `TList(<search parameters>, _count, _offset, _sort)` and the connection
//!   `TConnection(..., _cursor)`; search parameter arguments are `[String]` (a list is OR,
//!   `-` in a name is `_`);
//! * every resource type an `OBJECT` implementing the `Resource` interface, with
//!   `resourceType` and one field per element (a choice element once per type,
//!   `valueQuantity`); complex types and backbone elements (named by their path with `_`,
//!   `Patient_contact`) are objects too; list elements take `_count`, `_offset` and
//!   `fhirpath`; `Reference.resource(type, optional)` is a `Resource`;
//! * FHIR primitives as the built-in scalars: `boolean` → `Boolean`, `integer`,
//!   `positiveInt`, `unsignedInt` → `Int`, `decimal` → `Float`, `id` → `ID`, the others
//!   `String`;
//! * `TConnection` and `TEdge` per type, the introspection types themselves and the
//!   directives (`@include`, `@skip` and the FHIR `@flatten`, `@first`, `@singleton`,
//!   `@slice`).
//!
//! Not described: the reverse searches inside a resource (`ObservationList(_reference:
//! subject)`, one per type and parameter) and list filters by a child property's value.
//!
//! A type is kept as its full `__Type` JSON; a reference to a named type inside it is
//! `{"$ref": name}`, resolved when a query selects into it (see [`Schema::resolve`]).

use flint_model::defs::{Kind, TypeDef, definitions};
use flint_search::Registry;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};

/// A field of an introspection type: its name, its GraphQL type and whether it takes
/// `includeDeprecated: Boolean = false` (its only argument).
type MetaField = (&'static str, &'static str, bool);

/// The introspection types' fields.
pub(super) const META: &[(&str, &[MetaField])] = &[
    (
        "__Schema",
        &[
            ("description", "String", false),
            ("types", "[__Type!]!", false),
            ("queryType", "__Type!", false),
            ("mutationType", "__Type", false),
            ("subscriptionType", "__Type", false),
            ("directives", "[__Directive!]!", false),
        ],
    ),
    (
        "__Type",
        &[
            ("kind", "__TypeKind!", false),
            ("name", "String", false),
            ("description", "String", false),
            ("specifiedByURL", "String", false),
            ("fields", "[__Field!]", true),
            ("interfaces", "[__Type!]", false),
            ("possibleTypes", "[__Type!]", false),
            ("enumValues", "[__EnumValue!]", true),
            ("inputFields", "[__InputValue!]", true),
            ("ofType", "__Type", false),
            ("isOneOf", "Boolean", false),
        ],
    ),
    (
        "__Field",
        &[
            ("name", "String!", false),
            ("description", "String", false),
            ("args", "[__InputValue!]!", true),
            ("type", "__Type!", false),
            ("isDeprecated", "Boolean!", false),
            ("deprecationReason", "String", false),
        ],
    ),
    (
        "__InputValue",
        &[
            ("name", "String!", false),
            ("description", "String", false),
            ("type", "__Type!", false),
            ("defaultValue", "String", false),
            ("isDeprecated", "Boolean!", false),
            ("deprecationReason", "String", false),
        ],
    ),
    (
        "__EnumValue",
        &[
            ("name", "String!", false),
            ("description", "String", false),
            ("isDeprecated", "Boolean!", false),
            ("deprecationReason", "String", false),
        ],
    ),
    (
        "__Directive",
        &[
            ("name", "String!", false),
            ("description", "String", false),
            ("isRepeatable", "Boolean!", false),
            ("locations", "[__DirectiveLocation!]!", false),
            ("args", "[__InputValue!]!", true),
        ],
    ),
];

/// The introspection enums and their values.
const META_ENUMS: &[(&str, &[&str])] = &[
    (
        "__TypeKind",
        &[
            "SCALAR",
            "OBJECT",
            "INTERFACE",
            "UNION",
            "ENUM",
            "INPUT_OBJECT",
            "LIST",
            "NON_NULL",
        ],
    ),
    (
        "__DirectiveLocation",
        &[
            "QUERY",
            "MUTATION",
            "SUBSCRIPTION",
            "FIELD",
            "FRAGMENT_DEFINITION",
            "FRAGMENT_SPREAD",
            "INLINE_FRAGMENT",
            "VARIABLE_DEFINITION",
            "SCHEMA",
            "SCALAR",
            "OBJECT",
            "FIELD_DEFINITION",
            "ARGUMENT_DEFINITION",
            "INTERFACE",
            "UNION",
            "ENUM",
            "ENUM_VALUE",
            "INPUT_OBJECT",
            "INPUT_FIELD_DEFINITION",
        ],
    ),
];

/// The field `field` of the introspection type `meta`: its GraphQL type.
pub(super) fn meta_field(meta: &str, field: &str) -> Option<&'static str> {
    META.iter()
        .find(|(t, _)| *t == meta)?
        .1
        .iter()
        .find(|(f, _, _)| *f == field)
        .map(|(_, ty, _)| *ty)
}

/// The named type inside a GraphQL type (`[__Type!]!` → `__Type`).
pub(super) fn named(ty: &str) -> &str {
    ty.trim_matches(|c| c == '[' || c == ']' || c == '!')
}

/// Whether `name` is an introspection object type (one with fields).
pub(super) fn is_meta_object(name: &str) -> bool {
    META.iter().any(|(t, _)| *t == name)
}

/// A type reference in introspection form: `String!` → NON_NULL of `{"$ref": "String"}`.
fn type_ref(ty: &str) -> Value {
    if let Some(inner) = ty.strip_suffix('!') {
        return json!({"kind": "NON_NULL", "name": null, "ofType": type_ref(inner)});
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return json!({"kind": "LIST", "name": null, "ofType": type_ref(inner)});
    }
    json!({"$ref": ty})
}

/// An argument (`__InputValue`).
fn input(name: &str, ty: &str, description: Option<&str>, default: Option<&str>) -> Value {
    json!({"name": name, "description": description, "type": type_ref(ty),
           "defaultValue": default, "isDeprecated": false, "deprecationReason": null})
}

/// A field (`__Field`).
fn field(name: &str, ty: &str, description: Option<&str>, args: Vec<Value>) -> Value {
    json!({"name": name, "description": description, "args": args, "type": type_ref(ty),
           "isDeprecated": false, "deprecationReason": null})
}

/// A named type (`__Type`) of `kind`.
fn named_type(kind: &str, name: &str, description: Option<&str>) -> Value {
    json!({"kind": kind, "name": name, "description": description, "specifiedByURL": null,
           "fields": null, "interfaces": null, "possibleTypes": null, "enumValues": null,
           "inputFields": null, "ofType": null, "isOneOf": null})
}

/// An object type with `fields` (implementing `interfaces`).
fn object(name: &str, description: Option<&str>, fields: Vec<Value>, interfaces: &[&str]) -> Value {
    let mut t = named_type("OBJECT", name, description);
    t["fields"] = Value::Array(fields);
    t["interfaces"] = interfaces.iter().map(|i| json!({"$ref": i})).collect();
    t
}

/// The GraphQL scalar a FHIR primitive (or `System.*` type) is answered as.
fn scalar(fhir: &str) -> &'static str {
    match fhir {
        "boolean" | "System.Boolean" => "Boolean",
        "integer" | "positiveInt" | "unsignedInt" | "System.Integer" => "Int",
        "decimal" | "System.Decimal" => "Float",
        "id" => "ID",
        _ => "String",
    }
}

/// The GraphQL type name of values of FHIR type `t`.
fn type_name(t: &str) -> String {
    let defs = definitions();
    if t.starts_with("System.") || defs.is_primitive(t) || defs.type_def(t).is_none() {
        scalar(t).to_string()
    } else if t == "Resource" || t == "DomainResource" {
        "Resource".to_string()
    } else {
        t.replace('.', "_")
    }
}

/// `value` + `Quantity` → `valueQuantity` (a choice element's JSON name for type `t`).
fn choice_name(base: &str, t: &str) -> String {
    let mut c = t.chars();
    match c.next() {
        Some(first) => format!("{base}{}{}", first.to_ascii_uppercase(), c.as_str()),
        None => base.to_string(),
    }
}

/// Whether `name` is a valid GraphQL name.
fn is_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

/// The fields of a FHIR type's elements; the FHIR types they name are added to `todo`.
fn element_fields(
    name: &str,
    def: &TypeDef,
    resource: bool,
    todo: &mut VecDeque<String>,
) -> Vec<Value> {
    let mut out = Vec::new();
    if resource {
        out.push(field(
            "resourceType",
            "String",
            Some("The resource type."),
            vec![],
        ));
    }
    let list_args = || {
        vec![
            input("_count", "Int", Some("At most this many items."), None),
            input("_offset", "Int", Some("Skip this many items."), None),
            input(
                "fhirpath",
                "String",
                Some("Only the items this FHIRPath expression is true on."),
                None,
            ),
        ]
    };
    for e in &def.elements {
        let names: Vec<(String, &str)> = if e.choice {
            e.types
                .iter()
                .map(|t| (choice_name(&e.name, t), t.as_str()))
                .collect()
        } else {
            e.types
                .first()
                .map(|t| (e.name.clone(), t.as_str()))
                .into_iter()
                .collect()
        };
        for (n, t) in names {
            if !is_name(&n) {
                continue;
            }
            let tn = type_name(t);
            if !definitions().is_primitive(t) && !t.starts_with("System.") && tn != "Resource" {
                todo.push_back(t.to_string());
            }
            if e.is_array() {
                out.push(field(&n, &format!("[{tn}]"), None, list_args()));
            } else {
                out.push(field(&n, &tn, None, vec![]));
            }
        }
    }
    if name == "Reference" {
        out.push(field(
            "resource",
            "Resource",
            Some("The referenced resource (`#id` in `contained` too)."),
            vec![
                input(
                    "type",
                    "String",
                    Some("Null when the target is not of this type."),
                    None,
                ),
                input(
                    "optional",
                    "Boolean",
                    Some("Null instead of an error when the reference does not resolve."),
                    None,
                ),
            ],
        ));
    }
    out
}

/// The schema: every named type by name and the directives.
pub(super) struct Schema {
    /// The full `__Type` of every named type.
    pub types: BTreeMap<String, Value>,
    /// The `__Directive`s.
    pub directives: Vec<Value>,
}

impl Schema {
    /// `v`, or the type it refers to when it is a `{"$ref": name}`.
    pub fn resolve<'s>(&'s self, v: &'s Value) -> &'s Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(name) => self.types.get(name).unwrap_or(&Value::Null),
            None => v,
        }
    }

    /// The value of `__schema`.
    pub fn schema_value(&self) -> Value {
        json!({
            "description": "FHIR R4 resources (hl7.org/fhir/R4/graphql.html)",
            "types": self.types.keys().map(|k| json!({"$ref": k})).collect::<Vec<_>>(),
            "queryType": {"$ref": "Query"},
            "mutationType": null,
            "subscriptionType": null,
            "directives": self.directives,
        })
    }
}

/// The schema of the model's types and `registry`'s search parameters.
pub(super) fn build(registry: &Registry) -> Schema {
    let defs = definitions();
    let mut types: BTreeMap<String, Value> = BTreeMap::new();
    for s in ["String", "Int", "Float", "Boolean", "ID"] {
        types.insert(s.into(), named_type("SCALAR", s, None));
    }
    // The introspection types.
    for (t, fields) in META {
        let fs = fields
            .iter()
            .map(|(f, ty, dep)| {
                let args = if *dep {
                    vec![input("includeDeprecated", "Boolean", None, Some("false"))]
                } else {
                    vec![]
                };
                field(f, ty, None, args)
            })
            .collect();
        types.insert(t.to_string(), object(t, None, fs, &[]));
    }
    for (t, values) in META_ENUMS {
        let mut e = named_type("ENUM", t, None);
        e["enumValues"] = values
            .iter()
            .map(|v| json!({"name": v, "description": null, "isDeprecated": false, "deprecationReason": null}))
            .collect();
        types.insert(t.to_string(), e);
    }
    // Resources, and the complex and backbone types their elements reach.
    let mut todo: VecDeque<String> = VecDeque::new();
    let mut query_fields = Vec::new();
    let resources = defs.resource_types();
    if let Some(def) = defs.type_def("Resource") {
        let mut r = named_type(
            "INTERFACE",
            "Resource",
            Some("Any resource; select by type with `... on Patient`."),
        );
        r["fields"] = Value::Array(element_fields("Resource", def, true, &mut todo));
        r["interfaces"] = json!([]);
        r["possibleTypes"] = resources.iter().map(|t| json!({"$ref": t})).collect();
        types.insert("Resource".into(), r);
    }
    for ty in resources {
        let Some(def) = defs.type_def(ty) else {
            continue;
        };
        let fields = element_fields(ty, def, true, &mut todo);
        types.insert(ty.clone(), object(ty, None, fields, &["Resource"]));
        // The search arguments of the type.
        let mut search: Vec<Value> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for p in registry.params_of(ty) {
            let name = p.code.replace('-', "_");
            if is_name(&name)
                && !matches!(name.as_str(), "_count" | "_offset" | "_sort" | "_cursor")
                && seen.insert(name.clone())
            {
                search.push(input(
                    &name,
                    "[String]",
                    Some(&format!(
                        "The search parameter `{}` (a list is OR).",
                        p.code
                    )),
                    None,
                ));
            }
        }
        let paging = [
            input("_count", "Int", Some("Page size."), None),
            input("_offset", "Int", Some("Skip this many matches."), None),
            input(
                "_sort",
                "String",
                Some("Sort order, as `_sort` of a search."),
                None,
            ),
        ];
        let mut list_args = search.clone();
        list_args.extend(paging.iter().cloned());
        let mut conn_args = list_args.clone();
        conn_args.push(input(
            "_cursor",
            "String",
            Some("A page cursor (`first`, `previous`, `next`, `last`) of an earlier answer."),
            None,
        ));
        query_fields.push(field(
            ty,
            ty,
            Some(&format!("Reads a {ty} by id.")),
            vec![input("id", "ID!", None, None)],
        ));
        query_fields.push(field(
            &format!("{ty}List"),
            &format!("[{ty}]"),
            Some(&format!("Searches {ty} resources.")),
            list_args,
        ));
        query_fields.push(field(
            &format!("{ty}Connection"),
            &format!("{ty}Connection"),
            Some(&format!("Searches {ty} resources, a page at a time.")),
            conn_args,
        ));
        types.insert(
            format!("{ty}Connection"),
            object(
                &format!("{ty}Connection"),
                None,
                vec![
                    field("count", "Int", Some("The number of matches."), vec![]),
                    field("offset", "Int", None, vec![]),
                    field("pagesize", "Int", None, vec![]),
                    field("first", "String", Some("Cursor of the first page."), vec![]),
                    field("previous", "String", None, vec![]),
                    field("next", "String", None, vec![]),
                    field("last", "String", None, vec![]),
                    field("edges", &format!("[{ty}Edge]"), None, vec![]),
                ],
                &[],
            ),
        );
        types.insert(
            format!("{ty}Edge"),
            object(
                &format!("{ty}Edge"),
                None,
                vec![
                    field("mode", "String", None, vec![]),
                    field("score", "Float", None, vec![]),
                    field("resource", ty, None, vec![]),
                ],
                &[],
            ),
        );
    }
    while let Some(t) = todo.pop_front() {
        let name = type_name(&t);
        if types.contains_key(&name) {
            continue;
        }
        let Some(def) = defs.type_def(&t) else {
            continue;
        };
        if matches!(def.kind, Kind::PrimitiveType) {
            continue;
        }
        let fields = element_fields(&t, def, false, &mut todo);
        types.insert(name.clone(), object(&name, None, fields, &[]));
    }
    types.insert(
        "Query".into(),
        object(
            "Query",
            Some("Reads and searches of every resource type."),
            query_fields,
            &[],
        ),
    );
    let directive = |name: &str, description: &str, locations: &[&str], args: Vec<Value>| {
        json!({"name": name, "description": description, "isRepeatable": false,
               "locations": locations, "args": args})
    };
    let field_only = ["FIELD"];
    let conditional = ["FIELD", "FRAGMENT_SPREAD", "INLINE_FRAGMENT"];
    let directives = vec![
        directive(
            "include",
            "Only when `if` is true.",
            &conditional,
            vec![input("if", "Boolean!", None, None)],
        ),
        directive(
            "skip",
            "Not when `if` is true.",
            &conditional,
            vec![input("if", "Boolean!", None, None)],
        ),
        directive(
            "flatten",
            "The field's children go to its parent.",
            &field_only,
            vec![],
        ),
        directive("first", "Only the first item.", &field_only, vec![]),
        directive(
            "singleton",
            "A single value, never a list.",
            &field_only,
            vec![],
        ),
        directive(
            "slice",
            "One output field per item, named by the FHIRPath `path` on it (`$index`: its index).",
            &field_only,
            vec![input("path", "String!", None, None)],
        ),
    ];
    Schema { types, directives }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` names a type of the schema, every field's type resolves, and the Query
    /// reaches every resource type.
    #[test]
    fn references_resolve() {
        let s = build(&Registry::r4());
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|x| refs(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        for t in s.types.values() {
            refs(t, &mut all);
        }
        for d in &s.directives {
            refs(d, &mut all);
        }
        for r in &all {
            assert!(s.types.contains_key(r), "unknown type {r}");
        }
        let query = &s.types["Query"];
        for ty in definitions().resource_types() {
            let names: Vec<&str> = query["fields"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|f| f["name"].as_str())
                .collect();
            assert!(names.contains(&ty.as_str()), "{ty}");
            assert!(names.contains(&format!("{ty}List").as_str()), "{ty}");
            assert!(s.types.contains_key(ty));
        }
        // A backbone element by its path.
        assert!(s.types.contains_key("Patient_contact"));
        // Field names are unique within each type.
        for (n, t) in &s.types {
            if let Some(fs) = t["fields"].as_array() {
                let mut names: Vec<&str> = fs.iter().filter_map(|f| f["name"].as_str()).collect();
                let len = names.len();
                names.sort();
                names.dedup();
                assert_eq!(names.len(), len, "duplicate field in {n}");
            }
        }
    }
}
