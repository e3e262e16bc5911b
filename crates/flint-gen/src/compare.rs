//! `flint-gen --compare DIR`: profiles a directory of Synthea transaction bundles and a generated
//! population the same way (resource mix, codes, categories, value distributions) and prints the
//! comparison as Markdown.

use crate::output::patient_bundle;
use crate::time::Window;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::io::{self, Read};
use std::path::Path;

/// Observation codes whose value distributions are compared.
const VALUE_CODES: [&str; 20] = [
    "8302-2", "29463-7", "39156-5", "8480-6", "8462-4", "8867-4", "9279-1", "8310-5", "718-7",
    "6690-2", "777-3", "2339-0", "38483-4", "2160-0", "33914-3", "2093-3", "18262-6", "2085-9",
    "2571-8", "4548-4",
];

/// Counts and distributions of a set of patient bundles.
#[derive(Default, Debug)]
pub struct Profile {
    /// Resources per patient bundle.
    pub per_patient: Vec<usize>,
    /// Resources per type.
    pub types: BTreeMap<String, usize>,
    /// Observations per code.
    pub obs_codes: HashMap<String, usize>,
    /// Conditions per code.
    pub cond_codes: HashMap<String, usize>,
    /// Observations per category code.
    pub obs_categories: BTreeMap<String, usize>,
    /// Encounters per class code.
    pub enc_classes: BTreeMap<String, usize>,
    /// Displays of the codes seen.
    pub displays: HashMap<String, String>,
    /// Quantity values of the compared codes (blood pressure components included).
    pub values: HashMap<String, Vec<f64>>,
    /// Units seen per observation code.
    pub units: HashMap<String, BTreeSet<String>>,
}

fn first_coding(cc: &Value) -> Option<(&str, &str)> {
    let c = cc.get("coding")?.get(0)?;
    Some((
        c.get("code")?.as_str()?,
        c.get("display").and_then(Value::as_str).unwrap_or(""),
    ))
}

impl Profile {
    /// Adds one transaction bundle (batch bundles are ignored).
    pub fn add_bundle(&mut self, bundle: &Value) {
        if bundle["type"] != "transaction" {
            return;
        }
        let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        self.per_patient.push(entries.len());
        for e in entries {
            let r = &e["resource"];
            let ty = r["resourceType"].as_str().unwrap_or("?");
            *self.types.entry(ty.to_string()).or_default() += 1;
            match ty {
                "Observation" => self.add_observation(r),
                "Condition" => {
                    if let Some((code, display)) = first_coding(&r["code"]) {
                        *self.cond_codes.entry(code.to_string()).or_default() += 1;
                        self.display(code, display);
                    }
                }
                "Encounter" => {
                    if let Some(c) = r["class"]["code"].as_str() {
                        *self.enc_classes.entry(c.to_string()).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn display(&mut self, code: &str, display: &str) {
        if !self.displays.contains_key(code) {
            self.displays.insert(code.to_string(), display.to_string());
        }
    }

    fn add_quantity(&mut self, code: &str, q: &Value) {
        if let Some(u) = q["code"].as_str().or(q["unit"].as_str())
            && !self.units.get(code).is_some_and(|s| s.contains(u))
        {
            self.units
                .entry(code.to_string())
                .or_default()
                .insert(u.to_string());
        }
        if VALUE_CODES.contains(&code)
            && let Some(v) = q["value"].as_f64()
        {
            self.values.entry(code.to_string()).or_default().push(v);
        }
    }

    fn add_observation(&mut self, r: &Value) {
        let Some((code, display)) = first_coding(&r["code"]) else {
            return;
        };
        *self.obs_codes.entry(code.to_string()).or_default() += 1;
        self.display(code, display);
        for cat in r["category"].as_array().into_iter().flatten() {
            if let Some((c, _)) = first_coding(cat) {
                *self.obs_categories.entry(c.to_string()).or_default() += 1;
            }
        }
        if r["valueQuantity"].is_object() {
            self.add_quantity(code, &r["valueQuantity"]);
        }
        for comp in r["component"].as_array().into_iter().flatten() {
            if let Some((c, d)) = first_coding(&comp["code"]) {
                let c = c.to_string();
                self.display(&c, d);
                if comp["valueQuantity"].is_object() {
                    self.add_quantity(&c, &comp["valueQuantity"]);
                }
            }
        }
    }

    /// Number of patients.
    pub fn patients(&self) -> usize {
        self.per_patient.len()
    }

    /// Total number of resources.
    pub fn resources(&self) -> usize {
        self.per_patient.iter().sum()
    }
}

/// Profiles every `*.json` / `*.json.bz2` bundle in `dir` (batch bundles skipped).
pub fn profile_dir(dir: &Path) -> io::Result<Profile> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".json") || n.ends_with(".json.bz2")
        })
        .collect();
    files.sort();
    let mut profile = Profile::default();
    for f in files {
        let raw = std::fs::read(&f)?;
        let bytes = if f.extension().is_some_and(|e| e == "bz2") {
            let mut out = Vec::with_capacity(raw.len() * 10);
            bzip2::read::BzDecoder::new(raw.as_slice()).read_to_end(&mut out)?;
            out
        } else {
            raw
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", f.display()))
        })?;
        profile.add_bundle(&v);
    }
    Ok(profile)
}

/// Profiles `patients` generated patients.
pub fn profile_generated(seed: u64, patients: u64, window: &Window) -> Profile {
    let mut profile = Profile::default();
    for i in 1..=patients {
        let v: Value =
            serde_json::from_str(&patient_bundle(seed, i, window)).expect("generated JSON parses");
        profile.add_bundle(&v);
    }
    profile
}

fn pct(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        100.0 * n as f64 / total as f64
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn summary(v: &[usize]) -> (f64, usize, usize, usize) {
    let mut s = v.to_vec();
    s.sort_unstable();
    let mean = s.iter().sum::<usize>() as f64 / s.len().max(1) as f64;
    (
        mean,
        s.get(s.len() / 2).copied().unwrap_or(0),
        s.first().copied().unwrap_or(0),
        s.last().copied().unwrap_or(0),
    )
}

fn top(m: &HashMap<String, usize>, n: usize) -> Vec<String> {
    let mut v: Vec<(&String, &usize)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.into_iter().take(n).map(|(k, _)| k.clone()).collect()
}

/// Codes in `a`'s top `n`, then those of `b`'s top `n` not yet listed.
fn union_top(a: &HashMap<String, usize>, b: &HashMap<String, usize>, n: usize) -> Vec<String> {
    let mut out = top(a, n);
    for c in top(b, n) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The section on the codes of resource type `ty` (counted in `ra` for `a`, `rb` for `b`): how
/// many are distinct, how much of each side the other covers, and the shares of the top 15 of
/// each, with their units when `with_units`.
fn code_section(
    s: &mut String,
    ty: &str,
    ra: &HashMap<String, usize>,
    rb: &HashMap<String, usize>,
    a: &Profile,
    b: &Profile,
    with_units: bool,
) {
    let _ = writeln!(
        s,
        "\n### {ty} codes (top 15 of each; share of all {ty}s)\n\n\
         Distinct codes: Synthea {}, flint-gen {}. Synthea {ty}s whose code flint-gen also \
         generates: {:.1}%; flint-gen {ty}s whose code occurs in Synthea: {:.1}%.\n",
        ra.len(),
        rb.len(),
        coverage(ra, rb),
        coverage(rb, ra)
    );
    let (ta, tb) = (ra.values().sum::<usize>(), rb.values().sum::<usize>());
    if with_units {
        let _ = writeln!(
            s,
            "| code | display | unit | Synthea | flint-gen |\n|---|---|---|---:|---:|"
        );
    } else {
        let _ = writeln!(
            s,
            "| code | display | Synthea | flint-gen |\n|---|---|---:|---:|"
        );
    }
    for c in &union_top(ra, rb, 15) {
        let d = a
            .displays
            .get(c)
            .or(b.displays.get(c))
            .map_or("", String::as_str);
        let (na, nb) = (
            ra.get(c).copied().unwrap_or(0),
            rb.get(c).copied().unwrap_or(0),
        );
        if with_units {
            let unit = a
                .units
                .get(c)
                .or(b.units.get(c))
                .map_or(String::new(), |u| {
                    u.iter().cloned().collect::<Vec<_>>().join(", ")
                });
            let _ = writeln!(
                s,
                "| {c} | {d} | {unit} | {:.2}% | {:.2}% |",
                pct(na, ta),
                pct(nb, tb)
            );
        } else {
            let _ = writeln!(
                s,
                "| {c} | {d} | {:.2}% | {:.2}% |",
                pct(na, ta),
                pct(nb, tb)
            );
        }
    }
}

/// A section headed `heading` with the share of each `column` value among `ra`'s counts and
/// among `rb`'s.
fn share_section(
    s: &mut String,
    heading: &str,
    column: &str,
    ra: &BTreeMap<String, usize>,
    rb: &BTreeMap<String, usize>,
) {
    let _ = writeln!(s, "\n### {heading}\n");
    let _ = writeln!(s, "| {column} | Synthea | flint-gen |\n|---|---:|---:|");
    let keys: BTreeSet<&String> = ra.keys().chain(rb.keys()).collect();
    let (ta, tb) = (ra.values().sum(), rb.values().sum());
    for k in keys {
        let (na, nb) = (
            ra.get(k).copied().unwrap_or(0),
            rb.get(k).copied().unwrap_or(0),
        );
        let _ = writeln!(s, "| {k} | {:.2}% | {:.2}% |", pct(na, ta), pct(nb, tb));
    }
}

/// Share of `a`'s items whose code also occurs in `b`.
fn coverage(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> f64 {
    let total: usize = a.values().sum();
    let covered: usize = a
        .iter()
        .filter(|(k, _)| b.contains_key(*k))
        .map(|(_, v)| v)
        .sum();
    pct(covered, total)
}

/// The Markdown comparison of a reference profile (`a`, Synthea) and a generated one (`b`).
pub fn report(a: &Profile, b: &Profile) -> String {
    let mut s = String::new();
    let (ma, meda, mina, maxa) = summary(&a.per_patient);
    let (mb, medb, minb, maxb) = summary(&b.per_patient);
    let _ = writeln!(s, "### Resources per patient\n");
    let _ = writeln!(s, "| | Synthea | flint-gen |\n|---|---:|---:|");
    let _ = writeln!(s, "| patients | {} | {} |", a.patients(), b.patients());
    let _ = writeln!(s, "| resources | {} | {} |", a.resources(), b.resources());
    let _ = writeln!(s, "| mean per patient | {ma:.0} | {mb:.0} |");
    let _ = writeln!(s, "| median | {meda} | {medb} |");
    let _ = writeln!(s, "| min | {mina} | {minb} |");
    let _ = writeln!(s, "| max | {maxa} | {maxb} |");

    let _ = writeln!(s, "\n### Resource types\n");
    let _ = writeln!(
        s,
        "| type | Synthea per patient | Synthea share | flint-gen per patient | flint-gen share |\n|---|---:|---:|---:|---:|"
    );
    let mut types: Vec<&String> = a
        .types
        .keys()
        .chain(b.types.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    types.sort_by(|x, y| {
        let (cx, cy) = (
            a.types.get(*x).copied().unwrap_or(0),
            a.types.get(*y).copied().unwrap_or(0),
        );
        cy.cmp(&cx)
            .then(b.types.get(*y).cmp(&b.types.get(*x)))
            .then(x.cmp(y))
    });
    for t in types {
        let (na, nb) = (
            a.types.get(t).copied().unwrap_or(0),
            b.types.get(t).copied().unwrap_or(0),
        );
        let _ = writeln!(
            s,
            "| {t} | {:.1} | {:.2}% | {:.1} | {:.2}% |",
            na as f64 / a.patients().max(1) as f64,
            pct(na, a.resources()),
            nb as f64 / b.patients().max(1) as f64,
            pct(nb, b.resources())
        );
    }

    share_section(
        &mut s,
        "Observation categories",
        "category",
        &a.obs_categories,
        &b.obs_categories,
    );
    share_section(
        &mut s,
        "Encounter classes",
        "class",
        &a.enc_classes,
        &b.enc_classes,
    );
    code_section(
        &mut s,
        "Observation",
        &a.obs_codes,
        &b.obs_codes,
        a,
        b,
        true,
    );
    code_section(
        &mut s,
        "Condition",
        &a.cond_codes,
        &b.cond_codes,
        a,
        b,
        false,
    );

    let _ = writeln!(s, "\n### Values (5th / 50th / 95th percentile)\n");
    let _ = writeln!(
        s,
        "| code | display | unit (Synthea / flint-gen) | Synthea | flint-gen |\n|---|---|---|---|---|"
    );
    for c in VALUE_CODES {
        let d = a
            .displays
            .get(c)
            .or(b.displays.get(c))
            .map_or("", String::as_str);
        let units = |p: &Profile| {
            p.units.get(c).map_or("-".to_string(), |u| {
                u.iter().cloned().collect::<Vec<_>>().join(", ")
            })
        };
        let q = |p: &Profile| {
            let mut v = p.values.get(c).cloned().unwrap_or_default();
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{:.1} / {:.1} / {:.1} (n={})",
                    quantile(&v, 0.05),
                    quantile(&v, 0.5),
                    quantile(&v, 0.95),
                    v.len()
                )
            }
        };
        let _ = writeln!(
            s,
            "| {c} | {d} | {} / {} | {} | {} |",
            units(a),
            units(b),
            q(a),
            q(b)
        );
    }
    s
}
