//! The engine over a real database node (in-memory adapters): resources written through the
//! indexer hook, queries answered by index scans, checked against the reference semantics of
//! `Clause::matches` evaluated resource by resource.

use flint_db::mem::MemKv;
use flint_db::{Node, TxCmd, TxOp};
use flint_search::{Clause, Engine, Registry, parse_query};
use serde_json::{Value, json};
use std::sync::Arc;

async fn node(engine: &Engine) -> Node {
    flint_db::testing::memory_node(engine.indexer(), Arc::new(MemKv::new())).await
}

async fn put(node: &Node, r: &Value) {
    flint_db::testing::put_json(node, r).await;
}

fn patients() -> Vec<Value> {
    let names = [
        "Anna", "Bert", "Carla", "Dora", "Emil", "Frida", "Gustav", "Hanna",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut p = json!({"resourceType": "Patient", "id": format!("p{i}"),
                "name": [{"family": format!("{n}son"), "given": [n]}],
                "gender": if i % 2 == 0 { "female" } else { "male" },
                "birthDate": format!("19{}0-0{}-1{}", 5 + i % 5, 1 + i % 9, i % 10)});
            if i % 3 == 0 {
                p["managingOrganization"] = json!({"reference": "Organization/o1"});
            }
            if i == 7 {
                p.as_object_mut().unwrap().remove("gender");
            }
            p
        })
        .collect()
}

fn observations() -> Vec<Value> {
    let mut out: Vec<Value> = (0..24)
        .map(|i| {
            json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org",
                    "code": if i % 3 == 0 { "8480-6" } else { "29463-7" }}]},
                "subject": {"reference": format!("Patient/p{}", i % 8)},
                "effectiveDateTime": format!("2020-0{}-15T10:00:00+02:00", 1 + i % 6),
                "valueQuantity": {"value": 50 + i * 5, "unit": "kg",
                    "system": "http://unitsofmeasure.org", "code": "kg"}})
        })
        .collect();
    // A subject outside the parameter's target types (Patient, Group, Device, Location) and
    // a code of another system.
    out.push(
        json!({"resourceType": "Observation", "id": "o24", "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "27113001"}]},
        "subject": {"reference": "Medication/p3"}}),
    );
    out
}

/// Ids the reference semantics select: each resource's extracted values against each clause.
fn expected(reg: &Registry, resources: &[Value], ty: &str, query: &str) -> Vec<String> {
    let pairs = flint_pairs(query);
    let q = parse_query(reg, ty, &pairs).unwrap();
    let mut ids: Vec<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == ty)
        .filter(|r| {
            let values = reg.extract(r).unwrap();
            q.clauses.iter().all(|c| {
                let Clause::Param(p) = c else {
                    panic!("only parameter clauses here")
                };
                let of: Vec<_> = values
                    .iter()
                    .filter(|(pr, _)| pr.code == p.param.code)
                    .map(|(_, v)| v.clone())
                    .collect();
                c.matches(&of).unwrap()
            })
        })
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn flint_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn ids(hs: &[flint_db::ResourceHandle]) -> Vec<String> {
    hs.iter().map(|h| h.id.clone()).collect()
}

#[tokio::test]
async fn parameter_clauses_agree_with_reference_semantics() {
    let reg = Arc::new(Registry::r4());
    let engine = Engine::new(reg.clone());
    let node = node(&engine).await;
    let mut all = patients();
    all.extend(observations());
    for r in &all {
        put(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let cases = [
        ("Patient", "gender=female"),
        ("Patient", "gender:not=female"),
        ("Patient", "gender:missing=true"),
        ("Patient", "gender:missing=false"),
        ("Patient", "name=an"),
        ("Patient", "name:contains=RL"),
        ("Patient", "family:exact=Annason"),
        ("Patient", "birthdate=ge1970&birthdate=lt1990"),
        ("Patient", "birthdate=1960,1980"),
        ("Patient", "organization=Organization/o1"),
        ("Patient", "organization:missing=true&gender=male"),
        ("Observation", "code=8480-6"),
        (
            "Observation",
            "code=http://loinc.org|29463-7&value-quantity=gt100",
        ),
        (
            "Observation",
            "value-quantity=le80|http://unitsofmeasure.org|kg",
        ),
        ("Observation", "date=2020-03"),
        ("Observation", "date=sa2020-04-01&subject=p3"),
        ("Observation", "value-quantity=ne100"),
        ("Observation", "subject=p3"),
        ("Observation", "subject=p3,p4&code=8480-6"),
        ("Observation", "subject:Patient=p3"),
        ("Observation", "subject=Medication/p3"),
        ("Observation", "patient=p3"),
        ("Observation", "code=http://loinc.org|"),
        ("Observation", "code=http://snomed.info/sct|"),
        ("Observation", "code:not=http://loinc.org|"),
    ];
    for (ty, q) in cases {
        let query = parse_query(&reg, ty, &flint_pairs(q)).unwrap();
        let got = ids(&engine.execute(&db, &query).unwrap());
        let want = expected(&reg, &all, ty, q);
        assert_eq!(got, want, "{ty}?{q}");
    }
    // Not vacuous: the cases select something and not everything.
    let q = parse_query(&reg, "Observation", &flint_pairs("code=8480-6")).unwrap();
    assert_eq!(engine.execute(&db, &q).unwrap().len(), 8);
    // A bare id finds references of every type: three to Patient/p3, one to Medication/p3.
    let q = parse_query(&reg, "Observation", &flint_pairs("subject=p3")).unwrap();
    assert_eq!(engine.execute(&db, &q).unwrap().len(), 4);
    let q = parse_query(&reg, "Observation", &flint_pairs("code=http://loinc.org|")).unwrap();
    assert_eq!(engine.execute(&db, &q).unwrap().len(), 24);
}

/// Observations for code-and-value queries, which the engine answers with the
/// `code-value-quantity` composite's rows: several codings, a SampledData value (no
/// quantity), no value, and 70 codings (more combinations than a composite keeps when
/// several components have several values).
fn coded_values() -> Vec<Value> {
    let loinc = |c: &str| json!({"system": "http://loinc.org", "code": c});
    let kg = |v: f64| json!({"value": v, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"});
    let mut out = observations();
    out.push(
        json!({"resourceType": "Observation", "id": "m1", "status": "final",
        "code": {"coding": [loinc("29463-7"), loinc("8480-6")]}, "valueQuantity": kg(55.0)}),
    );
    out.push(json!({"resourceType": "Observation", "id": "m2", "status": "final",
        "code": {"coding": [loinc("29463-7")]},
        "valueSampledData": {"origin": {"value": 10}, "period": 1, "dimensions": 1, "data": "1 2"}}));
    out.push(
        json!({"resourceType": "Observation", "id": "m3", "status": "final",
        "code": {"coding": [loinc("29463-7")]}}),
    );
    let mut many: Vec<Value> = (0..69)
        .map(|i| json!({"system": "http://example.org/codes", "code": format!("x{i}")}))
        .collect();
    many.push(loinc("8480-6"));
    out.push(
        json!({"resourceType": "Observation", "id": "m4", "status": "final",
        "code": {"coding": many}, "valueQuantity": kg(42.0)}),
    );
    out
}

#[tokio::test]
async fn code_and_value_clauses_agree_with_reference_semantics() {
    let reg = Arc::new(Registry::r4());
    let engine = Engine::new(reg.clone());
    let node = node(&engine).await;
    let all = coded_values();
    for r in &all {
        put(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let cases = [
        ("code=http://loinc.org|29463-7&value-quantity=lt60", 2),
        ("code=29463-7&value-quantity=lt60", 2),
        ("value-quantity=lt60&code=8480-6", 3),
        ("code=8480-6,29463-7&value-quantity=lt60,gt150", 7),
        ("code=29463-7&code=8480-6&value-quantity=55", 1),
        ("code=29463-7&value-quantity=lt60&value-quantity=gt52", 2),
        ("code=29463-7&value-quantity=10", 0),
        ("code=http://example.org/codes|x5&value-quantity=42||kg", 1),
        (
            "code=8480-6&value-quantity=le42|http://unitsofmeasure.org|kg",
            1,
        ),
        ("code=29463-7&value-quantity:missing=true", 2),
        ("code:not=29463-7&value-quantity=lt60", 2),
        ("code=http://loinc.org|&value-quantity=lt60", 4),
    ];
    for (q, n) in cases {
        let query = parse_query(&reg, "Observation", &flint_pairs(q)).unwrap();
        let got = ids(&engine.execute(&db, &query).unwrap());
        let want = expected(&reg, &all, "Observation", q);
        assert_eq!(got, want, "Observation?{q}");
        assert_eq!(got.len(), n, "Observation?{q}: {got:?}");
        let count = engine.count(&db, &query).unwrap();
        assert_eq!(count, n, "count of Observation?{q}");
    }
}

#[tokio::test]
async fn chains_has_sort_includes_and_compartments() {
    let reg = Arc::new(Registry::r4());
    let engine = Engine::new(reg.clone());
    let node = node(&engine).await;
    for r in patients().iter().chain(observations().iter()) {
        put(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let run = |ty: &str, q: &str| {
        let query = parse_query(&reg, ty, &flint_pairs(q)).unwrap();
        ids(&engine.execute(&db, &query).unwrap())
    };
    // Observations of female patients (p0, p2, p4, p6: subjects i % 8 even).
    let want: Vec<String> = {
        let mut v: Vec<String> = (0..24)
            .filter(|i| (i % 8) % 2 == 0)
            .map(|i| format!("o{i}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(run("Observation", "subject:Patient.gender=female"), want);
    assert_eq!(run("Observation", "patient.gender=female"), want);
    // Patients with a systolic observation: o0, o3, ..., o21 → subjects 0,3,6,1,4,7,2,5 = all.
    assert_eq!(
        run("Patient", "_has:Observation:subject:code=8480-6").len(),
        8
    );
    // Values above 150 kg: o21, o22, o23 → p5, p6, p7.
    assert_eq!(
        run("Patient", "_has:Observation:subject:value-quantity=gt150"),
        vec!["p5", "p6", "p7"]
    );
    // Sorting by birth date descending, then ascending by id for ties.
    let sorted = run("Patient", "_sort=-birthdate");
    let births: Vec<String> = sorted
        .iter()
        .map(|id| {
            patients()
                .into_iter()
                .find(|p| p["id"] == id.as_str())
                .unwrap()["birthDate"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut desc = births.clone();
    desc.sort_by(|a, b| b.cmp(a));
    assert_eq!(births, desc);
    // Includes: the subject of each matched observation, once.
    let q = parse_query(
        &reg,
        "Observation",
        &flint_pairs("code=8480-6&_include=Observation:subject"),
    )
    .unwrap();
    let page = engine.execute(&db, &q).unwrap();
    let inc = engine.includes(&db, &q, &page).unwrap();
    assert_eq!(inc.len(), 8);
    assert!(inc.iter().all(|h| h.type_name == "Patient"));
    // Reverse includes.
    let q = parse_query(
        &reg,
        "Patient",
        &flint_pairs("_id=p1&_revinclude=Observation:subject"),
    )
    .unwrap();
    let page = engine.execute(&db, &q).unwrap();
    assert_eq!(ids(&page), vec!["p1"]);
    assert_eq!(
        ids(&engine.includes(&db, &q, &page).unwrap()),
        vec!["o1", "o17", "o9"]
    );
    // The compartment of p2 holds its three observations.
    let q = parse_query(&reg, "Observation", &[]).unwrap();
    assert_eq!(
        ids(&engine
            .execute_in_compartment(&db, "Patient", "p2", &q)
            .unwrap()),
        vec!["o10", "o18", "o2"]
    );
    // An update moves a resource out of a result; the older database value still has it.
    let before = db.t();
    let mut p0 = patients()[0].clone();
    p0["gender"] = json!("other");
    put(&node, &p0).await;
    let now = node.sync().await.unwrap();
    let q = parse_query(&reg, "Patient", &flint_pairs("gender=female")).unwrap();
    assert!(!ids(&engine.execute(&now, &q).unwrap()).contains(&"p0".to_string()));
    assert!(ids(&engine.execute(&now.as_of(before), &q).unwrap()).contains(&"p0".to_string()));
    // Unions of values: the old version's entries never count twice or at the wrong `t`.
    let run_at = |db: &flint_db::Db, query: &str| {
        let q = parse_query(&reg, "Patient", &flint_pairs(query)).unwrap();
        let got = ids(&engine.execute(db, &q).unwrap());
        assert_eq!(engine.count(db, &q).unwrap(), got.len(), "{query}");
        got
    };
    let both = run_at(&now, "gender=female,other");
    assert_eq!(both.iter().filter(|id| *id == "p0").count(), 1);
    assert_eq!(both.len(), 4);
    assert_eq!(run_at(&now, "gender=other"), vec!["p0"]);
    assert!(run_at(&now.as_of(before), "gender=other").is_empty());
    assert!(run_at(&now, "gender:not=female").contains(&"p0".to_string()));
    assert!(!run_at(&now.as_of(before), "gender:not=female").contains(&"p0".to_string()));
    // A deletion removes the resource from every list.
    let del = TxCmd::new(TxOp::Delete, "Patient", "p0", None);
    node.transact(vec![del], vec![]).await.unwrap();
    let after = node.sync().await.unwrap();
    assert!(!run_at(&after, "gender=female,other,male").contains(&"p0".to_string()));
    assert!(run_at(&after.as_of(before), "gender=female,other").contains(&"p0".to_string()));
}

#[test]
fn value_blobs_round_trip_and_decode_one_parameter() {
    use flint_search::engine::{blob_values, decode_blob, encode_blob};
    let reg = Registry::r4();
    let obs = &observations()[3];
    let values: Vec<(u32, flint_search::IndexValue)> = reg
        .extract(obs)
        .unwrap()
        .into_iter()
        .map(|(p, v)| (flint_db::codec::param_hash(&p.code), v))
        .collect();
    assert!(values.len() > 5);
    let blob = encode_blob(&values);
    assert_eq!(decode_blob(&blob), values);
    let code = flint_db::codec::param_hash("code");
    let want: Vec<_> = values
        .iter()
        .filter(|(h, _)| *h == code)
        .map(|(_, v)| v.clone())
        .collect();
    assert!(!want.is_empty());
    assert_eq!(blob_values(&blob, code), want);
    assert!(blob_values(&blob, 12345).is_empty());
    // A truncated blob yields what is whole, never a panic.
    assert!(decode_blob(&blob[..blob.len() - 1]).len() < values.len());
}

/// The ids of `Patient/{patient}`'s Observations whose code is one of `codes` (`system|code`
/// or a bare code), from the raw JSON.
fn expected_in_compartment(resources: &[Value], patient: &str, codes: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = resources
        .iter()
        .filter(|r| r["resourceType"] == "Observation")
        .filter(|r| r["subject"]["reference"] == format!("Patient/{patient}"))
        .filter(|r| {
            r["code"]["coding"].as_array().unwrap().iter().any(|c| {
                codes.iter().any(|q| match q.split_once('|') {
                    Some((s, code)) => c["system"] == s && c["code"] == code,
                    None => c["code"] == *q,
                })
            })
        })
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn code_searches_in_a_patient_compartment_use_the_compartment_index_and_stay_true() {
    let reg = Arc::new(Registry::r4());
    let engine = Engine::new(reg.clone());
    let node = node(&engine).await;
    let mut all: Vec<Value> = patients();
    all.extend(observations());
    for r in &all {
        put(&node, r).await;
    }
    let db = node.sync().await.unwrap();
    let in_compartment = |db: &flint_db::Db, patient: &str, query: &str| {
        let q = parse_query(&reg, "Observation", &flint_pairs(query)).unwrap();
        ids(&engine
            .execute_in_compartment(db, "Patient", patient, &q)
            .unwrap())
    };
    let queries: [(&str, &[&str]); 4] = [
        (
            "code=http://loinc.org|29463-7",
            &["http://loinc.org|29463-7"],
        ),
        ("code=8480-6", &["8480-6"]),
        (
            "code=8480-6,http://loinc.org|29463-7",
            &["8480-6", "http://loinc.org|29463-7"],
        ),
        (
            "code=http://snomed.info/sct|8480-6",
            &["http://snomed.info/sct|8480-6"],
        ),
    ];
    for p in 0..8 {
        let patient = format!("p{p}");
        for (query, codes) in &queries {
            assert_eq!(
                in_compartment(&db, &patient, query),
                expected_in_compartment(&all, &patient, codes),
                "{patient} {query}"
            );
        }
    }
    // Another clause narrows the compartment's code hits down.
    let dated = in_compartment(&db, "p2", "code=29463-7&date=2020-03");
    assert_eq!(dated, vec!["o2"]);

    // Changes: a code changed, a subject moved to another patient, a deletion.
    let before = db.t();
    let mut o2 = all.iter().find(|r| r["id"] == "o2").unwrap().clone();
    o2["code"]["coding"][0]["code"] = json!("8480-6");
    put(&node, &o2).await;
    let mut o10 = all.iter().find(|r| r["id"] == "o10").unwrap().clone();
    o10["subject"]["reference"] = json!("Patient/p3");
    put(&node, &o10).await;
    let del = TxCmd::new(TxOp::Delete, "Observation", "o18", None);
    node.transact(vec![del], vec![]).await.unwrap();
    let now = node.sync().await.unwrap();
    assert!(in_compartment(&now, "p2", "code=29463-7").is_empty());
    assert_eq!(in_compartment(&now, "p2", "code=8480-6"), vec!["o2"]);
    assert!(in_compartment(&now, "p3", "code=29463-7").contains(&"o10".to_string()));
    // The older database value keeps its answers.
    let old = now.as_of(before);
    assert_eq!(
        in_compartment(&old, "p2", "code=29463-7"),
        vec!["o10", "o2"]
    );
    assert!(!in_compartment(&old, "p3", "code=29463-7").contains(&"o10".to_string()));
}

/// The engine's indexer without compartment entries: an index built before the compartment
/// index existed.
struct WithoutCompartments(Arc<dyn flint_db::ResourceIndexer>);

impl flint_db::ResourceIndexer for WithoutCompartments {
    fn index(&self, type_name: &str, content: &[u8]) -> flint_db::error::Result<flint_db::Indexed> {
        let mut x = self.0.index(type_name, content)?;
        x.compartment_entries.clear();
        Ok(x)
    }
}

#[tokio::test]
async fn a_reindex_for_a_new_fingerprint_builds_the_compartment_index() {
    let reg = Arc::new(Registry::r4());
    let engine = Engine::new(reg.clone());
    let kv: Arc<dyn flint_db::KvStore> = Arc::new(MemKv::new());
    let log = Arc::new(flint_db::mem::MemLog::new());
    let store = Arc::new(flint_db::mem::MemStore::new());
    let config = |indexer: Arc<dyn flint_db::ResourceIndexer>| flint_db::NodeConfig {
        resource_indexer: Some(indexer),
        ..flint_db::NodeConfig::default()
    };
    let old = Node::start(
        kv.clone(),
        log.clone(),
        store.clone(),
        config(Arc::new(WithoutCompartments(engine.indexer()))),
    )
    .await
    .unwrap();
    let mut all = patients();
    all.extend(observations());
    for r in &all {
        put(&old, r).await;
    }
    let q = parse_query(&reg, "Observation", &flint_pairs("code=29463-7")).unwrap();
    let db = old.sync().await.unwrap();
    assert!(
        engine
            .execute_in_compartment(&db, "Patient", "p1", &q)
            .unwrap()
            .is_empty(),
        "the old index has no compartment entries"
    );
    drop(old);
    let node = Node::start(kv, log, store, config(engine.indexer()))
        .await
        .unwrap();
    let n = node
        .reindex_if_changed(&engine.index_fingerprint())
        .await
        .unwrap();
    assert_eq!(n, Some(all.len() as u64));
    let db = node.sync().await.unwrap();
    assert_eq!(
        ids(&engine
            .execute_in_compartment(&db, "Patient", "p1", &q)
            .unwrap()),
        expected_in_compartment(&all, "p1", &["29463-7"])
    );
    // The same fingerprint again: nothing to do.
    assert_eq!(
        node.reindex_if_changed(&engine.index_fingerprint())
            .await
            .unwrap(),
        None
    );
}
