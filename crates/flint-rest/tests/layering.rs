//! The module layering documented in `src/lib.rs`: each module of the crate uses only modules
//! of lower layers, so the module graph has no cycles. Read from the sources: every
//! `crate::module` path outside comments counts, in code and tests alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first.
const LAYERS: &[&[&str]] = &[
    &["outcome", "resource"],
    &["definitions"],
    &["format"],
    &["api", "config"],
    &["capabilities"],
    &["state"],
    &["context"],
    &["interaction"],
    &["search", "history"],
    &["conditional"],
    &["bundle"],
    &["admin"],
    &["operations"],
    &["async_request"],
    &["http"],
];

/// The source text of every `.rs` file under `dir`, with comment lines dropped.
fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            out.push((path.display().to_string(), text));
        }
    }
}

/// The top-level module of a source file (`src/operations/versions.rs` is `operations`).
fn module_of(src: &Path, file: &str) -> String {
    let rel = Path::new(file).strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The crate modules `text` names: `crate::m` and the first names of `crate::{a, b::c}`.
fn used_modules(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas.
            let (mut depth, mut start) = (0usize, 0usize);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, ms)| ms.iter().map(move |m| (*m, i)))
        .collect();
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        // Test files of a module (`search_tests.rs`) belong to it.
        let module = module.strip_suffix("_tests").unwrap_or(&module).to_string();
        let used = used_modules(text);
        uses.entry(module).or_default().extend(used);
    }
    let mut problems = Vec::new();
    for (module, used) in &uses {
        let Some(&own) = layer_of.get(module.as_str()) else {
            problems.push(format!(
                "`{module}` is in no layer: add it to LAYERS and lib.rs"
            ));
            continue;
        };
        for u in used.iter().filter(|u| *u != module) {
            match layer_of.get(u.as_str()) {
                Some(&l) if l < own => {}
                Some(_) => problems.push(format!("`{module}` uses `{u}` of a layer not below")),
                None => problems.push(format!("`{module}` uses `{u}`, which is in no layer")),
            }
        }
    }
    for m in layer_of.keys() {
        if !uses.contains_key(*m) {
            problems.push(format!("LAYERS lists `{m}`, which has no source file"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn used_modules_reads_paths_and_groups() {
    let text = "use crate::api::{Body, Reply};\nuse crate::{bundle, operations::{self, Target},\n    search};\nlet x = crate::resource::new_id();";
    let got: Vec<String> = used_modules(text).into_iter().collect();
    assert_eq!(got, ["api", "bundle", "operations", "resource", "search"]);
}
