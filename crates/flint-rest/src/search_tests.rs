//! Unit tests of [`super`]: search requests and page link states.

use super::*;

fn request(handling: Handling, post: bool) -> SearchRequest {
    SearchRequest {
        scope: Scope::Compartment("Patient".into(), "p1".into(), "Observation".into()),
        params: vec![("code".into(), "x".into()), ("_count".into(), "2".into())],
        handling,
        post,
    }
}

#[test]
fn page_links_carry_the_search_request() {
    for handling in [Handling::Lenient, Handling::Strict] {
        for post in [false, true] {
            let req = request(handling, post);
            let state = PageState::new(&req, 7, 4, 99, None);
            assert_eq!(state.request(), req);
            assert_eq!((state.t, state.offset, state.expires_ms), (7, 4, 99));
        }
    }
}

#[test]
fn page_state_keeps_its_wire_form() {
    let state = PageState::new(&request(Handling::Strict, true), 7, 4, 99, None);
    assert_eq!(
        serde_json::to_value(&state).unwrap(),
        json!({
            "scope": {"Compartment": ["Patient", "p1", "Observation"]},
            "params": [["code", "x"], ["_count", "2"]],
            "t": 7, "offset": 4, "strict": true, "post": true, "expires_ms": 99
        })
    );
    // Links sealed before `post` existed still open, as GET searches.
    let old: PageState = serde_json::from_value(json!({
        "scope": {"Type": "Patient"}, "params": [], "t": 1, "offset": 0,
        "strict": false, "expires_ms": 5
    }))
    .unwrap();
    let req = old.request();
    assert_eq!(req.scope, Scope::Type("Patient".into()));
    assert_eq!((req.handling, req.post), (Handling::Lenient, false));
    assert_eq!(
        Scope::System,
        serde_json::from_value(json!("System")).unwrap()
    );
}

#[test]
fn page_state_names_kept_parameters_by_hash() {
    let req = request(Handling::Lenient, true);
    let hash = ContentHash::of(b"kept");
    let kept = Kept { hash, until_ms: 99 };
    let state = PageState::new(&req, 7, 0, 99, Some(&kept));
    let wire = serde_json::to_value(&state).unwrap();
    assert_eq!(wire["params"], json!([]), "{wire}");
    assert_eq!(wire["kept"], json!(hash.to_hex()));
    // Inline parameters keep the old wire form (no `kept`).
    let inline = serde_json::to_value(PageState::new(&req, 7, 0, 99, None)).unwrap();
    assert!(inline.get("kept").is_none(), "{inline}");
}
