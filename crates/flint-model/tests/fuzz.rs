//! Property tests: no input makes the JSON or XML parser panic, whether random bytes or
//! mutations of valid resources; and whatever parses writes back to something that parses the
//! same.

use proptest::prelude::*;

const SEED_JSON: &str = r##"{"resourceType":"Patient","id":"a","meta":{"profile":["http://x"]},"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"extension":[{"url":"u","valueDecimal":1.50}],"active":true,"name":[{"family":"F","given":["A",null],"_given":[null,{"id":"g"}]}],"birthDate":"1970-01-01","contained":[{"resourceType":"Organization","id":"o","name":"O"}],"managingOrganization":{"reference":"#o"}}"##;

fn seed_xml() -> Vec<u8> {
    let v = flint_model::json::parse_resource(SEED_JSON.as_bytes()).unwrap();
    flint_model::xml::to_vec(&v, false)
}

fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(pos, op, byte) in edits {
        if b.is_empty() {
            b.push(byte);
            continue;
        }
        let i = pos % b.len();
        match op % 3 {
            0 => b[i] = byte,
            1 => b.insert(i, byte),
            _ => {
                b.remove(i);
            }
        }
    }
    b
}

fn check_round_trip(v: &serde_json::Value) {
    let json = flint_model::json::to_vec(v, false);
    assert_eq!(&flint_model::json::parse_resource(&json).unwrap(), v);
    let xml = flint_model::xml::to_vec(v, false);
    assert_eq!(&flint_model::xml::parse_resource(&xml).unwrap(), v);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = flint_model::json::parse_resource(&bytes);
        let _ = flint_model::xml::parse_resource(&bytes);
    }

    #[test]
    fn mutated_json_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        let b = mutate(SEED_JSON.as_bytes(), &edits);
        if let Ok(v) = flint_model::json::parse_resource(&b) {
            check_round_trip(&v);
        }
    }

    #[test]
    fn mutated_xml_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        let b = mutate(&seed_xml(), &edits);
        if let Ok(v) = flint_model::xml::parse_resource(&b) {
            check_round_trip(&v);
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let mut s = String::from(r#"{"resourceType":"Questionnaire","status":"draft","item":["#);
    for _ in 0..200 {
        s.push_str(r#"{"linkId":"x","type":"group","item":["#);
    }
    for _ in 0..200 {
        s.push_str("]}");
    }
    s.push_str("]}");
    assert!(flint_model::json::parse_resource(s.as_bytes()).is_err());
    let deep_json = "[".repeat(100_000);
    assert!(flint_model::json::parse_resource(deep_json.as_bytes()).is_err());
    let mut x =
        String::from(r#"<Questionnaire xmlns="http://hl7.org/fhir"><status value="draft"/>"#);
    for _ in 0..200 {
        x.push_str(r#"<item><linkId value="x"/><type value="group"/>"#);
    }
    for _ in 0..200 {
        x.push_str("</item>");
    }
    x.push_str("</Questionnaire>");
    assert!(flint_model::xml::parse_resource(x.as_bytes()).is_err());
}
