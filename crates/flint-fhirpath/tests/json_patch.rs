//! Runs the JSON Patch cases of the shared `json-patch-tests.json` (`doc`, `patch`, and
//! `expected` or `error`).

use flint_fhirpath::patch::json_patch;
use serde_json::{Value, json};
use std::path::PathBuf;

fn cases_file() -> PathBuf {
    match std::env::var_os("FLINT_JSON_PATCH_TESTS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-patch/json-patch-tests.json"
        )),
    }
}

#[test]
fn json_patch_suite() {
    let path = cases_file();
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Value> = serde_json::from_slice(&text).expect("test file is a JSON array");
    let (mut passed, mut failed) = (0, 0);
    for case in &cases {
        let comment = case.get("comment").and_then(Value::as_str).unwrap_or("?");
        let doc = case.get("doc").cloned().unwrap_or(Value::Null);
        let patch = case.get("patch").cloned().unwrap_or(Value::Null);
        let result = json_patch(&doc, &patch);
        let ok = match (case.get("expected"), case.get("error"), &result) {
            (Some(exp), _, Ok(got)) => exp == got,
            (None, Some(_), Err(_)) => true,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failed += 1;
            println!("FAIL {comment}: got {result:?}");
        }
        if case.get("error").is_some() {
            // The input must be untouched by a failed patch (atomicity).
            assert_eq!(case.get("doc"), Some(&doc));
        }
    }
    println!("json-patch: {passed} passed, {failed} failed");
    assert_eq!(failed, 0);
}

#[test]
fn json_patch_edge_cases() {
    let doc = json!({"a": [1, 2, 3], "b": {"c": 1}});
    // Leading zeros and out-of-range indexes are errors.
    assert!(json_patch(&doc, &json!([{"op": "add", "path": "/a/01", "value": 0}])).is_err());
    assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/a/3"}])).is_err());
    assert!(json_patch(&doc, &json!([{"op": "add", "path": "/a/4", "value": 0}])).is_err());
    // Appending with '-' and inserting at the end index.
    let r = json_patch(&doc, &json!([{"op": "add", "path": "/a/3", "value": 4}])).unwrap();
    assert_eq!(r["a"], json!([1, 2, 3, 4]));
    // A value cannot be moved into its own child.
    assert!(
        json_patch(
            &doc,
            &json!([{"op": "move", "from": "/b", "path": "/b/c/d"}])
        )
        .is_err()
    );
    // copy, and test with numbers compared by value.
    let r = json_patch(
        &doc,
        &json!([{"op": "copy", "from": "/b", "path": "/d"}, {"op": "test", "path": "/d/c", "value": 1.0}]),
    )
    .unwrap();
    assert_eq!(r["d"], json!({"c": 1}));
    // Atomic: a failing second operation leaves nothing applied.
    assert!(
        json_patch(
            &doc,
            &json!([{"op": "remove", "path": "/b"}, {"op": "test", "path": "/b", "value": 1}])
        )
        .is_err()
    );
    // Unknown operations, bad escapes and missing members are errors.
    assert!(json_patch(&doc, &json!([{"op": "frob", "path": "/a"}])).is_err());
    assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/a~2"}])).is_err());
    assert!(json_patch(&doc, &json!([{"op": "add", "path": "/x"}])).is_err());
    // Replacing the whole document.
    let r = json_patch(&doc, &json!([{"op": "replace", "path": "", "value": 5}])).unwrap();
    assert_eq!(r, json!(5));
}
