//! Differential test of ELM input against Flint's own CQL parser: every case of the CQL
//! conformance suite (the files `cql_suite.rs` reads) is translated to ELM JSON by the
//! reference translator (npm `@cqframework/cql`, run by `scripts/cql-to-elm.mjs`, all cases in
//! one node process), read with [`flint_cql::library_from_elm`], evaluated, and compared with
//! the value the parser path gives (and with the expected output).
//!
//! Needs node and the translator, installed by `scripts/fetch-cql-translator.sh` (into the
//! ignored `.cache/cql-translator`, with the model info in `.cache/cql`); without them the test
//! prints why and passes. It prints `N agree, M differ, K not translated` and fails only when
//! fewer than [`FLOOR`] cases agree.

mod common;

use common::{Case, SKIPS, context, eval, read_cases, same, subst, suite_files};
use flint_cql::{Engine, Library, Value, library_from_elm, parse_library};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Cases whose ELM result must agree with the parser path (raise as ELM input grows).
const FLOOR: usize = 1258;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Why the translator cannot run here, if it cannot.
fn missing_translator() -> Option<String> {
    let pkg = repo().join(".cache/cql-translator/node_modules/@cqframework/cql/cql-to-elm.mjs");
    if !pkg.is_file() {
        return Some(format!("{} is missing", pkg.display()));
    }
    for m in ["system-modelinfo.xml", "fhir-modelinfo-4.0.1.xml"] {
        if !repo().join(".cache/cql").join(m).is_file() {
            return Some(format!(".cache/cql/{m} is missing"));
        }
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("node is not on PATH".into()),
    }
}

/// The CQL library of a case: its library, or its expression as the define `Expr`.
fn library_text(c: &Case) -> String {
    match &c.library {
        Some(l) => subst(l),
        None => format!(
            "library ElmDifferential version '1'\n\ndefine \"Expr\":\n{}\n",
            subst(&c.expr)
        ),
    }
}

/// Translates all libraries in one node process: the ELM (or the translator's errors) of each.
fn translate(libs: &[String]) -> Vec<Result<serde_json::Value, String>> {
    let script = repo().join("scripts/cql-to-elm.mjs");
    let mut child = Command::new("node")
        .arg(&script)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let input: Vec<String> = libs
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!({"id": i.to_string(), "cql": l}).to_string())
        .collect();
    let writer = std::thread::spawn(move || {
        for l in input {
            writeln!(stdin, "{l}").expect("write to the translator");
        }
    });
    let mut out = vec![Err("no answer from the translator".to_string()); libs.len()];
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("translator output");
        let mut v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let i: usize = v["id"].as_str().and_then(|s| s.parse().ok()).expect("id");
        let errors: Vec<String> = v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        out[i] = if errors.is_empty() && !v["elm"].is_null() {
            Ok(v["elm"].take())
        } else {
            Err(errors.join("; "))
        };
    }
    writer.join().expect("writer");
    assert!(
        child.wait().expect("node exits").success(),
        "the translator failed"
    );
    out
}

/// The results of a case's outputs (the last define when unnamed; `Expr` for an
/// expression), or the error of each.
fn outcomes(c: &Case, lib: &Library) -> Vec<(String, Result<Value, String>)> {
    let engine = Engine::new(lib);
    let names: Vec<String> = if c.library.is_none() {
        vec!["Expr".into()]
    } else if c.invalid {
        lib.defines.iter().map(|(n, _)| n.clone()).collect()
    } else {
        c.outputs
            .iter()
            .filter_map(|(n, _)| {
                n.clone()
                    .or_else(|| lib.defines.last().map(|(n, _)| n.clone()))
            })
            .collect()
    };
    names
        .into_iter()
        .map(|n| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                engine.eval_define(&n, &mut context())
            }))
            .unwrap_or_else(|_| Err(flint_cql::Error::Eval("panic".into())))
            .map_err(|e| e.to_string());
            (n, r)
        })
        .collect()
}

/// The parser path's outcomes of a case (a library that does not parse is one error).
fn parser_outcomes(c: &Case) -> Vec<(String, Result<Value, String>)> {
    match &c.library {
        None => vec![("Expr".into(), eval(&c.expr))],
        Some(src) => match parse_library(&subst(src)) {
            Ok(lib) => outcomes(c, &lib),
            Err(e) => vec![("library".into(), Err(e.to_string()))],
        },
    }
}

/// Whether the outcomes are the expected ones (an error somewhere for an invalid case).
fn as_expected(c: &Case, got: &[(String, Result<Value, String>)]) -> bool {
    if c.invalid {
        return got.iter().any(|(_, r)| r.is_err());
    }
    if c.library.is_some() {
        return got.len() == c.outputs.len()
            && got.iter().zip(&c.outputs).all(
                |((_, r), (_, want))| matches!((r, eval(want)), (Ok(v), Ok(w)) if same(v, &w)),
            );
    }
    let texts: Vec<&str> = c.outputs.iter().map(|(_, t)| t.as_str()).collect();
    let want = match texts.len() {
        0 => Ok(Value::Null),
        1 => eval(texts[0]),
        _ => eval(&format!("{{{}}}", texts.join(", "))),
    };
    matches!((&got[0].1, want), (Ok(v), Ok(w)) if same(v, &w))
}

/// Whether two paths' outcomes agree: the same values, or errors at the same outputs.
fn agree(a: &[(String, Result<Value, String>)], b: &[(String, Result<Value, String>)]) -> bool {
    let a_err = a.iter().any(|(_, r)| r.is_err());
    let b_err = b.iter().any(|(_, r)| r.is_err());
    if a_err || b_err {
        return a_err && b_err;
    }
    a.len() == b.len()
        && a.iter().zip(b).all(|((_, x), (_, y))| match (x, y) {
            (Ok(x), Ok(y)) => same(x, y),
            _ => false,
        })
}

fn show(r: &[(String, Result<Value, String>)]) -> String {
    r.iter()
        .map(|(n, r)| match r {
            Ok(v) => format!("{n} = {v}"),
            Err(e) => format!("{n}: {e}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn elm_agrees_with_the_parser() {
    if let Some(why) = missing_translator() {
        println!("SKIP elm_differential: {why}; install with scripts/fetch-cql-translator.sh");
        return;
    }
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .expect("thread")
        .join()
        .expect("differential thread");
}

fn run() {
    let cases: Vec<Case> = suite_files()
        .iter()
        .flat_map(|f| read_cases(f))
        .filter(|c| !SKIPS.iter().any(|(n, _)| *n == c.name))
        .collect();
    let started = std::time::Instant::now();
    let elm = translate(&cases.iter().map(library_text).collect::<Vec<_>>());
    let translated_in = started.elapsed();
    let (mut agreeing, mut differ, mut untranslated, mut unread) = (0, 0, 0, 0);
    let (mut elm_pass, mut parser_pass, mut rejected_invalid) = (0, 0, 0);
    for (c, elm) in cases.iter().zip(elm) {
        let theirs = parser_outcomes(c);
        if as_expected(c, &theirs) {
            parser_pass += 1;
        }
        let json = match elm {
            Ok(j) => j,
            Err(e) => {
                untranslated += 1;
                if c.invalid {
                    rejected_invalid += 1;
                    elm_pass += 1;
                } else {
                    println!("NOT TRANSLATED {}/{}: {e}", c.file, c.name);
                }
                continue;
            }
        };
        let ours = match std::panic::catch_unwind(|| library_from_elm(&json)) {
            Ok(Ok(lib)) => outcomes(c, &lib),
            Ok(Err(e)) => {
                unread += 1;
                println!("NOT READ {}/{}: {e}", c.file, c.name);
                vec![("library".into(), Err(format!("ELM not read: {e}")))]
            }
            Err(_) => vec![("library".into(), Err("ELM reader panicked".into()))],
        };
        if as_expected(c, &ours) {
            elm_pass += 1;
        }
        if agree(&ours, &theirs) {
            agreeing += 1;
        } else {
            differ += 1;
            println!(
                "DIFFER {}/{}: {} -- ELM: {} -- parser: {}",
                c.file,
                c.name,
                c.expr.replace('\n', " "),
                show(&ours),
                show(&theirs)
            );
        }
    }
    println!(
        "{agreeing} agree, {differ} differ, {untranslated} not translated \
         ({rejected_invalid} of them invalid cases the translator rejects; {unread} ELM \
         documents not read); as expected: ELM path {elm_pass}, parser path {parser_pass} of {} \
         cases; translated in {:.1} s",
        cases.len(),
        translated_in.as_secs_f64()
    );
    assert!(
        agreeing >= FLOOR,
        "{agreeing} cases agree, below the floor {FLOOR}"
    );
}

/// Records each retrieve's arguments and answers from a fixture of FHIR resources.
struct Fixture(Vec<serde_json::Value>, std::sync::Mutex<Vec<String>>);

impl flint_cql::DataProvider for Fixture {
    fn retrieve(
        &self,
        ty: &str,
        path: Option<&str>,
        codes: Option<&Value>,
    ) -> Result<Vec<Value>, flint_cql::Error> {
        let codes = codes.map(|c| match c {
            // A list of one code is the code (ELM has `ToList` where the parser has the code).
            Value::List(xs) if xs.len() == 1 => xs[0].to_string(),
            c => c.to_string(),
        });
        self.1.lock().expect("lock").push(format!(
            "[{ty}: {} {}]",
            path.unwrap_or("code"),
            codes.unwrap_or_default()
        ));
        self.0
            .iter()
            .filter(|r| r["resourceType"] == ty)
            .map(|r| flint_cql::fhir::resource_value(r.clone()))
            .collect()
    }

    fn in_vocabulary(&self, code: &Value, voc: &Value) -> Result<Option<bool>, flint_cql::Error> {
        Ok(Some(
            matches!(voc, Value::Vocabulary(_, url, _) if url == "http://example.org/vs/bp")
                && code.to_string().contains("8480-6"),
        ))
    }
}

fn fixture() -> Fixture {
    use serde_json::json;
    Fixture(
        vec![
            json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-06-15", "gender": "female",
                "name": [{"given": ["Ann", "Bea"]}, {"given": ["Cleo"]}]}),
            json!({"resourceType": "Observation", "id": "o1", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "userSelected": true}], "text": "SBP"},
                "effectiveDateTime": "2020-03-01T10:00:00Z",
                "valueQuantity": {"value": 150, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}),
            json!({"resourceType": "Observation", "id": "o2", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "effectivePeriod": {"start": "2019-03-01T10:00:00Z", "end": "2019-03-01T11:00:00Z"},
                "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                    "valueQuantity": {"value": 80, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}],
                "valueQuantity": {"value": 13.5, "unit": "kPa", "system": "http://unitsofmeasure.org", "code": "kPa"}}),
        ],
        std::sync::Mutex::new(vec![]),
    )
}

/// A measure-like FHIR library (FHIRHelpers included, the Patient context, value sets, code
/// retrieves, choice types, ages, queries with `with`): every define agrees, and the
/// retrieves asked of the provider are the same.
#[test]
fn fhir_library_agrees_with_the_parser() {
    if let Some(why) = missing_translator() {
        println!("SKIP elm_differential: {why}; install with scripts/fetch-cql-translator.sh");
        return;
    }
    let defines = [
        "Patient.birthDate",
        "Patient.gender = 'female'",
        "Count([Observation])",
        "Count([Observation] O where O.value > 140 'mm[Hg]')",
        "Count([Observation] O where O.effective during \"MP\")",
        "Count([Observation] O where O.code ~ \"SBP code\")",
        "Count([Observation: \"BP\"])",
        "Count([Observation: code ~ \"SBP code\"])",
        "exists [Observation: \"SBP code\"]",
        "exists ([Observation] O where O.code.coding.code contains '8480-6')",
        "First([Observation]).code.text",
        "AgeInYearsAt(start of \"MP\")",
        "AgeInYears() > 18",
        "FHIRHelpers.ToQuantity(First([Observation]).value)",
        "First([Observation]).value is FHIR.Quantity",
        "First([Observation] O sort by id desc).id",
        "Count([Observation] O where O.status in {'final', 'amended'})",
        "First(Last([Observation]).component).value < 90 'mm[Hg]'",
        "Patient.name.given",
        "([Observation] O with [Patient] P such that P.gender = 'female' return O.id)",
        "([Observation] O without [Observation] X such that X.id = 'o1' and O.id = 'o1' return O.id)",
        "CalculateAgeInYearsAt(@2000-02-01, @2020-01-31)",
        "First([Observation]).code in \"BP\"",
        "Double(21)",
    ];
    let mut src = String::from(
        "library FhirElm version '1'\nusing FHIR version '4.0.1'\n\
         include FHIRHelpers version '4.0.1' called FHIRHelpers\n\
         codesystem \"LOINC\": 'http://loinc.org'\n\
         valueset \"BP\": 'http://example.org/vs/bp'\n\
         code \"SBP code\": '8480-6' from \"LOINC\" display 'SBP'\n\
         parameter \"MP\" Interval<DateTime> default Interval[@2020-01-01T00:00:00.0Z, @2021-01-01T00:00:00.0Z)\n\
         context Patient\n\
         define function Double(x Integer): x * 2\n",
    );
    for (i, d) in defines.iter().enumerate() {
        src.push_str(&format!("define \"D{i}\": {d}\n"));
    }
    let elm = translate(std::slice::from_ref(&src))
        .pop()
        .expect("one answer")
        .unwrap_or_else(|e| panic!("the translator refuses the library: {e}"));
    let from_elm = library_from_elm(&elm).expect("the ELM reads");
    let parsed = parse_library(&src).expect("the CQL parses");
    let mut differ = Vec::new();
    for (i, d) in defines.iter().enumerate() {
        let name = format!("D{i}");
        let run = |lib: &Library| {
            let data = fixture();
            let r = Engine::new(lib)
                .with_data(&data)
                .eval_define(&name, &mut context())
                .map_err(|e| e.to_string());
            let asked = data.1.lock().expect("lock").clone();
            (r, asked)
        };
        let (ours, ours_asked) = run(&from_elm);
        let (theirs, theirs_asked) = run(&parsed);
        let same_value = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => same(a, b) || a.to_string() == b.to_string(),
            _ => false,
        };
        if !same_value || ours_asked != theirs_asked {
            differ.push(format!(
                "{d}: ELM {ours:?} asked {ours_asked:?}; parser {theirs:?} asked {theirs_asked:?}"
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// The operators read from ELM since the conformance suite: the translator's ELM and the
/// parser's tree give the same values (`Times`, `Iteration`, `Total` and `aggregate` are not
/// written by this translator from CQL; the reader's unit tests cover them).
#[test]
fn newer_operators_agree_with_the_parser() {
    if let Some(why) = missing_translator() {
        println!("SKIP elm_differential: {why}; install with scripts/fetch-cql-translator.sh");
        return;
    }
    let defines = [
        "SplitOnMatches('a1b22c', '[0-9]+')",
        "SplitOnMatches(null, ',')",
        "ToChars('abc')",
        "GeometricMean({2.0, 8.0})",
        "GeometricMean({1.0, null, 3.0, 9.0})",
        "CanConvertQuantity(5 'mg', 'g')",
        "CanConvertQuantity(5 'mg', 'm')",
        "Subsumes(Code '1' from \"S\", Code '1' from \"S\")",
        "SubsumedBy(Code '1' from \"S\", Code '1' from \"T\")",
        "({1, 2, 3}).where($this > 1)",
        "({1, 2, 3}).select($this * 10)",
        "{1, 2} included in {1, 2, 3}",
        "{1, 2} properly included in {1, 2, 3}",
        "{1, 2, 3} includes {1, 2}",
        "{1, 2, 3} properly includes {3}",
        "{1, 2, 3} includes 2",
    ];
    let mut src = String::from(
        "library Newer version '1'\ncodesystem \"S\": 'http://s'\ncodesystem \"T\": 'http://t'\n\
         define Zero: 0\n",
    );
    for (i, d) in defines.iter().enumerate() {
        src.push_str(&format!("define \"D{i}\": {d}\n"));
    }
    let elm = translate(std::slice::from_ref(&src))
        .pop()
        .expect("one answer")
        .unwrap_or_else(|e| panic!("the translator refuses the library: {e}"));
    let from_elm = library_from_elm(&elm).expect("the ELM reads");
    let parsed = parse_library(&src).expect("the CQL parses");
    let mut differ = Vec::new();
    for (i, d) in defines.iter().enumerate() {
        let name = format!("D{i}");
        let run = |lib: &Library| Engine::new(lib).eval_define(&name, &mut context());
        match (run(&from_elm), run(&parsed)) {
            (Ok(a), Ok(b)) if same(&a, &b) => {}
            (a, b) => differ.push(format!("{d}: ELM {a:?}; parser {b:?}")),
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}
