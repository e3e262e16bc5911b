//! What the CQL conformance tests share: the cases of the XML test files
//! (`FLINT_CQL_TESTS`, default `../shared/cql-tests` beside the repository), the server
//! offset, Flint's own evaluation of an expression and the comparison of results.

#![allow(dead_code)]

use flint_cql::{Context, Engine, Library, Value, parse_expression};
use quick_xml::Reader;
use quick_xml::events::Event;
use std::path::PathBuf;

/// Tests skipped on purpose: (test name, reason).
pub const SKIPS: &[(&str, &str)] = &[
    (
        "Decimal10Pow28ToZeroOneStepDecimalMaxValue",
        "needs 10^28 - 10^-8 (36 significant digits); rust_decimal holds 28",
    ),
    (
        "DecimalPos10Pow28ToZeroOneStepDecimalMaxValue",
        "needs 10^28 - 10^-8 (36 significant digits); rust_decimal holds 28",
    ),
    (
        "DecimalNeg10Pow28ToZeroOneStepDecimalMinValue",
        "needs -10^28 + 10^-8 (36 significant digits); rust_decimal holds 28",
    ),
    (
        "FloorIntegerLessThanMinInteger",
        "the test file contradicts itself: -2147483649 is not an Integer literal \
         (IntegerNeg2Pow31ToInf1 and CeilingIntegerLessThanMinInteger, the same literal, are \
         marked invalid), yet this case expects Floor of it to be null",
    ),
];

/// One `<test>`.
pub struct Case {
    /// The file it is in.
    pub file: String,
    /// Its name.
    pub name: String,
    /// The `<expression>` (empty for a library case).
    pub expr: String,
    /// The `<library>` source, if the case is a library.
    pub library: Option<String>,
    /// Whether it must fail.
    pub invalid: bool,
    /// Outputs: (the define they name, CQL text of the value).
    pub outputs: Vec<(Option<String>, String)>,
}

/// The cases of one test file.
pub fn read_cases(path: &std::path::Path) -> Vec<Case> {
    let text = std::fs::read_to_string(path).expect("readable test file");
    let mut r = Reader::from_str(&text);
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let mut out = Vec::new();
    let mut cur: Option<Case> = None;
    let mut field: Option<&str> = None;
    let mut out_name: Option<String> = None;
    let mut buf = String::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                let attr = |k: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == k.as_bytes())
                        .map(|a| {
                            a.unescape_value()
                                .map(|v| v.to_string())
                                .unwrap_or_default()
                        })
                };
                match name.as_str() {
                    "test" => {
                        cur = Some(Case {
                            file: file.clone(),
                            name: attr("name").unwrap_or_default(),
                            expr: String::new(),
                            library: None,
                            invalid: false,
                            outputs: vec![],
                        })
                    }
                    "expression" => {
                        if let Some(c) = cur.as_mut() {
                            c.invalid = attr("invalid").is_some_and(|v| v != "false");
                        }
                        field = Some("expression");
                        buf.clear();
                    }
                    "output" => {
                        field = Some("output");
                        out_name = attr("name");
                        buf.clear();
                    }
                    "library" => {
                        if let Some(c) = cur.as_mut() {
                            c.invalid = attr("invalid").is_some_and(|v| v != "false");
                        }
                        field = Some("library");
                        buf.clear();
                    }
                    _ => {}
                }
            }
            Ok(Event::Empty(e)) if e.local_name().as_ref() == b"output" => field = None,
            Ok(Event::Text(t)) if field.is_some() => {
                buf.push_str(&t.xml_content().map(|c| c.to_string()).unwrap_or_default());
            }
            Ok(Event::GeneralRef(g)) if field.is_some() => {
                let n = String::from_utf8_lossy(&g).to_string();
                buf.push_str(match n.as_str() {
                    "lt" => "<",
                    "gt" => ">",
                    "amp" => "&",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Ok(Event::CData(t)) if field.is_some() => {
                buf.push_str(&String::from_utf8_lossy(&t));
            }
            Ok(Event::End(e)) => match e.local_name().as_ref() {
                b"expression" => {
                    if let Some(c) = cur.as_mut() {
                        c.expr = buf.trim().to_string();
                    }
                    field = None;
                }
                b"output" => {
                    if let Some(c) = cur.as_mut() {
                        c.outputs.push((out_name.take(), buf.trim().to_string()));
                    }
                    field = None;
                }
                b"library" => {
                    if let Some(c) = cur.as_mut() {
                        c.library = Some(buf.clone());
                    }
                    field = None;
                }
                b"test" => out.extend(cur.take()),
                _ => {}
            },
            Ok(Event::Eof) => break,
            Err(e) => panic!("{file}: XML error {e}"),
            _ => {}
        }
    }
    out
}

/// The server offset the tests' `{{SERVER_OFFSET_ISO}}` stands for (env `SERVER_OFFSET_ISO`).
pub fn server_offset() -> (String, i32) {
    let iso = std::env::var("SERVER_OFFSET_ISO").unwrap_or_else(|_| "+00:00".into());
    let sign = if iso.starts_with('-') { -1 } else { 1 };
    let digits: Vec<i32> = iso
        .trim_start_matches(['+', '-'])
        .split(':')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let minutes =
        sign * (digits.first().copied().unwrap_or(0) * 60 + digits.get(1).copied().unwrap_or(0));
    (iso, minutes)
}

/// A context at the server offset.
pub fn context() -> Context {
    let mut ctx = Context::default();
    ctx.tz = server_offset().1;
    ctx
}

/// The source with `{{SERVER_OFFSET_ISO}}` replaced.
pub fn subst(src: &str) -> String {
    src.replace("{{SERVER_OFFSET_ISO}}", &server_offset().0)
}

/// Flint's value of a stand-alone expression (parser path).
pub fn eval(src: &str) -> Result<Value, String> {
    let e = parse_expression(&subst(src)).map_err(|e| e.to_string())?;
    let lib = Library::default();
    let engine = Engine::new(&lib);
    engine.eval(&e, &mut context()).map_err(|e| e.to_string())
}

/// The first semantic error the type checker finds in a stand-alone expression (`None`
/// when it checks clean or does not parse).
#[allow(dead_code)]
pub fn check_error(src: &str) -> Option<String> {
    let (e, positions) = flint_cql::parse_expression_with_positions(&subst(src)).ok()?;
    let r = flint_cql::Resolved::default();
    flint_cql::check::check_expression(&r, &e, &positions)
        .into_iter()
        .next()
        .map(|e| e.to_string())
}

/// Deep comparison for results: equivalence, but strings and types exact.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(l, w)| l == k && same(v, w)))
        }
        (Value::Interval(a1, a2, a3, a4), Value::Interval(b1, b2, b3, b4)) => {
            same(a1, b1) && a2 == b2 && same(a3, b3) && a4 == b4
                || flint_cql::eval::equivalent(a, b, 0).unwrap_or(false)
        }
        (Value::Date(x), Value::Date(y))
        | (Value::DateTime(x), Value::DateTime(y))
        | (Value::Time(x), Value::Time(y)) => {
            x.prec == y.prec && flint_cql::eval::equivalent(a, b, 0).unwrap_or(false)
        }
        (Value::Dec(x), Value::Dec(y)) => x == y,
        _ => {
            a.type_name() == b.type_name() && flint_cql::eval::equivalent(a, b, 0).unwrap_or(false)
        }
    }
}

/// The directory of test files: `FLINT_CQL_TESTS`, or the shared copy beside the repository
/// (which must exist: a missing directory fails the test).
pub fn suite_dir() -> PathBuf {
    let dir = std::env::var("FLINT_CQL_TESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/cql-tests"
            ))
        });
    assert!(
        dir.is_dir(),
        "CQL test directory {} is missing",
        dir.display()
    );
    dir
}

/// The `*.xml` test files of the suite directory, sorted.
pub fn suite_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(suite_dir())
        .expect("readable test directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    files.sort();
    files
}
