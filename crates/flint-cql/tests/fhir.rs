//! FHIR data in CQL over a fixture provider: property access, choice types, FHIRHelpers
//! conversions, the Patient context and ages.

use flint_cql::fhir::resource_value;
use flint_cql::{Context, DataProvider, Engine, Error, Value, parse_library};
use serde_json::json;

struct Fixture(Vec<serde_json::Value>);

impl DataProvider for Fixture {
    fn retrieve(&self, ty: &str, _: Option<&str>, _: Option<&Value>) -> Result<Vec<Value>, Error> {
        self.0
            .iter()
            .filter(|r| r["resourceType"] == ty)
            .map(|r| resource_value(r.clone()))
            .collect()
    }
}

fn fixture() -> Fixture {
    Fixture(vec![
        json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-06-15", "gender": "female",
            "name": [{"given": ["Ann", "Bea"]}, {"given": ["Cleo"]}]}),
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "userSelected": true}], "text": "SBP"},
            "effectiveDateTime": "2020-03-01T10:00:00Z",
            "valueQuantity": {"value": 150, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}),
        json!({"resourceType": "Observation", "id": "o2", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "effectivePeriod": {"start": "2019-03-01T10:00:00Z", "end": "2019-03-01T11:00:00Z"},
            "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}],
            "valueQuantity": {"value": 13.5, "unit": "kPa", "system": "http://unitsofmeasure.org", "code": "kPa"}}),
    ])
}

fn eval(src: &str, define: &str) -> Value {
    let lib = parse_library(src).unwrap();
    let data = fixture();
    let engine = Engine::new(&lib).with_data(&data);
    let mut ctx = Context::default();
    engine.eval_define(define, &mut ctx).unwrap()
}

const HEAD: &str = "library T using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1' called FHIRHelpers
codesystem \"LOINC\": 'http://loinc.org'
parameter \"MP\" Interval<DateTime> default Interval[@2020-01-01T00:00:00.0Z, @2021-01-01T00:00:00.0Z)
context Patient
";

#[test]
fn properties_and_conversions() {
    let t = |body: &str| eval(&format!("{HEAD}define X: {body}"), "X").to_string();
    assert_eq!(t("Patient.birthDate"), "@1980-06-15");
    assert_eq!(t("Patient.birthDate.value"), "@1980-06-15");
    assert_eq!(t("Patient.gender = 'female'"), "true");
    assert_eq!(t("Count([Observation])"), "2");
    assert_eq!(
        t("Count([Observation] O where O.value > 140 'mm[Hg]')"),
        "1",
        "150 mm[Hg] is above, 13.5 kPa (101.3 mm[Hg]) is not"
    );
}

#[test]
fn dates_codes_and_ages() {
    let t = |body: &str| eval(&format!("{HEAD}define X: {body}"), "X").to_string();
    assert_eq!(
        t("Count([Observation] O where O.effective during \"MP\")"),
        "1"
    );
    assert_eq!(
        t("Count([Observation] O where O.effective before start of \"MP\")"),
        "1"
    );
    assert_eq!(
        t("Count([Observation] O where O.code ~ Code '8480-6' from \"LOINC\")"),
        "2"
    );
    assert_eq!(
        t("exists ([Observation] O where O.code.coding.code contains '8480-6')"),
        "true"
    );
    assert_eq!(t("First([Observation]).code.text"), "'SBP'");
    assert_eq!(t("AgeInYearsAt(start of \"MP\")"), "39");
    assert_eq!(t("AgeInYearsAt(@2020-06-15)"), "40");
    assert_eq!(
        t("FHIRHelpers.ToQuantity(First([Observation]).value)"),
        "150.0 'mm[Hg]'"
    );
    assert_eq!(t("First([Observation]).value is FHIR.Quantity"), "true");
    assert_eq!(t("First([Observation]) is FHIR.Observation"), "true");
    assert_eq!(t("First([Observation]).id"), "'o1'");
    assert_eq!(
        t("[Observation] O sort by effective desc")
            .to_string()
            .matches("\"id\"")
            .count(),
        2
    );
    assert_eq!(t("First([Observation] O sort by value).id"), "'o2'");
    assert_eq!(t("First([Observation] O sort by id desc).id"), "'o2'");
    assert_eq!(
        t("Count([Observation] O where O.status in {'final', 'amended'})"),
        "2"
    );
    // A FHIR Quantity until an operator converts it.
    assert!(t("Last([Observation]).component.value").starts_with("{FHIR.Quantity {"));
    assert_eq!(
        t("First(Last([Observation]).component).value < 90 'mm[Hg]'"),
        "true"
    );
    assert_eq!(
        t("Last([Observation]).value is FHIR.CodeableConcept"),
        "false"
    );
    assert_eq!(
        t("Last([Observation]).value as FHIR.CodeableConcept"),
        "null"
    );
    assert_eq!(t("Patient.name.given"), "{'Ann', 'Bea', 'Cleo'}");
    assert_eq!(
        t("First(First([Observation]).code.coding).userSelected"),
        "true"
    );
    assert_eq!(t("CalculateAgeInYearsAt(@2000-02-01, @2020-01-31)"), "19");
}

#[test]
fn other_fhir_versions_are_refused() {
    let lib = parse_library(
        "library T using FHIR version '3.0.0' context Patient define X: [Observation]",
    )
    .unwrap();
    let data = fixture();
    let engine = Engine::new(&lib).with_data(&data);
    let r = engine.eval_define("X", &mut Context::default());
    assert!(matches!(r, Err(Error::Eval(m)) if m.contains("4.0.1")));
}

#[test]
fn fhirhelpers_itself_agrees_with_the_native_conversions() {
    let helpers = parse_library(flint_model::defs::FHIR_HELPERS_4_0_1).unwrap();
    let exprs = [
        "FHIRHelpers.ToQuantity(First([Observation]).value)",
        "FHIRHelpers.ToConcept(First([Observation]).code)",
        "FHIRHelpers.ToCode(First(First([Observation]).code.coding))",
        "FHIRHelpers.ToInterval(Last([Observation]).effective)",
        "FHIRHelpers.ToDateTime(First([Observation]).effective)",
        "FHIRHelpers.ToDate(Patient.birthDate)",
        "FHIRHelpers.ToString(Patient.gender)",
    ];
    for e in exprs {
        let lib = parse_library(&format!("{HEAD}define X: {e}")).unwrap();
        let data = fixture();
        let native = Engine::new(&lib)
            .with_data(&data)
            .eval_define("X", &mut Context::default())
            .unwrap();
        let included = Engine::new(&lib)
            .with_data(&data)
            .with_include("FHIRHelpers", &helpers)
            .eval_define("X", &mut Context::default())
            .unwrap();
        assert_eq!(native.to_string(), included.to_string(), "{e}");
        assert!(!native.is_null(), "{e}");
    }
}
