//! Query parsing and matching against extracted values, through the public API.

use flint_search_core::query::{Contained, ReferenceQuery, Summary, SystemMatch, Total};
use flint_search_core::{
    Clause, DateRange, Error, IndexValue, Modifier, NeedsDatabase, Prefix, QueryParser, QueryValue,
    Registry, Zone, parse_query,
};
use serde_json::{Value, json};
use std::sync::{Arc, OnceLock};

fn reg() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::r4)
}

/// 2020-01-01T00:00:00Z, the clock for `ap`.
fn now() -> i64 {
    DateRange::parse("2020-01-01T00:00:00.000Z", &Zone::utc())
        .unwrap()
        .start
}

fn parse(ty: &str, params: &[(&str, &str)]) -> Result<flint_search_core::Query, Error> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    QueryParser::new(reg()).with_now(now()).parse(ty, &params)
}

/// Whether `resource` matches the single clause `key=value`.
fn m(resource: &Value, key: &str, value: &str) -> Result<bool, NeedsDatabase> {
    let ty = resource["resourceType"].as_str().unwrap();
    let q = parse(ty, &[(key, value)]).unwrap().strict().unwrap();
    assert_eq!(q.clauses.len(), 1, "{key}={value}");
    let clause = &q.clauses[0];
    let Clause::Param(p) = clause else {
        return clause.matches(&[]);
    };
    let values: Vec<IndexValue> = reg()
        .extract(resource)
        .unwrap()
        .into_iter()
        .filter(|(x, _)| Arc::ptr_eq(x, &p.param))
        .map(|(_, v)| v)
        .collect();
    clause.matches(&values)
}

fn yes(resource: &Value, key: &str, value: &str) {
    assert_eq!(
        m(resource, key, value),
        Ok(true),
        "{key}={value} should match {resource}"
    );
}

fn no(resource: &Value, key: &str, value: &str) {
    assert_eq!(
        m(resource, key, value),
        Ok(false),
        "{key}={value} should not match {resource}"
    );
}

fn patient_born(d: &str) -> Value {
    json!({"resourceType": "Patient", "id": "p", "birthDate": d})
}

fn obs_at(dt: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectiveDateTime": dt})
}

fn obs_period(start: Option<&str>, end: Option<&str>) -> Value {
    let mut p = serde_json::Map::new();
    if let Some(s) = start {
        p.insert("start".into(), json!(s));
    }
    if let Some(e) = end {
        p.insert("end".into(), json!(e));
    }
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "effectivePeriod": p})
}

#[test]
fn date_eq_floating_against_floating() {
    yes(&patient_born("2000-12-31"), "birthdate", "eq2000");
    yes(&patient_born("2000-12-31"), "birthdate", "2000");
    yes(&patient_born("2000-01-01"), "birthdate", "2000");
    yes(&patient_born("2000-06"), "birthdate", "2000");
    yes(&patient_born("2000"), "birthdate", "2000");
    no(&patient_born("2001-01-01"), "birthdate", "eq2000");
    no(&patient_born("1999-12-31"), "birthdate", "eq2000");
    // A less precise target is not contained in a more precise query.
    no(&patient_born("2000"), "birthdate", "2000-06");
    yes(&patient_born("2000-06-15"), "birthdate", "2000-06-15");
    no(&patient_born("2000-06-15"), "birthdate", "2000-06-16");
}

#[test]
fn date_eq_zone_less_query_against_zoned_values() {
    // The query year 2000 without zone is the year 2000 in the configured zone (UTC here).
    yes(&obs_at("2000-12-31T23:59:59Z"), "date", "eq2000");
    yes(&obs_at("2000-12-31T23:59:59+01:00"), "date", "eq2000");
    no(&obs_at("2001-01-01T00:00:00Z"), "date", "eq2000");
    no(&obs_at("2000-12-31T23:00:00-01:00"), "date", "eq2000");
    yes(&obs_at("2000-01-01T00:00:00Z"), "date", "eq2000");
    no(&obs_at("1999-12-31T23:59:59.999Z"), "date", "eq2000");
    // Neighbouring months do not overlap: an instant is in exactly one of them.
    yes(&obs_at("2000-01-31T23:59:59Z"), "date", "2000-01");
    no(&obs_at("2000-01-31T23:59:59Z"), "date", "2000-02");
    no(&obs_at("2000-02-01T00:00:00Z"), "date", "2000-01");
    yes(&obs_at("2000-02-01T00:00:00Z"), "date", "2000-02");
    // `sa`/`eb` around the year find what the year finds.
    yes(&obs_at("2000-01-01T00:00:00Z"), "date", "sa1999");
    no(&obs_at("1999-12-31T23:59:59Z"), "date", "sa1999");
    yes(&obs_at("2000-12-31T23:59:59Z"), "date", "eb2001");
    no(&obs_at("2001-01-01T00:00:00Z"), "date", "eb2001");
    // A zoned query against a zoned value compares instants.
    yes(
        &obs_at("2000-12-31T23:59:59Z"),
        "date",
        "eq2000-12-31T23:59:59Z",
    );
    yes(
        &obs_at("2000-12-31T23:59:59.500Z"),
        "date",
        "eq2000-12-31T23:59:59Z",
    );
    yes(
        &obs_at("2001-01-01T00:59:59+01:00"),
        "date",
        "eq2000-12-31T23:59:59Z",
    );
    no(
        &obs_at("2001-01-01T00:00:00Z"),
        "date",
        "eq2000-12-31T23:59:59Z",
    );
    // `+` decoded to a space by a form decoder is accepted.
    yes(
        &obs_at("2000-12-31T23:59:59Z"),
        "date",
        "eq2001-01-01T00:59:59 01:00",
    );
    // A zoned query against a date-only value: the day is a UTC day, 24 hours, which no
    // hour contains but an hour within it approximates.
    no(
        &patient_born("2000-01-01"),
        "birthdate",
        "eq2000-01-01T10:00:00Z",
    );
    yes(
        &patient_born("2000-01-01"),
        "birthdate",
        "ap2000-01-01T10:00:00Z",
    );
    yes(
        &patient_born("2000-01-01"),
        "birthdate",
        "sa1999-12-31T23:59:59Z",
    );
    no(
        &patient_born("2000-01-01"),
        "birthdate",
        "sa2000-01-01T00:00:00Z",
    );
    yes(
        &patient_born("2000-01-01"),
        "birthdate",
        "gt1999-12-31T23:59:59Z",
    );
    no(
        &patient_born("2000-01-01"),
        "birthdate",
        "gt2000-01-01T23:59:59Z",
    );
}

#[test]
fn zone_less_values_and_queries_are_read_in_the_configured_zone() {
    let mut r = Registry::r4();
    r.set_zone(Zone::parse("Pacific/Auckland").unwrap());
    let check = |resource: &Value, key: &str, value: &str| -> bool {
        let q = QueryParser::new(&r)
            .with_now(now())
            .parse(
                resource["resourceType"].as_str().unwrap(),
                &[(key.to_string(), value.to_string())],
            )
            .unwrap()
            .strict()
            .unwrap();
        let Clause::Param(p) = &q.clauses[0] else {
            panic!()
        };
        let values: Vec<IndexValue> = r
            .extract(resource)
            .unwrap()
            .into_iter()
            .filter(|(x, _)| Arc::ptr_eq(x, &p.param))
            .map(|(_, v)| v)
            .collect();
        q.clauses[0].matches(&values).unwrap()
    };
    // Auckland is UTC+13 on 1 January 2000 (daylight saving): the year began at
    // 1999-12-31T11:00Z there.
    assert!(check(&obs_at("1999-12-31T11:00:00Z"), "date", "2000"));
    assert!(!check(&obs_at("1999-12-31T10:59:59Z"), "date", "2000"));
    assert!(check(&obs_at("2000-12-31T10:59:59Z"), "date", "2000"));
    assert!(!check(&obs_at("2000-12-31T11:00:00Z"), "date", "2000"));
    // A zoned query is an instant whatever the zone.
    assert!(check(
        &obs_at("2000-06-01T00:00:00Z"),
        "date",
        "2000-06-01T00:00:00Z"
    ));
    // A zone-less stored value is read in the zone too: both sides agree on the wall clock.
    assert!(check(&obs_at("2000-12-31T23:30:00"), "date", "2000"));
    assert!(!check(&obs_at("2001-01-01T00:00:00"), "date", "2000"));
    assert!(check(&patient_born("2000-01-01"), "birthdate", "2000-01"));
    assert!(check(
        &patient_born("2000-01-01"),
        "birthdate",
        "ge1999-12-31T11:00:00Z"
    ));
    assert!(!check(
        &patient_born("2000-01-01"),
        "birthdate",
        "lt1999-12-31T11:00:00Z"
    ));
    assert!(check(
        &patient_born("2000-01-01"),
        "birthdate",
        "lt1999-12-31T11:00:01Z"
    ));
    assert_ne!(r.fingerprint(), Registry::r4().fingerprint());
}

#[test]
fn date_ordering_prefixes_at_edges() {
    yes(&patient_born("2001-01-01"), "birthdate", "gt2000");
    no(&patient_born("2000-12-31"), "birthdate", "gt2000");
    yes(&patient_born("2000-01-01"), "birthdate", "ge2000");
    yes(&patient_born("2000-12-31"), "birthdate", "ge2000");
    no(&patient_born("1999-12-31"), "birthdate", "ge2000");
    yes(&patient_born("1999-12-31"), "birthdate", "lt2000");
    no(&patient_born("2000-01-01"), "birthdate", "lt2000");
    yes(&patient_born("2000-12-31"), "birthdate", "le2000");
    no(&patient_born("2001-01-01"), "birthdate", "le2000");
    yes(&patient_born("2000-06-01"), "birthdate", "ne2001");
    no(&patient_born("2000-06-01"), "birthdate", "ne2000");
    // Zoned instants one millisecond apart.
    yes(
        &obs_at("2000-01-01T00:00:00.001Z"),
        "date",
        "gt2000-01-01T00:00:00.000Z",
    );
    no(
        &obs_at("2000-01-01T00:00:00.000Z"),
        "date",
        "gt2000-01-01T00:00:00.000Z",
    );
    yes(
        &obs_at("2000-01-01T00:00:00.000Z"),
        "date",
        "ge2000-01-01T00:00:00.000Z",
    );
    // A second-precision query covers the whole second.
    no(
        &obs_at("2000-01-01T00:00:00.999Z"),
        "date",
        "gt2000-01-01T00:00:00Z",
    );
    yes(
        &obs_at("2000-01-01T00:00:01Z"),
        "date",
        "gt2000-01-01T00:00:00Z",
    );
}

#[test]
fn date_periods_sa_eb_and_overlaps() {
    let overlapping = obs_period(Some("2000-06-01"), Some("2001-06-01"));
    no(&overlapping, "date", "eq2000");
    yes(&overlapping, "date", "ne2000");
    yes(&overlapping, "date", "gt2000");
    yes(&overlapping, "date", "ge2000");
    no(&overlapping, "date", "lt2000");
    no(&overlapping, "date", "sa2000");
    no(&overlapping, "date", "eb2001");
    yes(&overlapping, "date", "ap2001");
    let after = obs_period(Some("2001-01-01"), Some("2001-02-01"));
    yes(&after, "date", "sa2000");
    no(&after, "date", "eb2000");
    let before = obs_period(Some("1999-01-01"), Some("1999-12-31"));
    yes(&before, "date", "eb2000");
    no(&before, "date", "sa2000");
    let touching = obs_period(Some("1999-01-01"), Some("2000-01-01"));
    no(&touching, "date", "eb2000");
    // ge/le per R4: above-overlap or containment; a period straddling the start is neither.
    let straddle = obs_period(Some("1999-06-01"), Some("2000-06-01"));
    no(&straddle, "date", "ge2000");
    yes(&straddle, "date", "le2000");
    let open = obs_period(Some("2000-01-01T00:00:00Z"), None);
    yes(&open, "date", "gt2010");
    no(&open, "date", "lt1990");
    no(&open, "date", "eq2000");
    let open_start = obs_period(None, Some("2000-01-01T00:00:00Z"));
    yes(&open_start, "date", "lt1990");
}

#[test]
fn date_ap_uses_ten_percent_of_distance_from_now() {
    // Now is 2020: ap2000 widens by about two years on each side.
    yes(&patient_born("2001-06-01"), "birthdate", "ap2000");
    yes(&patient_born("1998-06-01"), "birthdate", "ap2000");
    no(&patient_born("2003-01-01"), "birthdate", "ap2000");
    no(&patient_born("1997-01-01"), "birthdate", "ap2000");
}

#[test]
fn missing() {
    let with = patient_born("2000-01-01");
    let without = json!({"resourceType": "Patient", "id": "p"});
    yes(&without, "birthdate:missing", "true");
    no(&with, "birthdate:missing", "true");
    yes(&with, "birthdate:missing", "false");
    no(&without, "birthdate:missing", "false");
}

fn risk(p: Value) -> Value {
    json!({"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p"}, "prediction": [p]})
}

fn risk_decimal(text: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"resourceType":"RiskAssessment","status":"final","subject":{{"reference":"Patient/p"}},"prediction":[{{"probabilityDecimal":{text}}}]}}"#
    ))
    .unwrap()
}

#[test]
fn numbers() {
    let r = risk_decimal("0.25");
    yes(&r, "probability", "0.25");
    yes(&r, "probability", "eq0.25");
    yes(&r, "probability", "0.3"); // [0.25, 0.35)
    no(&r, "probability", "0.2"); // [0.15, 0.25)
    yes(&r, "probability", "0.250");
    no(&r, "probability", "0.251");
    yes(&r, "probability", "ne0.251");
    no(&r, "probability", "gt0.25");
    yes(&r, "probability", "ge0.25");
    no(&r, "probability", "lt0.25");
    yes(&r, "probability", "le0.25");
    yes(&r, "probability", "gt0.24");
    yes(&r, "probability", "sa0.2");
    no(&r, "probability", "sa0.25");
    yes(&r, "probability", "eb0.4");
    no(&r, "probability", "eb0.3");
    yes(&r, "probability", "ap0.27");
    no(&r, "probability", "ap0.31");
    // 100 is [99.5, 100.5); 1e2 is [95, 105).
    let h = risk_decimal("100.4");
    yes(&h, "probability", "100");
    no(&h, "probability", "100.0");
    let h = risk_decimal("103");
    yes(&h, "probability", "1e2");
    no(&h, "probability", "100");
    // Ranges.
    let range = risk(json!({"probabilityRange": {"low": {"value": 1}, "high": {"value": 5}}}));
    no(&range, "probability", "3");
    yes(&range, "probability", "gt4");
    yes(&range, "probability", "lt2");
    no(&range, "probability", "gt5");
    no(&range, "probability", "sa5");
    yes(&range, "probability", "sa0");
    yes(&range, "probability", "ap3");
}

fn obs_quantity(value: &str, system: &str, code: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"29463-7","display":"Body Weight"}}]}},"valueQuantity":{{"value":{value},"system":"{system}","code":"{code}","unit":"{code}"}}}}"#
    ))
    .unwrap()
}

#[test]
fn quantities_with_ucum_conversion() {
    let ucum = "http://unitsofmeasure.org";
    let o = obs_quantity("5.4", ucum, "mg");
    yes(&o, "value-quantity", "5.4|http://unitsofmeasure.org|mg");
    yes(&o, "value-quantity", "0.0054|http://unitsofmeasure.org|g");
    yes(&o, "value-quantity", "5400|http://unitsofmeasure.org|ug");
    yes(&o, "value-quantity", "5400.0|http://unitsofmeasure.org|ug");
    yes(&o, "value-quantity", "0.005|http://unitsofmeasure.org|g"); // [0.0045, 0.0055)
    no(&o, "value-quantity", "0.0050|http://unitsofmeasure.org|g");
    no(&o, "value-quantity", "5.4|http://unitsofmeasure.org|mL");
    yes(&o, "value-quantity", "5.4||mg");
    yes(&o, "value-quantity", "5.4");
    no(&o, "value-quantity", "5.4||g");
    no(&o, "value-quantity", "5.4|http://other|mg");
    yes(&o, "value-quantity", "gt5|http://unitsofmeasure.org|mg");
    yes(&o, "value-quantity", "gt0.005|http://unitsofmeasure.org|g");
    no(&o, "value-quantity", "lt0.005|http://unitsofmeasure.org|g");
    yes(&o, "value-quantity", "lt1|http://unitsofmeasure.org|g");
    yes(&o, "value-quantity", "ap5|http://unitsofmeasure.org|mg");
    // Grams against milligrams, the other way round.
    let g = obs_quantity("1", ucum, "g");
    yes(&g, "value-quantity", "1000|http://unitsofmeasure.org|mg");
    yes(&g, "value-quantity", "ge999|http://unitsofmeasure.org|mg");
    no(&g, "value-quantity", "gt1000|http://unitsofmeasure.org|mg");
    // Non-UCUM units compare by system and code.
    let tabs = obs_quantity("2", "http://example.org/units", "tab");
    yes(&tabs, "value-quantity", "2|http://example.org/units|tab");
    yes(&tabs, "value-quantity", "2||tab");
    no(&tabs, "value-quantity", "2|http://unitsofmeasure.org|tab");
    // Offset units (Cel) compare by code only.
    let cel = obs_quantity("37", ucum, "Cel");
    yes(&cel, "value-quantity", "37|http://unitsofmeasure.org|Cel");
    no(&cel, "value-quantity", "310|http://unitsofmeasure.org|K");
}

fn full_patient() -> Value {
    json!({
        "resourceType": "Patient", "id": "p1",
        "meta": {"profile": ["http://example.org/StructureDefinition/p|1.0"]},
        "identifier": [{"system": "urn:oid:1.2", "value": "123",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}], "text": "Medical record number"}}],
        "name": [{"family": "Müller-Lüdenscheidt", "given": ["Peter", "James"]}],
        "gender": "male",
        "telecom": [{"system": "phone", "value": "555-1234"}],
        "generalPractitioner": [{"reference": "Practitioner/d1"}, {"identifier": {"system": "http://npi", "value": "42"}}],
        "managingOrganization": {"reference": "http://other.org/fhir/Organization/o1"}
    })
}

#[test]
fn strings() {
    let p = full_patient();
    yes(&p, "name", "mül");
    yes(&p, "name", "MULLER");
    yes(&p, "name", "muller lud");
    yes(&p, "family", "Müller-Lüdenscheidt");
    no(&p, "name", "ller");
    yes(&p, "name:contains", "ULLER");
    yes(&p, "name:contains", "lüden");
    yes(&p, "name:exact", "Müller-Lüdenscheidt");
    no(&p, "name:exact", "muller-ludenscheidt");
    no(&p, "name:exact", "Müller");
    yes(&p, "given", "pet");
    yes(&p, "given", "xyz,jam");
    no(&p, "given", "xyz");
    yes(&p, "name", r"Müller\,Lüdenscheidt");
}

#[test]
fn tokens() {
    let p = full_patient();
    yes(&p, "gender", "male");
    no(&p, "gender", "MALE");
    yes(&p, "gender", "female,male");
    yes(&p, "gender:not", "female");
    no(&p, "gender:not", "male");
    no(&p, "gender:not", "female,male");
    yes(&p, "identifier", "urn:oid:1.2|123");
    yes(&p, "identifier", "123");
    no(&p, "identifier", "|123");
    yes(&p, "identifier", "urn:oid:1.2|");
    no(&p, "identifier", "urn:oid:9|");
    yes(
        &p,
        "identifier:of-type",
        "http://terminology.hl7.org/CodeSystem/v2-0203|MR|123",
    );
    no(
        &p,
        "identifier:of-type",
        "http://terminology.hl7.org/CodeSystem/v2-0203|MR|124",
    );
    no(
        &p,
        "identifier:of-type",
        "http://terminology.hl7.org/CodeSystem/v2-0203|SS|123",
    );
    yes(&p, "identifier:text", "medical rec");
    yes(&p, "identifier:text", "number");
    yes(&p, "phone", "555-1234");
    yes(&p, "phone", "phone|555-1234");
    yes(&p, "_id", "p1");
    no(&p, "_id", "p2");
    let o = obs_quantity("1", "http://unitsofmeasure.org", "kg");
    yes(&o, "code", "http://loinc.org|29463-7");
    yes(&o, "code", "29463-7");
    no(&o, "code", "|29463-7");
    yes(&o, "code", "http://loinc.org|");
    no(&o, "code", "http://snomed.info/sct|29463-7");
    yes(&o, "code:text", "weight");
    yes(&o, "code:text", "BODY");
    no(&o, "code:text", "eight");
    yes(&o, "code:not", "http://loinc.org|1234-5");
    assert!(m(&o, "code:in", "http://example.org/ValueSet/vs").is_err());
    assert!(m(&o, "code:not-in", "http://example.org/ValueSet/vs").is_err());
    assert!(m(&o, "code:below", "http://snomed.info/sct|123").is_err());
    assert!(m(&o, "code:above", "http://snomed.info/sct|123").is_err());
    // Escaped separators are part of the code.
    let c = json!({"resourceType": "Patient", "id": "p", "identifier": [{"system": "s", "value": "a|b,c"}]});
    yes(&c, "identifier", r"s|a\|b\,c");
    no(&c, "identifier", r"s|a");
}

#[test]
fn references() {
    let p = full_patient();
    yes(&p, "general-practitioner", "Practitioner/d1");
    yes(&p, "general-practitioner", "d1");
    yes(&p, "general-practitioner:Practitioner", "d1");
    no(&p, "general-practitioner:Organization", "d1");
    no(&p, "general-practitioner", "Practitioner/d2");
    yes(&p, "general-practitioner:identifier", "http://npi|42");
    no(&p, "general-practitioner:identifier", "http://npi|43");
    yes(&p, "organization", "http://other.org/fhir/Organization/o1");
    no(&p, "organization", "Organization/o1");
    let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Patient/p1/_history/3"}});
    yes(&o, "subject", "Patient/p1");
    yes(&o, "subject", "p1");
    yes(&o, "subject:Patient", "p1");
    no(&o, "subject:Group", "p1");
    yes(&o, "subject", "Patient/p1/_history/3");
    no(&o, "subject", "Patient/p1/_history/2");
    yes(&o, "patient", "p1");
    let unversioned = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "subject": {"reference": "Patient/p1"}});
    no(&unversioned, "subject", "Patient/p1/_history/3");
    let qr = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "http://q.org/Questionnaire/q1|2.0"});
    yes(&qr, "questionnaire", "http://q.org/Questionnaire/q1");
    yes(&qr, "questionnaire", "http://q.org/Questionnaire/q1|2.0");
    no(&qr, "questionnaire", "http://q.org/Questionnaire/q1|1.0");
    assert!(m(&o, "subject:below", "Patient/p1").is_err());
    // A type outside the declared targets is searchable (invalid data exists).
    let odd = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "performer": [{"reference": "Encounter/e1"}]});
    yes(&odd, "performer", "Encounter/e1");
}

#[test]
fn uris() {
    let p = full_patient();
    yes(&p, "_profile", "http://example.org/StructureDefinition/p");
    yes(
        &p,
        "_profile",
        "http://example.org/StructureDefinition/p|1.0",
    );
    no(
        &p,
        "_profile",
        "http://example.org/StructureDefinition/p|2.0",
    );
    let vs = json!({"resourceType": "ValueSet", "status": "active", "url": "http://a.org/fhir/ValueSet/x"});
    yes(&vs, "url", "http://a.org/fhir/ValueSet/x");
    no(&vs, "url", "http://a.org/fhir/ValueSet");
    yes(&vs, "url:below", "http://a.org/fhir");
    no(&vs, "url:below", "http://b.org");
    yes(&vs, "url:above", "http://a.org/fhir/ValueSet/x/y");
    no(&vs, "url:above", "http://a.org/fhir");
}

#[test]
fn composites() {
    let o = obs_quantity("72.5", "http://unitsofmeasure.org", "kg");
    yes(
        &o,
        "code-value-quantity",
        "http://loinc.org|29463-7$gt70|http://unitsofmeasure.org|kg",
    );
    yes(&o, "code-value-quantity", "29463-7$72.5");
    yes(
        &o,
        "code-value-quantity",
        "http://loinc.org|29463-7$gt70000|http://unitsofmeasure.org|g",
    );
    no(
        &o,
        "code-value-quantity",
        "http://loinc.org|29463-7$lt70|http://unitsofmeasure.org|kg",
    );
    no(
        &o,
        "code-value-quantity",
        "http://loinc.org|1234-5$gt70|http://unitsofmeasure.org|kg",
    );
    let bp = json!({"resourceType": "Observation", "status": "final", "code": {"text": "bp"}, "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]});
    yes(
        &bp,
        "component-code-value-quantity",
        "http://loinc.org|8480-6$gt100",
    );
    // The tuple keeps component values together: 8462-4 is 80, not 120.
    no(
        &bp,
        "component-code-value-quantity",
        "http://loinc.org|8462-4$gt100",
    );
    yes(
        &bp,
        "component-code-value-quantity",
        "http://loinc.org|8462-4$lt90,http://loinc.org|0000$1",
    );
}

#[test]
fn near() {
    let l =
        json!({"resourceType": "Location", "position": {"latitude": 52.52, "longitude": 13.405}});
    yes(&l, "near", "52.52|13.40|1|km");
    yes(&l, "near", "52.52|13.405");
    no(&l, "near", "48.8566|2.3522|100|km");
    yes(&l, "near", "48.8566|2.3522|1000|km");
    yes(&l, "near", "48.8566|2.3522|600|mi");
    no(&l, "near", "52.53|13.405|500|m");
}

fn err(ty: &str, key: &str, value: &str) -> Error {
    parse(ty, &[(key, value)])
        .and_then(|q| q.strict())
        .expect_err(&format!("{key}={value} should fail"))
}

#[test]
fn parse_errors() {
    assert!(matches!(
        err("Patient", "foo", "x"),
        Error::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "name:foo", "x"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        err("Patient", "gender:exact", "x"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate:text", "x"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        err("Patient", "_text", "x"),
        Error::Unsupported { .. }
    ));
    assert!(matches!(
        err("Patient", "_content", "x"),
        Error::Unsupported { .. }
    ));
    // Contained resources are not searchable yet: asking for them is an error, never the
    // containers' own matches.
    for (k, v) in [
        ("_contained", "true"),
        ("_contained", "both"),
        ("_containedType", "contained"),
    ] {
        assert!(
            matches!(err("Patient", k, v), Error::InvalidValue { .. }),
            "{k}={v}"
        );
    }
    // `_filter` is supported: a malformed filter is a malformed value.
    assert!(matches!(
        err("Patient", "_filter", "x"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate", "notadate"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate", "2000-13"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate", "xx2000"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "birthdate:missing", "maybe"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_count", "abc"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_count", "-1"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_summary", "maybe"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_total", "all"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "identifier", "|"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "identifier", "a|b|c"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "identifier:of-type", "a|b"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "value-quantity", "5|a"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "value-quantity", "five"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "code-value-quantity", "a"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject", "Foo/1"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject", "not an id!"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Practitioner", "1"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        err("Observation", "subject:Foo.name", "x"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        err("Observation", "subject.nope", "x"),
        Error::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Observation", "code.name", "x"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation", "x"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Foo:subject:code", "x"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation:code:code", "x"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_has:Observation:subject:nope", "x"),
        Error::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Location", "near", "1"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Location", "near", "100|0"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Location", "near", "1|1|5|kg"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_sort", "nope"),
        Error::UnknownParameter { .. }
    ));
    assert!(matches!(
        err("Patient", "_include", "Patient"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include", "Patient:name"),
        Error::InvalidValue { .. }
    ));
    assert!(matches!(
        err("Patient", "_include:foo", "*"),
        Error::UnknownModifier { .. }
    ));
    assert!(matches!(
        parse("Nope", &[("a", "b")]).unwrap_err(),
        Error::UnknownResourceType(_)
    ));
    // Lenient: ignorable problems are collected, the rest of the query stands.
    let q = parse(
        "Patient",
        &[("foo", "x"), ("name:foo", "y"), ("gender", "male")],
    )
    .unwrap();
    assert_eq!(q.clauses.len(), 1);
    assert_eq!(q.ignored.len(), 2);
    assert!(q.ignored.iter().all(Error::is_ignorable));
    // Empty values are ignored; so are _format and _pretty.
    let q = parse(
        "Patient",
        &[("name", ""), ("_format", "json"), ("_pretty", "true")],
    )
    .unwrap();
    assert!(q.clauses.is_empty() && q.ignored.is_empty());
    // Garbage never panics.
    for v in [
        "\\", "\\\\", ",", ",,", "$", "|||", "gt", "ap", "1e99999", "é|ü", "\u{0}",
    ] {
        for k in [
            "name",
            "identifier",
            "birthdate",
            "value-quantity",
            "code-value-quantity",
            "subject",
            "_id",
        ] {
            let _ = parse("Observation", &[(k, v)]);
        }
        let _ = parse("Location", &[("near", v)]);
        let _ = parse("RiskAssessment", &[("probability", v)]);
    }
}

#[test]
fn or_and_and_escaping() {
    let q = parse("Patient", &[("gender", "male,female"), ("gender", "other")]).unwrap();
    assert_eq!(q.clauses.len(), 2);
    let Clause::Param(p) = &q.clauses[0] else {
        panic!()
    };
    assert_eq!(p.values.len(), 2);
    let q = parse("Patient", &[("name", r"a\,b,c")]).unwrap();
    let Clause::Param(p) = &q.clauses[0] else {
        panic!()
    };
    assert_eq!(p.values.len(), 2);
    assert!(matches!(&p.values[0], QueryValue::String { exact, .. } if exact == "a,b"));
    let q = parse("Patient", &[("identifier", r"http://s\|x|a\\b")]).unwrap();
    let Clause::Param(p) = &q.clauses[0] else {
        panic!()
    };
    let QueryValue::Token(t) = &p.values[0] else {
        panic!()
    };
    assert_eq!(t.system, SystemMatch::Is("http://s|x".into()));
    assert_eq!(t.code.as_deref(), Some(r"a\b"));
}

#[test]
fn prefixes_parse() {
    for (s, p) in [
        ("eq2000", Prefix::Eq),
        ("ne2000", Prefix::Ne),
        ("gt2000", Prefix::Gt),
        ("lt2000", Prefix::Lt),
        ("ge2000", Prefix::Ge),
        ("le2000", Prefix::Le),
        ("sa2000", Prefix::Sa),
        ("eb2000", Prefix::Eb),
        ("ap2000", Prefix::Ap),
        ("2000", Prefix::Eq),
    ] {
        let q = parse("Patient", &[("birthdate", s)]).unwrap();
        let Clause::Param(c) = &q.clauses[0] else {
            panic!()
        };
        let QueryValue::Date(d) = &c.values[0] else {
            panic!()
        };
        assert_eq!(d.prefix, p, "{s}");
    }
    let q = parse(
        "Observation",
        &[("value-quantity", "le5.4|http://unitsofmeasure.org|mg")],
    )
    .unwrap();
    let Clause::Param(c) = &q.clauses[0] else {
        panic!()
    };
    let QueryValue::Quantity(v) = &c.values[0] else {
        panic!()
    };
    assert_eq!(v.number.prefix, Prefix::Le);
    assert_eq!(v.canonical.as_ref().unwrap().1, "g");
    // A token starting with letters of a prefix is not a prefix.
    let q = parse("Patient", &[("gender", "ge")]).unwrap();
    let Clause::Param(c) = &q.clauses[0] else {
        panic!()
    };
    assert!(matches!(&c.values[0], QueryValue::Token(t) if t.code.as_deref() == Some("ge")));
}

#[test]
fn chains_and_has() {
    let q = parse("Observation", &[("subject:Patient.name", "x")]).unwrap();
    let Clause::Chain { param, targets } = &q.clauses[0] else {
        panic!()
    };
    assert_eq!(param.code, "subject");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].0, "Patient");
    assert!(matches!(&*targets[0].1, Clause::Param(p) if p.param.code == "name"));
    assert!(q.clauses[0].matches(&[]).is_err());
    // Without a type: every target type that has the parameter.
    let q = parse("Observation", &[("subject.name", "x")]).unwrap();
    let Clause::Chain { targets, .. } = &q.clauses[0] else {
        panic!()
    };
    let types: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        types.contains(&"Patient") && types.contains(&"Location"),
        "{types:?}"
    );
    // Several hops, with modifiers at the end.
    let q = parse(
        "Procedure",
        &[(
            "reason-reference:Condition.subject:Patient.birthdate",
            "2020",
        )],
    )
    .unwrap();
    let Clause::Chain { targets, .. } = &q.clauses[0] else {
        panic!()
    };
    let Clause::Chain { targets: t2, .. } = &*targets[0].1 else {
        panic!()
    };
    assert_eq!(t2[0].0, "Patient");
    assert!(matches!(&*t2[0].1, Clause::Param(p) if p.param.code == "birthdate"));
    let q = parse("Observation", &[("patient.name:exact", "Peter")]).unwrap();
    let Clause::Chain { targets, .. } = &q.clauses[0] else {
        panic!()
    };
    assert!(matches!(&*targets[0].1, Clause::Param(p) if p.modifier == Some(Modifier::Exact)));
    // _has, nested.
    let q = parse("Patient", &[("_has:Observation:patient:code", "1234-5")]).unwrap();
    let Clause::Has {
        source_type,
        reference,
        inner,
    } = &q.clauses[0]
    else {
        panic!()
    };
    assert_eq!(
        (source_type.as_str(), reference.code.as_str()),
        ("Observation", "patient")
    );
    assert!(matches!(&**inner, Clause::Param(p) if p.param.code == "code"));
    assert!(q.clauses[0].matches(&[]).is_err());
    let q = parse(
        "Patient",
        &[(
            "_has:Observation:patient:_has:Provenance:target:agent",
            "Practitioner/1",
        )],
    )
    .unwrap();
    let Clause::Has { inner, .. } = &q.clauses[0] else {
        panic!()
    };
    assert!(matches!(&**inner, Clause::Has { source_type, .. } if source_type == "Provenance"));
    // A chain inside _has.
    let q = parse(
        "Patient",
        &[("_has:Observation:patient:performer:Practitioner.name", "x")],
    )
    .unwrap();
    let Clause::Has { inner, .. } = &q.clauses[0] else {
        panic!()
    };
    assert!(matches!(&**inner, Clause::Chain { .. }));
    let q = parse("Patient", &[("_list", "l1,l2")]).unwrap();
    assert!(matches!(&q.clauses[0], Clause::List(ids) if ids.len() == 2));
    // Reference values resolve a bare id to the single target type.
    let q = parse("Patient", &[("general-practitioner:Practitioner", "d1")]).unwrap();
    let Clause::Param(p) = &q.clauses[0] else {
        panic!()
    };
    assert!(
        matches!(&p.values[0], QueryValue::Reference(ReferenceQuery::Local { type_name: Some(t), .. }) if t == "Practitioner")
    );
}

#[test]
fn result_parameters() {
    let q = parse(
        "Observation",
        &[
            ("_sort", "-date,_id,status"),
            ("_count", "10"),
            (
                "_include",
                "Observation:subject:Patient,Observation:performer",
            ),
            ("_include:iterate", "Patient:general-practitioner"),
            ("_include", "*"),
            ("_revinclude", "Provenance:target"),
            ("_revinclude:iterate", "Provenance:*"),
            ("_summary", "count"),
            ("_elements", "id,status"),
            ("_total", "accurate"),
            ("_contained", "false"),
            ("code", "x"),
        ],
    )
    .unwrap()
    .strict()
    .unwrap();
    let r = &q.result;
    assert_eq!(q.clauses.len(), 1);
    let sort: Vec<(&str, bool)> = r
        .sort
        .iter()
        .map(|s| (s.param.code.as_str(), s.descending))
        .collect();
    assert_eq!(
        sort,
        vec![("date", true), ("_id", false), ("status", false)]
    );
    assert_eq!(r.count, Some(10));
    assert_eq!(r.include.len(), 4);
    assert_eq!(r.include[0].target_type.as_deref(), Some("Patient"));
    assert!(!r.include[0].iterate && r.include[2].iterate);
    assert_eq!(r.include[2].source_type, "Patient");
    assert!(r.include[3].param.is_none());
    assert_eq!(r.revinclude.len(), 2);
    assert!(r.revinclude[1].param.is_none() && r.revinclude[1].iterate);
    assert_eq!(r.summary, Some(Summary::Count));
    assert_eq!(r.elements, vec!["id", "status"]);
    assert_eq!(r.total, Some(Total::Accurate));
    assert_eq!(r.contained, Some(Contained::False));
    assert!(parse_query(reg(), "Patient", &[("_sort".into(), "_lastUpdated".into())]).is_ok());
}
