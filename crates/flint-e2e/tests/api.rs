//! The FHIR RESTful interactions over HTTP against the real binary, on every storage variant.

mod common;

use common::{Server, VARIANTS, json, outcome};
use serde_json::{Value, json};

fn patient(id: Option<&str>, family: &str) -> Value {
    let mut p =
        json!({"resourceType": "Patient", "name": [{"family": family}], "gender": "female"});
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p
}

fn each_variant(test: impl Fn(&Server)) {
    for v in VARIANTS {
        let s = Server::start(v, &[]);
        test(&s);
    }
}

fn etag(r: &reqwest::blocking::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_string()
}

#[test]
fn capability_statement_and_health() {
    each_variant(|s| {
        let (st, cs) = json(s.get("metadata").send().unwrap());
        assert_eq!(st, 200);
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_eq!(cs["fhirVersion"], "4.0.1");
        let patient = cs["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "Patient")
            .unwrap();
        let codes: Vec<&str> = patient["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"patch") && codes.contains(&"vread"));
        assert!(codes.contains(&"search-type"));
        let params: Vec<&str> = patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(params.contains(&"birthdate") && params.contains(&"_sort"));
        assert_eq!(patient["conditionalCreate"], true);
        let r = s
            .client
            .get(format!("http://127.0.0.1:{}/health", s.port))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().unwrap(), "OK");
    });
}

#[test]
fn create_read_and_headers() {
    each_variant(|s| {
        let r = s
            .post_json("Patient", &patient(Some("ignored"), "Doe"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let tag = etag(&r);
        assert!(r.headers().contains_key("last-modified"));
        let (_, created) = json(r);
        let id = created["id"].as_str().unwrap().to_string();
        assert_ne!(id, "ignored", "create assigns a server id");
        assert_eq!(
            location,
            s.url(&format!(
                "Patient/{id}/_history/{}",
                created["meta"]["versionId"].as_str().unwrap()
            ))
        );
        assert_eq!(
            tag,
            format!("W/\"{}\"", created["meta"]["versionId"].as_str().unwrap())
        );

        let r = s.get(&format!("Patient/{id}")).send().unwrap();
        assert_eq!(etag(&r), tag);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+json")
        );
        let (st, read) = json(r);
        assert_eq!(st, 200);
        assert_eq!(read, created);
        assert_eq!(read["name"][0]["family"], "Doe");

        let r = s
            .get(&format!("Patient/{id}"))
            .header("accept", "application/fhir+xml")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let xml = r.text().unwrap();
        assert!(
            xml.contains("<Patient xmlns=\"http://hl7.org/fhir\">"),
            "{xml}"
        );
        assert!(xml.contains("<family value=\"Doe\"/>"), "{xml}");
        let r = s
            .get(&format!("Patient/{id}?_format=xml&_pretty=true"))
            .send()
            .unwrap();
        assert!(r.text().unwrap().contains('\n'));
    });
}

#[test]
fn read_errors() {
    each_variant(|s| {
        let i = outcome(s.get("Patient/unknown").send().unwrap(), 404);
        assert_eq!(i["code"], "not-found");
        outcome(s.get("Patient/a_b").send().unwrap(), 400);
        outcome(
            s.get(&format!("Patient/{}", "a".repeat(65)))
                .send()
                .unwrap(),
            400,
        );
        outcome(s.get("Patint/1").send().unwrap(), 404);
        outcome(s.get("Patient/1/_history/x").send().unwrap(), 404);
        outcome(s.client.post(s.url("metadata")).send().unwrap(), 405);
        outcome(
            s.get("Patient/1")
                .header("accept", "text/plain")
                .send()
                .unwrap(),
            406,
        );
        outcome(s.get("metadata?_format=text/html").send().unwrap(), 406);
        outcome(s.get("Patient/1/foo/bar/baz").send().unwrap(), 404);
    });
}

#[test]
fn create_rejects_invalid_resources_with_expression() {
    each_variant(|s| {
        let i = outcome(
            s.post_json("Patient", &json!({"resourceType": "Patient", "foo": 1}))
                .send()
                .unwrap(),
            400,
        );
        assert_eq!(i["expression"][0], "Patient.foo");
        let i = outcome(
            s.post_json(
                "Patient",
                &json!({"resourceType": "Patient", "birthDate": "1990-13-01"}),
            )
            .send()
            .unwrap(),
            400,
        );
        assert_eq!(i["expression"][0], "Patient.birthDate");
        outcome(
            s.post_json(
                "Patient",
                &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}}),
            )
            .send()
            .unwrap(),
            400,
        );
        outcome(
            s.post_json("Patient", &json!({"name": []})).send().unwrap(),
            400,
        );
        let r = s
            .client
            .post(s.url("Patient"))
            .header("content-type", "application/fhir+json")
            .body("{not json")
            .send()
            .unwrap();
        outcome(r, 400);
        let r = s
            .client
            .post(s.url("Patient"))
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .unwrap();
        outcome(r, 415);
        let r = s
            .client
            .post(s.url("Patient"))
            .header("content-type", "application/fhir+xml")
            .body(r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Patient xmlns="http://hl7.org/fhir"><id value="&e;"/></Patient>"#)
            .send()
            .unwrap();
        outcome(r, 400);
    });
}

#[test]
fn xml_create_round_trips() {
    each_variant(|s| {
        let body = r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/><name><family value="Xml"/><given value="A"/><given value="B"/></name><birthDate value="1970"/></Patient>"#;
        let r = s
            .client
            .post(s.url("Patient"))
            .header("content-type", "application/fhir+xml")
            .body(body)
            .send()
            .unwrap();
        let (st, v) = json(r);
        assert_eq!(st, 201);
        assert_eq!(v["name"][0]["given"], json!(["A", "B"]));
        assert_eq!(v["active"], json!(true));
        assert_eq!(v["birthDate"], "1970");
    });
}

#[test]
fn update_versions_and_preconditions() {
    each_variant(|s| {
        let r = s
            .put_json("Patient/p1", &patient(Some("p1"), "A"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "update as create");
        let v1 = etag(&r);
        let r = s
            .put_json("Patient/p1", &patient(Some("p1"), "B"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v2 = etag(&r);
        assert_ne!(v1, v2);
        let r = s
            .put_json("Patient/p1", &patient(Some("p1"), "B"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(etag(&r), v2, "identical content creates no new version");

        let r = s
            .put_json("Patient/p1", &patient(Some("p1"), "C"))
            .header("if-match", v1.as_str())
            .send()
            .unwrap();
        outcome(r, 412);
        let r = s
            .put_json("Patient/p1", &patient(Some("p1"), "C"))
            .header("if-match", v2.as_str())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        outcome(
            s.put_json("Patient/p1", &patient(Some("p1"), "D"))
                .header("if-match", "garbage")
                .send()
                .unwrap(),
            412,
        );
        outcome(
            s.put_json("Patient/p1", &patient(Some("p1"), "D"))
                .header("if-none-match", "*")
                .send()
                .unwrap(),
            412,
        );
        let r = s
            .put_json("Patient/p2", &patient(Some("p2"), "D"))
            .header("if-none-match", "*")
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);

        let i = outcome(
            s.put_json("Patient/p1", &patient(Some("other"), "X"))
                .send()
                .unwrap(),
            400,
        );
        assert_eq!(i["expression"][0], "Patient.id");
        outcome(
            s.put_json("Patient/p1", &patient(None, "X"))
                .send()
                .unwrap(),
            400,
        );
        outcome(
            s.put_json("Observation/p1", &patient(Some("p1"), "X"))
                .send()
                .unwrap(),
            400,
        );

        let (_, hist) = json(s.get("Patient/p1/_history").send().unwrap());
        assert_eq!(hist["total"], 3);
        let versions: Vec<&str> = hist["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap())
            .collect();
        assert_eq!(versions, vec!["C", "B", "A"]);
    });
}

#[test]
fn vread_and_delete() {
    each_variant(|s| {
        let r = s
            .put_json("Patient/d", &patient(Some("d"), "A"))
            .send()
            .unwrap();
        let v1 = json(r).1["meta"]["versionId"].as_str().unwrap().to_string();
        let r = s.delete("Patient/d").send().unwrap();
        assert_eq!(r.status(), 204);
        let del_tag = etag(&r);
        let r = s.get("Patient/d").send().unwrap();
        assert_eq!(etag(&r), del_tag);
        let i = outcome(r, 410);
        assert_eq!(i["code"], "deleted");
        assert_eq!(
            s.delete("Patient/d").send().unwrap().status(),
            204,
            "delete is idempotent"
        );
        assert_eq!(s.delete("Patient/never").send().unwrap().status(), 204);
        let (st, old) = json(s.get(&format!("Patient/d/_history/{v1}")).send().unwrap());
        assert_eq!((st, old["name"][0]["family"].as_str()), (200, Some("A")));
        let del_v = del_tag
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string();
        outcome(
            s.get(&format!("Patient/d/_history/{del_v}"))
                .send()
                .unwrap(),
            410,
        );
        outcome(s.get("Patient/d/_history/999999").send().unwrap(), 404);
        let r = s
            .delete("Patient/d")
            .header("prefer", "return=OperationOutcome")
            .send()
            .unwrap();
        assert_eq!(json(r).1["resourceType"], "OperationOutcome");
        // Re-creating a deleted resource works.
        assert_eq!(
            s.put_json("Patient/d", &patient(Some("d"), "B"))
                .send()
                .unwrap()
                .status(),
            201
        );
    });
}

#[test]
fn referential_integrity() {
    each_variant(|s| {
        let obs = |subject: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": subject}});
        let i = outcome(
            s.post_json("Observation", &obs("Patient/missing"))
                .send()
                .unwrap(),
            409,
        );
        assert!(
            i["diagnostics"]
                .as_str()
                .unwrap()
                .contains("Patient/missing")
        );
        s.put_json("Patient/ri", &patient(Some("ri"), "A"))
            .send()
            .unwrap();
        let (st, o) = json(
            s.post_json("Observation", &obs("Patient/ri"))
                .send()
                .unwrap(),
        );
        assert_eq!(st, 201);
        let i = outcome(s.delete("Patient/ri").send().unwrap(), 409);
        assert!(
            i["diagnostics"]
                .as_str()
                .unwrap()
                .contains(o["id"].as_str().unwrap())
        );
        // Absolute URLs of this server count too; other servers' don't.
        outcome(
            s.post_json("Observation", &obs(&s.url("Patient/nope")))
                .send()
                .unwrap(),
            409,
        );
        assert_eq!(
            s.post_json(
                "Observation",
                &obs("http://elsewhere.org/fhir/Patient/nope")
            )
            .send()
            .unwrap()
            .status(),
            201
        );
        assert_eq!(
            s.delete(&format!("Observation/{}", o["id"].as_str().unwrap()))
                .send()
                .unwrap()
                .status(),
            204
        );
        assert_eq!(s.delete("Patient/ri").send().unwrap().status(), 204);
    });
    let s = Server::start("in-memory", &[("ENFORCE_REFERENTIAL_INTEGRITY", "false")]);
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/missing"}});
    assert_eq!(
        s.post_json("Observation", &obs).send().unwrap().status(),
        201
    );
}

#[test]
fn prefer_return() {
    each_variant(|s| {
        let r = s
            .post_json("Patient", &patient(None, "A"))
            .header("prefer", "return=minimal")
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        assert!(r.headers().contains_key("location"));
        assert_eq!(r.text().unwrap(), "");
        let r = s
            .post_json("Patient", &patient(None, "A"))
            .header("prefer", "return=OperationOutcome")
            .send()
            .unwrap();
        assert_eq!(json(r).1["resourceType"], "OperationOutcome");
    });
}

#[test]
fn summary_and_elements_on_read() {
    each_variant(|s| {
        let p = json!({"resourceType": "Patient", "id": "s", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}, "name": [{"family": "F"}], "gender": "male", "maritalStatus": {"text": "single"}});
        s.put_json("Patient/s", &p).send().unwrap();
        let (_, v) = json(s.get("Patient/s?_summary=true").send().unwrap());
        assert!(v.get("maritalStatus").is_none() && v.get("text").is_none());
        assert_eq!(v["name"][0]["family"], "F");
        assert!(v["meta"]["tag"].to_string().contains("SUBSETTED"));
        let (_, v) = json(s.get("Patient/s?_elements=gender").send().unwrap());
        assert_eq!(v["gender"], "male");
        assert!(v.get("name").is_none());
        let (_, v) = json(s.get("Patient/s?_summary=text").send().unwrap());
        assert!(v.get("text").is_some() && v.get("gender").is_none());
        let (_, v) = json(s.get("Patient/s?_summary=data").send().unwrap());
        assert!(v.get("text").is_none() && v.get("maritalStatus").is_some());
        outcome(s.get("Patient/s?_summary=bogus").send().unwrap(), 400);
    });
}

#[test]
fn binary_with_raw_content() {
    each_variant(|s| {
        let r = s
            .client
            .post(s.url("Binary"))
            .header("content-type", "image/png")
            .body(vec![0u8, 1, 2, 255])
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
        let (_, b) = json(r);
        assert_eq!(b["contentType"], "image/png");
        let id = b["id"].as_str().unwrap();
        let r = s
            .get(&format!("Binary/{id}"))
            .header("accept", "image/png")
            .send()
            .unwrap();
        assert_eq!(r.headers()["content-type"], "image/png");
        assert_eq!(r.bytes().unwrap().to_vec(), vec![0u8, 1, 2, 255]);
        let (_, v) = json(s.get(&format!("Binary/{id}")).send().unwrap());
        assert_eq!(v["data"], "AAEC/w==");
    });
}

#[test]
fn json_patch_and_fhirpath_patch() {
    each_variant(|s| {
        s.put_json("Patient/pt", &patient(Some("pt"), "Old"))
            .send()
            .unwrap();
        let r = s.patch("Patient/pt", "application/json-patch+json", r#"[{"op":"replace","path":"/name/0/family","value":"New"},{"op":"add","path":"/active","value":true}]"#).send().unwrap();
        let (st, v) = json(r);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["name"][0]["family"], "New");
        assert_eq!(v["active"], true);
        let params = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "Patient.gender"},
            {"name": "value", "valueCode": "male"}]}]});
        let r = s
            .patch("Patient/pt", "application/fhir+json", &params.to_string())
            .send()
            .unwrap();
        let (st, v) = json(r);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["gender"], "male");
        let (_, read) = json(s.get("Patient/pt").send().unwrap());
        assert_eq!(
            (read["gender"].as_str(), read["name"][0]["family"].as_str()),
            (Some("male"), Some("New"))
        );
        // A patch producing an invalid resource is refused and changes nothing.
        let r = s
            .patch(
                "Patient/pt",
                "application/json-patch+json",
                r#"[{"op":"add","path":"/bogus","value":1}]"#,
            )
            .send()
            .unwrap();
        outcome(r, 422);
        let r = s
            .patch(
                "Patient/pt",
                "application/json-patch+json",
                r#"[{"op":"remove","path":"/nothing"}]"#,
            )
            .send()
            .unwrap();
        assert!(r.status().is_client_error());
        outcome(
            s.patch("Patient/none", "application/json-patch+json", "[]")
                .send()
                .unwrap(),
            404,
        );
        let r = s
            .patch(
                "Patient/pt",
                "application/json-patch+json",
                r#"[{"op":"replace","path":"/gender","value":"other"}]"#,
            )
            .header("if-match", "W/\"1\"")
            .send()
            .unwrap();
        outcome(r, 412);
    });
}

#[test]
fn history_paging_is_stable_while_writes_arrive() {
    each_variant(|s| {
        for i in 0..7 {
            s.put_json(
                &format!("Patient/h{i}"),
                &patient(Some(&format!("h{i}")), "A"),
            )
            .send()
            .unwrap();
        }
        let (_, page1) = json(s.get("Patient/_history?_count=3").send().unwrap());
        assert_eq!(page1["total"], 7);
        assert_eq!(page1["entry"].as_array().unwrap().len(), 3);
        // New writes after the first page must not show up in later pages.
        for i in 0..3 {
            s.put_json(
                &format!("Patient/late{i}"),
                &patient(Some(&format!("late{i}")), "L"),
            )
            .send()
            .unwrap();
        }
        let mut ids: Vec<String> = page1["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
            .collect();
        let mut page = page1;
        while let Some(next) = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            let (st, p) = json(s.client.get(next["url"].as_str().unwrap()).send().unwrap());
            assert_eq!(st, 200);
            ids.extend(
                p["entry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["resource"]["id"].as_str().unwrap().to_string()),
            );
            page = p;
        }
        assert_eq!(ids, vec!["h6", "h5", "h4", "h3", "h2", "h1", "h0"]);
        let (_, sys) = json(s.get("_history").send().unwrap());
        assert_eq!(sys["total"], 10);
        assert_eq!(sys["entry"][0]["request"]["method"], "PUT");
        assert_eq!(sys["entry"][0]["response"]["status"], "201");
        s.delete("Patient/h0").send().unwrap();
        let (_, inst) = json(s.get("Patient/h0/_history").send().unwrap());
        assert_eq!(inst["entry"][0]["request"]["method"], "DELETE");
        assert!(inst["entry"][0].get("resource").is_none());
        let (_, since) = json(
            s.get("Patient/_history?_since=2999-01-01T00:00:00Z")
                .send()
                .unwrap(),
        );
        assert!(since.get("entry").is_none());
        let (_, since) = json(s.get("Patient/_history?_since=2000-01-01").send().unwrap());
        assert_eq!(since["entry"].as_array().unwrap().len(), 11);
        outcome(
            s.get("Patient/_history?_since=yesterday").send().unwrap(),
            400,
        );
        outcome(s.get("Patient/_history?_count=x").send().unwrap(), 400);
        outcome(s.get("Patient/nobody/_history").send().unwrap(), 404);
    });
}

#[test]
fn batch_answers_each_entry_on_its_own() {
    each_variant(|s| {
        let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient(None, "Ok"), "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/missing"}}, "request": {"method": "POST", "url": "Observation"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {"resource": patient(Some("bp"), "Put"), "request": {"method": "PUT", "url": "Patient/bp"}},
            {"request": {"method": "GET", "url": "metadata"}},
        ]});
        let (st, v) = json(s.post_json("", &b).send().unwrap());
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["type"], "batch-response");
        let statuses: Vec<&str> = v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["response"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, vec!["201", "409", "404", "201", "200"]);
        assert_eq!(
            v["entry"][1]["response"]["outcome"]["resourceType"],
            "OperationOutcome"
        );
        assert_eq!(s.get("Patient/bp").send().unwrap().status(), 200);
    });
}

#[test]
fn transaction_is_all_or_nothing_and_resolves_references() {
    each_variant(|s| {
        let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:0a3c1d4e-0000-4000-8000-000000000001", "resource": patient(None, "Tx"), "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": "urn:uuid:0a3c1d4e-0000-4000-8000-000000000002", "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:uuid:0a3c1d4e-0000-4000-8000-000000000001"}}, "request": {"method": "POST", "url": "Observation"}},
            {"resource": patient(Some("txp"), "Put"), "request": {"method": "PUT", "url": "Patient/txp"}},
            {"request": {"method": "GET", "url": "Patient/txp"}},
        ]});
        let (st, v) = json(
            s.post_json("", &tx)
                .header("prefer", "return=representation")
                .send()
                .unwrap(),
        );
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["type"], "transaction-response");
        let e = v["entry"].as_array().unwrap();
        assert_eq!(e[0]["response"]["status"], "201");
        let pid = e[0]["resource"]["id"].as_str().unwrap();
        assert_eq!(
            e[1]["resource"]["subject"]["reference"],
            format!("Patient/{pid}")
        );
        assert_eq!(
            e[3]["resource"]["name"][0]["family"], "Put",
            "GET entries see the transaction's writes"
        );
        let etags: Vec<&str> = e[..3]
            .iter()
            .map(|x| x["response"]["etag"].as_str().unwrap())
            .collect();
        assert!(
            etags.windows(2).all(|w| w[0] == w[1]),
            "one transaction, one version: {etags:?}"
        );
        let obs_loc = e[1]["response"]["location"].as_str().unwrap();
        assert!(obs_loc.starts_with(&s.url("Observation/")));

        // A failing entry rolls back everything.
        let (_, before) = json(s.get("_history").send().unwrap());
        let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient(Some("never"), "No"), "request": {"method": "PUT", "url": "Patient/never"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/ghost"}}, "request": {"method": "POST", "url": "Observation"}},
        ]});
        outcome(s.post_json("", &bad).send().unwrap(), 409);
        outcome(s.get("Patient/never").send().unwrap(), 404);
        let (_, after) = json(s.get("_history").send().unwrap());
        assert_eq!(before["total"], after["total"]);
        let bad = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "id": "x", "birthDate": "not-a-date"}, "request": {"method": "PUT", "url": "Patient/y"}},
        ]});
        let i = outcome(s.post_json("", &bad).send().unwrap(), 400);
        assert!(
            i["expression"][0]
                .as_str()
                .unwrap()
                .starts_with("Bundle.entry[0]"),
            "{i}"
        );
        outcome(
            s.post_json("", &json!({"resourceType": "Bundle", "type": "collection"}))
                .send()
                .unwrap(),
            400,
        );
        let (st, empty) = json(
            s.post_json(
                "",
                &json!({"resourceType": "Bundle", "type": "transaction"}),
            )
            .send()
            .unwrap(),
        );
        assert_eq!(
            (st, empty["type"].as_str()),
            (200, Some("transaction-response"))
        );
    });
}

#[test]
fn request_body_limit_gives_413() {
    let s = Server::start("in-memory", &[("MAX_REQUEST_BODY_SIZE", "1000")]);
    let big = patient(None, &"x".repeat(2000));
    outcome(s.post_json("Patient", &big).send().unwrap(), 413);
    assert_eq!(
        s.post_json("Patient", &patient(None, "small"))
            .send()
            .unwrap()
            .status(),
        201
    );
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flint-e2e-server"))
        .env("STORAGE", "postgres")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STORAGE") && err.contains("postgres"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flint-e2e-server"))
        .env("DB_SYNC_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("DB_SYNC_TIMEOUT"));
}
