//! `$graphql` through the real router over an in-memory node: reads, search lists and
//! connections with cursors, field filters, references (forward, contained, reverse),
//! fragments, variables, directives, the request forms (GET, `application/graphql`, JSON),
//! every error (syntax, unknown fields/arguments/parameters, mutations, too costly) and
//! storage faults. Expected answers are computed from the loaded JSON.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::{Answer, send};
use flint_db::Cf;
use flint_db::fault::{Faults, FaultyKv, FaultyStore, Op};
use flint_db::mem::{MemKv, MemStore};

use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// A router over `kv` and `store` whose answers hold at most `limit` resources.
async fn router_over(
    kv: Arc<dyn flint_db::KvStore>,
    store: Arc<dyn flint_db::ResourceStore>,
    limit: usize,
) -> Router {
    common::router_over(kv, store, |c| c.everything_limit = limit).await
}

/// Patients p1..p5 (names official and usual, genders, birth dates, p1 and p2 with a general
/// practitioner), Observations (each of a patient, codes a or b, one with a contained
/// Practitioner as performer, one of a Group that does not exist), and a deleted Patient gone.
fn data() -> Vec<Value> {
    let mut out = vec![
        json!({"resourceType": "Practitioner", "id": "pr1", "name": [{"family": "Doc"}]}),
        json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true}),
        json!({"resourceType": "Patient", "id": "gone"}),
    ];
    let genders = ["female", "male", "female", "other", "female"];
    for i in 1..=5 {
        let mut p = json!({
            "resourceType": "Patient", "id": format!("p{i}"),
            "gender": genders[i - 1],
            "birthDate": format!("19{}-0{i}-1{i}", 50 + i * 7),
            "name": [
                {"use": "official", "family": format!("Fam{i}"), "given": [format!("Given{i}"), "Middle"]},
                {"use": "usual", "given": [format!("Nick{i}")]}
            ],
        });
        if i <= 2 {
            p["generalPractitioner"] = json!([{"reference": "Practitioner/pr1"}]);
        }
        out.push(p);
    }
    for (j, (patient, code)) in [
        ("p1", "a"),
        ("p1", "b"),
        ("p2", "a"),
        ("p3", "b"),
        ("p1", "a"),
    ]
    .iter()
    .enumerate()
    {
        let mut o = json!({
            "resourceType": "Observation", "id": format!("o{j}"), "status": "final",
            "code": {"coding": [{"system": "http://example.org", "code": code}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "valueQuantity": {"value": j * 10, "unit": "mg"},
        });
        if j == 1 {
            o["contained"] = json!([{"resourceType": "Practitioner", "id": "c1",
                                     "name": [{"family": "Inside"}]}]);
            o["performer"] = json!([{"reference": "#c1"}, {"reference": "Practitioner/pr1"}]);
        }
        out.push(o);
    }
    out.push(
        json!({"resourceType": "Observation", "id": "og", "status": "final",
        "code": {"text": "group"}, "subject": {"reference": "Group/g1"}}),
    );
    out
}

async fn load(router: &Router) {
    for v in data() {
        let path = format!(
            "{}/{}",
            v["resourceType"].as_str().unwrap(),
            v["id"].as_str().unwrap()
        );
        let a = send(router, "PUT", &path, &v.to_string()).await;
        assert!(a.status.is_success(), "{path}: {}", a.json());
    }
    let a = send(router, "DELETE", "Patient/gone", "").await;
    assert!(a.status.is_success(), "{}", a.json());
}

async fn api() -> Router {
    api_limited(10_000).await
}

async fn api_limited(limit: usize) -> Router {
    let router = router_over(Arc::new(MemKv::new()), Arc::new(MemStore::new()), limit).await;
    load(&router).await;
    router
}

/// The loaded resources of `ty`, by id.
fn of_type(ty: &str) -> Vec<Value> {
    let mut v: Vec<Value> = data()
        .into_iter()
        .filter(|r| r["resourceType"] == ty && r["id"] != "gone")
        .collect();
    v.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    v
}

/// Sends a request with `content_type` (none when empty).
async fn raw(router: &Router, method: &str, path: &str, content_type: &str, body: &str) -> Answer {
    let headers: &[(&str, &str)] = if content_type.is_empty() {
        &[]
    } else {
        &[("content-type", content_type)]
    };
    common::send_raw(router, method, path, body, headers).await
}

/// `query` by GET on `on` (`$graphql` at the system level when empty).
async fn get(router: &Router, on: &str, query: &str) -> Answer {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    let path = if on.is_empty() {
        format!("$graphql?query={q}")
    } else {
        format!("{on}/$graphql?query={q}")
    };
    raw(router, "GET", &path, "", "").await
}

/// The `data` of a 200 answer without errors.
fn data_of(a: &Answer) -> Value {
    let v = a.json();
    assert_eq!(a.status.as_u16(), 200, "{v}");
    assert_eq!(
        a.headers["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert!(v.get("errors").is_none(), "{v}");
    v["data"].clone()
}

/// The single error of an answer with `status` (and no data).
fn error_of(a: &Answer, status: u16) -> Value {
    let v = a.json();
    assert_eq!(a.status.as_u16(), status, "{v}");
    assert!(v.get("data").is_none(), "{v}");
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    errors[0].clone()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn reads_a_resource_with_selected_fields() {
    let router = api().await;
    let a = get(
        &router,
        "",
        r#"{ Patient(id: "p2") { id gender birthDate name { use given family } } }"#,
    )
    .await;
    let p = &of_type("Patient")[1];
    let names: Vec<Value> = p["name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| json!({"use": n["use"], "given": n["given"], "family": n["family"]}))
        .collect();
    assert_eq!(
        data_of(&a),
        json!({"Patient": {"id": "p2", "gender": p["gender"], "birthDate": p["birthDate"],
                           "name": names}})
    );
    // The instance level queries the resource itself; the type level as the system level.
    let a = get(
        &router,
        "Patient/p3",
        "{ id resourceType __typename gender }",
    )
    .await;
    assert_eq!(
        data_of(&a),
        json!({"id": "p3", "resourceType": "Patient", "__typename": "Patient",
               "gender": of_type("Patient")[2]["gender"]})
    );
    let a = get(&router, "Patient", r#"{ Patient(id: "p3") { id id } }"#).await;
    assert_eq!(data_of(&a), json!({"Patient": {"id": "p3"}}));
    // GraphQL clients' media types are accepted (elsewhere a non-FHIR Accept is 406).
    let q: String = form_urlencoded::byte_serialize(b"{ Patient(id: \"p3\") { id } }").collect();
    let res = router
        .clone()
        .oneshot(
            Request::builder()
                .uri(format!("/fhir/$graphql?query={q}"))
                .header("accept", "application/graphql-response+json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"data": {"Patient": {"id": "p3"}}}));
    // Elements that are absent are null (or an empty list); choice elements by type.
    let a = get(
        &router,
        "Observation/o2",
        "{ valueQuantity { value unit } valueString issued performer { reference } }",
    )
    .await;
    assert_eq!(
        data_of(&a),
        json!({"valueQuantity": {"value": 20, "unit": "mg"}, "valueString": null,
               "issued": null, "performer": []})
    );
}

#[tokio::test]
async fn unknown_and_deleted_reads_are_field_errors() {
    let router = api().await;
    let a = get(
        &router,
        "",
        "{\n  a: Patient(id: \"nope\") { id }\n  b: Patient(id: \"p1\") { id }\n  c: Patient(id: \"gone\") { id }\n}",
    )
    .await;
    let v = a.json();
    assert_eq!(a.status.as_u16(), 200, "{v}");
    assert_eq!(v["data"], json!({"a": null, "b": {"id": "p1"}, "c": null}));
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{v}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("Patient/nope")
    );
    assert_eq!(errors[0]["path"], json!(["a"]));
    assert_eq!(errors[0]["locations"], json!([{"line": 2, "column": 3}]));
    assert!(errors[1]["message"].as_str().unwrap().contains("deleted"));
    // The instance level on a missing or deleted resource answers as a read.
    assert_eq!(
        get(&router, "Patient/nope", "{ id }").await.issue(404)["code"],
        "not-found"
    );
    assert_eq!(
        get(&router, "Patient/gone", "{ id }").await.status.as_u16(),
        410
    );
}

#[tokio::test]
async fn search_lists_take_search_parameters() {
    let router = api().await;
    let patients = of_type("Patient");
    let female: Vec<String> = patients
        .iter()
        .filter(|p| p["gender"] == "female")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let a = get(&router, "", r#"{ PatientList(gender: "female") { id } }"#).await;
    assert_eq!(ids(&data_of(&a)["PatientList"]), female);
    // A list value is OR; _count and _offset page; `-` is written `_`.
    let a = get(
        &router,
        "",
        r#"{ all: PatientList(gender: ["female", "male"]) { id }
             page: PatientList(gender: ["female", "male"], _count: 2, _offset: 1) { id }
             gp: PatientList(general_practitioner: "Practitioner/pr1") { id }
             born: PatientList(birthdate: "ge1980-01-01", _sort: "-birthdate") { id birthDate } }"#,
    )
    .await;
    let d = data_of(&a);
    let fm: Vec<String> = patients
        .iter()
        .filter(|p| p["gender"] == "female" || p["gender"] == "male")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&d["all"]), fm);
    assert_eq!(ids(&d["page"]), fm[1..3].to_vec());
    let gp: Vec<String> = patients
        .iter()
        .filter(|p| p.get("generalPractitioner").is_some())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&d["gp"]), gp);
    let mut born: Vec<&Value> = patients
        .iter()
        .filter(|p| p["birthDate"].as_str().unwrap() >= "1980-01-01")
        .collect();
    born.sort_by(|a, b| b["birthDate"].as_str().cmp(&a["birthDate"].as_str()));
    let born: Vec<String> = born
        .iter()
        .map(|p| p["id"].as_str().unwrap().into())
        .collect();
    assert!(!born.is_empty());
    assert_eq!(ids(&d["born"]), born);
    // Token search with system|code.
    let a = get(
        &router,
        "",
        r#"{ ObservationList(code: "http://example.org|a") { id } }"#,
    )
    .await;
    let want: Vec<String> = of_type("Observation")
        .iter()
        .filter(|o| o["code"]["coding"][0]["code"] == "a")
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&data_of(&a)["ObservationList"]), want);
}

#[tokio::test]
async fn connections_page_with_cursors_at_one_database_value() {
    let router = api().await;
    let all: Vec<String> = of_type("Patient")
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let query = |cursor: Option<&str>| match cursor {
        None => "{ PatientConnection(_count: 2) { count offset pagesize first previous next last \
                 edges { mode resource { id } } } }"
            .to_string(),
        Some(c) => format!(
            "{{ PatientConnection(_cursor: \"{c}\") {{ count offset pagesize previous next \
             edges {{ mode resource {{ id }} }} }} }}"
        ),
    };
    let first = data_of(&get(&router, "", &query(None)).await)["PatientConnection"].clone();
    assert_eq!(first["count"], all.len());
    assert_eq!(
        (first["offset"].clone(), first["pagesize"].clone()),
        (json!(0), json!(2))
    );
    assert!(first["previous"].is_null());
    assert!(first["last"].is_string() && first["first"].is_string());
    // A write between pages does not change the pages.
    let a = send(
        &router,
        "PUT",
        "Patient/p0",
        &json!({"resourceType": "Patient", "id": "p0"}).to_string(),
    )
    .await;
    assert!(a.status.is_success());
    let mut seen = Vec::new();
    let mut page = first;
    loop {
        for e in page["edges"].as_array().unwrap() {
            assert_eq!(e["mode"], "match");
            seen.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        assert_eq!(page["count"], all.len(), "{page}");
        let Some(next) = page["next"].as_str() else {
            break;
        };
        let a = get(&router, "", &query(Some(next))).await;
        page = data_of(&a)["PatientConnection"].clone();
        assert!(page["previous"].is_string());
    }
    assert_eq!(seen, all);
    // A new query sees the write.
    let a = get(&router, "", "{ PatientConnection { count } }").await;
    assert_eq!(data_of(&a)["PatientConnection"]["count"], all.len() + 1);
    // A changed cursor is refused.
    let a = get(&router, "", &query(Some("AAAA"))).await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("_cursor")
    );
}

#[tokio::test]
async fn element_arguments_filter_and_page_lists() {
    let router = api().await;
    let p = &of_type("Patient")[0];
    let a = get(
        &router,
        "Patient/p1",
        r#"{ official: name(use: official) { family given(_count: 1) }
             usual: name(use: "usual") { given }
             second: name(_offset: 1) { use }
             fp: name(fhirpath: "family.exists()") { family } }"#,
    )
    .await;
    let names = p["name"].as_array().unwrap();
    let official: Vec<&Value> = names.iter().filter(|n| n["use"] == "official").collect();
    let usual: Vec<&Value> = names.iter().filter(|n| n["use"] == "usual").collect();
    assert_eq!(
        data_of(&a),
        json!({
            "official": [{"family": official[0]["family"], "given": [official[0]["given"][0]]}],
            "usual": [{"given": usual[0]["given"]}],
            "second": [{"use": names[1]["use"]}],
            "fp": [{"family": official[0]["family"]}],
        })
    );
}

#[tokio::test]
async fn aliases_fragments_variables_and_typename() {
    let router = api().await;
    let body = json!({
        "query": "query Q($id: String!, $g: String = \"male\") {
                    __typename
                    who: Patient(id: $id) { ...names __typename }
                    men: PatientList(gender: $g) { id }
                  }
                  fragment names on Patient { id n: name(use: official) { ... on HumanName { family } } }
                  query Other { Patient(id: \"p1\") { id } }",
        "variables": {"id": "p4"},
        "operationName": "Q",
    });
    let a = raw(
        &router,
        "POST",
        "$graphql",
        "application/json",
        &body.to_string(),
    )
    .await;
    let p4 = &of_type("Patient")[3];
    let men: Vec<String> = of_type("Patient")
        .iter()
        .filter(|p| p["gender"] == "male")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let d = data_of(&a);
    assert_eq!(
        d,
        json!({"__typename": "Query",
               "who": {"id": "p4", "n": [{"family": p4["name"][0]["family"]}], "__typename": "Patient"},
               "men": men.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()})
    );
    // GET with variables; a missing required variable is an error.
    let q: String = form_urlencoded::byte_serialize(
        "query ($id: String!) { Patient(id: $id) { id } }".as_bytes(),
    )
    .collect();
    let vars: String = form_urlencoded::byte_serialize(br#"{"id":"p5"}"#).collect();
    let a = raw(
        &router,
        "GET",
        &format!("$graphql?query={q}&variables={vars}"),
        "",
        "",
    )
    .await;
    assert_eq!(data_of(&a), json!({"Patient": {"id": "p5"}}));
    let a = raw(&router, "GET", &format!("$graphql?query={q}"), "", "").await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("$id")
    );
    // A form POST carries the parameters of a GET.
    let a = raw(
        &router,
        "POST",
        "$graphql",
        "application/x-www-form-urlencoded",
        &format!("query={q}&variables={vars}"),
    )
    .await;
    assert_eq!(data_of(&a), json!({"Patient": {"id": "p5"}}));
    // Two operations without operationName.
    let a = raw(
        &router,
        "POST",
        "$graphql",
        "application/graphql",
        "query A { Patient(id: \"p1\") { id } } query B { Patient(id: \"p2\") { id } }",
    )
    .await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("operationName")
    );
    // @include and @skip.
    let a = raw(
        &router,
        "POST",
        "Patient/p1/$graphql",
        "application/graphql",
        "{ id gender @skip(if: true) birthDate @include(if: false) active @include(if: true) }",
    )
    .await;
    assert_eq!(data_of(&a), json!({"id": "p1", "active": null}));
}

#[tokio::test]
async fn references_resolve_forward_contained_and_reverse() {
    let router = api().await;
    let a = get(
        &router,
        "",
        r#"{ ObservationList(_count: 10) { id
               subject { reference resource { __typename ... on Patient { birthDate } } }
               asPatient: subject { resource(type: Patient) { id } }
               asGroup: subject { resource(type: Group) { id } }
               performer { resource { ... on Practitioner { name { family } } } } } }"#,
    )
    .await;
    let d = data_of(&a);
    let obs = of_type("Observation");
    let patients = of_type("Patient");
    for (o, got) in obs.iter().zip(d["ObservationList"].as_array().unwrap()) {
        assert_eq!(got["id"], o["id"]);
        let r = o["subject"]["reference"].as_str().unwrap();
        assert_eq!(got["subject"]["reference"], r);
        let (ty, id) = r.split_once('/').unwrap();
        if ty == "Patient" {
            let p = patients.iter().find(|p| p["id"] == id).unwrap();
            assert_eq!(
                got["subject"]["resource"],
                json!({"__typename": "Patient", "birthDate": p["birthDate"]})
            );
            assert_eq!(got["asPatient"]["resource"], json!({"id": id}));
            assert!(got["asGroup"]["resource"].is_null());
        } else {
            assert_eq!(got["subject"]["resource"], json!({"__typename": "Group"}));
            assert!(got["asPatient"]["resource"].is_null());
        }
        let performers: Vec<Value> = o["performer"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let name = match p["reference"].as_str().unwrap() {
                    "#c1" => o["contained"][0]["name"][0]["family"].clone(),
                    _ => json!("Doc"),
                };
                json!({"resource": {"name": [{"family": name}]}})
            })
            .collect();
        assert_eq!(got["performer"], json!(performers));
    }
    // Reverse: the Observations of each patient.
    let a = get(
        &router,
        "",
        r#"{ PatientList { id ObservationList(_reference: subject, code: "a") { id }
                            n: ObservationConnection(_reference: patient) { count } } }"#,
    )
    .await;
    for got in data_of(&a)["PatientList"].as_array().unwrap() {
        let id = got["id"].as_str().unwrap();
        let of = |code: Option<&str>| -> Vec<String> {
            obs.iter()
                .filter(|o| o["subject"]["reference"] == format!("Patient/{id}"))
                .filter(|o| code.is_none_or(|c| o["code"]["coding"][0]["code"] == c))
                .map(|o| o["id"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(ids(&got["ObservationList"]), of(Some("a")), "{id}");
        assert_eq!(got["n"]["count"], of(None).len(), "{id}");
    }
    // A reference that does not resolve is an error, unless optional.
    let a = send(
        &router,
        "PUT",
        "Observation/dangling",
        &json!({"resourceType": "Observation", "id": "dangling", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": "http://elsewhere.org/Patient/1"}})
        .to_string(),
    )
    .await;
    assert!(a.status.is_success(), "{}", a.json());
    let a = get(
        &router,
        "Observation/dangling",
        "{ subject { resource { id } } opt: subject { resource(optional: true) { id } } }",
    )
    .await;
    let v = a.json();
    assert_eq!(a.status.as_u16(), 200);
    assert_eq!(
        v["data"],
        json!({"subject": {"resource": null}, "opt": {"resource": null}})
    );
    assert_eq!(v["errors"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["errors"][0]["path"], json!(["subject", "resource"]));
    // A search inside a resource needs `_reference`; at the root it can't have one.
    let a = get(&router, "Patient/p1", "{ ObservationList { id } }").await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("_reference")
    );
    let a = get(
        &router,
        "",
        "{ ObservationList(_reference: subject) { id } }",
    )
    .await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("_reference")
    );
}

#[tokio::test]
async fn directives_flatten_first_singleton_and_slice() {
    let router = api().await;
    let p = &of_type("Patient")[0];
    let names = p["name"].as_array().unwrap();
    let a = get(
        &router,
        "Patient/p1",
        r#"{ id
             name @first @flatten { family }
             all: name @flatten { use }
             first: name @first { use }
             gender @singleton
             sliced: name @slice(path: "use") @flatten { given }
             byIndex: name @slice(path: "$index") { use } }"#,
    )
    .await;
    let d = data_of(&a);
    let uses: Vec<Value> = names.iter().map(|n| n["use"].clone()).collect();
    assert_eq!(d["id"], "p1");
    assert_eq!(d["family"], names[0]["family"]);
    assert_eq!(d["use"], json!(uses), "{d}");
    assert_eq!(d["first"], json!({"use": names[0]["use"]}));
    assert_eq!(d["gender"], p["gender"]);
    for n in names {
        let key = format!("given.{}", n["use"].as_str().unwrap());
        assert_eq!(d[&key], n["given"], "{d}");
    }
    for (i, n) in names.iter().enumerate() {
        assert_eq!(d[format!("byIndex.{i}")], json!({"use": n["use"]}), "{d}");
    }
    assert!(d.get("name").is_none() && d.get("all").is_none(), "{d}");
    // @flatten on a search list: each resource's fields gathered in lists.
    let a = get(
        &router,
        "",
        r#"{ PatientList(gender: "female") @flatten { id } }"#,
    )
    .await;
    let female: Vec<Value> = of_type("Patient")
        .iter()
        .filter(|p| p["gender"] == "female")
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(data_of(&a), json!({"id": female}));
}

#[tokio::test]
async fn invalid_queries_are_400_with_locations() {
    let router = api().await;
    let cases = [
        ("{ Patient(id: \"p1\") { id }", "Syntax error"),
        ("{ Patient(id: \"p1\") { id nonsense } }", "nonsense"),
        ("{ FooList { id } }", "FooList"),
        ("{ PatientList(nonsense: \"x\") { id } }", "nonsense"),
        (
            "{ PatientList(birthdate: \"not-a-date\") { id } }",
            "birthdate",
        ),
        ("{ Patient { id } }", "`id`"),
        ("{ Patient(id: \"a/b\") { id } }", "Invalid resource id"),
        ("{ Patient(id: \"p1\") { name } }", "select"),
        ("{ Patient(id: \"p1\") { gender { x } } }", "scalar"),
        (
            "{ Patient(id: \"p1\") { name(nonsense: 1) { family } } }",
            "nonsense",
        ),
        (
            "{ Patient(id: \"p1\") { name(fhirpath: \"((\") { family } } }",
            "FHIRPath",
        ),
        ("{ Patient(id: \"p1\") { ...missing } }", "missing"),
        (
            "{ Patient(id: \"p1\") { ...a } } fragment a on Patient { ...a }",
            "itself",
        ),
        ("{ Patient(id: \"p1\") { id @nonsense } }", "@nonsense"),
        (
            "{ Patient(id: \"p1\") { ... on Observation { id } } }",
            "Observation",
        ),
        ("{ Patient(id: $x) { id } }", "$x"),
        ("{ Patient(id: \"p1\") { gender @flatten } }", "@flatten"),
        ("{ PatientConnection(_count: 0) { count } }", "_count"),
        (
            "{ Patient(id: \"p1\") { ObservationList(_reference: code) { id } } }",
            "code",
        ),
        (
            "{ Patient(id: \"p1\") { ObservationList(_reference: encounter) { id } } }",
            "encounter",
        ),
    ];
    for (query, needle) in cases {
        let e = error_of(&get(&router, "", query).await, 400);
        let m = e["message"].as_str().unwrap();
        assert!(m.contains(needle), "{query}: {m}");
        assert!(
            e["locations"][0]["line"].as_u64().is_some() || needle == "$x",
            "{query}: {e}"
        );
    }
    // Fragments nesting without end (a chain longer than the checker follows).
    let mut chain = String::from("{ Patient(id: \"p1\") { ...f0 } }");
    for i in 0..100 {
        chain.push_str(&format!(" fragment f{i} on Patient {{ id ...f{} }}", i + 1));
    }
    chain.push_str(" fragment f100 on Patient { id }");
    let e = error_of(&get(&router, "", &chain).await, 400);
    assert!(e["message"].as_str().unwrap().contains("nest"), "{e}");
    // The parse error's location is where the parser stopped.
    let e = error_of(
        &get(&router, "", "{\n  Patient(id: \"p1\") {\n    id\n  }\n").await,
        400,
    );
    assert_eq!(e["locations"][0]["line"], 5, "{e}");
    // No query at all.
    let a = raw(&router, "GET", "$graphql", "", "").await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("query")
    );
    // A JSON body without a query.
    let a = raw(
        &router,
        "POST",
        "$graphql",
        "application/json",
        r#"{"q": 1}"#,
    )
    .await;
    assert!(
        error_of(&a, 400)["message"]
            .as_str()
            .unwrap()
            .contains("query")
    );
    // Another media type.
    let a = raw(&router, "POST", "$graphql", "text/plain", "{ x }").await;
    assert_eq!(a.issue(415)["code"], "not-supported");
}

#[tokio::test]
async fn mutations_are_refused_and_big_answers_too_costly() {
    let router = api_limited(4).await;
    let a = raw(
        &router,
        "POST",
        "$graphql",
        "application/graphql",
        "mutation { PatientCreate(res: {}) { id } }",
    )
    .await;
    assert!(
        error_of(&a, 422)["message"]
            .as_str()
            .unwrap()
            .contains("Mutations")
    );
    // Five patients: more than four resources.
    let a = get(&router, "", "{ PatientList { id } }").await;
    let e = error_of(&a, 409);
    assert_eq!(e["extensions"]["code"], "too-costly", "{e}");
    let a = get(&router, "", "{ PatientList(_count: 4) { id } }").await;
    assert_eq!(data_of(&a)["PatientList"].as_array().unwrap().len(), 4);
    // References count as well: 3 patients + 2 practitioners.
    let a = get(
        &router,
        "",
        "{ PatientList(_count: 3) { generalPractitioner { resource { id } } } }",
    )
    .await;
    assert_eq!(error_of(&a, 409)["extensions"]["code"], "too-costly");
}

#[tokio::test]
async fn the_capability_statement_lists_graphql() {
    let router = api().await;
    let meta = send(&router, "GET", "metadata", "").await.ok();
    let names = |ops: &Value| -> Vec<String> {
        ops.as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&meta["rest"][0]["operation"]).contains(&"graphql".to_string()));
    let patient = meta["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert!(names(&patient["operation"]).contains(&"graphql".to_string()));
}

/// A storage fault anywhere in the evaluation is a 503, never a shorter answer.
#[tokio::test]
async fn storage_faults_are_503() {
    let faults = Faults::new();
    let router = router_over(
        Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone())),
        Arc::new(FaultyStore::new(Arc::new(MemStore::new()), faults.clone())),
        10_000,
    )
    .await;
    load(&router).await;
    let query = r#"{ PatientList(gender: ["female", "male"]) { id
        generalPractitioner { resource { id } }
        ObservationList(_reference: subject) { id subject { resource { id } } } } }"#;
    let full = data_of(&get(&router, "", query).await);
    let mut failed = 0;
    for op in [
        Op::Seek(Cf::SearchParamValue),
        Op::Next(Cf::SearchParamValue),
        Op::StoreGet,
    ] {
        for skip in 0..12 {
            faults.fail(move |o| o == op, skip, 1);
            let before = faults.injected();
            let a = get(&router, "", query).await;
            if faults.injected() > before {
                assert_eq!(a.issue(503)["code"], "transient", "{op:?} after {skip}");
                failed += 1;
            } else {
                assert_eq!(data_of(&a), full, "{op:?} after {skip}");
            }
        }
    }
    faults.heal();
    assert!(failed >= 6, "only {failed} requests met a fault");
    assert_eq!(data_of(&get(&router, "", query).await), full);
}
