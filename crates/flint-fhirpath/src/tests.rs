//! Unit tests of the engine on small inline resources.

use super::*;
use crate::temporal::DateTime;
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

#[test]
fn node_locations_and_types() {
    let p = json!({"resourceType": "Patient", "name": [{"given": ["a", null], "_given": [null, {"extension": [{"url": "u", "valueString": "x"}]}]}],
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Org"}]});
    let items = compile("Patient.name.given").unwrap().evaluate(&p).unwrap();
    assert_eq!(items.len(), 2);
    let locs: Vec<_> = items
        .iter()
        .map(|i| i.as_node().unwrap().location(&p).unwrap())
        .collect();
    use PathSegment::{Index, Key};
    assert_eq!(
        locs[0],
        vec![Key("name".into()), Index(0), Key("given".into()), Index(0)]
    );
    assert_eq!(
        locs[1],
        vec![Key("name".into()), Index(0), Key("given".into()), Index(1)]
    );
    assert_eq!(items[0].type_name(), "string");
    let org = compile("contained.name").unwrap().evaluate(&p).unwrap();
    assert_eq!(org[0].type_name(), "string");
    assert_eq!(
        org[0].as_node().unwrap().location(&p).unwrap(),
        vec![Key("contained".into()), Index(0), Key("name".into())]
    );
    let id = compile("contained.id").unwrap().evaluate(&p).unwrap();
    assert_eq!(id[0].type_name(), "id");
    assert_eq!(
        eval_strings("contained.ofType(Organization).name", &p),
        vec!["Org"]
    );
}

#[test]
fn resolve_contained_bundle_stub_and_resolver() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "contained": [{"resourceType": "Patient", "id": "p1", "gender": "female"}],
        "subject": {"reference": "#p1"},
        "performer": [{"reference": "Practitioner/9"}, {"reference": "http://x.org/fhir/Organization/2/_history/3"}, {"display": "no ref"}]});
    assert_eq!(
        eval_strings("Observation.subject.resolve().gender", &obs),
        vec!["female"]
    );
    assert_eq!(
        eval_strings(
            "Observation.performer.where(resolve() is Practitioner).reference",
            &obs
        ),
        vec!["Practitioner/9"]
    );
    assert_eq!(
        eval_strings("Observation.performer.resolve().type().name", &obs),
        vec!["Practitioner", "Organization"]
    );
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "a", "gender": "male"}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:uuid:1"}}}]});
    assert_eq!(
        eval_strings("Bundle.entry[1].resource.subject.resolve().gender", &bundle),
        vec!["male"]
    );

    struct One(Value);
    impl Resolver for One {
        fn resolve(&self, reference: &str) -> Option<&Value> {
            (reference == "Practitioner/9").then_some(&self.0)
        }
    }
    let r = One(json!({"resourceType": "Practitioner", "id": "9", "gender": "other"}));
    let ctx = EvalContext::new(&obs).with_resolver(&r);
    let e = compile("Observation.performer.resolve().ofType(Practitioner).gender").unwrap();
    let got: Vec<_> = e
        .evaluate_with(&ctx)
        .unwrap()
        .iter()
        .filter_map(Item::to_fhirpath_string)
        .collect();
    assert_eq!(got, vec!["other"]);
    let no_stubs = EvalContext::new(&obs).with_reference_stubs(false);
    let e = compile("Observation.performer.resolve()").unwrap();
    assert!(e.evaluate_with(&no_stubs).unwrap().is_empty());
}

#[test]
fn context_variables_clock_and_trace() {
    let p = json!({"resourceType": "Patient", "birthDate": "2000-02-29"});
    let now = DateTime::parse("2024-03-01T10:00:00Z").unwrap();
    let traced = std::cell::RefCell::new(Vec::new());
    let sink =
        |name: &str, items: &[Item<'_>]| traced.borrow_mut().push((name.to_string(), items.len()));
    let ctx = EvalContext::new(&p)
        .with_now(now)
        .with_variable("limit", vec![Item::Integer(3)])
        .with_trace(&sink);
    let e = compile(
        "today() = @2024-03-01 and %limit + 1 = 4 and Patient.birthDate.trace('bd') < today()",
    )
    .unwrap();
    assert_eq!(e.evaluate_bool(&ctx).unwrap(), Some(true));
    assert_eq!(traced.borrow().as_slice(), &[("bd".to_string(), 1)]);
    let e = compile("%missing").unwrap();
    assert!(e.evaluate_with(&ctx).is_err());
    assert_eq!(
        compile("%resource.birthDate = %context.birthDate")
            .unwrap()
            .evaluate_bool(&ctx)
            .unwrap(),
        Some(true)
    );
}

#[test]
fn errors_not_panics() {
    let p = json!({"resourceType": "Patient", "name": [{"given": ["a"]}, {"given": ["b"]}]});
    for bad in [
        "",
        "(",
        "Patient.",
        "1 +",
        "'abc",
        "`x",
        "@2015-13-01",
        "Patient.name[",
        "foo(",
        "nosuchfunction()",
        "where()",
        "1 is",
        "Patient.as(1)",
        "%",
        "$nothing",
        "@T25:00",
        "{",
        "1 'a' +",
        "'a'.matches('(')",
    ] {
        assert!(compile(bad).is_err(), "{bad} should not compile");
    }
    for bad_eval in [
        "Patient.name.given.substring(0).single()",
        "Patient.name.given + 1",
        "Patient.name.given.startsWith('a')",
        "(1|2) < 3",
        "Patient.name.as(HumanName)",
    ] {
        let e = compile(bad_eval).unwrap();
        assert!(
            e.evaluate(&p).is_err(),
            "{bad_eval} should fail at run time"
        );
    }
    // Overflow and division by zero give empty, not panics.
    for empty in [
        "9223372036854775807 + 1",
        "1 / 0",
        "1 div 0",
        "1.0 mod 0",
        "(-1).sqrt()",
        "0.ln()",
    ] {
        let r = compile(empty).unwrap().evaluate(&p).unwrap();
        assert!(r.is_empty(), "{empty} gave {r:?}");
    }
    // Odd JSON does not break navigation.
    let odd = json!({"resourceType": "Patient", "name": "not-an-array", "gender": 5, "birthDate": {"x": 1}, "unknown": [1, {"a": 2}]});
    for expr in [
        "Patient.name.given",
        "Patient.gender.upper()",
        "Patient.birthDate < today()",
        "Patient.descendants()",
        "Patient.unknown",
    ] {
        let _ = compile(expr).unwrap().evaluate(&odd);
    }
    let not_resource = json!([1, 2, 3]);
    let _ = compile("children()").unwrap().evaluate(&not_resource);
}

#[test]
fn resource_limits() {
    let p = json!({"resourceType": "Patient"});
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(compile(&deep).is_err());
    let negs = format!("{}1", "-".repeat(5000));
    assert!(compile(&negs).is_err());
    let chain = format!("Patient{}", ".name".repeat(3000));
    let _ = compile(&chain).map(|e| e.evaluate(&p));
    assert!(
        compile("1.repeat($this + 1)")
            .unwrap()
            .evaluate(&p)
            .is_err()
    );
    for e in [
        "0.0000000000000000000000000001.lowBoundary()",
        "@2020-01-01 + 9223372036854775807 days",
        "@2020-01-01 + 9223372036854775807 months",
        "@2020-01-01T10:00:00 + 9223372036854775807 milliseconds",
        "@T10:00 + 9223372036854775807 hours",
        "@2020-01-01 + 1000000000 days",
        "99999999999999999999999999999",
    ] {
        let _ = compile(e).map(|x| x.evaluate(&p));
    }
}

#[test]
fn primitive_type_hierarchy() {
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "string", "valueString": "string"},
        {"name": "integer", "valueInteger": 1},
        {"name": "uuid", "valueUuid": "urn:uuid:79a14950-442c-11ed-b878-0242ac120002"},
        {"name": "decimal", "valueDecimal": 1.0},
        {"name": "pos", "valuePositiveInt": 3}]});
    for (e, want) in [
        ("Parameters.parameter[0].value.is(FHIR.string)", "true"),
        ("Parameters.parameter[1].value.is(FHIR.integer)", "true"),
        ("Parameters.parameter[2].value.is(FHIR.uuid)", "true"),
        ("Parameters.parameter[2].value.is(FHIR.uri)", "true"),
        ("Parameters.parameter[2].value.is(FHIR.string)", "false"),
        ("Parameters.parameter[3].value.is(FHIR.decimal)", "true"),
        ("Parameters.parameter[4].value.is(FHIR.integer)", "true"),
        ("Parameters.parameter[4].value + 1", "4"),
    ] {
        assert_eq!(eval_strings(e, &params), vec![want], "{e}");
    }
    // `code`, `id` and `markdown` derive from `string` in R4 (issue 19): they are strings,
    // FHIR's and System's; a `uri` is not.
    let p = json!({"resourceType": "Patient", "id": "p1", "gender": "male",
                   "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
                   "implicitRules": "http://example.org/rules", "birthDate": "2000-01-01"});
    for (e, want) in [
        ("Patient.gender.is(code)", "true"),
        ("Patient.gender.is(string)", "true"),
        ("Patient.gender.is(FHIR.string)", "true"),
        ("Patient.gender.is(String)", "true"),
        ("Patient.gender.is(System.String)", "true"),
        ("Patient.gender is string", "true"),
        ("Patient.gender.is(id)", "false"),
        ("Patient.id.is(string)", "true"),
        ("Patient.id.is(String)", "true"),
        ("Patient.implicitRules.is(string)", "false"),
        ("Patient.implicitRules.is(String)", "false"),
        ("Patient.birthDate.is(string)", "false"),
        ("Patient.birthDate.is(String)", "false"),
        ("Patient.gender.ofType(string).count()", "1"),
        ("Patient.gender.as(string)", "male"),
    ] {
        assert_eq!(eval_strings(e, &p), vec![want], "{e}");
    }
}

#[test]
fn quantity_equivalence_at_the_lower_precision() {
    for (e, want) in [
        // 4040 mg is 4.040 g, which at the precision of `4 'g'` is 4 g.
        ("4 'g' ~ 4040 'mg'", "true"),
        ("4040 'mg' ~ 4 'g'", "true"),
        ("4 'g' ~ 4600 'mg'", "false"),
        // At tenths of a gram 4.040 g is 4.0 g; 4.1 g is not.
        ("4.0 'g' ~ 4040 'mg'", "true"),
        ("4.1 'g' ~ 4040 'mg'", "false"),
        ("4.00 'g' ~ 4040 'mg'", "false"),
        ("4 'g' = 4040 'mg'", "false"),
        ("1 'm' ~ 100.4 'cm'", "true"),
        ("1 'm' ~ 1 's'", "false"),
        ("1.0 'kg' ~ 1000 'g'", "true"),
        ("7 days ~ 1 week", "true"),
        ("4.0 'g' ~ 4.04 'g'", "true"),
    ] {
        assert_eq!(eval_strings(e, &json!({})), vec![want], "{e}");
    }
}

#[test]
fn period_invariants() {
    let p = json!({"resourceType": "Patient", "identifier": [{"period": {"start": "2001-05-06", "end": "2001-05-06T10:10:10Z"}}]});
    assert_eq!(
        eval_strings(
            "Patient.identifier.period.all(start.hasValue().not() or end.hasValue().not() or (start <= end))",
            &p
        ),
        vec!["false"]
    );
    assert_eq!(
        eval_strings(
            "Patient.identifier.period.all(start.empty() or end.empty() or (start.lowBoundary() < end.highBoundary()))",
            &p
        ),
        vec!["true"]
    );
}

#[test]
fn compiled_expressions_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expression>();
    let e = std::sync::Arc::new(compile("Patient.name.given").unwrap());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || {
                let p = json!({"resourceType": "Patient", "name": [{"given": ["a"]}]});
                e.evaluate(&p).map(|r| r.len()).unwrap_or(0)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().ok(), Some(1));
    }
}

#[test]
fn strict_mode_reports_semantic_errors_with_their_offsets() {
    use crate::types::Ty;
    let err = |src: &str, root: &str| {
        let e = crate::check_strict(src, Some(root)).expect_err(src);
        assert_eq!(e.kind, ErrorKind::Semantic, "{src}: {e}");
        e.message
    };
    // Period has no `unit`; the offset is where `unit` stands.
    let src = "(Observation.value as Period).unit";
    let m = err(src, "Observation");
    assert!(
        m.contains(&format!("at offset {}", src.find("unit").unwrap())),
        "{m}"
    );
    assert!(m.contains("Period"), "{m}");
    // On a choice, an element none of its types has.
    let src = "Observation.value.nope";
    let m = err(src, "Observation");
    assert!(
        m.contains(&format!("at offset {}", src.find("nope").unwrap())),
        "{m}"
    );
    // A first name that is neither the input's type nor an element of it.
    let m = err("Patient.name", "Observation");
    assert!(m.contains("at offset 0"), "{m}");
    // Non-Boolean criteria.
    let src = "Patient.name.where(given)";
    let m = err(src, "Patient");
    assert!(
        m.contains(&format!("at offset {}", src.find("where").unwrap())),
        "{m}"
    );
    let m = err("iif('non boolean criteria', 'a', 'b')", "Patient");
    assert!(m.contains("at offset 0"), "{m}");
    err("Patient.telecom.all(value)", "Patient");
    // Accepted: what the model has, base types naming the input, primitives' own elements,
    // what cannot be known.
    for (src, root) in [
        ("Observation.value.unit", "Observation"),
        ("(Observation.value as Quantity).unit", "Observation"),
        ("Observation.value.ofType(Period).start", "Observation"),
        ("Resource.id", "Patient"),
        ("DomainResource.text.div", "Patient"),
        ("Patient.birthDate.extension.url", "Patient"),
        ("Patient.name.where(use = 'official').given", "Patient"),
        ("Patient.name.select(given).first().length()", "Patient"),
        ("Patient.contact.name.family", "Patient"),
        ("%resource.whatever", "Patient"),
        ("Bundle.entry.resource.ofType(Patient).gender", "Bundle"),
        ("Patient.name.given.exists($this.length() > 3)", "Patient"),
        ("iif(Patient.active, 'a', 'b')", "Patient"),
        ("(1).not() = false", "Patient"),
    ] {
        assert!(
            crate::check_strict(src, Some(root)).is_ok(),
            "{src}: {:?}",
            crate::check_strict(src, Some(root))
        );
    }
    // The inferred types come from the FHIR definitions.
    let ty = |src: &str, root: &str| compile(src).unwrap().check_strict(Some(root)).unwrap();
    assert_eq!(ty("Patient.birthDate", "Patient"), Ty::Date);
    assert_eq!(ty("Patient.name", "Patient"), Ty::Fhir("HumanName".into()));
    assert_eq!(ty("Patient.name.given.count()", "Patient"), Ty::Int);
    assert_eq!(
        ty("(Observation.value as Period)", "Observation"),
        Ty::Fhir("Period".into())
    );
    // An unknown input type is an error of its own; no type checks nothing of the root.
    assert!(compile("id").unwrap().check_strict(Some("Nope")).is_err());
    assert!(
        compile("anything.at.all")
            .unwrap()
            .check_strict(None)
            .is_ok()
    );
}
