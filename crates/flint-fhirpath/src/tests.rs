//! Unit tests of the engine on small inline resources.

use super::*;
use serde_json::json;

fn eval_strings(expr: &str, res: &Value) -> Vec<String> {
    compile(expr)
        .unwrap()
        .evaluate(res)
        .unwrap()
        .iter()
        .map(|i| {
            i.to_fhirpath_string()
                .unwrap_or_else(|| format!("<{}>", i.type_name()))
        })
        .collect()
}

#[test]
fn paths_and_choice() {
    let obs = json!({"resourceType": "Observation", "status": "final",
        "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org", "code": "[lb_av]"}});
    assert_eq!(eval_strings("Observation.value.unit", &obs), vec!["lbs"]);
    assert_eq!(
        eval_strings("Observation.value is Quantity", &obs),
        vec!["true"]
    );
    assert_eq!(
        eval_strings("Observation.value < 200 '[lb_av]'", &obs),
        vec!["true"]
    );
    assert!(
        compile("Observation.valueQuantity")
            .unwrap()
            .evaluate(&obs)
            .is_err()
    );
}

#[test]
fn literals_and_math() {
    let p = json!({"resourceType": "Patient"});
    assert_eq!(eval_strings("2 + 2", &p), vec!["4"]);
    assert_eq!(eval_strings("1 / 2", &p), vec!["0.5"]);
    assert_eq!(eval_strings("@1973-12-25 + 7 days", &p), vec!["1974-01-01"]);
    assert_eq!(eval_strings("(1 | 2 | 2).count()", &p), vec!["2"]);
}
