//! Hand-checked ELM documents (the shapes the reference translator writes).

use super::*;
use crate::eval::{Context, DataProvider, Engine};
use crate::parser::parse_expression;
use serde_json::json;
use std::cell::RefCell;

fn int(v: i64) -> J {
    json!({"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}Integer", "value": v.to_string()})
}

fn library(defs: J) -> Library {
    library_from_elm(&json!({"library": {
        "identifier": {"id": "T", "version": "1"},
        "schemaIdentifier": {"id": "urn:hl7-org:elm", "version": "r1"},
        "usings": {"def": [{"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"}]},
        "statements": {"def": defs}
    }}))
    .expect("reads")
}

fn eval(lib: &Library, name: &str) -> Value {
    Engine::new(lib)
        .eval_define(name, &mut Context::default())
        .expect("evaluates")
}

#[test]
fn literal() {
    let lib = library(json!([{"name": "X", "context": "Unfiltered", "expression": int(42)}]));
    assert_eq!(lib.name, Some(("T".into(), Some("1".into()))));
    assert!(lib.usings.is_empty(), "System is not a using");
    assert_eq!(lib.defines, vec![("X".into(), Expr::Lit(Value::Int(42)))]);
    assert_eq!(eval(&lib, "X"), Value::Int(42));
    let dec = json!({"type": "Quantity", "value": 5.0, "unit": "mg"});
    let q = library_from_elm_bytes(
        format!(r#"{{"library":{{"statements":{{"def":[{{"name":"Q","expression":{dec}}}]}}}}}}"#)
            .replace("5.0", "5.00")
            .as_bytes(),
    )
    .expect("reads");
    // The scale as written (arbitrary-precision numbers).
    let Value::Quantity(d, u) = eval(&q, "Q") else {
        panic!("a quantity");
    };
    assert_eq!(
        (d.to_string().as_str(), d.scale(), u.as_str()),
        ("5.00", 2, "mg")
    );
}

#[test]
fn literals_are_the_parsers() {
    let same = |elm: J, cql: &str| {
        assert_eq!(
            expr_from_elm(&elm).expect("reads"),
            parse_expression(cql).expect("parses"),
            "{cql}"
        )
    };
    let neg = |v: J| json!({"type": "Negate", "operand": v});
    same(neg(int(2_147_483_648)), "-2147483648");
    let dt = json!({"type": "DateTime", "year": int(2014), "month": int(1), "day": int(1),
        "hour": int(10), "minute": int(0), "second": int(0), "millisecond": int(0),
        "timezoneOffset": {"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}Decimal", "value": "-5"}});
    same(dt, "@2014-01-01T10:00:00.000-05:00");
    same(
        json!({"type": "Date", "year": int(2014), "month": int(2)}),
        "@2014-02",
    );
    same(
        json!({"type": "Time", "hour": int(10), "minute": int(30)}),
        "@T10:30",
    );
    // Components computed at run time: the constructor.
    let call = json!({"type": "Date", "year": {"type": "Add", "operand": [int(2000), int(14)]}});
    assert_eq!(
        expr_from_elm(&call).expect("reads"),
        parse_expression("Date(2000 + 14)").expect("parses")
    );
}

#[test]
fn query_with_where_return_sort() {
    let list = json!({"type": "List", "element": [int(3), int(1), int(2), int(5), int(3)]});
    let q = json!({"type": "Query",
        "source": [{"alias": "X", "expression": list}],
        "let": [], "relationship": [],
        "where": {"type": "Greater", "operand": [{"type": "AliasRef", "name": "X"}, int(1)]},
        "return": {"expression": {"type": "Multiply", "operand": [{"type": "AliasRef", "name": "X"}, int(10)]}},
        "sort": {"by": [{"type": "ByDirection", "direction": "desc"}]}});
    let lib = library(json!([{"name": "Q", "expression": q}]));
    // `return` is distinct unless the ELM says `"distinct": false`.
    let want = Value::List(vec![Value::Int(50), Value::Int(30), Value::Int(20)]);
    assert_eq!(eval(&lib, "Q"), want);
    // With/without, let and sort by a tuple column.
    let tuples = json!({"type": "List", "element": [
        {"type": "Tuple", "element": [{"name": "k", "value": int(2)}]},
        {"type": "Tuple", "element": [{"name": "k", "value": int(1)}]}]});
    let q2 = json!({"type": "Query",
        "source": [{"alias": "T", "expression": tuples}],
        "let": [{"identifier": "d", "expression": {"type": "Add", "operand": [
            {"type": "Property", "path": "k", "scope": "T"}, int(0)]}}],
        "relationship": [{"type": "With", "alias": "O",
            "expression": {"type": "List", "element": [int(1), int(2)]},
            "suchThat": {"type": "Equal", "operand": [{"type": "AliasRef", "name": "O"},
                {"type": "QueryLetRef", "name": "d"}]}}],
        "return": {"distinct": false, "expression": {"type": "AliasRef", "name": "T"}},
        "sort": {"by": [{"type": "ByColumn", "path": "k", "direction": "asc"}]}});
    let lib = library(json!([{"name": "Q", "expression": q2}]));
    let k = |i| Value::Tuple(vec![("k".into(), Value::Int(i))]);
    assert_eq!(eval(&lib, "Q"), Value::List(vec![k(1), k(2)]));
}

/// One retrieve's arguments: type, code path, codes.
type Asked = (String, Option<String>, Option<Value>);

/// Records the retrieves asked of it.
#[derive(Default)]
struct Recorder(RefCell<Vec<Asked>>);

impl DataProvider for Recorder {
    fn retrieve(&self, t: &str, p: Option<&str>, c: Option<&Value>) -> Result<Vec<Value>, Error> {
        self.0
            .borrow_mut()
            .push((t.into(), p.map(str::to_string), c.cloned()));
        Ok(vec![])
    }
}

#[test]
fn retrieve_with_codes() {
    let lib = library_from_elm(&json!({"library": {
        "identifier": {"id": "R"},
        "usings": {"def": [{"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"},
            {"localIdentifier": "FHIR", "uri": "http://hl7.org/fhir", "version": "4.0.1"}]},
        "codeSystems": {"def": [{"name": "LOINC", "id": "http://loinc.org", "accessLevel": "Public"}]},
        "valueSets": {"def": [{"name": "VS", "id": "http://x/vs", "accessLevel": "Public"}]},
        "codes": {"def": [{"name": "C", "id": "1234-5", "display": "x", "codeSystem": {"name": "LOINC"}}]},
        "contexts": {"def": [{"name": "Patient"}]},
        "statements": {"def": [
            {"name": "A", "context": "Patient", "expression": {"type": "Retrieve",
                "dataType": "{http://hl7.org/fhir}Observation", "codeProperty": "code",
                "codeComparator": "in", "codes": {"type": "ValueSetRef", "name": "VS"},
                "include": [], "codeFilter": [], "dateFilter": [], "otherFilter": []}},
            {"name": "B", "context": "Patient", "expression": {"type": "Retrieve",
                "dataType": "{http://hl7.org/fhir}Condition", "codeProperty": "code",
                "codeComparator": "~",
                "codes": {"type": "ToList", "operand": {"type": "CodeRef", "name": "C"}}}}
        ]}
    }}))
    .expect("reads");
    assert_eq!(lib.usings, vec![("FHIR".into(), Some("4.0.1".into()))]);
    assert_eq!(lib.contexts, vec!["Patient".to_string()]);
    let rec = Recorder::default();
    let engine = Engine::new(&lib).with_data(&rec);
    let mut ctx = Context::default();
    assert_eq!(
        engine.eval_define("A", &mut ctx).expect("A"),
        Value::List(vec![])
    );
    engine.eval_define("B", &mut ctx).expect("B");
    let calls = rec.0.borrow();
    assert_eq!(
        calls[0],
        (
            "Observation".into(),
            Some("code".into()),
            Some(Value::Str("http://x/vs".into()))
        )
    );
    let Some(Value::Code(c)) = &calls[1].2 else {
        panic!("a code: {:?}", calls[1]);
    };
    assert_eq!(
        (c.code.as_str(), c.system.as_deref()),
        ("1234-5", Some("http://loinc.org"))
    );
}

#[test]
fn function_def_and_call() {
    let f = json!({"type": "FunctionDef", "name": "F", "context": "Unfiltered",
        "operand": [{"name": "x", "operandTypeSpecifier":
            {"type": "NamedTypeSpecifier", "name": "{urn:hl7-org:elm-types:r1}Integer"}}],
        "expression": {"type": "Add", "operand": [{"type": "OperandRef", "name": "x"}, int(1)]}});
    let y = json!({"name": "Y", "expression": {"type": "FunctionRef", "name": "F", "operand": [int(41)]}});
    let lib = library(json!([f, y]));
    assert_eq!(lib.functions.len(), 1);
    assert_eq!(
        lib.functions[0].params,
        vec![("x".into(), TypeSpec::Named("Integer".into()))]
    );
    assert_eq!(eval(&lib, "Y"), Value::Int(42));
}

#[test]
fn include_function_and_expression_refs() {
    let other = library(json!([
        {"type": "FunctionDef", "name": "Double",
         "operand": [{"name": "n", "operandTypeSpecifier":
             {"type": "NamedTypeSpecifier", "name": "{urn:hl7-org:elm-types:r1}Integer"}}],
         "expression": {"type": "Multiply", "operand": [{"type": "OperandRef", "name": "n"}, int(2)]}},
        {"name": "Ten", "expression": int(10)}
    ]));
    let main = library_from_elm(&json!({"library": {
        "identifier": {"id": "Main"},
        "includes": {"def": [{"localIdentifier": "L", "path": "Other", "version": "1"}]},
        "statements": {"def": [{"name": "X", "expression": {"type": "Add", "operand": [
            {"type": "FunctionRef", "libraryName": "L", "name": "Double", "operand": [int(16)]},
            {"type": "ExpressionRef", "libraryName": "L", "name": "Ten"}]}}]}
    }}))
    .expect("reads");
    assert_eq!(
        main.includes,
        vec![("Other".into(), Some("1".into()), "L".into())]
    );
    let v = Engine::new(&main)
        .with_include("L", &other)
        .eval_define("X", &mut Context::default())
        .expect("evaluates");
    assert_eq!(v, Value::Int(42));
}

#[test]
fn interval_operator_with_precision() {
    let dt = |d: i64, h: i64| json!({"type": "DateTime", "year": int(2014), "month": int(1), "day": int(d), "hour": int(h)});
    let iv = |a: J, b: J| json!({"type": "Interval", "lowClosed": true, "highClosed": false, "low": a, "high": b});
    let e = json!({"type": "Overlaps", "precision": "Day",
        "operand": [iv(dt(1, 0), dt(2, 3)), iv(dt(2, 20), dt(5, 0))]});
    let x = expr_from_elm(&e).expect("reads");
    let Expr::Call(name, _, p) = &x else {
        panic!("a call: {x:?}");
    };
    assert_eq!((name.as_str(), p.as_deref()), ("Overlaps", Some("day")));
    let lib = library(json!([
        {"name": "O", "expression": e},
        {"name": "S", "expression": {"type": "SameAs", "precision": "Day",
            "operand": [dt(3, 1), dt(3, 23)]}},
        {"name": "N", "expression": {"type": "SameAs", "precision": "Hour",
            "operand": [dt(3, 1), dt(3, 23)]}}
    ]));
    assert_eq!(eval(&lib, "O"), Value::Bool(true));
    assert_eq!(eval(&lib, "S"), Value::Bool(true));
    assert_eq!(eval(&lib, "N"), Value::Bool(false));
}

#[test]
fn unknown_node_is_an_error_with_its_location() {
    let e = json!({"type": "Add", "locator": "12:3-12:20",
        "operand": [int(1), {"type": "Frobnicate", "operand": []}]});
    let err = expr_from_elm(&e).expect_err("unknown node");
    let Error::Elm(m) = &err else {
        panic!("an ELM error: {err:?}");
    };
    assert!(
        m.contains("'Frobnicate'") && m.contains("12:3-12:20"),
        "{m}"
    );
    let own = json!({"type": "Frobnicate", "locator": "1:2-1:5"});
    let m = expr_from_elm(&own).expect_err("unknown").to_string();
    assert!(m.contains("at 1:2-1:5"), "{m}");
    // Malformed documents are errors, never panics.
    for bad in [
        json!(1),
        json!({"library": []}),
        json!({"library": {"statements": {"def": [{"name": "X"}]}}}),
        json!({"library": {"statements": {"def": [{"name": "X", "expression": {"type": "Add"}}]}}}),
        json!({"library": {"statements": {"def": [{"name": "X", "expression": {"type": "Literal",
            "valueType": "{urn:hl7-org:elm-types:r1}Integer", "value": "99999999999"}}]}}}),
    ] {
        assert!(library_from_elm(&bad).is_err(), "{bad}");
    }
    assert!(library_from_elm_bytes(b"{not json").is_err());
    // Nesting is bounded.
    let mut deep = int(1);
    for _ in 0..600 {
        deep = json!({"type": "Not", "operand": deep});
    }
    assert!(expr_from_elm(&deep).is_err());
}

/// The deepest ELM accepted reads on a 2 MiB stack (a default thread's) through every kind
/// of node.
#[test]
fn deepest_elm_fits_a_default_stack() {
    type Wrap = fn(J) -> J;
    let wraps: [(&str, Wrap); 6] = [
        ("Not", |e| json!({"type": "Not", "operand": e})),
        (
            "If",
            |e| json!({"type": "If", "condition": e, "then": int(1), "else": int(2)}),
        ),
        (
            "Property",
            |e| json!({"type": "Property", "path": "a", "source": e}),
        ),
        ("List", |e| json!({"type": "List", "element": [e]})),
        (
            "Substring",
            |e| json!({"type": "Substring", "stringToSub": e, "startIndex": int(0)}),
        ),
        ("Query", |e| {
            json!({"type": "Query", "source": [{"alias": "A", "expression": e}],
            "where": {"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}Boolean", "value": "true"}})
        }),
    ];
    for (name, wrap) in wraps {
        let ok = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let mut deep = int(1);
                for _ in 0..(MAX_DEPTH - 1) / weight(name) {
                    deep = wrap(deep);
                }
                let ok = expr_from_elm(&deep).is_ok();
                // Dropping the JSON recurses too; the test is about the reader.
                std::mem::forget(deep);
                ok
            })
            .expect("thread")
            .join()
            .expect("no overflow");
        assert!(ok, "{name}");
    }
}
