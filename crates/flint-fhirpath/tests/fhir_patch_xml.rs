//! Runs the HL7 FHIRPath Patch cases of `fhir-patch-tests.xml` (resources in FHIR XML, read
//! with `flint_model::xml::parse_resource`). Every case applies the `diff` forwards (`mode`
//! `both` additionally means a diff engine could derive it, which is not this crate's business).

use flint_fhirpath::patch::fhirpath_patch;
use serde_json::Value;
use std::path::PathBuf;

fn cases_file() -> PathBuf {
    match std::env::var_os("FLINT_FHIR_PATCH_TESTS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fhir-patch/fhir-patch-tests.xml"
        )),
    }
}

/// The text between `<tag>` and `</tag>` inside `case`, trimmed.
fn inner<'s>(case: &'s str, tag: &str) -> Option<&'s str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = case.find(&open)? + open.len();
    let end = case[start..].find(&close)? + start;
    Some(case[start..end].trim())
}

fn attr<'s>(tag: &'s str, name: &str) -> Option<&'s str> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(&tag[start..end])
}

fn parse(xml: &str) -> Result<Value, String> {
    let mut v = flint_model::xml::parse_resource(xml.as_bytes()).map_err(|e| e.to_string())?;
    // The "Full Resource" case writes the same narrative twice with different XHTML
    // serialisation (CRLF line ends, `&quot;`); compare the markup's content, not its bytes.
    if let Some(Value::String(div)) = v.pointer_mut("/text/div") {
        *div = div.replace("\r\n", "\n").replace("&quot;", "\"");
    }
    Ok(v)
}

#[test]
fn hl7_fhirpath_patch_suite() {
    let path = cases_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut passed, mut failed) = (0, 0);
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<case ") {
        let Some(end) = rest[start..].find("</case>") else {
            break;
        };
        let case = &rest[start..start + end];
        rest = &rest[start + end + 7..];
        let head = &case[..case.find('>').unwrap_or(case.len())];
        let name = attr(head, "name").unwrap_or("?");
        let outcome = (|| -> Result<(), String> {
            let input = parse(inner(case, "input").ok_or("no input")?)?;
            let diff = parse(inner(case, "diff").ok_or("no diff")?)?;
            let result = fhirpath_patch(&input, &diff);
            match (inner(case, "output"), result) {
                (Some(out), Ok(got)) => {
                    let want = parse(out)?;
                    if want == got {
                        Ok(())
                    } else {
                        Err(format!("expected {want}, got {got}"))
                    }
                }
                (None, Err(_)) if case.contains("<error") => Ok(()),
                (None, Ok(got)) => Err(format!("expected an error, got {got}")),
                (_, Err(e)) => Err(format!("unexpected error: {e}")),
            }
        })();
        match outcome {
            Ok(()) => passed += 1,
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    println!("fhir-patch: {passed} passed, {failed} failed");
    assert!(passed > 0, "no cases read from {}", path.display());
    assert_eq!(failed, 0);
}
