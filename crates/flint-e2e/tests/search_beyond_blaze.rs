//! Search beyond Blaze (issue 19) over HTTP against the real binary:
//!
//! * `_filter` (hl7.org/fhir/R4/search_filter.html): every filter is compared with the plain
//!   search that means the same (or with a set computed from plain searches and the stored
//!   data), on the same resources, for every parameter type;
//! * reference `:above`/`:below` along the target type's hierarchy (search.html#modifiers).

mod common;

use common::{Server, VARIANTS, entries_with_mode, json, outcome, search_all_pages};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// Percent-encodes a query value (everything but unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn put(s: &Server, r: Value) {
    let path = format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap(),
        r["id"].as_str().unwrap()
    );
    let (st, v) = json(s.put_json(&path, &r).send().unwrap());
    assert!(st == 200 || st == 201, "PUT {path}: {st} {v}");
}

/// The ids of the matches of `query` (all pages).
fn ids(s: &Server, query: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in search_all_pages(s, query) {
        for t in entries_with_mode(&p, "match") {
            out.insert(
                t.split_once('/')
                    .map_or(t.clone(), |(_, id)| id.to_string()),
            );
        }
    }
    out
}

/// `ty?_filter=filter[&extra]`.
fn filtered(ty: &str, filter: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("&{extra}")
    };
    format!("{ty}?_filter={}{extra}", enc(filter))
}

/// Records a failure unless `_filter=filter` on `ty` finds `expected`, which must be neither
/// empty nor every resource of the type (so the comparison can tell filters apart).
fn check(
    s: &Server,
    failures: &mut Vec<String>,
    ty: &str,
    filter: &str,
    expected: &BTreeSet<String>,
) {
    let all = ids(s, ty);
    if expected.is_empty() || *expected == all {
        failures.push(format!(
            "[{}] {ty} `{filter}`: the expected set {expected:?} does not discriminate",
            s.storage
        ));
        return;
    }
    let got = ids(s, &filtered(ty, filter, ""));
    if got != *expected {
        failures.push(format!(
            "[{}] {ty}?_filter={filter}\n    expected {expected:?}\n    got      {got:?}",
            s.storage
        ));
    }
}

/// `_filter=filter` finds what the plain search `ty?plain` finds.
fn same(s: &Server, failures: &mut Vec<String>, ty: &str, filter: &str, plain: &str) {
    let expected = ids(s, &format!("{ty}?{plain}"));
    check(s, failures, ty, filter, &expected);
}

fn patient(
    id: &str,
    family: &str,
    given: &str,
    gender: Option<&str>,
    birth: Option<&str>,
) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": id,
        "name": [{"family": family, "given": [given]}]});
    if let Some(g) = gender {
        p["gender"] = json!(g);
    }
    if let Some(b) = birth {
        p["birthDate"] = json!(b);
    }
    p
}

fn observation(id: &str, code: &str, subject: &str, mg: f64, unit: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": mg, "unit": unit, "system": UCUM, "code": unit}})
}

/// The families of the patients, as stored, by id.
/// A patient's id, family, given name, gender and birth date.
type PatientRow = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

const PATIENTS: [PatientRow; 6] = [
    ("p1", "Peter", "Anna", Some("male"), Some("1999-12-31")),
    ("p2", "peter", "Bea", Some("female"), Some("2000-06-15")),
    ("p3", "Peterson", "Carl", Some("male"), Some("2000-01-01")),
    ("p4", "Van Peter", "Dora", Some("other"), Some("2001-03-03")),
    ("p5", "Pétér", "Emil", None, Some("1980")),
    ("p6", "Smith", "Peter", Some("female"), None),
];

/// Lower case without the accents of the data above (the normalisation string search
/// applies: case- and accent-insensitive).
fn norm(s: &str) -> String {
    s.to_lowercase().replace('é', "e")
}

fn load(s: &Server) {
    for (id, family, given, gender, birth) in PATIENTS {
        put(s, patient(id, family, given, gender, birth));
    }
    put(
        s,
        json!({"resourceType": "Location", "id": "l1", "name": "Peter Street"}),
    );
    for (id, code, subject, v, unit) in [
        ("o1", "1234-5", "Patient/p1", 4.0, "mg"),
        ("o2", "1234-5", "Patient/p2", 6.0, "mg"),
        ("o3", "9999-9", "Patient/p3", 0.005, "g"),
        ("o4", "1234-5", "Patient/p3", 7.5, "mg"),
        ("o5", "7777-7", "Location/l1", 1.0, "mg"),
        ("o6", "9999-9", "Patient/p6", 5.4, "mg"),
    ] {
        put(s, observation(id, code, subject, v, unit));
    }
    for (id, start, end) in [
        ("e1", "1999-12-01", "2000-01-15"),
        ("e2", "2000-03-01", "2000-04-01"),
        ("e3", "2001-01-01", "2001-02-01"),
        ("e4", "1998-01-01", "2002-01-01"),
        ("e5", "1997-01-01", "1997-02-01"),
    ] {
        put(
            s,
            json!({"resourceType": "Encounter", "id": id, "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": start, "end": end}}),
        );
    }
    for (id, p) in [("r1", 0.2), ("r2", 0.5), ("r3", 0.8), ("r4", 0.55)] {
        put(
            s,
            json!({"resourceType": "RiskAssessment", "id": id, "status": "final",
            "subject": {"reference": "Patient/p1"},
            "prediction": [{"probabilityDecimal": p}]}),
        );
    }
    for (id, url) in [
        ("q1", "http://ex.org/q/a"),
        ("q2", "http://ex.org/q/b"),
        ("q3", "http://other.org/q"),
    ] {
        put(
            s,
            json!({"resourceType": "Questionnaire", "id": id, "status": "active", "url": url}),
        );
    }
}

fn set(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

#[test]
fn filter_finds_what_the_equivalent_plain_search_finds() {
    let mut failures = Vec::new();
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        load(&s);
        let f = &mut failures;
        let all_patients = ids(&s, "Patient");

        // string: sw is the plain search, co is `:contains`, eq and ew compare the whole
        // normalised value (no plain form: computed from the stored names).
        same(
            &s,
            f,
            "Patient",
            r#"family co "ete""#,
            "family:contains=ete",
        );
        same(&s, f, "Patient", "family sw pet", "family=pet");
        same(&s, f, r#"Patient"#, r#"name sw "peter""#, "name=peter");
        let by_family = |keep: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
            PATIENTS
                .iter()
                .filter(|p| keep(&norm(p.1)))
                .map(|p| p.0.to_string())
                .collect()
        };
        check(
            &s,
            f,
            "Patient",
            "family eq peter",
            &by_family(&|n| n == "peter"),
        );
        check(
            &s,
            f,
            "Patient",
            r#"family eq "PETER""#,
            &by_family(&|n| n == "peter"),
        );
        check(
            &s,
            f,
            "Patient",
            "family ew ter",
            &by_family(&|n| n.ends_with("ter")),
        );
        check(
            &s,
            f,
            "Patient",
            "family ne peter",
            &by_family(&|n| n != "peter"),
        );

        // token.
        same(&s, f, "Patient", "gender eq male", "gender=male");
        same(&s, f, "Patient", "gender ne male", "gender:not=male");
        same(&s, f, "Patient", "gender pr false", "gender:missing=true");
        same(&s, f, "Patient", "gender pr true", "gender:missing=false");
        same(&s, f, "Patient", "_id eq p3", "_id=p3");
        same(
            &s,
            f,
            "Observation",
            &format!("code eq {LOINC}|1234-5"),
            &format!("code={LOINC}|1234-5"),
        );

        // logic: and is the query's AND, or a union, not a set difference.
        same(
            &s,
            f,
            "Patient",
            "gender eq male or gender eq female",
            "gender=male,female",
        );
        same(
            &s,
            f,
            "Patient",
            "gender eq male and birthdate ge 2000",
            "gender=male&birthdate=ge2000",
        );
        same(&s, f, "Patient", "not (gender eq male)", "gender:not=male");
        let either: BTreeSet<String> = ids(&s, "Patient?gender=male")
            .union(&ids(&s, "Patient?birthdate=lt2000"))
            .cloned()
            .collect();
        let neither = all_patients.difference(&either).cloned().collect();
        check(
            &s,
            f,
            "Patient",
            "not (gender eq male or birthdate lt 2000)",
            &neither,
        );
        check(
            &s,
            f,
            "Patient",
            "not(gender eq male) and not(birthdate lt 2000)",
            &neither,
        );
        // `and` binds tighter than `or`.
        let mixed: BTreeSet<String> = ids(&s, "Patient?gender=female")
            .union(&ids(&s, "Patient?gender=male&birthdate=lt2000"))
            .cloned()
            .collect();
        check(
            &s,
            f,
            "Patient",
            "gender eq female or gender eq male and birthdate lt 2000",
            &mixed,
        );
        // Together with plain parameters.
        let got = ids(
            &s,
            &filtered("Patient", "gender eq male", "birthdate=ge2000"),
        );
        let want = ids(&s, "Patient?gender=male&birthdate=ge2000");
        if got != want || want.is_empty() {
            f.push(format!(
                "[{v}] _filter with a plain parameter: {got:?} vs {want:?}"
            ));
        }

        // date: every prefix is the plain prefix; po is an overlap.
        for p in ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"] {
            same(
                &s,
                f,
                "Patient",
                &format!("birthdate {p} 2000"),
                &format!("birthdate={p}2000"),
            );
            same(
                &s,
                f,
                "Encounter",
                &format!("date {p} 2000"),
                &format!("date={p}2000"),
            );
        }
        let overlapping: BTreeSet<String> = [
            ("e1", "1999-12-01", "2000-01-15"),
            ("e2", "2000-03-01", "2000-04-01"),
            ("e3", "2001-01-01", "2001-02-01"),
            ("e4", "1998-01-01", "2002-01-01"),
            ("e5", "1997-01-01", "1997-02-01"),
        ]
        .iter()
        .filter(|(_, start, end)| *start <= "2000-12-31" && *end >= "2000-01-01")
        .map(|(id, ..)| id.to_string())
        .collect();
        check(&s, f, "Encounter", "date po 2000", &overlapping);

        // number.
        for p in ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"] {
            same(
                &s,
                f,
                "RiskAssessment",
                &format!("probability {p} 0.5"),
                &format!("probability={p}0.5"),
            );
        }

        // quantity (UCUM conversion included: o3 is 5 mg written in g).
        for p in ["eq", "ne", "gt", "lt", "ge", "le", "ap"] {
            same(
                &s,
                f,
                "Observation",
                &format!("value-quantity {p} 5|{UCUM}|mg"),
                &format!("value-quantity={p}5|{UCUM}|mg"),
            );
        }
        // composite.
        same(
            &s,
            f,
            "Observation",
            &format!("code-value-quantity eq {LOINC}|1234-5$gt5|{UCUM}|mg"),
            &format!("code-value-quantity={LOINC}|1234-5$gt5|{UCUM}|mg"),
        );

        // reference: eq and re are the plain reference, chains and bracket filters.
        same(
            &s,
            f,
            "Observation",
            "subject re Patient/p3",
            "subject=Patient/p3",
        );
        same(
            &s,
            f,
            "Observation",
            "subject eq Patient/p2",
            "subject=Patient/p2",
        );
        let all_obs = ids(&s, "Observation");
        let not_p3 = all_obs
            .difference(&ids(&s, "Observation?subject=Patient/p3"))
            .cloned()
            .collect();
        check(&s, f, "Observation", "subject ne Patient/p3", &not_p3);
        same(
            &s,
            f,
            "Observation",
            r#"subject.name co "son""#,
            "subject.name:contains=son",
        );
        same(
            &s,
            f,
            "Observation",
            r#"subject.name sw "peter s""#,
            "subject.name=peter%20s",
        );
        same(
            &s,
            f,
            "Observation",
            "subject.gender eq male",
            "subject:Patient.gender=male",
        );
        same(
            &s,
            f,
            "Observation",
            "subject[gender eq male].family sw pet",
            "subject:Patient.gender=male&subject:Patient.family=pet",
        );
        let grouped: BTreeSet<String> = ids(
            &s,
            &format!("Observation?code={LOINC}|1234-5,{LOINC}|9999-9"),
        )
        .difference(&ids(&s, "Observation?subject=Patient/p3"))
        .cloned()
        .collect();
        check(
            &s,
            f,
            "Observation",
            &format!(
                "(code eq {LOINC}|1234-5 or code eq {LOINC}|9999-9) and not (subject re Patient/p3)"
            ),
            &grouped,
        );

        // uri.
        same(
            &s,
            f,
            "Questionnaire",
            "url eq http://ex.org/q/a",
            "url=http://ex.org/q/a",
        );
        same(
            &s,
            f,
            "Questionnaire",
            "url sw http://ex.org/",
            "url:below=http://ex.org/",
        );
        same(
            &s,
            f,
            "Questionnaire",
            "url sb http://ex.org/",
            "url:below=http://ex.org/",
        );
        let all_q = ids(&s, "Questionnaire");
        let not_a = all_q.difference(&set(&["q1"])).cloned().collect();
        check(&s, f, "Questionnaire", "url ne http://ex.org/q/a", &not_a);
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_filters_and_operators_that_do_not_apply_are_400_naming_filter() {
    let s = Server::start("in-memory", &[]);
    load(&s);
    for (ty, filter, part) in [
        ("Patient", "gender co ma", "gender co ma"),
        (
            "Patient",
            "family eq peter and birthdate co 2000",
            "birthdate co 2000",
        ),
        ("Observation", "subject sw Patient", "subject sw Patient"),
        ("Questionnaire", "url co ex.org", "url co ex.org"),
        ("Patient", "family gt x", "family gt x"),
        ("Patient", "nonsense eq 1", "nonsense eq 1"),
        (
            "Patient",
            "birthdate eq yesterday",
            "birthdate eq yesterday",
        ),
        ("Patient", "gender.name eq x", "gender.name eq x"),
        ("Patient", "family eq", "family eq"),
        ("Patient", "(family eq x", "(family eq x"),
        ("Patient", "family xx y", "family xx y"),
    ] {
        let url = s.url(&filtered(ty, filter, ""));
        // Strict and lenient handling alike: a filter is never dropped in part.
        for handling in ["strict", "lenient"] {
            let r = s
                .client
                .get(&url)
                .header("prefer", format!("handling={handling}"))
                .send()
                .unwrap();
            let issue = outcome(r, 400);
            assert_eq!(issue["expression"][0], "_filter", "{filter}: {issue}");
            let text = issue["diagnostics"].as_str().unwrap_or_default();
            assert!(text.contains(part), "{filter}: `{text}` names `{part}`");
        }
    }
    // Deep nesting is refused, not a stack overflow.
    let deep = format!("{}gender eq male{}", "(".repeat(100), ")".repeat(100));
    let issue = outcome(
        s.client
            .get(s.url(&filtered("Patient", &deep, "")))
            .send()
            .unwrap(),
        400,
    );
    assert_eq!(issue["expression"][0], "_filter", "{issue}");
    // The server still answers.
    assert!(!ids(&s, &filtered("Patient", "gender eq male", "")).is_empty());
}

/// The `partOf` tree of the Locations below: child → parent (L6 and L7 form a cycle).
const TREE: [(&str, Option<&str>); 7] = [
    ("L1", None),
    ("L2", Some("L1")),
    ("L3", Some("L2")),
    ("L4", Some("L1")),
    ("L5", None),
    ("L6", Some("L7")),
    ("L7", Some("L6")),
];

/// `id` and the Locations below it (computed from [`TREE`]).
fn below(id: &str) -> BTreeSet<String> {
    let mut out = set(&[id]);
    loop {
        let more: Vec<String> = TREE
            .iter()
            .filter(|(c, p)| p.is_some_and(|p| out.contains(p)) && !out.contains(*c))
            .map(|(c, _)| c.to_string())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

/// `id` and the Locations above it (computed from [`TREE`]).
fn above(id: &str) -> BTreeSet<String> {
    let mut out = set(&[id]);
    let mut cur = id.to_string();
    while let Some(Some(p)) = TREE.iter().find(|(c, _)| *c == cur).map(|(_, p)| *p) {
        if !out.insert(p.to_string()) {
            break;
        }
        cur = p.to_string();
    }
    out
}

#[test]
fn reference_above_and_below_follow_the_targets_hierarchy() {
    let mut failures = Vec::new();
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        // First without `partOf` (a cycle has no order satisfying referential integrity).
        for (id, _) in TREE {
            put(
                &s,
                json!({"resourceType": "Location", "id": id, "name": id}),
            );
        }
        for (id, parent) in TREE {
            if let Some(p) = parent {
                put(
                    &s,
                    json!({"resourceType": "Location", "id": id, "name": id,
                    "partOf": {"reference": format!("Location/{p}")}}),
                );
            }
        }
        // One Encounter at each Location: `e-L3` is at `L3`.
        for (id, _) in TREE {
            put(
                &s,
                json!({"resourceType": "Encounter", "id": format!("e-{id}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "location": [{"location": {"reference": format!("Location/{id}")}}]}),
            );
        }
        let f = &mut failures;
        let mut expect = |query: &str, want: BTreeSet<String>| {
            let got = ids(&s, query);
            if got != want || want.is_empty() {
                f.push(format!(
                    "[{v}] {query}\n    expected {want:?}\n    got      {got:?}"
                ));
            }
        };
        let at = |ls: BTreeSet<String>| -> BTreeSet<String> {
            ls.iter().map(|l| format!("e-{l}")).collect()
        };
        // Locations whose `partof` is L1 or below it; whose `partof` is L3 or above it.
        let child_of = |ls: &BTreeSet<String>| -> BTreeSet<String> {
            TREE.iter()
                .filter(|(_, p)| p.is_some_and(|p| ls.contains(p)))
                .map(|(c, _)| c.to_string())
                .collect()
        };
        for l in ["L1", "L2", "L6"] {
            expect(
                &format!("Location?partof:below=Location/{l}"),
                child_of(&below(l)),
            );
            expect(
                &format!("Encounter?location:below=Location/{l}"),
                at(below(l)),
            );
            expect(&format!("Encounter?location:below={l}"), at(below(l)));
        }
        for l in ["L3", "L4", "L7"] {
            expect(
                &format!("Location?partof:above=Location/{l}"),
                child_of(&above(l)),
            );
            expect(
                &format!("Encounter?location:above=Location/{l}"),
                at(above(l)),
            );
        }
        // OR across values, and the same through `_filter`'s `sb`/`ss`.
        let both: BTreeSet<String> = at(below("L2")).union(&at(below("L5"))).cloned().collect();
        expect("Encounter?location:below=Location/L2,Location/L5", both);
        expect(
            &filtered("Encounter", "location sb Location/L1", ""),
            at(below("L1")),
        );
        expect(
            &filtered("Encounter", "location ss Location/L3", ""),
            at(above("L3")),
        );
        // After a move, the hierarchy is the new one: L2 (with L3) moves under L5.
        put(
            &s,
            json!({"resourceType": "Location", "id": "L2", "name": "L2",
            "partOf": {"reference": "Location/L5"}}),
        );
        let under_l5: BTreeSet<String> = ["L5", "L2", "L3"]
            .iter()
            .map(|x| format!("e-{x}"))
            .collect();
        expect("Encounter?location:below=Location/L5", under_l5);
        // A reference parameter whose targets have no hierarchy keeps the 400.
        let r = s
            .client
            .get(s.url("Observation?subject:below=Patient/x"))
            .send()
            .unwrap();
        let issue = outcome(r, 400);
        if issue["expression"][0] != "subject:below" {
            failures.push(format!("[{v}] subject:below: {issue}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn condition(id: Option<&str>, code: &str) -> Value {
    let mut c = json!({"resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://x/cs", "code": code}]}});
    if let Some(id) = id {
        c["id"] = json!(id);
    }
    c
}

#[test]
fn conditional_interactions_with_terminology_and_lists() {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        put(&s, json!({"resourceType": "Patient", "id": "p"}));
        // A ── A1, A2; B; C; D.
        put(
            &s,
            json!({"resourceType": "CodeSystem", "id": "cs", "url": "http://x/cs",
            "status": "active", "content": "complete",
            "concept": [{"code": "A", "concept": [{"code": "A1"}, {"code": "A2"}]},
                        {"code": "B"}, {"code": "C"}, {"code": "D"}]}),
        );
        for (id, codes) in [
            ("vs-a1", vec!["A1"]),
            ("vs-b", vec!["B"]),
            ("vs-d", vec!["D"]),
        ] {
            let concepts: Vec<Value> = codes.iter().map(|c| json!({"code": c})).collect();
            put(
                &s,
                json!({"resourceType": "ValueSet", "id": id, "url": format!("http://x/{id}"),
                "status": "active", "compose": {"include": [{"system": "http://x/cs", "concept": concepts}]}}),
            );
        }
        put(
            &s,
            json!({"resourceType": "ValueSet", "id": "vs-empty", "url": "http://x/vs-empty",
            "status": "active", "expansion": {"timestamp": "2020-01-01", "total": 0}}),
        );
        for c in ["A", "A1", "A2"] {
            put(&s, condition(Some(&format!("c{c}")), c));
        }
        put(
            &s,
            json!({"resourceType": "List", "id": "l1", "status": "current", "mode": "working",
            "entry": [{"item": {"reference": "Condition/cA1"}}]}),
        );
        let count = |q: &str| ids(&s, q).len();
        let create = |cond: &str, code: &str| -> (u16, Value) {
            json(
                s.post_json("Condition", &condition(None, code))
                    .header("if-none-exist", cond)
                    .send()
                    .unwrap(),
            )
        };

        // If-None-Exist with `:in`: the one match answers, as the search finds it.
        let found = ids(&s, "Condition?code:in=http://x/vs-a1");
        assert_eq!(found.len(), 1, "[{v}] {found:?}");
        let (st, r) = create("code:in=http://x/vs-a1", "A1");
        assert_eq!(st, 200, "[{v}] {r}");
        assert!(found.contains(r["id"].as_str().unwrap()), "[{v}] {r}");
        // Without a match it creates, and the indexer's check sees the created one next time.
        assert!(ids(&s, "Condition?code:in=http://x/vs-b").is_empty());
        let (st, first) = create("code:in=http://x/vs-b", "B");
        assert_eq!(st, 201, "[{v}] {first}");
        let (st, again) = create("code:in=http://x/vs-b", "B");
        assert_eq!((st, &again["id"]), (200, &first["id"]), "[{v}] {again}");
        // `:below` and `_list` conditions.
        let (st, r) = create("code:below=http://x/cs|A2", "A2");
        assert_eq!((st, r["id"].as_str()), (200, Some("cA2")), "[{v}] {r}");
        let (st, r) = create("_list=l1", "A1");
        assert_eq!((st, r["id"].as_str()), (200, Some("cA1")), "[{v}] {r}");
        // An empty value set matches nothing: each create creates.
        let before = count("Condition");
        for _ in 0..2 {
            let (st, r) = create("code:in=http://x/vs-empty", "C");
            assert_eq!(st, 201, "[{v}] {r}");
        }
        assert_eq!(count("Condition"), before + 2, "[{v}]");

        // 20 concurrent identical conditional creates with `:in` create once.
        let results: Vec<(u16, Value)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..20)
                .map(|_| sc.spawn(|| create("code:in=http://x/vs-d&subject=Patient/p", "D")))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = results.iter().filter(|(st, _)| *st == 201).count();
        let ids_seen: BTreeSet<&str> = results
            .iter()
            .filter_map(|(_, r)| r["id"].as_str())
            .collect();
        assert_eq!(created, 1, "[{v}] {results:?}");
        assert_eq!(ids_seen.len(), 1, "[{v}] {results:?}");

        // Conditional update with `:not-in` and `_list`; conditional delete with `:in`.
        let r = s
            .put_json("Condition?_list=l1", &condition(None, "A1"))
            .send()
            .unwrap();
        let (st, b) = json(r);
        assert_eq!((st, b["id"].as_str()), (200, Some("cA1")), "[{v}] {b}");
        let not_in = ids(
            &s,
            "Condition?code:not-in=http://x/vs-a1&code=http://x/cs|A2",
        );
        assert_eq!(not_in, set(&["cA2"]), "[{v}]");
        let (st, b) = json(
            s.put_json(
                "Condition?code:not-in=http://x/vs-a1&code=http://x/cs|A2",
                &condition(None, "A2"),
            )
            .send()
            .unwrap(),
        );
        assert_eq!((st, b["id"].as_str()), (200, Some("cA2")), "[{v}] {b}");
        let doomed = ids(&s, "Condition?code:in=http://x/vs-b");
        assert_eq!(doomed.len(), 1, "[{v}] {doomed:?}");
        let st = s
            .delete("Condition?code:in=http://x/vs-b")
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert!(st == 200 || st == 204, "[{v}] {st}");
        assert!(
            ids(&s, "Condition?code:in=http://x/vs-b").is_empty(),
            "[{v}]"
        );
        let id = doomed.iter().next().unwrap();
        let st = s
            .get(&format!("Condition/{id}"))
            .send()
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(st, 410, "[{v}]");
    }
}
