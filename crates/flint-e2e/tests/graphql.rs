//! `$graphql` over HTTP against the real binary (standalone, RocksDB): loads the Organizations,
//! Locations and Practitioners of `../shared/synthea` and its eight smallest patient bundles,
//! then answers GraphQL queries (search lists with element filters and `@first`, per-patient
//! queries with variables and reverse references, an Encounter connection paged by cursors
//! with each Encounter's service provider resolved) and compares every answer with what this
//! test computes from the raw bundles. Without `../shared/synthea` the test fails.

mod common;
#[path = "common/synthea_data.rs"]
mod synthea_data;

use common::{Server, json};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::PathBuf;
use synthea_data::Data;

const SYNTHEA: &str = "https://github.com/synthetichealth/synthea";
const PATIENTS: usize = 8;

/// The Synthea identifier (the original uuid) of a resource.
fn synthea_id(r: &Value) -> String {
    r["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["system"] == SYNTHEA)
        .and_then(|i| i["value"].as_str())
        .unwrap_or_else(|| panic!("no Synthea identifier: {r}"))
        .to_string()
}

/// The Synthea identifier of a GraphQL answer's `identifier(system: ...) { value }`.
fn answered_id(v: &Value) -> String {
    v["identifier"][0]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no identifier: {v}"))
        .to_string()
}

fn has_code(cc: &Value, system: &str, code: &str) -> bool {
    cc["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["system"] == system && c["code"] == code)
}

fn read_bundle(f: &PathBuf) -> Value {
    let mut text = String::new();
    bzip2::read::MultiBzDecoder::new(std::fs::File::open(f).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A POSTed GraphQL query with `variables`: the `data` of a 200 answer without errors.
fn query(s: &Server, q: &str, variables: Value) -> Value {
    let (status, v) = json(
        s.client
            .post(s.url("$graphql"))
            .header("content-type", "application/json")
            .body(json!({"query": q, "variables": variables}).to_string())
            .send()
            .expect("POST $graphql"),
    );
    assert_eq!(status, 200, "{q}: {v}");
    assert!(v.get("errors").is_none(), "{q}: {v}");
    v["data"].clone()
}

#[test]
fn graphql_answers_synthea_queries() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea"
    ));
    assert!(dir.is_dir(), "{} not found", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    let (mut info, mut patients): (Vec<PathBuf>, Vec<PathBuf>) = files
        .drain(..)
        .partition(|f| f.file_name().unwrap().to_string_lossy().starts_with("0-"));
    info.sort();
    patients.sort_by_key(|f| std::fs::metadata(f).unwrap().len());
    patients.truncate(PATIENTS);
    let bundles: Vec<Value> = info.iter().chain(&patients).map(read_bundle).collect();
    let data = Data::new(&bundles);

    let s = Server::start("standalone", &[]);
    for b in &bundles {
        let (status, v) = json(s.post_json("", b).send().expect("POST bundle"));
        assert_eq!(status, 200, "{v}");
    }

    // Every patient with its gender, birth date and first official family name.
    let answer = query(
        &s,
        &format!(
            "{{ PatientList {{ id identifier(system: \"{SYNTHEA}\") {{ value }} gender birthDate
                official: name(use: official) @first {{ family }} }} }}"
        ),
        json!({}),
    );
    let listed = answer["PatientList"].as_array().unwrap();
    assert_eq!(listed.len(), PATIENTS);
    let raw_patients: HashMap<String, &Value> = data
        .of_type("Patient")
        .map(|p| (synthea_id(p), p))
        .collect();
    let mut server_ids: HashMap<String, String> = HashMap::new();
    for p in listed {
        let sid = answered_id(p);
        let raw = raw_patients[&sid];
        assert_eq!(p["gender"], raw["gender"], "{sid}");
        assert_eq!(p["birthDate"], raw["birthDate"], "{sid}");
        let family = raw["name"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["use"] == "official")
            .map(|n| n["family"].clone())
            .unwrap_or(Value::Null);
        assert_eq!(p["official"]["family"], family, "{sid}");
        server_ids.insert(sid, p["id"].as_str().unwrap().to_string());
    }

    // Per patient: its Conditions (counted), body heights and Encounters, by reverse reference.
    let per_patient = "query P($id: String!) { Patient(id: $id) {
          conditions: ConditionConnection(_reference: patient, _count: 1) { count }
          heights: ObservationList(_reference: subject, code: \"http://loinc.org|8302-6\") {
            valueQuantity { value } }
          EncounterList(_reference: subject) @flatten { id } } }";
    let d = &data;
    for (sid, raw) in &raw_patients {
        let of_patient = |t: &'static str, element: &'static str| {
            d.of_type(t)
                .filter(move |r| {
                    d.resolve(&r[element])
                        .is_some_and(|p| std::ptr::eq(p, *raw))
                })
                .collect::<Vec<_>>()
        };
        let got = query(&s, per_patient, json!({"id": server_ids[sid]}))["Patient"].clone();
        assert_eq!(
            got["conditions"]["count"],
            of_patient("Condition", "subject").len(),
            "{sid}"
        );
        let mut heights: Vec<f64> = of_patient("Observation", "subject")
            .iter()
            .filter(|o| has_code(&o["code"], "http://loinc.org", "8302-6"))
            .map(|o| o["valueQuantity"]["value"].as_f64().unwrap())
            .collect();
        let mut got_heights: Vec<f64> = got["heights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["valueQuantity"]["value"].as_f64().unwrap())
            .collect();
        heights.sort_by(f64::total_cmp);
        got_heights.sort_by(f64::total_cmp);
        assert_eq!(got_heights, heights, "{sid}");
        let encounters = of_patient("Encounter", "subject").len();
        let got_encounters = got["id"].as_array().map_or(0, Vec::len);
        assert_eq!(got_encounters, encounters, "{sid}: {got}");
    }

    // Every Encounter once, through the connection's cursors, with its service provider.
    let first = "{ EncounterConnection(_count: 7) { count next edges { resource {
        identifier(system: \"https://github.com/synthetichealth/synthea\") { value }
        serviceProvider { resource(type: Organization) { name } } } } } }";
    let later = "query Next($c: String) { EncounterConnection(_cursor: $c) { count next edges {
        resource { identifier(system: \"https://github.com/synthetichealth/synthea\") { value }
        serviceProvider { resource(type: Organization) { name } } } } } }";
    let expected: BTreeMap<String, Value> = data
        .of_type("Encounter")
        .map(|e| {
            let org = data
                .resolve(&e["serviceProvider"])
                .map(|o| o["name"].clone())
                .unwrap_or(Value::Null);
            (synthea_id(e), org)
        })
        .collect();
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let mut page = query(&s, first, json!({}))["EncounterConnection"].clone();
    let mut pages = 1;
    loop {
        assert_eq!(page["count"], expected.len());
        for e in page["edges"].as_array().unwrap() {
            let r = &e["resource"];
            let before = seen.insert(
                answered_id(r),
                r["serviceProvider"]["resource"]["name"].clone(),
            );
            assert!(before.is_none(), "{r} twice");
        }
        let Some(next) = page["next"].as_str().map(str::to_string) else {
            break;
        };
        page = query(&s, later, json!({"c": next}))["EncounterConnection"].clone();
        pages += 1;
    }
    assert_eq!(pages, expected.len().div_ceil(7));
    assert_eq!(seen, expected);
    // Every Encounter's service provider resolved to a named Organization.
    assert!(seen.values().all(Value::is_string), "{seen:?}");

    // An invalid query is a 400 with the error's location.
    let (status, v) = json(
        s.get("$graphql")
            .query(&[("query", "{ PatientList { id\n  bogus } }")])
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errors"][0]["locations"][0]["line"], 2, "{v}");
}

/// The introspection query GraphiQL sends (graphql-js `getIntrospectionQuery()`).
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

/// The named type of a type reference (through `LIST` and `NON_NULL`).
fn named_type(t: &Value) -> &str {
    match t["name"].as_str() {
        Some(n) => n,
        None => named_type(&t["ofType"]),
    }
}

/// A GraphQL GET: status and body.
fn get_query(s: &Server, q: &str) -> (u16, Value) {
    json(
        s.client
            .get(s.url("$graphql"))
            .query(&[("query", q)])
            .send()
            .unwrap(),
    )
}

/// Introspection (`__schema`, `__type`) describes the schema the server checks queries
/// against: GraphiQL's introspection query is answered, every type it references is
/// described, every field the schema lists on a resource, a complex type and the root is
/// accepted in a query (and answered with the data), and fields it does not list are refused.
#[test]
fn introspection_describes_what_queries_accept() {
    let s = Server::start("in-memory", &[]);
    let (st, _) = json(
        s.put_json(
            "Patient/p1",
            &json!({"resourceType": "Patient", "id": "p1", "gender": "female",
                    "birthDate": "1970-01-01", "name": [{"family": "Lee", "given": ["Ann"]}]}),
        )
        .send()
        .unwrap(),
    );
    assert_eq!(st, 201);

    let data = query(&s, INTROSPECTION, json!({}));
    let schema = &data["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert!(schema["mutationType"].is_null());
    let types: BTreeMap<&str, &Value> = schema["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    // Every reference names a described type (what a client's schema builder needs).
    let mut refs: Vec<&Value> = Vec::new();
    for t in types.values() {
        for f in t["fields"].as_array().into_iter().flatten() {
            refs.push(&f["type"]);
            refs.extend(f["args"].as_array().unwrap().iter().map(|a| &a["type"]));
        }
        refs.extend(t["interfaces"].as_array().into_iter().flatten());
        refs.extend(t["possibleTypes"].as_array().into_iter().flatten());
    }
    for d in schema["directives"].as_array().unwrap() {
        refs.extend(d["args"].as_array().unwrap().iter().map(|a| &a["type"]));
    }
    for r in &refs {
        assert!(types.contains_key(named_type(r)), "undescribed type in {r}");
    }
    let directives: Vec<&str> = schema["directives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for d in ["include", "skip", "flatten", "first", "singleton", "slice"] {
        assert!(directives.contains(&d), "{directives:?}");
    }

    // Each resource type has a read, a list and a connection at the root, which run.
    let root: Vec<&str> = types["Query"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let resources = &types["Resource"]["possibleTypes"];
    assert!(resources.as_array().unwrap().len() > 100, "{resources}");
    for r in resources.as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        for f in [
            name.to_string(),
            format!("{name}List"),
            format!("{name}Connection"),
        ] {
            assert!(root.contains(&f.as_str()), "{f}");
        }
    }

    // Every field the schema lists on Patient and HumanName is accepted; scalars answer
    // the stored values, objects are selected through `__typename`.
    let selection = |type_name: &str| -> String {
        types[type_name]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let name = f["name"].as_str().unwrap();
                let inner = named_type(&f["type"]);
                if types[inner]["kind"] == "SCALAR" {
                    name.to_string()
                } else {
                    format!("{name} {{ __typename }}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let q = format!(
        "{{ Patient(id: \"p1\") {{ {} name {{ {} }} }} }}",
        selection("Patient"),
        selection("HumanName")
    );
    let p = &query(&s, &q, json!({}))["Patient"];
    assert_eq!(p["gender"], "female");
    assert_eq!(p["birthDate"], "1970-01-01");
    assert_eq!(p["name"][0]["family"], "Lee");
    assert_eq!(p["name"][0]["given"], json!(["Ann"]));
    // The scalar types say how values come back.
    let field_type = |t: &str, f: &str| -> String {
        let field = types[t]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == f)
            .unwrap_or_else(|| panic!("{t}.{f}"));
        named_type(&field["type"]).to_string()
    };
    assert_eq!(field_type("Patient", "active"), "Boolean");
    assert_eq!(field_type("Patient", "multipleBirthInteger"), "Int");
    assert_eq!(field_type("Patient", "name"), "HumanName");
    assert_eq!(types["Patient"]["fields"][0]["name"], "resourceType");
    assert_eq!(field_type("Patient", "contact"), "Patient_contact");
    assert_eq!(field_type("Reference", "resource"), "Resource");
    // A field the schema does not list is refused.
    let listed = |t: &str, f: &str| {
        types[t]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == f)
    };
    assert!(!listed("Patient", "bogus"));
    let (st, e) = get_query(&s, "{ Patient(id: \"p1\") { bogus } }");
    assert_eq!(st, 400, "{e}");

    // `__type` by name, with `__typename` and aliases; an unknown name is null.
    let t = query(
        &s,
        "{ t: __type(name: \"HumanName\") { __typename kind name fields { name } } \
           none: __type(name: \"Nope\") { name } __typename }",
        json!({}),
    );
    assert_eq!(t["t"]["__typename"], "__Type");
    assert_eq!(t["t"]["kind"], "OBJECT");
    let listed_names: Vec<&Value> = types["HumanName"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["name"])
        .collect();
    let answered: Vec<&Value> = t["t"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["name"])
        .collect();
    assert_eq!(answered, listed_names);
    assert!(t["none"].is_null());
    assert_eq!(t["__typename"], "Query");

    // Bad introspection queries: 400 with a location.
    for bad in [
        "{ __schema { bogus } }",
        "{ __schema { types } }",
        "{ __type { name } }",
        "{ __type(name: \"Patient\") { name { x } } }",
        "{ __schema { types { ...F } } } fragment F on Patient { id }",
    ] {
        let (st, e) = get_query(&s, bad);
        assert_eq!(st, 400, "{bad}: {e}");
        assert!(e["errors"][0]["message"].is_string(), "{bad}: {e}");
    }
}
