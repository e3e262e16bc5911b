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
    // Each define keeps the context its statement names.
    assert_eq!(
        lib.define_contexts,
        [("A", "Patient"), ("B", "Patient")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
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

fn str_lit(s: &str) -> J {
    json!({"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}String", "value": s})
}

fn tuple(els: &[(&str, J)]) -> J {
    json!({"type": "Tuple", "element": els.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>()})
}

fn list(els: Vec<J>) -> J {
    json!({"type": "List", "element": els})
}

fn value_of(cql: &str) -> Value {
    let e = parse_expression(cql).expect("parses");
    Engine::new(&Library::default())
        .eval(&e, &mut Context::default())
        .expect("evaluates")
}

#[test]
fn children_and_descendents() {
    // Tuple { a: 1, b: {2, 3}, c: Tuple { d: 4 } }
    let t = tuple(&[
        ("a", int(1)),
        ("b", list(vec![int(2), int(3)])),
        ("c", tuple(&[("d", int(4))])),
    ]);
    let lib = library(json!([
        {"name": "C", "expression": {"type": "Children", "source": t}},
        {"name": "D", "expression": {"type": "Descendents", "source": t}},
        {"name": "N", "expression": {"type": "Descendents", "source": {"type": "Null"}}},
        {"name": "L", "expression": {"type": "Children", "source": list(vec![t.clone(), t.clone()])}},
    ]));
    let inner = "Tuple { d: 4 }";
    assert_eq!(eval(&lib, "C"), value_of(&format!("{{1, 2, 3, {inner}}}")));
    // Depth first: a child, then its own descendents.
    assert_eq!(
        eval(&lib, "D"),
        value_of(&format!("{{1, 2, 3, {inner}, 4}}"))
    );
    assert_eq!(eval(&lib, "N"), Value::Null);
    // A list: the children of each element, flattened.
    assert_eq!(
        eval(&lib, "L"),
        value_of(&format!("{{1, 2, 3, {inner}, 1, 2, 3, {inner}}}"))
    );
    // The parser path has the same operators (`(null).descendents()` is null).
    assert_eq!(value_of("(null).descendents()"), Value::Null);
    assert_eq!(
        value_of("Tuple { a: 1, b: {2, 3}, c: Tuple { d: 4 } }.descendents()"),
        eval(&lib, "D")
    );
    // A FHIR resource: its elements' values, and theirs.
    let enc = encounters().remove(0);
    let d = Expr::Call("Descendents".into(), vec![Expr::Lit(enc)], None);
    let ds = Engine::new(&Library::default()).eval(&d, &mut Context::default());
    let Ok(Value::List(ds)) = ds else {
        panic!("a list");
    };
    assert!(ds.contains(&Value::Str("e1".into())), "{ds:?}");
    assert!(ds.contains(&Value::Str("Patient/p1".into())), "{ds:?}");
}

#[test]
fn repeat_filter_for_each_and_sort() {
    // T1 -> T2 -> T3 through `next`.
    let t3 = tuple(&[("n", int(3))]);
    let t2 = tuple(&[("n", int(2)), ("next", list(vec![t3]))]);
    let t1 = tuple(&[("n", int(1)), ("next", list(vec![t2]))]);
    let this = |p: &str| json!({"type": "Property", "path": p, "scope": "$this"});
    let x = json!({"type": "AliasRef", "name": "X"});
    let lib = library(json!([
        {"name": "R", "expression": {"type": "Repeat", "source": list(vec![t1.clone()]),
            "element": this("next"), "scope": "$this"}},
        // Numbers: up to 5, where the element stops giving anything new.
        {"name": "Up", "expression": {"type": "Repeat", "source": list(vec![int(1)]), "scope": "X",
            "element": {"type": "If",
                "condition": {"type": "Less", "operand": [x, int(5)]},
                "then": {"type": "Add", "operand": [x, int(1)]}, "else": x}}},
        {"name": "RN", "expression": {"type": "Repeat", "source": {"type": "Null"},
            "element": this("next"), "scope": "$this"}},
        {"name": "F", "expression": {"type": "Filter", "scope": "X",
            "source": list(vec![int(1), int(4), int(2), int(4)]),
            "condition": {"type": "Greater", "operand": [x, int(1)]}}},
        {"name": "E", "expression": {"type": "ForEach", "scope": "X",
            "source": list(vec![int(1), int(2), int(1)]),
            "element": {"type": "Multiply", "operand": [x, int(10)]}}},
        {"name": "S", "expression": {"type": "Sort",
            "source": list(vec![int(3), int(1), int(2)]),
            "by": [{"type": "ByDirection", "direction": "desc"}]}},
        {"name": "SC", "expression": {"type": "Sort",
            "source": list(vec![tuple(&[("k", int(2))]), tuple(&[("k", int(1))])]),
            "by": [{"type": "ByColumn", "path": "k", "direction": "asc"}]}},
        {"name": "SN", "expression": {"type": "Sort", "source": {"type": "Null"},
            "by": [{"type": "ByDirection", "direction": "asc"}]}},
    ]));
    let t3v = "Tuple { n: 3 }";
    let t2v = format!("Tuple {{ n: 2, next: {{{t3v}}} }}");
    assert_eq!(eval(&lib, "R"), value_of(&format!("{{{t2v}, {t3v}}}")));
    assert_eq!(eval(&lib, "Up"), value_of("{2, 3, 4, 5}"));
    assert_eq!(eval(&lib, "RN"), Value::Null);
    // The parser's `x.repeat(path)` is the same operator.
    assert_eq!(
        value_of(&format!(
            "{{Tuple {{ n: 1, next: {{{t2v}}} }}}}.repeat(next)"
        )),
        eval(&lib, "R")
    );
    assert_eq!(eval(&lib, "F"), value_of("{4, 2, 4}"));
    assert_eq!(eval(&lib, "E"), value_of("{10, 20, 10}"));
    assert_eq!(eval(&lib, "S"), value_of("{3, 2, 1}"));
    assert_eq!(
        eval(&lib, "SC"),
        value_of("{Tuple { k: 1 }, Tuple { k: 2 }}")
    );
    assert_eq!(eval(&lib, "SN"), Value::Null);
}

/// Encounters e1 (p1, January 2020), e2 (p2, March 2020), e3 (p1, December 2020 into 2021).
fn encounters() -> Vec<Value> {
    [
        ("e1", "p1", "2020-01-01", "2020-01-10"),
        ("e2", "p2", "2020-03-01", "2020-03-02"),
        ("e3", "p1", "2020-12-30", "2021-01-02"),
    ]
    .iter()
    .map(|(id, p, s, e)| {
        let j = json!({"resourceType": "Encounter", "id": id,
            "subject": {"reference": format!("Patient/{p}")},
            "period": {"start": s, "end": e}});
        Value::Fhir(crate::fhir::FhirValue::shared(std::sync::Arc::new(j)).expect("FHIR"))
    })
    .collect()
}

/// Encounters of every patient, one patient's in a related context, and one value set.
struct Store;

impl DataProvider for Store {
    fn retrieve(&self, t: &str, _: Option<&str>, _: Option<&Value>) -> Result<Vec<Value>, Error> {
        Ok(match t {
            "Encounter" => encounters(),
            "Patient" => vec![patient("p1")],
            _ => vec![],
        })
    }

    fn retrieve_related(
        &self,
        context: &Value,
        t: &str,
        p: Option<&str>,
        c: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        let Value::Fhir(f) = context else {
            return Err(Error::Data("not a resource".into()));
        };
        let id = crate::fhir::member(f, "id")?;
        let Value::Str(id) = id else {
            return Err(Error::Data("no id".into()));
        };
        let want = Value::Str(format!("Patient/{id}"));
        let mut out = Vec::new();
        for v in self.retrieve(t, p, c)? {
            let Value::Fhir(f) = &v else { continue };
            let subject = crate::fhir::member(f, "subject")?;
            if let Value::Fhir(s) = subject
                && crate::fhir::member(&s, "reference")? == want
            {
                out.push(v);
            }
        }
        Ok(out)
    }

    fn expand_vocabulary(&self, vocabulary: &Value) -> Result<Vec<crate::value::Code>, Error> {
        let Value::Vocabulary("ValueSet", url, _) = vocabulary else {
            return Err(Error::Data("not a value set".into()));
        };
        Ok(["a", "b"]
            .iter()
            .map(|c| crate::value::Code {
                code: (*c).into(),
                system: Some(format!("{url}/system")),
                version: None,
                display: None,
            })
            .collect())
    }
}

fn patient(id: &str) -> Value {
    let j = json!({"resourceType": "Patient", "id": id});
    Value::Fhir(crate::fhir::FhirValue::shared(std::sync::Arc::new(j)).expect("FHIR"))
}

fn fhir_library(defs: J) -> Library {
    library_from_elm(&json!({"library": {
        "identifier": {"id": "F"},
        "usings": {"def": [{"localIdentifier": "System", "uri": "urn:hl7-org:elm-types:r1"},
            {"localIdentifier": "FHIR", "uri": "http://hl7.org/fhir", "version": "4.0.1"}]},
        "valueSets": {"def": [{"name": "VS", "id": "http://x/vs"}]},
        "contexts": {"def": [{"name": "Unfiltered"}]},
        "statements": {"def": defs}
    }}))
    .expect("reads")
}

fn ids(v: Value) -> Vec<String> {
    let Value::List(xs) = v else {
        panic!("a list: {v:?}");
    };
    xs.iter()
        .map(|x| match x {
            Value::Fhir(f) => match crate::fhir::member(f, "id") {
                Ok(Value::Str(s)) => s,
                o => panic!("an id: {o:?}"),
            },
            o => panic!("a resource: {o:?}"),
        })
        .collect()
}

#[test]
fn retrieve_context_id_and_date_range() {
    let enc = |extra: J| {
        let mut r = json!({"type": "Retrieve", "dataType": "{http://hl7.org/fhir}Encounter",
            "include": [], "codeFilter": [], "dateFilter": [], "otherFilter": []});
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        r
    };
    let dt = |y: i64, m: i64, d: i64| json!({"type": "DateTime", "year": int(y), "month": int(m), "day": int(d)});
    let year_2020 = json!({"type": "Interval", "lowClosed": true, "highClosed": true,
        "low": dt(2020, 1, 1), "high": dt(2020, 12, 31)});
    let lib = fhir_library(json!([
        {"name": "Pat", "expression": {"type": "SingletonFrom", "operand": {"type": "Retrieve",
            "dataType": "{http://hl7.org/fhir}Patient"}}},
        {"name": "Related", "expression": enc(json!({"context": {"type": "ExpressionRef", "name": "Pat"}}))},
        {"name": "NoContext", "expression": enc(json!({"context": {"type": "Null"}}))},
        {"name": "ById", "expression": enc(json!({"id": str_lit("e2")}))},
        {"name": "ByIdProperty", "expression": enc(json!({"idProperty": "id", "id": str_lit("e3")}))},
        {"name": "Dated", "expression": enc(json!({"dateLowProperty": "period.start",
            "dateHighProperty": "period.end", "dateRange": year_2020}))},
        {"name": "DatedStart", "expression": enc(json!({"dateProperty": "period.start",
            "dateRange": year_2020}))},
        {"name": "RelatedDated", "expression": enc(json!({
            "context": {"type": "ExpressionRef", "name": "Pat"},
            "dateLowProperty": "period.start", "dateHighProperty": "period.end",
            "dateRange": year_2020}))},
        {"name": "Expanded", "expression": {"type": "ExpandValueSet",
            "operand": {"type": "ValueSetRef", "name": "VS", "preserve": true}}},
        {"name": "ExpandedNull", "expression": {"type": "ExpandValueSet", "operand": {"type": "Null"}}},
    ]));
    let engine = Engine::new(&lib).with_data(&Store);
    let run = |n: &str| engine.eval_define(n, &mut Context::default()).expect(n);
    // Every encounter's patient, from the encounters themselves.
    let of_p1: Vec<String> = encounters()
        .into_iter()
        .filter(|e| {
            let Value::Fhir(f) = e else { return false };
            crate::fhir::member(f, "subject")
                .ok()
                .and_then(|s| match s {
                    Value::Fhir(s) => crate::fhir::member(&s, "reference").ok(),
                    _ => None,
                })
                == Some(Value::Str("Patient/p1".into()))
        })
        .map(|e| ids(Value::List(vec![e])).remove(0))
        .collect();
    assert_eq!(of_p1, vec!["e1", "e3"]);
    assert_eq!(ids(run("Related")), of_p1);
    // The parser's `[Pat -> Encounter]` is the same retrieve.
    let parsed = crate::parser::parse_library(
        "library P\nusing FHIR version '4.0.1'\ncontext Unfiltered\n\
         define \"Pat\": singleton from [Patient]\ndefine \"Related\": [Pat -> Encounter]",
    )
    .expect("parses");
    let by_parser = Engine::new(&parsed)
        .with_data(&Store)
        .eval_define("Related", &mut Context::default())
        .expect("Related");
    assert_eq!(ids(by_parser), of_p1);
    assert!(ids(run("NoContext")).is_empty());
    assert_eq!(ids(run("ById")), vec!["e2"]);
    assert_eq!(ids(run("ByIdProperty")), vec!["e3"]);
    // e3 runs into 2021: its period is not included in 2020.
    assert_eq!(ids(run("Dated")), vec!["e1", "e2"]);
    assert_eq!(ids(run("DatedStart")), vec!["e1", "e2", "e3"]);
    assert_eq!(ids(run("RelatedDated")), vec!["e1"]);
    let Value::List(codes) = run("Expanded") else {
        panic!("a list");
    };
    let codes: Vec<(String, Option<String>)> = codes
        .into_iter()
        .map(|c| match c {
            Value::Code(c) => (c.code, c.system),
            o => panic!("a code: {o:?}"),
        })
        .collect();
    let sys = Some("http://x/vs/system".to_string());
    assert_eq!(codes, vec![("a".into(), sys.clone()), ("b".into(), sys)]);
    assert_eq!(run("ExpandedNull"), Value::Null);
    // A data source without related contexts or terminology refuses, never answers empty.
    struct Plain;
    impl DataProvider for Plain {
        fn retrieve(
            &self,
            t: &str,
            p: Option<&str>,
            c: Option<&Value>,
        ) -> Result<Vec<Value>, Error> {
            Store.retrieve(t, p, c)
        }
    }
    let plain = Engine::new(&lib).with_data(&Plain);
    for n in ["Related", "Expanded"] {
        assert!(
            plain.eval_define(n, &mut Context::default()).is_err(),
            "{n}"
        );
    }
    // A date range needs a date property; a low property needs a high one.
    for bad in [
        enc(json!({"dateRange": year_2020})),
        enc(json!({"dateLowProperty": "period.start", "dateRange": year_2020})),
    ] {
        assert!(
            library_from_elm(&json!({"library": {"statements": {"def": [
                {"name": "X", "expression": bad}]}}}))
            .is_err()
        );
    }
}

#[test]
fn iteration_nodes_times_and_string_and_aggregate_operators() {
    let cur = |scope: Option<&str>| match scope {
        Some(s) => json!({"type": "Current", "scope": s}),
        None => json!({"type": "Current"}),
    };
    let dec = |d: &str| json!({"type": "Literal", "valueType": "{urn:hl7-org:elm-types:r1}Decimal", "value": d});
    let lib = library(json!([
        // ForEach with a scope, the element read by a `Current` without one.
        {"name": "FE", "expression": {"type": "ForEach", "scope": "X",
            "source": list(vec![int(1), int(2), int(3)]),
            "element": {"type": "Multiply", "operand": [cur(None), int(10)]}}},
        {"name": "FS", "expression": {"type": "ForEach", "scope": "X",
            "source": list(vec![int(1), int(2)]),
            "element": {"type": "Add", "operand": [cur(Some("X")), {"type": "Iteration"}]}}},
        {"name": "FI", "expression": {"type": "Filter",
            "source": list(vec![int(5), int(6), int(7)]),
            "condition": {"type": "Greater", "operand": [{"type": "Iteration"}, int(0)]}}},
        {"name": "AG", "expression": {"type": "Aggregate",
            "source": list(vec![int(1), int(2), int(3), int(4)]),
            "initialValue": int(0),
            "iteration": {"type": "Add", "operand": [{"type": "Total"}, cur(None)]}}},
        {"name": "TI", "expression": {"type": "Times", "operand": [
            list(vec![tuple(&[("a", int(1))]), tuple(&[("a", int(2))])]),
            list(vec![tuple(&[("b", str_lit("x"))])])]}},
        {"name": "SM", "expression": {"type": "SplitOnMatches",
            "stringToSplit": str_lit("a1b22c"), "separatorPattern": str_lit("[0-9]+")}},
        {"name": "TC", "expression": {"type": "ToChars", "operand": str_lit("abc")}},
        {"name": "GM", "expression": {"type": "GeometricMean",
            "source": list(vec![dec("2.0"), dec("8.0")])}},
        {"name": "CQ", "expression": {"type": "CanConvertQuantity", "operand": [
            {"type": "Quantity", "value": 5, "unit": "mg"}, str_lit("g")]}},
    ]));
    for (name, cql) in [
        ("FE", "({1, 2, 3}).select($this * 10)"),
        ("FS", "({1, 2}).select($this + $index)"),
        ("FI", "({5, 6, 7}).where($index > 0)"),
        ("AG", "({1, 2, 3, 4}).aggregate($total + $this, 0)"),
        (
            "TI",
            "Times({Tuple { a: 1 }, Tuple { a: 2 }}, {Tuple { b: 'x' }})",
        ),
        ("SM", "SplitOnMatches('a1b22c', '[0-9]+')"),
        ("TC", "ToChars('abc')"),
        ("GM", "GeometricMean({2.0, 8.0})"),
        ("CQ", "CanConvertQuantity(5 'mg', 'g')"),
    ] {
        assert_eq!(eval(&lib, name), value_of(cql), "{name}");
    }
    assert_eq!(eval(&lib, "AG"), value_of("10"));
}

#[test]
fn subsumes_nodes_and_code_systems_of_included_libraries() {
    let common = library_from_elm(&json!({"library": {
        "identifier": {"id": "Common", "version": "1"},
        "codeSystems": {"def": [{"name": "SNOMEDCT", "id": "http://snomed.info/sct"}]},
    }}))
    .expect("reads");
    let code = |c: &str| {
        json!({"type": "Code", "code": c,
            "system": {"type": "CodeSystemRef", "name": "SNOMEDCT", "libraryName": "Common"}})
    };
    let lib = library_from_elm(&json!({"library": {
        "identifier": {"id": "T", "version": "1"},
        "includes": {"def": [{"localIdentifier": "Common", "path": "Common", "version": "1"}]},
        "codes": {"def": [{"name": "x", "id": "123",
            "codeSystem": {"name": "SNOMEDCT", "libraryName": "Common"}}]},
        "statements": {"def": [
            {"name": "X", "expression": {"type": "CodeRef", "name": "x"}},
            {"name": "Same", "expression": {"type": "Subsumes", "operand": [code("1"), code("1")]}},
            {"name": "Other", "expression": {"type": "SubsumedBy", "operand": [code("1"), code("2")]}},
        ]}
    }}))
    .expect("reads");
    let engine = Engine::new(&lib).with_include("Common", &common);
    let get = |n: &str| engine.eval_define(n, &mut Context::default());
    let Ok(Value::Code(x)) = get("X") else {
        panic!("not a code: {:?}", get("X"))
    };
    assert_eq!(x.system, Some(common.codesystems[0].1.clone()));
    assert_eq!(get("Same").expect("evaluates"), Value::Bool(true));
    // Codes that differ need a terminology, which this engine has not.
    assert!(get("Other").is_err());
}
