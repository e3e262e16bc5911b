//! The terminology operations over a [`Session`]: `$expand`, `$validate-code` (ValueSet and
//! CodeSystem), `$lookup`, `$subsumes` and `ConceptMap/$translate`, each from parsed inputs
//! to the FHIR resource it answers with (a `ValueSet` with an `expansion`, or a
//! `Parameters`). No HTTP here: the REST layer reads the parameters and maps [`Error`]s to
//! OperationOutcomes.

use crate::codesystem::{CodeSystem, property_text};
use crate::service::{Member, Session, invalid};
use crate::{CanonicalResolver, Error, Result};
use serde_json::{Map, Value, json};

/// A coding to validate, look up or translate (from `code`/`system`/`version`/`display`, a
/// `coding` or one coding of a `codeableConcept`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CodingInput {
    /// The system, if given.
    pub system: Option<String>,
    /// The system's version, if given.
    pub version: Option<String>,
    /// The code.
    pub code: String,
    /// The display to check, if given.
    pub display: Option<String>,
}

impl CodingInput {
    /// The coding of a FHIR `Coding` value; `None` without a code.
    pub fn of_coding(c: &Value) -> Option<CodingInput> {
        Some(CodingInput {
            system: c["system"].as_str().map(str::to_string),
            version: c["version"].as_str().map(str::to_string),
            code: c["code"].as_str()?.to_string(),
            display: c["display"].as_str().map(str::to_string),
        })
    }

    fn label(&self) -> String {
        match &self.system {
            Some(s) => format!("{s}#{}", self.code),
            None => self.code.clone(),
        }
    }
}

/// The parameters of `$expand` besides the ValueSet.
#[derive(Debug, Clone)]
pub struct ExpandParams {
    /// `filter`: every word must prefix-match a word of the display or of a designation.
    pub filter: Option<String>,
    /// `offset`: members skipped.
    pub offset: usize,
    /// `count`: members returned at most (all when `None`).
    pub count: Option<usize>,
    /// `includeDefinition`: the ValueSet's `compose` is kept.
    pub include_definition: bool,
    /// `activeOnly`: inactive concepts are left out.
    pub active_only: bool,
    /// `includeDesignations`: the members' designations are shown.
    pub include_designations: bool,
    /// `displayLanguage`: a designation of this language is the display when there is one.
    pub display_language: Option<String>,
    /// The most members an expansion may have unless paged (`count` at most this).
    pub max_size: usize,
    /// The expansion's `timestamp`.
    pub timestamp: String,
    /// The parameters to echo in `expansion.parameter` (name, FHIR value JSON key, value).
    pub echo: Vec<(String, Value)>,
}

impl Default for ExpandParams {
    fn default() -> Self {
        ExpandParams {
            filter: None,
            offset: 0,
            count: None,
            include_definition: false,
            active_only: false,
            include_designations: false,
            display_language: None,
            max_size: 10_000,
            timestamp: "1970-01-01T00:00:00Z".into(),
            echo: Vec::new(),
        }
    }
}

/// The lower-cased words of `s` (split at everything that is not a letter or a digit).
fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Whether every word of `filter` is a prefix of a word of `m`'s display or designations.
pub fn text_matches(filter: &[String], m: &Member) -> bool {
    let mut texts: Vec<&str> = m.designations.iter().map(|d| d.value.as_str()).collect();
    if let Some(d) = &m.display {
        texts.push(d);
    }
    let own: Vec<String> = texts.iter().flat_map(|t| words(t)).collect();
    filter
        .iter()
        .all(|f| own.iter().any(|w| w.starts_with(f.as_str())))
}

/// The display of `m` in `language`: a designation of that language (or a sub-tag of it),
/// else the display.
fn display_in(m: &Member, language: Option<&str>) -> Option<String> {
    if let Some(lang) = language {
        let lang = lang.to_lowercase();
        let fits = |l: &str| {
            let l = l.to_lowercase();
            l == lang || l.starts_with(&format!("{lang}-"))
        };
        if let Some(d) = m
            .designations
            .iter()
            .find(|d| d.language.as_deref().is_some_and(fits))
        {
            return Some(d.value.clone());
        }
    }
    m.display.clone()
}

impl<R: CanonicalResolver> Session<'_, R> {
    /// `$expand` of ValueSet `vs`: the ValueSet with its `expansion` (`total`, `offset`,
    /// the echoed parameters and one page of `contains`).
    pub async fn expand(&self, vs: &Value, p: &ExpandParams) -> Result<Value> {
        let mut members = self.expand_members(vs).await?;
        if p.active_only {
            members.retain(|m| !m.inactive);
        }
        if let Some(f) = &p.filter {
            let filter: Vec<String> = words(f).collect();
            members.retain(|m| text_matches(&filter, m));
        }
        let total = members.len();
        let paged = p.count.is_some_and(|c| c <= p.max_size);
        if total > p.max_size && !paged {
            return Err(Error::TooCostly {
                value_set: vs["url"].as_str().unwrap_or("(given)").to_string(),
                size: total,
                limit: p.max_size,
            });
        }
        let count = p.count.unwrap_or(total);
        let contains: Vec<Value> = members
            .iter()
            .skip(p.offset)
            .take(count)
            .map(|m| {
                let mut o = Map::new();
                o.insert("system".into(), json!(m.system));
                if let Some(v) = &m.version {
                    o.insert("version".into(), json!(v));
                }
                if m.is_abstract {
                    o.insert("abstract".into(), json!(true));
                }
                if m.inactive {
                    o.insert("inactive".into(), json!(true));
                }
                o.insert("code".into(), json!(m.code));
                if let Some(d) = display_in(m, p.display_language.as_deref()) {
                    o.insert("display".into(), json!(d));
                }
                if p.include_designations && !m.designations.is_empty() {
                    o.insert(
                        "designation".into(),
                        m.designations.iter().map(|d| d.to_json()).collect(),
                    );
                }
                Value::Object(o)
            })
            .collect();
        let mut out = Map::new();
        out.insert("resourceType".into(), json!("ValueSet"));
        for k in ["id", "url", "version", "name", "title", "status"] {
            if let Some(v) = vs.get(k) {
                out.insert(k.into(), v.clone());
            }
        }
        if !out.contains_key("status") {
            out.insert("status".into(), json!("active"));
        }
        if p.include_definition {
            for k in ["description", "compose"] {
                if let Some(v) = vs.get(k) {
                    out.insert(k.into(), v.clone());
                }
            }
        }
        let mut expansion = Map::new();
        expansion.insert("timestamp".into(), json!(p.timestamp));
        expansion.insert("total".into(), json!(total));
        expansion.insert("offset".into(), json!(p.offset));
        let echoed: Vec<Value> = p
            .echo
            .iter()
            .map(|(name, value)| {
                let mut o = value.as_object().cloned().unwrap_or_default();
                o.insert("name".into(), json!(name));
                Value::Object(o)
            })
            .collect();
        if !echoed.is_empty() {
            expansion.insert("parameter".into(), Value::Array(echoed));
        }
        if !contains.is_empty() {
            expansion.insert("contains".into(), Value::Array(contains));
        }
        out.insert("expansion".into(), Value::Object(expansion));
        Ok(Value::Object(out))
    }

    /// `ValueSet/$validate-code`: whether one of `codings` is in ValueSet `vs` (a
    /// `codeableConcept` gives several; the first valid one answers). Without a system a
    /// code is found in any system of the ValueSet when `infer_system` is set (and must be
    /// unambiguous there), and is invalid otherwise. A code of a CodeSystem that is not
    /// known is invalid with a message saying so.
    pub async fn validate_in_value_set(
        &self,
        vs: &Value,
        codings: &[CodingInput],
        infer_system: bool,
    ) -> Result<Value> {
        let vs_url = vs["url"].as_str().unwrap_or("(given)");
        let mut messages = Vec::new();
        for c in codings {
            let system = match (&c.system, infer_system) {
                (Some(s), _) => Some(s.as_str()),
                (None, true) => None,
                (None, false) => {
                    messages.push(format!(
                        "The code `{}` has no system (set inferSystem to find it in the \
                         value set).",
                        c.code
                    ));
                    continue;
                }
            };
            if system.is_none() {
                let systems: Vec<String> = self
                    .expand_members(vs)
                    .await?
                    .into_iter()
                    .filter(|m| m.code == c.code)
                    .map(|m| m.system)
                    .collect();
                if systems.len() > 1 {
                    messages.push(format!(
                        "The code `{}` is in several systems of the value set `{vs_url}` ({}); \
                         its system cannot be inferred.",
                        c.code,
                        systems.join(", ")
                    ));
                    continue;
                }
            }
            let found = match self.member(vs, system, &c.code).await {
                Ok(m) => m,
                Err(Error::UnknownCodeSystem(s)) if system.is_some() => {
                    messages.push(format!(
                        "The CodeSystem `{s}` of the value set `{vs_url}` is not known."
                    ));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(m) = found else {
                let known = match &c.system {
                    Some(s) => self.code_system(s).await?.is_some(),
                    None => true,
                };
                messages.push(if known {
                    format!(
                        "The code `{}` is not in the value set `{vs_url}`.",
                        c.label()
                    )
                } else {
                    format!(
                        "The code `{}` is not in the value set `{vs_url}` (its CodeSystem \
                         `{}` is not known).",
                        c.label(),
                        c.system.as_deref().unwrap_or_default()
                    )
                });
                continue;
            };
            return Ok(valid(
                c,
                &m.system,
                m.version.as_deref(),
                m.display.as_deref(),
                &m,
            ));
        }
        Ok(invalid_result(codings, &messages))
    }

    /// `CodeSystem/$validate-code`: whether one of `codings` is a code of `cs`. A code a
    /// `fragment` (or other incomplete) CodeSystem lacks is valid with a warning message.
    pub fn validate_in_code_system(&self, cs: &CodeSystem, codings: &[CodingInput]) -> Value {
        let mut messages = Vec::new();
        for c in codings {
            if c.system.as_deref().is_some_and(|s| s != cs.url) {
                messages.push(format!(
                    "The coding `{}` is not of the CodeSystem `{}`.",
                    c.label(),
                    cs.url
                ));
                continue;
            }
            match cs.find(&c.code) {
                Some(i) => {
                    let m = Member::of(cs, i);
                    return valid(c, &cs.url, cs.version.as_deref(), m.display.as_deref(), &m);
                }
                None if !cs.is_complete() => {
                    let mut out = parameters(vec![
                        ("result", json!({"valueBoolean": true})),
                        (
                            "message",
                            json!({"valueString": format!(
                                "Warning: the code `{}` is not in the {} CodeSystem `{}`, \
                                 which does not state all its codes.",
                                c.code, cs.content, cs.url
                            )}),
                        ),
                    ]);
                    push(&mut out, "code", json!({"valueCode": c.code}));
                    push(&mut out, "system", json!({"valueUri": cs.url}));
                    return out;
                }
                None => messages.push(format!(
                    "The code `{}` is not in the CodeSystem `{}`.",
                    c.code, cs.url
                )),
            }
        }
        invalid_result(codings, &messages)
    }

    /// `CodeSystem/$lookup` of `code` in `cs`: name, version, display, definition,
    /// designations and properties (those named in `properties`, all when it is empty;
    /// `parent` and `child` from the hierarchy). A code `cs` lacks is
    /// [`Error::UnknownCode`].
    pub fn lookup(
        &self,
        cs: &CodeSystem,
        code: &str,
        properties: &[String],
        display_language: Option<&str>,
        parameter: &str,
    ) -> Result<Value> {
        let i = cs.find(code).ok_or_else(|| Error::UnknownCode {
            system: cs.url.clone(),
            code: code.to_string(),
            parameter: parameter.to_string(),
        })?;
        let c = &cs.concepts[i];
        let m = Member::of(cs, i);
        let wanted = |p: &str| properties.is_empty() || properties.iter().any(|x| x == p);
        let mut out = parameters(vec![(
            "name",
            json!({"valueString": cs.name.clone().unwrap_or_else(|| cs.url.clone())}),
        )]);
        if let Some(v) = &cs.version {
            push(&mut out, "version", json!({"valueString": v}));
        }
        if let Some(d) = display_in(&m, display_language) {
            push(&mut out, "display", json!({"valueString": d}));
        }
        if let Some(d) = &c.definition
            && wanted("definition")
        {
            push(&mut out, "definition", json!({"valueString": d}));
        }
        if wanted("designation") {
            for d in &c.designations {
                let mut part = Vec::new();
                if let Some(l) = &d.language {
                    part.push(json!({"name": "language", "valueCode": l}));
                }
                if let Some(u) = &d.use_ {
                    part.push(json!({"name": "use", "valueCoding": u}));
                }
                part.push(json!({"name": "value", "valueString": d.value}));
                push_parts(&mut out, "designation", part);
            }
        }
        for p in &c.properties {
            let Some(pc) = p["code"].as_str() else {
                continue;
            };
            if !wanted(pc) {
                continue;
            }
            let mut part = vec![json!({"name": "code", "valueCode": pc})];
            if let Some((k, v)) = p
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.starts_with("value")))
            {
                let mut value = Map::new();
                value.insert("name".into(), json!("value"));
                value.insert(k.clone(), v.clone());
                part.push(Value::Object(value));
            }
            push_parts(&mut out, "property", part);
        }
        let stated = |name: &str, v: &str| {
            c.properties
                .iter()
                .any(|p| p["code"].as_str() == Some(name) && property_text(p).as_deref() == Some(v))
        };
        for (name, codes) in [
            ("parent", cs.hierarchy.parents(&c.code)),
            ("child", cs.hierarchy.children(&c.code)),
        ] {
            if !wanted(name) {
                continue;
            }
            for code in codes.into_iter().filter(|x| !stated(name, x)) {
                push_parts(
                    &mut out,
                    "property",
                    vec![
                        json!({"name": "code", "valueCode": name}),
                        json!({"name": "value", "valueCode": code}),
                    ],
                );
            }
        }
        if wanted("inactive") && !c.properties.iter().any(|p| p["code"] == "inactive") {
            push_parts(
                &mut out,
                "property",
                vec![
                    json!({"name": "code", "valueCode": "inactive"}),
                    json!({"name": "value", "valueBoolean": m.inactive}),
                ],
            );
        }
        Ok(out)
    }

    /// `CodeSystem/$subsumes` of `a` and `b` in `cs`: `equivalent`, `subsumes`,
    /// `subsumed-by` or `not-subsumed`; a code `cs` lacks is [`Error::UnknownCode`] (naming
    /// `codeA` or `codeB`).
    pub fn subsumes(&self, cs: &CodeSystem, a: &str, b: &str) -> Result<Value> {
        let known = |code: &str, parameter: &str| {
            cs.find(code)
                .map(|i| cs.concepts[i].code.clone())
                .ok_or_else(|| Error::UnknownCode {
                    system: cs.url.clone(),
                    code: code.to_string(),
                    parameter: parameter.to_string(),
                })
        };
        let (a, b) = (known(a, "codeA")?, known(b, "codeB")?);
        let outcome = if a == b {
            "equivalent"
        } else if cs.hierarchy.subsumes(&a, &b) {
            "subsumes"
        } else if cs.hierarchy.subsumes(&b, &a) {
            "subsumed-by"
        } else {
            "not-subsumed"
        };
        Ok(parameters(vec![("outcome", json!({"valueCode": outcome}))]))
    }

    /// `ConceptMap/$translate` of `coding` with ConceptMap `cm`: every mapping of the coding
    /// (of its target systems `target_system` only, when given), or of the reverse direction
    /// (`reverse`: target to source, equivalences `wider`/`narrower` and
    /// `subsumes`/`specializes` swapped); a group's `unmapped` (`provided`: the same code,
    /// `fixed`: its code) answers a code without an element. `result` is whether some match
    /// is not `unmatched` or `disjoint`.
    pub fn translate(
        &self,
        cm: &Value,
        coding: &CodingInput,
        target_system: Option<&str>,
        reverse: bool,
    ) -> Result<Value> {
        let source_url = cm["url"].as_str().unwrap_or("(given)");
        let mut matches: Vec<Value> = Vec::new();
        let concept = |system: Option<&str>, code: &str, display: Option<&str>| {
            let mut o = Map::new();
            if let Some(s) = system {
                o.insert("system".into(), json!(s));
            }
            o.insert("code".into(), json!(code));
            if let Some(d) = display {
                o.insert("display".into(), json!(d));
            }
            Value::Object(o)
        };
        let mut add = |equivalence: &str, concept: Value| {
            matches.push(json!({"name": "match", "part": [
                {"name": "equivalence", "valueCode": equivalence},
                {"name": "concept", "valueCoding": concept},
                {"name": "source", "valueUri": source_url},
            ]}));
        };
        for g in cm["group"].as_array().into_iter().flatten() {
            let (from, to) = if reverse {
                (g["target"].as_str(), g["source"].as_str())
            } else {
                (g["source"].as_str(), g["target"].as_str())
            };
            if coding.system.is_some() && from.is_some() && coding.system.as_deref() != from {
                continue;
            }
            if target_system.is_some() && to != target_system {
                continue;
            }
            let mut mapped = false;
            for e in g["element"].as_array().into_iter().flatten() {
                if reverse {
                    for t in e["target"].as_array().into_iter().flatten() {
                        if t["code"].as_str() != Some(coding.code.as_str()) {
                            continue;
                        }
                        let Some(code) = e["code"].as_str() else {
                            continue;
                        };
                        mapped = true;
                        let eq = match t["equivalence"].as_str().unwrap_or("equivalent") {
                            "wider" => "narrower",
                            "narrower" => "wider",
                            "subsumes" => "specializes",
                            "specializes" => "subsumes",
                            other => other,
                        };
                        add(eq, concept(to, code, e["display"].as_str()));
                    }
                } else if e["code"].as_str() == Some(coding.code.as_str()) {
                    for t in e["target"].as_array().into_iter().flatten() {
                        mapped = true;
                        let eq = t["equivalence"].as_str().unwrap_or("equivalent");
                        match t["code"].as_str() {
                            Some(code) => add(eq, concept(to, code, t["display"].as_str())),
                            None => add(eq, Value::Object(Map::new())),
                        }
                    }
                }
            }
            if !mapped && !reverse {
                let u = &g["unmapped"];
                match u["mode"].as_str() {
                    Some("provided") => add(
                        "equal",
                        concept(to, &coding.code, coding.display.as_deref()),
                    ),
                    Some("fixed") => {
                        if let Some(code) = u["code"].as_str() {
                            add("equivalent", concept(to, code, u["display"].as_str()));
                        }
                    }
                    _ => {}
                }
            }
        }
        let result = matches.iter().any(|m| {
            !matches!(
                m["part"][0]["valueCode"].as_str(),
                Some("unmatched" | "disjoint")
            )
        });
        let mut out = parameters(vec![("result", json!({"valueBoolean": result}))]);
        if !result {
            push(
                &mut out,
                "message",
                json!({"valueString": format!(
                    "No mapping of `{}` in the ConceptMap `{source_url}`.",
                    coding.label()
                )}),
            );
        }
        if let Some(arr) = out["parameter"].as_array_mut() {
            arr.extend(matches);
        }
        Ok(out)
    }
}

/// The answer of a valid code: `result` true, the display (a given display that is neither
/// the display nor a designation gives a warning `message`), the code and system.
fn valid(
    c: &CodingInput,
    system: &str,
    version: Option<&str>,
    display: Option<&str>,
    m: &Member,
) -> Value {
    let mut out = parameters(vec![("result", json!({"valueBoolean": true}))]);
    if let Some(given) = &c.display {
        let norm = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let ok = display.is_some_and(|d| norm(d) == norm(given))
            || m.designations.iter().any(|d| norm(&d.value) == norm(given));
        if !ok {
            push(
                &mut out,
                "message",
                json!({"valueString": format!(
                    "Warning: the display `{given}` is not a display of `{system}#{}`{}.",
                    m.code,
                    display.map(|d| format!(" (it is `{d}`)")).unwrap_or_default()
                )}),
            );
        }
    }
    if let Some(d) = display {
        push(&mut out, "display", json!({"valueString": d}));
    }
    push(&mut out, "code", json!({"valueCode": m.code}));
    push(&mut out, "system", json!({"valueUri": system}));
    if let Some(v) = version {
        push(&mut out, "version", json!({"valueString": v}));
    }
    out
}

/// The answer of invalid codes: `result` false and the messages.
fn invalid_result(codings: &[CodingInput], messages: &[String]) -> Value {
    let mut out = parameters(vec![("result", json!({"valueBoolean": false}))]);
    let message = if messages.is_empty() {
        "No code to validate.".to_string()
    } else {
        messages.join(" ")
    };
    push(&mut out, "message", json!({"valueString": message}));
    if let [c] = codings {
        push(&mut out, "code", json!({"valueCode": c.code}));
        if let Some(s) = &c.system {
            push(&mut out, "system", json!({"valueUri": s}));
        }
    }
    out
}

/// A `Parameters` resource of `(name, value object)` pairs.
pub fn parameters(entries: Vec<(&str, Value)>) -> Value {
    let mut out = json!({"resourceType": "Parameters", "parameter": []});
    for (name, value) in entries {
        push(&mut out, name, value);
    }
    out
}

fn push(out: &mut Value, name: &str, value: Value) {
    let mut o = value.as_object().cloned().unwrap_or_default();
    o.insert("name".into(), json!(name));
    // `name` first, as the specification shows it.
    let mut ordered = Map::new();
    ordered.insert("name".into(), json!(name));
    ordered.extend(o.into_iter().filter(|(k, _)| k != "name"));
    if let Some(arr) = out["parameter"].as_array_mut() {
        arr.push(Value::Object(ordered));
    }
}

fn push_parts(out: &mut Value, name: &str, parts: Vec<Value>) {
    push(out, name, json!({"part": parts}));
}

/// The invalid-parameter error of the operations, for the REST layer.
pub fn bad_parameter(message: impl Into<String>, parameter: &str) -> Error {
    invalid(message, Some(parameter))
}
