//! FHIRPath Patch on JSON resources (hand-written cases mirroring the HL7 ones, plus edge
//! cases around choice elements, primitive extensions and list handling).

use flint_fhirpath::patch::fhirpath_patch;
use serde_json::{Value, json};

/// Builds a one-operation Parameters resource from (part name, part JSON) pairs.
fn op(parts: &[(&str, Value)]) -> Value {
    let parts: Vec<Value> = parts
        .iter()
        .map(|(n, v)| {
            let mut p = v.as_object().cloned().unwrap_or_default();
            p.insert("name".into(), json!(n));
            Value::Object(p)
        })
        .collect();
    json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": parts}]})
}

fn s(v: &str) -> Value {
    json!({ "valueString": v })
}

fn ty(v: &str) -> Value {
    json!({ "valueCode": v })
}

#[test]
fn replace_delete_add_primitive() {
    let p = json!({"resourceType": "Patient", "birthDate": "1920-01-01"});
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("replace")),
            ("path", s("Patient.birthDate")),
            ("value", json!({"valueDate": "1930-01-01"})),
        ]),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"resourceType": "Patient", "birthDate": "1930-01-01"})
    );
    let r = fhirpath_patch(
        &p,
        &op(&[("type", ty("delete")), ("path", s("Patient.birthDate"))]),
    )
    .unwrap();
    assert_eq!(r, json!({"resourceType": "Patient"}));
    let r = fhirpath_patch(
        &json!({"resourceType": "Patient", "id": "x", "active": true}),
        &op(&[
            ("type", ty("add")),
            ("path", s("Patient")),
            ("name", s("birthDate")),
            ("value", json!({"valueDate": "1930-01-01"})),
        ]),
    )
    .unwrap();
    // Inserted in definition order: after id and active, not at the end.
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["resourceType", "id", "active", "birthDate"]);
}

#[test]
fn add_complex_and_anonymous() {
    let p = json!({"resourceType": "Patient"});
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("add")),
            ("path", s("Patient")),
            ("name", s("contact")),
            (
                "value",
                json!({"part": [{"name": "name", "valueHumanName": {"text": "a name"}}]}),
            ),
        ]),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"resourceType": "Patient", "contact": [{"name": {"text": "a name"}}]})
    );
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("add")),
            ("path", s("Patient")),
            ("name", s("maritalStatus")),
            (
                "value",
                json!({"valueCodeableConcept": {"text": "married"}}),
            ),
        ]),
    )
    .unwrap();
    assert_eq!(r["maritalStatus"], json!({"text": "married"}));
}

#[test]
fn delete_cleans_up_empty_parents() {
    let p = json!({"resourceType": "Patient", "contact": [{"name": {"text": "a name"}, "gender": "male"}]});
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("delete")),
            ("path", s("Patient.contact[0].name.text")),
        ]),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"resourceType": "Patient", "contact": [{"gender": "male"}]})
    );
    let r = fhirpath_patch(
        &p,
        &op(&[("type", ty("delete")), ("path", s("Patient.contact[0]"))]),
    )
    .unwrap();
    assert_eq!(r, json!({"resourceType": "Patient"}));
    // Nothing selected: no-op. Several selected: error.
    assert_eq!(
        fhirpath_patch(
            &p,
            &op(&[("type", ty("delete")), ("path", s("Patient.name"))])
        )
        .unwrap(),
        p
    );
    let two = json!({"resourceType": "Patient", "name": [{"text": "a"}, {"text": "b"}]});
    assert!(
        fhirpath_patch(
            &two,
            &op(&[("type", ty("delete")), ("path", s("Patient.name"))])
        )
        .is_err()
    );
}

fn ids(n: &[&str]) -> Value {
    Value::Array(
        n.iter()
            .map(|v| json!({"system": "http://example.org", "value": v}))
            .collect(),
    )
}

#[test]
fn insert_and_move_in_lists() {
    let p = json!({"resourceType": "Patient", "identifier": ids(&["value 1", "value 2"])});
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("insert")),
            ("path", s("Patient.identifier")),
            ("index", json!({"valueInteger": 1})),
            (
                "value",
                json!({"valueIdentifier": {"system": "http://example.org", "value": "value 3"}}),
            ),
        ]),
    )
    .unwrap();
    assert_eq!(r["identifier"], ids(&["value 1", "value 3", "value 2"]));
    let p4 = json!({"resourceType": "Patient", "identifier": ids(&["value 1", "value 2", "value 3", "value 4"])});
    let r = fhirpath_patch(
        &p4,
        &op(&[
            ("type", ty("move")),
            ("path", s("Patient.identifier")),
            ("source", json!({"valueInteger": 0})),
            ("destination", json!({"valueInteger": 3})),
        ]),
    )
    .unwrap();
    assert_eq!(
        r["identifier"],
        ids(&["value 2", "value 3", "value 4", "value 1"])
    );
    // Insert into an empty list.
    let r = fhirpath_patch(
        &json!({"resourceType": "Patient"}),
        &op(&[
            ("type", ty("insert")),
            ("path", s("Patient.identifier")),
            ("index", json!({"valueInteger": 0})),
            ("value", json!({"valueIdentifier": {"value": "v"}})),
        ]),
    )
    .unwrap();
    assert_eq!(r["identifier"], json!([{"value": "v"}]));
    // Out-of-range index.
    assert!(
        fhirpath_patch(
            &p,
            &op(&[
                ("type", ty("insert")),
                ("path", s("Patient.identifier")),
                ("index", json!({"valueInteger": 5})),
                ("value", json!({"valueIdentifier": {"value": "v"}})),
            ]),
        )
        .is_err()
    );
}

#[test]
fn missing_target_is_an_error() {
    let p = json!({"resourceType": "Patient", "identifier": [{"use": "official", "value": "123"}]});
    let e = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("add")),
            (
                "path",
                s("Patient.identifier.where(use = 'official').period"),
            ),
            ("name", s("end")),
            ("value", json!({"valueDate": "2021-12-01"})),
        ]),
    )
    .unwrap_err();
    assert!(e.message.contains("No content found"), "{e}");
    assert_eq!(
        e.expression.as_deref(),
        Some("Patient.identifier.where(use = 'official').period")
    );
}

#[test]
fn choice_elements_and_primitive_extensions() {
    let p = json!({"resourceType": "Patient"});
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("add")),
            ("path", s("Patient")),
            ("name", s("deceased")),
            ("value", json!({"valueBoolean": true})),
        ]),
    )
    .unwrap();
    assert_eq!(r["deceasedBoolean"], json!(true));
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1}});
    let r = fhirpath_patch(
        &obs,
        &op(&[
            ("type", ty("replace")),
            ("path", s("Observation.value")),
            ("value", json!({"valueString": "high"})),
        ]),
    )
    .unwrap();
    assert_eq!(r.get("valueQuantity"), None);
    assert_eq!(r["valueString"], json!("high"));
    // Primitive lists keep their `_` companions aligned.
    let p = json!({"resourceType": "Patient", "name": [{"given": ["a", "b"], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}]});
    let r = fhirpath_patch(
        &p,
        &op(&[("type", ty("delete")), ("path", s("Patient.name.given[0]"))]),
    )
    .unwrap();
    assert_eq!(
        r["name"][0],
        json!({"given": ["b"], "_given": [{"extension": [{"url": "u", "valueString": "x"}]}]})
    );
    let r = fhirpath_patch(
        &p,
        &op(&[("type", ty("delete")), ("path", s("Patient.name.given[1]"))]),
    )
    .unwrap();
    assert_eq!(r["name"][0], json!({"given": ["a"]}));
    let r = fhirpath_patch(
        &p,
        &op(&[
            ("type", ty("insert")),
            ("path", s("Patient.name.given")),
            ("index", json!({"valueInteger": 0})),
            ("value", json!({"valueString": "z"})),
        ]),
    )
    .unwrap();
    assert_eq!(r["name"][0]["given"], json!(["z", "a", "b"]));
    assert_eq!(r["name"][0]["_given"][2]["extension"][0]["url"], json!("u"));
    assert_eq!(r["name"][0]["_given"].as_array().map(Vec::len), Some(3));
}

#[test]
fn malformed_parameters() {
    let p = json!({"resourceType": "Patient"});
    assert!(fhirpath_patch(&p, &json!({"resourceType": "Patient"})).is_err());
    assert!(
        fhirpath_patch(
            &p,
            &op(&[("type", ty("frobnicate")), ("path", s("Patient"))])
        )
        .is_err()
    );
    assert!(
        fhirpath_patch(
            &p,
            &op(&[("type", ty("delete")), ("path", s("Patient.name.where("))])
        )
        .is_err()
    );
    assert!(
        fhirpath_patch(
            &p,
            &op(&[
                ("type", ty("add")),
                ("path", s("Patient")),
                ("name", s("nonsense")),
                ("value", s("x"))
            ])
        )
        .is_err()
    );
}
