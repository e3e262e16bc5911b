//! Loads the 120 Synthea patients of `../shared/synthea` (two batch bundles of Organizations,
//! Locations and Practitioners with `ifNoneExist`, then one transaction per patient whose
//! references to them are conditional) into one server, then runs realistic searches and
//! compares each result with a count this test computes itself from the raw bundles; then
//! checks that date searches partition the timeline (`synthea/dates.rs`) and evaluates
//! research measures over the population the same way (`synthea/measures.rs`).
//!
//! Storage: `standalone` unless `FLINT_SYNTHEA_STORAGE` names another variant (`in-memory`).
//! Without `../shared/synthea` the test fails.

mod common;
#[path = "synthea/dates.rs"]
mod dates;
#[path = "common/measure.rs"]
mod measure;
#[path = "synthea/measures.rs"]
mod measures;
#[path = "common/synthea_data.rs"]
mod synthea_data;

use common::{Server, entries_with_mode, json, link, search_all_pages, search_page};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;
use synthea_data::{Data, has_coding};

const SYNTHEA: &str = "https://github.com/synthetichealth/synthea";
const LOINC: &str = "http://loinc.org";
const SNOMED: &str = "http://snomed.info/sct";

fn synthea_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea"
    ))
}

/// The Synthea identifier (the original uuid) of a resource.
fn synthea_id(r: &Value) -> Option<String> {
    r["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == SYNTHEA)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// A FHIR dateTime with seconds and a time zone (`2010-09-16T12:21:06+02:00`, `...Z`,
/// optional fraction) as the half-open interval it denotes, in milliseconds since the epoch.
fn instant(s: &str) -> (i64, i64) {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let day = days_from_civil(n(0, 4), n(5, 7), n(8, 10));
    let mut ms = ((day * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000;
    let mut rest = &s[19..];
    let mut width = 1000;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.find(|c: char| !c.is_ascii_digit()).unwrap();
        let frac = &f[..digits];
        let scaled: String = format!("{frac:0<3}").chars().take(3).collect();
        ms += scaled.parse::<i64>().unwrap();
        width = if digits >= 3 {
            1
        } else {
            10i64.pow(3 - digits as u32)
        };
        rest = &f[digits..];
    }
    if rest != "Z" {
        let sign = if rest.starts_with('-') { -1 } else { 1 };
        let off =
            (rest[1..3].parse::<i64>().unwrap() * 60 + rest[4..6].parse::<i64>().unwrap()) * 60_000;
        ms -= sign * off;
    }
    (ms, ms + width)
}

/// The interval of a Period (open end: ongoing).
fn period(p: &Value) -> (i64, i64) {
    let lo = p["start"].as_str().map_or(i64::MIN, |s| instant(s).0);
    let hi = p["end"].as_str().map_or(i64::MAX, |s| instant(s).1);
    (lo, hi)
}

/// Date prefixes on intervals (search.html#prefix): `ge` = the range above the search value
/// overlaps the target, or the search range contains it; `lt` = the range below overlaps.
fn date_ge(search: (i64, i64), target: (i64, i64)) -> bool {
    // (the second case reduces to a lower bound at or after the search lower bound)
    target.1 > search.1 || target.0 >= search.0
}
fn date_lt(search: (i64, i64), target: (i64, i64)) -> bool {
    target.0 < search.0
}

/// Total of `query` with `_summary=count`.
fn count(s: &Server, query: &str) -> u64 {
    let sep = if query.contains('?') { '&' } else { '?' };
    let b = search_page(s, &format!("{query}{sep}_summary=count"));
    b["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{query}: no total in {b}"))
}

/// All match entries of `query` over all pages (`_count` as given in the query).
fn all_matches(s: &Server, query: &str) -> Vec<Value> {
    let pages = search_all_pages(s, query);
    let total = pages[0]["total"].as_u64();
    let mut out = Vec::new();
    for p in &pages {
        for e in p["entry"].as_array().into_iter().flatten() {
            if e["search"]["mode"] == "match" {
                out.push(e["resource"].clone());
            }
        }
    }
    let distinct: BTreeSet<String> = out
        .iter()
        .map(|r| format!("{}/{}", r["resourceType"], r["id"]))
        .collect();
    assert_eq!(
        distinct.len(),
        out.len(),
        "{query}: duplicates across pages"
    );
    assert_eq!(total, Some(out.len() as u64), "{query}: total");
    out
}

struct Timer(Instant);
impl Timer {
    fn done(self, what: &str, n: usize) {
        println!(
            "{:>8.1} ms  {n:>6}  {what}",
            self.0.elapsed().as_secs_f64() * 1000.0
        );
    }
}
fn timer() -> Timer {
    Timer(Instant::now())
}

/// Checks the `_summary=count` total and, for results of moderate size, every page of the
/// result, against `expected`.
fn check_count(s: &Server, query: &str, expected: usize) {
    let t = timer();
    let n = count(s, query);
    assert_eq!(n, expected as u64, "_summary=count of {query}");
    if expected <= 3000 {
        let sep = if query.contains('?') { '&' } else { '?' };
        let m = all_matches(s, &format!("{query}{sep}_count=500"));
        assert_eq!(m.len(), expected, "matches of {query}");
    }
    t.done(query, expected);
}

#[test]
fn synthea_load_and_search() {
    let dir = synthea_dir();
    assert!(
        dir.is_dir(),
        "{} not found: the Synthea bundles belong in ../shared/synthea beside the repository",
        dir.display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".json.bz2"))
        .collect();
    files.sort();
    let t = Instant::now();
    let bundles: Vec<Value> = files
        .iter()
        .map(|f| {
            let mut text = String::new();
            bzip2::read::MultiBzDecoder::new(std::fs::File::open(f).unwrap())
                .read_to_string(&mut text)
                .unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    println!(
        "decompressed and parsed {} bundles in {:.1} s",
        bundles.len(),
        t.elapsed().as_secs_f64()
    );
    let data = Data::new(&bundles);

    let storage: &'static str = match std::env::var("FLINT_SYNTHEA_STORAGE").as_deref() {
        Ok("in-memory") => "in-memory",
        _ => "standalone",
    };
    let mut s = Server::start(storage, &[]);

    // Load: the batch bundles (names starting with 0-) first, then the patients.
    let t = Instant::now();
    let (first, rest): (Vec<_>, Vec<_>) = files
        .iter()
        .zip(&bundles)
        .partition(|(f, _)| f.file_name().unwrap().to_string_lossy().starts_with("0-"));
    assert_eq!(first.len(), 2, "two batch bundles");
    for (f, b) in first.iter().chain(&rest) {
        let started = Instant::now();
        let r = match s.post_json("", b).send() {
            Ok(r) => r,
            Err(e) => panic!(
                "{}: {e:?}; server process: {:?}",
                f.display(),
                s.child.try_wait()
            ),
        };
        let (st, v) = json(r);
        if started.elapsed().as_secs() >= 5 {
            println!(
                "slow: {} took {:.1} s",
                f.display(),
                started.elapsed().as_secs_f64()
            );
        }
        assert_eq!(st, 200, "{}: {v}", f.display());
        for e in v["entry"].as_array().unwrap() {
            let status = e["response"]["status"].as_str().unwrap_or_default();
            assert!(status.starts_with('2'), "{}: entry {e}", f.display());
        }
    }
    println!(
        "loaded {} resources ({}) in {:.1} s",
        data.resources.len(),
        storage,
        t.elapsed().as_secs_f64()
    );

    // Totals per type and over the system equal the resources of the data (conditional creates
    // that matched counted once).
    for t in [
        "Patient",
        "Observation",
        "Claim",
        "Organization",
        "Practitioner",
    ] {
        check_count(&s, t, data.of_type(t).count());
    }
    check_count(&s, "", data.resources.len());

    // token: gender; date: birthdate below 1960 (a day is below the year 1960 iff it is before
    // 1960-01-01).
    check_count(
        &s,
        "Patient?gender=female",
        data.of_type("Patient")
            .filter(|p| p["gender"] == "female")
            .count(),
    );
    check_count(
        &s,
        "Patient?birthdate=lt1960",
        data.of_type("Patient")
            .filter(|p| p["birthDate"].as_str().unwrap() < "1960-01-01")
            .count(),
    );
    // string: family prefix, case-insensitive.
    check_count(
        &s,
        "Patient?family=ma",
        data.of_type("Patient")
            .filter(|p| {
                p["name"].as_array().into_iter().flatten().any(|n| {
                    n["family"]
                        .as_str()
                        .is_some_and(|f| f.to_lowercase().starts_with("ma"))
                })
            })
            .count(),
    );

    // token system|code on Observation and Condition.
    let obs_with = |code: &str| -> Vec<&Value> {
        data.of_type("Observation")
            .filter(|o| has_coding(&o["code"], LOINC, code))
            .collect()
    };
    check_count(
        &s,
        "Observation?code=http://loinc.org|8302-2",
        obs_with("8302-2").len(),
    );
    check_count(
        &s,
        "Condition?code=http://snomed.info/sct|444814009",
        data.of_type("Condition")
            .filter(|c| has_coding(&c["code"], SNOMED, "444814009"))
            .count(),
    );
    check_count(
        &s,
        "Observation?category=laboratory",
        data.of_type("Observation")
            .filter(|o| {
                o["category"].as_array().into_iter().flatten().any(|c| {
                    c["coding"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["code"] == "laboratory")
                })
            })
            .count(),
    );

    // quantity: body weight above 80 kg (gt ignores the implicit precision).
    check_count(
        &s,
        "Observation?code=http://loinc.org|29463-7&value-quantity=gt80|http://unitsofmeasure.org|kg",
        obs_with("29463-7")
            .into_iter()
            .filter(|o| {
                o["valueQuantity"]["code"] == "kg"
                    && o["valueQuantity"]["value"].as_f64().unwrap() > 80.0
            })
            .count(),
    );

    // date: body heights measured in 2015 (UTC), effectiveDateTime with offsets.
    let (y2015, y2016) = (
        instant("2015-01-01T00:00:00Z"),
        instant("2016-01-01T00:00:00Z"),
    );
    check_count(
        &s,
        "Observation?code=http://loinc.org|8302-2&date=ge2015-01-01T00:00:00Z&date=lt2016-01-01T00:00:00Z",
        obs_with("8302-2")
            .into_iter()
            .filter(|o| {
                let t = instant(o["effectiveDateTime"].as_str().unwrap());
                date_ge(y2015, t) && date_lt(y2016, t)
            })
            .count(),
    );
    // date on Encounter.period: encounters overlapping 2019.
    let (y2019, y2020) = (
        instant("2019-01-01T00:00:00Z"),
        instant("2020-01-01T00:00:00Z"),
    );
    check_count(
        &s,
        "Encounter?date=ge2019-01-01T00:00:00Z&date=lt2020-01-01T00:00:00Z",
        data.of_type("Encounter")
            .filter(|e| {
                let p = period(&e["period"]);
                date_ge(y2019, p) && date_lt(y2020, p)
            })
            .count(),
    );

    // composite: blood pressures with a systolic component above 140.
    check_count(
        &s,
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt140",
        data.of_type("Observation")
            .filter(|o| {
                o["component"].as_array().into_iter().flatten().any(|c| {
                    has_coding(&c["code"], LOINC, "8480-6")
                        && c["valueQuantity"]["value"]
                            .as_f64()
                            .is_some_and(|v| v > 140.0)
                })
            })
            .count(),
    );

    // chaining: body heights of female patients; body weights of patients born 2000 or later
    // (birthdate ge2000: the day is in 2000 or after it).
    check_count(
        &s,
        "Observation?subject:Patient.gender=female&code=http://loinc.org|8302-2",
        obs_with("8302-2")
            .into_iter()
            .filter(|o| data.resolve(&o["subject"]).unwrap()["gender"] == "female")
            .count(),
    );
    check_count(
        &s,
        "Observation?patient.birthdate=ge2000&code=http://loinc.org|29463-7",
        obs_with("29463-7")
            .into_iter()
            .filter(|o| {
                data.resolve(&o["subject"]).unwrap()["birthDate"]
                    .as_str()
                    .unwrap()
                    >= "2000-01-01"
            })
            .count(),
    );
    // chaining through a conditional reference: encounters at the organisation with the most
    // encounters, found by its identifier.
    let mut per_org: HashMap<String, usize> = HashMap::new();
    for e in data.of_type("Encounter") {
        let org = data
            .resolve(&e["serviceProvider"])
            .expect("serviceProvider resolves");
        *per_org.entry(synthea_id(org).unwrap()).or_default() += 1;
    }
    let (org, n) = per_org
        .iter()
        .max_by_key(|(k, n)| (**n, (*k).clone()))
        .unwrap();
    check_count(
        &s,
        &format!("Encounter?service-provider.identifier={SYNTHEA}|{org}"),
        *n,
    );

    // _has: patients with prediabetes, compared by their Synthea identifiers.
    let t = timer();
    let expected: BTreeSet<String> = data
        .of_type("Condition")
        .filter(|c| has_coding(&c["code"], SNOMED, "15777000"))
        .map(|c| synthea_id(data.resolve(&c["subject"]).unwrap()).unwrap())
        .collect();
    let q = "Patient?_has:Condition:subject:code=http://snomed.info/sct|15777000&_count=10";
    let got: BTreeSet<String> = all_matches(&s, q)
        .iter()
        .map(|p| synthea_id(p).unwrap())
        .collect();
    assert_eq!(got, expected, "{q}");
    t.done(q, got.len());

    // _include over pages: each page includes exactly the subjects of its matches; over all
    // pages, the distinct included patients are those with a COVID-19 condition.
    let t = timer();
    let q = "Condition?code=http://snomed.info/sct|840539006&_include=Condition:subject&_count=20";
    let covid: Vec<&Value> = data
        .of_type("Condition")
        .filter(|c| has_coding(&c["code"], SNOMED, "840539006"))
        .collect();
    let pages = search_all_pages(&s, q);
    let mut n_matches = 0;
    let mut patients = BTreeSet::new();
    for p in &pages {
        let mut subjects = BTreeSet::new();
        let mut inc = BTreeSet::new();
        for e in p["entry"].as_array().into_iter().flatten() {
            let r = &e["resource"];
            if e["search"]["mode"] == "match" {
                n_matches += 1;
                subjects.insert(r["subject"]["reference"].as_str().unwrap().to_string());
            } else {
                assert_eq!(r["resourceType"], "Patient");
                assert!(inc.insert(format!("Patient/{}", r["id"].as_str().unwrap())));
                patients.insert(synthea_id(r).unwrap());
            }
        }
        assert_eq!(inc, subjects, "{q}: includes of a page");
    }
    assert_eq!(n_matches, covid.len(), "{q}");
    assert_eq!(pages[0]["total"], covid.len(), "{q}");
    let expected: BTreeSet<String> = covid
        .iter()
        .map(|c| synthea_id(data.resolve(&c["subject"]).unwrap()).unwrap())
        .collect();
    assert_eq!(patients, expected, "{q}");
    t.done(q, n_matches);

    // _revinclude: the conditions of male patients born before 1950.
    let t = timer();
    let q = "Patient?gender=male&birthdate=lt1950&_revinclude=Condition:subject&_count=1000";
    let page = search_page(&s, q);
    assert!(link(&page, "next").is_none());
    let old_men: BTreeSet<String> = data
        .of_type("Patient")
        .filter(|p| p["gender"] == "male" && p["birthDate"].as_str().unwrap() < "1950-01-01")
        .map(|p| synthea_id(p).unwrap())
        .collect();
    let conditions = data
        .of_type("Condition")
        .filter(|c| old_men.contains(&synthea_id(data.resolve(&c["subject"]).unwrap()).unwrap()))
        .count();
    let inc = entries_with_mode(&page, "include");
    assert_eq!(
        entries_with_mode(&page, "match").len(),
        old_men.len(),
        "{q}"
    );
    assert_eq!(inc.len(), conditions, "{q}");
    assert!(inc.iter().all(|t| t.starts_with("Condition/")), "{q}");
    t.done(q, inc.len());

    // Compartment: heart rates of the patient with the most of them.
    let mut per_patient: HashMap<String, usize> = HashMap::new();
    for o in obs_with("8867-4") {
        let p = data.resolve(&o["subject"]).unwrap();
        *per_patient.entry(synthea_id(p).unwrap()).or_default() += 1;
    }
    let (uuid, n) = per_patient
        .iter()
        .max_by_key(|(k, n)| (**n, (*k).clone()))
        .unwrap();
    let found = all_matches(&s, &format!("Patient?identifier={SYNTHEA}|{uuid}"));
    assert_eq!(found.len(), 1);
    let pid = found[0]["id"].as_str().unwrap();
    check_count(
        &s,
        &format!("Patient/{pid}/Observation?code=http://loinc.org|8867-4"),
        *n,
    );

    // _sort with paging through all pages: ascending birth dates, every patient once.
    let t = timer();
    let q = "Patient?_sort=birthdate&_count=7";
    let all = all_matches(&s, q);
    assert_eq!(all.len(), data.of_type("Patient").count(), "{q}");
    let dates: Vec<&str> = all
        .iter()
        .map(|p| p["birthDate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{q}: {dates:?}");
    t.done(q, all.len());
    // Descending effective time of body heights, 100 a page.
    let t = timer();
    let q = "Observation?code=http://loinc.org|8302-2&_sort=-date&_count=100";
    let all = all_matches(&s, q);
    assert_eq!(all.len(), obs_with("8302-2").len(), "{q}");
    let times: Vec<i64> = all
        .iter()
        .map(|o| instant(o["effectiveDateTime"].as_str().unwrap()).0)
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{q}");
    t.done(q, all.len());

    dates::run(&s, &data);
    measures::run(&s, &data);
}
