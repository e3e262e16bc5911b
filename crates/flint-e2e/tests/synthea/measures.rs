//! Measures of the kinds research users write, evaluated over the loaded Synthea patients with
//! `Measure/$evaluate-measure`, each count checked against one this module computes from the
//! raw bundles: retrieve by code, value comparisons with units (one needing a UCUM
//! conversion), date and interval logic, age at a date, a library parameter, an Encounter
//! population basis, and stratifiers by gender, by address city and by a BMI computed from the
//! last weight and height of the period.

use super::{Data, LOINC, Server, instant, json, period, synthea_id};
use crate::measure::{count, cql_library, population, put, scoring, strata, stratifier};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

const CQL: &str = "library Research version '1.0.0'
using FHIR version '4.0.1'
include FHIRHelpers version '4.0.1'
codesystem \"LOINC\": 'http://loinc.org'
code \"BMI\": '39156-5' from \"LOINC\"
code \"Body weight\": '29463-7' from \"LOINC\"
code \"Body height\": '8302-2' from \"LOINC\"
parameter \"Measurement Period\" Interval<DateTime>
parameter \"Minimum Age\" Integer default 18
context Patient
define \"Initial Population\": AgeInYearsAt(start of \"Measurement Period\") >= \"Minimum Age\"
define \"Denominator\": \"Initial Population\"
define \"Obese BMI\": [Observation: \"BMI\"] O
  where O.value as Quantity >= 30 'kg/m2' and O.effective during \"Measurement Period\"
define \"Numerator\": exists \"Obese BMI\"
define \"Heavy\": exists ([Observation: \"Body weight\"] W
  where W.value as Quantity > 100000 'g' and W.effective during \"Measurement Period\")
define \"Gender\": Patient.gender
define \"City\": First(Patient.address).city
define \"Last Weight\": Last([Observation: \"Body weight\"] W
  where W.effective during \"Measurement Period\" sort by effective)
define \"Last Height\": Last([Observation: \"Body height\"] H
  where H.effective during \"Measurement Period\" sort by effective)
define \"Computed BMI\": (\"Last Weight\".value as Quantity).value
  / Power((\"Last Height\".value as Quantity).value / 100, 2)
define \"BMI Class\": if \"Computed BMI\" is null then 'unknown'
  else if \"Computed BMI\" >= 30 then 'obese'
  else if \"Computed BMI\" >= 25 then 'overweight'
  else 'normal'
define \"Encounters\": [Encounter] E where E.period during \"Measurement Period\"
";

/// The measurement period: 2019 in UTC, as the request gives it.
const START: &str = "2019-01-01T00:00:00Z";
const END: &str = "2019-12-31T23:59:59.999Z";

/// What the measures should find for one patient, computed from the raw JSON.
#[derive(Default)]
struct Expected {
    birth: (i64, i64, i64),
    gender: String,
    city: String,
    obese: bool,
    heavy: bool,
    /// (time, kg) and (time, cm) of the weights and heights in the period.
    weights: Vec<(i64, f64)>,
    heights: Vec<(i64, f64)>,
    encounters: u64,
}

impl Expected {
    fn age_at_start(&self) -> i64 {
        let (y, m, d) = self.birth;
        2019 - y - i64::from((m, d) > (1, 1))
    }

    fn bmi_class(&self) -> &'static str {
        let last = |v: &[(i64, f64)]| v.iter().max_by_key(|(t, _)| *t).map(|(_, x)| *x);
        match (last(&self.weights), last(&self.heights)) {
            (Some(w), Some(h)) => {
                let bmi = w / (h / 100.0).powi(2);
                if bmi >= 30.0 {
                    "obese"
                } else if bmi >= 25.0 {
                    "overweight"
                } else {
                    "normal"
                }
            }
            _ => "unknown",
        }
    }
}

fn expected(data: &Data) -> HashMap<String, Expected> {
    let (lo, hi) = (instant(START).0, instant(END).0);
    let mut out: HashMap<String, Expected> = HashMap::new();
    for p in data.of_type("Patient") {
        let b = p["birthDate"].as_str().unwrap();
        let n = |a: usize, z: usize| b[a..z].parse::<i64>().unwrap();
        out.insert(
            synthea_id(p).unwrap(),
            Expected {
                birth: (n(0, 4), n(5, 7), n(8, 10)),
                gender: p["gender"].as_str().unwrap().to_string(),
                city: p["address"][0]["city"].as_str().unwrap().to_string(),
                ..Expected::default()
            },
        );
    }
    let owner = |r: &Value| -> String {
        let p = data
            .resolve(&r["subject"])
            .unwrap_or_else(|| panic!("unresolved subject of {r}"));
        synthea_id(p).unwrap()
    };
    for o in data.of_type("Observation") {
        let Some(t) = o["effectiveDateTime"].as_str().map(instant) else {
            continue;
        };
        if t.0 < lo || t.0 > hi {
            continue;
        }
        let code = |c: &str| super::has_coding(&o["code"], LOINC, c);
        let q = &o["valueQuantity"];
        let value = q["value"].as_f64();
        let e = out.get_mut(&owner(o)).unwrap();
        if code("39156-5") && q["code"] == "kg/m2" && value.is_some_and(|v| v >= 30.0) {
            e.obese = true;
        }
        if code("29463-7") && q["code"] == "kg" {
            let v = value.unwrap();
            e.heavy |= v > 100.0;
            e.weights.push((t.0, v));
        }
        if code("8302-2") && q["code"] == "cm" {
            e.heights.push((t.0, value.unwrap()));
        }
    }
    for enc in data.of_type("Encounter") {
        let (a, b) = period(&enc["period"]);
        if a >= lo && b - 1 <= hi {
            out.get_mut(&owner(enc)).unwrap().encounters += 1;
        }
    }
    out
}

/// Count per stratum value of the patients `filter` keeps.
fn per(
    all: &HashMap<String, Expected>,
    key: impl Fn(&Expected) -> String,
    filter: impl Fn(&Expected) -> bool,
) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for e in all.values().filter(|e| filter(e)) {
        *m.entry(key(e)).or_default() += 1;
    }
    m
}

fn check_strata(group: &Value, i: usize, code: &str, want: &BTreeMap<String, u64>) {
    let got: BTreeMap<String, u64> = strata(group, i)
        .into_iter()
        .map(|(k, s)| (k, count(&s, code)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(&got, want, "stratifier {i}, {code}");
}

/// Stores the measure, evaluates it over 2019 and checks every count.
pub fn run(s: &Server, data: &Data) {
    let all = expected(data);
    put(
        s,
        "Library/research",
        &cql_library("research", "Research", "1.0.0", CQL),
        201,
    );
    // Measure.group has no scoring of its own in R4: one Measure per scoring.
    let measure = |id: &str, scoring_code: &str, basis: Option<&str>, group: Value| {
        let mut m = json!({"resourceType": "Measure", "id": id,
            "url": format!("http://example.org/Measure/{id}"), "status": "active",
            "library": ["http://example.org/Library/research"],
            "scoring": scoring(scoring_code), "group": [group]});
        if let Some(b) = basis {
            m["extension"] = json!([{"url": "http://hl7.org/fhir/us/cqfmeasures/StructureDefinition/cqfm-populationBasis", "valueCode": b}]);
        }
        put(s, &format!("Measure/{id}"), &m, 201);
    };
    measure(
        "research",
        "proportion",
        None,
        json!(
        {"id": "obesity",
         "population": [population("initial-population", "Initial Population"),
                        population("denominator", "Denominator"),
                        population("numerator", "Numerator")],
         "stratifier": [stratifier("gender", "Gender"), stratifier("city", "City"),
                        stratifier("bmi", "BMI Class")]}),
    );
    measure(
        "research-heavy",
        "cohort",
        None,
        json!(
        {"id": "heavy",
         "population": [population("initial-population", "Heavy")],
         "stratifier": [stratifier("gender", "Gender")]}),
    );
    measure(
        "research-encounters",
        "cohort",
        Some("Encounter"),
        json!(
        {"id": "encounters",
         "population": [population("initial-population", "Encounters")]}),
    );
    let evaluate = |id: &str| -> Value {
        let t = std::time::Instant::now();
        let (st, report) = json(
            s.get(&format!(
                "Measure/{id}/$evaluate-measure?periodStart={START}&periodEnd={END}"
            ))
            .send()
            .unwrap(),
        );
        assert_eq!(st, 200, "{report}");
        println!(
            "{:>8.1} ms  $evaluate-measure of {id} over {} patients",
            t.elapsed().as_secs_f64() * 1000.0,
            all.len()
        );
        report["group"][0].clone()
    };
    let groups = [
        evaluate("research"),
        evaluate("research-heavy"),
        evaluate("research-encounters"),
    ];
    let adult = |min: i64| move |e: &Expected| e.age_at_start() >= min;
    let n = |f: &dyn Fn(&Expected) -> bool| all.values().filter(|e| f(e)).count() as u64;

    // Proportion: adults; numerator: a BMI of 30 kg/m2 or more measured in 2019.
    let g = &groups[0];
    let ip = n(&adult(18));
    let num = n(&|e| adult(18)(e) && e.obese);
    assert!(
        ip > 0 && num > 0 && num < ip,
        "the data exercises the measure"
    );
    assert_eq!(count(g, "initial-population"), ip);
    assert_eq!(count(g, "denominator"), ip);
    assert_eq!(count(g, "numerator"), num);
    let score = g["measureScore"]["value"].as_f64().unwrap();
    assert!((score - num as f64 / ip as f64).abs() < 1e-9, "{g}");
    let by_gender = |f: &dyn Fn(&Expected) -> bool| per(&all, |e| e.gender.clone(), f);
    check_strata(g, 0, "initial-population", &by_gender(&adult(18)));
    check_strata(g, 0, "numerator", &by_gender(&|e| adult(18)(e) && e.obese));
    let cities = per(&all, |e| e.city.clone(), adult(18));
    assert!(cities.len() > 3, "{cities:?}");
    check_strata(g, 1, "initial-population", &cities);
    check_strata(
        g,
        1,
        "numerator",
        &per(&all, |e| e.city.clone(), |e| adult(18)(e) && e.obese),
    );
    let bmi = per(&all, |e| e.bmi_class().to_string(), adult(18));
    assert!(bmi.len() >= 3, "the data has several BMI classes: {bmi:?}");
    check_strata(g, 2, "initial-population", &bmi);

    // Cohort with a unit conversion: a weight above 100000 g (values are in kg).
    let heavy = n(&|e| e.heavy);
    assert!(heavy > 0, "someone weighs more than 100 kg");
    assert_eq!(count(&groups[1], "initial-population"), heavy);
    check_strata(
        &groups[1],
        0,
        "initial-population",
        &by_gender(&|e| e.heavy),
    );

    // Encounter basis: every encounter whose period lies within 2019, over all patients.
    let encounters: u64 = all.values().map(|e| e.encounters).sum();
    assert!(encounters > 0);
    assert_eq!(count(&groups[2], "initial-population"), encounters);

    // A library parameter in a POST: the minimum age.
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "periodStart", "valueDateTime": START},
        {"name": "periodEnd", "valueDateTime": END},
        {"name": "Minimum Age", "valueInteger": 65}]});
    let (st, stored) = json(
        s.post_json("Measure/research/$evaluate-measure", &params)
            .send()
            .unwrap(),
    );
    assert_eq!(st, 201, "{stored}");
    let g = &stored["group"][0];
    assert_eq!(count(g, "initial-population"), n(&adult(65)));
    assert_eq!(count(g, "numerator"), n(&|e| adult(65)(e) && e.obese));
}
