//! Blaze compatibility at the REST level (issue 19) over HTTP against the real binary, on every
//! storage variant: bare status codes in batch, transaction and history entries, `Link`
//! headers on searchset and history pages, deletions of unknown ids, `DELETE [type]`,
//! system-level `_has`, the `location-distance` of `near` results, long `POST _search`
//! forms paged to the end (and their links expiring), the read-only base StructureDefinitions
//! and the profiles in the CapabilityStatement.

mod common;

use common::{Server, VARIANTS, json, link, outcome};
use serde_json::{Value, json};

fn each_variant(test: impl Fn(&Server)) {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        test(&s);
    }
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

/// The `response.status` of each entry of a response Bundle.
fn statuses(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {b}"))
        .iter()
        .map(|e| {
            e["response"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn entry_statuses_are_bare_codes() {
    each_variant(|s| {
        s.put_json("Patient/st-old", &patient("st-old", "Old"))
            .send()
            .unwrap();
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient("x", "New"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient("st-old", "Changed"), "request": {"method": "PUT", "url": "Patient/st-old"}},
            {"request": {"method": "GET", "url": "Patient/st-old"}},
            {"request": {"method": "GET", "url": "Patient/st-missing"}},
            {"request": {"method": "DELETE", "url": "Patient/st-old"}},
        ]});
        let (st, b) = json(s.post_json("", &batch).send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["201", "200", "200", "404", "204"], "{b}");

        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient("st-tx", "Tx"), "request": {"method": "PUT", "url": "Patient/st-tx"}},
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        ]});
        let (st, b) = json(s.post_json("", &tx).send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["201", "201"], "{b}");

        // History: a create, an update, a delete, newest first.
        let (st, h) = json(s.get("Patient/st-old/_history").send().unwrap());
        assert_eq!(st, 200, "{h}");
        assert_eq!(statuses(&h), ["204", "200", "201"], "{h}");
        let methods: Vec<&str> = h["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["request"]["method"].as_str().unwrap())
            .collect();
        assert_eq!(methods, ["DELETE", "PUT", "PUT"]);
    });
}

/// The `Link` header as (relation, URL) pairs, in order.
fn link_header(r: &reqwest::blocking::Response) -> Vec<(String, String)> {
    let Some(h) = r.headers().get("link") else {
        return Vec::new();
    };
    let h = h.to_str().expect("an ASCII Link header");
    h.split(',')
        .map(|part| {
            let (url, params) = part
                .trim()
                .strip_prefix('<')
                .and_then(|p| p.split_once('>'))
                .unwrap_or_else(|| panic!("not a link-value: {part}"));
            let rel = params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("rel="))
                .next()
                .unwrap_or_else(|| panic!("no rel: {part}"))
                .trim_matches('"');
            (rel.to_string(), url.to_string())
        })
        .collect()
}

/// The Bundle's links as (relation, URL) pairs, in order.
fn bundle_links(b: &Value) -> Vec<(String, String)> {
    b["link"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["relation"].as_str().unwrap().to_string(),
                l["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// GETs `url`, asserts 200 and a `Link` header that lists the Bundle's links; the Bundle.
fn get_with_links(s: &Server, url: &str) -> Value {
    let r = s.client.get(url).send().unwrap();
    let header = link_header(&r);
    let (st, b) = json(r);
    assert_eq!(st, 200, "GET {url}: {b}");
    assert_eq!(header, bundle_links(&b), "GET {url}");
    b
}

fn ids_of(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "outcome")
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn searchset_and_history_pages_carry_link_headers() {
    each_variant(|s| {
        for i in 0..3 {
            s.put_json(
                &format!("Patient/leon{i}"),
                &patient(&format!("leon{i}"), "León"),
            )
            .send()
            .unwrap();
        }
        s.put_json("Patient/other", &patient("other", "Other"))
            .send()
            .unwrap();
        // Page 1: self, first, next; the query value percent-encoded in the self link.
        let first = get_with_links(s, &s.url("Patient?family=León&_count=1"));
        let rels: Vec<String> = bundle_links(&first).into_iter().map(|(r, _)| r).collect();
        assert_eq!(rels, ["self", "first", "next"]);
        let self_url = link(&first, "self").unwrap();
        assert!(self_url.contains("family=Le%C3%B3n"), "{self_url}");
        // Following the header's next links reaches every match once; middle pages also
        // link back.
        let mut seen = ids_of(&first);
        let mut next = link(&first, "next");
        let mut pages = 1;
        while let Some(url) = next {
            let b = get_with_links(s, &url);
            pages += 1;
            assert!(link(&b, "previous").is_some(), "page {pages}: {b}");
            seen.extend(ids_of(&b));
            next = link(&b, "next");
        }
        seen.sort();
        assert_eq!(seen, ["Patient/leon0", "Patient/leon1", "Patient/leon2"]);
        assert_eq!(pages, 3);

        // History pages.
        let h = get_with_links(s, &s.url("Patient/_history?_count=2"));
        assert!(link(&h, "next").is_some(), "{h}");
        let h2 = get_with_links(s, &link(&h, "next").unwrap());
        assert_eq!(h2["type"], "history");

        // Not on other answers.
        let r = s.get("Patient/leon0").send().unwrap();
        assert!(r.headers().get("link").is_none());
    });
}

#[test]
fn deleting_an_unknown_id_records_a_deletion() {
    each_variant(|s| {
        let r = s.delete("Patient/never-there").send().unwrap();
        assert_eq!(r.status(), 204);
        let (st, h) = json(s.get("Patient/never-there/_history").send().unwrap());
        assert_eq!(st, 200, "{h}");
        assert_eq!(h["total"], 1, "{h}");
        let e = &h["entry"].as_array().unwrap()[..];
        assert_eq!(e.len(), 1, "{h}");
        assert_eq!(e[0]["request"]["method"], "DELETE");
        assert_eq!(e[0]["response"]["status"], "204");
        assert!(e[0].get("resource").is_none(), "{h}");
        // It reads as deleted, and a second delete adds nothing.
        assert_eq!(
            outcome(s.get("Patient/never-there").send().unwrap(), 410)["code"],
            "deleted"
        );
        assert_eq!(
            s.delete("Patient/never-there").send().unwrap().status(),
            204
        );
        let (_, h) = json(s.get("Patient/never-there/_history").send().unwrap());
        assert_eq!(h["total"], 1, "{h}");
        // No live resource appeared or went away.
        let (_, c) = json(s.get("Patient?_summary=count").send().unwrap());
        assert_eq!(c["total"], 0, "{c}");
    });
}

fn count(s: &Server, ty: &str) -> u64 {
    let (st, b) = json(s.get(&format!("{ty}?_summary=count")).send().unwrap());
    assert_eq!(st, 200, "{b}");
    b["total"].as_u64().unwrap()
}

/// A transaction of `resources`, each `PUT` under its id; asserts 200.
fn put_all(s: &Server, resources: &[Value]) {
    for chunk in resources.chunks(1000) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|r| {
                json!({"resource": r, "request": {"method": "PUT",
                    "url": format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())}})
            })
            .collect();
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let (st, b) = json(s.post_json("", &tx).send().unwrap());
        assert_eq!(st, 200, "{}", b["issue"]);
    }
}

fn observation(id: &str, subject: &str, code: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
           "subject": {"reference": subject}})
}

#[test]
fn delete_type_without_criteria_deletes_every_resource() {
    for v in VARIANTS {
        let s = Server::start(v, &[("ALLOW_MULTIPLE_DELETE", "true")]);
        let patients: Vec<Value> = (0..5).map(|i| patient(&format!("dp{i}"), "Del")).collect();
        put_all(&s, &patients);
        let obs: Vec<Value> = (0..4)
            .map(|i| observation(&format!("do{i}"), &format!("Patient/dp{i}"), "1-1"))
            .collect();
        put_all(&s, &obs);
        s.put_json(
            "Organization/keep",
            &json!({"resourceType": "Organization", "id": "keep"}),
        )
        .send()
        .unwrap();
        // The Patients are referenced: deleting them alone breaks referential integrity.
        outcome(s.delete("Patient").send().unwrap(), 409);
        assert_eq!(count(&s, "Patient"), 5);
        // Both types in one transaction.
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "Observation"}},
            {"request": {"method": "DELETE", "url": "Patient"}},
        ]});
        let (st, b) = json(s.post_json("", &tx).send().unwrap());
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["204", "204"]);
        assert_eq!((count(&s, "Patient"), count(&s, "Observation")), (0, 0));
        assert_eq!(count(&s, "Organization"), 1);
        // Each deletion is in the history.
        let (_, h) = json(s.get("Patient/_history?_count=100").send().unwrap());
        let deletes = h["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["request"]["method"] == "DELETE")
            .count();
        assert_eq!(deletes, patients.len());
        // Over HTTP on its own.
        put_all(&s, &patients);
        assert_eq!(s.delete("Patient").send().unwrap().status(), 204);
        assert_eq!(count(&s, "Patient"), 0);
    }
    // Without ALLOW_MULTIPLE_DELETE several matches are a 412.
    let s = Server::start("in-memory", &[]);
    put_all(&s, &[patient("a", "A"), patient("b", "B")]);
    outcome(s.delete("Patient").send().unwrap(), 412);
    assert_eq!(count(&s, "Patient"), 2);
}

#[test]
fn delete_type_over_the_limit_is_too_costly() {
    let s = Server::start("in-memory", &[("ALLOW_MULTIPLE_DELETE", "true")]);
    // One more than a conditional delete deletes (10,000, as Blaze).
    let limit = 10_000;
    let patients: Vec<Value> = (0..=limit)
        .map(|i| patient(&format!("m{i}"), "Many"))
        .collect();
    put_all(&s, &patients);
    assert_eq!(count(&s, "Patient"), limit as u64 + 1);
    let i = outcome(s.delete("Patient").send().unwrap(), 409);
    assert_eq!(i["code"], "too-costly", "{i}");
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Patient?family=Many"}},
    ]});
    let i = outcome(s.post_json("", &tx).send().unwrap(), 409);
    assert_eq!(i["code"], "too-costly", "{i}");
    assert_eq!(count(&s, "Patient"), limit as u64 + 1);
    // At the limit it deletes.
    assert_eq!(s.delete("Patient/m0").send().unwrap().status(), 204);
    assert_eq!(s.delete("Patient").send().unwrap().status(), 204);
    assert_eq!(count(&s, "Patient"), 0);
}

#[test]
fn has_at_system_level() {
    each_variant(|s| {
        let group = json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true});
        put_all(
            s,
            &[
                patient("p1", "One"),
                patient("p2", "Two"),
                group,
                json!({"resourceType": "Organization", "id": "org"}),
            ],
        );
        put_all(
            s,
            &[
                observation("o1", "Patient/p1", "x"),
                observation("o2", "Group/g1", "x"),
                observation("o3", "Patient/p2", "y"),
            ],
        );
        let b = get_with_links(s, &s.url("?_has:Observation:subject:code=x"));
        let mut found = ids_of(&b);
        found.sort();
        assert_eq!(found, ["Group/g1", "Patient/p1"], "{b}");
        assert_eq!(b["total"], 2);
        // The same as the type-level searches together.
        let mut typed: Vec<String> = ["Patient", "Group"]
            .iter()
            .flat_map(|t| {
                ids_of(&get_with_links(
                    s,
                    &s.url(&format!("{t}?_has:Observation:subject:code=x")),
                ))
            })
            .collect();
        typed.sort();
        assert_eq!(found, typed);
        // Nested.
        let b = get_with_links(s, &s.url("?_has:Observation:subject:code=y&_type=Patient"));
        assert_eq!(ids_of(&b), ["Patient/p2"]);
    });
}

/// Great-circle distance in km (haversine, mean Earth radius), computed here independently.
fn km_between(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6371.0088;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((b.1 - a.1).to_radians() / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

#[test]
fn near_matches_carry_their_distance() {
    const EXT: &str = "http://hl7.org/fhir/StructureDefinition/location-distance";
    each_variant(|s| {
        let places = [
            ("berlin", 52.52, 13.405),
            ("potsdam", 52.3906, 13.0645),
            ("munich", 48.1372, 11.5756),
        ];
        let locations: Vec<Value> = places
            .iter()
            .map(|(id, lat, lon)| {
                json!({"resourceType": "Location", "id": id, "name": id,
                       "position": {"latitude": lat, "longitude": lon}})
            })
            .collect();
        put_all(s, &locations);
        let centre = (52.5, 13.4);
        let b = get_with_links(
            s,
            &s.url(&format!("Location?near={}|{}|100|km", centre.0, centre.1)),
        );
        let entries = b["entry"].as_array().unwrap();
        let mut found = Vec::new();
        for e in entries {
            let id = e["resource"]["id"].as_str().unwrap();
            let (_, lat, lon) = places.iter().find(|p| p.0 == id).unwrap();
            let ext = &e["search"]["extension"][0];
            assert_eq!(ext["url"], EXT, "{e}");
            let d = &ext["valueDistance"];
            assert_eq!(
                (d["system"].as_str(), d["code"].as_str()),
                (Some("http://unitsofmeasure.org"), Some("km"))
            );
            let km = d["value"].as_f64().unwrap();
            let expected = km_between(centre, (*lat, *lon));
            assert!(
                (km - expected).abs() < 0.002,
                "{id}: {km} km, expected {expected}"
            );
            assert_eq!(e["search"]["mode"], "match");
            found.push(id.to_string());
        }
        found.sort();
        // Munich is further than 100 km.
        assert_eq!(found, ["berlin", "potsdam"]);
        // Other searches have no distance.
        let b = get_with_links(s, &s.url("Location?name=berlin"));
        assert!(b["entry"][0]["search"].get("extension").is_none(), "{b}");
    });
}

/// A UUID-shaped id from a number (Synthea's ids are UUIDs).
fn uuid_id(prefix: u32, i: u32) -> String {
    format!("{prefix:08x}-0000-4000-8000-{i:012x}")
}

#[test]
fn a_long_post_search_pages_to_the_end() {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        let n: u32 = 7000;
        put_all(&s, &[patient("lp", "Long")]);
        let encounters: Vec<Value> = (0..n + 50)
            .map(|i| {
                json!({"resourceType": "Encounter", "id": uuid_id(1, i), "status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                       "subject": {"reference": "Patient/lp"}})
            })
            .collect();
        put_all(&s, &encounters);
        // One Observation per Encounter, a second one for every tenth; 50 Encounters outside
        // the searched list with one each.
        let mut obs = Vec::new();
        for i in 0..n + 50 {
            let per = if i % 10 == 0 { 2 } else { 1 };
            for k in 0..per {
                let mut o = observation(&uuid_id(2 + k, i), "Patient/lp", "8310-5");
                o["encounter"] = json!({"reference": format!("Encounter/{}", uuid_id(1, i))});
                obs.push(o);
            }
        }
        put_all(&s, &obs);
        let listed: Vec<String> = (0..n)
            .map(|i| format!("Encounter/{}", uuid_id(1, i)))
            .collect();
        let mut expected: Vec<String> = obs
            .iter()
            .filter(|o| {
                listed
                    .binary_search(&o["encounter"]["reference"].as_str().unwrap().to_string())
                    .is_ok()
            })
            .map(|o| format!("Observation/{}", o["id"].as_str().unwrap()))
            .collect();
        expected.sort();
        let body = format!("encounter={}&_count=1000", listed.join(","));
        assert!(body.len() > 300_000, "a form of {} bytes", body.len());
        let r = s
            .client
            .post(s.url("Observation/_search"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .unwrap();
        let header = link_header(&r);
        let (st, mut b) = json(r);
        assert_eq!(st, 200, "{b}");
        assert_eq!(header, bundle_links(&b));
        assert_eq!(b["total"].as_u64(), Some(expected.len() as u64));
        let mut found = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            found.extend(ids_of(&b));
            for (rel, url) in bundle_links(&b) {
                assert!(
                    url.len() < 1024,
                    "{rel} link of {} bytes on page {pages}",
                    url.len()
                );
            }
            let Some(next) = link(&b, "next") else { break };
            b = get_with_links(&s, &next);
        }
        assert_eq!(pages, expected.len().div_ceil(1000));
        found.sort();
        let total = found.len();
        found.dedup();
        assert_eq!(found.len(), total, "no match twice");
        assert_eq!(found, expected);
    }
}

#[test]
fn an_expired_long_search_link_is_gone() {
    for v in VARIANTS {
        // Page links (and the kept parameters of long searches) live two seconds.
        let s = Server::start(v, &[("PAGE_LINK_LIFETIME", "2000")]);
        put_all(&s, &[patient("ex", "Expiry")]);
        let encounters: Vec<Value> = (0..100)
            .map(|i| {
                json!({"resourceType": "Encounter", "id": uuid_id(7, i), "status": "finished",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                       "subject": {"reference": "Patient/ex"}})
            })
            .collect();
        put_all(&s, &encounters);
        let obs: Vec<Value> = (0..3)
            .map(|i| {
                let mut o = observation(&uuid_id(8, i), "Patient/ex", "8310-5");
                o["encounter"] = json!({"reference": format!("Encounter/{}", uuid_id(7, i))});
                o
            })
            .collect();
        put_all(&s, &obs);
        let listed: Vec<String> = (0..100)
            .map(|i| format!("Encounter/{}", uuid_id(7, i)))
            .collect();
        // Longer than a link can carry: the parameters are kept by hash.
        let body = format!("encounter={}&_count=1", listed.join(","));
        assert!(body.len() > 1024);
        let search = || {
            json(
                s.client
                    .post(s.url("Observation/_search"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone())
                    .send()
                    .unwrap(),
            )
        };
        let (st, b) = search();
        assert_eq!(st, 200, "{v}: {b}");
        assert_eq!(b["total"], 3, "{v}: {b}");
        let next = link(&b, "next").expect("a next link");
        let (st, page2) = json(s.client.get(&next).send().unwrap());
        assert_eq!(st, 200, "{v}: the link works while it lives: {page2}");
        let next2 = link(&page2, "next").expect("a third page");
        // Past the lifetime the kept parameters are deleted (the node sweeps once a second)
        // and every link of the search answers 410.
        std::thread::sleep(std::time::Duration::from_millis(3500));
        for url in [&next, &next2] {
            let o = outcome(s.client.get(url).send().unwrap(), 410);
            assert_eq!(o["code"], "expired", "{v}: {o}");
            assert!(
                o["diagnostics"]
                    .as_str()
                    .is_some_and(|d| d.contains("run the search again")),
                "{v}: {o}"
            );
        }
        // The search itself runs again, with new links.
        let (st, b) = search();
        assert_eq!(st, 200, "{v}: {b}");
        let (st, _) = json(s.client.get(link(&b, "next").unwrap()).send().unwrap());
        assert_eq!(st, 200, "{v}");
    }
}

/// The total of a search (asserting 200).
fn total(s: &Server, query: &str) -> u64 {
    let (st, b) = json(s.get(query).send().unwrap());
    assert_eq!(st, 200, "{query}: {b}");
    b["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("{query}: {b}"))
}

/// The `supportedProfile` of each resource type of the CapabilityStatement that has one.
fn supported_profiles(s: &Server) -> Vec<(String, Vec<String>)> {
    let (st, cs) = json(s.get("metadata").send().unwrap());
    assert_eq!(st, 200, "{cs}");
    cs["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let ps: Vec<String> = r["supportedProfile"]
                .as_array()?
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            Some((r["type"].as_str().unwrap().to_string(), ps))
        })
        .collect()
}

#[test]
fn base_structure_definitions_are_read_only_resources() {
    for v in VARIANTS {
        let mut s = Server::start(
            v,
            &[
                ("FHIR_BASE_STRUCTURE_DEFINITIONS", "true"),
                ("ENABLE_INTERACTION_DELETE_HISTORY", "true"),
            ],
        );
        let (st, cs) = json(s.get("metadata").send().unwrap());
        assert_eq!(st, 200);
        let types: Vec<String> = cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_string())
            .collect();
        assert!(types.len() > 140, "{v}: {} types", types.len());
        // Each resource type's definition, read by the package's id.
        for ty in &types {
            let (st, sd) = json(s.get(&format!("StructureDefinition/{ty}")).send().unwrap());
            assert_eq!(st, 200, "{v}: StructureDefinition/{ty}: {sd}");
            assert_eq!(sd["type"], ty.as_str());
            assert_eq!(sd["kind"], "resource");
            assert_eq!(sd["derivation"], "specialization");
            assert_eq!(
                sd["url"],
                format!("http://hl7.org/fhir/StructureDefinition/{ty}")
            );
            assert!(sd["snapshot"]["element"].as_array().unwrap().len() > 1);
            assert!(sd["meta"]["versionId"].as_str().is_some());
        }
        // Data types too.
        for (id, kind) in [
            ("string", "primitive-type"),
            ("HumanName", "complex-type"),
            ("Element", "complex-type"),
            ("Resource", "resource"),
        ] {
            let (st, sd) = json(s.get(&format!("StructureDefinition/{id}")).send().unwrap());
            assert_eq!(st, 200, "{v}: {id}");
            assert_eq!(sd["kind"], kind, "{v}: {id}");
        }
        // Searchable like any resource.
        let (_, b) = json(
            s.get("StructureDefinition?url=http://hl7.org/fhir/StructureDefinition/Patient")
                .send()
                .unwrap(),
        );
        assert_eq!(b["total"], 1, "{v}: {b}");
        assert_eq!(b["entry"][0]["resource"]["id"], "Patient");
        let (_, b) = json(
            s.get("StructureDefinition?type=Observation")
                .send()
                .unwrap(),
        );
        assert_eq!(b["total"], 1, "{v}: {b}");
        assert_eq!(b["entry"][0]["resource"]["id"], "Observation");
        // Concrete resource types: those of the CapabilityStatement (Resource and
        // DomainResource are abstract).
        assert_eq!(
            total(
                &s,
                "StructureDefinition?kind=resource&abstract=false&_summary=count"
            ),
            types.len() as u64,
            "{v}"
        );
        assert_eq!(
            total(&s, "StructureDefinition?kind=resource&_summary=count"),
            types.len() as u64 + 2,
            "{v}"
        );
        let all = total(&s, "StructureDefinition?_summary=count");
        assert_eq!(
            total(
                &s,
                "StructureDefinition?derivation=specialization&_summary=count"
            ) + total(
                &s,
                "StructureDefinition?kind=complex-type&derivation:missing=true&_summary=count"
            ) + total(
                &s,
                "StructureDefinition?kind=resource&derivation:missing=true&_summary=count"
            ),
            all,
            "{v}: every base definition is a specialization (Element and Resource have none)"
        );
        assert_eq!(
            total(
                &s,
                "StructureDefinition?derivation=constraint&_summary=count"
            ),
            0
        );

        // Read-only: updates, deletes, conditional ones and history deletion are 409.
        let (_, patient_sd) = json(s.get("StructureDefinition/Patient").send().unwrap());
        let version = patient_sd["meta"]["versionId"].clone();
        let mut changed = patient_sd.clone();
        changed["description"] = json!("changed");
        let refused = [
            s.put_json("StructureDefinition/Patient", &changed),
            s.put_json(
                "StructureDefinition?url=http://hl7.org/fhir/StructureDefinition/Patient",
                &changed,
            ),
            s.delete("StructureDefinition/Patient"),
            s.delete("StructureDefinition?url=http://hl7.org/fhir/StructureDefinition/Patient"),
            s.delete("StructureDefinition/Patient/_history"),
            s.patch(
                "StructureDefinition/Patient",
                "application/json-patch+json",
                r#"[{"op": "replace", "path": "/status", "value": "draft"}]"#,
            ),
        ];
        for r in refused {
            let o = outcome(r.send().unwrap(), 409);
            assert_eq!(o["code"], "business-rule", "{v}: {o}");
            assert!(
                o["diagnostics"].as_str().is_some_and(|d| d
                    .contains("StructureDefinition/Patient")
                    && d.contains("read-only")),
                "{v}: {o}"
            );
        }
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "StructureDefinition/string"}}]});
        outcome(s.post_json("", &tx).send().unwrap(), 409);
        let (_, after) = json(s.get("StructureDefinition/Patient").send().unwrap());
        assert_eq!(after["meta"]["versionId"], version, "{v}: unchanged");
        assert_eq!(total(&s, "StructureDefinition?_summary=count"), all);

        // Profiles are StructureDefinitions of their own: created, and listed as the
        // supportedProfile of the type they constrain.
        assert_eq!(supported_profiles(&s), vec![], "{v}");
        let profile = |id: &str, url: &str, version: Option<&str>, ty: &str| {
            let mut p = json!({"resourceType": "StructureDefinition", "id": id, "url": url,
                "name": id.replace('-', ""), "status": "active", "kind": "resource",
                "abstract": false, "type": ty, "derivation": "constraint",
                "baseDefinition": format!("http://hl7.org/fhir/StructureDefinition/{ty}"),
                "differential": {"element": [{"id": ty, "path": ty}]}});
            if let Some(ver) = version {
                p["version"] = json!(ver);
            }
            p
        };
        for p in [
            profile(
                "my-patient",
                "http://example.org/fhir/StructureDefinition/my-patient",
                Some("1.0.0"),
                "Patient",
            ),
            profile(
                "other-patient",
                "http://example.org/fhir/StructureDefinition/other-patient",
                None,
                "Patient",
            ),
            profile(
                "my-observation",
                "http://example.org/fhir/StructureDefinition/my-observation",
                Some("2"),
                "Observation",
            ),
        ] {
            let url = format!("StructureDefinition/{}", p["id"].as_str().unwrap());
            let (st, b) = json(s.put_json(&url, &p).send().unwrap());
            assert_eq!(st, 201, "{v}: {b}");
        }
        assert_eq!(
            supported_profiles(&s),
            vec![
                (
                    "Observation".to_string(),
                    vec![
                        "http://example.org/fhir/StructureDefinition/my-observation|2".to_string()
                    ]
                ),
                (
                    "Patient".to_string(),
                    vec![
                        "http://example.org/fhir/StructureDefinition/my-patient|1.0.0".to_string(),
                        "http://example.org/fhir/StructureDefinition/other-patient".to_string(),
                    ]
                ),
            ],
            "{v}"
        );
        // Computed from the current database: a deleted profile leaves the list.
        let (st, _) = json(
            s.delete("StructureDefinition/other-patient")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 204);
        let patient_profiles: Vec<Vec<String>> = supported_profiles(&s)
            .into_iter()
            .filter(|(t, _)| t == "Patient")
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            patient_profiles,
            vec![vec![
                "http://example.org/fhir/StructureDefinition/my-patient|1.0.0".to_string()
            ]]
        );

        // A restart writes nothing again: one version each.
        if v == "standalone" {
            let (_, h) = json(
                s.get("StructureDefinition/_history?_count=1")
                    .send()
                    .unwrap(),
            );
            let changes = h["total"].clone();
            assert!(changes.as_u64().unwrap() > all, "{v}: {h}");
            s.kill();
            s.restart();
            let (_, h) = json(
                s.get("StructureDefinition/_history?_count=1")
                    .send()
                    .unwrap(),
            );
            assert_eq!(h["total"], changes, "{v}: no new versions after a restart");
            let (_, h) = json(
                s.get("StructureDefinition/Patient/_history")
                    .send()
                    .unwrap(),
            );
            assert_eq!(h["total"], 1, "{v}");
        }
    }
}
