//! The terminology service over a real in-memory database node: compose evaluation with
//! every filter, membership agreeing with expansion, `$validate-code`, `$lookup`,
//! `$subsumes`, `$translate`, the built-in R4 core systems, request resources and storage
//! faults.

use flint_db::mem::{MemKv, MemLog, MemStore};
use flint_db::{Db, DbError, Node, NodeConfig, ResourceHandle};
use flint_terminology::ops::ExpandParams;
use flint_terminology::{
    CanonicalResolver, CodingInput, Error, Result, TerminologyService, builtin,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Finds resources by a map from `url` and `url|version` to type and id; `fail` makes every
/// look-up a storage fault.
#[derive(Default)]
struct Known {
    urls: Mutex<HashMap<String, (String, String)>>,
    fail: AtomicBool,
}

/// The resolver the service owns, sharing the map with the test.
struct Shared(Arc<Known>);

impl CanonicalResolver for Shared {
    fn resolve(&self, db: &Db, type_name: &str, url: &str) -> Result<Option<ResourceHandle>> {
        let this = &self.0;
        if this.fail.load(Ordering::SeqCst) {
            return Err(DbError::unavailable("index unavailable").into());
        }
        let Some((ty, id)) = this.urls.lock().unwrap().get(url).cloned() else {
            return Ok(None);
        };
        if ty != type_name {
            return Ok(None);
        }
        Ok(db.resource(&ty, &id)?.filter(|h| !h.is_deleted()))
    }
}

struct Fixture {
    node: Node,
    known: Arc<Known>,
    service: TerminologyService<Shared>,
}

impl Fixture {
    async fn new() -> Fixture {
        let node = Node::start(
            Arc::new(MemKv::new()),
            Arc::new(MemLog::new()),
            Arc::new(MemStore::new()),
            NodeConfig::default(),
        )
        .await
        .unwrap();
        let known = Arc::new(Known::default());
        let f = Fixture {
            node,
            service: TerminologyService::new(Shared(known.clone())),
            known,
        };
        f.put(&code_system()).await;
        f
    }

    async fn put(&self, r: &Value) {
        flint_db::testing::put_json(&self.node, r).await;
        let mut urls = self.known.urls.lock().unwrap();
        let at = (
            r["resourceType"].as_str().unwrap().to_string(),
            r["id"].as_str().unwrap().to_string(),
        );
        let url = r["url"].as_str().unwrap();
        urls.insert(url.to_string(), at.clone());
        if let Some(v) = r["version"].as_str() {
            urls.insert(format!("{url}|{v}"), at);
        }
    }

    async fn db(&self) -> Db {
        self.node.sync().await.unwrap()
    }
}

const CS: &str = "http://x/cs";

/// A ── A1
///   └─ A2 ── A2a        B (retired)      A3 (child of A by a `parent` property)
///                                        C ── D (by a `child` property of C)
fn code_system() -> Value {
    json!({"resourceType": "CodeSystem", "id": "cs", "url": CS, "version": "2",
        "name": "X", "status": "active", "content": "complete",
        "property": [{"code": "colour", "type": "code"}, {"code": "status", "type": "code"}],
        "concept": [
            {"code": "A", "display": "Alpha animal", "concept": [
                {"code": "A1", "display": "Alpha one", "property": [{"code": "colour", "valueCode": "red"}]},
                {"code": "A2", "display": "Alpha two", "concept": [
                    {"code": "A2a", "display": "Alpha two a",
                     "designation": [{"language": "de", "value": "Alfa zwei a"}]}]}]},
            {"code": "B", "display": "Beta", "property": [
                {"code": "colour", "valueCode": "blue"}, {"code": "status", "valueCode": "retired"}]},
            {"code": "A3", "display": "Alpha three", "property": [{"code": "parent", "valueCode": "A"}]},
            {"code": "C", "display": "Gamma", "property": [{"code": "child", "valueCode": "D"}]},
            {"code": "D", "display": "Delta"}]})
}

fn vs(id: &str, compose: Value) -> Value {
    json!({"resourceType": "ValueSet", "id": id, "url": format!("http://x/vs/{id}"),
        "status": "active", "compose": compose})
}

fn filter(property: &str, op: &str, value: &str) -> Value {
    json!({"system": CS, "filter": [{"property": property, "op": op, "value": value}]})
}

async fn codes(f: &Fixture, vs: &Value) -> Vec<String> {
    let db = f.db().await;
    f.service
        .at(&db, vec![])
        .expand_members(vs)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.code)
        .collect()
}

#[tokio::test]
async fn every_filter_operator() {
    let f = Fixture::new().await;
    let cases: [(&str, &str, &str, &[&str]); 14] = [
        ("concept", "is-a", "A", &["A", "A1", "A2", "A2a", "A3"]),
        ("concept", "descendent-of", "A", &["A1", "A2", "A2a", "A3"]),
        ("concept", "is-not-a", "A", &["B", "C", "D"]),
        ("concept", "generalizes", "A2a", &["A", "A2", "A2a"]),
        ("concept", "regex", "A[0-9]", &["A1", "A2", "A3"]),
        ("concept", "in", "B, D", &["B", "D"]),
        ("colour", "=", "red", &["A1"]),
        ("colour", "exists", "true", &["A1", "B"]),
        (
            "colour",
            "exists",
            "false",
            &["A", "A2", "A2a", "A3", "C", "D"],
        ),
        ("colour", "in", "red,blue", &["A1", "B"]),
        ("parent", "=", "A", &["A1", "A2", "A3"]),
        ("child", "=", "D", &["C"]),
        ("parent", "exists", "false", &["A", "B", "C"]),
        ("display", "regex", "Alpha t.*", &["A2", "A2a", "A3"]),
    ];
    for (property, op, value, expected) in cases {
        let got = codes(
            &f,
            &vs("v", json!({"include": [filter(property, op, value)]})),
        )
        .await;
        assert_eq!(got, expected, "{property} {op} {value}");
    }
    // Filters of one include all apply.
    let both = json!({"include": [{"system": CS, "filter": [
        {"property": "concept", "op": "is-a", "value": "A"},
        {"property": "concept", "op": "regex", "value": ".*2.*"}]}]});
    assert_eq!(codes(&f, &vs("v", both)).await, ["A2", "A2a"]);
}

#[tokio::test]
async fn includes_excludes_and_nested_value_sets() {
    let f = Fixture::new().await;
    f.put(&vs(
        "as",
        json!({"include": [filter("concept", "is-a", "A")]}),
    ))
    .await;
    let composed = vs(
        "composed",
        json!({
            "include": [
                {"system": CS, "concept": [{"code": "D", "display": "Dee"}, {"code": "nope"}]},
                {"valueSet": ["http://x/vs/as"]},
                // A system part intersected with a value set: C and D are not in `as`.
                {"system": CS, "concept": [{"code": "C"}, {"code": "A1"}],
                 "valueSet": ["http://x/vs/as"]},
                // Codes of a system that is not known are taken as listed.
                {"system": "http://unknown", "concept": [{"code": "u1"}]}],
            "exclude": [{"system": CS, "concept": [{"code": "A2"}]},
                        {"system": CS, "filter": [{"property": "concept", "op": "is-a", "value": "A3"}]}]}),
    );
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let members = s.expand_members(&composed).await.unwrap();
    let got: Vec<(&str, &str)> = members
        .iter()
        .map(|m| (m.system.as_str(), m.code.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (CS, "D"),
            (CS, "A"),
            (CS, "A1"),
            (CS, "A2a"),
            ("http://unknown", "u1")
        ]
    );
    assert_eq!(members[0].display.as_deref(), Some("Dee"));

    // Membership of one code agrees with the expansion for every code of the system (and
    // codes outside it).
    let cs = s.code_system(CS).await.unwrap().unwrap();
    for code in cs
        .concepts
        .iter()
        .map(|c| c.code.as_str())
        .chain(["nope", "zz"])
    {
        let expected = got.contains(&(CS, code));
        let m = s.member(&composed, Some(CS), code).await.unwrap();
        assert_eq!(m.is_some(), expected, "{code}");
        let any = s.member(&composed, None, code).await.unwrap();
        assert_eq!(any.is_some(), expected, "{code} in any system");
    }
    assert!(
        s.member(&composed, Some("http://unknown"), "u1")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn bad_compositions_are_errors() {
    let f = Fixture::new().await;
    f.put(&vs(
        "loop1",
        json!({"include": [{"valueSet": ["http://x/vs/loop2"]}]}),
    ))
    .await;
    f.put(&vs(
        "loop2",
        json!({"include": [{"valueSet": ["http://x/vs/loop1"]}]}),
    ))
    .await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let e = s
        .expand_members(&vs(
            "l",
            json!({"include": [{"valueSet": ["http://x/vs/loop1"]}]}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    let e = s
        .expand_members(&vs("u", json!({"include": [{"system": "http://unknown"}]})))
        .await
        .unwrap_err();
    assert_eq!(e, Error::UnknownCodeSystem("http://unknown".into()));
    let e = s
        .expand_members(&vs(
            "u",
            json!({"include": [{"valueSet": ["http://x/vs/none"]}]}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e, Error::UnknownValueSet("http://x/vs/none".into()));
    let e = s
        .expand_members(&vs(
            "r",
            json!({"include": [filter("concept", "regex", "(")]}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    let e = s
        .expand_members(&vs(
            "o",
            json!({"include": [filter("concept", "sounds-like", "A")]}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UnsupportedFilter { .. }), "{e:?}");
}

#[tokio::test]
async fn expand_pages_filters_and_limits() {
    let f = Fixture::new().await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let all = vs("all", json!({"include": [{"system": CS}]}));
    let every = s.expand_members(&all).await.unwrap();
    let out = s.expand(&all, &ExpandParams::default()).await.unwrap();
    assert_eq!(out["expansion"]["total"], json!(every.len()));
    let page = s
        .expand(
            &all,
            &ExpandParams {
                offset: 2,
                count: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let page_codes: Vec<&str> = page["expansion"]["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = every[2..5].iter().map(|m| m.code.as_str()).collect();
    assert_eq!(page_codes, expected);

    // Every word must prefix a word of the display or a designation.
    let filtered = |text: &str, active_only: bool| {
        let p = ExpandParams {
            filter: Some(text.into()),
            active_only,
            ..Default::default()
        };
        let s = &s;
        let all = &all;
        async move {
            let out = s.expand(all, &p).await.unwrap();
            out["expansion"]["contains"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["code"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(filtered("alp tw", false).await, ["A2", "A2a"]);
    assert_eq!(filtered("zwei", false).await, ["A2a"]);
    assert_eq!(filtered("alpha beta", false).await, Vec::<String>::new());
    assert_eq!(filtered("bet", false).await, ["B"]);
    assert_eq!(filtered("bet", true).await, Vec::<String>::new());

    // The display in another language, when a designation has it.
    let de = s
        .expand(
            &all,
            &ExpandParams {
                display_language: Some("de".into()),
                filter: Some("zwei".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(de["expansion"]["contains"][0]["display"], "Alfa zwei a");

    // Above the limit: too costly unless paged.
    let limited = ExpandParams {
        max_size: every.len() - 1,
        ..Default::default()
    };
    let e = s.expand(&all, &limited).await.unwrap_err();
    assert!(
        matches!(e, Error::TooCostly { size, .. } if size == every.len()),
        "{e:?}"
    );
    let paged = ExpandParams {
        count: Some(2),
        ..limited
    };
    assert!(s.expand(&all, &paged).await.is_ok());
}

fn coding(system: Option<&str>, code: &str, display: Option<&str>) -> CodingInput {
    CodingInput {
        system: system.map(str::to_string),
        version: None,
        code: code.into(),
        display: display.map(str::to_string),
    }
}

fn param<'v>(p: &'v Value, name: &str) -> &'v Value {
    p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn validate_code_in_value_sets_and_code_systems() {
    let f = Fixture::new().await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let a = vs("a", json!({"include": [filter("concept", "is-a", "A")]}));
    let ok = s
        .validate_in_value_set(&a, &[coding(Some(CS), "A2", None)], false)
        .await
        .unwrap();
    assert_eq!(param(&ok, "result")["valueBoolean"], true);
    assert_eq!(param(&ok, "display")["valueString"], "Alpha two");
    let no = s
        .validate_in_value_set(&a, &[coding(Some(CS), "B", None)], false)
        .await
        .unwrap();
    assert_eq!(param(&no, "result")["valueBoolean"], false);
    assert!(
        param(&no, "message")["valueString"]
            .as_str()
            .unwrap()
            .contains("`http://x/cs#B`")
    );
    // A wrong display is a warning; a designation is a right display.
    let warn = s
        .validate_in_value_set(&a, &[coding(Some(CS), "A2", Some("Alpha 2"))], false)
        .await
        .unwrap();
    assert_eq!(param(&warn, "result")["valueBoolean"], true);
    assert!(
        param(&warn, "message")["valueString"]
            .as_str()
            .unwrap()
            .starts_with("Warning")
    );
    let de = s
        .validate_in_value_set(&a, &[coding(Some(CS), "A2a", Some("alfa  zwei A"))], false)
        .await
        .unwrap();
    assert_eq!(param(&de, "message"), &Value::Null);
    // Without a system: only with inferSystem.
    let bare = [coding(None, "A1", None)];
    let inferred = s.validate_in_value_set(&a, &bare, true).await.unwrap();
    assert_eq!(param(&inferred, "result")["valueBoolean"], true);
    assert_eq!(param(&inferred, "system")["valueUri"], CS);
    let not = s.validate_in_value_set(&a, &bare, false).await.unwrap();
    assert_eq!(param(&not, "result")["valueBoolean"], false);
    // A codeableConcept: one valid coding is enough.
    let cc = [
        coding(Some("http://other"), "A1", None),
        coding(Some(CS), "A1", None),
    ];
    let any = s.validate_in_value_set(&a, &cc, false).await.unwrap();
    assert_eq!(param(&any, "result")["valueBoolean"], true);

    let cs = s.code_system(CS).await.unwrap().unwrap();
    for c in &cs.concepts {
        let r = s.validate_in_code_system(&cs, &[coding(None, &c.code, None)]);
        assert_eq!(param(&r, "result")["valueBoolean"], true, "{}", c.code);
    }
    let r = s.validate_in_code_system(&cs, &[coding(None, "Z", None)]);
    assert_eq!(param(&r, "result")["valueBoolean"], false);
    let r = s.validate_in_code_system(&cs, &[coding(Some("http://other"), "A", None)]);
    assert_eq!(param(&r, "result")["valueBoolean"], false);
    // A fragment lacks codes: valid, with a warning.
    let mut fragment = code_system();
    fragment["content"] = json!("fragment");
    let fragment = flint_terminology::CodeSystem::of(&fragment);
    let r = s.validate_in_code_system(&fragment, &[coding(None, "Z", None)]);
    assert_eq!(param(&r, "result")["valueBoolean"], true);
    assert!(
        param(&r, "message")["valueString"]
            .as_str()
            .unwrap()
            .contains("fragment")
    );
}

#[tokio::test]
async fn lookup_and_subsumes() {
    let f = Fixture::new().await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let cs = s.code_system(CS).await.unwrap().unwrap();
    let l = s.lookup(&cs, "A2", &[], None, "code").unwrap();
    assert_eq!(param(&l, "name")["valueString"], "X");
    assert_eq!(param(&l, "version")["valueString"], "2");
    assert_eq!(param(&l, "display")["valueString"], "Alpha two");
    let props: Vec<(String, String)> = l["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "property")
        .map(|p| {
            let code = p["part"][0]["valueCode"].as_str().unwrap().to_string();
            let v = &p["part"][1];
            let value = v["valueCode"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v["valueBoolean"].to_string());
            (code, value)
        })
        .collect();
    assert_eq!(
        props,
        [
            ("parent".to_string(), "A".to_string()),
            ("child".into(), "A2a".into()),
            ("inactive".into(), "false".into())
        ]
    );
    let l = s
        .lookup(&cs, "A2a", &["designation".into()], None, "code")
        .unwrap();
    assert_eq!(
        param(&l, "designation")["part"][1]["valueString"],
        "Alfa zwei a"
    );
    assert_eq!(param(&l, "property"), &Value::Null);
    let l = s
        .lookup(&cs, "B", &["status".into()], None, "code")
        .unwrap();
    assert_eq!(param(&l, "property")["part"][1]["valueCode"], "retired");
    let e = s.lookup(&cs, "Z", &[], None, "coding").unwrap_err();
    assert!(matches!(e, Error::UnknownCode { ref parameter, .. } if parameter == "coding"));

    let outcome = |a: &str, b: &str| {
        let p = s.subsumes(&cs, a, b).unwrap();
        param(&p, "outcome")["valueCode"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(outcome("A", "A2a"), "subsumes");
    assert_eq!(outcome("A2a", "A"), "subsumed-by");
    assert_eq!(outcome("A2", "A2"), "equivalent");
    assert_eq!(outcome("A1", "A2"), "not-subsumed");
    assert_eq!(outcome("C", "D"), "subsumes");
    assert_eq!(outcome("A", "A3"), "subsumes");
    let e = s.subsumes(&cs, "A", "Z").unwrap_err();
    assert!(matches!(e, Error::UnknownCode { ref parameter, .. } if parameter == "codeB"));
}

#[tokio::test]
async fn translate_forward_reverse_and_unmapped() {
    let f = Fixture::new().await;
    let cm = json!({"resourceType": "ConceptMap", "id": "cm", "url": "http://x/cm",
        "status": "active", "group": [
            {"source": CS, "target": "http://y", "element": [
                {"code": "A", "target": [{"code": "a", "display": "y-a", "equivalence": "equivalent"},
                                         {"code": "aa", "equivalence": "wider"}]},
                {"code": "B", "target": [{"equivalence": "unmatched"}]}],
             "unmapped": {"mode": "provided"}},
            {"source": CS, "target": "http://z", "element": [
                {"code": "A", "target": [{"code": "za", "equivalence": "narrower"}]}]}]});
    f.put(&cm).await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let cm = s.concept_map("http://x/cm").await.unwrap().unwrap();
    let targets = |p: &Value| -> Vec<(String, String, String)> {
        p["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] == "match")
            .map(|m| {
                (
                    m["part"][0]["valueCode"].as_str().unwrap().to_string(),
                    m["part"][1]["valueCoding"]["system"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    m["part"][1]["valueCoding"]["code"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    };
    let t = |eq: &str, sys: &str, code: &str| (eq.to_string(), sys.to_string(), code.to_string());
    let a = coding(Some(CS), "A", None);
    let p = s.translate(&cm, &a, None, false).unwrap();
    assert_eq!(param(&p, "result")["valueBoolean"], true);
    assert_eq!(
        targets(&p),
        [
            t("equivalent", "http://y", "a"),
            t("wider", "http://y", "aa"),
            t("narrower", "http://z", "za")
        ]
    );
    let p = s.translate(&cm, &a, Some("http://z"), false).unwrap();
    assert_eq!(targets(&p), [t("narrower", "http://z", "za")]);
    // B is unmatched: no result; D is not mapped and the first group provides it.
    let p = s
        .translate(&cm, &coding(Some(CS), "B", None), None, false)
        .unwrap();
    assert_eq!(param(&p, "result")["valueBoolean"], false);
    let p = s
        .translate(&cm, &coding(Some(CS), "D", None), None, false)
        .unwrap();
    assert_eq!(targets(&p), [t("equal", "http://y", "D")]);
    // Reverse: from the target to the source, wider becomes narrower.
    let p = s
        .translate(&cm, &coding(Some("http://y"), "aa", None), None, true)
        .unwrap();
    assert_eq!(targets(&p), [t("narrower", CS, "A")]);
    let p = s
        .translate(&cm, &coding(Some("http://other"), "A", None), None, false)
        .unwrap();
    assert_eq!(param(&p, "result")["valueBoolean"], false);
}

#[tokio::test]
async fn built_in_r4_core_and_request_resources() {
    let f = Fixture::new().await;
    let db = f.db().await;
    let s = f.service.at(&db, vec![]);
    let gender = s
        .value_set("http://hl7.org/fhir/ValueSet/administrative-gender")
        .await
        .unwrap()
        .unwrap();
    let members = s.expand_members(&gender).await.unwrap();
    let cs = builtin::code_system("http://hl7.org/fhir/administrative-gender").unwrap();
    let expected: Vec<&str> = cs.concepts.iter().map(|c| c.code.as_str()).collect();
    let got: Vec<&str> = members.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(got, expected);
    assert!(got.contains(&"female"));
    assert!(
        s.value_set("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.value_set("http://hl7.org/fhir/ValueSet/administrative-gender|9")
            .await
            .unwrap()
            .is_none()
    );
    let (systems, sets) = builtin::counts();
    assert!(systems > 1000 && sets > 1000, "{systems} {sets}");

    // A default system version (`system-version`) applies to includes without one.
    let any = vs("any", json!({"include": [{"system": CS}]}));
    let f2 = f
        .service
        .at(&db, vec![])
        .with_system_versions(&[format!("{CS}|9")]);
    let e = f2.expand_members(&any).await.unwrap_err();
    assert_eq!(e, Error::UnknownCodeSystem(format!("{CS}|9")));
    let f2 = f
        .service
        .at(&db, vec![])
        .with_system_versions(&[format!("{CS}|2")]);
    assert!(!f2.expand_members(&any).await.unwrap().is_empty());

    // A request's own CodeSystem wins over the stored one of the same url.
    let mut own = code_system();
    own["concept"] = json!([{"code": "only-here"}]);
    let s = f.service.at(&db, vec![own]);
    let cs = s.code_system(CS).await.unwrap().unwrap();
    assert_eq!(cs.concepts.len(), 1);
}

#[tokio::test]
async fn storage_faults_are_errors() {
    let f = Fixture::new().await;
    let db = f.db().await;
    f.known.fail.store(true, Ordering::SeqCst);
    let s = f.service.at(&db, vec![]);
    let e = s.code_system(CS).await.unwrap_err();
    assert!(matches!(e, Error::Storage(_)), "{e:?}");
    let e = s
        .expand_members(&vs("a", json!({"include": [{"system": CS}]})))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Storage(_)), "{e:?}");
}
