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
