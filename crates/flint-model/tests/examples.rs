//! Every official R4 example parses, and JSON -> XML -> JSON gives back an equal resource
//! with identical canonical bytes.

use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    let d = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fhir-examples"
    ));
    assert!(
        d.is_dir(),
        "missing {} (shared/ must sit beside the repository)",
        d.display()
    );
    d
}

#[test]
fn all_examples_round_trip_through_xml() {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 700,
        "expected the 720 examples, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(f).unwrap();
        let v = match flint_model::json::parse_resource(&bytes) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: JSON: {e} at {:?}", e.expression));
                continue;
            }
        };
        let canonical = flint_model::json::to_vec(&v, false);
        match flint_model::json::parse_resource(&canonical) {
            Ok(again) if flint_model::json::to_vec(&again, false) == canonical => {}
            _ => failures.push(format!("{name}: canonical JSON not stable")),
        }
        for pretty in [false, true] {
            let xml = flint_model::xml::to_vec(&v, pretty);
            match flint_model::xml::parse_resource(&xml) {
                Ok(back) if back == v => {}
                Ok(_) => failures.push(format!("{name}: XML round trip differs (pretty={pretty})")),
                Err(e) => failures.push(format!("{name}: XML: {e} at {:?}", e.expression)),
            }
        }
    }
    for f in &failures {
        eprintln!("{f}");
    }
    println!("{} examples, {} failures", files.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} examples failed",
        failures.len(),
        files.len()
    );
}

#[test]
fn fhirpath_input_resources_in_xml_parse() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fhirpath"
    ));
    // Inputs of the FHIRPath suite that are not valid R4 (they exercise FHIRPath, not FHIR):
    // myconsent-ext.xml is a StructureDefinition with the STU3 element `contextType`.
    const NOT_R4: &[&str] = &["myconsent-ext.xml"];
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let file = p.file_name().unwrap().to_string_lossy().to_string();
        if NOT_R4.contains(&file.as_str()) {
            assert!(flint_model::xml::parse_resource(&std::fs::read(&p).unwrap()).is_err());
            continue;
        }
        if p.extension().is_some_and(|x| x == "xml") && !file.starts_with("tests-") {
            let bytes = std::fs::read(&p).unwrap();
            if let Err(e) = flint_model::xml::parse_resource(&bytes) {
                panic!("{}: {e} at {:?}", p.display(), e.expression);
            }
            n += 1;
        }
    }
    assert!(n >= 10);
}
