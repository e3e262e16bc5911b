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
