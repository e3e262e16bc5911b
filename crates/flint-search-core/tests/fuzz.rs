//! Property tests: no query string or resource value makes parsing, extraction or matching
//! panic.

use flint_search_core::{Clause, IndexValue, Registry, parse_query};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::sync::OnceLock;

fn reg() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::r4)
}

const KEYS: &[&str] = &[
    "name",
    "name:exact",
    "name:contains",
    "identifier",
    "identifier:of-type",
    "identifier:text",
    "birthdate",
    "general-practitioner",
    "general-practitioner:Practitioner",
    "general-practitioner:identifier",
    "_id",
    "_profile:below",
    "_has:Observation:patient:code",
    "organization.name",
    "_sort",
    "_include",
    "_count",
    "gender:missing",
    "telecom",
];

const OBS_KEYS: &[&str] = &[
    "value-quantity",
    "code-value-quantity",
    "date",
    "subject",
    "code:text",
    "code:not",
    "component-code-value-quantity",
    "value-concept",
    "subject:Patient.birthdate",
];

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z]{0,2}[0-9eE.+-]{0,12}(\\|[a-z:/.]{0,10}){0,3}",
        "(eq|ne|gt|lt|ge|le|sa|eb|ap)?[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9:.]{2,12}(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?",
        "[\\\\,|$a-z0-9]{0,16}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_and_matching_never_panic(key_i in 0usize..KEYS.len(), obs_i in 0usize..OBS_KEYS.len(), v in value_strategy(), k in any::<String>()) {
        let p = json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Chalmers"}], "birthDate": "1974-12-25",
            "identifier": [{"system": "s", "value": "1"}], "gender": "male"});
        let o: Value = serde_json::from_str(r#"{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1-8"}]},
            "effectiveDateTime":"2020-01-01T10:00:00Z","valueQuantity":{"value":5.40,"system":"http://unitsofmeasure.org","code":"mg"},
            "subject":{"reference":"Patient/p1"}}"#).unwrap();
        let pv = reg().extract(&p).unwrap();
        let ov = reg().extract(&o).unwrap();
        for (ty, key, vals) in [("Patient", KEYS[key_i], &pv), ("Observation", OBS_KEYS[obs_i], &ov), ("Patient", k.as_str(), &pv)] {
            if let Ok(q) = parse_query(reg(), ty, &[(key.to_string(), v.clone())]) {
                for c in &q.clauses {
                    let own: Vec<IndexValue> = match c {
                        Clause::Param(pc) => vals.iter().filter(|(x, _)| x.code == pc.param.code).map(|(_, v)| v.clone()).collect(),
                        _ => Vec::new(),
                    };
                    let _ = c.matches(&own);
                }
            }
        }
    }

    #[test]
    fn extraction_never_panics(s in any::<String>(), n in any::<f64>(), b in any::<bool>()) {
        let num = serde_json::Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null);
        for v in [json!(s), num, json!(b), json!([s]), json!({"value": s}), json!({"reference": s, "identifier": {"value": s}})] {
            let p = json!({"resourceType": "Patient", "id": "p1", "birthDate": v, "name": [{"family": v, "given": v}],
                "identifier": [{"system": v, "value": v, "type": v}], "telecom": [v], "generalPractitioner": [v], "meta": {"profile": [v], "tag": [v]}});
            let _ = reg().extract(&p);
            let o = json!({"resourceType": "Observation", "effectivePeriod": {"start": v, "end": v}, "valueQuantity": {"value": v, "code": v, "system": "http://unitsofmeasure.org", "comparator": v},
                "component": [{"code": v, "valueQuantity": v}], "valueRange": {"low": v, "high": {"value": v}}, "subject": v});
            let _ = reg().extract(&o);
            let l = json!({"resourceType": "Location", "position": {"latitude": v, "longitude": v}});
            let _ = reg().extract(&l);
        }
    }
}
