//! Search modifiers answered from stored resources, over HTTP: token `:in`/`:not-in`
//! (ValueSets), `:below`/`:above` (CodeSystem hierarchies), `_list` (Lists).

mod common;

use common::{Server, json};
use serde_json::{Value, json};

fn put(s: &Server, path: &str, v: Value) {
    let r = s
        .client
        .put(s.url(path))
        .header("content-type", "application/fhir+json")
        .body(v.to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "PUT {path}: {}", r.text().unwrap());
}

fn ids(s: &Server, q: &str) -> Vec<String> {
    let (st, b) = json(s.get(q).send().unwrap());
    assert_eq!(st, 200, "GET {q}: {b}");
    let mut v: Vec<String> = b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn value_sets_code_systems_and_lists() {
    let s = Server::start("in-memory", &[]);
    put(
        &s,
        "Patient/p",
        json!({"resourceType": "Patient", "id": "p"}),
    );
    // A ── A1
    //   └─ A2 ── A2a        B (A3 is a child of A by `parent` property)
    put(
        &s,
        "CodeSystem/cs",
        json!({"resourceType": "CodeSystem", "id": "cs", "url": "http://x/cs",
        "status": "active", "content": "complete",
        "concept": [{"code": "A", "concept": [{"code": "A1"}, {"code": "A2", "concept": [{"code": "A2a"}]}]},
                    {"code": "B"},
                    {"code": "A3", "property": [{"code": "parent", "valueCode": "A"}]}]}),
    );
    put(
        &s,
        "ValueSet/vs",
        json!({"resourceType": "ValueSet", "id": "vs", "url": "http://x/vs",
        "status": "active", "compose": {"include": [
            {"system": "http://x/cs", "filter": [{"property": "concept", "op": "is-a", "value": "A2"}]},
            {"system": "http://x/cs", "concept": [{"code": "B"}]}]}}),
    );
    put(
        &s,
        "ValueSet/exp",
        json!({"resourceType": "ValueSet", "id": "exp", "url": "http://x/exp",
        "status": "active", "expansion": {"timestamp": "2020-01-01", "contains": [
            {"system": "http://x/cs", "code": "A1"}, {"system": "http://other", "code": "B"}]}}),
    );
    for c in ["A", "A1", "A2", "A2a", "A3", "B"] {
        put(
            &s,
            &format!("Condition/c{c}"),
            json!({"resourceType": "Condition", "id": format!("c{c}"),
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://x/cs", "code": c}]}}),
        );
    }
    put(
        &s,
        "List/l1",
        json!({"resourceType": "List", "id": "l1", "status": "current", "mode": "working",
        "entry": [{"item": {"reference": "Condition/cA"}}, {"item": {"reference": "Condition/cB"}},
                  {"item": {"reference": "Patient/p"}}]}),
    );
    // is-a A2 gives A2 and A2a; B is listed.
    assert_eq!(
        ids(&s, "Condition?code:in=http://x/vs"),
        ["cA2", "cA2a", "cB"]
    );
    assert_eq!(
        ids(&s, "Condition?code:not-in=http://x/vs"),
        ["cA", "cA1", "cA3"]
    );
    // An expansion is taken as is, systems included (B of another system matches nothing).
    assert_eq!(ids(&s, "Condition?code:in=http://x/exp"), ["cA1"]);
    // Subsumption is reflexive; `parent` properties count as edges.
    assert_eq!(
        ids(&s, "Condition?code:below=http://x/cs|A"),
        ["cA", "cA1", "cA2", "cA2a", "cA3"]
    );
    assert_eq!(
        ids(&s, "Condition?code:below=http://x/cs|A2"),
        ["cA2", "cA2a"]
    );
    assert_eq!(
        ids(&s, "Condition?code:above=http://x/cs|A2a"),
        ["cA", "cA2", "cA2a"]
    );
    // Lists select their members of the searched type.
    assert_eq!(ids(&s, "Condition?_list=l1"), ["cA", "cB"]);
    assert_eq!(ids(&s, "Patient?_list=l1"), ["p"]);
    // Inside reverse chains too.
    assert_eq!(
        ids(&s, "Patient?_has:Condition:subject:code:in=http://x/vs"),
        ["p"]
    );
    // Unknown value sets and code systems are a 400 naming the parameter.
    for q in [
        "Condition?code:in=http://x/none",
        "Condition?code:below=http://none|A",
    ] {
        let (st, oo) = json(s.get(q).send().unwrap());
        assert_eq!(st, 400, "{q}: {oo}");
        assert_eq!(oo["resourceType"], "OperationOutcome");
        assert!(
            oo["issue"][0]["expression"][0]
                .as_str()
                .unwrap()
                .starts_with("code:")
        );
    }
}

/// A custom parameter added later through `DB_SEARCH_PARAM_BUNDLE` finds resources stored
/// before: the server re-indexes when the parameters change.
#[test]
fn custom_parameters_reindex_existing_resources() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in("standalone", Some(dir.path()), &[]);
    let with_ext = |id: &str, colour: &str| {
        json!({"resourceType": "Patient", "id": id, "extension": [
            {"url": "http://x/colour", "valueString": colour}]})
    };
    put(&s, "Patient/a", with_ext("a", "red"));
    put(&s, "Patient/b", with_ext("b", "blue"));
    let strict = |s: &Server| {
        s.get("Patient?colour=red")
            .header("prefer", "handling=strict")
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(strict(&s), 400, "unknown before the bundle");
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "SearchParameter", "url": "http://x/SearchParameter/colour",
        "name": "colour", "status": "active", "description": "favourite colour",
        "code": "colour", "base": ["Patient"], "type": "string",
        "expression": "Patient.extension('http://x/colour').value"}}]});
    let path = dir.path().join("params.json");
    std::fs::write(&path, bundle.to_string()).unwrap();
    drop(s);
    s = Server::start_in(
        "standalone",
        Some(dir.path()),
        &[("DB_SEARCH_PARAM_BUNDLE", path.to_str().unwrap())],
    );
    assert_eq!(strict(&s), 200);
    assert_eq!(ids(&s, "Patient?colour=red"), ["a"]);
    assert_eq!(ids(&s, "Patient?colour=b"), ["b"]);
    // New writes are indexed with the custom parameter too.
    put(&s, "Patient/c", with_ext("c", "reddish"));
    assert_eq!(ids(&s, "Patient?colour=red"), ["a", "c"]);
}
