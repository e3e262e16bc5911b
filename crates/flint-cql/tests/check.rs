//! The type checker on real libraries: FHIRHelpers 4.0.1 and every CQL library embedded in
//! the tests of the CQL crates (flint-cql, flint-cql-db, flint-measure, flint-rest,
//! flint-e2e) check clean; libraries named `Invalid...` are there to be rejected, as are
//! those of the checker's own unit tests (`src/check/tests.rs`).

use flint_cql::check::check_resolved;
use flint_cql::{Resolved, parse_library};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// FHIRHelpers 4.0.1 as a resolved include.
fn fhir_helpers() -> Arc<Resolved> {
    Arc::new(Resolved {
        library: Arc::new(parse_library(flint_model::defs::FHIR_HELPERS_4_0_1).unwrap()),
        includes: Vec::new(),
    })
}

/// `src` parsed, with FHIRHelpers resolved when it includes it (other includes are left
/// unresolved: references into them are of unknown type).
fn resolved(src: &str) -> Option<Resolved> {
    let lib = parse_library(src).ok()?;
    let includes = lib
        .includes
        .iter()
        .filter(|(n, _, _)| n == "FHIRHelpers")
        .map(|(_, _, a)| (a.clone(), fhir_helpers()))
        .collect();
    Some(Resolved {
        library: Arc::new(lib),
        includes,
    })
}

#[test]
fn fhir_helpers_checks_clean() {
    let r = fhir_helpers();
    let errors = check_resolved(&r);
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The text of every string literal (plain with its escapes, or raw) in Rust source `src`.
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' => {
                // A char literal ('"', '\'') or a lifetime: skip the char literal only.
                if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else if b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') {
                    i += 4;
                } else {
                    i += 1;
                }
            }
            b'r' if (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = j + 1;
                match src[start..].find(&close) {
                    Some(k) => {
                        out.push(src[start..start + k].to_string());
                        i = start + k + close.len();
                    }
                    None => break,
                }
            }
            b'"' => {
                let mut s = String::new();
                let mut j = i + 1;
                let mut chars = src[j..].char_indices();
                loop {
                    let Some((k, c)) = chars.next() else {
                        j = b.len();
                        break;
                    };
                    match c {
                        '"' => {
                            j += k + 1;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, '\n')) => {
                                // A line continuation skips the next line's indentation.
                                let rest = chars.as_str();
                                let skip = rest.len() - rest.trim_start().len();
                                for _ in 0..rest[..skip].chars().count() {
                                    chars.next();
                                }
                            }
                            Some((_, x)) => s.push(x),
                            None => {}
                        },
                        c => s.push(c),
                    }
                }
                out.push(s);
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_library_embedded_in_the_tests_checks_clean() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for c in [
        "flint-cql",
        "flint-cql-db",
        "flint-measure",
        "flint-rest",
        "flint-e2e",
    ] {
        rust_files(&crates.join(c).join("tests"), &mut files);
    }
    rust_files(&crates.join("flint-cql/src"), &mut files);
    // The checker's own tests hold libraries with errors on purpose.
    files.retain(|f| !f.ends_with("src/check/tests.rs"));
    let (mut checked, mut failures) = (0, Vec::new());
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        let lits = string_literals(&src);
        // A library head without defines (`const HEAD`) is completed by the file's other
        // literals as the body of `define X` (`format!("{HEAD}define X: {body}")`).
        let heads: Vec<&String> = lits
            .iter()
            .filter(|l| l.trim_start().starts_with("library ") && !l.contains("define "))
            .collect();
        let mut sources: Vec<String> = lits.clone();
        for h in &heads {
            for l in &lits {
                // Not JSON keys and values: a body has an operator, a call or a space.
                let body = l.trim();
                let word = body
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.:/@[]\"".contains(c));
                let template = body.contains("{HEAD}") || body.starts_with("{e");
                if !body.starts_with("library ") && !body.is_empty() && !word && !template {
                    sources.push(format!("{h}define X: {l}"));
                }
            }
        }
        for lit in sources {
            let text = lit.trim_start();
            if !text.starts_with("library ") || !text.contains("define ") {
                continue;
            }
            // Templates (`format!`) and deliberately broken sources do not parse.
            let Some(r) = resolved(text) else {
                continue;
            };
            let name = r.library.name.as_ref().map(|(n, _)| n.clone());
            if name.as_deref().is_some_and(|n| n.starts_with("Invalid")) {
                continue;
            }
            checked += 1;
            let errors = check_resolved(&r);
            if !errors.is_empty() {
                failures.push(format!("{}: {text}\n  {errors:?}", f.display()));
            }
        }
    }
    assert!(checked >= 20, "only {checked} libraries found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{checked} embedded libraries check clean");
}
