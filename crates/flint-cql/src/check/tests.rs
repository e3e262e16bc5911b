//! The type checker: each kind of error at its line and column, overload resolution with
//! implicit conversions, and what must stay accepted.

use super::*;
use crate::parser::parse_library;
use std::sync::Arc;

fn resolved(src: &str) -> Resolved {
    Resolved {
        library: Arc::new(parse_library(src).unwrap()),
        includes: Vec::new(),
    }
}

/// The errors of `src` as `(line, column, message)`.
fn errors(src: &str) -> Vec<(usize, usize, String)> {
    check_resolved(&resolved(src))
        .into_iter()
        .map(|e| (e.line, e.column, e.message))
        .collect()
}

/// The one error of `src`, which must be at `line`:`column` and mention `what`.
fn one_error(src: &str, line: usize, column: usize, what: &str) {
    let es = errors(src);
    assert_eq!(es.len(), 1, "{src}: {es:?}");
    let (l, c, m) = &es[0];
    assert_eq!((*l, *c), (line, column), "{src}: {m}");
    assert!(m.contains(what), "{src}: {m}");
}

fn clean(src: &str) {
    let es = errors(src);
    assert!(es.is_empty(), "{src}: {es:?}");
}

/// The static type of define `name` in `src` (which must check clean).
fn type_of_define(src: &str, name: &str) -> Ty {
    clean(src);
    define_type(&resolved(src), name).unwrap()
}

#[test]
fn unknown_identifiers() {
    one_error(
        "library T version '1'\ndefine X: 1\ndefine Y:\n  X + Z",
        4,
        7,
        "could not resolve identifier `Z`",
    );
    // An alias is not visible outside its query, nor a define's alias in another define.
    one_error(
        "library T\ndefine X: ({1, 2}) A where A > 1\ndefine Y: A",
        3,
        11,
        "`A`",
    );
    // A function's parameters are visible only in its body.
    one_error(
        "library T\ndefine function F(x Integer): x + 1\ndefine Y: x",
        3,
        11,
        "`x`",
    );
    // `Patient` needs `context Patient`.
    one_error(
        "library T using FHIR version '4.0.1'\ndefine Y: Patient.gender",
        2,
        11,
        "`Patient`",
    );
    // The library name labels the error.
    let e = &check_resolved(&resolved("library Lib version '2'\ndefine Y: Q"))[0];
    assert_eq!(e.library.as_deref(), Some("Lib version '2'"));
    assert_eq!(
        e.to_string(),
        "library Lib version '2': error at 2:11: could not resolve identifier `Q`"
    );
}

#[test]
fn unknown_functions_and_overloads() {
    one_error(
        "library T\ndefine X: 1 +\n  Frobnicate(2)",
        3,
        3,
        "could not resolve function `Frobnicate`",
    );
    // A fluent call of an unknown function: at its name.
    one_error(
        "library T\ndefine X: (1).frobnicate()",
        2,
        15,
        "`frobnicate`",
    );
    one_error(
        "library T\ndefine function F(x Integer): x\ndefine Y: F(1, 2)",
        3,
        11,
        "no overload of function `F` takes 2 arguments",
    );
    one_error(
        "library T\ndefine function F(x Integer): x\ndefine Y: F('a')",
        3,
        11,
        "no overload of function `F` matches the arguments (String)",
    );
    // A Decimal does not narrow to an Integer.
    one_error(
        "library T\ndefine function F(x Integer): x\ndefine Y: F(1.5)",
        3,
        11,
        "(Decimal)",
    );
}

#[test]
fn type_mismatches() {
    one_error(
        "library T\ndefine X: 1 + 'a'",
        2,
        13,
        "no overload of operator `Add` matches the arguments (Integer, String)",
    );
    one_error(
        "library T\ndefine X: ({1, 2, 3}) L where L",
        2,
        31,
        "a where condition must be a Boolean, not Integer",
    );
    // A literal has no name of its own: the error is at the define's name.
    one_error(
        "library T\ndefine X: if 'yes' then 1 else 2",
        2,
        8,
        "an if condition must be a Boolean, not String",
    );
    one_error("library T\ndefine X: true and 1", 2, 16, "`And`");
    one_error("library T\ndefine X: @2020-01-01 < 'a'", 2, 23, "`Less`");
    one_error("library T\ndefine X: 'a' & 1", 2, 15, "`Concat`");
    one_error(
        "library T\ndefine X: width of Interval[@2020-01-01, @2020-02-01]",
        2,
        11,
        "not defined for an interval of Date",
    );
    // Errors inside function bodies are found even when the function is never called.
    one_error(
        "library T\ndefine function F(s String): s * 2",
        2,
        32,
        "(String, Integer)",
    );
}

#[test]
fn fhir_properties_and_retrieves() {
    let head = "library T using FHIR version '4.0.1'\ncontext Patient\n";
    one_error(
        &format!("{head}define X: Patient.nickname"),
        3,
        19,
        "FHIR type `Patient` has no element `nickname`",
    );
    one_error(
        &format!("{head}define X: Code '1' from \"SNOMED\""),
        3,
        25,
        "could not resolve code system `SNOMED`",
    );
    one_error(
        &format!("{head}define X: [Observaton]"),
        3,
        11,
        "could not resolve the FHIR resource type `Observaton`",
    );
    one_error(
        &format!("{head}define X: [Observation] O where O.status"),
        3,
        35,
        "must be a Boolean, not String",
    );
    // Paths through repeating elements and backbone elements.
    one_error(
        &format!("{head}define X: Patient.contact.name.famly"),
        3,
        32,
        "`HumanName` has no element `famly`",
    );
    // A primitive is its System type: a code is a String.
    one_error(
        &format!("{head}define X: Patient.gender + 1"),
        3,
        26,
        "(String, Integer)",
    );
}

#[test]
fn included_libraries() {
    let common = Arc::new(resolved(
        "library Common version '1'\ndefine Ten: 10\ndefine function Twice(x Integer): x * 2",
    ));
    let main = |body: &str| Resolved {
        library: Arc::new(
            parse_library(&format!(
                "library Main\ninclude Common version '1' called C\ndefine X: {body}"
            ))
            .unwrap(),
        ),
        includes: vec![("C".into(), common.clone())],
    };
    let errs = |body: &str| -> Vec<(usize, usize, String)> {
        check_resolved(&main(body))
            .into_iter()
            .map(|e| (e.line, e.column, e.message))
            .collect()
    };
    assert!(errs("C.Ten + C.Twice(C.Ten)").is_empty());
    assert_eq!(define_type(&main("C.Twice(2)"), "X"), Some(Ty::Int));
    let e = errs("C.Eleven");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].0, e[0].1), (3, 13));
    assert!(e[0].2.contains("`Eleven` in library `Common`"), "{e:?}");
    let e = errs("C.Thrice(1)");
    assert!(
        e[0].2.contains("function `Thrice` in library `Common`"),
        "{e:?}"
    );
    let e = errs("C.Twice('a')");
    assert!(e[0].2.contains("(String)"), "{e:?}");
    // An alias of the same name as the include hides it.
    assert!(errs("({1}) C return C + 1").is_empty());
    // Errors of an included library are reported, naming it.
    let bad = Arc::new(resolved("library Bad version '9'\ndefine Y: 1 + 'a'"));
    let r = Resolved {
        library: Arc::new(
            parse_library("library Main\ninclude Bad called B\ndefine X: 1").unwrap(),
        ),
        includes: vec![("B".into(), bad)],
    };
    let e = check_resolved(&r);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].library.as_deref(), Some("Bad version '9'"));
}

#[test]
fn overloads_resolve_with_implicit_conversions() {
    // An Integer argument to a Decimal parameter.
    let src = "library T\ndefine function Half(x Decimal): x / 2\ndefine Y: Half(3)";
    assert_eq!(type_of_define(src, "Y"), Ty::Dec);
    // An Integer to Long, a Long to Decimal, a Decimal to Quantity.
    clean("library T\ndefine function F(x Long): x\ndefine Y: F(1)");
    clean("library T\ndefine function F(x Decimal): x\ndefine Y: F(1L)");
    clean("library T\ndefine function F(x Quantity): x\ndefine Y: F(1.5)");
    // A Date against a DateTime.
    let src = "library T\ndefine function Later(d DateTime): d + 1 day\n\
               define Y: Later(@2020-01-01)\ndefine Z: @2020-01-01 < @2020-01-01T10:00";
    assert_eq!(type_of_define(src, "Y"), Ty::DateTime);
    assert_eq!(type_of_define(src, "Z"), Ty::Bool);
    // A Code where a Concept is declared.
    clean(
        "library T\ncodesystem \"s\": 'urn:s'\ndefine function F(c Concept): c\n\
         define Y: F(Code 'a' from \"s\")",
    );
    // List promotion: one element where a list is declared; and demotion.
    let src = "library T\ndefine function Total(xs List<Integer>): Sum(xs)\ndefine Y: Total(4)";
    assert_eq!(type_of_define(src, "Y"), Ty::Int);
    clean("library T\ndefine function F(x Integer): x\ndefine Y: F({1})");
    // null passes for anything.
    clean("library T\ndefine function F(x Date): x\ndefine Y: F(null)");
    // The exact overload wins over one reached by conversion.
    let src = "library T\ndefine function F(x Integer): 'int'\n\
               define function F(x Decimal): 1\ndefine A: F(1)\ndefine B: F(1.0)";
    assert_eq!(type_of_define(src, "A"), Ty::Str);
    assert_eq!(type_of_define(src, "B"), Ty::Int);
    // Operators: Integer + Decimal is Decimal, DateTime + Quantity a DateTime.
    let src = "library T\ndefine A: 1 + 2.5\ndefine B: @2020-01-01T00:00 + 1 day\n\
               define C: 1 / 2\ndefine D: {1, 2} union {3}";
    assert_eq!(type_of_define(src, "A"), Ty::Dec);
    assert_eq!(type_of_define(src, "B"), Ty::DateTime);
    assert_eq!(type_of_define(src, "C"), Ty::Dec);
}

#[test]
fn fhir_types_convert_like_fhirhelpers() {
    let head = "library T using FHIR version '4.0.1'\ninclude FHIRHelpers version '4.0.1'\n\
                codesystem \"LOINC\": 'http://loinc.org'\nparameter MP Interval<DateTime>\n\
                context Patient\n";
    for body in [
        // Choice types: each alternative is possible.
        "[Observation] O where O.value > 5 'mg'",
        "[Observation] O where (O.value as Quantity).value > 5",
        "[Observation] O where O.effective during MP",
        "[Observation] O where O.effective same day as @2020-01-01",
        // Coding and CodeableConcept against Code and Concept.
        "[Observation] O where O.code ~ Code '1' from \"LOINC\"",
        "[Observation] O where O.code.coding[0] ~ Code '1' from \"LOINC\"",
        "[Condition] C where C.onset as Period overlaps MP",
        // Primitives are System values.
        "Patient.birthDate < Today()",
        "AgeInYearsAt(start of MP) >= 18",
        "Patient.active and true",
        "FHIRHelpers.ToString(Patient.gender) = 'female'",
        "[Encounter] E where E.period ends during MP",
        "[Observation] O sort by effective desc",
        "First([Observation] O sort by issued).status",
        "[Patient] P return P.name.given",
        "[MedicationRequest] M where M.medication as CodeableConcept ~ Code '1' from \"LOINC\"",
    ] {
        clean(&format!("{head}define X: {body}"));
    }
}

#[test]
fn scopes_of_queries_and_functions() {
    for body in [
        "from ({1, 2}) A, ({3}) B where A < B return A + B",
        "({1, 2}) A let b: A * 2 where b > 2 return b",
        "({1, 2}) A with ({2}) B such that A = B return A",
        "({1, 2}) A without ({2}) B such that A = B",
        "({1, 2, 3}) A aggregate S starting 0: S + A",
        "({Tuple { a: 1, b: 'x' }}) T return T.a + 1",
        "({Tuple { a: 1 }}) T sort by a",
        "(from ({1}) A, ({2}) B) R return R.A + R.B",
        "Coalesce(null, 1) + 1",
        "Message(1, false, 'c', 'Error', 'm')",
    ] {
        clean(&format!("library T\ndefine X: {body}"));
    }
    clean(
        "library T\ndefine fluent function double(x Integer): x * 2\n\
         define Y: (3).double() + 1\ndefine Z: Y",
    );
    // Recursion and cycles do not loop.
    clean("library T\ndefine function F(x Integer): F(x + 1)\ndefine Y: F(0)");
    clean("library T\ndefine A: B\ndefine B: A");
    // A tuple of known elements has no others.
    one_error(
        "library T\ndefine X: Tuple { a: 1 }.b",
        2,
        26,
        "has no element `b`",
    );
}

#[test]
fn positions_of_stand_alone_expressions() {
    let (e, p) = crate::parser::parse_expression_with_positions("1 +\n  (2 * Foo)").unwrap();
    let es = check_expression(&Resolved::default(), &e, &p);
    assert_eq!(es.len(), 1);
    assert_eq!(
        (es[0].line, es[0].column, es[0].library.clone()),
        (2, 8, None)
    );
    let (e, p) = crate::parser::parse_expression_with_positions("1 + 2").unwrap();
    assert_eq!(type_of(&Resolved::default(), &e, &p), Ok(Ty::Int));
}

/// Every name the evaluator's `call_builtin` answers to is a known function here (so a
/// function added there is not rejected as unknown by the checker).
#[test]
fn builtins_cover_the_evaluator() {
    let src = include_str!("../eval.rs");
    let start = src.find("fn call_builtin(").unwrap();
    let body = &src[start..];
    let end = body.find("\n}\n").unwrap();
    let mut missing = Vec::new();
    for line in body[..end].lines() {
        let t = line.trim_start().trim_start_matches("| ");
        if !t.starts_with('"') {
            continue;
        }
        // The arm's names: `"A" | "B" ... =>`.
        for part in t.split('|') {
            let part = part.trim();
            let Some(name) = part.strip_prefix('"').and_then(|p| p.split('"').next()) else {
                break;
            };
            // Lower-case strings of nested matches: components and comparators.
            let inner = [
                "year",
                "month",
                "week",
                "day",
                "hour",
                "minute",
                "second",
                "millisecond",
                "date",
                "time",
                "timezoneoffset",
                "eq",
                "ge",
                "gt",
                "le",
                "lt",
            ];
            if !name.is_empty() && !inner.contains(&name) && !BUILTINS.contains(&name) {
                missing.push(name.to_string());
            }
            if part.contains("=>") || part.contains(" if ") {
                break;
            }
        }
    }
    assert!(missing.is_empty(), "not in BUILTINS: {missing:?}");
}

/// A library not parsed from CQL text here (read from ELM: no positions) is not checked
/// again; the same tree parsed from CQL is.
#[test]
fn libraries_from_elm_are_not_checked_again() {
    let elm = r#"{"library": {"identifier": {"id": "E", "version": "1"},
        "statements": {"def": [{"name": "X", "context": "Patient", "accessLevel": "Public",
            "expression": {"type": "ExpressionRef", "name": "Nope"}}]}}}"#;
    let lib = crate::elm::library_from_elm_bytes(elm.as_bytes()).unwrap();
    let r = Resolved {
        library: Arc::new(lib),
        includes: Vec::new(),
    };
    assert!(check_resolved(&r).is_empty());
    assert_eq!(errors("library E version '1'\ndefine X: Nope").len(), 1);
}

/// The shapes of published measure libraries (choice-typed helper functions, Period and
/// Interval parameters, backbone element lists, `let` chains, sort keys that name
/// properties, selectors of FHIR and System types) check clean.
#[test]
fn measure_library_shapes_check_clean() {
    clean(
        r#"library Shapes version '1'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1' called FHIRHelpers
codesystem "Roles": 'http://terminology.hl7.org/CodeSystem/v3-RoleCode'
valueset "Inpatient": 'urn:vs:inpatient'
valueset "Emergency": 'urn:vs:emergency'
code "ICU": 'ICU' from "Roles" display 'Intensive care unit'
code "Other": 'X' from Roles
parameter "Measurement Period" Interval<DateTime>
  default Interval[@2022-01-01T00:00:00.0, @2023-01-01T00:00:00.0)
context Patient

define function "AsInterval"(value Choice<FHIR.dateTime, FHIR.Period, FHIR.instant, FHIR.string, FHIR.Age, FHIR.Range>):
  case
    when value is FHIR.dateTime then
      Interval[FHIRHelpers.ToDateTime(value as FHIR.dateTime), FHIRHelpers.ToDateTime(value as FHIR.dateTime)]
    when value is FHIR.Period then FHIRHelpers.ToInterval(value as FHIR.Period)
    when value is FHIR.Age then
      Interval[FHIRHelpers.ToDate(Patient.birthDate) + FHIRHelpers.ToQuantity(value as FHIR.Age),
        FHIRHelpers.ToDate(Patient.birthDate) + FHIRHelpers.ToQuantity(value as FHIR.Age) + 1 year)
    when value is FHIR.Range then
      Interval[FHIRHelpers.ToDate(Patient.birthDate) + FHIRHelpers.ToQuantity((value as FHIR.Range).low),
        FHIRHelpers.ToDate(Patient.birthDate) + FHIRHelpers.ToQuantity((value as FHIR.Range).high) + 1 year)
    when value is FHIR.string then
      Message(null as Interval<DateTime>, true, '1', 'Error', 'no interval from a string')
    else null as Interval<DateTime>
  end

define function "Days"(span Interval<DateTime>):
  difference in days between start of span and end of span

define function "Same Ids"(ref Reference):
  singleton from ([Location] L where L.id = Last(Split(ref.reference, '/')))

define function "Stays"(stay FHIR.Encounter):
  stay Visit
    let Before: Last([Encounter: "Emergency"] E
          where E.status = 'finished'
            and E.period ends 1 hour or less on or before start of Visit.period
          sort by end of period),
      Begins: Coalesce(start of Before.period, start of Visit.period)
    return Interval[Begins, end of Visit.period]

define function "First ICU"(stay FHIR.Encounter):
  First((stay.location) Place
    where "Same Ids"(Place.location).type ~ "ICU"
      and Place.period during stay.period
    sort by start of period)

define function "Has Start"(span Interval<DateTime>):
  not (start of span is null or start of span = minimum DateTime)

define function "Day Numbers"(span Interval<DateTime>):
  (expand { Interval[1, duration in days between start of span and end of span] }) N
    return end of N

define function "Day Spans"(span Interval<DateTime>):
  ("Day Numbers"(span)) I
    let From: start of span + (24 hours * (I - 1)),
      To: if (hours between From and end of span < 24) then From else start of span + (24 hours * I)
    return Tuple { index: I, day: Interval[From, To) }

define "Stays In Period":
  [Encounter: "Inpatient"] E
    where E.status = 'finished'
      and "Days"(E.period) <= 120
      and E.period ends during day of "Measurement Period"
      and E.class ~ "Other"
      and E.status in { 'finished', 'in-progress' }

define "Onsets":
  [Condition] C return "AsInterval"(C.onset)

define "Sex":
  case
    when Patient.gender = 'male' then Code { code: 'M', system: 'urn:sex', display: 'Male' }
    when Patient.gender = 'female' then Code { code: 'F', system: 'urn:sex', display: 'Female' }
    else null
  end

define "Race":
  (Patient.extension) X
    where X.url = 'urn:race'
    return FHIR.CodeableConcept { text: FHIR.string { value: 'x' } }

define "Payers":
  [Coverage: type in "Inpatient"] P return { code: P.type, period: P.period }

define "Medication Codes":
  [MedicationRequest] R
    return if R.medication is CodeableConcept then R.medication as CodeableConcept
      else (singleton from ([Medication] M where M.id = (R.medication as Reference).reference)).code

define "Tallies":
  Count("Stays In Period") + Sum(("Day Spans"("Measurement Period")) S return S.index)
"#,
    );
}

/// Stand-alone expressions the end-to-end tests send to `$cql` check clean.
#[test]
fn expressions_of_the_end_to_end_tests_check_clean() {
    let src = "Count((expand Interval[1, 1200]) A where Count((expand Interval[1, 1200]) B where B = A) = 1)";
    let (e, p) = crate::parser::parse_expression_with_positions(src).unwrap();
    let es = check_expression(&Resolved::default(), &e, &p);
    assert!(es.is_empty(), "{src}: {es:?}");
}

/// The forms the ELM work added to the parser (related-context retrieves, `repeat`,
/// `children`, `descendents`) check clean.
#[test]
fn related_retrieves_and_tree_functions_check_clean() {
    clean(
        "library R
using FHIR version '4.0.1'
context Patient
define \"Mine\": [Observation]
define \"Theirs\": ([Patient]) P return [P -> Observation]
define \"Parts\": Patient.children()
define \"All\": Patient.descendents()
define \"Links\": Patient.link.repeat(other)
",
    );
}
