//! Unit tests of the library front end and the evaluator's guards.

use crate::*;

fn eval_define(src: &str, name: &str) -> Result<Value, Error> {
    let lib = parse_library(src)?;
    let engine = Engine::new(&lib);
    engine.eval_define(name, &mut Context::default())
}

#[test]
fn library_structure_and_functions() {
    let src = r#"
library Example version '1.0.0'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1' called FH
codesystem "LOINC": 'http://loinc.org'
valueset "BP": 'http://example.org/vs/bp'
code "Systolic": '8480-6' from "LOINC" display 'Systolic BP'
concept "BPs": { "Systolic" } display 'BP'
parameter "Limit" Integer default 3
parameter Period Interval<DateTime>
context Patient
define "Three": "Limit"
define function Double(x Integer) returns Integer: x * 2
define fluent function Inc(x Integer): x + 1
define "Six": Double("Three")
define "Seven": "Six".Inc()
define "Sys": "Systolic".code
define "Q": ({1, 2, 3}) X where X > 1 return X * 10
"#;
    let lib = parse_library(src).unwrap();
    assert_eq!(lib.name, Some(("Example".into(), Some("1.0.0".into()))));
    assert_eq!(lib.includes[0].2, "FH");
    assert_eq!(lib.parameters.len(), 2);
    assert_eq!(lib.functions.len(), 2);
    assert!(lib.functions[1].fluent);
    assert_eq!(eval_define(src, "Six").unwrap(), Value::Int(6));
    assert_eq!(eval_define(src, "Seven").unwrap(), Value::Int(7));
    assert_eq!(
        eval_define(src, "Sys").unwrap(),
        Value::Str("8480-6".into())
    );
    assert_eq!(eval_define(src, "Q").unwrap().to_string(), "{20, 30}");
}

#[test]
fn a_stop_flag_ends_evaluation_within_a_few_thousand_steps() {
    let lib = Library::default();
    let e = parse_expression(
        "Count((expand Interval[1, 20000]) A where Count((expand Interval[1, 20000]) B where B = A) = 1)",
    )
    .unwrap();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut ctx = Context::default();
    ctx.budget = u64::MAX / 2;
    ctx.stop = Some(flag.clone());
    let before = ctx.budget;
    assert!(matches!(
        Engine::new(&lib).eval(&e, &mut ctx),
        Err(Error::Stopped)
    ));
    assert!(
        before - ctx.budget < 50_000,
        "{} steps",
        before - ctx.budget
    );
    // Not set: the same context evaluates as usual.
    flag.store(false, std::sync::atomic::Ordering::Relaxed);
    let small = parse_expression("Count((expand Interval[1, 100]) A where A > 50)").unwrap();
    assert_eq!(
        Engine::new(&lib).eval(&small, &mut ctx).unwrap(),
        Value::Int(50)
    );
}

#[test]
fn syntax_errors_carry_positions() {
    let e = parse_expression("1 +\n  (2 * )").unwrap_err();
    assert_eq!((e.line, e.column), (2, 8));
    let e = parse_library("define X: 1\ndefine : 2").unwrap_err();
    assert_eq!(e.line, 2);
}

#[test]
fn budget_and_depth_stop_runaway_evaluation() {
    let src = "define function F(x Integer): F(x + 1)\ndefine X: F(0)";
    assert!(matches!(eval_define(src, "X"), Err(Error::Budget)));
    let lib = Library::default();
    let e = parse_expression("expand Interval[1, 100000]").unwrap();
    let mut ctx = Context::default();
    ctx.budget = 10;
    assert!(matches!(
        Engine::new(&lib).eval(&e, &mut ctx),
        Err(Error::Budget)
    ));
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(parse_expression(&deep).is_err());
    let nots = format!("{}true", "not ".repeat(5000));
    assert!(parse_expression(&nots).is_err());
    // Left-deep chains are as deep as they are long: refused beyond the limit, not a crash.
    let sum = format!("1{}", " + 1".repeat(100_000));
    assert!(parse_expression(&sum).is_err());
    let members = format!("x{}", ".a".repeat(100_000));
    assert!(parse_expression(&members).is_err());
    let ok = format!("1{}", " + 1".repeat(300));
    assert!(evaluate_expression(&ok).is_ok());
    // An aggregate that wraps its accumulator in a list each row stops (budget or depth).
    assert!(
        evaluate_expression("(expand Interval[1, 100000]) X aggregate A starting {}: { A }")
            .is_err()
    );
}

#[test]
fn hostile_inputs_give_errors_not_panics() {
    for src in [
        "99999999999999999999999999.0 'g' * 99999999999999999999999999.0 'g'",
        "DateTime('x')",
        "Date(2014) + 9223372036854775807 days",
        "@2014-01-01 + 2147483647 years",
        "Variance({99999999999999999999999999.0, -99999999999999999999999999.0})",
        "'abc'[-1]",
        "Substring('abc', 5)",
        "Interval[5, 1]",
        "@T10:00 + 1 year",
        "'\\u00'",
        "Matches('a', '(')",
        "1 'mg':0 'mg'",
        "{1, 2}[9999999999]",
        "Message(1, true, 'E1', 'Error', 'boom')",
    ] {
        let _ = evaluate_expression(src);
    }
    assert!(matches!(
        evaluate_expression("Message(1, true, 'E1', 'Error', 'boom')"),
        Err(Error::Message { .. })
    ));
}

#[test]
fn three_valued_logic_and_nulls() {
    let t = |s: &str| evaluate_expression(s).unwrap().to_string();
    assert_eq!(t("null and false"), "false");
    assert_eq!(t("null or true"), "true");
    assert_eq!(t("null implies true"), "true");
    assert_eq!(t("1 + null"), "null");
    assert_eq!(t("2147483647 + 1"), "null");
    assert_eq!(t("@2012-01 = @2012-01-01"), "null");
    assert_eq!(t("'a' ~ 'A'"), "true");
    assert_eq!(t("1 'g' = 1000 'mg'"), "true");
    assert_eq!(t("Interval[1, 5] overlaps Interval[5, 8]"), "true");
}

#[test]
fn grammar_tour() {
    let t = |s: &str| match evaluate_expression(s) {
        Ok(v) => v.to_string(),
        Err(e) => format!("ERR {e}"),
    };
    let cases = [
        ("@2014-01-01T10:00 same day as @2014-01-01T23:00", "true"),
        ("@2014-01-01 within 3 days of @2014-01-03", "true"),
        ("@2014-01-01 3 days or less before @2014-01-03", "true"),
        ("@2014-01-01 3 days or more before @2014-01-03", "false"),
        ("@2014-01-01 on or before @2014-01-01", "true"),
        ("Interval[1, 3] starts Interval[1, 5]", "true"),
        ("Interval[3, 5] ends Interval[1, 5]", "true"),
        ("Interval[1, 3] meets before Interval[4, 5]", "true"),
        ("Interval[2, 3] properly included in Interval[1, 5]", "true"),
        ("Interval[1, 5] starts before start Interval[2, 5]", "true"),
        ("year from @2014-05-06", "2014"),
        (
            "duration in days of Interval[@2014-01-01, @2014-01-05]",
            "4",
        ),
        (
            "difference in months between @2014-01-31 and @2014-02-01",
            "1",
        ),
        ("convert 5 'g' to 'mg'", "5000.0 'mg'"),
        ("convert '5' to Integer", "5"),
        ("5 between 1 and 10", "true"),
        ("from ({1, 2}) A, ({3}) B where A > 1 return A + B", "{5}"),
        (
            "({1, 2, 3}) X with ({2, 3}) Y such that X = Y return X",
            "{2, 3}",
        ),
        ("({1, 2, 3}) X without ({2}) Y such that X = Y", "{1, 3}"),
        ("({1, 2, 3}) X let Y: X * 2 return Y", "{2, 4, 6}"),
        (
            "({ Tuple { a: 2 }, Tuple { a: 1 } }) T sort by a",
            "{Tuple { a: 1 }, Tuple { a: 2 }}",
        ),
        ("({3, 1, 2}) X return distinct X sort desc", "{3, 2, 1}"),
        (
            "Code '8480-6' from \"http://loinc.org\" display 'x'",
            "Code { code: '8480-6', system: 'http://loinc.org' }",
        ),
        ("1:2", "1.0 '1':2.0 '1'"),
        ("List<Integer>{}", "{}"),
        ("{ a: 1 }.a", "1"),
        ("case 2 when 1 then 'a' when 2 then 'b' else 'c' end", "'b'"),
        ("if null then 1 else 2", "2"),
        ("5 'mg' is Quantity", "true"),
        ("cast 5 as Integer", "5"),
        ("'abc' as Integer", "null"),
        ("singleton from {1}", "1"),
        ("flatten {{1}, {2, 3}}", "{1, 2, 3}"),
        ("successor of 1", "2"),
        ("minimum Integer", "-2147483648"),
        ("Interval[1, 10] overlaps after Interval[0, 5]", "true"),
        ("1L + 2L", "3L"),
        ("@T10:00 + 90 minutes", "@T11:30"),
        ("3 days + 2 days", "5.0 'days'"),
        ("System.ValueSet{id: '123'} is Vocabulary", "true"),
        ("System.ValueSet{id: '123'} is ValueSet", "true"),
        ("System.Quantity { value: 1, unit: 'g' }", "1.0 'g'"),
        ("Combine({})", "null"),
        ("Substring('', 0)", "''"),
        ("Substring('ab', 2)", "null"),
        ("LastPositionOf('', 'Say hi to Ohio!')", "15"),
        ("PositionOf('', 'Say hi to Ohio!')", "0"),
        ("Split('a,b', null)", "{'a,b'}"),
        ("Matches(' \\n\\t', '\\\\s+')", "true"),
        (
            "Matches('Not all who wander are lost', '[\\\\w|\\\\s]+')",
            "true",
        ),
    ];
    let mut bad = Vec::new();
    for (src, want) in cases {
        let got = t(src);
        if got != want {
            bad.push(format!("{src} => {got} (want {want})"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

struct Fixture;

impl DataProvider for Fixture {
    fn retrieve(
        &self,
        data_type: &str,
        code_path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, Error> {
        assert_eq!(data_type, "Observation");
        assert_eq!(code_path, Some("code"));
        assert_eq!(codes, Some(&Value::Str("http://example.org/vs".into())));
        Ok((1..=3)
            .map(|i| Value::Tuple(vec![("value".into(), Value::Int(i))]))
            .collect())
    }

    fn in_vocabulary(&self, code: &Value, vocabulary: &Value) -> Result<Option<bool>, Error> {
        let Value::Code(c) = code else {
            return Ok(None);
        };
        Ok(Some(
            c.code == "x"
                && matches!(vocabulary, Value::Vocabulary("ValueSet", url, _) if url == "http://example.org/vs"),
        ))
    }
}

#[test]
fn retrieve_goes_to_the_data_provider() {
    let src = r#"
valueset "VS": 'http://example.org/vs'
define "Obs": [Observation: code in "VS"] O where O.value > 1 return O.value
"#;
    let lib = parse_library(src).unwrap();
    let engine = Engine::new(&lib).with_data(&Fixture);
    let v = engine.eval_define("Obs", &mut Context::default()).unwrap();
    assert_eq!(v.to_string(), "{2, 3}");
    assert!(
        Engine::new(&lib)
            .eval_define("Obs", &mut Context::default())
            .is_err()
    );
}

#[test]
fn included_libraries_resolve_through_their_alias() {
    let common = parse_library(
        "library Common\ndefine \"Ten\": 10\ndefine function Twice(x Integer): x * 2",
    )
    .unwrap();
    let main = parse_library(
        "library Main\ninclude Common called C\ndefine \"Ten\": 1\ndefine X: C.\"Ten\" + C.Twice(\"Ten\")",
    )
    .unwrap();
    let engine = Engine::new(&main).with_include("C", &common);
    let v = engine.eval_define("X", &mut Context::default()).unwrap();
    assert_eq!(v, Value::Int(12));
}

#[test]
fn exists_of_a_query_stops_at_the_first_row_that_passes() {
    let src = r#"
library Ex
define "Later": exists ({1, 2, 3}) X where X > 2
define "None": exists ({1, 2}) X where X > 5
define "NullResults": exists ({1, 2}) X return null
define "Empty": exists (List<Integer>{}) X where true
define "Pairs": exists (from ({1, 2}) A, ({3, 4}) B where A + B = 6)
define "NoPair": exists (from ({1, 2}) A, ({3, 4}) B where A + B = 9)
define "Single": exists (1) X where X = 1
define "Stops": exists ({1, 2}) X where (if X = 1 then true else Message(false, true, 'E', 'Error', 'row 2 read'))
define "Reaches": exists ({1, 2}) X where (if X = 2 then true else Message(false, true, 'E', 'Error', 'row 1 read'))
"#;
    let b = |n: &str| eval_define(src, n).unwrap();
    assert_eq!(b("Later"), Value::Bool(true));
    assert_eq!(b("None"), Value::Bool(false));
    assert_eq!(b("NullResults"), Value::Bool(false));
    assert_eq!(b("Empty"), Value::Bool(false));
    assert_eq!(b("Pairs"), Value::Bool(true));
    assert_eq!(b("NoPair"), Value::Bool(false));
    assert_eq!(b("Single"), Value::Bool(true));
    // The first row passes, so the second (which raises an error) is never evaluated...
    assert_eq!(b("Stops"), Value::Bool(true));
    // ...while a query whose passing row comes later evaluates the rows before it.
    assert!(eval_define(src, "Reaches").is_err());
}

/// Answers every retrieve with `n` Integers.
struct Rows(i32);

impl DataProvider for Rows {
    fn retrieve(&self, _: &str, _: Option<&str>, _: Option<&Value>) -> Result<Vec<Value>, Error> {
        Ok((0..self.0).map(Value::Int).collect())
    }
}

#[test]
fn each_define_is_evaluated_in_its_own_context() {
    let src = "library C\nusing FHIR version '4.0.1'\ndefine \"Before any\": Count([Observation])\n\
               context Patient\ndefine \"Mine\": Count([Observation])\n\
               context Unfiltered\ndefine \"All\": Count([Observation])\n\
               define \"Mine from all\": \"Mine\"\n\
               context Patient\ndefine \"Both\": \"Mine\" * 100 + \"All\"";
    let lib = parse_library(src).unwrap();
    assert_eq!(
        lib.define_contexts,
        [
            ("Mine", "Patient"),
            ("All", "Unfiltered"),
            ("Mine from all", "Unfiltered"),
            ("Both", "Patient")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let (patient, unfiltered) = (Rows(2), Rows(7));
    let engine = Engine::new(&lib).with_contexts(&patient, &unfiltered);
    let mut ctx = Context::default();
    let mut ev = |n: &str| engine.eval_define(n, &mut ctx).unwrap();
    assert_eq!(ev("Mine"), Value::Int(2));
    assert_eq!(ev("All"), Value::Int(7));
    assert_eq!(ev("Mine from all"), Value::Int(2));
    assert_eq!(ev("Both"), Value::Int(207));
    // Before any context statement: the engine's own (the Patient) provider.
    assert_eq!(ev("Before any"), Value::Int(2));
    // One provider for everything without `with_contexts`.
    let engine = Engine::new(&lib).with_data(&unfiltered);
    assert_eq!(
        engine.eval_define("Both", &mut Context::default()).unwrap(),
        Value::Int(707)
    );
}

/// The value of a stand-alone expression.
fn ev(src: &str) -> Value {
    evaluate_expression(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn times_is_the_cartesian_product_of_lists_of_tuples() {
    // The same product as a query over two sources builds, in the same order.
    assert_eq!(
        ev("Times({Tuple { a: 1 }, Tuple { a: 2 }}, {Tuple { b: 'x' }, Tuple { b: 'y' }})"),
        ev("from ({1, 2}) A, ({'x', 'y'}) B return all Tuple { a: A, b: B }")
    );
    let got = ev("Times({Tuple { a: 1 }, Tuple { a: 2 }}, {Tuple { b: 'x' }})");
    let Value::List(rows) = got else {
        panic!("not a list: {got}")
    };
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1], ev("Tuple { a: 2, b: 'x' }"));
    assert_eq!(
        ev("Times(null as List<Tuple { a Integer }>, {Tuple { b: 1 }})"),
        Value::Null
    );
    assert_eq!(ev("Times({Tuple { a: 1 }}, {})"), Value::List(vec![]));
}

#[test]
fn this_index_and_total_in_fhirpath_style_invocations() {
    assert_eq!(
        ev("({1, 2, 3}).where($this > 1)"),
        ev("({1, 2, 3}) X where X > 1")
    );
    assert_eq!(
        ev("({1, 2, null}).select($this * 10)"),
        ev("({1, 2}) X return all X * 10")
    );
    assert_eq!(ev("({'a', 'b', 'c'}).select($index)"), ev("{0, 1, 2}"));
    assert_eq!(ev("({'a', 'b', 'c'}).where($index >= 1)"), ev("{'b', 'c'}"));
    assert_eq!(
        ev("({1, 2, 3, 4}).aggregate($total + $this, 0)"),
        ev("Sum({1, 2, 3, 4})")
    );
    // Without a start the accumulator begins null.
    assert_eq!(
        ev("({2, 3, 4}).aggregate(if $total is null then $this else $total * $this)"),
        ev("Product({2, 3, 4})")
    );
    assert_eq!(ev("({1, 2}).all($this > 0)"), Value::Bool(true));
    assert_eq!(ev("({1, -2}).all($this > 0)"), Value::Bool(false));
    // `$index` of the innermost iteration, the outer one's again after it.
    assert_eq!(
        ev("({10, 20}).select(First(({7, 8, 9}).where($index = 2)) + $index)"),
        ev("{9, 10}")
    );
    assert!(evaluate_expression("$index").is_err());
    assert!(evaluate_expression("$total + 1").is_err());
}

#[test]
fn split_on_matches_and_to_chars() {
    assert_eq!(
        ev("SplitOnMatches('a1b22c', '[0-9]+')"),
        ev("{'a', 'b', 'c'}")
    );
    assert_eq!(ev("SplitOnMatches('abc', ',')"), ev("{'abc'}"));
    assert_eq!(ev("SplitOnMatches(null, ',')"), Value::Null);
    assert_eq!(ev("SplitOnMatches('a,b', null)"), Value::Null);
    assert!(evaluate_expression("SplitOnMatches('a', '(')").is_err());
    let s = "'héllo'";
    assert_eq!(
        ev(&format!("ToChars({s})")),
        ev("{'h', 'é', 'l', 'l', 'o'}")
    );
    assert_eq!(ev(&format!("Combine(ToChars({s}))")), ev(s));
    assert_eq!(ev("ToChars('')"), Value::List(vec![]));
    assert_eq!(ev("ToChars(null)"), Value::Null);
}

#[test]
fn geometric_mean() {
    assert_eq!(ev("GeometricMean({2.0, 8.0})"), ev("4.0"));
    // The n-th root of the product (27), nulls ignored.
    assert_eq!(ev("GeometricMean({1.0, null, 3.0, 9.0})"), ev("3.0"));
    assert_eq!(ev("GeometricMean({1, 3, 9})"), ev("3.0"));
    assert_eq!(ev("GeometricMean({5.0, 0.0})"), ev("0.0"));
    assert_eq!(ev("GeometricMean(List<Decimal>{})"), Value::Null);
    assert_eq!(ev("GeometricMean({null as Decimal})"), Value::Null);
    assert_eq!(ev("GeometricMean({-1.0, 4.0})"), Value::Null);
}

#[test]
fn can_convert_quantity_follows_ucum() {
    assert_eq!(ev("CanConvertQuantity(5 'mg', 'g')"), Value::Bool(true));
    assert_eq!(ev("CanConvertQuantity(5 'mg', 'm')"), Value::Bool(false));
    assert_eq!(
        ev("CanConvertQuantity(5 'mg', 'not a unit')"),
        Value::Bool(false)
    );
    // What it promises, `convert` keeps.
    assert_eq!(ev("convert 5 'mg' to 'g'"), ev("0.005 'g'"));
    assert_eq!(ev("CanConvertQuantity(null, 'g')"), Value::Null);
    assert_eq!(ev("CanConvertQuantity(5 'mg', null)"), Value::Null);
}

#[test]
fn list_inclusion_in_every_direction() {
    for (e, want) in [
        ("{1, 2} included in {1, 2, 3}", Some(true)),
        ("{1, 4} included in {1, 2, 3}", Some(false)),
        ("{1, 2} properly included in {1, 2, 3}", Some(true)),
        ("{1, 2} properly included in {2, 1}", Some(false)),
        ("{1, 2, 3} includes {1, 2}", Some(true)),
        ("{1, 2, 3} properly includes {1, 2}", Some(true)),
        ("{1, 2} properly includes {1, 2}", Some(false)),
        ("{1, 2, 3} includes 2", Some(true)),
        ("2 included in {1, 2}", Some(true)),
        ("5 included in {1, 2}", Some(false)),
        ("{'a'} included in null", None),
    ] {
        assert_eq!(ev(e), want.map_or(Value::Null, Value::Bool), "{e}");
    }
}

/// A code system `http://s` with the hierarchy a > b > c (and d alone).
struct Hierarchy;

impl DataProvider for Hierarchy {
    fn retrieve(&self, _: &str, _: Option<&str>, _: Option<&Value>) -> Result<Vec<Value>, Error> {
        Ok(vec![])
    }

    fn subsumes(&self, ancestor: &value::Code, code: &value::Code) -> Result<Option<bool>, Error> {
        if ancestor.system.as_deref() != Some("http://s") {
            return Ok(None);
        }
        let chain = ["a", "b", "c"];
        let at = |c: &str| chain.iter().position(|x| *x == c);
        Ok(Some(matches!(
            (at(&ancestor.code), at(&code.code)),
            (Some(i), Some(j)) if i <= j
        )))
    }
}

#[test]
fn subsumes_and_subsumed_by() {
    let src = r#"library T
codesystem "S": 'http://s'
codesystem "U": 'http://unknown'
define AB: Subsumes(Code 'a' from "S", Code 'b' from "S")
define AC: Subsumes(Code 'a' from "S", Code 'c' from "S")
define BA: Subsumes(Code 'b' from "S", Code 'a' from "S")
define AD: Subsumes(Code 'a' from "S", Code 'd' from "S")
define ByCB: SubsumedBy(Code 'c' from "S", Code 'b' from "S")
define ByBC: SubsumedBy(Code 'b' from "S", Code 'c' from "S")
define Same: Subsumes(Code 'x' from "U", Code 'x' from "U")
define OtherSystem: Subsumes(Code 'a' from "S", Code 'a' from "U")
define Unknown: Subsumes(Code 'x' from "U", Code 'y' from "U")
define Concepts: Subsumes(Concept { Code 'd' from "S", Code 'b' from "S" }, Concept { Code 'c' from "S" })
define Null: Subsumes(null as Code, Code 'a' from "S")
"#;
    let lib = parse_library(src).unwrap();
    let data = Hierarchy;
    let engine = Engine::new(&lib).with_data(&data);
    let get = |n: &str| engine.eval_define(n, &mut Context::default()).unwrap();
    for (n, want) in [
        ("AB", Some(true)),
        ("AC", Some(true)),
        ("BA", Some(false)),
        ("AD", Some(false)),
        ("ByCB", Some(true)),
        ("ByBC", Some(false)),
        ("Same", Some(true)),
        ("OtherSystem", Some(false)),
        ("Unknown", None),
        ("Concepts", Some(true)),
        ("Null", None),
    ] {
        assert_eq!(get(n), want.map_or(Value::Null, Value::Bool), "{n}");
    }
    // Equal codes subsume without a terminology; others need one.
    let bare = Engine::new(&lib);
    assert_eq!(
        bare.eval_define("Same", &mut Context::default()).unwrap(),
        Value::Bool(true)
    );
    assert!(bare.eval_define("AB", &mut Context::default()).is_err());
    assert!(
        check::check_resolved(&Resolved {
            library: std::sync::Arc::new(lib.clone()),
            includes: vec![],
        })
        .is_empty()
    );
}

#[test]
fn code_systems_of_included_libraries() {
    let common = parse_library(
        "library Common version '1'\ncodesystem \"SNOMEDCT\": 'http://snomed.info/sct'\ndefine One: 1",
    )
    .unwrap();
    let src = r#"library T
include Common version '1' called Common
code "x": '123' from Common."SNOMEDCT" display 'X'
define X: "x"
define Y: Code '456' from Common."SNOMEDCT"
"#;
    let lib = parse_library(src).unwrap();
    assert!(
        matches!(&lib.codes[0].1, Expr::Code(c) if c.code == "123" && c.system == "SNOMEDCT" && c.library.as_deref() == Some("Common"))
    );
    let engine = Engine::new(&lib).with_include("Common", &common);
    let sys = |v: Value| match v {
        Value::Code(c) => (c.code, c.system),
        o => panic!("not a code: {o}"),
    };
    let url = Some(common.codesystems[0].1.clone());
    assert_eq!(
        sys(engine.eval_define("X", &mut Context::default()).unwrap()),
        ("123".to_string(), url.clone())
    );
    assert_eq!(
        sys(engine.eval_define("Y", &mut Context::default()).unwrap()),
        ("456".to_string(), url)
    );
    // The checker resolves the system in the include, and reports one it lacks.
    let resolved = |src: &str| Resolved {
        library: std::sync::Arc::new(parse_library(src).unwrap()),
        includes: vec![(
            "Common".into(),
            std::sync::Arc::new(Resolved {
                library: std::sync::Arc::new(common.clone()),
                includes: vec![],
            }),
        )],
    };
    assert!(check::check_resolved(&resolved(src)).is_empty());
    let bad = src.replace("Common.\"SNOMEDCT\" display", "Common.\"LOINC\" display");
    let errs = check::check_resolved(&resolved(&bad));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (3, 29));
    assert!(
        errs[0].message.contains("Common.LOINC"),
        "{}",
        errs[0].message
    );
    let unknown = src.replace(
        "from Common.\"SNOMEDCT\" display",
        "from Other.\"SNOMEDCT\" display",
    );
    assert_eq!(check::check_resolved(&resolved(&unknown)).len(), 1);
}

/// Answers every retrieve with `n` Integers, counting the retrieves.
struct Counted(i32, std::sync::atomic::AtomicUsize);

impl DataProvider for Counted {
    fn retrieve(&self, _: &str, _: Option<&str>, _: Option<&Value>) -> Result<Vec<Value>, Error> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((0..self.0).map(Value::Int).collect())
    }
}

#[test]
fn unfiltered_defines_are_evaluated_once_for_all_contexts_sharing_them() {
    let src = "library C\nusing FHIR version '4.0.1'\n\
               context Unfiltered\ndefine \"All\": Count([Observation])\n\
               define \"Twice all\": \"All\" * 2\n\
               define \"Mine from all\": \"Mine\"\n\
               context Patient\ndefine \"Mine\": Count([Observation])\n\
               define \"Share\": \"Twice all\" + \"Mine\"\n\
               define \"Mine again\": \"Mine from all\"";
    let lib = parse_library(src).unwrap();
    let unfiltered = Counted(7, Default::default());
    let shared = std::sync::Arc::new(SharedDefines::default());
    let subjects: Vec<Counted> = (1..=5).map(|n| Counted(n, Default::default())).collect();
    // Each subject on its own thread, as a measure evaluates them.
    std::thread::scope(|s| {
        for p in &subjects {
            let (lib, unfiltered, shared) = (&lib, &unfiltered, shared.clone());
            s.spawn(move || {
                let engine = Engine::new(lib).with_contexts(p, unfiltered);
                let mut ctx = Context::default();
                ctx.shared = Some(shared);
                let mut ev = |n: &str| engine.eval_define(n, &mut ctx).unwrap();
                assert_eq!(ev("Share"), Value::Int(7 * 2 + p.0));
                // An Unfiltered define that reads a Patient one is each subject's own.
                assert_eq!(ev("Mine again"), Value::Int(p.0));
            });
        }
    });
    // "All" read the unfiltered data once, for all five subjects.
    assert_eq!(unfiltered.1.load(std::sync::atomic::Ordering::Relaxed), 1);
    for p in &subjects {
        assert_eq!(p.1.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
    // Without a shared cache each context evaluates it.
    let unshared = Counted(7, Default::default());
    for p in &subjects {
        let engine = Engine::new(&lib).with_contexts(p, &unshared);
        engine
            .eval_define("Share", &mut Context::default())
            .unwrap();
    }
    assert_eq!(
        unshared.1.load(std::sync::atomic::Ordering::Relaxed),
        subjects.len()
    );
}
