//! How stored Libraries become what a measure evaluates: ELM preferred over CQL, includes of
//! includes, include cycles refused, and a changed Library never answered from the compile
//! cache of its older version.

use flint_cql_db::CqlMeasureEvaluator;
use flint_db::mem::MemKv;
use flint_db::testing::{memory_node, put_json};
use flint_db::{Db, ErrorKind, Node};
use flint_measure::{
    EvaluationParams, ExprValue, ExpressionEvaluator, Interval, MeasureError, ResourceRef, Scalar,
};
use flint_search::{Engine, Registry};
use flint_terminology::DbTerminology;
use serde_json::{Value as J, json};
use std::sync::Arc;

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Library resource named `name` (version 1) with the given attachments.
fn library(name: &str, cql: Option<&str>, elm: Option<&J>) -> J {
    let mut content = Vec::new();
    if let Some(elm) = elm {
        content.push(json!({"contentType": "application/elm+json",
            "data": base64(elm.to_string().as_bytes())}));
    }
    if let Some(cql) = cql {
        content.push(json!({"contentType": "text/cql", "data": base64(cql.as_bytes())}));
    }
    json!({"resourceType": "Library", "id": name.to_lowercase(), "name": name, "version": "1",
        "url": format!("http://example.org/Library/{name}"), "status": "active",
        "content": content})
}

async fn setup() -> (Node, CqlMeasureEvaluator) {
    let engine = Engine::new(Arc::new(Registry::r4()));
    let node = memory_node(engine.indexer(), Arc::new(MemKv::new())).await;
    put_json(
        &node,
        &json!({"resourceType": "Patient", "id": "p1", "gender": "female"}),
    )
    .await;
    let terminology = Arc::new(DbTerminology::new(engine.clone()));
    (node, CqlMeasureEvaluator::new(engine, terminology))
}

fn params() -> EvaluationParams {
    EvaluationParams {
        period: Interval {
            start: "2020-01-01T00:00:00.000Z".into(),
            end: "2020-12-31T23:59:59.999Z".into(),
        },
        named: Vec::new(),
    }
}

/// The value of `define` of Library `name` for Patient/p1.
async fn value_of(
    evaluator: &CqlMeasureEvaluator,
    db: &Db,
    name: &str,
    define: &str,
) -> Result<ExprValue, MeasureError> {
    let prepared = evaluator
        .prepare(
            db,
            &format!("http://example.org/Library/{name}|1"),
            &params(),
        )
        .await?;
    let (db, define) = (db.clone(), define.to_string());
    tokio::task::spawn_blocking(move || {
        let subject = ResourceRef::new("Patient", "p1");
        prepared.subject(&db, &subject)?.evaluate(&define)
    })
    .await
    .unwrap()
}

fn int(i: i64) -> ExprValue {
    ExprValue::Value(Scalar::Integer(i))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elm_is_preferred_and_includes_nest() {
    let (node, evaluator) = setup().await;
    // A includes B, which includes C: A's define calls B's, which calls C's function.
    let c = "library C version '1'\ndefine function Twice(x Integer): x * 2\n";
    let b = "library B version '1'\ninclude C version '1' called Cee\n\
             define Six: Cee.Twice(3)\n";
    let a = "library A version '1'\nusing FHIR version '4.0.1'\n\
             include B version '1' called Bee\ncontext Patient\n\
             define Result: Bee.Six + 1\ndefine Gender: Patient.gender\n";
    for (n, src) in [("C", c), ("B", b), ("A", a)] {
        put_json(&node, &library(n, Some(src), None)).await;
    }
    // E holds both: its ELM says 2, its CQL says 1; the ELM counts.
    let elm = json!({"library": {"identifier": {"id": "E", "version": "1"},
        "statements": {"def": [{"name": "X", "context": "Patient", "accessLevel": "Public",
            "expression": {"type": "Literal",
                "valueType": "{urn:hl7-org:elm-types:r1}Integer", "value": "2"}}]}}});
    put_json(
        &node,
        &library(
            "E",
            Some("library E version '1'\ndefine X: 1\n"),
            Some(&elm),
        ),
    )
    .await;
    let db = node.sync().await.unwrap();
    assert_eq!(
        value_of(&evaluator, &db, "A", "Result").await.unwrap(),
        int(7)
    );
    assert_eq!(
        value_of(&evaluator, &db, "A", "Gender").await.unwrap(),
        ExprValue::Value(Scalar::String("female".into()))
    );
    assert_eq!(value_of(&evaluator, &db, "E", "X").await.unwrap(), int(2));

    // A new version of C's content (same url and version, as an edit): the compiled form of
    // the old content is never used for it.
    put_json(
        &node,
        &library(
            "C",
            Some("library C version '1'\ndefine function Twice(x Integer): x * 20\n"),
            None,
        ),
    )
    .await;
    let db = node.sync().await.unwrap();
    assert_eq!(
        value_of(&evaluator, &db, "A", "Result").await.unwrap(),
        int(61)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_cycles_and_bad_elm_are_400_missing_includes_422() {
    let (node, evaluator) = setup().await;
    put_json(
        &node,
        &library(
            "P",
            Some("library P version '1'\ninclude Q version '1'\ndefine X: Q.Y\n"),
            None,
        ),
    )
    .await;
    put_json(
        &node,
        &library(
            "Q",
            Some("library Q version '1'\ninclude P version '1'\ndefine Y: 1\n"),
            None,
        ),
    )
    .await;
    put_json(
        &node,
        &library(
            "R",
            Some("library R version '1'\ninclude Nowhere version '1'\ndefine X: 1\n"),
            None,
        ),
    )
    .await;
    let bad_elm = json!({"library": {"identifier": {"id": "S"},
        "statements": {"def": [{"name": "X", "expression": {"type": "NoSuchNode", "locator": "3:5-3:9"}}]}}});
    put_json(&node, &library("S", None, Some(&bad_elm))).await;
    let db = node.sync().await.unwrap();
    let e = value_of(&evaluator, &db, "P", "X").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    assert!(
        e.message.contains("cycle") || e.message.contains("deeper"),
        "{e}"
    );
    let e = value_of(&evaluator, &db, "R", "X").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unprocessable);
    assert!(e.message.contains("Nowhere"), "{e}");
    let e = value_of(&evaluator, &db, "S", "X").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(
        e.message.contains("NoSuchNode") && e.message.contains("3:5"),
        "{e}"
    );
}

/// Semantic errors of a stored library, found before anything is evaluated: a 400 naming
/// the library with its version, the line and the column; in an included library, that
/// library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semantic_errors_are_400_naming_library_line_and_column() {
    let (node, evaluator) = setup().await;
    let cases = [
        (
            "InvalidIdent",
            "library InvalidIdent version '1'\ndefine X: 1\ndefine Y:\n  X + Nope\n",
            "line 4, column 7",
            "`Nope`",
        ),
        (
            "InvalidType",
            "library InvalidType version '1'\ndefine X: 1 + 'a'\n",
            "line 2, column 13",
            "(Integer, String)",
        ),
        (
            "InvalidWhere",
            "library InvalidWhere version '1'\nusing FHIR version '4.0.1'\n\
             define X: [Observation] O where O.status\n",
            "line 3, column 35",
            "must be a Boolean, not String",
        ),
        (
            "InvalidProperty",
            "library InvalidProperty version '1'\nusing FHIR version '4.0.1'\n\
             define X: [Observation] O return O.nope\n",
            "line 3, column 36",
            "`Observation` has no element `nope`",
        ),
    ];
    for (name, src, _, _) in &cases {
        put_json(&node, &library(name, Some(src), None)).await;
    }
    // An include with an error: the error names the included library.
    put_json(
        &node,
        &library(
            "InvalidOuter",
            Some(
                "library InvalidOuter version '1'\ninclude InvalidType version '1'\ndefine Z: 2\n",
            ),
            None,
        ),
    )
    .await;
    let db = node.sync().await.unwrap();
    for (name, _, at, what) in &cases {
        let e = value_of(&evaluator, &db, name, "X").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        assert!(
            e.message.contains(&format!("`{name} version '1'`"))
                && e.message.contains(at)
                && e.message.contains(what),
            "{e}"
        );
    }
    let e = value_of(&evaluator, &db, "InvalidOuter", "Z")
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    assert!(e.message.contains("`InvalidType version '1'`"), "{e}");
}

/// A define of the Unfiltered context that a Patient-context criterion reads is evaluated
/// once per evaluation (one `prepare`), over all the data, and shared by every subject:
/// after the first subject computed it, a later subject answers it with storage failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfiltered_defines_are_evaluated_once_per_evaluation() {
    use flint_db::fault::{Faults, FaultyKv, Op};
    const SNOMED: &str = "http://snomed.info/sct";
    let faults = Faults::new();
    let search = Engine::new(Arc::new(Registry::r4()));
    let kv = Arc::new(FaultyKv::new(Arc::new(MemKv::new()), faults.clone()));
    let node = memory_node(search.indexer(), kv).await;
    let mut stored = Vec::new();
    for i in 0..6 {
        stored.push(json!({"resourceType": "Patient", "id": format!("p{i}")}));
        for k in 0..(i % 3) {
            stored.push(
                json!({"resourceType": "Condition", "id": format!("c{i}-{k}"),
                "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
                "subject": {"reference": format!("Patient/p{i}")}}),
            );
        }
    }
    let cql = format!(
        "library Shared version '1'\nusing FHIR version '4.0.1'\n\
         codesystem \"SNOMED\": '{SNOMED}'\ncode \"Diabetes\": '44054006' from \"SNOMED\"\n\
         context Unfiltered\n\
         define \"Diabetes conditions\": Count([Condition: \"Diabetes\"])\n\
         define \"Patients\": Count([Patient])\n\
         context Patient\n\
         define \"All conditions\": \"Diabetes conditions\"\n\
         define \"Above average\": Count([Condition: \"Diabetes\"]) * \"Patients\" > \"Diabetes conditions\"\n"
    );
    stored.push(library("Shared", Some(&cql), None));
    for r in &stored {
        put_json(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let terminology = Arc::new(DbTerminology::new(search.clone()));
    let evaluator = CqlMeasureEvaluator::new(search, terminology);
    let prepared = evaluator
        .prepare(&db, "http://example.org/Library/Shared|1", &params())
        .await
        .unwrap();
    // Counted from the JSON written.
    let of = |t: &str| stored.iter().filter(|r| r["resourceType"] == t).count();
    let (conditions, patients) = (of("Condition"), of("Patient"));
    let mine = |p: &str| {
        stored
            .iter()
            .filter(|r| r["subject"]["reference"] == format!("Patient/{p}"))
            .count()
    };
    let faults2 = faults.clone();
    // The first subject has conditions of its own.
    let ids: Vec<String> = (0..patients)
        .map(|i| format!("p{}", (i + 2) % patients))
        .collect();
    let first_above = mine(&ids[0]) * patients > conditions;
    tokio::task::spawn_blocking(move || {
        for (n, id) in ids.iter().enumerate() {
            let subject = ResourceRef::new("Patient", id);
            let mut session = prepared.subject(&db, &subject).unwrap();
            if n == 0 {
                assert_eq!(
                    session.evaluate("All conditions").unwrap(),
                    int(conditions as i64)
                );
                assert_eq!(
                    session.evaluate("Above average").unwrap(),
                    ExprValue::Boolean(first_above),
                    "{id}"
                );
                // From here on every read fails: what the first subject computed is shared.
                faults2.fail(
                    |op| matches!(op, Op::Seek(_) | Op::Next(_) | Op::Get(_)),
                    0,
                    u64::MAX,
                );
            } else {
                assert_eq!(
                    session.evaluate("All conditions").unwrap(),
                    int(conditions as i64),
                    "{id}"
                );
                // The subject's own retrieve still reads, and so fails: no stale answer.
                let r = session.evaluate("Above average");
                assert!(r.is_err(), "{id}: {r:?}");
            }
        }
    })
    .await
    .unwrap();
    faults.heal();
    // A new evaluation evaluates it again (here, over the same data, to the same value).
    let again = evaluator
        .prepare(
            &node.sync().await.unwrap(),
            "http://example.org/Library/Shared|1",
            &params(),
        )
        .await
        .unwrap();
    let db = node.sync().await.unwrap();
    let v = tokio::task::spawn_blocking(move || {
        again
            .subject(&db, &ResourceRef::new("Patient", "p1"))
            .unwrap()
            .evaluate("All conditions")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(v, int(conditions as i64));
}
