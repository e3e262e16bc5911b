//! FHIR R4 search over HTTP against the real binary. Every expectation below is derived from the
//! FHIR R4 search specification (hl7.org/fhir/R4/search.html, and http.html for the conditional
//! interactions) applied to small hand-made resources; the comment next to each group of
//! assertions names the rule it checks.

mod common;

use common::{
    Server, VARIANTS, entries_with_mode, json, link, outcome, search_all_pages, search_page,
    search_url,
};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::sleep;
use std::time::Duration;

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

thread_local! {
    /// Failed checks of the running test (each test runs on its own thread): [`expect`] records
    /// a mismatch and goes on, so one run reports every failing query of a test.
    static FAILURES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn fail(msg: String) {
    FAILURES.with(|f| f.borrow_mut().push(msg));
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Runs `test` on a fresh server of each variant, then fails with every recorded failure.
fn run_on(variants: &[&'static str], test: impl Fn(&Server)) {
    for v in variants {
        let s = Server::start(v, &[]);
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| test(&s))) {
            fail(format!("[{v}] aborted: {}", panic_message(p)));
        }
    }
    let failures = FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()));
    assert!(
        failures.is_empty(),
        "{} failed check(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn each_variant(test: impl Fn(&Server)) {
    run_on(&VARIANTS, test);
}

fn in_memory(test: impl Fn(&Server)) {
    run_on(&["in-memory"], test);
}

/// `PUT [type]/[id]` of `r` (which carries its id); returns the stored resource.
fn put(s: &Server, r: Value) -> Value {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (st, v) = json(s.put_json(&path, &r).send().unwrap());
    assert!(st == 200 || st == 201, "PUT {path}: {st} {v}");
    v
}

/// `POST [type]` of `r`; returns the new id.
fn create(s: &Server, r: Value) -> String {
    let t = r["resourceType"].as_str().unwrap().to_string();
    let (st, v) = json(s.post_json(&t, &r).send().unwrap());
    assert_eq!(st, 201, "POST {t}: {v}");
    v["id"].as_str().unwrap().to_string()
}

/// The matches of a search over all its pages, as `Type/id` in result order. Checks that no
/// match appears twice and that `Bundle.total` (always given unless `_total=none`) counts the
/// matches only, never the included resources (search.html#total).
fn matches(s: &Server, query: &str) -> Vec<String> {
    let pages = search_all_pages(s, query);
    let mut all = Vec::new();
    for p in &pages {
        all.extend(entries_with_mode(p, "match"));
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "[{}] {query}: a match appears twice: {all:?}",
        s.storage
    );
    let total = pages[0]["total"].as_u64();
    assert_eq!(
        total,
        Some(all.len() as u64),
        "[{}] {query}: Bundle.total",
        s.storage
    );
    all
}

fn strip_type(typed: &str) -> String {
    typed
        .split_once('/')
        .map_or(typed, |(_, id)| id)
        .to_string()
}

/// The ids (without type) of the matches, sorted.
fn ids(s: &Server, query: &str) -> Vec<String> {
    let mut v: Vec<String> = matches(s, query).iter().map(|t| strip_type(t)).collect();
    v.sort();
    v
}

/// The ids of the matches in result order.
fn ordered_ids(s: &Server, query: &str) -> Vec<String> {
    matches(s, query).iter().map(|t| strip_type(t)).collect()
}

/// Checks that `query` matches exactly the resources `expected` (ids, any order); a mismatch
/// or an error response is recorded as a failure and the test goes on.
fn expect(s: &Server, query: &str, expected: &[&str]) {
    expect_ignoring(s, query, expected, &[]);
}

/// Like [`expect`] but ignores the resources `ignored` (where the specification leaves the
/// outcome open).
fn expect_ignoring(s: &Server, query: &str, expected: &[&str], ignored: &[&str]) {
    let mut e: Vec<String> = expected.iter().map(|x| x.to_string()).collect();
    e.sort();
    match catch_unwind(AssertUnwindSafe(|| ids(s, query))) {
        Ok(got) => {
            let got: Vec<String> = got
                .into_iter()
                .filter(|id| !ignored.contains(&id.as_str()))
                .collect();
            if got != e {
                fail(format!(
                    "[{}] GET {query}\n    expected {e:?}\n    got      {got:?}",
                    s.storage
                ));
            }
        }
        Err(p) => fail(format!("[{}] GET {query}: {}", s.storage, panic_message(p))),
    }
}

/// The included entries of a single-page search as sorted `Type/id`; asserts each appears once.
fn included(page: &Value) -> Vec<String> {
    let mut inc = entries_with_mode(page, "include");
    inc.sort();
    let n = inc.len();
    inc.dedup();
    assert_eq!(inc.len(), n, "an included resource appears twice: {page}");
    inc
}

fn obs(id: &str, code: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final", "code": code})
}

fn loinc(code: &str) -> Value {
    json!({"coding": [{"system": LOINC, "code": code}]})
}

fn encounter(id: &str, period: Value) -> Value {
    json!({"resourceType": "Encounter", "id": id, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": period})
}

#[test]
fn string_parameters() {
    each_variant(|s| {
        put(
            s,
            json!({"resourceType": "Patient", "id": "s1", "name": [{"family": "Johnson", "given": ["Peter"]}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "s2", "name": [{"family": "JOHN", "given": ["Ann"]}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "s3", "name": [{"family": "Müller", "given": ["Hans"]}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "s4", "name": [{"family": "Ajohnson", "given": ["Zed"]}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "s5", "gender": "male",
                "address": [{"line": ["1 Main St"], "city": "São Paulo", "country": "BR"}]}),
        );

        // Default string search: the field equals or starts with the value, after normalising
        // case and accents (search.html#string). "Ajohnson" contains but does not start with it.
        expect(s, "Patient?name=joh", &["s1", "s2"]);
        expect(s, "Patient?family=JOH", &["s1", "s2"]);
        expect(s, "Patient?given=pet", &["s1"]);
        expect(s, "Patient?family=johnsonx", &[]);
        expect(s, "Patient?family=muller", &["s3"]);
        expect(s, "Patient?family=MÜLL", &["s3"]);
        // `name` covers any part of the HumanName (given names too).
        expect(s, "Patient?name=hans", &["s3"]);
        // Comma = OR within one parameter, repeated parameters = AND.
        expect(s, "Patient?family=john,mull", &["s1", "s2", "s3"]);
        expect(s, "Patient?family=john&given=ann", &["s2"]);
        // :exact matches the whole string, case and accent sensitive.
        expect(s, "Patient?family:exact=JOHN", &["s2"]);
        expect(s, "Patient?family:exact=john", &[]);
        expect(s, "Patient?family:exact=Johns", &[]);
        expect(s, "Patient?family:exact=Müller", &["s3"]);
        expect(s, "Patient?family:exact=Muller", &[]);
        // :contains matches anywhere in the field, case and accent insensitive.
        expect(s, "Patient?family:contains=ohn", &["s1", "s2", "s4"]);
        expect(s, "Patient?family:contains=LLE", &["s3"]);
        expect(s, "Patient?name:contains=ed", &["s4"]);
        // Address parameters: each string part of the Address, same prefix rule.
        expect(s, "Patient?address-city=sao", &["s5"]);
        expect(s, "Patient?address-city=SÃO%20P", &["s5"]);
        expect(s, "Patient?address-city=paulo", &[]);
        expect(s, "Patient?address=1%20main", &["s5"]);
        expect(s, "Patient?address=sao", &["s5"]);
        expect(s, "Patient?address-country=br", &["s5"]);
        // :missing=true: resources without a value; false: resources with one.
        expect(s, "Patient?name:missing=true", &["s5"]);
        expect(s, "Patient?name:missing=false", &["s1", "s2", "s3", "s4"]);

        // POST [type]/_search with a form body is the same search (search.html#Introduction).
        let url = s.url("Patient/_search");
        let (st, b) = json(
            s.client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("family=johnson")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "POST _search: {b}");
        common::check_searchset(s, &url, &b);
        assert_eq!(entries_with_mode(&b, "match"), vec!["Patient/s1"]);
        assert_eq!(b["total"], 1);
        // The next links of a POST search lead through all its matches.
        let (st, b) = json(
            s.client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body("family=joh&_count=1")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "POST _search: {b}");
        assert_eq!(b["total"], 2, "{b}");
        let mut seen = entries_with_mode(&b, "match");
        let mut page = b;
        while let Some(next) = link(&page, "next") {
            page = search_page(s, &next);
            seen.extend(entries_with_mode(&page, "match"));
        }
        seen.sort();
        assert_eq!(seen, ["Patient/s1", "Patient/s2"], "[{}]", s.storage);
    });
}

#[test]
fn token_parameters() {
    each_variant(|s| {
        let mut t1 = obs(
            "t1",
            json!({"coding": [{"system": LOINC, "code": "1234-5", "display": "Glucose [Mass/volume]"}]}),
        );
        t1["category"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]);
        put(s, t1);
        put(
            s,
            obs(
                "t2",
                json!({"coding": [{"system": "http://acme.org/codes", "code": "1234-5"}]}),
            ),
        );
        put(s, obs("t3", json!({"coding": [{"code": "1234-5"}]})));
        put(
            s,
            obs(
                "t4",
                json!({"coding": [{"system": LOINC, "code": "9999-9", "display": "Other"}], "text": "Hemoglobin"}),
            ),
        );
        let mut t5 = obs("t5", json!({"text": "Free text only"}));
        t5["status"] = json!("preliminary");
        put(s, t5);

        // [code]: any system; [system]|[code]: that system; |[code]: no system;
        // [system]|: any code of the system (search.html#token).
        expect(s, "Observation?code=1234-5", &["t1", "t2", "t3"]);
        expect(s, "Observation?code=http://loinc.org|1234-5", &["t1"]);
        expect(s, "Observation?code=|1234-5", &["t3"]);
        expect(s, "Observation?code=http://loinc.org|", &["t1", "t4"]);
        expect(
            s,
            "Observation?code=http://loinc.org|1234-5,http://acme.org/codes|1234-5",
            &["t1", "t2"],
        );
        expect(s, "Observation?code=1234-5&status=preliminary", &[]);
        expect(s, "Observation?status=final", &["t1", "t2", "t3", "t4"]);
        // :not reverses the match, including resources without any value.
        expect(s, "Observation?code:not=1234-5", &["t4", "t5"]);
        expect(
            s,
            "Observation?code:not=http://loinc.org|1234-5",
            &["t2", "t3", "t4", "t5"],
        );
        expect(s, "Observation?status:not=final", &["t5"]);
        // :text searches CodeableConcept.text and Coding.display as a string.
        expect(s, "Observation?code:text=glucose", &["t1"]);
        expect(s, "Observation?code:text=hemoglobin", &["t4"]);
        expect(s, "Observation?code:text=free%20text", &["t5"]);
        // :missing.
        expect(s, "Observation?category:missing=false", &["t1"]);
        expect(
            s,
            "Observation?category:missing=true",
            &["t2", "t3", "t4", "t5"],
        );

        put(
            s,
            json!({"resourceType": "Patient", "id": "k1", "gender": "female", "active": true,
                "identifier": [{"system": "http://ids/mrn", "value": "123"}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "k2", "gender": "male", "active": false,
                "identifier": [{"system": "http://ids/other", "value": "123"}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "k3", "gender": "female",
                "identifier": [{"value": "456"}]}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "k4", "name": [{"family": "Nobody"}]}),
        );
        // code, boolean and Identifier tokens.
        expect(s, "Patient?gender=female", &["k1", "k3"]);
        expect(s, "Patient?gender=male", &["k2"]);
        expect(s, "Patient?gender=female,male", &["k1", "k2", "k3"]);
        expect(s, "Patient?gender:missing=true", &["k4"]);
        expect(s, "Patient?active=true", &["k1"]);
        expect(s, "Patient?active=false", &["k2"]);
        expect(s, "Patient?active:missing=true", &["k3", "k4"]);
        expect(s, "Patient?active:not=true", &["k2", "k3", "k4"]);
        expect(s, "Patient?identifier=http://ids/mrn|123", &["k1"]);
        expect(s, "Patient?identifier=123", &["k1", "k2"]);
        expect(s, "Patient?identifier=|456", &["k3"]);
        expect(s, "Patient?identifier=http://ids/other|", &["k2"]);
        expect(s, "Patient?identifier=http://ids/mrn|456", &[]);

        // Search sees current versions only: an update's old values no longer match, deleted
        // resources match nothing (search.html: search applies to the current resources).
        put(
            s,
            json!({"resourceType": "Patient", "id": "k2", "gender": "female", "active": false,
                "identifier": [{"system": "http://ids/other", "value": "123"}]}),
        );
        expect(s, "Patient?gender=male", &[]);
        expect(s, "Patient?gender=female", &["k1", "k2", "k3"]);
        assert_eq!(s.delete("Patient/k3").send().unwrap().status(), 204);
        expect(s, "Patient?gender=female", &["k1", "k2"]);
        expect(s, "Patient?identifier=|456", &[]);
        expect(s, "Patient?gender:missing=true", &["k4"]);
        expect(s, "Patient", &["k1", "k2", "k4"]);
        assert_eq!(s.delete("Observation/t5").send().unwrap().status(), 204);
        expect(s, "Observation?code:not=1234-5", &["t4"]);
        expect(s, "Observation?category:missing=true", &["t2", "t3", "t4"]);
        // A type without resources: an empty searchset with total 0.
        expect(s, "Encounter", &[]);
    });
}

#[test]
fn reference_parameters() {
    each_variant(|s| {
        put(s, json!({"resourceType": "Patient", "id": "r1"}));
        put(s, json!({"resourceType": "Patient", "id": "r2"}));
        put(
            s,
            json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true}),
        );
        let with_subject = |id: &str, subject: &str| {
            let mut o = obs(id, loinc("1234-5"));
            o["subject"] = json!({"reference": subject});
            o
        };
        put(s, with_subject("ro1", "Patient/r1"));
        put(s, with_subject("ro2", "Patient/r2"));
        put(s, with_subject("ro3", "Group/g1"));
        put(s, obs("ro4", loinc("1234-5")));

        // [type]/[id], a bare [id], and :[type] with a bare id (search.html#reference).
        expect(s, "Observation?subject=Patient/r1", &["ro1"]);
        expect(s, "Observation?subject=r1", &["ro1"]);
        expect(s, "Observation?subject:Patient=r1", &["ro1"]);
        expect(s, "Observation?subject:Group=g1", &["ro3"]);
        expect(s, "Observation?subject=Group/g1", &["ro3"]);
        expect(s, "Observation?subject:Group=r1", &[]);
        expect(
            s,
            "Observation?subject=Patient/r1,Patient/r2",
            &["ro1", "ro2"],
        );
        // `patient` only covers subjects that are Patients.
        expect(s, "Observation?patient=Patient/r1", &["ro1"]);
        expect(s, "Observation?patient=r2", &["ro2"]);
        expect(s, "Observation?patient=g1", &[]);
        // An absolute URL at the server's own base equals the relative reference.
        expect(
            s,
            &format!("Observation?subject={}", s.url("Patient/r1")),
            &["ro1"],
        );
        expect(s, "Observation?subject:missing=true", &["ro4"]);
        expect(
            s,
            "Observation?subject:missing=false",
            &["ro1", "ro2", "ro3"],
        );
    });
}

#[test]
fn date_parameters() {
    each_variant(|s| {
        for (id, bd) in [
            ("b1", Some("2000")),
            ("b2", Some("2000-06")),
            ("b3", Some("2000-06-01")),
            ("b4", Some("2000-12-31")),
            ("b5", Some("2001-01-01")),
            ("b6", Some("1999-12-31")),
            ("b7", None),
        ] {
            let mut p = json!({"resourceType": "Patient", "id": id});
            if let Some(bd) = bd {
                p["birthDate"] = json!(bd);
            }
            put(s, p);
        }
        // Dates are intervals: a stored year is [2000-01-01, 2001-01-01) etc.
        // eq: the search range fully contains the target range (search.html#prefix, #date).
        expect(s, "Patient?birthdate=2000", &["b1", "b2", "b3", "b4"]);
        expect(s, "Patient?birthdate=eq2000", &["b1", "b2", "b3", "b4"]);
        expect(s, "Patient?birthdate=2000-06", &["b2", "b3"]);
        expect(s, "Patient?birthdate=2000-06-01", &["b3"]);
        // ne: the search range does not fully contain the target (b7 has no value: open).
        expect_ignoring(
            s,
            "Patient?birthdate=ne2000-06",
            &["b1", "b4", "b5", "b6"],
            &["b7"],
        );
        // gt: the range above the search value overlaps the target.
        expect(s, "Patient?birthdate=gt2000", &["b5"]);
        expect(
            s,
            "Patient?birthdate=gt2000-06-01",
            &["b1", "b2", "b4", "b5"],
        );
        // ge: gt, or the search range contains the target.
        expect(
            s,
            "Patient?birthdate=ge2000-06-01",
            &["b1", "b2", "b3", "b4", "b5"],
        );
        // lt / le: the mirror images.
        expect(
            s,
            "Patient?birthdate=lt2001",
            &["b1", "b2", "b3", "b4", "b6"],
        );
        expect(s, "Patient?birthdate=lt2000-06-01", &["b1", "b6"]);
        expect(s, "Patient?birthdate=le2000-06-01", &["b1", "b3", "b6"]);
        // sa / eb: no overlap, and the target lies entirely after / before.
        expect(s, "Patient?birthdate=sa2000-06-01", &["b4", "b5"]);
        expect(s, "Patient?birthdate=eb2000-06-01", &["b6"]);
        expect(s, "Patient?birthdate=sa2000", &["b5"]);
        expect(s, "Patient?birthdate=eb2000", &["b6"]);
        // AND of two prefixes.
        expect(
            s,
            "Patient?birthdate=ge2000&birthdate=lt2001",
            &["b1", "b2", "b3", "b4"],
        );
        // ap is implementation-defined, but an exactly equal value is always approximately equal,
        // and nothing here is within any sensible distance of 1900.
        let ap = ids(s, "Patient?birthdate=ap2000-06-01");
        assert!(ap.contains(&"b3".to_string()), "ap2000-06-01: {ap:?}");
        expect(s, "Patient?birthdate=ap1900", &[]);
        expect(s, "Patient?birthdate:missing=true", &["b7"]);

        // Observation.date on effective[x]: 2020-01-01T23:30:00-05:00 is 2020-01-02T04:30:00Z.
        let mut d1 = obs("d1", loinc("1234-5"));
        d1["effectiveDateTime"] = json!("2020-01-01T23:30:00-05:00");
        put(s, d1);
        // A Period is the interval from start to end (chosen to lie within March 2020 whatever
        // time zone the server assumes for a date without one).
        let mut d2 = obs("d2", loinc("1234-5"));
        d2["effectivePeriod"] =
            json!({"start": "2020-03-02T00:00:00Z", "end": "2020-03-09T00:00:00Z"});
        put(s, d2);
        expect(s, "Observation?date=ge2020-01-02T00:00:00Z", &["d1", "d2"]);
        expect(s, "Observation?date=lt2020-01-02T00:00:00Z", &[]);
        expect(s, "Observation?date=2020-01-02T04:30:00Z", &["d1"]);
        expect(s, "Observation?date=2020-01-01T23:30:00-05:00", &["d1"]);
        expect(s, "Observation?date=2020-01-02T05:30:00%2B01:00", &["d1"]);
        expect(s, "Observation?date=2020-03", &["d2"]);
        expect(s, "Observation?date=2020-03-05T00:00:00Z", &[]);
        expect(s, "Observation?date=gt2020-03-05T00:00:00Z", &["d2"]);
        expect(s, "Observation?date=lt2020-03-05T00:00:00Z", &["d1", "d2"]);
        expect(s, "Observation?date=sa2020-03-05T00:00:00Z", &[]);
        expect(s, "Observation?date=sa2020-02-01T00:00:00Z", &["d2"]);
        expect(s, "Observation?date=eb2020-02-01T00:00:00Z", &["d1"]);
        let ap = ids(s, "Observation?date=ap2020-03-05T00:00:00Z");
        assert!(ap.contains(&"d2".to_string()), "ap: {ap:?}");

        // Encounter.date on period; a period without end is ongoing (open-ended). A date without
        // time zone in a query may be read in any zone (UTC-12..UTC+14), so the stored instants
        // lie more than a day away from every date-only boundary queried.
        put(s, encounter("e1", json!({"start": "2020-01-01T10:00:00Z"})));
        put(
            s,
            encounter(
                "e2",
                json!({"start": "2019-05-10T12:00:00Z", "end": "2019-05-20T12:00:00Z"}),
            ),
        );
        expect(s, "Encounter?date=gt2030", &["e1"]);
        expect(s, "Encounter?date=gt2030-01-01T00:00:00Z", &["e1"]);
        expect(s, "Encounter?date=lt2019-01-01", &[]);
        expect(s, "Encounter?date=lt2019-05-15", &["e2"]);
        expect(s, "Encounter?date=gt2019-05-15", &["e1", "e2"]);
        expect(s, "Encounter?date=lt2019-05-05", &[]);
        expect(s, "Encounter?date=ge2019-05-25", &["e1"]);
        expect(s, "Encounter?date=2019-05", &["e2"]);
        expect(s, "Encounter?date=2019", &["e2"]);
        expect(s, "Encounter?date=ge2019-05-15&date=le2019-05-15", &["e2"]);
        expect(s, "Encounter?date=2019-05-15", &[]);
        expect(s, "Encounter?date=sa2019-12-30", &["e1"]);
        expect(s, "Encounter?date=2020", &[]);
    });
}

#[test]
fn quantity_and_number_parameters() {
    each_variant(|s| {
        let q = |id: &str, value: f64, system: &str, code: &str| {
            let mut o = obs(id, loinc("2345-7"));
            o["valueQuantity"] =
                json!({"value": value, "unit": code, "system": system, "code": code});
            put(s, o);
        };
        q("q1", 5.4, UCUM, "mg");
        q("q2", 5.46, UCUM, "mg");
        q("q3", 5.36, UCUM, "mg");
        q("q4", 7.0, UCUM, "mg");
        q("q5", 5.4, UCUM, "mmol/L");
        q("q6", 5.4, UCUM, "g");
        q("q7", 5.4, "http://example.org/units", "mg");

        // eq uses the precision of the value: 5.4 means [5.35, 5.45) (search.html#quantity).
        expect(
            s,
            "Observation?value-quantity=5.4|http://unitsofmeasure.org|mg",
            &["q1", "q3"],
        );
        // [number]||[code]: any system, unit matched by code.
        expect(s, "Observation?value-quantity=5.4||mg", &["q1", "q3", "q7"]);
        // A bare number matches whatever the unit.
        expect(
            s,
            "Observation?value-quantity=5.4",
            &["q1", "q3", "q5", "q6", "q7"],
        );
        // Comparators ignore the implicit precision; UCUM quantities compare across units of
        // the same dimension (5.4 g = 5400 mg).
        expect(
            s,
            "Observation?value-quantity=gt5.4|http://unitsofmeasure.org|mg",
            &["q2", "q4", "q6"],
        );
        expect(
            s,
            "Observation?value-quantity=lt5.4|http://unitsofmeasure.org|mg",
            &["q3"],
        );
        expect(
            s,
            "Observation?value-quantity=ge5.4|http://unitsofmeasure.org|mg",
            &["q1", "q2", "q4", "q6"],
        );
        expect(
            s,
            "Observation?value-quantity=le5.4|http://unitsofmeasure.org|mg",
            &["q1", "q3"],
        );
        expect(
            s,
            "Observation?value-quantity=ne5.4|http://unitsofmeasure.org|mg",
            &["q2", "q4", "q6"],
        );
        // UCUM conversion: 5400 ug = 5.4 mg; 5400 mg = 5.4 g; 0.0054 g = [0.00535, 0.00545) g.
        expect(
            s,
            "Observation?value-quantity=5400|http://unitsofmeasure.org|ug",
            &["q1"],
        );
        expect(
            s,
            "Observation?value-quantity=5400|http://unitsofmeasure.org|mg",
            &["q6"],
        );
        expect(
            s,
            "Observation?value-quantity=0.0054|http://unitsofmeasure.org|g",
            &["q1", "q3"],
        );
        expect(
            s,
            "Observation?value-quantity=5.4|http://unitsofmeasure.org|mmol/L",
            &["q5"],
        );

        // number (RiskAssessment.prediction.probability).
        put(s, json!({"resourceType": "Patient", "id": "rp"}));
        for (id, p) in [("ra1", 0.3), ("ra2", 0.7), ("ra3", 0.5)] {
            put(
                s,
                json!({"resourceType": "RiskAssessment", "id": id, "status": "final",
                    "subject": {"reference": "Patient/rp"},
                    "prediction": [{"probabilityDecimal": p}]}),
            );
        }
        expect(s, "RiskAssessment?probability=gt0.5", &["ra2"]);
        expect(s, "RiskAssessment?probability=0.5", &["ra3"]);
        expect(s, "RiskAssessment?probability=le0.5", &["ra1", "ra3"]);
        expect(s, "RiskAssessment?probability=ge0.5", &["ra2", "ra3"]);
        expect(s, "RiskAssessment?probability=lt0.3", &[]);
        expect(s, "RiskAssessment?probability=ne0.5", &["ra1", "ra2"]);
    });
}

#[test]
fn uri_composite_and_meta_parameters() {
    in_memory(|s| {
        for (id, url) in [
            ("vs1", "http://x/vs"),
            ("vs2", "http://x/vs2"),
            ("vs3", "http://y/vs"),
        ] {
            put(
                s,
                json!({"resourceType": "ValueSet", "id": id, "url": url, "status": "active"}),
            );
        }
        // uri: exact by default; :below matches URIs starting with the value.
        expect(s, "ValueSet?url=http://x/vs", &["vs1"]);
        expect(s, "ValueSet?url=http://x/v", &[]);
        expect(s, "ValueSet?url:below=http://x/", &["vs1", "vs2"]);

        // composite: both parts must match within the same component (search.html#composite).
        let bp = |id: &str, sys: f64, dia: f64| {
            let mut o = obs(id, loinc("85354-9"));
            let comp = |code: &str, v: f64| json!({"code": loinc(code), "valueQuantity": {"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}});
            o["component"] = json!([comp("8480-6", sys), comp("8462-4", dia)]);
            put(s, o);
        };
        bp("bp1", 120.0, 80.0);
        bp("bp2", 95.0, 60.0);
        let single = |id: &str, v: f64| {
            let mut o = obs(id, loinc("8480-6"));
            o["valueQuantity"] =
                json!({"value": v, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"});
            put(s, o);
        };
        single("sys130", 130.0);
        single("sys90", 90.0);
        expect(
            s,
            "Observation?code-value-quantity=http://loinc.org|8480-6$gt100",
            &["sys130"],
        );
        expect(s, "Observation?code-value-quantity=8480-6$130", &["sys130"]);
        expect(
            s,
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100",
            &["bp1"],
        );
        // bp1 has a component value above 90, but not the diastolic one.
        expect(
            s,
            "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt90",
            &[],
        );
        expect(
            s,
            "Observation?component-code-value-quantity=http://loinc.org|8462-4$lt70",
            &["bp2"],
        );
        expect(
            s,
            "Observation?component-code-value-quantity=http://loinc.org|8480-6$95|http://unitsofmeasure.org|mm%5BHg%5D",
            &["bp2"],
        );

        // _id, _tag, _profile, _security (meta), _lastUpdated.
        let conf = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
        put(
            s,
            json!({"resourceType": "Patient", "id": "m1", "meta": {
                "tag": [{"system": "http://tags", "code": "t1"}],
                "profile": ["http://prof/a"],
                "security": [{"system": conf, "code": "R"}]}}),
        );
        put(
            s,
            json!({"resourceType": "Patient", "id": "m2", "meta": {"tag": [{"system": "http://tags", "code": "t2"}]}}),
        );
        let m3 = put(s, json!({"resourceType": "Patient", "id": "m3"}));
        expect(s, "Patient?_id=m1", &["m1"]);
        expect(s, "Patient?_id=m1,m3", &["m1", "m3"]);
        expect(s, "Patient?_id=nope", &[]);
        expect(s, "Patient?_tag=http://tags|t1", &["m1"]);
        expect(s, "Patient?_tag=t2", &["m2"]);
        expect(s, "Patient?_profile=http://prof/a", &["m1"]);
        expect(s, &format!("Patient?_security={conf}|R"), &["m1"]);
        sleep(Duration::from_millis(1100));
        let m4 = put(s, json!({"resourceType": "Patient", "id": "m4"}));
        let enc = |v: &Value| {
            v["meta"]["lastUpdated"]
                .as_str()
                .unwrap()
                .replace('+', "%2B")
        };
        let (l3, l4) = (enc(&m3), enc(&m4));
        expect(s, &format!("Patient?_lastUpdated=ge{l4}"), &["m4"]);
        expect(
            s,
            &format!("Patient?_lastUpdated=lt{l4}"),
            &["m1", "m2", "m3"],
        );
        expect(
            s,
            &format!("Patient?_lastUpdated=le{l3}"),
            &["m1", "m2", "m3"],
        );
        expect(s, &format!("Patient?_lastUpdated=gt{l3}"), &["m4"]);
        expect(
            s,
            "Patient?_lastUpdated=gt2000-01-01",
            &["m1", "m2", "m3", "m4"],
        );
        expect(s, "Patient?_lastUpdated=lt2000-01-01", &[]);
    });
}

/// Organizations, Patients, Observations and Encounters for chaining, `_has`, `_include` and
/// compartment searches.
fn chain_fixture(s: &Server) {
    put(
        s,
        json!({"resourceType": "Organization", "id": "org1", "name": "Acme Hospital"}),
    );
    put(
        s,
        json!({"resourceType": "Organization", "id": "org2", "name": "Other Clinic"}),
    );
    let patient = |id: &str, given: &str, family: &str, mrn: &str, org: &str, gender: &str| {
        put(
            s,
            json!({"resourceType": "Patient", "id": id, "gender": gender,
                "name": [{"family": family, "given": [given]}],
                "identifier": [{"system": "http://ids", "value": mrn}],
                "managingOrganization": {"reference": format!("Organization/{org}")}}),
        );
    };
    patient("p1", "Peter", "Parker", "123", "org1", "male");
    patient("p2", "Paul", "Smith", "456", "org2", "female");
    patient("p3", "Mary", "Jones", "789", "org1", "female");
    for (id, code, subject) in [
        ("o1", "1234-5", "p1"),
        ("o2", "9999-9", "p2"),
        ("o3", "9999-9", "p1"),
    ] {
        let mut o = obs(id, loinc(code));
        o["subject"] = json!({"reference": format!("Patient/{subject}")});
        put(s, o);
    }
    for (id, subject) in [("e1", "p1"), ("e2", "p2"), ("e3", "p3")] {
        let mut e = encounter(id, json!({"start": "2020-01-01T10:00:00Z"}));
        e["subject"] = json!({"reference": format!("Patient/{subject}")});
        put(s, e);
    }
}

#[test]
fn chaining_and_reverse_chaining() {
    each_variant(|s| {
        chain_fixture(s);
        // Chaining: the referenced resource must match the chained parameter
        // (search.html#chaining).
        expect(s, "Observation?subject:Patient.name=peter", &["o1", "o3"]);
        expect(
            s,
            "Observation?patient.identifier=http://ids|123",
            &["o1", "o3"],
        );
        expect(s, "Observation?patient.name=paul&code=9999-9", &["o2"]);
        expect(s, "Observation?subject:Patient.gender=female", &["o2"]);
        expect(s, "Observation?patient.name=mary", &[]);
        // Two hops: Encounter -> Patient -> Organization.
        expect(
            s,
            "Encounter?subject:Patient.organization.name=acme",
            &["e1", "e3"],
        );
        expect(
            s,
            "Encounter?patient.organization=Organization/org2",
            &["e2"],
        );
        // Reverse chaining: resources referenced by a resource matching the criteria
        // (search.html#has).
        expect(s, "Patient?_has:Observation:patient:code=1234-5", &["p1"]);
        expect(
            s,
            "Patient?_has:Observation:patient:code=9999-9",
            &["p1", "p2"],
        );
        expect(
            s,
            "Patient?_has:Observation:subject:code=9999-9",
            &["p1", "p2"],
        );
        expect(
            s,
            "Patient?_has:Observation:patient:code=9999-9&gender=male",
            &["p1"],
        );
        expect(s, "Patient?_has:Encounter:patient:_id=e3", &["p3"]);
        expect(s, "Patient?_has:Observation:patient:code=0000-0", &[]);
        // Nested _has: organisations managing a patient with a 1234-5 observation.
        expect(
            s,
            "Organization?_has:Patient:organization:_has:Observation:patient:code=1234-5",
            &["org1"],
        );

        // Chains and _has follow the current versions of the resources they pass through.
        put(
            s,
            json!({"resourceType": "Patient", "id": "p1", "gender": "male",
                "name": [{"family": "Parker", "given": ["Pedro"]}],
                "identifier": [{"system": "http://ids", "value": "123"}],
                "managingOrganization": {"reference": "Organization/org1"}}),
        );
        expect(s, "Observation?subject:Patient.name=peter", &[]);
        expect(s, "Observation?subject:Patient.name=pedro", &["o1", "o3"]);
        put(
            s,
            json!({"resourceType": "Patient", "id": "p2", "gender": "female",
                "name": [{"family": "Smith", "given": ["Paul"]}],
                "identifier": [{"system": "http://ids", "value": "456"}],
                "managingOrganization": {"reference": "Organization/org1"}}),
        );
        expect(
            s,
            "Encounter?subject:Patient.organization.name=acme",
            &["e1", "e2", "e3"],
        );
        assert_eq!(s.delete("Observation/o1").send().unwrap().status(), 204);
        expect(s, "Patient?_has:Observation:patient:code=1234-5", &[]);
        expect(
            s,
            "Organization?_has:Patient:organization:_has:Observation:patient:code=1234-5",
            &[],
        );
    });
}

#[test]
fn include_and_revinclude() {
    each_variant(|s| {
        chain_fixture(s);
        let check = |q: &str, matches: &[&str], includes: &[&str]| {
            let page = search_page(s, &format!("{q}&_count=100"));
            assert!(link(&page, "next").is_none(), "{q}: one page expected");
            let mut m = entries_with_mode(&page, "match");
            m.sort();
            assert_eq!(m, matches, "[{}] matches of {q}", s.storage);
            assert_eq!(page["total"], matches.len(), "[{}] total of {q}", s.storage);
            assert_eq!(included(&page), includes, "[{}] includes of {q}", s.storage);
            // A resource appears once per bundle even if it is both a match and a target of
            // an include (Bundle invariant bdl-7: fullUrl unique).
            let urls: Vec<&str> = page["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["fullUrl"].as_str())
                .collect();
            let distinct: BTreeSet<&&str> = urls.iter().collect();
            assert_eq!(distinct.len(), urls.len(), "[{}] {q}: {urls:?}", s.storage);
        };
        let mut hm = obs("hm", loinc("9999-9"));
        hm["hasMember"] = json!([{"reference": "Observation/o2"}]);
        put(s, hm);
        check(
            "Observation?code=9999-9&_include=Observation:has-member",
            &["Observation/hm", "Observation/o2", "Observation/o3"],
            &[],
        );
        check(
            "Observation?_id=hm&_include=Observation:has-member",
            &["Observation/hm"],
            &["Observation/o2"],
        );
        assert_eq!(s.delete("Observation/hm").send().unwrap().status(), 204);
        // _include adds the referenced resources with search.mode=include, each once, and they
        // do not count in total (search.html#include).
        check(
            "Observation?code=9999-9&_include=Observation:subject",
            &["Observation/o2", "Observation/o3"],
            &["Patient/p1", "Patient/p2"],
        );
        check(
            "Observation?_include=Observation:subject",
            &["Observation/o1", "Observation/o2", "Observation/o3"],
            &["Patient/p1", "Patient/p2"],
        );
        check(
            "Observation?code=1234-5&_include=Observation:subject:Patient",
            &["Observation/o1"],
            &["Patient/p1"],
        );
        // _revinclude adds the resources referring to the matches.
        check(
            "Patient?_id=p1&_revinclude=Observation:subject",
            &["Patient/p1"],
            &["Observation/o1", "Observation/o3"],
        );
        check(
            "Patient?_id=p1&_revinclude=Observation:subject&_include=Patient:organization",
            &["Patient/p1"],
            &["Observation/o1", "Observation/o3", "Organization/org1"],
        );
        // :iterate applies the include to included resources as well.
        check(
            "Observation?code=1234-5&_include=Observation:subject&_include:iterate=Patient:organization",
            &["Observation/o1"],
            &["Organization/org1", "Patient/p1"],
        );
        check(
            "Organization?_id=org1&_revinclude=Patient:organization&_revinclude:iterate=Observation:subject",
            &["Organization/org1"],
            &[
                "Observation/o1",
                "Observation/o3",
                "Patient/p1",
                "Patient/p3",
            ],
        );
        // Without :iterate, the organisation of an included patient is not included.
        check(
            "Observation?code=1234-5&_include=Observation:subject&_include=Patient:organization",
            &["Observation/o1"],
            &["Patient/p1"],
        );
        // Deleted resources are not included.
        assert_eq!(s.delete("Observation/o3").send().unwrap().status(), 204);
        check(
            "Patient?_id=p1&_revinclude=Observation:subject",
            &["Patient/p1"],
            &["Observation/o1"],
        );
    });
}

#[test]
fn compartment_system_and_batch_search_and_handling() {
    each_variant(|s| {
        chain_fixture(s);
        // Compartment search: the resources of the type in Patient/[id]'s compartment
        // (search.html#compartments; CompartmentDefinition patient: Observation.subject).
        expect(s, "Patient/p1/Observation", &["o1", "o3"]);
        expect(s, "Patient/p1/Observation?code=9999-9", &["o3"]);
        expect(s, "Patient/p2/Observation?code=1234-5", &[]);
        expect(s, "Patient/p3/Encounter", &["e3"]);

        // System search with _type restricts to those types (search.html#_type).
        for (t, id) in [
            ("Patient", "sy1"),
            ("Observation", "sy2"),
            ("Organization", "sy3"),
        ] {
            let mut r = json!({"resourceType": t, "id": id, "meta": {"tag": [{"system": "http://tags", "code": "sys"}]}});
            if t == "Observation" {
                r["status"] = json!("final");
                r["code"] = loinc("1234-5");
            }
            put(s, r);
        }
        let mut got = matches(s, "?_tag=http://tags|sys");
        got.sort();
        assert_eq!(
            got,
            vec!["Observation/sy2", "Organization/sy3", "Patient/sy1"]
        );
        let mut got = matches(s, "?_type=Patient,Observation&_tag=http://tags|sys");
        got.sort();
        assert_eq!(got, vec!["Observation/sy2", "Patient/sy1"]);
        let mut got = matches(s, "?_type=Organization");
        got.sort();
        assert_eq!(
            got,
            vec!["Organization/org1", "Organization/org2", "Organization/sy3"]
        );

        // Unknown parameters: ignored by default (lenient), an error with handling=strict
        // (search.html#errors).
        let all = ids(s, "Patient");
        assert_eq!(all, vec!["p1", "p2", "p3", "sy1"]);
        assert_eq!(ids(s, "Patient?foo=bar"), all);
        let r = s
            .get("Patient?foo=bar")
            .header("prefer", "handling=lenient")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = s
            .get("Patient?foo=bar")
            .header("prefer", "handling=strict")
            .send()
            .unwrap();
        outcome(r, 400);
        let r = s
            .get("Patient?gender=male&foo=bar")
            .header("prefer", "handling=strict")
            .send()
            .unwrap();
        outcome(r, 400);
        // A malformed value of a known parameter cannot be executed: 4xx with an
        // OperationOutcome (search.html#errors).
        for bad in [
            "Patient?birthdate=notadate",
            "Observation?value-quantity=abc",
            "Patient?_count=many",
        ] {
            let (st, v) = json(
                s.get(bad)
                    .header("prefer", "handling=strict")
                    .send()
                    .unwrap(),
            );
            if !(400..500).contains(&st) || v["resourceType"] != "OperationOutcome" {
                fail(format!("[{}] GET {bad} (strict): {st} {v}", s.storage));
            }
        }
        // An unknown modifier on a known parameter under strict handling: 400 (search.html#errors;
        // R5 search.html#modifiers makes rejecting it a SHALL whatever the handling, R4 lets a
        // lenient server ignore what it does not support).
        let r = s
            .get("Patient?family:bogus=x")
            .header("prefer", "handling=strict")
            .send()
            .unwrap();
        outcome(r, 400);
        // Search results in XML: a searchset Bundle.
        let r = s.get("Patient?_id=p1&_format=xml").send().unwrap();
        assert_eq!(r.status(), 200);
        let xml = r.text().unwrap();
        assert!(
            xml.contains("<Bundle xmlns=\"http://hl7.org/fhir\">")
                && xml.contains("<type value=\"searchset\"/>")
                && xml.contains("<id value=\"p1\"/>"),
            "{xml}"
        );
        let r = s
            .get("Patient?gender=male")
            .header("prefer", "handling=strict")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);

        // A search in a batch: the entry's response carries the searchset bundle
        // (http.html#transaction).
        let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": "Patient?gender=female"}},
            {"request": {"method": "GET", "url": "Observation?subject=Patient/p1&code=9999-9"}},
        ]});
        let (st, v) = json(s.post_json("", &b).send().unwrap());
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["type"], "batch-response");
        let e = &v["entry"];
        for (i, expected) in [vec!["Patient/p2", "Patient/p3"], vec!["Observation/o3"]]
            .iter()
            .enumerate()
        {
            assert!(
                e[i]["response"]["status"]
                    .as_str()
                    .unwrap()
                    .starts_with("200"),
                "{v}"
            );
            let bundle = &e[i]["resource"];
            assert_eq!(bundle["type"], "searchset", "{v}");
            assert_eq!(bundle["total"], expected.len(), "{v}");
            let mut m = entries_with_mode(bundle, "match");
            m.sort();
            assert_eq!(&m, expected);
        }
    });
}

#[test]
fn sort_summary_total_and_elements() {
    each_variant(|s| {
        // Created in the order s3, s1, s4, s2 with distinct lastUpdated.
        for (id, family, given, bd) in [
            ("s3", "Baker", "Amy", "2001-02-03"),
            ("s1", "Adams", "Zoe", "1990-01-01"),
            ("s4", "Clark", "Carl", "1970-07-07"),
            ("s2", "Adams", "Bob", "1985-05-05"),
        ] {
            put(
                s,
                json!({"resourceType": "Patient", "id": id, "birthDate": bd,
                    "gender": if id == "s4" { "male" } else { "female" },
                    "name": [{"family": family, "given": [given]}]}),
            );
            sleep(Duration::from_millis(30));
        }
        // _sort: ascending by default, '-' descending, later keys break ties
        // (search.html#_sort).
        let order = |q: &str| ordered_ids(s, q);
        for (q, want) in [
            ("Patient?_sort=birthdate", vec!["s4", "s2", "s1", "s3"]),
            ("Patient?_sort=-birthdate", vec!["s3", "s1", "s2", "s4"]),
            ("Patient?_sort=family,given", vec!["s2", "s1", "s3", "s4"]),
            ("Patient?_sort=family,-given", vec!["s1", "s2", "s3", "s4"]),
            ("Patient?_sort=-family,given", vec!["s4", "s3", "s2", "s1"]),
            ("Patient?_sort=_lastUpdated", vec!["s3", "s1", "s4", "s2"]),
            ("Patient?_sort=-_lastUpdated", vec!["s2", "s4", "s1", "s3"]),
            (
                "Patient?gender=female&_sort=birthdate",
                vec!["s2", "s1", "s3"],
            ),
        ] {
            assert_eq!(order(q), want, "GET {q}");
        }
        // Sorting holds across pages.
        assert_eq!(
            order("Patient?_sort=birthdate&_count=1"),
            ["s4", "s2", "s1", "s3"]
        );
        assert_eq!(
            order("Patient?_sort=-family,given&_count=3"),
            ["s4", "s3", "s2", "s1"]
        );

        // _summary=count: the total only, no entries (search.html#_summary).
        let b = search_page(s, "Patient?_summary=count");
        assert_eq!(b["total"], 4);
        assert!(entries_with_mode(&b, "match").is_empty(), "{b}");
        assert!(b["entry"].as_array().is_none_or(|e| e.is_empty()), "{b}");
        let b = search_page(s, "Patient?gender=female&_summary=count");
        assert_eq!(b["total"], 3);
        // _total=accurate: the exact number of matches, not only of the page.
        let b = search_page(s, "Patient?_total=accurate&_count=1");
        assert_eq!(b["total"], 4);
        assert_eq!(entries_with_mode(&b, "match").len(), 1);
        // _elements: only the listed elements (plus mandatory ones and id).
        let b = search_page(s, "Patient?_id=s1&_elements=name");
        let p = &b["entry"][0]["resource"];
        assert_eq!(p["id"], "s1");
        assert_eq!(p["name"][0]["family"], "Adams");
        assert!(
            p.get("birthDate").is_none() && p.get("gender").is_none(),
            "{p}"
        );
        let b = search_page(s, "Patient?_id=s1&_elements=id,birthDate");
        let p = &b["entry"][0]["resource"];
        assert_eq!(p["birthDate"], "1990-01-01");
        assert!(p.get("name").is_none(), "{p}");
    });
}

/// Flips one character in the middle of the longest path segment or query value of `url`: the
/// page token.
fn tamper(url: &str) -> String {
    let parts: Vec<(usize, usize)> = {
        let mut v = Vec::new();
        let mut start = 0;
        for (i, c) in url.char_indices() {
            if matches!(c, '/' | '?' | '&' | '=') {
                v.push((start, i));
                start = i + 1;
            }
        }
        v.push((start, url.len()));
        v
    };
    let (a, b) = *parts.iter().max_by_key(|(a, b)| b - a).unwrap();
    assert!(b - a >= 8, "no token in {url}");
    let mid = a + (b - a) / 2;
    let old = url.as_bytes()[mid];
    let new = if old == b'A' { 'B' } else { 'A' };
    format!("{}{}{}", &url[..mid], new, &url[mid + 1..])
}

#[test]
fn paging_is_complete_and_stable_while_writes_arrive() {
    each_variant(|s| {
        // Seven matches with distinct birth dates.
        let mut known: Vec<(String, String)> = (0..7)
            .map(|i| {
                let bd = format!("19{}-01-01", 50 + i * 5);
                let id = create(
                    s,
                    json!({"resourceType": "Patient", "name": [{"family": "Pager"}], "birthDate": bd}),
                );
                (id, bd)
            })
            .collect();
        create(
            s,
            json!({"resourceType": "Patient", "name": [{"family": "Other"}]}),
        );

        // _count limits the page size; next links lead through all matches exactly once, pinned
        // to the state of the first page even though matching resources are created meanwhile.
        let q = "Patient?family=pager&_count=2";
        let first = search_page(s, q);
        assert_eq!(first["total"], 7, "{first}");
        let mut page = first.clone();
        let mut seen = entries_with_mode(&page, "match");
        assert_eq!(seen.len(), 2);
        let mut pages = 1;
        let mut late = 0;
        while let Some(next) = link(&page, "next") {
            create(
                s,
                json!({"resourceType": "Patient", "name": [{"family": "Pager"}], "birthDate": "1962-06-01"}),
            );
            late += 1;
            if pages == 1 {
                // An update of a match already returned must not make it appear again.
                let id = strip_type(&seen[0]);
                let (_, mut p) = json(s.get(&format!("Patient/{id}")).send().unwrap());
                p["name"][0]["given"] = json!(["Updated"]);
                put(s, p);
            }
            page = search_page(s, &next);
            pages += 1;
            let m = entries_with_mode(&page, "match");
            assert!(!m.is_empty() && m.len() <= 2, "page {pages}: {page}");
            if pages == 2 {
                // previous leads back to the first page.
                let prev = link(&page, "previous").expect("previous link on page 2");
                let back = search_page(s, &prev);
                assert_eq!(
                    entries_with_mode(&back, "match"),
                    entries_with_mode(&first, "match")
                );
                assert!(link(&page, "first").is_some(), "first link: {page}");
            }
            seen.extend(m);
        }
        assert_eq!(pages, 4);
        let mut got: Vec<String> = seen.iter().map(|t| strip_type(t)).collect();
        got.sort();
        let mut expected: Vec<String> = known.iter().map(|(id, _)| id.clone()).collect();
        expected.sort();
        assert_eq!(got, expected, "[{}] all pages", s.storage);
        assert_eq!(ids(s, "Patient?family=pager").len(), 7 + late);

        // Sorted paging with concurrent writes sorting into the middle of the result.
        let all = matches(s, "Patient?family=pager");
        for typed in &all {
            let id = strip_type(typed);
            if !known.iter().any(|(k, _)| *k == id) {
                known.push((id, "1962-06-01".into()));
            }
        }
        known.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut page = search_page(s, "Patient?family=pager&_sort=-birthdate&_count=3");
        let mut order: Vec<(String, String)> = Vec::new();
        loop {
            for e in page["entry"].as_array().into_iter().flatten() {
                let r = &e["resource"];
                order.push((
                    r["id"].as_str().unwrap().to_string(),
                    r["birthDate"].as_str().unwrap().to_string(),
                ));
            }
            let Some(next) = link(&page, "next") else {
                break;
            };
            create(
                s,
                json!({"resourceType": "Patient", "name": [{"family": "Pager"}], "birthDate": "1966-06-01"}),
            );
            page = search_page(s, &next);
        }
        let dates: Vec<&String> = order.iter().map(|(_, d)| d).collect();
        let expected_dates: Vec<&String> = known.iter().map(|(_, d)| d).collect();
        assert_eq!(dates, expected_dates, "[{}] sorted pages", s.storage);
        let mut got: Vec<&String> = order.iter().map(|(id, _)| id).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), known.len(), "no duplicates across pages");

        // A tampered page link is refused with an OperationOutcome.
        let b = search_page(s, q);
        let next = link(&b, "next").unwrap();
        let bad = tamper(&next);
        assert_ne!(bad, next);
        let (st, v) = json(s.client.get(search_url(s, &bad)).send().unwrap());
        assert!((400..500).contains(&st), "tampered {bad}: {st} {v}");
        assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
        // A _count larger than the result gives one page without next.
        let b = search_page(s, "Patient?family=pager&_count=1000");
        assert!(link(&b, "next").is_none());
    });
}

fn ident(system: &str, value: &str) -> Value {
    json!([{"system": system, "value": value}])
}

#[test]
fn conditional_create_update_and_delete() {
    each_variant(|s| {
        let p = |system: &str, value: &str, family: &str| json!({"resourceType": "Patient", "identifier": ident(system, value), "name": [{"family": family}]});
        // Conditional create (http.html#ccreate): 0 matches create (201), 1 match returns
        // 200 without creating, 2+ matches 412.
        let cc = |body: &Value| {
            s.post_json("Patient", body)
                .header("if-none-exist", "identifier=http://cc|1")
                .send()
                .unwrap()
        };
        let (st, first) = json(cc(&p("http://cc", "1", "A")));
        assert_eq!(st, 201, "{first}");
        let id = first["id"].as_str().unwrap().to_string();
        let (st, again) = json(cc(&p("http://cc", "1", "B")));
        assert_eq!(st, 200, "{again}");
        if !again.is_null() {
            assert_eq!(again["id"].as_str(), Some(id.as_str()), "{again}");
        }
        expect(s, "Patient?identifier=http://cc|1", &[&id]);
        let (_, read) = json(s.get(&format!("Patient/{id}")).send().unwrap());
        assert_eq!(
            read["name"][0]["family"], "A",
            "the existing one is untouched"
        );
        let id2 = create(s, p("http://cc", "1", "C"));
        outcome(cc(&p("http://cc", "1", "D")), 412);
        expect(s, "Patient?identifier=http://cc|1", &[&id, &id2]);

        // Conditional update (http.html#cond-update): 0 matches create, 1 match update that
        // resource, 2+ matches 412.
        let cu = |body: &Value| {
            s.put_json("Patient?identifier=http://cu|1", body)
                .send()
                .unwrap()
        };
        let (st, created) = json(cu(&p("http://cu", "1", "Alpha")));
        assert_eq!(st, 201, "{created}");
        let uid = created["id"].as_str().unwrap().to_string();
        let (st, updated) = json(cu(&p("http://cu", "1", "Beta")));
        assert_eq!(st, 200, "{updated}");
        assert_eq!(updated["id"].as_str(), Some(uid.as_str()));
        assert_ne!(updated["meta"]["versionId"], created["meta"]["versionId"]);
        let (_, read) = json(s.get(&format!("Patient/{uid}")).send().unwrap());
        assert_eq!(read["name"][0]["family"], "Beta");
        expect(s, "Patient?identifier=http://cu|1", &[&uid]);
        // One match and a body id: it must be the matching resource's id (else 400).
        let mut with_id = p("http://cu", "1", "Epsilon");
        with_id["id"] = json!("someone-else");
        outcome(cu(&with_id), 400);
        with_id["id"] = json!(uid.clone());
        let (st, v) = json(cu(&with_id));
        assert_eq!((st, v["id"].as_str()), (200, Some(uid.as_str())), "{v}");
        // No match and a body id: the server treats it as update as create of that id (R4).
        let nomatch = |id: &str| {
            let mut b = p("http://cu", "2", "Zeta");
            b["id"] = json!(id);
            s.put_json("Patient?identifier=http://cu|2", &b)
                .send()
                .unwrap()
        };
        let (st, v) = json(nomatch("cu-new"));
        assert_eq!((st, v["id"].as_str()), (201, Some("cu-new")), "{v}");
        create(s, p("http://cu", "1", "Gamma"));
        outcome(cu(&p("http://cu", "1", "Delta")), 412);

        // Conditional delete (http.html#3.1.0.7.1): one match is deleted; several matches are
        // either all deleted or refused with 412; no match is an ordinary delete of nothing.
        let did = create(s, p("http://cd", "1", "Del"));
        let st = s
            .delete("Patient?identifier=http://cd|1")
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!(st == 200 || st == 204, "conditional delete: {st}");
        expect(s, "Patient?identifier=http://cd|1", &[]);
        outcome(s.get(&format!("Patient/{did}")).send().unwrap(), 410);
        let st = s
            .delete("Patient?identifier=http://cd|1")
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!(matches!(st, 200 | 204 | 404), "no match: {st}");
        let st = s
            .delete("Patient?identifier=http://cc|1")
            .send()
            .unwrap()
            .status()
            .as_u16();
        let left = ids(s, "Patient?identifier=http://cc|1");
        match st {
            412 => assert_eq!(left.len(), 2),
            200 | 204 => assert!(left.is_empty()),
            _ => panic!("conditional delete of 2 matches: {st}"),
        }
    });
}

#[test]
fn conditional_references_in_transactions() {
    each_variant(|s| {
        let target = create(
            s,
            json!({"resourceType": "Patient", "identifier": ident("http://cr", "1")}),
        );
        create(
            s,
            json!({"resourceType": "Patient", "identifier": ident("http://cr", "2")}),
        );
        create(
            s,
            json!({"resourceType": "Patient", "identifier": ident("http://cr", "2")}),
        );
        let tx = |subject: &str| {
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": {"resourceType": "Patient", "id": "txside"}, "request": {"method": "PUT", "url": "Patient/txside"}},
                {"fullUrl": "urn:uuid:9d1e2f3a-0000-4000-8000-000000000001",
                 "resource": {"resourceType": "Observation", "status": "final", "code": loinc("1234-5"),
                    "subject": {"reference": subject}},
                 "request": {"method": "POST", "url": "Observation"}},
            ]})
        };
        // A conditional reference is replaced by the one matching resource (http.html#trules).
        let (st, v) = json(
            s.post_json("", &tx("Patient?identifier=http://cr|1"))
                .header("prefer", "return=representation")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{v}");
        let obs = &v["entry"][1]["resource"];
        assert_eq!(
            obs["subject"]["reference"],
            format!("Patient/{target}"),
            "{v}"
        );
        let oid = obs["id"].as_str().unwrap();
        let (_, read) = json(s.get(&format!("Observation/{oid}")).send().unwrap());
        assert_eq!(read["subject"]["reference"], format!("Patient/{target}"));
        expect(s, &format!("Observation?subject=Patient/{target}"), &[oid]);
        s.delete("Patient/txside").send().unwrap();

        // No match or several matches: the transaction fails and nothing is written.
        for bad in [
            "Patient?identifier=http://cr|404",
            "Patient?identifier=http://cr|2",
        ] {
            let (st, v) = json(s.post_json("", &tx(bad)).send().unwrap());
            assert!((400..500).contains(&st), "{bad}: {st} {v}");
            assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
            expect(s, "Observation", &[oid]);
            assert_eq!(
                s.get("Patient/txside").send().unwrap().status(),
                410,
                "{bad}: the transaction's PUT must not be applied"
            );
        }

        // Conditional create inside a transaction (ifNoneExist) does not duplicate.
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "identifier": ident("http://cr", "1")},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://cr|1"}},
            {"resource": {"resourceType": "Patient", "identifier": ident("http://cr", "3")},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://cr|3"}},
        ]});
        let (st, v) = json(s.post_json("", &b).send().unwrap());
        assert_eq!(st, 200, "{v}");
        assert!(
            v["entry"][0]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("200"),
            "{v}"
        );
        assert!(
            v["entry"][1]["response"]["status"]
                .as_str()
                .unwrap()
                .starts_with("201"),
            "{v}"
        );
        expect(s, "Patient?identifier=http://cr|1", &[&target]);
        assert_eq!(ids(s, "Patient?identifier=http://cr|3").len(), 1);
        // ifNoneExist with several matches fails the whole transaction (412).
        let b = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "identifier": ident("http://cr", "5")},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Patient", "identifier": ident("http://cr", "2")},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://cr|2"}},
        ]});
        outcome(s.post_json("", &b).send().unwrap(), 412);
        expect(s, "Patient?identifier=http://cr|5", &[]);
    });
}

#[test]
fn near_source_total_none_and_include_all() {
    in_memory(|s| {
        // near (search.html#special, Location.position): `lat|long|distance|unit`, great-circle
        // distance. Berlin Mitte, Potsdam (≈ 27 km away) and Hamburg (≈ 255 km away).
        for (id, lat, long) in [
            ("mitte", 52.520, 13.405),
            ("potsdam", 52.391, 13.064),
            ("hamburg", 53.551, 9.993),
        ] {
            put(
                s,
                json!({"resourceType": "Location", "id": id,
                    "position": {"latitude": lat, "longitude": long}}),
            );
        }
        expect(s, "Location?near=52.52|13.405|5|km", &["mitte"]);
        expect(s, "Location?near=52.52|13.405|50|km", &["mitte", "potsdam"]);
        expect(
            s,
            "Location?near=52.52|13.405|300|km",
            &["mitte", "potsdam", "hamburg"],
        );
        // _source is meta.source (a uri).
        put(
            s,
            json!({"resourceType": "Patient", "id": "src",
                "meta": {"source": "http://lab.example/feed"}}),
        );
        put(s, json!({"resourceType": "Patient", "id": "nosrc"}));
        expect(s, "Patient?_source=http://lab.example/feed", &["src"]);
        // _total=none: no Bundle.total; the matches are still returned (search.html#total).
        let (st, b) = json(s.get("Patient?_total=none").send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert!(b.get("total").is_none(), "{b}");
        assert_eq!(b["entry"].as_array().map_or(0, Vec::len), 2);
        // _include=* follows every reference parameter of the matches.
        put(
            s,
            json!({"resourceType": "Encounter", "id": "enc", "status": "finished",
                "class": {"code": "AMB"}, "subject": {"reference": "Patient/src"},
                "location": [{"location": {"reference": "Location/mitte"}}]}),
        );
        let (_, b) = json(s.get("Encounter?_id=enc&_include=*").send().unwrap());
        let mut inc = included(&b);
        inc.sort();
        assert_eq!(inc, ["Location/mitte", "Patient/src"], "{b}");
    });
}

/// Dates without a time zone, in resources and in queries, are read in the zone of
/// `FHIR_DEFAULT_TIME_ZONE` (UTC unless set; the spec: "the server's local time zone should be
/// assumed"), so neighbouring years and months never share a value; a restart in another
/// zone re-indexes the stored zone-less values.
#[test]
fn zone_less_dates_are_read_in_the_configured_zone() {
    let obs = |id: &str, at: &str| {
        json!({"resourceType": "Observation", "id": id, "status": "final",
               "code": {"text": "x"}, "effectiveDateTime": at})
    };
    let data = tempfile::tempdir().unwrap();
    {
        let s = Server::start_in("standalone", Some(data.path()), &[]);
        // a: 03:00 UTC on New Year's Day, still New Year's Eve in New York (UTC−5).
        put(&s, obs("a", "2021-01-01T03:00:00Z"));
        // b: New Year's Eve without zone (a FHIR dateTime has a zone when it has a time).
        put(&s, obs("b", "2020-12-31"));
        // c: 03:30 UTC on 1 July, 30 June in New York (UTC−4 in summer).
        put(&s, obs("c", "2021-07-01T03:30:00Z"));
        // d: a whole day without zone.
        put(&s, obs("d", "2021-03-14"));
        // UTC: every value in exactly one year and one month.
        expect(&s, "Observation?date=2021", &["a", "c", "d"]);
        expect(&s, "Observation?date=2020", &["b"]);
        expect(&s, "Observation?date=2020-12", &["b"]);
        expect(&s, "Observation?date=2021-01", &["a"]);
        expect(&s, "Observation?date=2021-06", &[]);
        expect(&s, "Observation?date=2021-07", &["c"]);
        expect(&s, "Observation?date=sa2020&date=eb2022", &["a", "c", "d"]);
        expect(
            &s,
            "Observation?date=ge2021-01-01T04:30:00Z&date=lt2021-01-01T05:00:00Z",
            &[],
        );
        expect(&s, "Observation?date=2021-03-14T00:00:00Z", &[]);
        expect(
            &s,
            "Observation?date=ge2021-03-14T00:00:00Z&date=lt2021-03-15T00:00:00Z",
            &["d"],
        );
    }
    let s = Server::start_in(
        "standalone",
        Some(data.path()),
        &[("FHIR_DEFAULT_TIME_ZONE", "America/New_York")],
    );
    // New York: the query years and months are New York's, and so are the stored wall clocks.
    expect(&s, "Observation?date=2021", &["c", "d"]);
    expect(&s, "Observation?date=2020", &["a", "b"]);
    expect(&s, "Observation?date=2020-12", &["a", "b"]);
    expect(&s, "Observation?date=2021-01", &[]);
    expect(&s, "Observation?date=2021-06", &["c"]);
    expect(&s, "Observation?date=2021-07", &[]);
    expect(&s, "Observation?date=sa2020&date=eb2022", &["c", "d"]);
    expect(&s, "Observation?date=sa2019&date=eb2021", &["a", "b"]);
    // Zoned queries are instants: New Year's Eve in New York lasts until 05:00 UTC.
    expect(
        &s,
        "Observation?date=ge2021-01-01T04:30:00Z&date=lt2021-01-01T05:00:00Z",
        &["b"],
    );
    // d is 14 March in New York, the day clocks went forward: 23 hours from 05:00 UTC
    // (it starts after 04:59:59 and ends before 04:00 the next day, not before 03:59:59).
    expect(
        &s,
        "Observation?date=sa2021-03-14T04:59:59Z&date=eb2021-03-15T04:00:00Z",
        &["d"],
    );
    expect(
        &s,
        "Observation?date=sa2021-03-14T04:59:59Z&date=eb2021-03-15T03:59:59Z",
        &[],
    );
    drop(s);
    // A zone the server does not know stops it at start, naming the variable.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flint-e2e-server"))
        .env("STORAGE", "in-memory")
        .env("SERVER_PORT", "1")
        .env("FHIR_DEFAULT_TIME_ZONE", "Mars/Olympus")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("FHIR_DEFAULT_TIME_ZONE"), "{err}");
    let failures = FAILURES.with(|f| std::mem::take(&mut *f.borrow_mut()));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Reference parameters on `canonical` elements (issue 19): the official R4 examples, stored
/// as they are, are each found by every one of their own canonical values (as the search
/// registry extracts them: absolute URLs and relative ones such as `Questionnaire/gcs`, as
/// written), with and without `|version`, and by `:below` on the version; a different version
/// finds nothing.
#[test]
fn official_examples_are_found_by_their_canonical_references() {
    use flint_search_core::{IndexValue, ReferenceValue, Registry};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fhir-examples");
    let reg = Registry::r4();
    let s = Server::start("in-memory", &[("ENFORCE_REFERENTIAL_INTEGRITY", "false")]);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("the R4 examples belong in {dir}: {e}"))
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut queries, mut failures) = (0, Vec::new());
    for f in files {
        let Ok(r) = serde_json::from_slice::<Value>(&std::fs::read(&f).unwrap()) else {
            continue;
        };
        let (Some(ty), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) else {
            continue;
        };
        let Ok(values) = reg.extract(&r) else {
            continue;
        };
        let canonicals: Vec<(String, String, Option<String>)> = values
            .iter()
            .filter_map(|(p, v)| match v {
                IndexValue::Reference(ReferenceValue::Canonical { url, version }) => {
                    Some((p.code.clone(), url.clone(), version.clone()))
                }
                _ => None,
            })
            .collect();
        if canonicals.is_empty() {
            continue;
        }
        let (st, v) = json(s.put_json(&format!("{ty}/{id}"), &r).send().unwrap());
        if st >= 300 {
            failures.push(format!("PUT {ty}/{id}: {st} {v}"));
            continue;
        }
        for (code, url, version) in canonicals {
            let mut qs = vec![(format!("{ty}?{code}={url}"), true)];
            if let Some(ver) = &version {
                qs.push((format!("{ty}?{code}={url}|{ver}"), true));
                qs.push((format!("{ty}?{code}={url}|{ver}-other"), false));
                qs.push((format!("{ty}?{code}:below={url}|{ver}"), true));
            }
            for (q, want) in qs {
                queries += 1;
                let (st, b) = json(s.get(&q).send().unwrap());
                let found = b["entry"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e["resource"]["id"] == id);
                if st != 200 || found != want {
                    failures.push(format!("{q}: {st}, {ty}/{id} found: {found}"));
                }
            }
        }
    }
    println!("{queries} canonical searches");
    assert!(queries >= 64, "only {queries} canonical searches");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Canonical searches with versions (issue 19, search.html#versions): `url|version` finds that
/// version, `url` every version, and `:below` on the version part the versions under it
/// (`|1.2` finds `1.2` and `1.2.3`, not `1.20`); for `_profile` (uri) and for reference
/// parameters on canonical elements alike.
#[test]
fn canonical_searches_with_versions() {
    in_memory(|s| {
        let p = "http://example.org/StructureDefinition/p";
        for (id, profile) in [
            ("v123", format!("{p}|1.2.3")),
            ("v12", format!("{p}|1.2")),
            ("v120", format!("{p}|1.20")),
            ("none", p.to_string()),
        ] {
            put(
                s,
                json!({"resourceType": "Patient", "id": id, "meta": {"profile": [profile]}}),
            );
        }
        expect(s, &format!("Patient?_profile={p}|1.2.3"), &["v123"]);
        expect(
            s,
            &format!("Patient?_profile={p}"),
            &["v123", "v12", "v120", "none"],
        );
        expect(
            s,
            &format!("Patient?_profile:below={p}|1.2"),
            &["v123", "v12"],
        );
        expect(
            s,
            &format!("Patient?_profile:below={p}|1"),
            &["v123", "v12", "v120"],
        );
        expect(s, &format!("Patient?_profile:below={p}|2"), &[]);
        expect(
            s,
            &format!("Patient?_profile:below={p}"),
            &["v123", "v12", "v120", "none"],
        );
        let q = "http://example.org/Questionnaire/q";
        for (id, questionnaire) in [
            ("a", format!("{q}|2.0.1")),
            ("b", format!("{q}|2.1")),
            ("c", "Questionnaire/local|3".to_string()),
        ] {
            put(
                s,
                json!({"resourceType": "QuestionnaireResponse", "id": id,
                       "status": "completed", "questionnaire": questionnaire}),
            );
        }
        expect(
            s,
            &format!("QuestionnaireResponse?questionnaire={q}"),
            &["a", "b"],
        );
        expect(
            s,
            &format!("QuestionnaireResponse?questionnaire={q}|2.1"),
            &["b"],
        );
        expect(
            s,
            &format!("QuestionnaireResponse?questionnaire:below={q}|2"),
            &["a", "b"],
        );
        expect(
            s,
            &format!("QuestionnaireResponse?questionnaire:below={q}|2.0"),
            &["a"],
        );
        expect(
            s,
            &format!("QuestionnaireResponse?questionnaire:below={q}|3"),
            &[],
        );
        expect(
            s,
            "QuestionnaireResponse?questionnaire=Questionnaire/local",
            &["c"],
        );
        expect(
            s,
            "QuestionnaireResponse?questionnaire=Questionnaire/local|3",
            &["c"],
        );
        expect(s, "QuestionnaireResponse?questionnaire=local", &["c"]);
        expect(
            s,
            "QuestionnaireResponse?questionnaire=Questionnaire/local|4",
            &[],
        );
    });
}
